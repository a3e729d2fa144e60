package storage

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// rowCache keeps recently read and written values of a Pebble store in memory, by key, so
// that a point read of a hot key skips Pebble's memtable and table seeks (RocksDB's row
// cache). Every write to the store passes through it; it never holds a value the store
// does not.
//
// Model: 64 shards by key hash, each a CLOCK cache within its share of the budget: an
// entry read since the hand last passed it gets a second chance, the first one not read is
// evicted. (Two generations of maps, tried first, held 60% of their budget on average and
// answered 59% of a uniform 100,000-key workload that fits in it.) A key is admitted when
// a read finds it in Pebble, and when it is written while its shard has room to spare; a
// write never evicts to make room, and keeps the keys cached current. So keys written
// once and never read again (a bulk load, a stream of new keys) fill at most the free room
// and then cost the cache nothing more, while a key written and soon read or written again
// (the replicas' read before each write of a key created a moment ago) is found. Admitting
// every write, evicting as needed, was measured and dropped: on a bulk load of 1M keys it
// cost 10-20% more CPU per key in the eviction churn (docs/benchmarks.md). A value larger
// than a quarter of a shard's share is not kept.
//
// Coherence, with concurrent readers and writers:
//   - Writers serialize their cache updates on wmu. An unsynced write applies to Pebble and
//     updates the cache under wmu, so two writers of one key leave the cache as Pebble's
//     last write; a synced write (which waits for an fsync and must not hold wmu meanwhile)
//     applies first and then invalidates its keys under wmu, after any unsynced write that
//     raced it has updated them.
//   - Every update or invalidation bumps its shard's sequence number. A reader that missed
//     notes the number before it reads Pebble and fills the cache only if it has not moved
//     since: a value read before a write never replaces the write's.
type rowCache struct {
	wmu    sync.Mutex
	shards [rowCacheShards]rowShard
	filter func(key []byte) bool // which keys are cached; nil: all

	hits, misses atomic.Uint64
}

const (
	rowCacheShards = 64
	// rowEntryOverhead approximates what an entry costs beyond its key and value bytes:
	// its index entry and slot, and the arena's room for dropped entries not yet reclaimed.
	rowEntryOverhead = 80
)

// rowShard holds its entries without a single pointer, so that the garbage collector,
// which marks the whole live heap every cycle, never walks them: keys and values lie back
// to back in one byte arena, the slots and the index hold offsets and hashes. (With a
// string and a slice per entry, a full 32 MiB cache made every collection mark 100,000
// more objects: 25% more CPU per key on a bulk load.)
//
// Arena: each entry is a header (its slot and its room, rowHeader bytes) and then its key
// and value, in room bytes at least as long as both. A rewrite whose value fits the room
// goes in place (a replica's rewrite of a key it holds: values of one key keep about their
// size); one that does not leaves the old bytes dead and appends. When the arena is full,
// the shard compacts (slides the live entries down, in one walk of the arena) only once
// the dead bytes are a sixteenth of it, and evicts otherwise. (Compacting whenever anything
// was dead, with a sort of the live entries by offset, made every rewrite in a full cache
// compact the whole shard for one entry's bytes: 20% of a replica's CPU under redis-
// benchmark's SETs, BenchmarkRowCacheSetFull.)
type rowShard struct {
	mu                   sync.Mutex
	seq                  uint64           // bumped by every write to the shard's keys
	idx                  map[uint64]int32 // key hash → slot
	slots                []rowSlot
	free                 []int32 // unused slots
	hand                 int
	bytes                int64 // entryBytes of the entries held
	budget               int64
	arena                []byte // the entries' keys and values (newArena), nil until the first put
	dead                 int    // arena bytes outside the live entries' headers, keys and values, reclaimed by compact
	compactions, inPlace uint64 // counts, for tests
	release              func() // returns the arena's memory
}

// arenaBytes is the size of the shard's arena: three quarters of its budget, which counts
// rowEntryOverhead per entry beside the keys and values (100-byte objects take about 70%
// of their entries' count), and at least room for the largest entry kept.
func (s *rowShard) arenaBytes() int64 { return max(s.budget*3/4, s.budget/4+1) }

// rowHeader is the size of an entry's header in the arena: its slot and its room (uint32s).
const rowHeader = 8

// rowSlot is a cached value: its header at arena[off:], then key and value, klen and vlen
// bytes, in room bytes.
type rowSlot struct {
	hash       uint64
	off        uint32
	klen, vlen uint32
	room       uint32
	ref        bool // read since the hand last passed
	used       bool
}

