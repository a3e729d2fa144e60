package storage

import "sync"

// recent is the Pebble store's cache of recently written keys: what each was last set to
// (or that it was deleted), so that the read-before-write of every replicated write and
// the reads that follow a write find the value in a hash map instead of a memtable seek.
// Profiles of a 3-node cluster under quorum writes put a third of all CPU in Pebble's
// point reads, nearly all of it in the memtable skiplist's seek (cache misses).
//
// Model: two generations of maps, like a two-memtable LSM in miniature. Writes go into the
// current one; when it holds more than the byte budget it becomes the old one and the one
// before is dropped, so memory stays under twice the budget and eviction costs nothing
// per write. A lookup checks the current generation, then the old.
//
// Invariant: an entry holds the value (or absence) of the latest committed write to its
// key among those recorded; each carries the Pebble sequence number of its write, and a
// write never replaces an entry with a higher one, so two batches committing the same
// key concurrently leave the later one's value whatever order they record in. A write
// recorded with a sequence number at or below the highest of a dropped generation may
// be older than a dropped entry of its key: it is not recorded, and its key is forgotten
// (a real concern only for a writer stalled across two generations of writes). Only
// committed writes are recorded, after their commit; a failed commit clears the cache.
// Reads never fill it (a read racing a write could otherwise put back a value the write
// replaced).
type recent struct {
	budget int // bytes per generation; 0 disables the cache

	mu       sync.Mutex
	cur, old map[string]recentEntry
	curBytes int
	// curMax and oldMax are the highest sequence numbers in each generation; floor the
	// highest of any dropped generation.
	curMax, oldMax, floor uint64
	hits                  uint64
	misses                uint64
}

type recentEntry struct {
	val     []byte // nil with deleted
	seq     uint64
	deleted bool
}

// recentOverhead approximates a map entry's bytes besides its key and value.
const recentOverhead = 64

func newRecent(budget int) *recent {
	return &recent{budget: budget, cur: map[string]recentEntry{}, old: map[string]recentEntry{}}
}

// get reports what the cache knows of key: a copy of its value, absence (deleted), or
// nothing (ok false).
func (r *recent) get(key []byte) (val []byte, deleted, ok bool) {
	if r.budget == 0 {
		return nil, false, false
	}
	r.mu.Lock()
	e, ok := r.cur[string(key)]
	if !ok {
		e, ok = r.old[string(key)]
	}
	if ok {
		r.hits++
		if !e.deleted {
			val = make([]byte, len(e.val))
			copy(val, e.val)
		}
	} else {
		r.misses++
	}
	r.mu.Unlock()
	return val, e.deleted, ok
}

// record notes committed writes: ops[i] was written with sequence number seq+i.
func (r *recent) record(ops []Op, seq uint64) {
	if r.budget == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, op := range ops {
		s := seq + uint64(i)
		k := string(op.Key)
		if s <= r.floor {
			if e, ok := r.cur[k]; ok {
				r.curBytes -= len(k) + len(e.val) + recentOverhead
				delete(r.cur, k)
			}
			delete(r.old, k)
			continue
		}
		if e, ok := r.cur[k]; ok && e.seq > s {
			continue
		}
		if e, ok := r.old[k]; ok && e.seq > s {
			continue
		}
		e := recentEntry{seq: s, deleted: op.Delete}
		if !op.Delete {
			e.val = append([]byte(nil), op.Value...)
		}
		if prev, ok := r.cur[k]; ok {
			r.curBytes -= len(k) + len(prev.val) + recentOverhead
		}
		r.cur[k] = e
		r.curBytes += len(k) + len(e.val) + recentOverhead
		r.curMax = max(r.curMax, s)
		if r.curBytes > r.budget {
			r.floor = max(r.floor, r.oldMax)
			r.old, r.oldMax = r.cur, r.curMax
			r.cur, r.curBytes, r.curMax = make(map[string]recentEntry, len(r.old)), 0, 0
		}
	}
}

// reset forgets everything (after a failed commit, whose effect is unknown).
func (r *recent) reset() {
	r.mu.Lock()
	r.floor = max(r.floor, r.curMax, r.oldMax)
	r.cur, r.old, r.curBytes, r.curMax, r.oldMax = map[string]recentEntry{}, map[string]recentEntry{}, 0, 0, 0
	r.mu.Unlock()
}

// stats returns the lookups answered and not answered so far.
func (r *recent) stats() (hits, misses uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits, r.misses
}
