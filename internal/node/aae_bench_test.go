package node

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/version"
)

// BenchmarkExchangeMillion measures an anti-entropy repair run between two real in-process
// nodes holding the same 1,000,000 keys, with 1, 100 and 10,000 of them divergent: time,
// bytes on the wire, and the trees' memory. It writes 2M objects first (about half a minute),
// so it runs only with QKV_BENCH_MILLION=1:
//
//	QKV_BENCH_MILLION=1 go test -run XXX -bench ExchangeMillion -benchtime 1x ./internal/node
func BenchmarkExchangeMillion(b *testing.B) {
	if os.Getenv("QKV_BENCH_MILLION") == "" {
		b.Skip("set QKV_BENCH_MILLION=1 to run (writes 2M objects)")
	}
	t := &testing.T{}
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	const keys = 1_000_000
	value := make([]byte, 40)
	dataBytes := 0
	start := time.Now()
	objOf := func(i int, counter uint64, v string) (version.Object, []byte) {
		copy(value, v)
		obj := version.Object{}.Update(nil, version.Sibling{Dot: version.Dot{Actor: "w.1", Counter: counter},
			Value: value, Timestamp: version.HLC{Wall: 1_700_000_000_000 + int64(i)}})
		return obj, obj.AppendBinary(nil)
	}
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("key-%07d", i)
		_, enc := objOf(i, uint64(i+1), fmt.Sprintf("value-%07d", i))
		for _, n := range nodes {
			if err := n.writeRaw("b", key, enc); err != nil {
				b.Fatal(err)
			}
		}
		dataBytes += len(enc) + len(key)
	}
	b.Logf("wrote %d keys on both nodes in %v; %d data bytes; tree memory per node %d bytes",
		keys, time.Since(start), dataBytes, n1.treeInfo(false).Bytes)
	b.ReportMetric(float64(n1.treeInfo(false).Bytes)/keys, "tree-bytes/key")
	next := uint64(2 * keys)
	b.ResetTimer()
	for range b.N {
		for _, d := range []int{1, 100, 10_000} {
			b.StopTimer()
			for i := 0; i < d; i++ {
				key := fmt.Sprintf("key-%07d", i*97%keys)
				next++
				_, enc := objOf(i, next, "newer")
				if err := n1.writeRaw("b", key, enc); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			t0 := time.Now()
			sum, err := n1.Repair(context.Background(), -1, n2.ID(), nil)
			if err != nil || sum.Errors != 0 || sum.KeysRepaired != d {
				b.Fatalf("repair: %+v %v", sum, err)
			}
			b.Logf("%6d divergent of %d: %v, %d bytes (%.4f%% of the data), %d segments differed",
				d, keys, time.Since(t0).Round(time.Millisecond), sum.BytesSent, 100*float64(sum.BytesSent)/float64(dataBytes), sum.SegmentsDiffered)
		}
	}
}
