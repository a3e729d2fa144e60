package sim

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/version"
)

// writeRec is one write a client issued.
type writeRec struct {
	key   string
	dot   version.Dot
	value []byte
	tomb  bool
	acked bool
	ackAt time.Duration
}

// history records what clients did and saw, and checks it.
type history struct {
	byDot      map[version.Dot]*writeRec
	acked      map[string][]*writeRec // per key, in acknowledgement order
	violations []string
	// lastRead is the newest read result of each key: the context clients write with.
	lastRead map[string]version.Object

	reads, stale, failedReads int
	// counter keys: the sum of acknowledged increments, and of those whose outcome is
	// unknown (failed or timed out: they may have been applied).
	counterAcked, counterUnknown map[string]int64
	kCounts                      map[int]int
	visHits, visAll              []int
}

func newHistory() *history {
	return &history{byDot: map[version.Dot]*writeRec{}, acked: map[string][]*writeRec{},
		lastRead: map[string]version.Object{}, kCounts: map[int]int{},
		counterAcked: map[string]int64{}, counterUnknown: map[string]int64{}}
}

func (h *history) violate(format string, args ...any) {
	if len(h.violations) < 100 {
		h.violations = append(h.violations, fmt.Sprintf(format, args...))
	}
}

func (h *history) wrote(key string, dot version.Dot, value []byte, tomb bool) {
	if prev := h.byDot[dot]; prev != nil {
		h.violate("dot %s minted twice (keys %s and %s)", dot, prev.key, key)
		return
	}
	h.byDot[dot] = &writeRec{key: key, dot: dot, value: bytes.Clone(value), tomb: tomb}
}

func (h *history) ack(dot version.Dot, at time.Duration) {
	rec := h.byDot[dot]
	if rec == nil || rec.acked {
		return
	}
	rec.acked, rec.ackAt = true, at
	h.acked[rec.key] = append(h.acked[rec.key], rec)
}

// read checks a read's answer and measures its staleness against the writes acknowledged
// before it started.
func (h *history) read(key string, start time.Duration, a *quorum.Answer, bins []time.Duration) {
	if a.Err != nil {
		h.failedReads++
		return
	}
	h.reads++
	obj := a.Object
	for _, s := range obj.Siblings {
		rec := h.byDot[s.Dot]
		if rec == nil || rec.key != key || !bytes.Equal(rec.value, s.Value) || rec.tomb != s.Tombstone {
			h.violate("read of %s returned %s=%q, which was never written", key, s.Dot, s.Value)
		}
	}
	if prev, ok := h.lastRead[key]; !ok || obj.Clock.Descends(prev.Clock) || !prev.Clock.Descends(obj.Clock) {
		h.lastRead[key] = obj
	}
	// Walk back from the newest write acknowledged before the read began: k is how many
	// of those the read missed before the first one it saw (k-staleness).
	acked := h.acked[key]
	i := sort.Search(len(acked), func(i int) bool { return acked[i].ackAt > start }) - 1
	var newest *writeRec
	if i >= 0 {
		newest = acked[i]
	}
	k := 0
	for ; i >= 0 && !obj.Clock.Contains(acked[i].dot); i-- {
		k++
	}
	h.kCounts[k]++
	if newest == nil {
		return
	}
	fresh := obj.Clock.Contains(newest.dot)
	if !fresh {
		h.stale++
	}
	if len(h.visAll) != len(bins) {
		h.visAll, h.visHits = make([]int, len(bins)), make([]int, len(bins))
	}
	t := start - newest.ackAt
	b := sort.Search(len(bins), func(i int) bool { return bins[i] > t }) - 1
	if b >= 0 {
		h.visAll[b]++
		if fresh {
			h.visHits[b]++
		}
	}
}

func (h *history) counted(key string, incr int64, acked bool) {
	if acked {
		h.counterAcked[key] += incr
	} else {
		h.counterUnknown[key] += incr
	}
}

// checkFinal verifies that every acknowledged write survives in the merge of the
// primaries' copies: its dot is in the clock (it is a value, or a later write that saw it
// superseded it), and where it is still a value, it is that value.
func (h *history) checkFinal(w *world) {
	keys := make([]string, 0, len(h.acked))
	for k := range h.acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i := 0; i < counterKeys(w.cfg); i++ {
		key := counterName(i)
		acked, unknown := h.counterAcked[key], h.counterUnknown[key]
		if acked == 0 && unknown == 0 {
			continue
		}
		var v int64
		s, found, err := crdt.Fold(w.mergedCopy(key))
		switch {
		case err != nil:
			h.violate("counter %s: %v", key, err)
			continue
		case found:
			v = s.Value().(int64)
		}
		if v < acked || v > acked+unknown {
			h.violate("counter %s is %d; acknowledged increments sum to %d, with %d more of unknown outcome", key, v, acked, unknown)
		}
	}
	for _, key := range keys {
		merged := w.mergedCopy(key)
		for _, rec := range h.acked[key] {
			if !merged.Clock.Contains(rec.dot) {
				h.violate("acknowledged write %s of %s is lost", rec.dot, key)
				continue
			}
			for _, s := range merged.Siblings {
				if s.Dot == rec.dot && (!bytes.Equal(s.Value, rec.value) || s.Tombstone != rec.tomb) {
					h.violate("acknowledged write %s of %s holds %q, not %q", rec.dot, key, s.Value, rec.value)
				}
			}
		}
	}
}

// mergedCopy merges every primary's copy of key.
func (w *world) mergedCopy(key string) version.Object {
	var m version.Object
	for _, j := range w.primaries(key) {
		obj, _ := w.nodes[j].load(key)
		m = version.Merge(m, obj)
	}
	return m
}

func (w *world) primaries(key string) []int {
	p, _ := w.locate(key)
	var out []int
	for _, id := range w.walks[p][:min(w.cfg.N, len(w.walks[p]))] {
		out = append(out, nodeIndex(id))
	}
	return out
}

// converged reports whether every key's primaries hold equal copies and no hint is left.
func (w *world) converged() bool {
	for _, n := range w.nodes {
		if len(n.hints.Targets()) > 0 {
			return false
		}
	}
	for i := 0; i < w.cfg.Keys+counterKeys(w.cfg); i++ {
		key := keyName(i)
		if i >= w.cfg.Keys {
			key = counterName(i - w.cfg.Keys)
		}
		var first version.Object
		for x, j := range w.primaries(key) {
			obj, _ := w.nodes[j].load(key)
			if x == 0 {
				first = obj
			} else if !obj.Equal(first) {
				return false
			}
		}
	}
	return true
}

func keyName(i int) string { return fmt.Sprintf("k%06d", i) }
