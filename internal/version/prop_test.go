package version

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func checkEqual(t *rapid.T, what string, got, want Object) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func checkValid(t *rapid.T, what string, o Object) {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatalf("%s produced an invalid object %v: %v", what, o, err)
	}
}

func TestPropMergeLaws(t *testing.T) {
	for _, arbitrary := range []bool{false, true} {
		t.Run(fmt.Sprintf("arbitraryContent=%v", arbitrary), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				a := genObject(t, "a", arbitrary)
				b := genObject(t, "b", arbitrary)
				c := genObject(t, "c", arbitrary)
				ab := Merge(a, b)
				checkValid(t, "Merge", ab)
				checkEqual(t, "commutative", ab, Merge(b, a))
				checkEqual(t, "idempotent", Merge(a, a), a)
				checkEqual(t, "associative", Merge(ab, c), Merge(a, Merge(b, c)))
				checkEqual(t, "absorbs", Merge(ab, a), ab)
				if !ab.Clock.Equal(Join(a.Clock, b.Clock)) {
					t.Fatalf("Merge clock %v != Join %v", ab.Clock, Join(a.Clock, b.Clock))
				}
				// Never lose a sibling the other side has not seen.
				for _, x := range [][2]Object{{a, b}, {b, a}} {
					for _, s := range x[0].Siblings {
						if x[1].Clock.Contains(s.Dot) {
							continue
						}
						if !slices.ContainsFunc(ab.Siblings, func(m Sibling) bool { return m.Equal(s) }) {
							t.Fatalf("sibling %v unseen by %v lost in %v", s.Dot, x[1], ab)
						}
					}
				}
			})
		})
	}
}

func TestPropClockLaws(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genClock(t, "a"), genClock(t, "b"), genClock(t, "c")
		for _, x := range []Clock{Join(a, b), Meet(a, b), a.With(Dot{genActor(t, "actor"), rapid.Uint64Range(1, 9).Draw(t, "ctr")})} {
			if err := x.Validate(); err != nil {
				t.Fatalf("invalid result %v: %v", x, err)
			}
		}
		j := Join(a, b)
		if !j.Equal(Join(b, a)) || !Join(j, c).Equal(Join(a, Join(b, c))) || !Join(a, a).Equal(a) {
			t.Fatalf("Join laws fail on %v %v %v", a, b, c)
		}
		if !j.Descends(a) || !j.Descends(b) || !a.Descends(Meet(a, b)) || !b.Descends(Meet(a, b)) {
			t.Fatalf("Join/Meet bounds fail on %v %v", a, b)
		}
		if a.Descends(b) != Join(a, b).Equal(a) {
			t.Fatalf("Descends disagrees with Join on %v %v", a, b)
		}
		if a.Descends(b) && b.Descends(a) != a.Equal(b) {
			t.Fatalf("antisymmetry fails on %v %v", a, b)
		}
		for _, actor := range []string{"n1.aa", "n2.bb", "n3.cc", "n4.dd", "zz"} {
			if j.Get(actor) != max(a.Get(actor), b.Get(actor)) {
				t.Fatalf("Join(%v, %v)[%s] = %d", a, b, actor, j.Get(actor))
			}
		}
	})
}

func TestPropUpdate(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := genObject(t, "o", false)
		ctx := genClock(t, "ctx")
		actor := genActor(t, "actor")
		floor := rapid.Uint64Range(0, 8).Draw(t, "floor")
		s := contentOf(Dot{Actor: actor, Counter: o.NextCounter(actor, floor)})
		u := o.Update(ctx, s)
		checkValid(t, "Update", u)

		// Supersedes exactly the siblings ctx has seen, and adds s.
		var want []Sibling
		for _, x := range o.Siblings {
			if !ctx.Contains(x.Dot) {
				want = append(want, x)
			}
		}
		want = append(want, s)
		slices.SortFunc(want, func(x, y Sibling) int { return x.Dot.Compare(y.Dot) })
		checkEqual(t, "Update siblings", u, Object{Clock: Join(o.Clock, ctx).With(s.Dot), Siblings: want})

		// A replica that has o learns the write by merging, and nothing else.
		checkEqual(t, "Merge(o, Update(o))", Merge(o, u), u)
		checkEqual(t, "Merge(Update(o), o)", Merge(u, o), u)
	})
}

// TestPropReplicas runs random writes (with contexts read from random,
// possibly stale replicas) and pairwise syncs over three replicas, then checks
// DVV correctness: once everything is merged, the siblings are exactly the
// writes no later write's context had seen, whatever the sync order.
func TestPropReplicas(t *testing.T) {
	actors := []string{"n1.aa", "n2.bb", "n3.cc"}
	rapid.Check(t, func(t *rapid.T) {
		reps := make([]Object, len(actors))
		nodeCounter := make([]uint64, len(actors))
		var writes []Sibling
		var contexts []Clock
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for range steps {
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0, 1: // write at coordinator r with the context of a read at r2
				r := rapid.IntRange(0, len(actors)-1).Draw(t, "coord")
				var ctx Clock
				if rapid.Bool().Draw(t, "hasContext") {
					ctx = reps[rapid.IntRange(0, len(actors)-1).Draw(t, "readFrom")].Clock
				}
				// Other keys' writes advance the node-wide counter.
				nodeCounter[r] += rapid.Uint64Range(0, 3).Draw(t, "otherKeys")
				ctr := reps[r].NextCounter(actors[r], nodeCounter[r])
				nodeCounter[r] = ctr
				s := contentOf(Dot{Actor: actors[r], Counter: ctr})
				before := reps[r].Clock
				reps[r] = reps[r].Update(ctx, s)
				checkValid(t, "Update", reps[r])
				if !reps[r].Clock.Descends(before) {
					t.Fatalf("clock went backwards: %v -> %v", before, reps[r].Clock)
				}
				writes = append(writes, s)
				contexts = append(contexts, ctx)
			case 2: // sync two replicas
				i := rapid.IntRange(0, len(actors)-1).Draw(t, "syncA")
				j := rapid.IntRange(0, len(actors)-1).Draw(t, "syncB")
				m := Merge(reps[i], reps[j])
				checkValid(t, "Merge", m)
				reps[i], reps[j] = m, m
			}
		}
		var want []Sibling
		for _, w := range writes {
			superseded := false
			for _, c := range contexts {
				if c.Contains(w.Dot) {
					superseded = true
					break
				}
			}
			if !superseded {
				want = append(want, w)
			}
		}
		slices.SortFunc(want, func(x, y Sibling) int { return x.Dot.Compare(y.Dot) })
		perm := rapid.Permutation([]int{0, 1, 2}).Draw(t, "mergeOrder")
		all := Merge(Merge(reps[perm[0]], reps[perm[1]]), reps[perm[2]])
		if len(all.Siblings) != len(want) {
			t.Fatalf("after full sync siblings = %v, want %v", all, want)
		}
		for i := range want {
			if !all.Siblings[i].Equal(want[i]) {
				t.Fatalf("after full sync siblings = %v, want %v", all, want)
			}
		}
	})
}

