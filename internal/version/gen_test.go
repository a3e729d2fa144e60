package version

import (
	"fmt"
	"slices"

	"pgregory.net/rapid"
)

// genActor draws an actor from a small alphabet so that objects share actors.
func genActor(t *rapid.T, label string) string {
	return rapid.SampledFrom([]string{"n1.aa", "n2.bb", "n3.cc", "n4.dd"}).Draw(t, label)
}

// genClock draws a valid clock over a few actors with small counters, so that
// clocks and dots collide often.
func genClock(t *rapid.T, label string) Clock {
	n := rapid.IntRange(0, 4).Draw(t, label+".n")
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{
			Actor:   genActor(t, fmt.Sprintf("%s.actor%d", label, i)),
			Counter: rapid.Uint64Range(0, 6).Draw(t, fmt.Sprintf("%s.ctr%d", label, i)),
		}
	}
	c, err := NewClock(entries...)
	if err != nil {
		t.Fatalf("NewClock: %v", err)
	}
	return c
}

// contentOf is the content a correct system gives the write with dot d: one
// dot, one write.
func contentOf(d Dot) Sibling {
	return Sibling{
		Dot:       d,
		Value:     []byte(d.String()),
		Tombstone: d.Counter%5 == 0,
		Timestamp: HLC{Wall: int64(d.Counter) * 10, Logical: uint32(len(d.Actor))},
	}
}

// genObject draws a valid object: a clock and a subset of the dots it
// contains as siblings. With arbitraryContent the siblings' contents are
// random, otherwise a function of the dot (as in a correct system).
func genObject(t *rapid.T, label string, arbitraryContent bool) Object {
	c := genClock(t, label+".clock")
	var sibs []Sibling
	for _, e := range c {
		for k := uint64(1); k <= e.Counter; k++ {
			if !rapid.Bool().Draw(t, fmt.Sprintf("%s.has.%s.%d", label, e.Actor, k)) {
				continue
			}
			s := contentOf(Dot{Actor: e.Actor, Counter: k})
			if arbitraryContent {
				s.Value = rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, label+".value")
				s.Tombstone = rapid.Bool().Draw(t, label+".tomb")
				s.Timestamp = HLC{
					Wall:    rapid.Int64Range(0, 3).Draw(t, label+".wall"),
					Logical: rapid.Uint32Range(0, 2).Draw(t, label+".logical"),
				}
				s.Expires = rapid.SampledFrom([]int64{0, 0, 2, 5}).Draw(t, label+".expires")
			}
			sibs = append(sibs, s)
		}
	}
	o := Object{Clock: c, Siblings: sibs}
	if err := o.Validate(); err != nil {
		t.Fatalf("generated invalid object %v: %v", o, err)
	}
	return o
}

// genWideObject draws a valid object with arbitrary actors, counters, values
// and timestamps, for encoding tests.
func genWideObject(t *rapid.T, label string) Object {
	n := rapid.IntRange(0, 6).Draw(t, label+".n")
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{
			Actor: rapid.StringN(1, 12, -1).Draw(t, fmt.Sprintf("%s.actor%d", label, i)),
			Counter: rapid.OneOf(
				rapid.Uint64Range(1, 300),
				rapid.Uint64Min(1),
			).Draw(t, fmt.Sprintf("%s.ctr%d", label, i)),
		}
	}
	c, err := NewClock(entries...)
	if err != nil {
		t.Fatalf("NewClock: %v", err)
	}
	var sibs []Sibling
	for _, e := range c {
		ctrs := rapid.SliceOfNDistinct(rapid.Uint64Range(1, e.Counter), 0, 3, rapid.ID[uint64]).
			Draw(t, label+".dots."+e.Actor)
		slices.Sort(ctrs)
		for _, k := range ctrs {
			sibs = append(sibs, Sibling{
				Dot:         Dot{Actor: e.Actor, Counter: k},
				Value:       rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(t, label+".value"),
				Tombstone:   rapid.Bool().Draw(t, label+".tomb"),
				Timestamp:   HLC{Wall: rapid.Int64().Draw(t, label+".wall"), Logical: rapid.Uint32().Draw(t, label+".logical")},
				ContentType: rapid.SampledFrom([]string{"", "", "application/json", "text/plain; charset=utf-8"}).Draw(t, label+".ct"),
				Meta:        genMeta(t, label+".meta"),
				Expires:     rapid.OneOf(rapid.Just(int64(0)), rapid.Int64()).Draw(t, label+".expires"),
			})
		}
	}
	o := Object{Clock: c, Siblings: sibs}
	if err := o.Validate(); err != nil {
		t.Fatalf("generated invalid object %v: %v", o, err)
	}
	return o
}

// genMeta draws sorted, unique, non-empty metadata keys with arbitrary values.
func genMeta(t *rapid.T, label string) []MetaEntry {
	keys := rapid.SliceOfNDistinct(rapid.StringN(1, 8, -1), 0, 3, rapid.ID[string]).Draw(t, label+".keys")
	slices.Sort(keys)
	var out []MetaEntry
	for _, k := range keys {
		out = append(out, MetaEntry{Key: k, Value: rapid.StringN(0, 8, -1).Draw(t, label+".value")})
	}
	return out
}
