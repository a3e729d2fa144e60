package storage

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// engines lists the Store implementations that every shared test runs
// against.
var engines = []struct {
	name string
	open func(t testing.TB) Store
}{
	{"memory", func(t testing.TB) Store { return NewMemory() }},
	{"pebble", func(t testing.TB) Store { return openTestPebble(t, t.TempDir()) }},
	{"pebble with row cache", func(t testing.TB) Store {
		p, err := OpenPebble(t.TempDir(), testRowCacheConfig())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	}},
}

func testPebbleConfig() PebbleConfig {
	c := DefaultPebbleConfig()
	c.CacheBytes = 1 << 20
	c.MemTableBytes = minMemTableBytes // small, so that tests reach flushes and sstables
	return c
}

// testRowCacheConfig is testPebbleConfig with a row cache of 8 KiB (its generations turn
// over every few entries) that keeps the keys not starting with 'b'.
func testRowCacheConfig() PebbleConfig {
	c := testPebbleConfig()
	c.RowCacheBytes = 8 << 10
	c.RowCacheKeys = func(k []byte) bool { return len(k) == 0 || k[0] != 'b' }
	return c
}

func openTestPebble(t testing.TB, dir string) *Pebble {
	t.Helper()
	p, err := OpenPebble(dir, testPebbleConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type kv struct{ k, v string }

// fataler is the part of testing.TB and *rapid.T the helpers need.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// dump returns the store's content in key order.
func dump(t fataler, s Store) []kv {
	t.Helper()
	return scanRange(t, s, nil, nil, -1)
}

// scanRange scans [start,end) and returns up to limit pairs (-1: all).
func scanRange(t fataler, s Store, start, end []byte, limit int) []kv {
	t.Helper()
	out := []kv{}
	err := s.Scan(start, end, func(k, v []byte) bool {
		if limit >= 0 && len(out) >= limit {
			return false
		}
		out = append(out, kv{string(k), string(v)})
		return true
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return out
}

func equalKVs(a, b []kv) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustPut(t testing.TB, s Store, k, v string) {
	t.Helper()
	if err := s.Put([]byte(k), []byte(v), WriteOptions{}); err != nil {
		t.Fatalf("put %q: %v", k, err)
	}
}

func wantGet(t testing.TB, s Store, k string, want string, wantErr error) {
	t.Helper()
	got, err := s.Get([]byte(k))
	if !errors.Is(err, wantErr) {
		t.Fatalf("get %q: err %v, want %v", k, err, wantErr)
	}
	if err == nil && string(got) != want {
		t.Fatalf("get %q = %q, want %q", k, got, want)
	}
}

func b(s string) []byte { return []byte(s) }

func TestStore(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			for _, c := range storeCases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, e.open(t))
				})
			}
		})
	}
}

