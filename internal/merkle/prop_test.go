package merkle

import (
	"fmt"
	"math/bits"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
	"pgregory.net/rapid"
)

// The model: a partition's data as a map from key to the digest of its object. Keys hash to
// segments as the node does (the ring hash, then SegmentOf).

const testPartitionBits = 8

type key struct{ bucket, key string }

func segOf(k key, segments int) int {
	return SegmentOf(xxhash.Sum64String(k.bucket+"\x00"+k.key), testPartitionBits, segments)
}

func item(k key, digest uint64) uint64 { return ItemHash(k.bucket, k.key, digest) }

// rebuild is the brute-force tree of data, built from scratch.
func rebuild(t interface{ Fatalf(string, ...any) }, segments int, data map[key]uint64) *Tree {
	tr, err := New(segments)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for k, d := range data {
		tr.Update(segOf(k, segments), 0, item(k, d))
	}
	return tr
}

func drawSegments(rt *rapid.T) int {
	return 1 << rapid.IntRange(8, 12).Draw(rt, "lgSegments")
}

// drawKey draws from a small pool so that inserts, replaces and deletes all happen often,
// and several keys share a segment.
func drawKey(rt *rapid.T, label string) key {
	return key{
		bucket: rapid.SampledFrom([]string{"a", "b", "users"}).Draw(rt, label+"Bucket"),
		key:    fmt.Sprint(rapid.IntRange(0, 40).Draw(rt, label+"Key")),
	}
}

// applyOp draws one insert, replace or delete, applies it to data and returns the segment
// and the old and new item hashes, as a store's write path would pass them to Update.
func applyOp(rt *rapid.T, data map[key]uint64, segments int) (seg int, old, new uint64) {
	k := drawKey(rt, "op")
	seg = segOf(k, segments)
	if d, ok := data[k]; ok {
		old = item(k, d)
	}
	if rapid.IntRange(0, 3).Draw(rt, "delete") == 0 {
		delete(data, k) // deleting an absent key is a no-op: old = new = 0
		return seg, old, 0
	}
	d := rapid.Uint64Range(0, 5).Draw(rt, "digest") // small: rewrites of the same object happen
	data[k] = d
	return seg, old, item(k, d)
}

func checkEqual(rt *rapid.T, got, want *Tree) {
	if !got.Equal(want) || !want.Equal(got) {
		rt.Fatalf("incremental tree differs from the rebuilt one (roots %x, %x)", got.Root(), want.Root())
	}
	if got.Root() != want.Root() || !slices.Equal(got.BranchHashes(), want.BranchHashes()) {
		rt.Fatalf("equal trees with different roots or branches")
	}
}

func TestPropIncrementalEqualsRebuild(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		segments := drawSegments(rt)
		tr, _ := New(segments)
		data := map[key]uint64{}
		for range rapid.IntRange(0, 200).Draw(rt, "ops") {
			seg, old, new := applyOp(rt, data, segments)
			tr.Update(seg, old, new)
			if rapid.IntRange(0, 20).Draw(rt, "check") == 0 {
				checkEqual(rt, tr, rebuild(rt, segments, data))
			}
		}
		checkEqual(rt, tr, rebuild(rt, segments, data))
		if len(data) == 0 && tr.Root() != 0 {
			rt.Fatalf("no data, root %x", tr.Root())
		}
	})
}

func TestPropCombineSnapshotAndDelta(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		segments := drawSegments(rt)
		data := map[key]uint64{}
		for range rapid.IntRange(0, 60).Draw(rt, "baseOps") {
			applyOp(rt, data, segments)
		}
		base := make(map[key]uint64, len(data))
		for k, d := range data {
			base[k] = d
		}
		snapshot := rebuild(rt, segments, data) // e.g. the tree rebuilt from a store snapshot
		delta, _ := New(segments)               // the writes that landed since
		for range rapid.IntRange(0, 60).Draw(rt, "deltaOps") {
			seg, old, new := applyOp(rt, data, segments)
			delta.Update(seg, old, new)
		}
		final := rebuild(rt, segments, data)
		if err := snapshot.Combine(delta); err != nil {
			rt.Fatalf("Combine: %v", err)
		}
		checkEqual(rt, snapshot, final)
		// Combine is order-free: the delta first, then the snapshot.
		other, _ := New(segments)
		_ = other.Combine(delta)
		_ = other.Combine(rebuild(rt, segments, base))
		checkEqual(rt, other, final)
	})
}

