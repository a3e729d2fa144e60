package version

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"unsafe"

	"pgregory.net/rapid"
)

func mustClock(t *testing.T, entries ...Entry) Clock {
	t.Helper()
	c, err := NewClock(entries...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func val(actor string, ctr uint64, v string) Sibling {
	return Sibling{Dot: Dot{Actor: actor, Counter: ctr}, Value: []byte(v), Timestamp: HLC{Wall: int64(ctr)}}
}

func tomb(actor string, ctr uint64) Sibling {
	return Sibling{Dot: Dot{Actor: actor, Counter: ctr}, Tombstone: true, Timestamp: HLC{Wall: int64(ctr)}}
}

func values(o Object) []string {
	var out []string
	for _, s := range o.Siblings {
		if s.Tombstone {
			out = append(out, "⊥")
		} else {
			out = append(out, string(s.Value))
		}
	}
	return out
}

func TestClock(t *testing.T) {
	a := mustClock(t, Entry{"b", 3}, Entry{"a", 1}, Entry{"b", 7}, Entry{"c", 0})
	if want := (Clock{{"a", 1}, {"b", 7}}); !a.Equal(want) {
		t.Fatalf("NewClock = %v, want %v", a, want)
	}
	if _, err := NewClock(Entry{"", 1}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("NewClock with empty actor: err = %v", err)
	}
	// Non-contiguous counters: b:7 means every dot of b up to 7 was seen.
	for _, tc := range []struct {
		d    Dot
		want bool
	}{
		{Dot{"b", 4}, true}, {Dot{"b", 7}, true}, {Dot{"b", 8}, false},
		{Dot{"a", 1}, true}, {Dot{"z", 1}, false}, {Dot{"0", 1}, false},
	} {
		if got := a.Contains(tc.d); got != tc.want {
			t.Errorf("%v.Contains(%v) = %v, want %v", a, tc.d, got, tc.want)
		}
	}
	b := Clock{{"b", 9}, {"c", 2}}
	j := Join(a, b)
	if want := (Clock{{"a", 1}, {"b", 9}, {"c", 2}}); !j.Equal(want) {
		t.Fatalf("Join = %v, want %v", j, want)
	}
	if !j.Descends(a) || !j.Descends(b) || a.Descends(b) || b.Descends(a) || !a.Concurrent(b) {
		t.Fatalf("Descends wrong for %v %v %v", a, b, j)
	}
	if m := Meet(a, b); !m.Equal(Clock{{"b", 7}}) {
		t.Fatalf("Meet = %v", m)
	}
	if w := a.With(Dot{"aa", 4}); !w.Equal(Clock{{"a", 1}, {"aa", 4}, {"b", 7}}) {
		t.Fatalf("With new actor = %v", w)
	}
	if w := a.With(Dot{"b", 9}); !w.Equal(Clock{{"a", 1}, {"b", 9}}) || a.Get("b") != 7 {
		t.Fatalf("With raised = %v (input now %v)", w, a)
	}
	if w := a.With(Dot{"b", 2}); !w.Equal(a) {
		t.Fatalf("With contained dot changed the clock: %v", w)
	}
	var empty Clock
	if !a.Descends(empty) || empty.Descends(a) || !empty.Equal(Clock{}) || empty.Get("a") != 0 {
		t.Fatal("empty clock semantics")
	}
}

func TestClockGetLarge(t *testing.T) {
	var entries []Entry
	for i := range 40 {
		entries = append(entries, Entry{Actor: string(rune('A' + i)), Counter: uint64(i + 1)})
	}
	c := mustClock(t, entries...)
	for i := range 40 {
		if got := c.Get(string(rune('A' + i))); got != uint64(i+1) {
			t.Fatalf("Get(%q) = %d", string(rune('A'+i)), got)
		}
	}
	if c.Get("~") != 0 || c.Get("") != 0 {
		t.Fatal("Get of absent actor")
	}
}

// TestUpdateMerge walks the classic DVV examples.
func TestUpdateMerge(t *testing.T) {
	var empty Object

	// Two writes with the same empty context become two siblings.
	o := empty.Update(nil, val("n1", 1, "v1"))
	o = o.Update(nil, val("n1", 2, "v2"))
	if got := values(o); len(got) != 2 || got[0] != "v1" || got[1] != "v2" {
		t.Fatalf("two blind writes: %v", o)
	}
	if !o.Clock.Equal(Clock{{"n1", 2}}) {
		t.Fatalf("clock = %v", o.Clock)
	}

	// A write carrying the read's context replaces both.
	read := o.Clock
	o2 := o.Update(read, val("n2", 5, "v3"))
	if got := values(o2); len(got) != 1 || got[0] != "v3" {
		t.Fatalf("write with read context: %v", o2)
	}
	if !o2.Clock.Equal(Clock{{"n1", 2}, {"n2", 5}}) {
		t.Fatalf("clock = %v", o2.Clock)
	}

	// A write with a stale context supersedes only what that context saw.
	o3 := o.Update(Clock{{"n1", 1}}, val("n1", 3, "v4"))
	if got := values(o3); len(got) != 2 || got[0] != "v2" || got[1] != "v4" {
		t.Fatalf("write with partial context: %v", o3)
	}

	// A delete is a tombstone sibling.
	d := o2.Update(o2.Clock, tomb("n1", 6))
	if !d.Deleted() || d.Empty() || len(d.Live()) != 0 || len(d.Siblings) != 1 {
		t.Fatalf("delete: %v", d)
	}

	// Concurrent write and delete on two replicas keep both.
	x := o2.Update(o2.Clock, val("n1", 7, "v5"))
	y := o2.Update(o2.Clock, tomb("n2", 6))
	m := Merge(x, y)
	if got := values(m); len(got) != 2 || got[0] != "v5" || got[1] != "⊥" {
		t.Fatalf("concurrent write+delete: %v", m)
	}
	if m.Deleted() || len(m.Live()) != 1 {
		t.Fatalf("write+delete counts as deleted: %v", m)
	}
	if !m.Equal(Merge(y, x)) {
		t.Fatal("Merge not commutative on the example")
	}

	// A later write with the merged context resolves the conflict.
	r := m.Update(m.Clock, val("n3", 1, "v6"))
	if got := values(r); len(got) != 1 || got[0] != "v6" {
		t.Fatalf("resolve: %v", r)
	}
	// A stale replica still holding v5 and the tombstone syncs to the resolution.
	if got := Merge(x, r); !got.Equal(r) {
		t.Fatalf("stale replica merge = %v, want %v", got, r)
	}
}

func TestMergeTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Object
		want Object
	}{
		{
			name: "both empty",
		},
		{
			name: "one side empty",
			a:    Object{Clock: Clock{{"a", 1}}, Siblings: []Sibling{val("a", 1, "x")}},
			want: Object{Clock: Clock{{"a", 1}}, Siblings: []Sibling{val("a", 1, "x")}},
		},
		{
			name: "superseded on the other side",
			a:    Object{Clock: Clock{{"a", 1}}, Siblings: []Sibling{val("a", 1, "x")}},
			b:    Object{Clock: Clock{{"a", 1}, {"b", 1}}, Siblings: []Sibling{val("b", 1, "y")}},
			want: Object{Clock: Clock{{"a", 1}, {"b", 1}}, Siblings: []Sibling{val("b", 1, "y")}},
		},
		{
			name: "concurrent",
			a:    Object{Clock: Clock{{"a", 1}}, Siblings: []Sibling{val("a", 1, "x")}},
			b:    Object{Clock: Clock{{"b", 1}}, Siblings: []Sibling{val("b", 1, "y")}},
			want: Object{Clock: Clock{{"a", 1}, {"b", 1}}, Siblings: []Sibling{val("a", 1, "x"), val("b", 1, "y")}},
		},
		{
			name: "non-contiguous counters: a:9 covers a:4",
			a:    Object{Clock: Clock{{"a", 4}}, Siblings: []Sibling{val("a", 4, "x")}},
			b:    Object{Clock: Clock{{"a", 9}}, Siblings: []Sibling{val("a", 9, "z")}},
			want: Object{Clock: Clock{{"a", 9}}, Siblings: []Sibling{val("a", 9, "z")}},
		},
		{
			name: "same dot kept once",
			a:    Object{Clock: Clock{{"a", 2}}, Siblings: []Sibling{val("a", 1, "x"), val("a", 2, "w")}},
			b:    Object{Clock: Clock{{"a", 1}}, Siblings: []Sibling{val("a", 1, "x")}},
			want: Object{Clock: Clock{{"a", 2}}, Siblings: []Sibling{val("a", 1, "x"), val("a", 2, "w")}},
		},
		{
			name: "tombstone superseded by a write that saw it",
			a:    Object{Clock: Clock{{"a", 1}}, Siblings: []Sibling{tomb("a", 1)}},
			b:    Object{Clock: Clock{{"a", 1}, {"b", 3}}, Siblings: []Sibling{val("b", 3, "back")}},
			want: Object{Clock: Clock{{"a", 1}, {"b", 3}}, Siblings: []Sibling{val("b", 3, "back")}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, o := range []Object{tc.a, tc.b, tc.want} {
				if err := o.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			if got := Merge(tc.a, tc.b); !got.Equal(tc.want) {
				t.Errorf("Merge(a, b) = %v, want %v", got, tc.want)
			}
			if got := Merge(tc.b, tc.a); !got.Equal(tc.want) {
				t.Errorf("Merge(b, a) = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUpdatePanicsOnStaleDot(t *testing.T) {
	o := Object{}.Update(nil, val("a", 5, "x"))
	for _, s := range []Sibling{val("a", 5, "dup"), val("a", 3, "old"), val("", 9, "anon"), val("b", 0, "zero")} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Update with dot %v did not panic", s.Dot)
				}
			}()
			o.Update(nil, s)
		}()
	}
	if got := o.NextCounter("a", 2); got != 6 {
		t.Fatalf("NextCounter = %d", got)
	}
	if got := o.NextCounter("a", 10); got != 11 {
		t.Fatalf("NextCounter with floor = %d", got)
	}
}

func TestUpdateDoesNotModifyInput(t *testing.T) {
	o := Object{}.Update(nil, val("a", 1, "x"))
	o = o.Update(nil, val("b", 1, "y"))
	before := Object{Clock: append(Clock(nil), o.Clock...), Siblings: append([]Sibling(nil), o.Siblings...)}
	_ = o.Update(o.Clock, val("a", 2, "z"))
	_ = o.Update(nil, val("a", 3, "z"))
	_ = Merge(o, Object{Clock: Clock{{"c", 1}}, Siblings: []Sibling{val("c", 1, "q")}})
	_ = o.LWW()
	if !o.Equal(before) {
		t.Fatalf("input modified: %v, was %v", o, before)
	}
}

func TestLWWAndAccessors(t *testing.T) {
	o := Object{
		Clock: Clock{{"a", 3}, {"b", 2}},
		Siblings: []Sibling{
			{Dot: Dot{"a", 3}, Value: []byte("x"), Timestamp: HLC{Wall: 100, Logical: 2}},
			{Dot: Dot{"b", 1}, Value: []byte("y"), Timestamp: HLC{Wall: 100, Logical: 2}},
			{Dot: Dot{"b", 2}, Tombstone: true, Timestamp: HLC{Wall: 99, Logical: 7}},
		},
	}
	l := o.LWW()
	// Equal timestamps: the greater actor wins.
	if len(l.Siblings) != 1 || l.Siblings[0].Dot != (Dot{"b", 1}) || !l.Clock.Equal(o.Clock) {
		t.Fatalf("LWW = %v", l)
	}
	if got := o.MaxTimestamp(); got != (HLC{Wall: 100, Logical: 2}) {
		t.Fatalf("MaxTimestamp = %v", got)
	}
	if live := o.Live(); len(live) != 2 || o.Deleted() || o.Empty() {
		t.Fatalf("Live = %v", live)
	}
	if (Object{}).Deleted() || !(Object{}).Empty() || !(Object{}).MaxTimestamp().IsZero() {
		t.Fatal("empty object accessors")
	}
	if s := o.Size(); s != len(o.AppendBinary(nil)) {
		t.Fatalf("Size = %d, encoding is %d bytes", s, len(o.AppendBinary(nil)))
	}
	// LWW of a merge of LWW'd replicas converges to the overall winner.
	if got := Merge(l, o).LWW(); !got.Equal(l) {
		t.Fatalf("Merge(LWW(o), o).LWW() = %v, want %v", got, l)
	}
}

func TestHLC(t *testing.T) {
	var c HLClock
	if !c.Last().IsZero() {
		t.Fatal("fresh clock not zero")
	}
	steps := []struct {
		op     string
		phys   int64
		remote HLC
		want   HLC
	}{
		{"now", 1000, HLC{}, HLC{1000, 0}},
		{"now", 1000, HLC{}, HLC{1000, 1}},
		{"now", 900, HLC{}, HLC{1000, 2}}, // physical clock went backwards
		{"now", 1001, HLC{}, HLC{1001, 0}},
		{"observe", 1002, HLC{5000, 3}, HLC{5000, 4}}, // remote ahead
		{"now", 1003, HLC{}, HLC{5000, 5}},
		{"observe", 1004, HLC{10, 0}, HLC{5000, 6}}, // remote behind
		{"observe", 6000, HLC{5000, 9}, HLC{6000, 0}},
		{"observe", 7000, HLC{}, HLC{6000, 0}}, // zero remote ignored
		{"now", 6000, HLC{}, HLC{6000, 1}},
	}
	for i, s := range steps {
		var got HLC
		if s.op == "now" {
			got = c.Now(s.phys)
		} else {
			c.Observe(s.remote, s.phys)
			got = c.Last()
		}
		if got != s.want || c.Last() != s.want {
			t.Fatalf("step %d %s(%d, %v) = %v, want %v", i, s.op, s.phys, s.remote, got, s.want)
		}
	}
	// Logical overflow carries into the wall time.
	c = HLClock{}
	c.Observe(HLC{Wall: 5, Logical: 1<<32 - 2}, 0)
	if got := c.Now(0); got != (HLC{Wall: 6}) {
		t.Fatalf("overflow: %v", got)
	}
}

func expiring(actor string, ctr uint64, v string, wall, expires int64) Sibling {
	s := val(actor, ctr, v)
	s.Timestamp, s.Expires = HLC{Wall: wall}, expires
	return s
}

func TestExpiry(t *testing.T) {
	o := Object{}.
		Update(nil, expiring("a", 1, "short", 100, 200)).
		Update(nil, expiring("b", 1, "long", 100, 500)).
		Update(nil, expiring("c", 1, "forever", 100, 0))
	cases := []struct {
		now  int64
		want []string
		dead bool
	}{
		{now: 199, want: []string{"short", "long", "forever"}},
		{now: 200, want: []string{"long", "forever"}}, // expiry is inclusive
		{now: 10_000, want: []string{"forever"}},
	}
	for _, tc := range cases {
		u := o.Unexpired(tc.now)
		if got := values(u); !slices.Equal(got, tc.want) {
			t.Errorf("Unexpired(%d) = %v, want %v", tc.now, got, tc.want)
		}
		if !u.Clock.Equal(o.Clock) {
			t.Errorf("Unexpired(%d) changed the clock to %v", tc.now, u.Clock)
		}
		if o.Dead(tc.now) {
			t.Errorf("Dead(%d) with a value that never expires", tc.now)
		}
	}
	// Without the value that never expires, the object dies with its last expiry.
	p := Object{}.Update(nil, expiring("a", 1, "short", 100, 200)).Update(nil, expiring("b", 1, "long", 100, 500)).Update(nil, tomb("d", 1))
	if p.Dead(499) || !p.Dead(500) {
		t.Errorf("Dead(499), Dead(500) = %v, %v; want false, true", p.Dead(499), p.Dead(500))
	}
	if got := p.DiedAt(); got != 500 {
		t.Errorf("DiedAt = %d, want 500 (the last expiry)", got)
	}
	if (Object{}).Dead(0) {
		t.Error("the empty object is not dead: it holds nothing to reap")
	}
	// A superseding write drops an expired sibling like any other; a merge with a replica
	// that still holds it drops it there too.
	q := p.Update(p.Clock, val("e", 1, "fresh"))
	if got := values(Merge(p, q)); !slices.Equal(got, []string{"fresh"}) {
		t.Errorf("Merge kept %v, want only the fresh value", got)
	}
}

func TestExpiryEncoding(t *testing.T) {
	s := expiring("a", 1, "v", 100, 1_800_000_000_000)
	o := Object{}.Update(nil, s)
	b := o.AppendBinary(nil)
	p, err := Decode(b)
	if err != nil || !p.Equal(o) || p.Siblings[0].Expires != s.Expires {
		t.Fatalf("Decode = %v, %v; want %v", p, err, o)
	}
	// Expiry is content: two copies of one dot differing only in expiry are not equal.
	s2 := s
	s2.Expires++
	if s.Equal(s2) {
		t.Error("siblings differing in expiry compare equal")
	}
	// The flag without an expiry, or with a zero one, is refused (not canonical).
	plain := Object{}.Update(nil, val("a", 1, "v")).AppendBinary(nil)
	flagAt := bytes.Index(plain, []byte{0, 1, 0}) + 2 // actoridx 0, counter 1, flags 0
	bad := bytes.Clone(plain)
	bad[flagAt] |= flagExpires
	if _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("expiry flag without expiry: err = %v, want ErrCorrupt", err)
	}
	if _, err := Decode(append(bad, 0)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("zero expiry: err = %v, want ErrCorrupt", err)
	}
}

// TestMergeInStep: the merges of a read whose replicas agree — the first reply into
// nothing, then equal replies — give the reply itself, without allocating.
func TestMergeInStep(t *testing.T) {
	x := benchObject(2, 3)
	y := roundTrip(t, x) // equal, not the same slices
	if got := Merge(Object{}, x); !got.Equal(x) {
		t.Fatalf("Merge(empty, x) = %+v, want x", got)
	}
	if got := Merge(x, y); !got.Equal(x) || !got.Equal(Merge(y, x)) {
		t.Fatalf("Merge of equal objects = %+v, want x", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = Merge(Merge(Object{}, x), y) }); n != 0 {
		t.Fatalf("merging replicas in step allocated %v times, want 0", n)
	}
	// A replica behind still merges: y's write joins x.
	z := x.Update(x.Clock, Sibling{Dot: Dot{"n9", 1}, Value: []byte("new")})
	if got := Merge(x, z); !got.Equal(z) {
		t.Fatalf("Merge(x, newer) = %+v, want the newer", got)
	}
}

// TestMergeSupersedes: a write that saw the other side merges to itself, shared and
// without allocating (a replica taking a newer write, a stale copy read beside a fresh
// one), whichever side it is on; a concurrent one still merges into a new object.
func TestMergeSupersedes(t *testing.T) {
	x := benchObject(2, 3)
	z := x.Update(x.Clock, Sibling{Dot: Dot{"n9", 1}, Value: []byte("new")})
	for _, got := range []Object{Merge(x, z), Merge(z, x)} {
		if !Shares(got, z) {
			t.Fatalf("Merge of x and a write that saw it = %+v, want that write itself", got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = Merge(x, z) }); n != 0 {
		t.Fatalf("merging a superseding write allocated %v times, want 0", n)
	}
	w := x.Update(x.Clock, Sibling{Dot: Dot{"n8", 1}, Value: []byte("other")}) // concurrent with z
	got := Merge(z, w)
	if Shares(got, z) || Shares(got, w) || len(got.Siblings) != 2 {
		t.Fatalf("Merge of concurrent writes = %+v, want both siblings in a new object", got)
	}
	if Shares(x, roundTrip(t, x)) {
		t.Fatal("Shares reports a copy as the same object")
	}
}

// TestPropMergeFastPaths: Merge, with its shortcuts, gives what its general sibling walk
// (mergeWalk) gives, for any two valid objects.
func TestPropMergeFastPaths(t *testing.T) {
	for _, arbitrary := range []bool{false, true} {
		t.Run(fmt.Sprintf("arbitraryContent=%v", arbitrary), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				a := genObject(t, "a", arbitrary)
				b := genObject(t, "b", arbitrary)
				if rapid.Bool().Draw(t, "b saw a") {
					// b is a's copy with a write on top: the case the shortcut is for.
					b = a.Update(a.Clock, Sibling{Dot: Dot{"n9.zz", a.Clock.Get("n9.zz") + 1}, Value: []byte("w")})
				}
				checkEqual(t, "Merge(a, b)", Merge(a, b), mergeWalk(a, b))
				checkEqual(t, "Merge(b, a)", Merge(b, a), mergeWalk(b, a))
			})
		})
	}
}

