package aae

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/quorumkv/quorumkv/internal/merkle"
)

const benchKeys = 1_000_000

var (
	benchOnce sync.Once
	benchBase *memSide
)

// benchReplica is one 1,000,000-key replica with a 2^16-segment tree, built once. Item
// hashes are cheap (the key's index mixed), not merkle.ItemHash: the benchmark measures the
// exchange, not hashing.
func benchReplica() *memSide {
	benchOnce.Do(func() {
		benchBase = newMemSide(part, merkle.DefaultSegments)
		for i := range benchKeys {
			b, k := bucketKey(i)
			benchBase.put(b, k, mix(uint64(i)))
		}
	})
	return benchBase
}

func mix(x uint64) uint64 { // splitmix64's finaliser; never 0 for x in range here
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31) | 1
}

// BenchmarkCompare is one exchange between two 1,000,000-key replicas of a 2^16-segment
// partition that differ in 1, 100 or 10,000 keys (a third each missing on one side,
// different there, or extra there). bytes/op is the exchange's wire cost in the test byte
// model (8 bytes a hash, bucket+key+12 a key, 16 a request); data-% compares it with the
// data modelled as bucket+key+100 bytes a key.
func BenchmarkCompare(b *testing.B) {
	base := benchReplica()
	dataBytes := 0
	for i := range benchKeys {
		bk, k := bucketKey(i)
		dataBytes += len(bk) + len(k) + 100
	}
	for _, k := range []int{0, 1, 100, 10_000} {
		b.Run(fmt.Sprintf("divergent=%d", k), func(b *testing.B) {
			local, remote := base.clone(), base.clone()
			diverge(local, remote, benchKeys, k)
			ctx := context.Background()
			var res Result
			for b.Loop() {
				var err error
				res, err = Compare(ctx, part, local.shape(), local, remote)
				if err != nil {
					b.Fatal(err)
				}
			}
			if len(res.Keys) != k {
				b.Fatalf("%d keys found, want %d", len(res.Keys), k)
			}
			b.ReportMetric(float64(res.Bytes), "bytes/op")
			b.ReportMetric(100*float64(res.Bytes)/float64(dataBytes), "data-%")
			b.ReportMetric(float64(res.SegmentsDiffered), "segments/op")
		})
	}
}
