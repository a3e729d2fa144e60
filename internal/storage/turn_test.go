package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// A TurnBatch over a store reads and scans exactly like the store written directly, and
// after each Commit the store underneath holds the same data.
func TestTurnBatchMatchesDirectWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	under, direct := NewMemory(), NewMemory()
	tb := NewTurnBatch(under)
	key := func() []byte { return []byte(fmt.Sprintf("k%02d", rng.IntN(40))) }
	scanAll := func(st Store) string {
		var b bytes.Buffer
		if err := st.Scan(nil, nil, func(k, v []byte) bool { fmt.Fprintf(&b, "%s=%s;", k, v); return true }); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for step := range 5000 {
		k := key()
		sync := WriteOptions{Sync: rng.IntN(20) == 0}
		switch r := rng.IntN(10); {
		case r < 4:
			v := []byte(fmt.Sprintf("v%d", step))
			mustOK(t, tb.Put(k, v, sync), direct.Put(k, v, sync))
			v[0] = 'X' // the caller may reuse its slices
		case r < 6:
			mustOK(t, tb.Delete(k, sync), direct.Delete(k, sync))
		case r < 7:
			ops := []Op{{Key: k, Value: []byte("w")}, {Key: key(), Delete: true}}
			mustOK(t, tb.Write(ops, sync), direct.Write(ops, sync))
		case r < 9:
			a, errA := tb.Get(k)
			b, errB := direct.Get(k)
			if !bytes.Equal(a, b) || !errors.Is(errA, ErrNotFound) != !errors.Is(errB, ErrNotFound) {
				t.Fatalf("step %d: get %s: %q/%v, direct %q/%v", step, k, a, errA, b, errB)
			}
		default:
			if a, b := scanAll(tb), scanAll(direct); a != b {
				t.Fatalf("step %d: scan differs:\n%s\n%s", step, a, b)
			}
		}
		if rng.IntN(8) == 0 {
			if err := tb.Commit(); err != nil {
				t.Fatal(err)
			}
			if tb.Pending() != 0 {
				t.Fatal("pending after commit")
			}
			if a, b := scanAll(under), scanAll(direct); a != b {
				t.Fatalf("step %d: store after commit differs:\n%s\n%s", step, a, b)
			}
		}
	}
}

func mustOK(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestTurnBatchArenaReuse: the bytes a turn buffered are reused by the next turn once
// committed; what the first turn wrote, and what a Get of it returned, stays intact.
func TestTurnBatchArenaReuse(t *testing.T) {
	st := NewMemory()
	tb := NewTurnBatch(st)
	mustPut(t, tb, "k1", "first value")
	got, err := tb.Get([]byte("k1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Commit(); err != nil {
		t.Fatal(err)
	}
	mustPut(t, tb, "k2", "XXXXXXXXXXXXXXXXXXXXX") // lands where k1's bytes were
	big := strings.Repeat("b", 2<<20)             // grows the arena past what is kept
	mustPut(t, tb, "k3", big)
	wantGet(t, tb, "k2", "XXXXXXXXXXXXXXXXXXXXX", nil)
	if err := tb.Commit(); err != nil {
		t.Fatal(err)
	}
	if string(got) != "first value" {
		t.Fatalf("a value Get returned changed to %q", got)
	}
	wantGet(t, st, "k1", "first value", nil)
	wantGet(t, st, "k2", "XXXXXXXXXXXXXXXXXXXXX", nil)
	wantGet(t, st, "k3", big, nil)
}
