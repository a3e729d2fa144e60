package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"
)

// uncached reads key from Pebble itself, past the cache of recent writes.
func uncached(t testing.TB, p *Pebble, key []byte) ([]byte, error) {
	t.Helper()
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// TestRecentAgreesWithPebbleUnderConcurrentWriters: writers racing on the same keys
// (puts, deletes, batches, synced or not) with a cache small enough to turn over many
// times; afterwards every key reads the same through the cache as from Pebble itself.
func TestRecentAgreesWithPebbleUnderConcurrentWriters(t *testing.T) {
	for _, budget := range []int{0, 300, 4 << 10, 1 << 20} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			cfg := testPebbleConfig()
			cfg.RecentBytes = budget
			p, err := OpenPebble(t.TempDir(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			key := func(i int) []byte { return []byte(fmt.Sprintf("k%03d", i)) }
			const keys, writers, rounds = 40, 4, 400
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for r := range rounds {
						o := WriteOptions{Sync: rng.IntN(20) == 0}
						var err error
						switch rng.IntN(4) {
						case 0:
							err = p.Delete(key(rng.IntN(keys)), o)
						case 1:
							ops := make([]Op, 1+rng.IntN(5))
							for i := range ops {
								ops[i] = Op{Key: key(rng.IntN(keys)), Value: []byte(fmt.Sprintf("w%d-r%d-%d", w, r, i)), Delete: rng.IntN(4) == 0}
							}
							err = p.Write(ops, o)
						default:
							err = p.Put(key(rng.IntN(keys)), bytes.Repeat([]byte{byte(w)}, 1+rng.IntN(100)), o)
						}
						if err != nil {
							t.Error(err)
							return
						}
						if _, err := p.Get(key(rng.IntN(keys))); err != nil && !errors.Is(err, ErrNotFound) {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			for i := range keys {
				got, gerr := p.Get(key(i))
				want, werr := uncached(t, p, key(i))
				if !errors.Is(gerr, werr) && (gerr != nil || werr != nil) || !bytes.Equal(got, want) {
					t.Errorf("%s: through the cache %q %v, in Pebble %q %v", key(i), got, gerr, want, werr)
				}
			}
			if hits, _ := p.RecentStats(); budget > 0 && hits == 0 {
				t.Error("the cache answered no read")
			}
		})
	}
}

// TestRecentKeepsTheLaterWrite: a write recorded after a later write to the same key
// (two commits racing) does not replace it, whichever generation holds it; one that may
// be older than a dropped entry is not recorded and makes the cache forget its key.
func TestRecentKeepsTheLaterWrite(t *testing.T) {
	r := newRecent(1 << 20)
	r.record([]Op{{Key: []byte("k"), Value: []byte("new")}}, 10)
	r.record([]Op{{Key: []byte("k"), Value: []byte("old")}}, 9)
	if v, _, ok := r.get([]byte("k")); !ok || string(v) != "new" {
		t.Fatalf("after a late older write: %q %v", v, ok)
	}
	// A batch's ops take consecutive numbers: its later op on a key wins.
	r.record([]Op{{Key: []byte("b"), Value: []byte("1")}, {Key: []byte("b"), Delete: true}}, 20)
	if _, deleted, ok := r.get([]byte("b")); !ok || !deleted {
		t.Fatalf("put then delete in one batch: deleted %v ok %v", deleted, ok)
	}

	// Generations: with a tiny budget every write turns one over.
	r = newRecent(1)
	r.record([]Op{{Key: []byte("k"), Value: []byte("v5")}}, 5) // cur → old at once
	if v, _, ok := r.get([]byte("k")); !ok || string(v) != "v5" {
		t.Fatalf("from the old generation: %q %v", v, ok)
	}
	r.record([]Op{{Key: []byte("k"), Value: []byte("v4")}}, 4)
	if v, _, _ := r.get([]byte("k")); string(v) != "v5" {
		t.Fatalf("an older write replaced a newer one in the old generation: %q", v)
	}
	r.record([]Op{{Key: []byte("x"), Value: []byte("x")}}, 6) // drops the generation with k@5
	r.record([]Op{{Key: []byte("y"), Value: []byte("y")}}, 7) // drops x@6: floor 6
	r.record([]Op{{Key: []byte("k"), Value: []byte("v3")}}, 3)
	if v, _, ok := r.get([]byte("k")); ok {
		t.Fatalf("a write older than a dropped one was recorded: %q", v)
	}
	r.record([]Op{{Key: []byte("k"), Value: []byte("v8")}}, 8)
	if v, _, ok := r.get([]byte("k")); !ok || string(v) != "v8" {
		t.Fatalf("a newer write after the floor: %q %v", v, ok)
	}

	// Memory stays under twice the budget.
	r = newRecent(1 << 10)
	for i := range 1000 {
		r.record([]Op{{Key: []byte(fmt.Sprint(i)), Value: make([]byte, 50)}}, uint64(100+i))
	}
	if n := len(r.cur) + len(r.old); n*(50+recentOverhead) > 2*(1<<10)+2*(50+recentOverhead+4) {
		t.Fatalf("%d entries kept with a 1 KiB budget", n)
	}
}

// TestRecentReturnsCopies: a caller that changes a value it got or put changes nothing
// the cache holds.
func TestRecentReturnsCopies(t *testing.T) {
	p := openTestPebble(t, t.TempDir())
	v := []byte("abc")
	if err := p.Put([]byte("k"), v, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	got, _ := p.Get([]byte("k"))
	got[1] = 'Y'
	if again, _ := p.Get([]byte("k")); string(again) != "abc" {
		t.Fatalf("cache holds %q", again)
	}
}

// TestRecentSequenceNumbers: entries carry the sequence numbers Pebble gave their
// writes, increasing from one commit to the next and within a batch.
func TestRecentSequenceNumbers(t *testing.T) {
	p := openTestPebble(t, t.TempDir())
	seq := func(k string) uint64 {
		p.recent.mu.Lock()
		defer p.recent.mu.Unlock()
		if e, ok := p.recent.cur[k]; ok {
			return e.seq
		}
		return p.recent.old[k].seq
	}
	if err := p.Put([]byte("a"), []byte("1"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	s1 := seq("a")
	if err := p.Write([]Op{{Key: []byte("b"), Value: []byte("2")}, {Key: []byte("c"), Delete: true}}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if s1 == 0 || seq("b") <= s1 || seq("c") != seq("b")+1 {
		t.Fatalf("sequence numbers a %d, b %d, c %d", s1, seq("b"), seq("c"))
	}
}