func TestPropEncoding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := genWideObject(t, "o")
		b := o.AppendBinary(nil)
		if o.Size() != len(b) {
			t.Fatalf("Size = %d, encoding has %d bytes", o.Size(), len(b))
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(AppendBinary(%v)): %v", o, err)
		}
		checkEqual(t, "round trip", got, o)
		if b2 := got.AppendBinary(nil); !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs:\n %x\n %x", b, b2)
		}
		// Every strict prefix is rejected.
		cut := rapid.IntRange(0, len(b)-1).Draw(t, "cut")
		if _, err := Decode(b[:cut]); err == nil {
			t.Fatalf("Decode accepted a %d-byte prefix of %d bytes", cut, len(b))
		}
	})
}

func TestPropContext(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := genWideObject(t, "o")
		ts := HLC{Wall: rapid.Int64().Draw(t, "wall"), Logical: rapid.Uint32().Draw(t, "logical")}
		if rapid.Bool().Draw(t, "zeroTS") {
			ts = HLC{}
		}
		s := EncodeContext(o.Clock, ts)
		c, got, err := DecodeContext(s)
		if err != nil {
			t.Fatalf("DecodeContext(EncodeContext(%v, %v)) = %v", o.Clock, ts, err)
		}
		if !c.Equal(o.Clock) || got != ts {
			t.Fatalf("context round trip: %v %v, want %v %v", c, got, o.Clock, ts)
		}
	})
}

func TestPropHLCMonotone(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var c HLClock
		phys := rapid.Int64Range(0, 1e12).Draw(t, "phys0")
		var high HLC // greatest timestamp returned or observed so far
		for range rapid.IntRange(1, 50).Draw(t, "steps") {
			// Physical time jitters, and may go backwards.
			phys += rapid.Int64Range(-1000, 1000).Draw(t, "dt")
			if rapid.IntRange(0, 3).Draw(t, "op") == 0 {
				remote := HLC{
					Wall:    phys + rapid.Int64Range(-2000, 2000).Draw(t, "skew"),
					Logical: rapid.OneOf(rapid.Uint32Range(0, 3), rapid.Uint32()).Draw(t, "remoteLogical"),
				}
				c.Observe(remote, phys)
				if !high.Less(c.Last()) && !remote.IsZero() || c.Last().Less(remote) {
					t.Fatalf("after Observe(%v, %d): Last %v, previous high %v", remote, phys, c.Last(), high)
				}
				high = maxHLC(high, remote)
				continue
			}
			now := c.Now(phys)
			if !high.Less(now) || now.Wall < phys {
				t.Fatalf("Now(%d) = %v, not above %v", phys, now, high)
			}
			high = now
		}
	})
}

// TestPropLWWSkew: a node whose physical clock lags by 500 ms writes after
// observing the previous write's timestamp (from its read); its write wins
// LWW even though its wall clock says it is earlier.
func TestPropLWWSkew(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		t0 := rapid.Int64Range(1, 1e13).Draw(t, "t0")
		var fast, slow HLClock
		// Both nodes have issued some timestamps before.
		for range rapid.IntRange(0, 5).Draw(t, "history") {
			fast.Now(t0 - rapid.Int64Range(0, 100).Draw(t, "fastPast"))
			slow.Now(t0 - 500 - rapid.Int64Range(0, 100).Draw(t, "slowPast"))
		}
		const skew = 500
		first := fast.Now(t0)
		o := Object{}.Update(nil, Sibling{Dot: Dot{"fast", 1}, Value: []byte("first"), Timestamp: first})

		// The slow node reads the value (observing its timestamp) and
		// writes a little later in real time, concurrently with the first
		// write in the causal sense (empty context), as lww buckets allow.
		elapsed := rapid.Int64Range(0, skew-1).Draw(t, "elapsed")
		slow.Observe(o.MaxTimestamp(), t0+elapsed-skew)
		second := slow.Now(t0 + elapsed - skew)
		actor := rapid.SampledFrom([]string{"a-slow", "slow", "zz-slow"}).Draw(t, "slowActor")
		o = o.Update(nil, Sibling{Dot: Dot{actor, 1}, Value: []byte("second"), Timestamp: second})
		w := o.LWW()
		if len(w.Siblings) != 1 || string(w.Siblings[0].Value) != "second" {
			t.Fatalf("LWW = %v: the later write lost (first %v, second %v)", w, first, second)
		}
	})
}
