package version

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Sibling is one value of a key together with the Dot of the write that
// produced it. A delete is a sibling with Tombstone set (its Value is
// normally empty). Timestamp is the HLC of the write, used by LWW and by
// tombstone reaping; it plays no part in causality.
type Sibling struct {
	Dot       Dot
	Value     []byte
	Tombstone bool
	Timestamp HLC
	// ContentType and Meta are what the writer said of the value (HTTP Content-Type and
	// X-Quorumkv-Meta-* headers), kept with it as Riak keeps them. Meta is sorted by key,
	// keys unique and non-empty.
	ContentType string
	Meta        []MetaEntry
	// Expires is when the value expires, as an absolute hybrid-clock wall time (Unix ms;
	// 0: never). An expired value is dead: it reads as absent, and otherwise behaves as a
	// tombstone (it still supersedes what its write superseded, and is reaped like one).
	// It is part of the sibling's content, fixed at the write: every copy of the sibling
	// expires at the same instant, whichever replica holds it.
	Expires int64
}

// Expired reports whether s has an expiry at or before nowMs.
func (s Sibling) Expired(nowMs int64) bool { return s.Expires != 0 && s.Expires <= nowMs }

// Dead reports whether s is a tombstone or expired at nowMs.
func (s Sibling) Dead(nowMs int64) bool { return s.Tombstone || s.Expired(nowMs) }

// MetaEntry is one item of a value's user metadata.
type MetaEntry struct{ Key, Value string }

// Equal reports whether s and p are the same sibling: same dot, tombstone
// flag, timestamp, value bytes (a nil and an empty value are equal) and metadata.
func (s Sibling) Equal(p Sibling) bool {
	return s.Dot == p.Dot && s.Tombstone == p.Tombstone &&
		s.Timestamp == p.Timestamp && bytes.Equal(s.Value, p.Value) &&
		s.ContentType == p.ContentType && slices.Equal(s.Meta, p.Meta) && s.Expires == p.Expires
}

