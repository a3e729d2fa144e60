package main

import "testing"

func TestMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		mb   int
		live uint64
		want int64
	}{
		{0, 0, noMemoryLimit},
		{-1, 1 << 30, noMemoryLimit},
		{128, 0, 128 << 20},
		{128, 40 << 20, 128 << 20},    // a small live heap: the configured limit
		{128, 64 << 20, 128 << 20},    // at half the limit: the same
		{128, 100 << 20, 200 << 20},   // past half: twice the live heap, never less
		{128, 1 << 62, 2 * (1 << 61)}, // no overflow
	} {
		if got := memoryLimit(c.mb, c.live); got != c.want {
			t.Errorf("memoryLimit(%d MiB, live %d) = %d, want %d", c.mb, c.live, got, c.want)
		}
	}
}
