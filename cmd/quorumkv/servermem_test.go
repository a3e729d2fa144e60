package main

import (
	"runtime/metrics"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		mb           int
		live, stacks uint64
		want         int64
	}{
		{0, 0, 0, noMemoryLimit},
		{-1, 1 << 30, 0, noMemoryLimit},
		{128, 0, 0, 128 << 20},
		{128, 40 << 20, 1 << 20, 128 << 20},  // a small live heap: the configured limit
		{128, 60 << 20, 8 << 20, 128 << 20},  // heap and stacks at the limit: the same
		{128, 100 << 20, 0, 200 << 20},       // past half: twice the live heap, never less
		{128, 69 << 20, 70 << 20, 208 << 20}, // 8,000 pipelined commands' stacks count too
		{128, 1 << 62, 1 << 62, 3 << 60},     // no overflow
	} {
		if got := memoryLimit(c.mb, c.live, c.stacks); got != c.want {
			t.Errorf("memoryLimit(%d MiB, live %d, stacks %d) = %d, want %d", c.mb, c.live, c.stacks, got, c.want)
		}
	}
}

// TestMemoryMetricsExist: the guard reads these runtime metrics; a name the runtime does
// not know reads as KindBad, and the guard would then keep the limit where it was.
func TestMemoryMetricsExist(t *testing.T) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	for _, m := range s {
		if m.Value.Kind() != metrics.KindUint64 {
			t.Errorf("runtime metric %s: kind %v, want uint64", m.Name, m.Value.Kind())
		}
	}
}
