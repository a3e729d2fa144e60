package core

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/quorumkv/quorumkv/internal/merkle"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
)

// Hash trees: one incremental merkle tree per (partition, n) over this node's stored data,
// n being the replica count of the key's bucket (Riak's per-"n_val" trees): the replicas
// of a partition for buckets of n = 5 are five nodes, for n = 1 one, so each tree is
// exchanged with exactly the nodes that should hold the same keys. Every data write
// updates its tree in O(1) (writeData). Trees are rebuilt from a store snapshot at start
// and every TreeRebuildInterval, a chunk of keys per step so the node keeps serving;
// writes during a rebuild also go to delta trees, and the rebuilt tree is the snapshot's
// combined with the delta. A rebuild that finds a live tree differing from the data counts
// drift (silent corruption, a bug, or a bucket whose n changed).

type treeID struct{ p, n int }

type treeSet struct {
	segments int
	pbits    int
	live     map[treeID]*merkle.Tree
	ready    bool // the first rebuild finished: the trees describe the data
	rb       *rebuild
	rebuilds int64
	drift    int64
	progress float64
	scanned  int64
	nextAt   time.Duration // the next scheduled rebuild
}

type rebuild struct {
	snap    storage.Snapshot
	cursor  []byte
	fresh   map[treeID]*merkle.Tree
	delta   map[treeID]*merkle.Tree
	scanned int64
	started time.Duration
}

func newTreeSet(partitions, segments int) (*treeSet, error) {
	if _, err := merkle.New(segments); err != nil {
		return nil, fmt.Errorf("core: %w", err)
	}
	pbits := bits.TrailingZeros(uint(partitions))
	if pbits+bits.TrailingZeros(uint(segments)) > 32 {
		return nil, fmt.Errorf("core: %d partitions × %d segments is over 2^32: lower the segments", partitions, segments)
	}
	return &treeSet{segments: segments, pbits: pbits, live: map[treeID]*merkle.Tree{}}, nil
}

func (ts *treeSet) newTree() *merkle.Tree {
	t, _ := merkle.New(ts.segments) // size checked in newTreeSet
	return t
}

// locate gives a key's partition and segment.
func (ts *treeSet) locate(bucket, key string) (int, int) {
	h := ring.KeyHash(bucket, key)
	return int(h >> (64 - uint(ts.pbits))), merkle.SegmentOf(h, ts.pbits, ts.segments)
}

func itemOf(bucket, key string, raw []byte) uint64 {
	if raw == nil {
		return 0
	}
	return merkle.ItemHash(bucket, key, merkle.Digest(raw))
}

func updateIn(m map[treeID]*merkle.Tree, id treeID, seg int, old, new uint64, mk func() *merkle.Tree) {
	t := m[id]
	if t == nil {
		t = mk()
		m[id] = t
	}
	t.Update(seg, old, new)
}

// update records that (bucket, key) of a bucket with n replicas changed from oldRaw to
// newRaw (nil: absent).
func (ts *treeSet) update(bucket, key string, n int, oldRaw, newRaw []byte) {
	p, seg := ts.locate(bucket, key)
	old, new := itemOf(bucket, key, oldRaw), itemOf(bucket, key, newRaw)
	if old == new {
		return
	}
	id := treeID{p, n}
	updateIn(ts.live, id, seg, old, new, ts.newTree)
	if ts.rb != nil {
		updateIn(ts.rb.delta, id, seg, old, new, ts.newTree)
	}
}

func (ts *treeSet) tree(id treeID) *merkle.Tree {
	if t := ts.live[id]; t != nil {
		return t
	}
	return ts.newTree()
}

func (ts *treeSet) shape() (branches, perBranch int) {
	t := ts.newTree()
	return t.Branches(), t.SegmentsPerBranch()
}

