package storage

import (
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
// a read finds it in Pebble; writes keep the keys cached current and admit none, so keys
// written once and not read again (a bulk load, a stream of new keys) cost the cache
// nothing and take none of its room. A value larger than a quarter of a shard's share is
// not kept.
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
	// its map slot, its CLOCK slot, the string and slice headers.
	rowEntryOverhead = 80
)

type rowShard struct {
	mu     sync.Mutex
	seq    uint64 // bumped by every write to the shard's keys
	idx    map[string]int32
	slots  []rowSlot
	free   []int32 // unused slots
	hand   int
	bytes  int64
	budget int64
}

// rowSlot is a cached value.
type rowSlot struct {
	key  string
	val  []byte
	ref  bool // read since the hand last passed
	used bool
}

func newRowCache(bytes int64, filter func([]byte) bool) *rowCache {
	c := &rowCache{filter: filter}
	for i := range c.shards {
		s := &c.shards[i]
		s.idx = map[string]int32{}
		s.budget = max(bytes/rowCacheShards, 1)
	}
	return c
}

func (c *rowCache) caches(key []byte) bool { return c.filter == nil || c.filter(key) }

func (c *rowCache) shard(key []byte) *rowShard {
	return &c.shards[xxhash.Sum64(key)%rowCacheShards]
}

// get returns a copy of the cached value of key; ok false is a miss, with the shard's seq
// to pass to fill.
func (c *rowCache) get(key []byte) (val []byte, ok bool, seq uint64) {
	s := c.shard(key)
	s.mu.Lock()
	i, hit := s.idx[string(key)]
	if hit {
		sl := &s.slots[i]
		sl.ref = true
		val = clonePlain(sl.val)
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
	s := c.shard(key)
	s.mu.Lock()
	if s.seq == seq {
		s.put(key, val)
	}
	s.mu.Unlock()
}

// set records a write of key (a value, or a delete): a cached key gets the new value, or
// leaves the cache. The caller holds wmu.
func (c *rowCache) set(key, val []byte, deleted bool) {
	s := c.shard(key)
	s.mu.Lock()
	s.seq++
	if i, ok := s.idx[string(key)]; ok {
		if deleted {
			s.drop(i)
		} else {
			s.put(key, val)
		}
	}
	s.mu.Unlock()
}

// invalidate forgets key. The caller holds wmu.
func (c *rowCache) invalidate(key []byte) {
	s := c.shard(key)
	s.mu.Lock()
	s.seq++
	if i, ok := s.idx[string(key)]; ok {
		s.drop(i)
	}
	s.mu.Unlock()
}

// put stores a copy of val under key, evicting as the budget needs. s.mu held.
func (s *rowShard) put(key, val []byte) {
	n := entryBytes(len(key), len(val))
	i, ok := s.idx[string(key)]
	if n > s.budget/4 {
		if ok {
			s.drop(i) // too large to keep: forget the older value
		}
		return
	}
	if ok {
		sl := &s.slots[i]
		s.bytes += n - entryBytes(len(sl.key), len(sl.val))
		sl.val, sl.ref = clonePlain(val), true
		for s.bytes > s.budget && len(s.idx) > 1 {
			s.evict()
		}
		return
	}
	for s.bytes+n > s.budget && len(s.idx) > 0 {
		s.evict()
	}
	sl := rowSlot{key: string(key), val: clonePlain(val), used: true}
	if k := len(s.free); k > 0 {
		i = s.free[k-1]
		s.free = s.free[:k-1]
		s.slots[i] = sl
	} else {
		i = int32(len(s.slots))
		s.slots = append(s.slots, sl)
	}
	s.idx[sl.key] = i
	s.bytes += n
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
	delete(s.idx, sl.key)
	s.bytes -= entryBytes(len(sl.key), len(sl.val))
	*sl = rowSlot{}
	s.free = append(s.free, i)
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
