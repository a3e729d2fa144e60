package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/quorumkv/quorumkv/internal/core"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/internal/merkle"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
)

// treeSet keeps one incremental hash tree per partition over this node's stored data (all
// buckets). Every data write updates its partition's tree in O(1) (writeData). Trees are
// rebuilt from a store snapshot at start-up, in the background, and on a schedule, so that
// silent corruption on disk shows up as a drift between the live tree and the rebuilt one.
//
// A rebuild must see exactly the writes the snapshot misses: every data write happens on
// the node's loop (the core writes the store, then updates the tree), and the rebuild opens
// its snapshot and starts recording writes into delta trees in one step on that loop; the
// rebuilt tree is the snapshot's tree combined with the delta.
type treeSet struct {
	mu       sync.RWMutex
	parts    []partTree
	segments int
	pbits    int
	// ready: the trees describe the data (the first rebuild finished); exchanges wait.
	ready atomic.Bool
	// rebuilding is set under mu's write lock; read under its read lock.
	rebuilding bool
	// progress of the running rebuild, in 1/1e6 of the keyspace, and keys scanned.
	progress atomic.Int64
	scanned  atomic.Int64
	rebuilds atomic.Int64
	drift    atomic.Int64 // partitions whose rebuilt tree differed from the live one
}

type partTree struct {
	mu    sync.Mutex
	live  *merkle.Tree
	delta *merkle.Tree
}

