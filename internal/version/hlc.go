package version

import (
	"fmt"
	"math"
)

// HLC is a hybrid logical clock timestamp: a physical wall time in Unix
// milliseconds and a logical counter that orders events within (or after) the
// same millisecond. The zero HLC is less than every timestamp an HLClock issues
// for a positive physical time, and means "no timestamp".
type HLC struct {
	Wall    int64 // Unix milliseconds
	Logical uint32
}

// Less reports whether h orders strictly before o, comparing Wall then Logical.
func (h HLC) Less(o HLC) bool {
	return h.Wall < o.Wall || (h.Wall == o.Wall && h.Logical < o.Logical)
}

// Compare returns -1, 0 or +1 as h is before, equal to or after o.
func (h HLC) Compare(o HLC) int {
	switch {
	case h.Less(o):
		return -1
	case o.Less(h):
		return 1
	}
	return 0
}

// IsZero reports whether h is the zero timestamp.
func (h HLC) IsZero() bool { return h == HLC{} }

// String formats h as "wall.logical", for logs and test output.
func (h HLC) String() string { return fmt.Sprintf("%d.%d", h.Wall, h.Logical) }

// next returns the least timestamp strictly greater than h. If the logical
// counter would overflow, the wall time advances by one millisecond instead.
func (h HLC) next() HLC {
	if h.Logical == math.MaxUint32 {
		return HLC{Wall: h.Wall + 1}
	}
	return HLC{Wall: h.Wall, Logical: h.Logical + 1}
}

func maxHLC(a, b HLC) HLC {
	if a.Less(b) {
		return b
	}
	return a
}

// HLClock is a hybrid logical clock (Kulkarni et al. 2014). Its zero value is
// ready to use. It never reads the system clock: every call takes the
// caller's current physical time in Unix milliseconds, which may stall or go
// backwards without breaking monotonicity. Not safe for concurrent use.
//
// To survive a restart without issuing timestamps below ones issued before,
// the owner persists Last (or an upper bound of it) and calls Observe with it
// on start.
type HLClock struct {
	last HLC
}

// Now returns a timestamp strictly greater than every timestamp this clock
// returned or observed before, and with Wall >= physMs.
func (c *HLClock) Now(physMs int64) HLC {
	if physMs > c.last.Wall {
		c.last = HLC{Wall: physMs}
	} else {
		c.last = c.last.next()
	}
	return c.last
}

// Observe folds in a timestamp received from another node (for example the
// timestamp of a value just read), as the HLC receive event: afterwards Last
// is strictly greater than both the previous Last and remote, and Now returns
// timestamps greater still. A zero remote is ignored.
//
// Observe trusts remote; bounding the skew a peer may inject is the caller's
// policy.
func (c *HLClock) Observe(remote HLC, physMs int64) {
	if remote.IsZero() {
		return
	}
	l := maxHLC(c.last, remote)
	if physMs > l.Wall {
		c.last = HLC{Wall: physMs}
		return
	}
	c.last = l.next()
}

// Last returns the greatest timestamp this clock has issued or recorded;
// the zero HLC for a fresh clock.
func (c *HLClock) Last() HLC { return c.last }
