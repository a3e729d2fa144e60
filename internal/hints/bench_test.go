package hints

import (
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/internal/storage"
)

// BenchmarkAdd adds unsynced hints for 10k distinct keys (later rounds merge
// into existing hints) on a Pebble store in b.TempDir().
func BenchmarkAdd(b *testing.B) {
	p, err := storage.OpenPebble(b.TempDir(), storage.DefaultPebbleConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	s, err := Open(p, DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	o := obj("n1.aa", 1, string(make([]byte, 100)))
	i := 0
	for b.Loop() {
		if err := s.Add("n2", "bucket", fmt.Sprintf("key%08d", i%10_000), o, int64(i), false); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hints/s")
}

// BenchmarkBatch reads 10k hints of ~100 bytes in 64 KiB batches.
func BenchmarkBatch(b *testing.B) {
	p, err := storage.OpenPebble(b.TempDir(), storage.DefaultPebbleConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	s, err := Open(p, DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	for i := range n {
		o := obj("n1.aa", uint64(i+1), string(make([]byte, 100)))
		if err := s.Add("n2", "bucket", fmt.Sprintf("key%08d", i), o, int64(i), false); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		got := 0
		var cur []byte
		for {
			hs, next, err := s.Batch("n2", cur, 64<<10)
			if err != nil {
				b.Fatal(err)
			}
			got += len(hs)
			if next == nil {
				break
			}
			cur = next
		}
		if got != n {
			b.Fatalf("%d hints, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "hints/s")
}
