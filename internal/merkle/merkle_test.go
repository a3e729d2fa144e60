package merkle

import (
	"fmt"
	"math/bits"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestNewShapes(t *testing.T) {
	for _, tc := range []struct {
		segments, branches, perBranch int
	}{
		{1 << 8, 16, 16},
		{1 << 9, 16, 32},
		{1 << 10, 32, 32},
		{1 << 15, 128, 256},
		{1 << 16, 256, 256},
		{1 << 17, 256, 512},
		{1 << 20, 1024, 1024},
	} {
		tr, err := New(tc.segments)
		if err != nil {
			t.Fatalf("New(%d): %v", tc.segments, err)
		}
		if tr.Segments() != tc.segments || tr.Branches() != tc.branches || tr.SegmentsPerBranch() != tc.perBranch {
			t.Errorf("New(%d): %d segments, %d branches of %d; want %d, %d of %d", tc.segments,
				tr.Segments(), tr.Branches(), tr.SegmentsPerBranch(), tc.segments, tc.branches, tc.perBranch)
		}
		if tr.Root() != 0 || tr.MemoryBytes() != 48 {
			t.Errorf("New(%d): empty tree has root %x and holds %d bytes", tc.segments, tr.Root(), tr.MemoryBytes())
		}
	}
}

func TestNewRejectsBadSizes(t *testing.T) {
	for _, n := range []int{-1 << 16, -256, -1, 0, 1, 2, 128, 255, 257, 384, 1000, 3 << 10, (1 << 16) - 1, (1 << 16) + 1, 1<<20 + 1, 1 << 21, 1 << 40} {
		if tr, err := New(n); err == nil {
			t.Errorf("New(%d) = %v, want an error", n, tr)
		}
	}
}

func TestUpdateTable(t *testing.T) {
	tr, _ := New(MinSegments)
	tr.Update(3, 7, 7) // no change: stays sparse
	if tr.MemoryBytes() != 48 || tr.Segment(3) != 0 {
		t.Fatalf("a no-op update allocated or changed the tree: %d bytes, segment %x", tr.MemoryBytes(), tr.Segment(3))
	}
	steps := []struct {
		seg           int
		old, new      uint64
		want          uint64 // segment hash after
		wantRootAfter uint64
	}{
		{3, 0, 0xa, 0xa, 0xa},         // create
		{3, 0, 0x5, 0xf, 0xf},         // a second key in the same segment
		{255, 0, 0x30, 0x30, 0x3f},    // another segment
		{3, 0xa, 0xc, 0x9, 0x39},      // replace
		{3, 0x5, 0, 0xc, 0x3c},        // delete
		{3, 0xc, 0, 0, 0x30},          // delete the last key of segment 3
		{255, 0x30, 0x30, 0x30, 0x30}, // replace by the same object
		{0, 0, 1 << 63, 1 << 63, 0x30 ^ 1<<63},
	}
	for i, s := range steps {
		tr.Update(s.seg, s.old, s.new)
		if got := tr.Segment(s.seg); got != s.want {
			t.Fatalf("step %d: segment %d = %x, want %x", i, s.seg, got, s.want)
		}
		if got := tr.Root(); got != s.wantRootAfter {
			t.Fatalf("step %d: root = %x, want %x", i, got, s.wantRootAfter)
		}
	}
	// Two segments are set: the tree is still sparse.
	if got, want := tr.MemoryBytes(), 2*sparseEntryBytes+48; got != want {
		t.Errorf("MemoryBytes = %d, want %d", got, want)
	}
}

func TestEmptyTreeViews(t *testing.T) {
	tr, _ := New(1 << 10)
	if got := tr.BranchHashes(); len(got) != 32 || slices.ContainsFunc(got, func(h uint64) bool { return h != 0 }) {
		t.Errorf("BranchHashes of an empty tree = %v", got)
	}
	dst := []uint64{42}
	got := tr.BranchSegments(dst, 31)
	if len(got) != 33 || got[0] != 42 || slices.ContainsFunc(got[1:], func(h uint64) bool { return h != 0 }) {
		t.Errorf("BranchSegments of an empty tree = %v", got)
	}
	// A tree whose keys were all removed equals a never-touched one.
	other, _ := New(1 << 10)
	other.Update(5, 0, 9)
	other.Update(5, 9, 0)
	if !tr.Equal(other) || !other.Equal(tr) {
		t.Error("an emptied tree differs from an empty one")
	}
	small, _ := New(1 << 8)
	if tr.Equal(small) {
		t.Error("trees of different sizes compare equal")
	}
}

func TestBranchSegmentsAppends(t *testing.T) {
	tr, _ := New(1 << 8) // 16 branches of 16
	for s := range 256 {
		tr.Update(s, 0, uint64(s)+1)
	}
	dst := tr.BranchSegments(nil, 2)
	dst = tr.BranchSegments(dst, 15)
	want := make([]uint64, 0, 32)
	for s := 32; s < 48; s++ {
		want = append(want, uint64(s)+1)
	}
	for s := 240; s < 256; s++ {
		want = append(want, uint64(s)+1)
	}
	if !slices.Equal(dst, want) {
		t.Errorf("BranchSegments = %v, want %v", dst, want)
	}
	// The slice returned must not alias the tree.
	dst[0] = 0
	if tr.Segment(32) != 33 {
		t.Error("BranchSegments' result aliases the tree")
	}
}

func TestCombine(t *testing.T) {
	a, _ := New(1 << 8)
	b, _ := New(1 << 9)
	if err := a.Combine(b); err == nil {
		t.Error("Combine of trees of different sizes succeeded")
	}
	empty, _ := New(1 << 8)
	a.Update(1, 0, 11)
	if err := a.Combine(empty); err != nil || a.Segment(1) != 11 {
		t.Errorf("Combine(empty) = %v, segment 1 = %d", err, a.Segment(1))
	}
	if err := empty.Combine(a); err != nil || !empty.Equal(a) {
		t.Errorf("empty.Combine(a) = %v, equal %v", err, empty.Equal(a))
	}
	// Combining a tree with itself cancels out.
	if err := a.Combine(a); err != nil || a.Root() != 0 || a.Segment(1) != 0 {
		t.Errorf("a.Combine(a) = %v, root %x", err, a.Root())
	}
}

func TestSegmentOf(t *testing.T) {
	for _, tc := range []struct {
		hash                    uint64
		partitionBits, segments int
		want                    int
	}{
		{0, 8, 1 << 16, 0},
		{^uint64(0), 8, 1 << 16, 1<<16 - 1},
		{0xAB_CDEF_0000_0000_00, 8, 1 << 16, 0xCDEF},
		{0xAB_CDEF_0000_0000_00, 8, 1 << 8, 0xCD},
		{0xAB_CDEF_0000_0000_00, 0, 1 << 8, 0xAB},
		{0xAB_CDEF_0000_0000_00, 4, 1 << 8, 0xBC},
		{0xAB_CDEF_0000_0000_00, 8, 1 << 20, 0xCDEF0},
		{0xFF_0000_0000_0000_01, 8, 1 << 16, 0},
		{0x00_8000_0000_0000_00, 8, 1 << 16, 0x8000},
		{0x12_3456_789A_BCDE_F0, 56, 1 << 8, 0xF0},
	} {
		if got := SegmentOf(tc.hash, tc.partitionBits, tc.segments); got != tc.want {
			t.Errorf("SegmentOf(%#x, %d, %d) = %#x, want %#x", tc.hash, tc.partitionBits, tc.segments, got, tc.want)
		}
	}
}

func TestItemHash(t *testing.T) {
	base := ItemHash("b", "k", 1)
	if base == 0 {
		t.Fatal("ItemHash is 0")
	}
	if ItemHash("b", "k", 1) != base {
		t.Error("ItemHash is not deterministic")
	}
	for _, other := range []struct {
		bucket, key string
		digest      uint64
	}{
		{"b", "k", 2}, {"c", "k", 1}, {"b", "j", 1}, {"bk", "", 1}, {"", "bk", 1},
	} {
		if ItemHash(other.bucket, other.key, other.digest) == base {
			t.Errorf("ItemHash(%q, %q, %d) collides with ItemHash(b, k, 1)", other.bucket, other.key, other.digest)
		}
	}
	// The bucket/key boundary matters (bucket names hold no NUL).
	if ItemHash("ab", "c", 0) == ItemHash("a", "bc", 0) {
		t.Error("ItemHash ignores where the bucket ends")
	}
	// The documented layout: bucket, NUL, key, big-endian digest.
	want := xxhash.Sum64([]byte("ab\x00c\x01\x02\x03\x04\x05\x06\x07\x08"))
	if want == 0 {
		want = 1
	}
	if got := ItemHash("ab", "c", 0x0102030405060708); got != want {
		t.Errorf("ItemHash layout: %x, want %x", got, want)
	}
}

func TestDigest(t *testing.T) {
	if Digest([]byte("x")) != xxhash.Sum64String("x") || Digest(nil) != xxhash.Sum64(nil) {
		t.Error("Digest is not xxhash64")
	}
	if Digest([]byte("x")) == Digest([]byte("y")) {
		t.Error("Digest ignores its input")
	}
}

func TestDiffIndexes(t *testing.T) {
	for _, tc := range []struct {
		a, b []uint64
		want []int
	}{
		{nil, nil, nil},
		{[]uint64{1, 2, 3}, []uint64{1, 2, 3}, nil},
		{[]uint64{1, 2, 3}, []uint64{0, 2, 4}, []int{0, 2}},
		{[]uint64{0}, []uint64{1}, []int{0}},
	} {
		if got := DiffIndexes(tc.a, tc.b); !slices.Equal(got, tc.want) {
			t.Errorf("DiffIndexes(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// ExampleTree shows the life of one key.
func ExampleTree() {
	tr, _ := New(DefaultSegments)
	seg := SegmentOf(xxhash.Sum64String("users\x00alice"), 8, tr.Segments())
	v1 := ItemHash("users", "alice", Digest([]byte("v1")))
	v2 := ItemHash("users", "alice", Digest([]byte("v2")))
	tr.Update(seg, 0, v1)  // create
	tr.Update(seg, v1, v2) // overwrite
	fmt.Println(tr.Root() == v2, tr.Segment(seg) == v2)
	tr.Update(seg, v2, 0) // delete
	fmt.Println(tr.Root(), bits.OnesCount64(tr.Segment(seg)))
	// Output:
	// true true
	// 0 0
}

// TestSparseThenDense: a tree stays sparse until more than a quarter of its segments are
// set, then turns dense; both forms answer the same.
func TestSparseThenDense(t *testing.T) {
	sparse, _ := New(MinSegments)
	for i := 0; i < MinSegments/4; i++ {
		sparse.Update(i*3%MinSegments, 0, uint64(i+1))
	}
	if sparse.segs != nil || len(sparse.sparse) != MinSegments/4 {
		t.Fatalf("dense after %d of %d segments", MinSegments/4, MinSegments)
	}
	dense, _ := New(MinSegments)
	dense.densify()
	for i := 0; i < MinSegments/4; i++ {
		dense.Update(i*3%MinSegments, 0, uint64(i+1))
	}
	if !sparse.Equal(dense) || !dense.Equal(sparse) || sparse.Root() != dense.Root() ||
		!slices.Equal(sparse.BranchHashes(), dense.BranchHashes()) {
		t.Fatal("sparse and dense forms disagree")
	}
	for b := 0; b < sparse.Branches(); b++ {
		if !slices.Equal(sparse.BranchSegments(nil, b), dense.BranchSegments(nil, b)) {
			t.Fatalf("branch %d differs", b)
		}
	}
	sparse.Update(1, 0, 99) // one more segment than a quarter
	if sparse.segs == nil || sparse.sparse != nil || sparse.Segment(1) != 99^dense.Segment(1) {
		t.Fatal("did not turn dense, or lost a segment doing so")
	}
}
