package storage

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// The Pebble benchmarks run on b.TempDir(), so Sync pays a real fsync on
// whatever file system holds the temporary directory.

func openBenchPebble(b *testing.B) *Pebble {
	b.Helper()
	p, err := OpenPebble(b.TempDir(), DefaultPebbleConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

var benchValue = make([]byte, 100)

func reportOps(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkPebblePutSync: one writer, each Put waits for its own fsync.
func BenchmarkPebblePutSync(b *testing.B) {
	p := openBenchPebble(b)
	i := 0
	for b.Loop() {
		if err := p.Put(fmt.Appendf(nil, "key%012d", i), benchValue, WriteOptions{Sync: true}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportOps(b)
}

// BenchmarkPebblePutSyncParallel: 16 writers per GOMAXPROCS; Pebble's
// commit pipeline groups their fsyncs, so ops/s should be far above the
// serial benchmark's.
func BenchmarkPebblePutSyncParallel(b *testing.B) {
	p := openBenchPebble(b)
	var next atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if err := p.Put(fmt.Appendf(nil, "key%012d", i), benchValue, WriteOptions{Sync: true}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportOps(b)
}

// BenchmarkPebblePutNoSync: one writer, no fsync (the WAL is written in
// the background).
func BenchmarkPebblePutNoSync(b *testing.B) {
	p := openBenchPebble(b)
	i := 0
	for b.Loop() {
		if err := p.Put(fmt.Appendf(nil, "key%012d", i), benchValue, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportOps(b)
}

// BenchmarkPebbleGet reads random keys among 100k, flushed to sstables so
// that reads go through the block cache.
func BenchmarkPebbleGet(b *testing.B) {
	// from-tables: the keys flushed to sstables (block cache warm); memtable: the keys
	// still in the memtable, where a replica's read-before-write finds a key written
	// recently (a skiplist seek: in a loaded 3-node cluster it measured 12-15 µs a read);
	// absent: keys never written (the read before a new key's first write), with and
	// without the key filter.
	for _, c := range []struct {
		name          string
		flush, absent bool
		filter        bool
	}{
		{"from-tables", true, false, true},
		{"memtable", false, false, true},
		{"absent/filter", false, true, true},
		{"absent/no-filter", false, true, false},
	} {
		name, flush := c.name, c.flush
		b.Run(name, func(b *testing.B) {
			cfg := DefaultPebbleConfig()
			cfg.KeyFilter = c.filter
			p, err := OpenPebble(b.TempDir(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = p.Close() })
			for c.filter && !p.KeyFilterStats().Ready {
				time.Sleep(time.Millisecond)
			}
			const n = 100_000
			ops := make([]Op, 0, 1000)
			for i := range n {
				ops = append(ops, Op{Key: fmt.Appendf(nil, "key%012d", i), Value: benchValue})
				if len(ops) == cap(ops) {
					if err := p.Write(ops, WriteOptions{}); err != nil {
						b.Fatal(err)
					}
					ops = ops[:0]
				}
			}
			if flush {
				if err := p.db.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			i := uint64(0)
			key := make([]byte, 0, 16)
			b.ReportAllocs()
			for b.Loop() {
				i = i*6364136223846793005 + 1442695040888963407 // an LCG: a spread-out, repeatable order
				key = fmt.Appendf(key[:0], "key%012d", (i>>33)%n)
				if c.absent {
					key = append(key, 'x') // sorts among the keys written, never one of them
				}
				if _, err := p.Get(key); err != nil && !(c.absent && errors.Is(err, ErrNotFound)) {
					b.Fatal(err)
				}
			}
			reportOps(b)
		})
	}
}

func BenchmarkMemoryPut(b *testing.B) {
	m := NewMemory()
	i := 0
	for b.Loop() {
		if err := m.Put(fmt.Appendf(nil, "key%012d", i%10_000), benchValue, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportOps(b)
}

// BenchmarkPebbleReadModifyWrite is a replica's write path as the node runs it: read the
// key (absent the first time), then write it in a batch of 16 (one event-loop turn), keys
// drawn from 1M, 150-byte values, no fsync — long enough (run it with -benchtime=400000x
// or more) that memtables fill, flush and compact. By memtable and block cache size: what
// DefaultPebbleConfig's sizes cost per write. Pebble counts its memtables against the
// cache, so two memtables of half the cache leave no room for the tables' blocks.
func BenchmarkPebbleReadModifyWrite(b *testing.B) {
	for _, c := range []struct{ memtable, cache int }{{8, 64}, {16, 64}, {32, 64}, {32, 128}, {16, 48}} {
		b.Run(fmt.Sprintf("memtable=%dMiB/cache=%dMiB", c.memtable, c.cache), func(b *testing.B) {
			cfg := DefaultPebbleConfig()
			cfg.MemTableBytes, cfg.CacheBytes = c.memtable*mib, int64(c.cache)*mib
			p, err := OpenPebble(b.TempDir(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			value := make([]byte, 150)
			ops := make([]Op, 0, 16)
			keys := make([][]byte, 16)
			i := uint64(1)
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				i = i*6364136223846793005 + 1442695040888963407
				k := fmt.Appendf(keys[len(ops)][:0], "redis\x00key:%012d", (i>>33)%1_000_000)
				keys[len(ops)] = k
				if _, err := p.Get(k); err != nil && err != ErrNotFound {
					b.Fatal(err)
				}
				ops = append(ops, Op{Key: k, Value: value})
				if len(ops) == cap(ops) {
					if err := p.Write(ops, WriteOptions{}); err != nil {
						b.Fatal(err)
					}
					ops = ops[:0]
				}
			}
			// Compactions and flushes run on Pebble's goroutines: the process's CPU counts them.
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			m := p.db.Metrics()
			b.ReportMetric(float64(m.Levels[0].NumFiles), "L0-files")
			b.ReportMetric(float64(m.Flush.Count), "flushes")
			if n := m.BlockCache.Hits + m.BlockCache.Misses; n > 0 {
				b.ReportMetric(100*float64(m.BlockCache.Hits)/float64(n), "cache-hit-%")
			}
		})
	}
}
