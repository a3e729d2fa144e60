package storage

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// keyFilter is a Bloom filter of every key the store may hold (among the keys it covers),
// so that a point read of a key that was never written answers "absent" without Pebble.
// Every write to the store reads the key first; for a new key that read costs Pebble a
// seek in each memtable (a skiplist of 16 MiB, whose pointer chasing measured 10-15 µs a
// read in a loaded 3-node cluster) and a filter probe per table. Here it costs one cache
// line.
//
// Model: a chain of split-block Bloom filters (blocks of one 64-byte cache line, eight
// 64-bit words, one bit set per word per key), each sized for twice the keys of the one
// before; keys go into the newest, a lookup asks every one. At open, before its scan, the
// store adds a part sized for the keys its tables hold (presize), so the chain stays
// short. Nothing is ever removed: a deleted key stays "maybe present" (a false positive
// costs the Pebble read it would have cost anyway).
//
// Invariants:
//   - no false negatives once ready: a key is added before any write of it is applied to
//     Pebble (writers add first, then write), and the scan at open adds every key Pebble
//     held before it began; writes that race the scan were added by their writers;
//   - before the scan has finished (ready false) the filter answers nothing: every read
//     goes to Pebble;
//   - readers take no lock: bits are set with atomic OR and read with atomic loads, and the
//     chain is replaced as a whole (copy on grow).
type keyFilter struct {
	covers func(key []byte) bool // which keys it tracks; nil: all

	ready atomic.Bool
	parts atomic.Pointer[[]*bloomPart] // oldest first

	growMu sync.Mutex // serializes growing the chain

	negatives atomic.Uint64 // reads answered "absent" here
}

// bloomPart is one split-block Bloom filter.
type bloomPart struct {
	blocks []bloomBlock
	limit  int64        // keys it is sized for
	added  atomic.Int64 // keys added
}

type bloomBlock [8]uint64

const (
	// keyFilterBitsPerKey: 12 bits a key, eight of them set: about 0.5% false positives
	// per part when full.
	keyFilterBitsPerKey = 12
	// keyFilterFirstKeys sizes the first part (64K keys, 96 KiB); each next one doubles.
	keyFilterFirstKeys = 64 << 10
)

// bloomSalt are odd constants that pick one bit per word from the low half of the hash
// (Parquet's split-block filter does the same with 32-bit words).
var bloomSalt = [8]uint64{
	0x47b6137b44974d91, 0x8824ad5ba2b7289d, 0x705495c72df1424b, 0x9efc49475c6bfb31,
	0x2b5e1d4f7a3c9e85, 0x6c8e9cf570932bd5, 0x5bd1e9955bd1e995, 0xc2b2ae3d27d4eb4f,
}

func newKeyFilter(covers func(key []byte) bool) *keyFilter {
	f := &keyFilter{covers: covers}
	parts := []*bloomPart{newBloomPart(keyFilterFirstKeys)}
	f.parts.Store(&parts)
	return f
}

func newBloomPart(keys int64) *bloomPart {
	nb := (keys*keyFilterBitsPerKey + 511) / 512
	return &bloomPart{blocks: make([]bloomBlock, nb), limit: keys}
}

func (f *keyFilter) tracks(key []byte) bool { return f.covers == nil || f.covers(key) }

// add records that key may be present. Safe for concurrent use. A key the filter already
// answers "maybe" for is not added again, so rewriting the same keys does not grow it.
func (f *keyFilter) add(key []byte) {
	h := xxhash.Sum64(key)
	parts := *f.parts.Load()
	for _, p := range parts {
		if p.test(h) {
			return
		}
	}
	p := parts[len(parts)-1]
	p.set(h)
	if p.added.Add(1) == p.limit {
		f.grow(p)
	}
}

// grow appends a part twice the size of full, the newest, unless another add did.
func (f *keyFilter) grow(full *bloomPart) {
	f.growMu.Lock()
	defer f.growMu.Unlock()
	parts := *f.parts.Load()
	if parts[len(parts)-1] != full {
		return
	}
	next := append(parts[:len(parts):len(parts)], newBloomPart(2*full.limit))
	f.parts.Store(&next)
}

// presize makes the newest part one sized for keys more keys, when the store about to be
// scanned holds that many: the scan then fills one part instead of a chain of doubling ones
// (each a cache line more for every lookup, and their false positives adding up).
func (f *keyFilter) presize(keys int64) {
	f.growMu.Lock()
	defer f.growMu.Unlock()
	parts := *f.parts.Load()
	if keys <= parts[len(parts)-1].limit {
		return
	}
	next := append(parts[:len(parts):len(parts)], newBloomPart(keys))
	f.parts.Store(&next)
}

// mayContain reports whether key may be present: false means it was never added.
func (f *keyFilter) mayContain(key []byte) bool {
	h := xxhash.Sum64(key)
	for _, p := range *f.parts.Load() {
		if p.test(h) {
			return true
		}
	}
	return false
}

// absent reports whether a read of key may answer "absent" without Pebble.
func (f *keyFilter) absent(key []byte) bool {
	if !f.ready.Load() || !f.tracks(key) || f.mayContain(key) {
		return false
	}
	f.negatives.Add(1)
	return true
}

func (p *bloomPart) block(h uint64) *bloomBlock {
	// The high half picks the block (Lemire's multiply-shift instead of a modulo).
	return &p.blocks[(h>>32)*uint64(len(p.blocks))>>32]
}

func (p *bloomPart) set(h uint64) {
	b := p.block(h)
	lo := uint64(uint32(h))
	for i := range b {
		atomic.OrUint64(&b[i], 1<<((lo*bloomSalt[i])>>58))
	}
}

func (p *bloomPart) test(h uint64) bool {
	b := p.block(h)
	lo := uint64(uint32(h))
	for i := range b {
		if atomic.LoadUint64(&b[i])&(1<<((lo*bloomSalt[i])>>58)) == 0 {
			return false
		}
	}
	return true
}

// KeyFilterStats describes the key filter.
type KeyFilterStats struct {
	Ready     bool   // the scan at open has finished: the filter answers reads
	Negatives uint64 // reads answered "absent" without Pebble
	Keys      int64  // distinct keys added (about: a false positive is not added)
	Bytes     int64  // the filter's size
}

func (f *keyFilter) stats() KeyFilterStats {
	st := KeyFilterStats{Ready: f.ready.Load(), Negatives: f.negatives.Load()}
	for _, p := range *f.parts.Load() {
		st.Keys += p.added.Load()
		st.Bytes += int64(len(p.blocks)) * 64
	}
	return st
}
