package core_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/crdt"
)

// BenchmarkPut is the core's whole write path on a three-node virtual cluster (in-memory
// stores, anti-entropy trees on): coordination, replication to the other two primaries,
// their merges and acks. The two cases differ only in the write's TTL, to measure what
// expiry costs (compare them within one run: go test -bench Put -count 6 ./internal/core).
func BenchmarkPut(b *testing.B) {
	for _, tc := range []struct {
		name string
		exp  core.Expiry
	}{
		{"ttl=none", core.Expiry{}},
		{"ttl=1h", core.Expiry{Mode: core.ExpiryTTL, TTL: time.Hour}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := newWorld(b, 3, fixedBuckets{}, nil)
			w.run(time.Second)
			value := make([]byte, 100)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.request("w", "n1", core.ClientRequest{Op: core.OpPut, Bucket: "b", Key: "k" + strconv.Itoa(i), Value: value,
					Write: core.WriteOptions{Expiry: tc.exp}})
				w.run(5 * time.Millisecond)
				if r := w.replies["w"]; r == nil || r.Err != nil {
					b.Fatalf("put %d: %+v", i, r)
				}
			}
		})
	}
}

// BenchmarkSetString is a Redis SET as the core runs it, on the same virtual cluster: a
// blind register assignment through n1 over one of 1,000 keys every replica holds already
// (redis-benchmark's workload), so every replica merges a newer write into its copy.
func BenchmarkSetString(b *testing.B) {
	w := newWorld(b, 3, fixedBuckets{}, nil)
	w.run(time.Second)
	value := strings.Repeat("v", 100)
	const keys = 1000
	set := func(i int) {
		w.request("w", "n1", core.ClientRequest{Op: core.OpCRDT, Bucket: "b", Key: "k" + strconv.Itoa(i%keys),
			CRDT: &core.CRDTOp{Type: crdt.Register, Op: crdt.Op{Assign: &value}, ReplaceType: true, Blind: true}})
		w.run(5 * time.Millisecond)
		if r := w.replies["w"]; r == nil || r.Err != nil {
			b.Fatalf("set %d: %+v", i, r)
		}
	}
	for i := range keys {
		set(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		set(i)
	}
}

// BenchmarkGet is the core's whole read path on the same virtual cluster: a quorum read
// through n1 of a key all three replicas hold alike (the common case: replicas in step),
// its three messages, the replicas' answers and their merge.
func BenchmarkGet(b *testing.B) {
	w := newWorld(b, 3, fixedBuckets{}, nil)
	w.run(time.Second)
	value := make([]byte, 100)
	const keys = 1000
	for i := range keys {
		w.request("w", "n1", core.ClientRequest{Op: core.OpPut, Bucket: "b", Key: "k" + strconv.Itoa(i), Value: value,
			Write: core.WriteOptions{W: "all"}})
		w.run(5 * time.Millisecond)
		if r := w.replies["w"]; r == nil || r.Err != nil {
			b.Fatalf("put %d: %+v", i, r)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.request("r", "n1", core.ClientRequest{Op: core.OpGet, Bucket: "b", Key: "k" + strconv.Itoa(i%keys)})
		w.run(5 * time.Millisecond)
		if r := w.replies["r"]; r == nil || r.Err != nil || len(r.Object.Siblings) != 1 {
			b.Fatalf("get %d: %+v", i, r)
		}
	}
}