// roundTrip round-trips o through its encoding: an equal object in new memory.
func roundTrip(t *testing.T, o Object) Object {
	t.Helper()
	d, err := Decode(o.AppendBinary(nil))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDecodeInterned: decoding through an Interner gives what Decode gives, and a second
// object with the same actors reuses their string instead of allocating it; the Interner
// stays bounded.
func TestDecodeInterned(t *testing.T) {
	x := benchObject(3, 2)
	raw := x.AppendBinary(nil)
	var in Interner
	a, err := DecodeInterned(raw, &in)
	if err != nil || !a.Equal(x) {
		t.Fatalf("DecodeInterned = %+v, %v; want %+v", a, err, x)
	}
	b, err := DecodeInterned(bytes.Clone(raw), &in)
	if err != nil || !b.Equal(x) {
		t.Fatalf("second DecodeInterned = %+v, %v", b, err)
	}
	if unsafe.StringData(a.Clock[0].Actor) != unsafe.StringData(b.Clock[0].Actor) {
		t.Fatal("the second decode allocated its actors anew")
	}
	plain := testing.AllocsPerRun(100, func() { _, _ = Decode(raw) })
	interned := testing.AllocsPerRun(100, func() { _, _ = DecodeInterned(raw, &in) })
	if interned != plain-1 {
		t.Fatalf("DecodeInterned allocates %v times, Decode %v: want one fewer", interned, plain)
	}
	for i := range 3 * internMax {
		y := x.Update(x.Clock, Sibling{Dot: Dot{fmt.Sprintf("n%d.e", i), 1}, Value: []byte("v")})
		if got, err := DecodeInterned(y.AppendBinary(nil), &in); err != nil || !got.Equal(y) {
			t.Fatalf("object %d: %+v, %v", i, got, err)
		}
	}
	if len(in.m) > internMax {
		t.Fatalf("the Interner holds %d strings, bound %d", len(in.m), internMax)
	}
}
