package merkle

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkUpdate is the cost a write adds to the write path: one XOR into a 2^16-segment
// tree (the item hashes and segment are computed by the caller, see BenchmarkWritePath).
func BenchmarkUpdate(b *testing.B) {
	tr, _ := New(DefaultSegments)
	r := rand.New(rand.NewPCG(1, 2))
	const n = 1 << 12
	segs := make([]int, n)
	items := make([]uint64, n+1)
	for i := range n {
		segs[i] = r.IntN(DefaultSegments)
		items[i] = r.Uint64()
	}
	items[n] = items[0]
	i := 0
	for b.Loop() {
		j := i & (n - 1)
		tr.Update(segs[j], items[j], items[j+1])
		i++
	}
}

// BenchmarkWritePath is what a write costs the tree in total: the segment of the key from
// its ring hash, the digest of the encoded object, two item hashes and the update.
func BenchmarkWritePath(b *testing.B) {
	tr, _ := New(DefaultSegments)
	keys := make([]string, 1<<12)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%08d", i)
	}
	obj := make([]byte, 100)
	old := Digest(obj)
	i := 0
	for b.Loop() {
		k := keys[i&(len(keys)-1)]
		obj[0] = byte(i)
		seg := SegmentOf(Digest([]byte(k)), 8, DefaultSegments)
		d := Digest(obj)
		tr.Update(seg, ItemHash("bucket", k, old), ItemHash("bucket", k, d))
		old = d
		i++
	}
}

// BenchmarkBranchHashes derives the 256 branch hashes of a 2^16-segment tree (the first
// question of every exchange).
func BenchmarkBranchHashes(b *testing.B) {
	tr, _ := New(DefaultSegments)
	r := rand.New(rand.NewPCG(3, 4))
	for s := range DefaultSegments {
		tr.Update(s, 0, r.Uint64())
	}
	b.SetBytes(8 * DefaultSegments)
	for b.Loop() {
		if len(tr.BranchHashes()) != 256 {
			b.Fatal("want 256 branches")
		}
	}
}

func BenchmarkRoot(b *testing.B) {
	tr, _ := New(DefaultSegments)
	r := rand.New(rand.NewPCG(5, 6))
	for s := range DefaultSegments {
		tr.Update(s, 0, r.Uint64())
	}
	b.SetBytes(8 * DefaultSegments)
	for b.Loop() {
		_ = tr.Root()
	}
}

// BenchmarkTreeMemoryPerMillionKeys reports the memory held by the trees of one node's
// replicas of 1,000,000 keys spread over 256 partitions, 2^16 segments each.
//
// At 1M keys a partition holds ~3,900 keys, so ~3,800 of its 2^16 segments are set: the
// trees stay sparse (a map of the set segments) rather than the dense 512 KiB each, 128 MiB
// for 256 partitions. A dense tree is chosen past a quarter of the segments set (~4M keys
// per node at these settings), where it becomes the smaller form. Reported as tree-bytes
// (MemoryBytes summed, an estimate for the sparse form) and heap-bytes (the live heap the
// trees add, measured).
func BenchmarkTreeMemoryPerMillionKeys(b *testing.B) {
	const (
		keys       = 1_000_000
		partitions = 256
		pbits      = 8
	)
	r := rand.New(rand.NewPCG(7, 8))
	hashes := make([]uint64, keys) // ring hashes of the keys
	for i := range hashes {
		hashes[i] = r.Uint64()
	}
	var treeBytes, heapBytes float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		trees := make([]*Tree, partitions)
		for p := range trees {
			trees[p], _ = New(DefaultSegments)
		}
		for _, h := range hashes {
			trees[h>>(64-pbits)].Update(SegmentOf(h, pbits, DefaultSegments), 0, h|1)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		treeBytes = 0
		for _, tr := range trees {
			treeBytes += float64(tr.MemoryBytes())
		}
		heapBytes = float64(int64(after.HeapAlloc) - int64(before.HeapAlloc))
		runtime.KeepAlive(trees)
	}
	if dense := float64(partitions * (8*DefaultSegments + 48)); treeBytes >= dense {
		b.Fatalf("trees hold %.0f bytes, no less than dense trees (%.0f)", treeBytes, dense)
	}
	b.ReportMetric(treeBytes, "tree-bytes")
	b.ReportMetric(heapBytes, "heap-bytes")
	b.ReportMetric(treeBytes/keys, "tree-bytes/key")
	b.ReportMetric(0, "ns/op")
}
