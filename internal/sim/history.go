package sim

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/version"
)

// writeRec is one write a client issued.
type writeRec struct {
	key     string
	dot     version.Dot
	ts      version.HLC
	value   []byte
	tomb    bool
	expires int64
	acked   bool
	ackAt   time.Duration
	// covers are the earlier writes of the same key and actor that this write's clock
	// claims without having seen them (kv679): none of them may be acknowledged.
	covers []*writeRec
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
	// keys are the keys clients wrote, in first-write order (the convergence check's).
	keys    []string
	written map[string]bool
	lww     bool // plain keys resolve by last-write-wins
	// reapedClock joins, per key, the clocks of the tombstones (and expired values) reaped:
	// every write they cover was deleted or expired, and must never be read again.
	reapedClock map[string]version.Clock
	// maxSkew is the largest clock skew any node has had: how late a read may still see a
	// value live past its expiry.
	maxSkew time.Duration
	// ttlWrites counts the writes minted with an expiry.
	ttlWrites int
	// minted lists, per key and actor, the writes minted, for wrote's kv679 check.
	minted map[string]map[string][]*writeRec
}

func newHistory() *history {
	return &history{byDot: map[version.Dot]*writeRec{}, acked: map[string][]*writeRec{},
		lastRead: map[string]version.Object{}, kCounts: map[int]int{},
		counterAcked: map[string]int64{}, counterUnknown: map[string]int64{}, written: map[string]bool{},
		reapedClock: map[string]version.Clock{}, minted: map[string]map[string][]*writeRec{}}
}

func (h *history) violate(format string, args ...any) {
	if len(h.violations) < 100 {
		h.violations = append(h.violations, fmt.Sprintf(format, args...))
	}
}

// touch notes that a client writes key.
func (h *history) touch(key string) {
	if !h.written[key] {
		h.written[key] = true
		h.keys = append(h.keys, key)
	}
}

// wrote records a sibling a core minted (core.Deps.OnMint), acknowledged or not, and the
// earlier writes of its key and actor it claims without having seen them (above seen):
// a replica holding one drops it as superseded, so none may be acknowledged (checkUnseen).
func (h *history) wrote(_, key string, s version.Sibling, seen uint64) {
	if prev := h.byDot[s.Dot]; prev != nil {
		h.violate("dot %s minted twice (keys %s and %s)", s.Dot, prev.key, key)
		return
	}
	rec := &writeRec{key: key, dot: s.Dot, ts: s.Timestamp, value: bytes.Clone(s.Value), tomb: s.Tombstone, expires: s.Expires}
	h.byDot[s.Dot] = rec
	if s.Expires != 0 {
		h.ttlWrites++
	}
	byActor := h.minted[key]
	if byActor == nil {
		byActor = map[string][]*writeRec{}
		h.minted[key] = byActor
	}
	// An actor's counters only grow (its minter's, across restarts too), so its writes of
	// the key are in counter order, all below this one: those above seen are the unseen.
	prevs := byActor[s.Dot.Actor]
	i := sort.Search(len(prevs), func(i int) bool { return prevs[i].dot.Counter > seen })
	rec.covers = slices.Clone(prevs[i:])
	byActor[s.Dot.Actor] = append(prevs, rec)
}

// checkUnseen: no write's clock claims an acknowledged write of its own actor it never
// saw (Riak's kv679: a coordinator that lost its copy of a write it acknowledged, in a
// crash, would mint a later dot covering it, and every replica would drop the write).
func (h *history) checkUnseen() {
	dots := make([]version.Dot, 0, len(h.byDot))
	for d, rec := range h.byDot {
		if len(rec.covers) > 0 {
			dots = append(dots, d)
		}
	}
	sort.Slice(dots, func(i, j int) bool {
		return dots[i].Actor < dots[j].Actor || dots[i].Actor == dots[j].Actor && dots[i].Counter < dots[j].Counter
	})
	for _, d := range dots {
		rec := h.byDot[d]
		for _, c := range rec.covers {
			// A write a reaped tombstone had superseded is gone from every copy by design:
			// the next write may cover it without having seen it.
			if c.acked && !h.reapedClock[rec.key].Contains(c.dot) {
				h.violate("write %s of %s claims acknowledged write %s, which its coordinator never saw (kv679)", rec.dot, rec.key, c.dot)
			}
		}
	}
}

