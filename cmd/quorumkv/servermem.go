package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The memory of a server process, and the flags that bound it.
//
// A node's memory is Pebble's (the block cache and the memtables, which Pebble counts
// against the cache: storage.DefaultPebbleConfig, outside the Go heap), the row cache's
// (--row-cache-mb: its keys and values in arenas mapped outside the Go heap, so they count
// neither in the live heap nor in the limit below), the Go heap, and the binary's own
// pages. The Go heap's live part is small — hash trees of about 30 bytes
// per key, in-flight requests and buffers: about 40 MB on a node of a 3-node cluster
// holding 1M keys — but the garbage collector lets the heap grow to (1 + GOGC/100) times
// it between collections, and the server raises GOGC to 400 for CPU (tuneGC). Measured
// with scripts/bench-memory.sh (docs/benchmarks.md): with GOGC=400 alone, a node's Go
// heap reached 240 MB at 1M keys (RSS 336 MB); with the soft limit below, 116 MB (RSS 232
// MB; 256 MB with the 16 MiB memtables that came after), for the same CPU per write (the
// collector's share stays under 1%). A soft limit
// makes the collector run sooner once the heap nears it, so the heap stays near the limit
// while the live heap is small, and GOGC=400 still applies below it.
//
// A soft limit under the live heap would make the collector run without pause (the
// runtime caps it at half the CPU): a node holding many more keys than the limit was
// sized for would spend its CPU collecting. So the limit in force is never less than
// twice the live heap, GOGC=100's target, plus the goroutine stacks, which count against
// the limit too, re-read every second (guardMemoryLimit): a node that outgrows the limit
// behaves as with GOGC=100, never worse. The stacks matter under many pipelines: 32
// `redis-cli --pipe` streams keep 8,000 commands in flight, each on a worker goroutine
// (internal/api), 70 MB of stacks beside a 69 MB heap. Without them in the limit, the
// collector ran without pause, and scanned those 8,000 stacks each time: 70% of the
// answering node's CPU, a bulk load at 200 µs of CPU per key instead of 70-90
// (docs/benchmarks.md).

// defaultGoMemoryMB is the default soft limit of the Go runtime's memory: 128 MiB leaves
// the 12-50 MB live heap of a node with 1M keys at least 80 MB to grow between
// collections, and with Pebble's 64 MiB and the binary keeps such a node near 256 MB.
const defaultGoMemoryMB = 128

// memoryGuardInterval is how often the limit in force follows the live heap and the
// stacks.
const memoryGuardInterval = time.Second

// memoryLimit is the limit in force for a configured limit of limitMB MiB (0: none) when
// live bytes of heap survived the last collection and the goroutine stacks take stacks
// bytes: the configured one, or twice the live heap and the stacks if more.
func memoryLimit(limitMB int, live, stacks uint64) int64 {
	if limitMB <= 0 {
		return noMemoryLimit
	}
	return max(int64(limitMB)<<20, 2*int64(min(live, 1<<60))+int64(min(stacks, 1<<60)))
}

// noMemoryLimit is the runtime's "no limit".
const noMemoryLimit = int64(^uint64(0) >> 1)

// tuneGC raises the garbage collector's target to 400% unless GOGC is set: a node's live
// heap is small (caches live in Pebble's manual memory), so the default of 100% collects
// very often; measured on a 3-node cluster under quorum writes, 400% cut server CPU per
// request by about a tenth. It also sets the soft memory limit of limitMB MiB (0: none)
// unless GOMEMLIMIT is set, and keeps it at least twice the live heap until ctx ends.
func tuneGC(ctx context.Context, getenv func(string) string, limitMB int) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") != "" || limitMB <= 0 {
		return
	}
	debug.SetMemoryLimit(memoryLimit(limitMB, 0, 0))
	go guardMemoryLimit(ctx, limitMB)
}

// guardMemoryLimit follows the live heap until ctx ends (see the comment at the top).
func guardMemoryLimit(ctx context.Context, limitMB int) {
	t := time.NewTicker(memoryGuardInterval)
	defer t.Stop()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(memoryLimit(limitMB, s[0].Value.Uint64(), s[1].Value.Uint64()))
		}
	}
}

// releaseStartupMemory collects once the node serves and gives the freed pages back to
// the system: starting leaves garbage the collector, at GOGC=400, would keep for a long
// time on an idle node (with --auth or not, the authenticator hashes a dummy password
// with argon2id, 19 MiB, at start): an idle node's RSS fell from 60 to 40 MB.
func releaseStartupMemory() { debug.FreeOSMemory() }