func TestPropViewsAgreeWithBruteForce(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		segments := drawSegments(rt)
		tr, _ := New(segments)
		model := make([]uint64, segments)
		for range rapid.IntRange(0, 300).Draw(rt, "updates") {
			s := rapid.IntRange(0, segments-1).Draw(rt, "seg")
			old := rapid.SampledFrom([]uint64{0, model[s]}).Draw(rt, "old")
			new := rapid.Uint64().Draw(rt, "new")
			tr.Update(s, old, new)
			model[s] ^= old ^ new
		}
		width, nb := tr.SegmentsPerBranch(), tr.Branches()
		if width*nb != segments {
			rt.Fatalf("%d branches of %d segments for %d segments", nb, width, segments)
		}
		var root uint64
		wantBranches := make([]uint64, nb)
		for s, h := range model {
			if tr.Segment(s) != h {
				rt.Fatalf("segment %d = %x, want %x", s, tr.Segment(s), h)
			}
			root ^= h
			wantBranches[s/width] ^= h
		}
		if tr.Root() != root {
			rt.Fatalf("root %x, want %x", tr.Root(), root)
		}
		branches := tr.BranchHashes()
		if !slices.Equal(branches, wantBranches) {
			rt.Fatalf("branches %x, want %x", branches, wantBranches)
		}
		var xb uint64
		for b := range nb {
			segs := tr.BranchSegments(nil, b)
			if !slices.Equal(segs, model[b*width:(b+1)*width]) {
				rt.Fatalf("segments of branch %d differ from the model", b)
			}
			var x uint64
			for _, h := range segs {
				x ^= h
			}
			if x != branches[b] {
				rt.Fatalf("segments of branch %d XOR to %x, branch hash %x", b, x, branches[b])
			}
			xb ^= branches[b]
		}
		if xb != tr.Root() {
			rt.Fatalf("branches XOR to %x, root %x", xb, tr.Root())
		}
	})
}

func TestPropSegmentOf(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		pb := rapid.IntRange(0, 24).Draw(rt, "partitionBits")
		lg := rapid.IntRange(8, 20).Draw(rt, "lgSegments")
		segments := 1 << lg
		hashes := rapid.SliceOfN(rapid.Uint64(), 1, 200).Draw(rt, "hashes")
		slices.Sort(hashes)
		type pos struct{ partition, segment uint64 }
		var prev pos
		for i, h := range hashes {
			s := SegmentOf(h, pb, segments)
			if s < 0 || s >= segments {
				rt.Fatalf("SegmentOf(%#x, %d, %d) = %d out of range", h, pb, segments, s)
			}
			// The bits just below the partition bits.
			if want := (h << uint(pb)) >> uint(64-lg); uint64(s) != want {
				rt.Fatalf("SegmentOf(%#x, %d, %d) = %#x, want %#x", h, pb, segments, s, want)
			}
			var part uint64
			if pb > 0 {
				part = h >> uint(64-pb)
			}
			cur := pos{part, uint64(s)}
			if i > 0 && (cur.partition < prev.partition || cur.partition == prev.partition && cur.segment < prev.segment) {
				rt.Fatalf("keys sorted by hash go from (partition, segment) %v to %v", prev, cur)
			}
			prev = cur
		}
	})
}

func TestPropNewValidatesSize(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.OneOf(
			rapid.Int(),
			rapid.IntRange(-10, MaxSegments*4),
			rapid.Map(rapid.IntRange(0, 30), func(e int) int { return 1 << e }),
		).Draw(rt, "n")
		valid := n >= MinSegments && n <= MaxSegments && bits.OnesCount(uint(n)) == 1
		tr, err := New(n)
		if valid != (err == nil) {
			rt.Fatalf("New(%d): err %v, valid %v", n, err, valid)
		}
		if valid && (tr.Segments() != n || tr.Branches()*tr.SegmentsPerBranch() != n) {
			rt.Fatalf("New(%d): %d segments, %d×%d", n, tr.Segments(), tr.Branches(), tr.SegmentsPerBranch())
		}
	})
}
