package version

import (
	"fmt"
	"slices"
	"strings"
)

// Dot names one write event: the Counter-th event minted by Actor.
// A valid Dot has a non-empty Actor and a Counter > 0.
type Dot struct {
	Actor   string
	Counter uint64
}

// String formats d as "actor:counter", for logs and test output.
func (d Dot) String() string { return fmt.Sprintf("%s:%d", d.Actor, d.Counter) }

// Compare orders dots by (Actor, Counter). It returns -1, 0 or +1.
func (d Dot) Compare(o Dot) int {
	if c := strings.Compare(d.Actor, o.Actor); c != 0 {
		return c
	}
	switch {
	case d.Counter < o.Counter:
		return -1
	case d.Counter > o.Counter:
		return 1
	}
	return 0
}

func (d Dot) valid() bool { return d.Actor != "" && d.Counter > 0 }

// Entry is one component of a Clock: the greatest counter seen from Actor.
type Entry struct {
	Actor   string
	Counter uint64
}

// Clock is a version vector. Its entries are sorted by Actor, actors are
// unique and non-empty, and every Counter is > 0; an absent actor means 0.
// The nil Clock is the empty clock. A Clock is treated as immutable: every
// function returns a new slice (or one of its inputs, unchanged) and never
// writes into its arguments.
type Clock []Entry

// NewClock builds a valid Clock from entries in any order: it sorts them,
// keeps the greatest counter of duplicate actors and drops zero counters.
// It returns an error wrapping ErrCorrupt if an entry with a positive
// counter has an empty actor. The input is not modified.
func NewClock(entries ...Entry) (Clock, error) {
	c := make(Clock, 0, len(entries))
	for _, e := range entries {
		if e.Counter == 0 {
			continue
		}
		if e.Actor == "" {
			return nil, fmt.Errorf("%w: clock entry with empty actor", ErrCorrupt)
		}
		c = append(c, e)
	}
	slices.SortFunc(c, func(x, y Entry) int {
		if r := strings.Compare(x.Actor, y.Actor); r != 0 {
			return r
		}
		// Greatest counter first, so the first of a run of duplicates wins.
		switch {
		case x.Counter > y.Counter:
			return -1
		case x.Counter < y.Counter:
			return 1
		}
		return 0
	})
	c = slices.CompactFunc(c, func(x, y Entry) bool { return x.Actor == y.Actor })
	if len(c) == 0 {
		return nil, nil
	}
	return slices.Clip(c), nil
}

// Validate reports, as an error wrapping ErrCorrupt, the first way in which c
// violates the Clock invariants, or nil.
func (c Clock) Validate() error {
	for i, e := range c {
		if e.Actor == "" {
			return fmt.Errorf("%w: clock entry %d has an empty actor", ErrCorrupt, i)
		}
		if e.Counter == 0 {
			return fmt.Errorf("%w: clock entry %d (%q) has a zero counter", ErrCorrupt, i, e.Actor)
		}
		if i > 0 && c[i-1].Actor >= e.Actor {
			return fmt.Errorf("%w: clock actors not strictly sorted at entry %d (%q after %q)",
				ErrCorrupt, i, e.Actor, c[i-1].Actor)
		}
	}
	return nil
}

// Get returns the counter of actor in c, 0 if absent.
func (c Clock) Get(actor string) uint64 {
	// Clocks hold a handful of entries (one per node that ever
	// coordinated a write to the key): a linear scan beats a binary search.
	if len(c) > 16 {
		i, ok := slices.BinarySearchFunc(c, actor, func(e Entry, a string) int {
			return strings.Compare(e.Actor, a)
		})
		if ok {
			return c[i].Counter
		}
		return 0
	}
	for _, e := range c {
		if e.Actor == actor {
			return e.Counter
		}
		if e.Actor > actor {
			break
		}
	}
	return 0
}

// Contains reports whether c has seen dot d, that is c[d.Actor] >= d.Counter.
// A dot with a zero counter names no event and is contained in every clock.
func (c Clock) Contains(d Dot) bool { return c.Get(d.Actor) >= d.Counter }

// Descends reports whether c >= o entrywise: c has seen everything o has.
// Every clock descends the empty clock, and itself.
func (c Clock) Descends(o Clock) bool {
	i := 0
	for _, oe := range o {
		for i < len(c) && c[i].Actor < oe.Actor {
			i++
		}
		if i == len(c) || c[i].Actor != oe.Actor || c[i].Counter < oe.Counter {
			return false
		}
		i++
	}
	return true
}

// Concurrent reports whether neither of c and o descends the other.
func (c Clock) Concurrent(o Clock) bool { return !c.Descends(o) && !o.Descends(c) }

// Equal reports whether c and o have the same entries. nil equals empty.
func (c Clock) Equal(o Clock) bool { return slices.Equal(c, o) }

// Join returns the entrywise maximum of a and b (the union of the histories
// they describe). When one side descends the other, that side is returned
// unchanged without allocating.
func Join(a, b Clock) Clock {
	if a.Descends(b) {
		return a
	}
	if b.Descends(a) {
		return b
	}
	out := make(Clock, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].Actor < b[j].Actor:
			out = append(out, a[i])
			i++
		case a[i].Actor > b[j].Actor:
			out = append(out, b[j])
			j++
		default:
			e := a[i]
			e.Counter = max(e.Counter, b[j].Counter)
			out = append(out, e)
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	out = append(out, b[j:]...)
	return out
}

// Meet returns the entrywise minimum of a and b (the dots both have seen);
// actors absent from either side are absent from the result.
func Meet(a, b Clock) Clock {
	if b.Descends(a) {
		return a
	}
	if a.Descends(b) {
		return b
	}
	out := make(Clock, 0, min(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].Actor < b[j].Actor:
			i++
		case a[i].Actor > b[j].Actor:
			j++
		default:
			e := a[i]
			e.Counter = min(e.Counter, b[j].Counter)
			out = append(out, e)
			i++
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// With returns c with dot d folded in: c[d.Actor] = max(c[d.Actor], d.Counter).
// If c already contains d, c is returned unchanged. d.Actor must be non-empty
// when d.Counter > 0; With panics otherwise, as that breaks the Clock invariant.
func (c Clock) With(d Dot) Clock {
	if c.Contains(d) {
		return c
	}
	if d.Actor == "" {
		panic("version: Clock.With: dot with empty actor")
	}
	i, found := slices.BinarySearchFunc(c, d.Actor, func(e Entry, a string) int {
		return strings.Compare(e.Actor, a)
	})
	if found {
		out := slices.Clone(c)
		out[i].Counter = d.Counter
		return out
	}
	out := make(Clock, 0, len(c)+1)
	out = append(out, c[:i]...)
	out = append(out, Entry{Actor: d.Actor, Counter: d.Counter})
	out = append(out, c[i:]...)
	return out
}

// String formats c as "{a:1 b:4}", for logs and test output.
func (c Clock) String() string {
	var sb strings.Builder
	sb.WriteByte('{')
	for i, e := range c {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s:%d", e.Actor, e.Counter)
	}
	sb.WriteByte('}')
	return sb.String()
}