func newRowCache(bytes int64, filter func([]byte) bool) *rowCache {
	c := &rowCache{filter: filter}
	for i := range c.shards {
		s := &c.shards[i]
		s.idx = map[uint64]int32{}
		s.budget = max(bytes/rowCacheShards, 1)
	}
	return c
}

func (c *rowCache) caches(key []byte) bool { return c.filter == nil || c.filter(key) }

// shard returns key's shard and hash.
func (c *rowCache) shard(key []byte) (*rowShard, uint64) {
	h := xxhash.Sum64(key)
	return &c.shards[h%rowCacheShards], h
}

// get returns a copy of the cached value of key; ok false is a miss, with the shard's seq
// to pass to fill.
func (c *rowCache) get(key []byte) (val []byte, ok bool, seq uint64) {
	s, h := c.shard(key)
	s.mu.Lock()
	i, hit := s.find(key, h)
	if hit {
		sl := &s.slots[i]
		sl.ref = true
		val = clonePlain(s.value(sl))
	}
	seq = s.seq
	s.mu.Unlock()
	if !hit {
		c.misses.Add(1)
		return nil, false, seq
	}
	c.hits.Add(1)
	return val, true, seq
}

// fill caches the value a read found, unless a write to the shard came between the read's
// seq and now.
func (c *rowCache) fill(key, val []byte, seq uint64) {
	s, h := c.shard(key)
	s.mu.Lock()
	if s.seq == seq {
		i, had := s.find(key, h)
		s.put(key, val, h, i, had)
	}
	s.mu.Unlock()
}

// set records a write of key (a value, or a delete): a cached key gets the new value, or
// leaves the cache; an uncached key is admitted if its shard has room to spare. The caller
// holds wmu.
func (c *rowCache) set(key, val []byte, deleted bool) {
	s, h := c.shard(key)
	s.mu.Lock()
	s.seq++
	if i, ok := s.find(key, h); ok {
		if deleted {
			s.drop(i)
		} else {
			s.put(key, val, h, i, true)
		}
	} else if !deleted && s.bytes+entryBytes(len(key), len(val)) <= s.budget {
		s.put(key, val, h, i, false) // room to spare: a write admits its key, evicting nothing
	}
	s.mu.Unlock()
}

// invalidate forgets key. The caller holds wmu.
func (c *rowCache) invalidate(key []byte) {
	s, h := c.shard(key)
	s.mu.Lock()
	s.seq++
	if i, ok := s.find(key, h); ok {
		s.drop(i)
	}
	s.mu.Unlock()
}

// find returns the slot holding key (hash h), or false and the slot of another key of the
// same hash (-1 if none). s.mu held.
func (s *rowShard) find(key []byte, h uint64) (int32, bool) {
	i, ok := s.idx[h]
	if !ok {
		return -1, false
	}
	sl := &s.slots[i]
	k := sl.off + rowHeader
	return i, bytes.Equal(s.arena[k:k+sl.klen], key)
}

func (s *rowShard) value(sl *rowSlot) []byte {
	v := sl.off + rowHeader + sl.klen
	return s.arena[v : v+sl.vlen]
}

