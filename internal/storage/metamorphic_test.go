package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/vfs"
	"pgregory.net/rapid"
)

// A small key space, so that operations collide; it includes the empty
// key, prefixes of other keys, and bytes 0x00 and 0xff.
var metaKeys = []string{"", "a", "a\x00", "aa", "ab", "b", "ba", "c", "d\xff", "m", "zz", "\xff", "\xff\xff"}

var (
	genKey   = rapid.Map(rapid.SampledFrom(metaKeys), func(s string) []byte { return []byte(s) })
	genBound = rapid.OneOf(rapid.Just([]byte(nil)), genKey)
	// Values are mostly short; some are a few KiB, so that with a 64 KiB
	// memtable the Pebble side flushes to sstables and compacts.
	genValue = rapid.Custom(func(t *rapid.T) []byte {
		n := rapid.OneOf(rapid.IntRange(0, 8), rapid.IntRange(1000, 5000)).Draw(t, "len")
		c := rapid.Byte().Draw(t, "fill")
		return bytes.Repeat([]byte{c}, n)
	})
	genOpts = rapid.Custom(func(t *rapid.T) WriteOptions {
		return WriteOptions{Sync: rapid.Bool().Draw(t, "sync")}
	})
	genOps = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Op {
		if rapid.Bool().Draw(t, "delete") {
			return Op{Key: genKey.Draw(t, "key"), Delete: true}
		}
		return Op{Key: genKey.Draw(t, "key"), Value: genValue.Draw(t, "value")}
	}), 0, 8)
)

// TestMetamorphicPebbleVsMemory applies one random sequence of operations
// to Pebble and to Memory and requires identical results at every step.
// Pebble is also closed and reopened at random points: nothing may change.
func TestMetamorphicPebbleVsMemory(t *testing.T) { metamorphic(t, testPebbleConfig()) }

// TestMetamorphicRowCacheVsMemory is the same with a row cache small enough that its
// generations turn over every few writes, and that keeps only some keys.
func TestMetamorphicRowCacheVsMemory(t *testing.T) { metamorphic(t, testRowCacheConfig()) }

func metamorphic(t *testing.T, cfg PebbleConfig) {
	base := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(base, "db")
		if err != nil {
			rt.Fatal(err)
		}
		defer os.RemoveAll(dir)
		p, err := OpenPebble(dir, cfg)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { _ = p.Close() }()
		m := NewMemory()

		same := func(what string, perr, merr error) {
			if !errors.Is(perr, merr) && !(perr == nil && merr == nil) {
				rt.Fatalf("%s: pebble err %v, memory err %v", what, perr, merr)
			}
			if merr != nil && !errors.Is(merr, ErrNotFound) {
				rt.Fatalf("%s: unexpected error %v", what, merr)
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"put": func(rt *rapid.T) {
				k, v, o := genKey.Draw(rt, "key"), genValue.Draw(rt, "value"), genOpts.Draw(rt, "opts")
				same("put", p.Put(k, v, o), m.Put(k, v, o))
			},
			"delete": func(rt *rapid.T) {
				k, o := genKey.Draw(rt, "key"), genOpts.Draw(rt, "opts")
				same("delete", p.Delete(k, o), m.Delete(k, o))
			},
			"write": func(rt *rapid.T) {
				ops, o := genOps.Draw(rt, "ops"), genOpts.Draw(rt, "opts")
				same("write", p.Write(ops, o), m.Write(ops, o))
			},
			"get": func(rt *rapid.T) {
				k := genKey.Draw(rt, "key")
				pv, perr := p.Get(k)
				mv, merr := m.Get(k)
				same(fmt.Sprintf("get %q", k), perr, merr)
				if !bytes.Equal(pv, mv) {
					rt.Fatalf("get %q: pebble %q, memory %q", k, pv, mv)
				}
			},
			"scan": func(rt *rapid.T) {
				start, end := genBound.Draw(rt, "start"), genBound.Draw(rt, "end")
				limit := rapid.IntRange(-1, 5).Draw(rt, "limit")
				pk, mk := scanRange(rt, p, start, end, limit), scanRange(rt, m, start, end, limit)
				if !equalKVs(pk, mk) {
					rt.Fatalf("scan [%q,%q) limit %d: pebble %v, memory %v", start, end, limit, pk, mk)
				}
			},
			"reopen": func(rt *rapid.T) {
				if err := p.Close(); err != nil {
					rt.Fatal(err)
				}
				if p, err = OpenPebble(dir, cfg); err != nil {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) {
				if pd, md := dump(rt, p), dump(rt, m); !equalKVs(pd, md) {
					rt.Fatalf("contents differ:\npebble %v\nmemory %v", pd, md)
				}
			},
		})
	})
}