// unexpired checks that a read that began at start (virtual time) returned no value whose
// expiry had passed by then, beyond the clock skew the run has had: an expired value reads
// as absent on every node.
func (h *history) unexpired(key string, start time.Duration, obj version.Object) {
	limit := baseWall + int64((start-h.maxSkew)/time.Millisecond)
	for _, s := range obj.Siblings {
		if s.Expires != 0 && s.Expires <= limit {
			h.violate("read of %s at %v returned %s=%q, expired at %v", key, start, s.Dot, s.Value,
				time.Duration(s.Expires-baseWall)*time.Millisecond)
		}
	}
}

// ack records a write acknowledged to its client at time at, identified as the client
// can: its reply's context holds the new dot (with the clock the client wrote with) and
// the new sibling's timestamp.
func (h *history) ack(key, ctx string, at time.Duration) error {
	clk, ts, err := version.DecodeContext(ctx)
	if err != nil {
		return fmt.Errorf("its context %q: %w", ctx, err)
	}
	var rec *writeRec
	for _, e := range clk {
		r := h.byDot[version.Dot{Actor: e.Actor, Counter: e.Counter}]
		if r == nil || r.key != key || r.ts != ts || r.acked {
			continue
		}
		if rec != nil {
			return fmt.Errorf("its context %s names two new writes, %s and %s", clk, rec.dot, r.dot)
		}
		rec = r
	}
	if rec == nil {
		return fmt.Errorf("its context %s at %s names no write minted for it", clk, ts)
	}
	// A write that saw another must carry a later timestamp (the hybrid logical clock
	// observes the context's), whatever the coordinators' clock skew: last-write-wins
	// then keeps the causally later one.
	for _, e := range clk {
		if r := h.byDot[version.Dot{Actor: e.Actor, Counter: e.Counter}]; r != nil && r != rec && r.key == key && r.ts.Compare(ts) >= 0 {
			return fmt.Errorf("write %s at %s saw write %s at %s: a causally later write got an earlier timestamp", rec.dot, ts, r.dot, r.ts)
		}
	}
	rec.acked, rec.ackAt = true, at
	h.acked[key] = append(h.acked[key], rec)
	return nil
}

// reaped records that a replica reaped key's tombstone, whose clock was clk.
func (h *history) reaped(key string, clk version.Clock) {
	h.reapedClock[key] = version.Join(h.reapedClock[key], clk)
}

// seen reports whether a read's object reflects write dot: its clock covers it, or the
// key is absent because a tombstone covering it was reaped.
func (h *history) seen(key string, obj version.Object, dot version.Dot) bool {
	if obj.Clock.Contains(dot) {
		return true
	}
	return len(obj.Siblings) == 0 && h.reapedClock[key].Contains(dot)
}

// resurrected reports a value that a reaped delete (or reaped expired value) had
// superseded. (A tombstone or an expired value covered by a reaped one may still be held —
// a replica that has not reaped it yet — and is harmless: the key reads as absent. wallMs
// is the time to judge expiry at; reads never return expired values, see unexpired.)
func (h *history) resurrected(key string, s version.Sibling, wallMs int64) bool {
	rc := h.reapedClock[key]
	return !s.Dead(wallMs) && len(rc) > 0 && rc.Contains(s.Dot)
}