// put stores a copy of val under key (hash h), evicting as the budget needs; i and had
// are what find(key, h) returned. s.mu held.
func (s *rowShard) put(key, val []byte, h uint64, i int32, had bool) {
	n := entryBytes(len(key), len(val))
	if had && n <= s.budget/4 && uint32(len(val)) <= s.slots[i].room-s.slots[i].klen {
		// In place: the new value fits the entry's room.
		sl := &s.slots[i]
		s.bytes += n - entryBytes(int(sl.klen), int(sl.vlen))
		s.dead += int(sl.vlen) - len(val)
		sl.vlen, sl.ref = uint32(len(val)), true
		s.inPlace++
		copy(s.value(sl), val)
		for s.bytes > s.budget {
			s.evict() // the value grew past the budget: another entry (or this one) leaves
		}
		return
	}
	if i >= 0 {
		// The key's older value, or (64-bit hashes colliding) another key's: out.
		s.drop(i)
	}
	if n > s.budget/4 {
		return // too large to keep
	}
	for s.bytes+n > s.budget && len(s.idx) > 0 {
		s.evict()
	}
	need := rowHeader + len(key) + len(val)
	if s.arena == nil {
		// Its whole size at once, outside the Go heap (newArena); growing by doubling
		// would leave the old arrays as garbage, a cache's worth of RSS until the collector
		// and the scavenger return it.
		b, release := newArena(int(s.arenaBytes()))
		s.arena, s.release = b[:0], release
	}
	for len(s.arena)+need > cap(s.arena) {
		// Reclaim the dead bytes once they are worth a walk of the arena; evict otherwise
		// (small values: their bytes are under the budget, which counts an overhead per
		// entry beside them, but not under the arena's share of it).
		if s.dead > 0 && (s.dead >= cap(s.arena)/16 || len(s.idx) == 0) {
			s.compact()
			continue
		}
		if len(s.idx) == 0 {
			return // never: need is at most a quarter of the budget
		}
		s.evict()
	}
	// A new entry waits for a read to earn its second chance; a key rewritten keeps one.
	room := uint32(len(key) + len(val))
	off := uint32(len(s.arena))
	if k := len(s.free); k > 0 {
		i = s.free[k-1]
		s.free = s.free[:k-1]
	} else {
		i = int32(len(s.slots))
		s.slots = append(s.slots, rowSlot{})
	}
	s.slots[i] = rowSlot{hash: h, off: off, klen: uint32(len(key)), vlen: uint32(len(val)), room: room, ref: had, used: true}
	s.arena = binary.LittleEndian.AppendUint32(s.arena, uint32(i))
	s.arena = binary.LittleEndian.AppendUint32(s.arena, room)
	s.arena = append(append(s.arena, key...), val...)
	s.idx[h] = i
	s.bytes += n
}

// compact slides the live entries down, in arena order, leaving out the dropped ones and
// the unused room of the others: one walk of the arena, by the entries' headers. An
// entry is live when its slot is used and lies at its offset (a dropped entry's slot may
// have gone to a newer entry, elsewhere). s.mu held.
func (s *rowShard) compact() {
	le := binary.LittleEndian
	w := uint32(0)
	for r := uint32(0); int(r) < len(s.arena); {
		i, room := le.Uint32(s.arena[r:]), le.Uint32(s.arena[r+4:])
		if int(i) < len(s.slots) && s.slots[i].used && s.slots[i].off == r {
			sl := &s.slots[i]
			size := sl.klen + sl.vlen
			copy(s.arena[w+rowHeader:], s.arena[r+rowHeader:r+rowHeader+size])
			le.PutUint32(s.arena[w:], i)
			le.PutUint32(s.arena[w+4:], size)
			sl.off, sl.room = w, size
			w += rowHeader + size
		}
		r += rowHeader + room
	}
	s.arena, s.dead = s.arena[:w], 0
	s.compactions++
}

// evict drops the first entry past the hand not read since the hand last passed it,
// clearing the marks of those it passes. s.mu held, and at least one entry cached.
func (s *rowShard) evict() {
	for {
		if s.hand >= len(s.slots) {
			s.hand = 0
		}
		i := s.hand
		s.hand++
		sl := &s.slots[i]
		switch {
		case !sl.used:
		case sl.ref:
			sl.ref = false
		default:
			s.drop(int32(i))
			return
		}
	}
}

// drop removes the entry in slot i. s.mu held.
func (s *rowShard) drop(i int32) {
	sl := &s.slots[i]
	delete(s.idx, sl.hash)
	s.bytes -= entryBytes(int(sl.klen), int(sl.vlen))
	s.dead += rowHeader + int(sl.klen+sl.vlen)
	*sl = rowSlot{}
	s.free = append(s.free, i)
	if len(s.idx) == 0 {
		s.arena, s.dead = s.arena[:0], 0
	}
}

// close returns the arenas' memory. Nothing may use the cache afterwards.
func (c *rowCache) close() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if s.release != nil {
			s.release()
		}
		s.arena, s.release, s.idx, s.slots, s.free = nil, nil, map[uint64]int32{}, nil, nil
		s.bytes, s.dead, s.hand = 0, 0, 0
		s.mu.Unlock()
	}
}

func entryBytes(key, val int) int64 { return int64(key + val + rowEntryOverhead) }

// clonePlain copies b; an empty value stays a non-nil empty slice.
func clonePlain(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }

// RowCacheStats are the row cache's counters since the store opened, and what it holds.
type RowCacheStats struct {
	Hits, Misses uint64
	Entries      int   // keys cached
	Bytes        int64 // as the cache counts them (keys, values and rowEntryOverhead each)
}

func (c *rowCache) stats() RowCacheStats {
	st := RowCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += len(s.idx)
		st.Bytes += s.bytes
		s.mu.Unlock()
	}
	return st
}