// TestCrashModelPebbleVsMemory checks Memory's crash model against Pebble
// on a strict in-memory file system, which on a simulated crash drops
// every byte not fsynced. After a random sequence of synced and unsynced
// writes and a crash:
//   - Memory.CrashClone holds exactly the state after the last synced write;
//   - Pebble holds the state after some prefix of the writes that includes
//     the last synced one (Pebble may have written more of its WAL to disk
//     in the background, but never a hole or half a batch).
func TestCrashModelPebbleVsMemory(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		fs := vfs.NewStrictMem()
		cfg := testPebbleConfig()
		cfg.fs = fs
		p, err := OpenPebble("db", cfg)
		if err != nil {
			rt.Fatal(err)
		}
		m := NewMemory()
		states := [][]kv{dump(rt, m)} // states[i]: after i writes
		lastSync := 0

		n := rapid.IntRange(0, 40).Draw(rt, "writes")
		for range n {
			ops, o := genOps.Draw(rt, "ops"), genOpts.Draw(rt, "opts")
			if err := p.Write(ops, o); err != nil {
				rt.Fatal(err)
			}
			if err := m.Write(ops, o); err != nil {
				rt.Fatal(err)
			}
			if len(ops) == 0 {
				continue // an empty write is no write at all
			}
			states = append(states, dump(rt, m))
			if o.Sync {
				lastSync = len(states) - 1
			}
		}

		if got := dump(rt, m.CrashClone()); !equalKVs(got, states[lastSync]) {
			rt.Fatalf("CrashClone = %v, want state after last synced write %v", got, states[lastSync])
		}

		// Crash: freeze the durable state, let Close run, then drop what
		// was not synced.
		fs.SetIgnoreSyncs(true)
		_ = p.Close()
		fs.ResetToSyncedState()
		fs.SetIgnoreSyncs(false)

		p, err = OpenPebble("db", cfg)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { _ = p.Close() }()
		got := dump(rt, p)
		if !slices.ContainsFunc(states[lastSync:], func(s []kv) bool { return equalKVs(s, got) }) {
			rt.Fatalf("after crash pebble holds %v; not the state after any prefix from write %d on (want at least %v)",
				got, lastSync, states[lastSync])
		}
	})
}

func TestMemoryCrashClone(t *testing.T) {
	sync, nosync := WriteOptions{Sync: true}, WriteOptions{}
	m := NewMemory()
	put := func(k, v string, o WriteOptions) {
		t.Helper()
		if err := m.Put(b(k), b(v), o); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s Store, want ...kv) {
		t.Helper()
		if want == nil {
			want = []kv{}
		}
		if got := dump(t, s); !equalKVs(got, want) {
			t.Fatalf("state %v, want %v", got, want)
		}
	}

	put("a", "1", nosync)
	check(m.CrashClone()) // nothing synced yet
	put("b", "1", sync)   // makes a=1 durable too
	check(m.CrashClone(), kv{"a", "1"}, kv{"b", "1"})
	put("a", "2", nosync)
	put("c", "1", nosync)
	if err := m.Delete(b("b"), nosync); err != nil {
		t.Fatal(err)
	}
	if err := m.Write([]Op{{Key: b("c"), Value: b("2")}, {Key: b("a"), Delete: true}}, nosync); err != nil {
		t.Fatal(err)
	}
	check(m, kv{"c", "2"})
	c := m.CrashClone() // rolls back all four unsynced writes
	check(c, kv{"a", "1"}, kv{"b", "1"})
	check(m, kv{"c", "2"}) // m itself is unchanged

	// The clone is an independent, open store with its own crash model.
	put2 := func(s *Memory, k string, o WriteOptions) {
		if err := s.Put(b(k), b("x"), o); err != nil {
			t.Fatal(err)
		}
	}
	put2(c, "z", nosync)
	check(c.CrashClone(), kv{"a", "1"}, kv{"b", "1"})
	check(m, kv{"c", "2"})

	if err := m.Write(nil, sync); err != nil { // empty: not a sync point
		t.Fatal(err)
	}
	check(m.CrashClone(), kv{"a", "1"}, kv{"b", "1"})

	if err := m.Close(); err != nil { // a clean Close makes everything durable
		t.Fatal(err)
	}
	check(m.CrashClone(), kv{"c", "2"})
}
