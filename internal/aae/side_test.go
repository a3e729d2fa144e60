package aae

import (
	"context"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/quorumkv/quorumkv/internal/merkle"
)

// The in-memory Side of the tests: one replica of one partition, its keys bucketed by
// segment and a merkle.Tree kept in sync with every write.
//
// Byte model (what a wire encoding of the exchange would cost, deterministic):
//   - every request: reqBytes (header, partition)
//   - every index asked for (branch or segment): idxBytes
//   - every hash answered (root, branch, segment): hashBytes
//   - every key answered: len(bucket) + len(key) + 8 (item hash) + 4 (segment)
const (
	reqBytes  = 16
	idxBytes  = 4
	hashBytes = 8
)

func keyItemBytes(bucket, key string) int { return len(bucket) + len(key) + 8 + 4 }

const testPartitionBits = 8

type entry struct {
	bucket, key string
	item        uint64
}

type memSide struct {
	partition int
	tree      *merkle.Tree
	segs      [][]entry // by segment; a few keys each, found by a linear scan
	n         int       // keys stored
	calls     int       // requests answered
}

func newMemSide(partition, segments int) *memSide {
	tr, err := merkle.New(segments)
	if err != nil {
		panic(err)
	}
	return &memSide{partition: partition, tree: tr, segs: make([][]entry, segments)}
}

// segmentOf is where a key lives: the bits of its ring hash below the partition bits.
func segmentOf(bucket, key string, segments int) int {
	return merkle.SegmentOf(xxhash.Sum64String(bucket+"\x00"+key), testPartitionBits, segments)
}

// put stores item for bucket/key (0 removes it) in the key's hashed segment.
func (m *memSide) put(bucket, key string, item uint64) {
	m.putIn(segmentOf(bucket, key, len(m.segs)), bucket, key, item)
}

// putIn stores item for bucket/key in segment seg: tests use it to place keys precisely.
func (m *memSide) putIn(seg int, bucket, key string, item uint64) {
	es := m.segs[seg]
	i := slices.IndexFunc(es, func(e entry) bool { return e.bucket == bucket && e.key == key })
	var old uint64
	switch {
	case i >= 0 && item == 0:
		old = es[i].item
		m.segs[seg] = slices.Delete(es, i, i+1)
		m.n--
	case i >= 0:
		old = es[i].item
		es[i].item = item
	case item != 0:
		m.segs[seg] = append(es, entry{bucket, key, item})
		m.n++
	}
	m.tree.Update(seg, old, item)
}

func (m *memSide) get(bucket, key string) uint64 {
	for _, e := range m.segs[segmentOf(bucket, key, len(m.segs))] {
		if e.bucket == bucket && e.key == key {
			return e.item
		}
	}
	return 0
}

// clone copies the replica (sharing the key strings).
func (m *memSide) clone() *memSide {
	c := newMemSide(m.partition, len(m.segs))
	for s, es := range m.segs {
		if len(es) > 0 {
			c.segs[s] = slices.Clone(es)
		}
	}
	_ = c.tree.Combine(m.tree)
	c.n = m.n
	return c
}

// all lists every key and its item hash.
func (m *memSide) all() map[keyID]uint64 {
	out := make(map[keyID]uint64, m.n)
	for _, es := range m.segs {
		for _, e := range es {
			out[keyID{e.bucket, e.key}] = e.item
		}
	}
	return out
}

func (m *memSide) shape() Shape {
	return Shape{Branches: m.tree.Branches(), SegmentsPerBranch: m.tree.SegmentsPerBranch()}
}

func (m *memSide) check(ctx context.Context, partition int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if partition != m.partition {
		panic("asked for another partition")
	}
	m.calls++
	return nil
}

func (m *memSide) Root(ctx context.Context, partition int) (uint64, int, error) {
	if err := m.check(ctx, partition); err != nil {
		return 0, 0, err
	}
	return m.tree.Root(), reqBytes + hashBytes, nil
}

func (m *memSide) Branches(ctx context.Context, partition int) (uint64, []uint64, int, error) {
	if err := m.check(ctx, partition); err != nil {
		return 0, nil, 0, err
	}
	br := m.tree.BranchHashes()
	return m.tree.Root(), br, reqBytes + hashBytes*(1+len(br)), nil
}

func (m *memSide) Segments(ctx context.Context, partition int, branches []int) ([][]uint64, int, error) {
	if err := m.check(ctx, partition); err != nil {
		return nil, 0, err
	}
	out := make([][]uint64, len(branches))
	bytes := reqBytes + idxBytes*len(branches)
	for i, b := range branches {
		out[i] = m.tree.BranchSegments(nil, b)
		bytes += hashBytes * len(out[i])
	}
	return out, bytes, nil
}

func (m *memSide) Keys(ctx context.Context, partition int, segments []int) ([]KeyItem, int, error) {
	if err := m.check(ctx, partition); err != nil {
		return nil, 0, err
	}
	var out []KeyItem
	bytes := reqBytes + idxBytes*len(segments)
	for _, s := range segments {
		for _, e := range m.segs[s] {
			out = append(out, KeyItem{Bucket: e.bucket, Key: e.key, Segment: s, Item: e.item})
			bytes += keyItemBytes(e.bucket, e.key)
		}
	}
	return out, bytes, nil
}

// expect is the brute-force answer of an exchange between local and remote: the keys
// whose item hashes differ, sorted, the segments and branches holding them, and the bytes
// the byte model says the exchange costs.
func expect(local, remote *memSide) (keys []KeyRef, segments, branches []int, bytes int) {
	lm, rm := local.all(), remote.all()
	for k, li := range lm {
		if ri := rm[k]; ri != li {
			keys = append(keys, KeyRef{Bucket: k.bucket, Key: k.key, LocalItem: li, RemoteItem: ri})
		}
	}
	for k, ri := range rm {
		if _, ok := lm[k]; !ok {
			keys = append(keys, KeyRef{Bucket: k.bucket, Key: k.key, RemoteItem: ri})
		}
	}
	slices.SortFunc(keys, cmpKeyRef)
	nseg, width := len(local.segs), local.tree.SegmentsPerBranch()
	for _, k := range keys {
		s := segmentOf(k.Bucket, k.Key, nseg)
		segments = append(segments, s)
		branches = append(branches, s/width)
	}
	slices.Sort(segments)
	segments = slices.Compact(segments)
	slices.Sort(branches)
	branches = slices.Compact(branches)

	bytes = 2 * (reqBytes + hashBytes)
	if len(keys) > 0 {
		bytes += 2 * (reqBytes + hashBytes*(1+local.tree.Branches()))
	}
	if len(branches) > 0 {
		bytes += 2 * (reqBytes + idxBytes*len(branches) + hashBytes*width*len(branches))
	}
	if len(segments) > 0 {
		bytes += 2 * (reqBytes + idxBytes*len(segments))
		for _, s := range segments {
			for _, e := range local.segs[s] {
				bytes += keyItemBytes(e.bucket, e.key)
			}
			for _, e := range remote.segs[s] {
				bytes += keyItemBytes(e.bucket, e.key)
			}
		}
	}
	return keys, segments, branches, bytes
}

func cmpKeyRef(a, b KeyRef) int {
	if a.Bucket != b.Bucket {
		if a.Bucket < b.Bucket {
			return -1
		}
		return 1
	}
	switch {
	case a.Key < b.Key:
		return -1
	case a.Key > b.Key:
		return 1
	}
	return 0
}
