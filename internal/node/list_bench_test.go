package node

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/version"
)

// BenchmarkListMillion measures listing throughput: three real in-process nodes (N=3, so
// each holds every key; Pebble stores, the gRPC transport) holding 1,000,000 keys of 40-byte
// values, listed whole at R=1 and R=2 (the default), in pages of 1,000 and 10,000. It
// writes 3M objects first (about a minute), so it runs only with QKV_BENCH_MILLION=1:
//
//	QKV_BENCH_MILLION=1 go test -run XXX -bench ListMillion -benchtime 1x ./internal/node
//
// QKV_BENCH_REPEAT=3 lists each way three times over the one data set (take the median),
// rather than writing the 3M objects again per run.
func BenchmarkListMillion(b *testing.B) {
	if os.Getenv("QKV_BENCH_MILLION") == "" {
		b.Skip("set QKV_BENCH_MILLION=1 to run (writes 3M objects)")
	}
	t := &testing.T{}
	nodes := startNodes(t, 3)
	const keys = 1_000_000
	value := make([]byte, 40)
	start := time.Now()
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("key-%07d", i)
		obj := version.Object{}.Update(nil, version.Sibling{Dot: version.Dot{Actor: "w.1", Counter: uint64(i + 1)},
			Value: value, Timestamp: version.HLC{Wall: 1_700_000_000_000 + int64(i)}})
		enc := obj.AppendBinary(nil)
		for _, n := range nodes {
			if err := n.writeRaw("b", key, enc); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("wrote %d keys on 3 nodes in %v", keys, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	repeat, _ := strconv.Atoi(os.Getenv("QKV_BENCH_REPEAT"))
	for range b.N * max(repeat, 1) {
		for _, tc := range []struct {
			r     string
			limit int
		}{{"1", 1000}, {"2", 1000}, {"1", 10_000}, {"2", 10_000}} {
			t0 := time.Now()
			got, pages := 0, 0
			o := ListOptions{Limit: tc.limit, R: tc.r, Timeout: time.Minute}
			for {
				p, err := nodes[0].List(context.Background(), "b", o)
				if err != nil {
					b.Fatalf("page %d: %v", pages, err)
				}
				got += len(p.Keys)
				pages++
				if p.Next == nil {
					break
				}
				o.Cursor = p.Next
			}
			if got != keys {
				b.Fatalf("listed %d keys, want %d", got, keys)
			}
			d := time.Since(t0)
			b.Logf("r=%s, pages of %5d: %d keys in %d pages, %v: %.0f keys/s", tc.r, tc.limit, got, pages, d.Round(time.Millisecond), float64(got)/d.Seconds())
		}
	}
}
