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
// Model: 64 shards by key hash, each two generations of maps (entries move from the old
// generation to the current one when read; when the current one reaches half the shard's
// budget it becomes the old one and the old one is dropped), so the cache holds at most
// its budget and evicts what was least recently touched, generation by generation. An
// entry is a value or "absent" (a read that found nothing), so the first write of a new
// key skips Pebble too.
//
// Coherence, with concurrent readers and writers:
//   - Writers serialize their cache updates on wmu. An unsynced write applies to Pebble and
//     updates the cache under wmu, so two writers of one key leave the cache as Pebble's
//     last write; a synced write (which waits for an fsync and must not hold wmu meanwhile)
//     applies first and then invalidates its keys under wmu, after any unsynced write that
//     raced it has updated them.
//   - Every update or invalidation bumps its shard's generation counter. A reader that
//     missed notes the counter before it reads Pebble and fills the cache only if the
//     counter has not moved since: a value read before a write never replaces the write's.
type rowCache struct {
	wmu    sync.Mutex
	shards [rowCacheShards]rowShard
	filter func(key []byte) bool // which keys are cached; nil: all

	hits, misses atomic.Uint64
}

const (
	rowCacheShards = 64
	// rowEntryOverhead approximates what an entry costs beyond its key and value bytes:
	// the map slot, the string and slice headers.
	rowEntryOverhead = 64
)

type rowShard struct {
	mu       sync.Mutex
	seq      uint64 // bumped by every write to the shard's keys
	cur, old map[string]rowEntry
	curBytes int64
	genBytes int64 // a generation's budget: half the shard's
}

// rowEntry is a cached value, or absent (nil val, absent true).
type rowEntry struct {
	val    []byte
	absent bool
}

func newRowCache(bytes int64, filter func([]byte) bool) *rowCache {
	c := &rowCache{filter: filter}
	for i := range c.shards {
		s := &c.shards[i]
		s.cur, s.old = map[string]rowEntry{}, map[string]rowEntry{}
		s.genBytes = max(bytes/rowCacheShards/2, 1)
	}
	return c
}

func (c *rowCache) caches(key []byte) bool { return c.filter == nil || c.filter(key) }

func (c *rowCache) shard(key []byte) *rowShard {
	return &c.shards[xxhash.Sum64(key)%rowCacheShards]
}

// get returns a copy of the cached value of key and whether it is absent; ok false is a
// miss, with the shard's seq to pass to fill.
func (c *rowCache) get(key []byte) (val []byte, absent, ok bool, seq uint64) {
	s := c.shard(key)
	s.mu.Lock()
	e, hit := s.cur[string(key)]
	if !hit {
		if e, hit = s.old[string(key)]; hit {
			delete(s.old, string(key))
			s.put(key, e)
		}
	}
	seq = s.seq
	if hit && !e.absent {
		val = append(make([]byte, 0, len(e.val)), e.val...)
	}
	s.mu.Unlock()
	if !hit {
		c.misses.Add(1)
		return nil, false, false, seq
	}
	c.hits.Add(1)
	return val, e.absent, true, seq
}

// fill caches what a read found (val, or absent), unless a write to the shard came
// between the read's seq and now.
func (c *rowCache) fill(key, val []byte, absent bool, seq uint64) {
	s := c.shard(key)
	s.mu.Lock()
	if s.seq == seq {
		s.put(key, rowEntry{val: clonePlain(val), absent: absent})
	}
	s.mu.Unlock()
}

// set records a write of key (a value, or a delete). The caller holds wmu.
func (c *rowCache) set(key, val []byte, deleted bool) {
	s := c.shard(key)
	e := rowEntry{absent: deleted}
	if !deleted {
		e.val = clonePlain(val)
	}
	s.mu.Lock()
	s.seq++
	delete(s.old, string(key))
	s.put(key, e)
	s.mu.Unlock()
}

// invalidate forgets key. The caller holds wmu.
func (c *rowCache) invalidate(key []byte) {
	s := c.shard(key)
	s.mu.Lock()
	s.seq++
	if e, ok := s.cur[string(key)]; ok {
		s.curBytes -= entryBytes(key, e)
		delete(s.cur, string(key))
	}
	delete(s.old, string(key))
	s.mu.Unlock()
}

// put stores e in the current generation, turning it into the old one when full. s.mu is
// held.
func (s *rowShard) put(key []byte, e rowEntry) {
	if prev, ok := s.cur[string(key)]; ok {
		s.curBytes -= entryBytes(key, prev)
	}
	n := entryBytes(key, e)
	if s.curBytes+n > s.genBytes && len(s.cur) > 0 {
		s.old, s.cur = s.cur, make(map[string]rowEntry, len(s.cur))
		s.curBytes = 0
	}
	s.cur[string(key)] = e
	s.curBytes += n
}

func entryBytes(key []byte, e rowEntry) int64 {
	return int64(len(key) + len(e.val) + rowEntryOverhead)
}

// clonePlain copies b; an empty value stays a non-nil empty slice.
func clonePlain(b []byte) []byte { return append(make([]byte, 0, len(b)), b...) }

// RowCacheStats are the row cache's counters since the store opened, and what it holds.
type RowCacheStats struct {
	Hits, Misses uint64
	Entries      int
	Bytes        int64 // as the cache counts them (keys, values and rowEntryOverhead each)
}

func (c *rowCache) stats() RowCacheStats {
	st := RowCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += len(s.cur) + len(s.old)
		st.Bytes += s.curBytes
		for k, e := range s.old {
			st.Bytes += int64(len(k) + len(e.val) + rowEntryOverhead)
		}
		s.mu.Unlock()
	}
	return st
}
