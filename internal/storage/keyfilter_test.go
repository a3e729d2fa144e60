package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestKeyFilterNoFalseNegatives: every key added is answered "maybe" across the parts the
// filter grows into, and keys never added are mostly answered "absent".
func TestKeyFilterNoFalseNegatives(t *testing.T) {
	f := newKeyFilter(nil)
	const n = 300_000 // the 64K-key first part, then 128K, 256K
	for i := range n {
		f.add(fmt.Appendf(nil, "d/bucket/key:%012d", i))
	}
	if parts := len(*f.parts.Load()); parts != 3 {
		t.Fatalf("%d parts for %d keys, want 3 (64K, 128K, 256K)", parts, n)
	}
	for i := range n {
		if k := fmt.Appendf(nil, "d/bucket/key:%012d", i); !f.mayContain(k) {
			t.Fatalf("added key %s answered absent", k)
		}
	}
	fp := 0
	const probes = 100_000
	for i := range probes {
		if f.mayContain(fmt.Appendf(nil, "d/bucket/other:%012d", i)) {
			fp++
		}
	}
	// Three parts of about 0.5% each when full (the newest is not).
	if rate := float64(fp) / probes; rate > 0.02 {
		t.Fatalf("false positives: %.2f%% of absent keys, want under 2%%", 100*rate)
	}
	st := f.stats()
	if st.Keys < n*99/100 || st.Keys > n {
		t.Fatalf("stats count %d keys, want about %d", st.Keys, n)
	}
	// Adding keys again does not grow it.
	for i := range n {
		f.add(fmt.Appendf(nil, "d/bucket/key:%012d", i))
	}
	if again := f.stats(); again.Keys != st.Keys || again.Bytes != st.Bytes {
		t.Fatalf("re-adding the same keys grew the filter: %+v, then %+v", st, again)
	}
}

// storeOfKeys returns the directory of a closed store holding n keys named by format and
// i (written without a key filter).
func storeOfKeys(t *testing.T, format string, n int) string {
	t.Helper()
	dir := t.TempDir()
	cfg := testPebbleConfig()
	cfg.KeyFilter = false
	p, err := OpenPebble(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ops := make([]Op, 0, 1000)
	for i := range n {
		ops = append(ops, Op{Key: fmt.Appendf(nil, format, i), Value: []byte("v")})
		if len(ops) == cap(ops) || i == n-1 {
			if err := p.Write(ops, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitKeyFilter waits until p's key filter answers reads.
func waitKeyFilter(t *testing.T, p *Pebble) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !p.KeyFilterStats().Ready; {
		if time.Now().After(deadline) {
			t.Fatal("the key filter's scan did not finish in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestKeyFilterAnswersAbsentReads: once the scan at open has run, a read of a key never
// written is answered without Pebble, a written key is always read from Pebble, and the
// keys found by the scan of a reopened store count as written.
func TestKeyFilterAnswersAbsentReads(t *testing.T) {
	dir := t.TempDir()
	cfg := testPebbleConfig()
	cfg.RowCacheKeys = func(k []byte) bool { return k[0] == 'd' }
	p, err := OpenPebble(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitKeyFilter(t, p)
	mustPut(t, p, "d1", "one")
	if err := p.Write([]Op{{Key: []byte("d2"), Value: []byte("two")}, {Key: []byte("d1"), Delete: true}}, WriteOptions{Sync: true}); err != nil {
		t.Fatal(err)
	}
	wantGet(t, p, "d1", "", ErrNotFound) // deleted: maybe present, read from Pebble
	wantGet(t, p, "d2", "two", nil)
	wantGet(t, p, "d3", "", ErrNotFound) // never written: the filter answers
	mustPut(t, p, "x1", "other")
	wantGet(t, p, "x1", "other", nil)    // not tracked: Pebble answers
	wantGet(t, p, "x2", "", ErrNotFound) // not tracked: Pebble answers
	if st := p.KeyFilterStats(); st.Negatives != 1 {
		t.Fatalf("negatives = %d, want 1 (d3): %+v", st.Negatives, st)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened: the filter starts empty and learns d2 from the scan.
	p, err = OpenPebble(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitKeyFilter(t, p)
	wantGet(t, p, "d2", "two", nil)
	wantGet(t, p, "d3", "", ErrNotFound)
	if st := p.KeyFilterStats(); st.Negatives != 1 || st.Keys != 1 {
		t.Fatalf("after reopening: %+v, want 1 key (d2) and 1 negative (d3)", st)
	}
}

// TestKeyFilterScanRacesWrites: keys written while the scan at open runs, and keys it
// finds, are all read back once the filter answers: no write is hidden by it.
func TestKeyFilterScanRacesWrites(t *testing.T) {
	const old = 50_000
	dir := storeOfKeys(t, "old%08d", old)
	p, err := OpenPebble(dir, testPebbleConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := fmt.Appendf(nil, "new%d-%06d", w, i)
				if err := p.Put(k, []byte("v"), WriteOptions{}); err != nil {
					t.Error(err)
					return
				}
				if _, err := p.Get(k); err != nil {
					t.Errorf("read of %s right after its write: %v", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitKeyFilter(t, p)
	for i := range old {
		if _, err := p.Get(fmt.Appendf(nil, "old%08d", i)); err != nil {
			t.Fatalf("key written before the reopen: %v", err)
		}
	}
	for w := range writers {
		for i := range each {
			if _, err := p.Get(fmt.Appendf(nil, "new%d-%06d", w, i)); err != nil {
				t.Fatalf("key written during the scan: %v", err)
			}
		}
	}
	if _, err := p.Get([]byte("never")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent key: %v", err)
	}
	if st := p.KeyFilterStats(); st.Negatives != 1 {
		t.Fatalf("negatives = %d, want 1: %+v", st.Negatives, st)
	}
}

// TestKeyFilterCloseDuringScan: closing a store whose scan is still running stops it.
func TestKeyFilterCloseDuringScan(t *testing.T) {
	dir := storeOfKeys(t, "k%08d", 100_000)
	for range 5 {
		p, err := OpenPebble(dir, testPebbleConfig())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return while the key filter's scan ran")
		}
	}
}

// TestKeyFilterPresizedAtOpen: reopening a store of 200K keys, the filter sizes one part
// for them from the tables' entry counts, instead of doubling through three more.
func TestKeyFilterPresizedAtOpen(t *testing.T) {
	const n = 200_000
	dir := storeOfKeys(t, "key%08d", n)
	p, err := OpenPebble(dir, testPebbleConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waitKeyFilter(t, p)
	parts := *p.keys.parts.Load()
	if len(parts) != 2 || parts[1].limit < n {
		limits := []int64{}
		for _, part := range parts {
			limits = append(limits, part.limit)
		}
		t.Fatalf("parts sized %v for %d keys, want the first and one of at least %d", limits, n, n)
	}
	for i := range n {
		if _, err := p.Get(fmt.Appendf(nil, "key%08d", i)); err != nil {
			t.Fatalf("key%08d: %v", i, err)
		}
	}
}