// read checks a read's answer and measures its staleness against the writes acknowledged
// before it started.
func (h *history) read(key string, start time.Duration, obj version.Object, err error, bins []time.Duration) {
	if err != nil {
		h.failedReads++
		return
	}
	h.reads++
	if h.lww && len(obj.Siblings) > 1 {
		h.violate("read of %s in an lww bucket returned %d siblings", key, len(obj.Siblings))
	}
	for _, s := range obj.Siblings {
		rec := h.byDot[s.Dot]
		if rec == nil || rec.key != key || !bytes.Equal(rec.value, s.Value) || rec.tomb != s.Tombstone {
			h.violate("read of %s returned %s=%q, which was never written", key, s.Dot, s.Value)
		}
		if h.resurrected(key, s, 0) {
			h.violate("read of %s returned %s=%q, deleted by a tombstone since reaped: it came back", key, s.Dot, s.Value)
		}
	}
	if prev, ok := h.lastRead[key]; !ok || obj.Clock.Descends(prev.Clock) || !prev.Clock.Descends(obj.Clock) {
		h.lastRead[key] = obj
	}
	// Walk back from the newest write acknowledged before the read began: k is how many
	// of those the read missed before the first one it saw (k-staleness).
	acked := h.acked[key]
	// Acknowledgements are in time order and a read starts after nearly all of them: walk
	// back from the newest.
	i := len(acked) - 1
	for i >= 0 && acked[i].ackAt > start {
		i--
	}
	var newest *writeRec
	if i >= 0 {
		newest = acked[i]
	}
	k := 0
	for ; i >= 0 && !h.seen(key, obj, acked[i].dot); i-- {
		k++
	}
	h.kCounts[k]++
	if newest == nil {
		return
	}
	fresh := h.seen(key, obj, newest.dot)
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
	h.checkUnseen()
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
		for _, s := range merged.Siblings {
			if h.resurrected(key, s, baseWall+int64(w.now/time.Millisecond)) {
				h.violate("%s holds %s=%q, deleted by a tombstone since reaped: it came back", key, s.Dot, s.Value)
			}
		}
		if h.lww && bucketOf(key) == simBucket {
			h.checkLWW(w, key, merged)
		}
		for _, rec := range h.acked[key] {
			if !merged.Clock.Contains(rec.dot) && !h.reapedClock[key].Contains(rec.dot) {
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

// checkLWW: in an lww bucket every primary holds at most one sibling, and the one that
// survives their merge is the latest acknowledged write (by timestamp) not reaped since.
func (h *history) checkLWW(w *world, key string, merged version.Object) {
	for _, j := range w.primaries(key) {
		if obj, _ := w.nodes[j].load(key); len(obj.Siblings) > 1 {
			h.violate("%s holds %d siblings of %s in an lww bucket", w.nodes[j].name, len(obj.Siblings), key)
		}
	}
	win := merged.LWW()
	if len(win.Siblings) == 0 {
		return
	}
	for _, rec := range h.acked[key] {
		if rec.ts.Compare(win.Siblings[0].Timestamp) > 0 && !h.reapedClock[key].Contains(rec.dot) {
			h.violate("%s: acknowledged write %s at %s is later than the surviving %s at %s", key, rec.dot, rec.ts,
				win.Siblings[0].Dot, win.Siblings[0].Timestamp)
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
	p := w.ring.PartitionOf(bucketOf(key), key)
	var out []int
	for _, id := range w.walks[p][:min(w.cfg.N, len(w.walks[p]))] {
		out = append(out, nodeIndex(string(id)))
	}
	return out
}

// converged reports whether no client request is in flight, every written key's primaries
// hold equal copies and no hint is left (when hints are handed off at all); after a
// cluster change, also that no node holds a copy of a key it does not replicate.
func (w *world) converged() bool {
	if len(w.clients) > 0 || w.next != nil {
		return false // a request in flight may still change a key; a change is under way
	}
	for _, n := range w.nodes {
		if n.store == nil {
			continue // never started (its join never came)
		}
		if n.hints == nil || w.cfg.HintedHandoff && len(n.hints.Targets()) > 0 {
			return false
		}
	}
	if w.rep.ClusterChanges > 0 && w.strayCopies() > 0 {
		return false // the old owners have yet to delete what they gave away
	}
	for _, key := range w.hist.keys {
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
