package membership

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestEntryLWW(t *testing.T) {
	a := newState()
	b := newState()
	e1 := a.put("n1", "k", []byte("first"), false)
	if !b.mergeEntry(e1) {
		t.Fatal("new entry not merged")
	}
	// b has seen e1, so its write is later and wins on both sides.
	e2 := b.put("n0", "k", []byte("second"), false)
	if e2.Clock <= e1.Clock {
		t.Fatalf("Lamport clock did not advance: %d <= %d", e2.Clock, e1.Clock)
	}
	if !a.mergeEntry(e2) || string(a.meta["k"].Value) != "second" {
		t.Fatalf("later write lost: %+v", a.meta["k"])
	}
	if b.mergeEntry(e1) {
		t.Fatal("older entry replaced a newer one")
	}
	// Concurrent writes (same clock): the higher node ID wins on both.
	x := entry{Key: "c", Value: []byte("x"), Clock: 7, Node: "n1"}
	y := entry{Key: "c", Value: []byte("y"), Clock: 7, Node: "n2"}
	a.mergeEntry(x)
	a.mergeEntry(y)
	b.mergeEntry(y)
	b.mergeEntry(x)
	if !bytes.Equal(a.encode(), b.encode()) || string(a.meta["c"].Value) != "y" {
		t.Fatalf("concurrent writes did not converge:\n%s\n%s", a.encode(), b.encode())
	}
	// A delete made after the write wins.
	d := a.put("n1", "c", nil, true)
	b.mergeEntry(d)
	if !b.meta["c"].Deleted {
		t.Fatal("tombstone lost")
	}
}

func TestRecordOrder(t *testing.T) {
	old := record{ID: "n1", Gossip: "a:1", Epoch: 1}
	newer := record{ID: "n1", Gossip: "a:2", Epoch: 2}
	leaving := record{ID: "n1", Gossip: "a:2", Epoch: 2, Status: statusLeaving}
	removed := record{ID: "n1", Gossip: "a:2", Epoch: 2, Status: statusRemoved}
	for _, tc := range []struct {
		a, b record
		want bool
	}{
		{newer, old, true}, {old, newer, false},
		{leaving, newer, true}, {removed, leaving, true}, {newer, removed, false},
		{old, old, false},
	} {
		if got := newerRecord(tc.a, tc.b); got != tc.want {
			t.Errorf("newerRecord(%+v, %+v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestMergeOrderIndependent checks that merging the same records and entries
// in different orders yields the same state (commutativity/idempotence).
func TestMergeOrderIndependent(t *testing.T) {
	recs := []record{
		{ID: "a", Epoch: 1, Gossip: "x:1"}, {ID: "a", Epoch: 2, Gossip: "x:2"},
		{ID: "a", Epoch: 2, Gossip: "x:3"}, {ID: "b", Epoch: 1, Status: statusLeaving},
		{ID: "b", Epoch: 1},
	}
	ents := []entry{
		{Key: "k", Value: []byte("1"), Clock: 1, Node: "a"}, {Key: "k", Value: []byte("2"), Clock: 1, Node: "b"},
		{Key: "k", Clock: 1, Node: "b", Deleted: true}, {Key: "j", Value: []byte("3"), Clock: 4, Node: "a"},
	}
	var want []byte
	for perm := range 40 {
		rng := rand.New(rand.NewPCG(uint64(perm), 1))
		s := newState()
		for _, i := range append(rng.Perm(len(recs)), rng.Perm(len(recs))...) {
			s.mergeRecord(recs[i])
		}
		for _, i := range append(rng.Perm(len(ents)), rng.Perm(len(ents))...) {
			s.mergeEntry(ents[i])
		}
		got := s.encode()
		if want == nil {
			want = got
		} else if !bytes.Equal(got, want) {
			t.Fatalf("order %d gave\n%s\nwant\n%s", perm, got, want)
		}
	}
}

func validEncoded() []byte {
	s := newState()
	s.mergeRecord(record{ID: "n1", Zone: "z", Gossip: "127.0.0.1:7946", Epoch: 3, Joined: 1700000000000})
	s.mergeRecord(record{ID: "n2", Epoch: 1, Status: statusLeaving})
	s.put("n1", "bucket/x", []byte(`{"n":3}`), false)
	s.put("n2", "gone", nil, true)
	return s.encode()
}

func TestDecodeState(t *testing.T) {
	b := validEncoded()
	s, err := decodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.encode(), b) {
		t.Fatalf("round trip changed the state:\n%s\n%s", s.encode(), b)
	}
	for _, bad := range []string{
		"", "null", "{}", `{"v":2}`, `{"v":1,"extra":1}`, `{"v":1} {}`,
		`{"v":1,"meta":[{"k":"","n":"a","c":1}]}`,
		`{"v":1,"meta":[{"k":"x","c":1}]}`,
		`{"v":1,"meta":[{"k":"x","n":"a","c":1,"d":true,"v":"eA=="}]}`,
		`{"v":1,"members":[{"id":"a","st":"zombie"}]}`,
	} {
		if _, err := decodeState([]byte(bad)); !errors.Is(err, ErrCorruptState) {
			t.Errorf("decodeState(%q) = %v, want ErrCorruptState", bad, err)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(validEncoded())
	f.Add([]byte(`{"v":1,"clock":5,"members":[],"meta":[]}`))
	f.Add([]byte(`{"v":1,"members":[{"id":"a","e":1},{"id":"a","e":2}]}`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeState(b)
		if err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("error does not wrap ErrCorruptState: %v", err)
			}
			return
		}
		// A decoded state re-encodes to a canonical form that decodes to
		// itself, and merging it into itself changes nothing.
		enc := s.encode()
		s2, err := decodeState(enc)
		if err != nil {
			t.Fatalf("re-decoding own encoding: %v\n%s", err, enc)
		}
		if !bytes.Equal(s2.encode(), enc) {
			t.Fatalf("encoding not canonical:\n%s\n%s", enc, s2.encode())
		}
		for _, r := range s2.members {
			if s.mergeRecord(r) {
				t.Fatalf("merging own record %+v changed state", r)
			}
		}
		for _, e := range s2.meta {
			if s.mergeEntry(e) {
				t.Fatalf("merging own entry %+v changed state", e)
			}
		}
		// Messages decode without panicking too.
		_, _, _ = decodeMsg(b)
	})
}