func newTreeSet(partitions, segments int) (*treeSet, error) {
	if _, err := merkle.New(segments); err != nil {
		return nil, err
	}
	pbits := bits.TrailingZeros(uint(partitions))
	if pbits+bits.TrailingZeros(uint(segments)) > 32 {
		return nil, fmt.Errorf("node: %d partitions × %d segments is over 2^32: lower --aae-segments", partitions, segments)
	}
	return &treeSet{parts: make([]partTree, partitions), segments: segments, pbits: pbits}, nil
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

// Update records that (bucket, key) changed from oldRaw to newRaw (nil: absent): the core
// calls it, from the loop, right after each data write (core.Trees).
func (ts *treeSet) Update(bucket, key string, oldRaw, newRaw []byte) {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	p, seg := ts.locate(bucket, key)
	old, new := itemOf(bucket, key, oldRaw), itemOf(bucket, key, newRaw)
	if old == new {
		return
	}
	pt := &ts.parts[p]
	pt.mu.Lock()
	if pt.live == nil {
		pt.live = ts.newTree()
	}
	pt.live.Update(seg, old, new)
	if ts.rebuilding {
		if pt.delta == nil {
			pt.delta = ts.newTree()
		}
		pt.delta.Update(seg, old, new)
	}
	pt.mu.Unlock()
}

// tree returns partition p's tree (a copy of its hashes is not needed: callers read under
// the partition's lock through the accessors below).
func (ts *treeSet) branches(p int) (uint64, []uint64) {
	pt := &ts.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.live == nil {
		return 0, make([]uint64, ts.newTree().Branches())
	}
	return pt.live.Root(), pt.live.BranchHashes()
}

func (ts *treeSet) branchSegments(p int, branches []int) [][]uint64 {
	pt := &ts.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	t := pt.live
	if t == nil {
		t = ts.newTree()
	}
	out := make([][]uint64, len(branches))
	for i, b := range branches {
		out[i] = t.BranchSegments(nil, b)
	}
	return out
}

func (ts *treeSet) shape() (branches, perBranch int) {
	t := ts.newTree()
	return t.Branches(), t.SegmentsPerBranch()
}

// root returns partition p's root hash and whether it holds any data.
func (ts *treeSet) root(p int) uint64 {
	pt := &ts.parts[p]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.live == nil {
		return 0
	}
	return pt.live.Root()
}

// memoryBytes is what the trees hold.
func (ts *treeSet) memoryBytes() int {
	total := 0
	for i := range ts.parts {
		pt := &ts.parts[i]
		pt.mu.Lock()
		if pt.live != nil {
			total += pt.live.MemoryBytes()
		}
		if pt.delta != nil {
			total += pt.delta.MemoryBytes()
		}
		pt.mu.Unlock()
	}
	return total
}

// segmentRange is the store key range holding partition p's segment seg.
func (ts *treeSet) segmentRange(p, seg int) (lo, hi []byte) {
	sbits := bits.TrailingZeros(uint(ts.segments))
	shift := uint(32 - ts.pbits - sbits)
	start := uint64(p)<<uint(32-ts.pbits) | uint64(seg)<<shift
	end := start + 1<<shift
	lo = binary.BigEndian.AppendUint32([]byte(prefixData), uint32(start))
	if end >= 1<<32 {
		return lo, []byte{prefixData[0] + 1}
	}
	return lo, binary.BigEndian.AppendUint32([]byte(prefixData), uint32(end))
}

// rebuildTrees recomputes every tree from a snapshot of the store, in the background of
// live writes. It logs progress, and counts partitions whose live tree had drifted from the
// data (silent corruption, or a bug).
func (n *Node) rebuildTrees(ctx context.Context) error {
	ts := n.trees
	start := time.Now()
	var snap storage.Snapshot
	var err error
	if derr := n.loop.do(ctx, func(*core.Core) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if snap, err = n.store.NewSnapshot(); err == nil {
			ts.rebuilding = true
		}
	}); derr != nil {
		return fmt.Errorf("tree rebuild: %w", derr)
	}
	if err != nil {
		return fmt.Errorf("tree rebuild: %w", err)
	}
	defer snap.Close()
	ts.progress.Store(0)
	ts.scanned.Store(0)

	fresh := make([]*merkle.Tree, len(ts.parts))
	lastLog := time.Now()
	var scanErr error
	err = snap.Scan([]byte(prefixData), []byte{prefixData[0] + 1}, func(k, v []byte) bool {
		if ctx.Err() != nil {
			scanErr = ctx.Err()
			return false
		}
		bucket, key, ok := core.ParseDataKey(k)
		if !ok {
			n.log.Error("tree rebuild: malformed data key", "key", fmt.Sprintf("%q", k))
			return true
		}
		p, seg := ts.locate(bucket, key)
		if fresh[p] == nil {
			fresh[p] = ts.newTree()
		}
		fresh[p].Update(seg, 0, itemOf(bucket, key, v))
		c := ts.scanned.Add(1)
		ts.progress.Store(int64(binary.BigEndian.Uint32(k[len(prefixData):])) * 1_000_000 >> 32)
		if c%65536 == 0 && time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			n.log.Info("hash tree rebuild", "keys", c, "progress", fmt.Sprintf("%.1f%%", float64(ts.progress.Load())/1e4))
		}
		return true
	})
	if err == nil {
		err = scanErr
	}

	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.rebuilding = false
	if err != nil {
		for i := range ts.parts {
			ts.parts[i].delta = nil
		}
		return fmt.Errorf("tree rebuild: %w", err)
	}
	drifted := 0
	for i := range ts.parts {
		pt := &ts.parts[i]
		pt.mu.Lock()
		t := fresh[i]
		if pt.delta != nil {
			if t == nil {
				t = ts.newTree()
			}
			_ = t.Combine(pt.delta)
		}
		if ts.ready.Load() {
			was, now := pt.live, t
			if was == nil {
				was = ts.newTree()
			}
			if now == nil {
				now = ts.newTree()
			}
			if !was.Equal(now) {
				drifted++
			}
		}
		pt.live, pt.delta = t, nil
		pt.mu.Unlock()
	}
	ts.progress.Store(1_000_000)
	ts.rebuilds.Add(1)
	ts.drift.Add(int64(drifted))
	wasReady := ts.ready.Swap(true)
	if drifted > 0 {
		n.log.Warn("hash tree rebuild found trees that had drifted from the data; anti-entropy will repair what differs",
			"partitions", drifted)
	}
	n.log.Info("hash trees rebuilt", "keys", ts.scanned.Load(), "elapsed", time.Since(start), "first", !wasReady)
	return nil
}

// treeLoop rebuilds the trees at start-up and then every TreeRebuildInterval.
func (n *Node) treeLoop() {
	defer n.bg.Done()
	for {
		if err := n.rebuildTrees(n.ctx); err != nil && n.ctx.Err() == nil {
			n.log.Error("hash tree rebuild failed; retrying in a minute", "err", err)
			if !sleepCtx(n.ctx, time.Minute) {
				return
			}
			continue
		}
		if !sleepCtx(n.ctx, n.cfg.TreeRebuildInterval) {
			return
		}
	}
}

// sleepCtx waits d or until ctx is done; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
