// Package merkle holds incrementally updated hash trees for anti-entropy, in the style of
// Riak's tictac AAE.
//
// Model: a Tree summarises one partition's replica on one node. Every key hashes to one of
// S segments (S a power of two); a segment's hash is the XOR of the item hashes of the keys
// in it, where an item hash covers the key and a digest of its stored object. XOR makes an
// update O(1) and order-free: replacing an object XORs out its old item hash and XORs in the
// new one, and two trees can be combined (Combine) — so a tree built from a snapshot plus a
// tree of the changes since equals the tree of the current data. Above the segments sit
// √S branches (each the XOR of √S consecutive segments) and the root (the XOR of all),
// derived on demand. Two replicas hold the same data iff their trees are equal, up to 64-bit
// hash collisions; a difference shows in the root, in the branches covering it, and in the
// segments holding the differing keys, so an exchange descends only where they differ.
//
// The package is pure: no goroutines, clocks or I/O. A Tree is not safe for concurrent use.
package merkle

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// Limits on the number of segments: at least 256 so that branches are worth having, at
// most 2^20 so that one tree stays under 8 MiB.
const (
	MinSegments     = 1 << 8
	MaxSegments     = 1 << 20
	DefaultSegments = 1 << 16
)

// Tree is one partition replica's hash tree. The zero value is not usable; call New.
//
// Its segments are kept sparse (a map of the non-zero ones) while few are set, and as a
// dense array once more than a quarter are: a partition of a few thousand keys then costs
// a few tens of KiB instead of 8 bytes × every segment.
type Tree struct {
	segs   []uint64          // dense form, nil while sparse
	sparse map[uint32]uint64 // sparse form: the non-zero segments
	n      int
	width  int // segments per branch
}

// sparseEntryBytes estimates what one map entry costs, for MemoryBytes.
const sparseEntryBytes = 40

// New returns an empty tree of segments segments (a power of two within the limits).
func New(segments int) (*Tree, error) {
	if segments < MinSegments || segments > MaxSegments || segments&(segments-1) != 0 {
		return nil, fmt.Errorf("merkle: %d segments: want a power of two in [%d, %d]", segments, MinSegments, MaxSegments)
	}
	lg := bits.TrailingZeros(uint(segments))
	return &Tree{n: segments, width: 1 << ((lg + 1) / 2)}, nil
}

// Segments is the number of segments.
func (t *Tree) Segments() int { return t.n }

// Branches is the number of branches: √Segments, rounded down to a power of two for odd
// powers (2^17 segments make 256 branches of 512).
func (t *Tree) Branches() int { return t.n / t.width }

// SegmentsPerBranch is the number of segments under one branch (√Segments rounded up).
func (t *Tree) SegmentsPerBranch() int { return t.width }

// Update replaces old by new in segment seg: the item hashes of a key's previous and new
// object, 0 for "none" (a key created passes old=0, a key removed passes new=0).
func (t *Tree) Update(seg int, old, new uint64) {
	t.xor(seg, old^new)
}

func (t *Tree) xor(seg int, d uint64) {
	if d == 0 {
		return
	}
	if t.segs != nil {
		t.segs[seg] ^= d
		return
	}
	if t.sparse == nil {
		t.sparse = make(map[uint32]uint64)
	}
	if v := t.sparse[uint32(seg)] ^ d; v != 0 {
		t.sparse[uint32(seg)] = v
	} else {
		delete(t.sparse, uint32(seg))
	}
	if len(t.sparse) > t.n/4 {
		t.densify()
	}
}

func (t *Tree) densify() {
	t.segs = make([]uint64, t.n)
	for s, v := range t.sparse {
		t.segs[s] = v
	}
	t.sparse = nil
}

// Segment returns one segment's hash.
func (t *Tree) Segment(seg int) uint64 {
	if t.segs != nil {
		return t.segs[seg]
	}
	return t.sparse[uint32(seg)]
}

// Root is the XOR of every segment.
func (t *Tree) Root() uint64 {
	var r uint64
	for _, s := range t.segs {
		r ^= s
	}
	for _, s := range t.sparse {
		r ^= s
	}
	return r
}

// BranchHashes returns every branch hash, in order.
func (t *Tree) BranchHashes() []uint64 {
	out := make([]uint64, t.Branches())
	if t.segs != nil {
		for b := range out {
			var x uint64
			for _, s := range t.segs[b*t.width : (b+1)*t.width] {
				x ^= s
			}
			out[b] = x
		}
		return out
	}
	for s, v := range t.sparse {
		out[int(s)/t.width] ^= v
	}
	return out
}

// BranchSegments appends the segment hashes under branch b to dst.
func (t *Tree) BranchSegments(dst []uint64, b int) []uint64 {
	lo := b * t.width
	if t.segs != nil {
		return append(dst, t.segs[lo:lo+t.width]...)
	}
	start := len(dst)
	dst = append(dst, make([]uint64, t.width)...)
	if len(t.sparse) < t.width {
		for s, v := range t.sparse {
			if i := int(s) - lo; i >= 0 && i < t.width {
				dst[start+i] = v
			}
		}
		return dst
	}
	for i := range t.width {
		dst[start+i] = t.sparse[uint32(lo+i)]
	}
	return dst
}

// Combine XORs other into t: with other holding the changes since t's snapshot, t then
// describes the current data. Both must have the same number of segments.
func (t *Tree) Combine(other *Tree) error {
	if other.n != t.n {
		return fmt.Errorf("merkle: combine trees of %d and %d segments", t.n, other.n)
	}
	if other.segs != nil && t.segs == nil {
		t.densify()
	}
	for s, v := range other.segs {
		t.xor(s, v)
	}
	for s, v := range other.sparse {
		t.xor(int(s), v)
	}
	return nil
}

// Equal reports whether two trees are equal.
func (t *Tree) Equal(o *Tree) bool {
	if t.n != o.n {
		return false
	}
	if t.segs == nil && o.segs == nil {
		if len(t.sparse) != len(o.sparse) {
			return false
		}
		for s, v := range t.sparse {
			if o.sparse[s] != v {
				return false
			}
		}
		return true
	}
	for i := 0; i < t.n; i++ {
		if t.Segment(i) != o.Segment(i) {
			return false
		}
	}
	return true
}

// MemoryBytes is the memory the tree holds (estimated for the sparse form).
func (t *Tree) MemoryBytes() int { return 8*len(t.segs) + sparseEntryBytes*len(t.sparse) + 48 }

// SegmentOf gives a key's segment from its 64-bit ring hash: the bits just below the
// partitionBits the ring uses, so that the keys of one segment are contiguous in an order
// sorted by hash.
func SegmentOf(keyHash uint64, partitionBits, segments int) int {
	return int((keyHash << uint(partitionBits)) >> (64 - uint(bits.TrailingZeros(uint(segments)))))
}

// ItemHash is the hash of one stored key: its bucket, key and the digest of its stored
// object. Never 0 (0 means "no item").
func ItemHash(bucket, key string, digest uint64) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(bucket)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(key)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], digest)
	_, _ = d.Write(b[:])
	h := d.Sum64()
	if h == 0 {
		h = 1
	}
	return h
}

// Digest is the digest of an encoded object (the version package's encoding is canonical:
// equal objects encode to equal bytes).
func Digest(encoded []byte) uint64 { return xxhash.Sum64(encoded) }

// DiffIndexes returns the indexes at which a and b differ (they must have the same length).
func DiffIndexes(a, b []uint64) []int {
	var out []int
	for i := range a {
		if a[i] != b[i] {
			out = append(out, i)
		}
	}
	return out
}