// ids lists the trees holding data, in order.
func (ts *treeSet) ids() []treeID {
	out := make([]treeID, 0, len(ts.live))
	for id, t := range ts.live {
		if t.Root() != 0 {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, compareTreeIDs)
	return out
}

// segmentRange is the store key range holding partition p's segment seg.
func (ts *treeSet) segmentRange(p, seg int) (lo, hi []byte) {
	sbits := bits.TrailingZeros(uint(ts.segments))
	shift := uint(32 - ts.pbits - sbits)
	start := uint64(p)<<uint(32-ts.pbits) | uint64(seg)<<shift
	end := start + 1<<shift
	lo = binary.BigEndian.AppendUint32([]byte(PrefixData), uint32(start))
	if end >= 1<<32 {
		return lo, []byte{PrefixData[0] + 1}
	}
	return lo, binary.BigEndian.AppendUint32([]byte(PrefixData), uint32(end))
}

// hashPrefix is the key-hash prefix of a data key, as a number (2^32 past the last).
func hashPrefix(k []byte) uint64 {
	if len(k) < len(PrefixData)+4 {
		return 1 << 32
	}
	return uint64(binary.BigEndian.Uint32(k[len(PrefixData):]))
}

// memoryBytes is what the trees hold.
func (ts *treeSet) memoryBytes() int {
	total := 0
	for _, t := range ts.live {
		total += t.MemoryBytes()
	}
	if ts.rb != nil {
		for _, t := range ts.rb.delta {
			total += t.MemoryBytes()
		}
		for _, t := range ts.rb.fresh {
			total += t.MemoryBytes()
		}
	}
	return total
}

// startRebuild opens a snapshot and starts recording writes into delta trees.
func (c *Core) startRebuild() {
	ts := c.trees
	if ts == nil || ts.rb != nil {
		return
	}
	snap, err := c.deps.Store.NewSnapshot()
	if err != nil {
		c.log(LevelError, "hash tree rebuild could not start; retrying in a minute", "err", err)
		ts.nextAt = c.now.Mono + time.Minute
		c.at(ts.nextAt, timerRebuild, 0)
		return
	}
	lo, _ := c.dataRange()
	ts.rb = &rebuild{snap: snap, cursor: lo, fresh: map[treeID]*merkle.Tree{}, delta: map[treeID]*merkle.Tree{}, started: c.now.Mono}
	ts.progress = 0
	c.at(c.now.Mono, timerRebuild, 0)
}

// rebuildStep scans the next chunk of the snapshot, or finishes the rebuild.
func (c *Core) rebuildStep() {
	ts := c.trees
	if ts == nil {
		return
	}
	if ts.rb == nil {
		if c.now.Mono >= ts.nextAt {
			c.startRebuild()
		}
		return
	}
	rb := ts.rb
	n := 0
	var last []byte
	var bad int
	lo, hi := c.dataRange()
	span := float64(hashPrefix(hi) - hashPrefix(lo))
	err := rb.snap.Scan(rb.cursor, hi, func(k, v []byte) bool {
		if n >= c.cfg.RebuildChunk {
			return false
		}
		n++
		last = append(last[:0], k...)
		bucket, key, ok := ParseDataKey(k)
		if !ok {
			bad++
			return true
		}
		p, seg := ts.locate(bucket, key)
		updateIn(rb.fresh, treeID{p, c.deps.Buckets.Bucket(bucket).N}, seg, 0, itemOf(bucket, key, v), ts.newTree)
		ts.progress = float64(hashPrefix(k)-hashPrefix(lo)) / span
		return true
	})
	if bad > 0 {
		c.log(LevelError, "tree rebuild: malformed data keys skipped", "keys", bad)
	}
	rb.scanned += int64(n)
	ts.scanned = rb.scanned
	if err != nil {
		_ = rb.snap.Close()
		ts.rb = nil
		c.log(LevelError, "hash tree rebuild failed; retrying in a minute", "err", err)
		ts.nextAt = c.now.Mono + time.Minute
		c.at(ts.nextAt, timerRebuild, 0)
		return
	}
	if n == c.cfg.RebuildChunk {
		rb.cursor = append(last, 0) // the next key after the last one scanned
		c.at(c.now.Mono, timerRebuild, 0)
		return
	}
	// Done: the snapshot's trees, combined with what changed since, replace the live ones.
	_ = rb.snap.Close()
	for id, d := range rb.delta {
		t := rb.fresh[id]
		if t == nil {
			t = ts.newTree()
			rb.fresh[id] = t
		}
		_ = t.Combine(d)
	}
	drifted := 0
	if ts.ready {
		for _, id := range unionIDs(ts.live, rb.fresh) {
			if !ts.tree(id).Equal(treeOr(rb.fresh[id], ts)) {
				drifted++
			}
		}
	}
	ts.live, ts.rb = rb.fresh, nil
	ts.progress = 1
	ts.rebuilds++
	ts.drift += int64(drifted)
	first := !ts.ready
	ts.ready = true
	if drifted > 0 {
		c.log(LevelWarn, "hash tree rebuild found trees that had drifted from the data; anti-entropy will repair what differs", "trees", drifted)
	}
	c.log(LevelInfo, "hash trees rebuilt", "keys", rb.scanned, "elapsed", c.now.Mono-rb.started, "first", first)
	ts.nextAt = c.now.Mono + c.cfg.TreeRebuildInterval
	c.at(ts.nextAt, timerRebuild, 0)
}

func treeOr(t *merkle.Tree, ts *treeSet) *merkle.Tree {
	if t == nil {
		return ts.newTree()
	}
	return t
}

func unionIDs(a, b map[treeID]*merkle.Tree) []treeID {
	seen := map[treeID]bool{}
	var out []treeID
	for _, m := range []map[treeID]*merkle.Tree{a, b} {
		for id := range m {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	slices.SortFunc(out, compareTreeIDs)
	return out
}

// TreeInfo describes the hash trees.
type TreeInfo struct {
	Enabled  bool
	Ready    bool
	Progress float64 // of the running (or last) rebuild, 0..1
	Rebuilds int64
	Drift    int64
	Segments int
	Bytes    int
	// Roots of the trees holding data.
	Roots []TreeRoot
}

// TreeRoot is one tree's root hash.
type TreeRoot struct {
	Partition, N int
	Root         uint64
}

// Trees describes the hash trees; with roots, the root of every tree holding data too
// (which costs a pass over every tree: metrics leave it out).
func (c *Core) Trees(roots bool) TreeInfo {
	ts := c.trees
	if ts == nil {
		return TreeInfo{}
	}
	ti := TreeInfo{Enabled: true, Ready: ts.ready, Progress: ts.progress, Rebuilds: ts.rebuilds, Drift: ts.drift,
		Segments: ts.segments, Bytes: ts.memoryBytes()}
	if roots {
		for _, id := range ts.ids() {
			ti.Roots = append(ti.Roots, TreeRoot{Partition: id.p, N: id.n, Root: ts.live[id].Root()})
		}
	}
	return ti
}

// compareTreeIDs orders trees by partition, then n.
func compareTreeIDs(a, b treeID) int {
	if a.p != b.p {
		return a.p - b.p
	}
	return a.n - b.n
}
