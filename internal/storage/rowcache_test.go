package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"
)

// TestRowCacheAnswersReads: a key is admitted by a write while there is room, and by a read
// that finds it in Pebble; later reads come from the cache and writes keep it current; an
// absent key is not cached, and a key the filter leaves out never is.
func TestRowCacheAnswersReads(t *testing.T) {
	dir := t.TempDir()
	cfg := testPebbleConfig()
	cfg.RowCacheBytes = 1 << 20
	cfg.RowCacheKeys = func(k []byte) bool { return k[0] == 'd' }
	p, err := OpenPebble(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, p, "d0", "zero")
	if st := p.RowCacheStats(); st.Entries != 1 {
		t.Fatalf("a write with room to spare did not admit its key: %+v", st)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = OpenPebble(dir, cfg) // an empty cache over a store holding d0
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	wantGet(t, p, "d0", "zero", nil) // miss: admitted by the read
	wantGet(t, p, "d0", "zero", nil) // hit
	mustPut(t, p, "d1", "one")       // admitted: room
	wantGet(t, p, "d1", "one", nil)  // hit
	mustPut(t, p, "d1", "uno")
	wantGet(t, p, "d1", "uno", nil)      // hit: the write updated it
	wantGet(t, p, "d2", "", ErrNotFound) // miss; an absent key is not cached
	mustPut(t, p, "x1", "other")
	wantGet(t, p, "x1", "other", nil) // not cached: no hit, no miss
	if st := p.RowCacheStats(); st.Hits != 3 || st.Misses != 2 || st.Entries != 2 {
		t.Fatalf("stats = %+v, want 3 hits, 2 misses, 2 entries", st)
	}
	// A returned value is the caller's: changing it changes nothing cached.
	v, err := p.Get([]byte("d1"))
	if err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	wantGet(t, p, "d1", "uno", nil)
	// A delete, unsynced and synced, and a synced put are seen by the next read.
	if err := p.Delete([]byte("d1"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantGet(t, p, "d1", "", ErrNotFound)
	if err := p.Put([]byte("d1"), []byte("two"), WriteOptions{Sync: true}); err != nil {
		t.Fatal(err)
	}
	wantGet(t, p, "d1", "two", nil)
	if err := p.Write([]Op{{Key: []byte("d1"), Delete: true}, {Key: []byte("d2"), Value: []byte("v")}}, WriteOptions{Sync: true}); err != nil {
		t.Fatal(err)
	}
	wantGet(t, p, "d1", "", ErrNotFound)
	wantGet(t, p, "d2", "v", nil)
}

// openWrittenPast opens a store with a 64 KiB row cache and writes 5000 keys k00000... of
// a 100-byte value into it, about 15 times the budget. The store closes with the test.
func openWrittenPast(t *testing.T) (*Pebble, PebbleConfig, []byte) {
	t.Helper()
	cfg := testPebbleConfig()
	cfg.RowCacheBytes = 64 << 10
	p, err := OpenPebble(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	val := bytes.Repeat([]byte("v"), 100)
	for i := range 5000 {
		if err := p.Put(fmt.Appendf(nil, "k%05d", i), val, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return p, cfg, val
}

// TestRowCacheWritesAdmitIntoRoomOnly: writes of new keys fill the free room and then
// admit nothing more, evicting nothing: a bulk load keeps what it cached first, and the
// keys written past the budget are admitted by their reads.
func TestRowCacheWritesAdmitIntoRoomOnly(t *testing.T) {
	p, cfg, val := openWrittenPast(t)
	full := p.RowCacheStats()
	if full.Bytes > cfg.RowCacheBytes || full.Bytes < cfg.RowCacheBytes*3/4 || full.Entries > 1000 {
		t.Fatalf("after the writes the cache holds %d bytes in %d entries, budget %d: want it nearly full, not past it", full.Bytes, full.Entries, cfg.RowCacheBytes)
	}
	// What the writes admitted first is still there: the later writes evicted none of it.
	wantGet(t, p, "k00000", string(val), nil)
	wantGet(t, p, "k00001", string(val), nil)
	if st := p.RowCacheStats(); st.Hits != 2 || st.Misses != 0 {
		t.Fatalf("stats = %+v, want the first keys written to hit", st)
	}
	wantGet(t, p, "k04999", string(val), nil) // written past the budget: a miss, admitted
	wantGet(t, p, "k04999", string(val), nil)
	if st := p.RowCacheStats(); st.Hits != 3 || st.Misses != 1 || st.Bytes > cfg.RowCacheBytes {
		t.Fatalf("stats = %+v, want 3 hits and 1 miss within the budget", st)
	}
}

// TestRowCacheStaysWithinBudget: writing far more than the budget keeps the cache near it,
// and every key still reads back right.
func TestRowCacheStaysWithinBudget(t *testing.T) {
	p, cfg, val := openWrittenPast(t)
	for i := range 5000 { // admitted by their first read
		wantGet(t, p, fmt.Sprintf("k%05d", i), string(val), nil)
	}
	st := p.RowCacheStats()
	if st.Bytes > cfg.RowCacheBytes || st.Bytes < cfg.RowCacheBytes*3/4 {
		t.Fatalf("row cache holds %d bytes in %d entries, budget %d: want most of it used, none past it", st.Bytes, st.Entries, cfg.RowCacheBytes)
	}
	for i := range 5000 {
		wantGet(t, p, fmt.Sprintf("k%05d", i), string(val), nil)
	}
}

// TestRowCacheCoherentUnderConcurrency: writers (unsynced and synced, puts, deletes and
// batches) and readers hammer a few keys at once; afterwards every key reads the same
// through the cache as from Pebble itself. Run with -race as CI does.
func TestRowCacheCoherentUnderConcurrency(t *testing.T) {
	cfg := testPebbleConfig()
	cfg.RowCacheBytes = 4 << 10 // small: generations turn over while the test runs
	p, err := OpenPebble(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	keys := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				k := keys[(i+w)%len(keys)]
				o := WriteOptions{Sync: i%7 == 0}
				var err error
				switch i % 3 {
				case 0:
					err = p.Put(k, fmt.Appendf(nil, "w%d-%d", w, i), o)
				case 1:
					err = p.Delete(k, o)
				default:
					err = p.Write([]Op{{Key: k, Value: fmt.Appendf(nil, "b%d-%d", w, i)}, {Key: keys[(i+w+1)%len(keys)], Delete: true}}, o)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				if _, err := p.Get(keys[i%len(keys)]); err != nil && !errors.Is(err, ErrNotFound) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		want, werr := pebbleGet(p, k)
		got, gerr := p.Get(k)
		if !errors.Is(gerr, werr) && !(gerr == nil && werr == nil) || !bytes.Equal(got, want) {
			t.Errorf("key %s: through the cache %q, %v; in Pebble %q, %v", k, got, gerr, want, werr)
		}
	}
}

// pebbleGet reads key from Pebble itself, past the row cache.
func pebbleGet(p *Pebble, key []byte) ([]byte, error) {
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

// TestRowCacheKeepsWhatIsRead: CLOCK gives an entry read since the hand passed it a
// second chance, so a key read between writes of many others stays cached while they
// come and go; a value too large for a shard is not kept.
func TestRowCacheKeepsWhatIsRead(t *testing.T) {
	c := newRowCache(rowCacheShards*4096, nil)
	admit := func(key, val []byte) {
		_, _, seq := c.get(key)
		c.fill(key, val, seq)
	}
	hot := []byte("hot")
	admit(hot, []byte("v"))
	val := bytes.Repeat([]byte("x"), 100)
	for i := range 10000 {
		admit(fmt.Appendf(nil, "cold%d", i), val)
		if got, ok, _ := c.get(hot); !ok || string(got) != "v" {
			t.Fatalf("after %d other keys the hot key is not cached (ok %v)", i, ok)
		}
	}
	if got, ok, _ := c.get([]byte("cold0")); ok {
		t.Fatalf("cold0 still cached (%q) after 10,000 keys into 4 KiB shards", got)
	}
	// Every key still cached reads back its own value, after the arenas were compacted
	// many times over; and compaction bounds them (without it each would hold 17 KB).
	for i := range 10000 {
		if got, ok, _ := c.get(fmt.Appendf(nil, "cold%d", i)); ok && !bytes.Equal(got, val) {
			t.Fatalf("cold%d reads %q", i, got)
		}
	}
	for i := range c.shards {
		if n := len(c.shards[i].arena); n > 3*4096 {
			t.Fatalf("shard %d's arena holds %d bytes for a budget of 4096", i, n)
		}
	}
	big := bytes.Repeat([]byte("b"), 2048)
	admit([]byte("big"), big)
	if _, ok, _ := c.get([]byte("big")); ok {
		t.Fatal("a value of half a shard's budget was cached")
	}
	// A fill that a write overtook is dropped: the read's value is older than the write's.
	_, _, seq := c.get([]byte("raced"))
	c.wmu.Lock()
	c.set([]byte("raced"), []byte("new"), false)
	c.wmu.Unlock()
	c.fill([]byte("raced"), []byte("old"), seq)
	if got, ok, _ := c.get([]byte("raced")); ok && string(got) != "new" {
		t.Fatalf("a fill read before a write replaced the write's value: %q", got)
	}
}

// BenchmarkRowCacheSet is a replica's cache work per write of a key it holds: the read
// before the write (a hit) and the write's update, over 100,000 keys of about 150 bytes
// whose size changes by a few bytes from one write to the next (a version vector's
// counters grow), in a cache that holds them all.
func BenchmarkRowCacheSet(b *testing.B) {
	const keys = 100_000
	c := newRowCache(64<<20, nil)
	defer c.close()
	val := bytes.Repeat([]byte("v"), 160)
	ks := benchRowKeys(keys)
	for i := range ks {
		c.set(ks[i], val[:150], false)
	}
	b.ReportAllocs()
	i := uint64(1)
	for b.Loop() {
		i = i*6364136223846793005 + 1442695040888963407
		k := ks[(i>>33)%keys]
		if _, ok, _ := c.get(k); !ok {
			b.Fatal("miss")
		}
		c.set(k, val[:145+(i>>20)%10], false)
	}
}

// BenchmarkRowCacheSetFull is BenchmarkRowCacheSet with the server's budget (32 MiB) full:
// 130,000 keys of about 185 bytes, so every rewrite of a cached key must find arena room.
// This is a replica under redis-benchmark's SETs over 100,000 keys once other keys filled
// the cache.
func BenchmarkRowCacheSetFull(b *testing.B) {
	const keys = 130_000
	c := newRowCache(32<<20, nil)
	defer c.close()
	val := bytes.Repeat([]byte("v"), 170)
	ks := benchRowKeys(keys)
	for i := range ks {
		c.set(ks[i], val[:160], false)
		if _, ok, _ := c.get(ks[i]); !ok {
			c.fill(ks[i], val[:160], 0)
		}
	}
	b.ReportAllocs()
	i := uint64(1)
	for b.Loop() {
		i = i*6364136223846793005 + 1442695040888963407
		k := ks[(i>>33)%100_000]
		c.get(k)
		c.set(k, val[:155+(i>>20)%10], false)
	}
	st := c.stats()
	b.ReportMetric(float64(st.Hits)/float64(st.Hits+st.Misses), "hit-ratio")
}

// TestRowCacheModel drives one small cache with random writes (values of varying sizes,
// so that some fit their entry's room and go in place, and others move), deletes and
// reads, and checks it against a map after every step: a hit returns the key's last
// value, the budget holds, and the shards' books balance (the dead bytes are the arena's
// bytes outside the live entries; every live entry's header names its slot and room).
// Compactions and evictions happen many times over.
func TestRowCacheModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		c := newRowCache(64<<10, nil)
		model := map[string][]byte{}
		rng := seed
		next := func(n uint64) uint64 {
			rng = rng*6364136223846793005 + 1442695040888963407
			return (rng >> 33) % n
		}
		var hits int
		for step := range 40000 {
			k := fmt.Appendf(nil, "key%04d", next(600))
			switch op := next(10); {
			case op < 6:
				v := bytes.Repeat([]byte{byte('a' + step%26)}, int(40+next(60)))
				c.set(k, v, false)
				model[string(k)] = v
			case op < 7:
				c.set(k, nil, true)
				delete(model, string(k))
			default:
				v, ok, seq := c.get(k)
				want, in := model[string(k)]
				if ok {
					hits++
					if !in || !bytes.Equal(v, want) {
						t.Fatalf("seed %d step %d: %s reads %q from the cache, want %q (present %v)", seed, step, k, v, want, in)
					}
				} else if in {
					c.fill(k, want, seq)
				}
			}
			s, _ := c.shard(k)
			checkRowShard(t, s)
		}
		var compactions, inPlace uint64
		for i := range c.shards {
			checkRowShard(t, &c.shards[i])
			compactions += c.shards[i].compactions
			inPlace += c.shards[i].inPlace
		}
		if hits < 5000 || compactions < 100 || inPlace < 1000 {
			t.Fatalf("seed %d: %d hits, %d compactions, %d rewrites in place: the test exercised too little", seed, hits, compactions, inPlace)
		}
		c.close()
	}
}

// checkRowShard checks a shard's books: bytes within budget and equal to its entries',
// dead bytes the arena's bytes outside live entries, and headers that name their slots.
func checkRowShard(t *testing.T, s *rowShard) {
	t.Helper()
	if s.bytes > s.budget {
		t.Fatalf("shard holds %d bytes, budget %d", s.bytes, s.budget)
	}
	var bytesHeld int64
	live := 0
	for i := range s.slots {
		sl := &s.slots[i]
		if !sl.used {
			continue
		}
		if j, ok := s.idx[sl.hash]; !ok || j != int32(i) {
			t.Fatalf("slot %d is used but not indexed", i)
		}
		if sl.klen+sl.vlen > sl.room {
			t.Fatalf("slot %d holds %d+%d bytes in a room of %d", i, sl.klen, sl.vlen, sl.room)
		}
		if got := binary.LittleEndian.Uint32(s.arena[sl.off:]); got != uint32(i) {
			t.Fatalf("slot %d's header names slot %d", i, got)
		}
		if got := binary.LittleEndian.Uint32(s.arena[sl.off+4:]); got != sl.room {
			t.Fatalf("slot %d's header gives room %d, the slot %d", i, got, sl.room)
		}
		bytesHeld += entryBytes(int(sl.klen), int(sl.vlen))
		live += rowHeader + int(sl.klen+sl.vlen)
	}
	if len(s.idx) != 0 && bytesHeld != s.bytes {
		t.Fatalf("shard counts %d bytes, its entries hold %d", s.bytes, bytesHeld)
	}
	if s.dead != len(s.arena)-live {
		t.Fatalf("shard counts %d dead bytes, its arena has %d outside live entries", s.dead, len(s.arena)-live)
	}
}

// benchRowKeys returns n data keys of Redis strings, as the server stores them.
func benchRowKeys(n int) [][]byte {
	ks := make([][]byte, n)
	for i := range ks {
		ks[i] = fmt.Appendf(nil, "d\x00redis\x00key:%012d", i)
	}
	return ks
}