var storeCases = []struct {
	name string
	run  func(t *testing.T, s Store)
}{
	{"get missing", func(t *testing.T, s Store) {
		wantGet(t, s, "a", "", ErrNotFound)
	}},
	{"put get overwrite", func(t *testing.T, s Store) {
		mustPut(t, s, "a", "1")
		wantGet(t, s, "a", "1", nil)
		if err := s.Put(b("a"), b("2"), WriteOptions{Sync: true}); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, "a", "2", nil)
	}},
	{"empty value and empty key", func(t *testing.T, s Store) {
		mustPut(t, s, "a", "")
		mustPut(t, s, "", "empty key")
		got, err := s.Get(b("a"))
		if err != nil || len(got) != 0 {
			t.Fatalf("get = %q, %v; want empty, nil", got, err)
		}
		wantGet(t, s, "", "empty key", nil)
		if got := dump(t, s); !equalKVs(got, []kv{{"", "empty key"}, {"a", ""}}) {
			t.Fatalf("dump = %v", got)
		}
	}},
	{"delete", func(t *testing.T, s Store) {
		mustPut(t, s, "a", "1")
		if err := s.Delete(b("a"), WriteOptions{Sync: true}); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, "a", "", ErrNotFound)
		if err := s.Delete(b("never"), WriteOptions{}); err != nil {
			t.Fatalf("delete missing: %v", err)
		}
	}},
	{"write applies ops in order", func(t *testing.T, s Store) {
		mustPut(t, s, "gone", "x")
		err := s.Write([]Op{
			{Key: b("a"), Value: b("1")},
			{Key: b("a"), Delete: true},
			{Key: b("b"), Delete: true},
			{Key: b("b"), Value: b("2")},
			{Key: b("c"), Value: b("3")},
			{Key: b("c"), Value: b("4")},
			{Key: b("gone"), Delete: true, Value: b("ignored")},
		}, WriteOptions{Sync: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := dump(t, s); !equalKVs(got, []kv{{"b", "2"}, {"c", "4"}}) {
			t.Fatalf("dump = %v", got)
		}
		if err := s.Write(nil, WriteOptions{Sync: true}); err != nil {
			t.Fatalf("empty write: %v", err)
		}
	}},
	{"scan ranges", func(t *testing.T, s Store) {
		for _, k := range []string{"a", "b", "bb", "c", "d"} {
			mustPut(t, s, k, "v"+k)
		}
		all := []kv{{"a", "va"}, {"b", "vb"}, {"bb", "vbb"}, {"c", "vc"}, {"d", "vd"}}
		for _, r := range []struct {
			start, end []byte
			limit      int
			want       []kv
		}{
			{nil, nil, -1, all},
			{b(""), nil, -1, all},
			{nil, b(""), -1, all}, // an empty end is no bound, like nil
			{b("b"), b("d"), -1, all[1:4]},
			{b("b"), nil, -1, all[1:]},
			{nil, b("c"), -1, all[:3]},
			{b("ba"), b("bc"), -1, all[2:3]},
			{b("c"), b("b"), -1, []kv{}},
			{b("b"), b("b"), -1, []kv{}},
			{b("x"), nil, -1, []kv{}},
			{nil, b("a"), -1, []kv{}},
			{nil, nil, 2, all[:2]},
			{b("b"), nil, 0, []kv{}},
		} {
			got := scanRange(t, s, r.start, r.end, r.limit)
			if !equalKVs(got, r.want) {
				t.Errorf("scan [%q,%q) limit %d = %v, want %v", r.start, r.end, r.limit, got, r.want)
			}
		}
	}},
	{"returned and passed slices are not shared", func(t *testing.T, s Store) {
		key, val := b("k"), b("v1")
		if err := s.Put(key, val, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		key[0], val[0] = 'x', 'x' // caller reuses its buffers
		got, err := s.Get(b("k"))
		if err != nil || string(got) != "v1" {
			t.Fatalf("get = %q, %v", got, err)
		}
		got[0] = 'y' // caller owns the returned slice
		wantGet(t, s, "k", "v1", nil)
		ops := []Op{{Key: b("o"), Value: b("ov")}}
		if err := s.Write(ops, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		ops[0].Key[0], ops[0].Value[0] = 'x', 'x'
		wantGet(t, s, "o", "ov", nil)
	}},
	{"scan sees a point-in-time view and fn may write", func(t *testing.T, s Store) {
		mustPut(t, s, "a", "1")
		mustPut(t, s, "c", "3")
		var seen []string
		err := s.Scan(nil, nil, func(k, v []byte) bool {
			seen = append(seen, string(k)+"="+string(v))
			if string(k) == "a" {
				mustPut(t, s, "b", "2")
				mustPut(t, s, "c", "changed")
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(seen) != "[a=1 c=3]" {
			t.Fatalf("scan saw %v, want [a=1 c=3]", seen)
		}
		if got := dump(t, s); !equalKVs(got, []kv{{"a", "1"}, {"b", "2"}, {"c", "changed"}}) {
			t.Fatalf("dump = %v", got)
		}
	}},
	{"closed", func(t *testing.T, s Store) {
		mustPut(t, s, "a", "1")
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(b("a")); !errors.Is(err, ErrClosed) {
			t.Errorf("get: %v", err)
		}
		if err := s.Put(b("a"), b("1"), WriteOptions{}); !errors.Is(err, ErrClosed) {
			t.Errorf("put: %v", err)
		}
		if err := s.Delete(b("a"), WriteOptions{}); !errors.Is(err, ErrClosed) {
			t.Errorf("delete: %v", err)
		}
		if err := s.Write([]Op{{Key: b("a")}}, WriteOptions{}); !errors.Is(err, ErrClosed) {
			t.Errorf("write: %v", err)
		}
		if err := s.Scan(nil, nil, func(k, v []byte) bool { return true }); !errors.Is(err, ErrClosed) {
			t.Errorf("scan: %v", err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second close: %v", err)
		}
	}},
	{"concurrent writers", func(t *testing.T, s Store) {
		const writers, each = 8, 50
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					k := fmt.Sprintf("w%d-%03d", w, i)
					if err := s.Put(b(k), b(k), WriteOptions{Sync: i%10 == 0}); err != nil {
						t.Error(err)
						return
					}
					if _, err := s.Get(b(k)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if got := len(dump(t, s)); got != writers*each {
			t.Fatalf("%d keys, want %d", got, writers*each)
		}
	}},
	{"batches are atomic to concurrent readers", func(t *testing.T, s Store) {
		const keys, rounds = 10, 100
		batch := func(i int) []Op {
			ops := make([]Op, keys)
			for k := range ops {
				ops[k] = Op{Key: fmt.Appendf(nil, "k%d", k), Value: fmt.Appendf(nil, "%d", i)}
			}
			return ops
		}
		if err := s.Write(batch(0), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(done)
			for i := 1; i <= rounds; i++ {
				if err := s.Write(batch(i), WriteOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				var first []byte
				n := 0
				err := s.Scan(nil, nil, func(k, v []byte) bool {
					if first == nil {
						first = bytes.Clone(v)
					} else if !bytes.Equal(first, v) {
						t.Errorf("torn batch: %s=%s, first value %s", k, v, first)
						return false
					}
					n++
					return true
				})
				if err != nil || n != keys {
					t.Errorf("scan: %d keys, %v", n, err)
					return
				}
			}
		})
		wg.Wait()
	}},
}

// TestUnsynced: an engine reports a write made without Sync as unsynced until a synced
// write, whichever call made them.
func TestUnsynced(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			st, ok := e.open(t).(SyncTracker)
			if !ok {
				t.Fatal("not a SyncTracker")
			}
			s := st.(Store)
			check := func(step string, want bool) {
				t.Helper()
				if got := st.Unsynced(); got != want {
					t.Fatalf("after %s: Unsynced() = %v, want %v", step, got, want)
				}
			}
			check("open", false)
			steps := []struct {
				name string
				do   func(WriteOptions) error
			}{
				{"put", func(o WriteOptions) error { return s.Put([]byte("a"), []byte("1"), o) }},
				{"delete", func(o WriteOptions) error { return s.Delete([]byte("a"), o) }},
				{"write", func(o WriteOptions) error { return s.Write([]Op{{Key: []byte("b"), Value: []byte("2")}}, o) }},
			}
			for _, unsynced := range steps {
				for _, synced := range steps {
					if err := unsynced.do(WriteOptions{}); err != nil {
						t.Fatal(err)
					}
					check(unsynced.name, true)
					if err := synced.do(WriteOptions{Sync: true}); err != nil {
						t.Fatal(err)
					}
					check(unsynced.name+", then a synced "+synced.name, false)
				}
			}
		})
	}
}