// compareContent totally orders siblings that share a dot by their content.
// Two replicas holding the same dot hold the same write, so the contents agree
// in practice; Merge uses this order only so that it stays commutative and
// associative even if they do not.
func (s Sibling) compareContent(p Sibling) int {
	if c := s.Timestamp.Compare(p.Timestamp); c != 0 {
		return c
	}
	if s.Tombstone != p.Tombstone {
		if p.Tombstone {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(s.Value, p.Value); c != 0 {
		return c
	}
	if c := cmp.Compare(s.Expires, p.Expires); c != 0 {
		return c
	}
	if c := strings.Compare(s.ContentType, p.ContentType); c != 0 {
		return c
	}
	return slices.CompareFunc(s.Meta, p.Meta, func(a, b MetaEntry) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
}

// hasMeta reports whether the sibling carries a content type or metadata.
func (s Sibling) hasMeta() bool { return s.ContentType != "" || len(s.Meta) > 0 }

// Object is what a replica stores for one key: the causal context Clock and
// the siblings it has not superseded. Siblings are sorted by
// (Dot.Actor, Dot.Counter) without duplicates, and every sibling's Dot is
// contained in Clock. The zero Object is the empty object (never written).
// Objects are values: methods return new Objects, which may share backing
// arrays with their inputs; neither is modified.
type Object struct {
	Clock    Clock
	Siblings []Sibling
}

// Validate reports, as an error wrapping ErrCorrupt, the first way in which o
// violates the Object invariants, or nil. Objects built by this package and
// returned by Decode are always valid.
func (o Object) Validate() error {
	if err := o.Clock.Validate(); err != nil {
		return err
	}
	for i, s := range o.Siblings {
		if !s.Dot.valid() {
			return fmt.Errorf("%w: sibling %d has invalid dot %v", ErrCorrupt, i, s.Dot)
		}
		if i > 0 && o.Siblings[i-1].Dot.Compare(s.Dot) >= 0 {
			return fmt.Errorf("%w: sibling dots not strictly sorted at %d (%v after %v)",
				ErrCorrupt, i, s.Dot, o.Siblings[i-1].Dot)
		}
		if !o.Clock.Contains(s.Dot) {
			return fmt.Errorf("%w: sibling %d dot %v not in clock %v", ErrCorrupt, i, s.Dot, o.Clock)
		}
	}
	return nil
}

// Update is the coordinator's write: it drops the siblings whose dots ctx
// contains (the values the writer had seen, and so supersedes), adds s, and
// sets the clock to Join(o.Clock, ctx).With(s.Dot). Siblings ctx has not
// seen are kept, so a write with an empty or stale context becomes a sibling
// of what it did not see. A delete is an Update with a Tombstone sibling.
//
// s.Dot must be freshly minted for this key: non-empty actor and a counter
// greater than o.Clock.Get(s.Dot.Actor) (see NextCounter). Update panics
// otherwise, since a reused dot would be silently dropped by replicas that
// have seen it.
//
// ctx normally comes from a client (DecodeContext) and is not trusted beyond
// its meaning: it can only supersede siblings and advance the clock. A
// coordinator that wants to stop a forged context from inflating the clock
// clamps it first with Meet(ctx, known), where known is the join of the
// replica clocks it has read.
func (o Object) Update(ctx Clock, s Sibling) Object {
	if !s.Dot.valid() {
		panic(fmt.Sprintf("version: Object.Update: invalid dot %v", s.Dot))
	}
	if o.Clock.Contains(s.Dot) {
		panic(fmt.Sprintf("version: Object.Update: dot %v not fresh for clock %v", s.Dot, o.Clock))
	}
	sibs := make([]Sibling, 0, len(o.Siblings)+1)
	inserted := false
	for _, x := range o.Siblings {
		if ctx.Contains(x.Dot) {
			continue
		}
		// x.Dot != s.Dot, since o.Clock contains x.Dot but not s.Dot.
		if !inserted && x.Dot.Compare(s.Dot) > 0 {
			sibs = append(sibs, s)
			inserted = true
		}
		sibs = append(sibs, x)
	}
	if !inserted {
		sibs = append(sibs, s)
	}
	return Object{Clock: Join(o.Clock, ctx).With(s.Dot), Siblings: sibs}
}

// Merge combines two replicas' versions of a key (DVV sync). A sibling of
// one side survives if the other side holds the same dot or has not seen it
// (its clock does not contain the dot); a sibling the other side has seen but
// no longer holds was superseded there and is dropped. The clock is the Join.
//
// Merge is commutative, associative and idempotent (up to Equal), and never
// drops a sibling the other side has not seen. If both sides hold a dot with
// different contents (which a correct caller never produces), the greater by
// (Timestamp, Tombstone, Value) is kept.
func Merge(a, b Object) Object {
	// The common cases need no new object: the first reply of a read merged into nothing,
	// and replicas in step. Objects are values never changed in place, so the result may
	// share b's or a's slices (as Join's does).
	if len(a.Clock) == 0 && len(a.Siblings) == 0 {
		return b
	}
	if a.Equal(b) {
		return a
	}
	// A write that saw the other side: the loop below would keep exactly its siblings
	// and its clock (a replica taking a newer write, a stale replica read).
	if supersedes(b, a) {
		return b
	}
	if supersedes(a, b) {
		return a
	}
	return mergeWalk(a, b)
}

// mergeWalk is Merge's general case: it walks both objects' siblings in dot order.
func mergeWalk(a, b Object) Object {
	sibs := make([]Sibling, 0, len(a.Siblings)+len(b.Siblings))
	i, j := 0, 0
	for i < len(a.Siblings) || j < len(b.Siblings) {
		var c int
		switch {
		case i == len(a.Siblings):
			c = 1
		case j == len(b.Siblings):
			c = -1
		default:
			c = a.Siblings[i].Dot.Compare(b.Siblings[j].Dot)
		}
		switch {
		case c < 0:
			if x := a.Siblings[i]; !b.Clock.Contains(x.Dot) {
				sibs = append(sibs, x)
			}
			i++
		case c > 0:
			if y := b.Siblings[j]; !a.Clock.Contains(y.Dot) {
				sibs = append(sibs, y)
			}
			j++
		default:
			x, y := a.Siblings[i], b.Siblings[j]
			if x.compareContent(y) < 0 {
				x = y
			}
			sibs = append(sibs, x)
			i++
			j++
		}
	}
	if len(sibs) == 0 {
		sibs = nil
	}
	return Object{Clock: Join(a.Clock, b.Clock), Siblings: sibs}
}

// supersedes reports whether Merge(a, b) is b as it is: b's clock descends a's (so their
// join is b's clock), every sibling of a is a dot of a's clock that b's clock has seen
// (so the merge drops it, and it is not one of b's siblings, which a's clock has not
// seen), and no sibling of b is a dot a's clock has seen (so the merge keeps them all).
func supersedes(b, a Object) bool {
	if !b.Clock.Descends(a.Clock) {
		return false
	}
	for _, y := range b.Siblings {
		if a.Clock.Contains(y.Dot) {
			return false
		}
	}
	for _, x := range a.Siblings {
		if !a.Clock.Contains(x.Dot) || !b.Clock.Contains(x.Dot) {
			return false
		}
	}
	return true
}

// Shares reports whether a and b are the same object value: the same clock and siblings,
// not copies (Merge returns one of its inputs as it is when it supersedes the other). A
// caller holding b's encoding may then use it for a.
func Shares(a, b Object) bool {
	return len(a.Clock) == len(b.Clock) && len(a.Siblings) == len(b.Siblings) &&
		(len(a.Clock) == 0 || &a.Clock[0] == &b.Clock[0]) &&
		(len(a.Siblings) == 0 || &a.Siblings[0] == &b.Siblings[0])
}

// LWW returns o reduced to its single greatest sibling by
// (Timestamp, Dot.Actor, Dot.Counter), with the clock unchanged, for buckets
// in conflict mode lww. The losers' dots stay in the clock, so a Merge with a
// replica that still holds a loser drops it there too. An empty object is
// returned as is.
func (o Object) LWW() Object {
	if len(o.Siblings) <= 1 {
		return o
	}
	best := 0
	for i := 1; i < len(o.Siblings); i++ {
		s, b := o.Siblings[i], o.Siblings[best]
		if c := b.Timestamp.Compare(s.Timestamp); c < 0 || (c == 0 && b.Dot.Compare(s.Dot) < 0) {
			best = i
		}
	}
	return Object{Clock: o.Clock, Siblings: o.Siblings[best : best+1 : best+1]}
}

// Live returns the siblings that are not tombstones, in order. The result
// may share its backing array with o.Siblings and must not be modified.
func (o Object) Live() []Sibling {
	n := 0
	for _, s := range o.Siblings {
		if !s.Tombstone {
			n++
		}
	}
	if n == len(o.Siblings) {
		return o.Siblings
	}
	if n == 0 {
		return nil
	}
	live := make([]Sibling, 0, n)
	for _, s := range o.Siblings {
		if !s.Tombstone {
			live = append(live, s)
		}
	}
	return live
}

// Deleted reports whether o has siblings and all of them are tombstones:
// the key was deleted and nothing concurrent with the delete survives.
func (o Object) Deleted() bool {
	for _, s := range o.Siblings {
		if !s.Tombstone {
			return false
		}
	}
	return len(o.Siblings) > 0
}

// Unexpired returns o without the siblings expired at nowMs, with the clock unchanged: the
// clock still covers them, so a write with a context read from the result supersedes
// them everywhere. o is returned as is when nothing expired.
func (o Object) Unexpired(nowMs int64) Object {
	n := 0
	for _, s := range o.Siblings {
		if !s.Expired(nowMs) {
			n++
		}
	}
	if n == len(o.Siblings) {
		return o
	}
	sibs := make([]Sibling, 0, n)
	for _, s := range o.Siblings {
		if !s.Expired(nowMs) {
			sibs = append(sibs, s)
		}
	}
	if len(sibs) == 0 {
		sibs = nil
	}
	return Object{Clock: o.Clock, Siblings: sibs}
}

// Dead reports whether o has siblings and every one is a tombstone or expired at nowMs:
// nothing readable is left, and the object is reaped under the tombstone rules.
func (o Object) Dead(nowMs int64) bool {
	for _, s := range o.Siblings {
		if !s.Dead(nowMs) {
			return false
		}
	}
	return len(o.Siblings) > 0
}

// DiedAt returns the wall time (Unix ms) at which the last of o's siblings died: a
// tombstone at its write, an expiring value at its expiry (or its write, if later); a
// live value without expiry counts at its write. Grace periods run from it.
func (o Object) DiedAt() int64 {
	var m int64
	for _, s := range o.Siblings {
		t := s.Timestamp.Wall
		if !s.Tombstone && s.Expires > t {
			t = s.Expires
		}
		m = max(m, t)
	}
	return m
}

// Empty reports whether o has no siblings.
func (o Object) Empty() bool { return len(o.Siblings) == 0 }

// Equal reports whether o and p have the same clock and the same siblings
// (dots, values, tombstone flags and timestamps).
func (o Object) Equal(p Object) bool {
	if !o.Clock.Equal(p.Clock) || len(o.Siblings) != len(p.Siblings) {
		return false
	}
	for i := range o.Siblings {
		if !o.Siblings[i].Equal(p.Siblings[i]) {
			return false
		}
	}
	return true
}

// MaxTimestamp returns the greatest sibling timestamp, or the zero HLC if o
// has no siblings.
func (o Object) MaxTimestamp() HLC {
	var m HLC
	for _, s := range o.Siblings {
		m = maxHLC(m, s.Timestamp)
	}
	return m
}

// NextCounter returns the counter for a new dot of actor on this key:
// max(o.Clock.Get(actor), floor) + 1, where floor is the caller's node-wide
// counter. The result is fresh for o as Update requires.
// It panics if the counter space of actor is exhausted (2^64-1 reached).
func (o Object) NextCounter(actor string, floor uint64) uint64 {
	n := max(o.Clock.Get(actor), floor)
	if n == math.MaxUint64 {
		panic(fmt.Sprintf("version: NextCounter: counter space of actor %q exhausted", actor))
	}
	return n + 1
}

// Size returns the length in bytes of o's binary encoding (see AppendBinary),
// for budgets and metrics.
func (o Object) Size() int { return o.encodedLen() }

// String formats o for logs and test output.
func (o Object) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%v[", o.Clock)
	for i, s := range o.Siblings {
		if i > 0 {
			b.WriteByte(' ')
		}
		if s.Tombstone {
			fmt.Fprintf(&b, "%v=⊥@%v", s.Dot, s.Timestamp)
		} else {
			fmt.Fprintf(&b, "%v=%q@%v", s.Dot, s.Value, s.Timestamp)
		}
		if s.Expires != 0 {
			fmt.Fprintf(&b, "~%d", s.Expires)
		}
	}
	b.WriteByte(']')
	return b.String()
}
