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

// TestTimerPurge: the deadline timers of finished requests are purged as the heap grows,
// so it stays within twice the live timers (and minPurge) however many requests pass,
// while every live timer — a request still in flight, a periodic task — still comes out,
// in (at, seq) order.
func TestTimerPurge(t *testing.T) {
	c := &Core{gets: map[uint64]*getCoord{}}
	var live []timer
	for i := range 100_000 {
		owner := uint64(i + 1)
		at := time.Duration(i) * time.Microsecond
		switch {
		case i%1000 == 0: // a read still in flight
			c.gets[owner] = &getCoord{}
			c.at(at+5*time.Second, timerGetDeadline, owner)
			live = append(live, timer{at: at + 5*time.Second, seq: c.nextMsg, kind: timerGetDeadline, owner: owner})
		case i%5000 == 1: // a periodic task, never dead
			c.at(at+time.Second, timerAAE, 0)
			live = append(live, timer{at: at + time.Second, seq: c.nextMsg, kind: timerAAE})
		default: // a read that finished at once
			c.at(at+5*time.Second, timerGetDeadline, owner)
		}
		if len(c.timers) > 2*len(live)+minPurge {
			t.Fatalf("after %d requests the heap holds %d timers, %d of them live", i+1, len(c.timers), len(live))
		}
	}
	slices.SortFunc(live, func(a, b timer) int {
		if a.before(b) {
			return -1
		}
		return 1
	})
	var got []timer
	for len(c.timers) > 0 {
		if tm := c.timers.pop(); !c.deadTimer(tm) {
			got = append(got, tm)
		}
	}
	if !slices.Equal(got, live) {
		t.Fatalf("live timers out: %d, want %d in (at, seq) order", len(got), len(live))
	}
}
