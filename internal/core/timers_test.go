package core

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestTimerHeapOrder: timers pushed in any order, popped between pushes, come out by
// (at, seq), as a sort of them would give.
func TestTimerHeapOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var h timerHeap
		var pending, popped, want []timer
		seq := uint64(0)
		for range rng.IntN(300) {
			if len(h) > 0 && rng.IntN(3) == 0 {
				got := h.pop()
				slices.SortFunc(pending, func(a, b timer) int {
					if a.before(b) {
						return -1
					}
					return 1
				})
				if got != pending[0] {
					t.Fatalf("round %d: popped %+v, want %+v", round, got, pending[0])
				}
				pending = pending[1:]
				popped = append(popped, got)
				continue
			}
			seq++
			tm := timer{at: time.Duration(rng.IntN(20)), seq: seq, kind: timerKind(rng.IntN(3)), owner: uint64(rng.IntN(5))}
			h.push(tm)
			pending = append(pending, tm)
			want = append(want, tm)
		}
		slices.SortFunc(pending, func(a, b timer) int {
			if a.before(b) {
				return -1
			}
			return 1
		})
		for i := 0; len(h) > 0; i++ {
			got := h.pop()
			if got != pending[i] {
				t.Fatalf("round %d: drained %+v, want %+v", round, got, pending[i])
			}
			popped = append(popped, got)
		}
		if len(popped) != len(want) {
			t.Fatalf("round %d: %d timers out of %d in", round, len(popped), len(want))
		}
	}
}
