package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/hints"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Hinted handoff: a fallback keeps what it received for a down primary as hints in its own
// store (package hints). A loop hands them to their primary once the failure detector sees
// it up again — at once on the membership change, and every HandoffInterval as a retry —
// in batches, throttled to HintRate bytes/s. The primary merges each hinted object with
// the normal version rules (a hint never overwrites a newer write: it merges) and answers
// only once the batch is synced; the fallback then deletes each hint it delivered, unless a
// write was merged into it meanwhile. A crash anywhere in between resends, never loses:
// merging the same object twice changes nothing.

// handoffState tracks the handoffs in progress, one per target at most.
type handoffState struct {
	mu      sync.Mutex
	running map[string]bool
	kick    chan struct{}
}

func (n *Node) startHandoff() {
	n.handoff.running = map[string]bool{}
	n.handoff.kick = make(chan struct{}, 1)
	n.bg.Add(1)
	go n.handoffLoop()
}

// kickHandoff asks the loop for a round now (a member came back, say).
func (n *Node) kickHandoff() {
	select {
	case n.handoff.kick <- struct{}{}:
	default:
	}
}

func (n *Node) handoffLoop() {
	defer n.bg.Done()
	tick := time.NewTicker(n.cfg.HandoffInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-n.handoff.kick:
		}
		if c, b, err := n.hints.Expire(n.physMs()); err != nil {
			n.log.Error("hint expiry failed", "err", err)
		} else if c > 0 {
			n.log.Warn("hints expired: older than the hint window; those keys heal by read repair and anti-entropy",
				"hints", c, "bytes", b, "window", n.cfg.HintWindow)
		}
		for _, target := range n.hints.Targets() {
			if target == n.cfg.ID || !n.alive(target) {
				continue
			}
			n.handoff.mu.Lock()
			busy := n.handoff.running[target]
			n.handoff.running[target] = true
			n.handoff.mu.Unlock()
			if busy {
				continue
			}
			n.bg.Add(1)
			go func() {
				defer n.bg.Done()
				defer func() {
					n.handoff.mu.Lock()
					delete(n.handoff.running, target)
					n.handoff.mu.Unlock()
				}()
				if !n.handoffTo(n.ctx, target) && n.ctx.Err() == nil {
					// A failed handoff (the target just came back and is not
					// reachable yet, say) retries in a second, not a whole interval.
					time.AfterFunc(time.Second, n.kickHandoff)
				}
			}()
		}
	}
}

// handoffTo delivers target's hints in batches until none are left or a batch fails; it
// reports whether it finished.
func (n *Node) handoffTo(ctx context.Context, target string) bool {
	start := time.Now()
	var delivered, bytes int
	var cursor []byte
	n.log.Info("handoff started", "target", target)
	var failure error
	for ctx.Err() == nil {
		hs, next, err := n.hints.Batch(target, cursor, n.cfg.HandoffBatchBytes)
		if err != nil {
			failure = fmt.Errorf("read hints: %w", err)
			break
		}
		if len(hs) == 0 {
			break
		}
		req := &pb.HandoffRequest{Items: make([]*pb.HandoffItem, 0, len(hs))}
		size, stale := 0, 0
		for _, h := range hs {
			if n.staleHint(h) {
				stale++
				continue
			}
			req.Items = append(req.Items, &pb.HandoffItem{Bucket: h.Bucket, Key: h.Key, Object: h.Object})
			size += len(h.Object)
		}
		if len(req.Items) > 0 {
			if err := n.sendHandoff(ctx, target, req); err != nil {
				failure = err
				break
			}
		}
		if stale > 0 {
			n.metrics.hintsStale.Add(float64(stale))
			n.log.Warn("hints older than their bucket's gc_grace discarded, not delivered (they could resurrect a reaped delete)",
				"target", target, "hints", stale)
		}
		d, err := n.hints.Delivered(hs, false)
		if err != nil {
			failure = fmt.Errorf("delete delivered hints: %w", err)
			break
		}
		delivered += d
		bytes += size
		n.metrics.hintsDelivered.Add(float64(d))
		n.metrics.handoffBytes.Add(float64(size))
		if next == nil {
			break
		}
		cursor = next
		n.throttle(ctx, size)
	}
	elapsed := time.Since(start)
	if failure != nil {
		n.log.Warn("handoff interrupted; will retry", "target", target, "delivered", delivered, "bytes", bytes, "elapsed", elapsed, "err", failure)
		return false
	}
	n.log.Info("handoff finished", "target", target, "delivered", delivered, "bytes", bytes, "elapsed", elapsed)
	return true
}

// staleHint reports a hint whose every sibling is older than its bucket's gc_grace: a
// delete that superseded it may have been reaped everywhere since, and delivering it would
// bring the value back. (With the default 3 h hint window and 10 day gc_grace this never
// happens; it guards buckets whose gc_grace is shorter than the hint window.)
func (n *Node) staleHint(h hints.Hint) bool {
	obj, err := version.Decode(h.Object)
	if err != nil {
		return false // the receiver refuses it and says why
	}
	return n.pastGCGrace(obj, n.Bucket(h.Bucket))
}

// throttle sleeps as long as sending size bytes takes at HintRate.
func (n *Node) throttle(ctx context.Context, size int) {
	if n.cfg.HintRate <= 0 {
		return
	}
	d := time.Duration(float64(size) / float64(n.cfg.HintRate) * float64(time.Second))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (n *Node) sendHandoff(ctx context.Context, target string, req *pb.HandoffRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := n.call(ctx, target, &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: req}})
	if err != nil {
		return fmt.Errorf("send to %s: %w", target, err)
	}
	if e := resp.GetError(); e != nil {
		return fmt.Errorf("%s refused the batch: %w", target, remoteError(e.Code, e.Message))
	}
	if resp.GetHandoffResp() == nil {
		return fmt.Errorf("%s: unexpected answer %T", target, resp.Body)
	}
	return nil
}

// handleHandoff merges a batch of hinted objects into this node's replicas. It checks
// every item before applying any, so a corrupt batch changes nothing, and answers only
// once the batch is on disk.
func (n *Node) handleHandoff(r *pb.HandoffRequest) *pb.Envelope {
	objs := make([]version.Object, len(r.Items))
	for i, it := range r.Items {
		if err := n.validKey(it.Bucket, it.Key); err != nil {
			return errorEnvelope(fmt.Errorf("handoff item %d: %w", i, err))
		}
		obj, err := version.Decode(it.Object)
		if err != nil {
			return errorEnvelope(fmt.Errorf("%w: handoff item %d (%s/%s): %v", ErrBadRequest, i, it.Bucket, it.Key, err))
		}
		objs[i] = obj
	}
	for i, it := range r.Items {
		lww := n.Bucket(it.Bucket).Conflict == "lww"
		if _, err := n.applyMerge(it.Bucket, it.Key, objs[i], lww, false); err != nil {
			return errorEnvelope(fmt.Errorf("handoff item %d: %w", i, err))
		}
	}
	// One fsync for the batch: the WAL is sequential, so it makes every write above
	// durable before the fallback is told it may delete its hints.
	if len(r.Items) > 0 {
		if err := n.syncStore(); err != nil {
			return errorEnvelope(err)
		}
	}
	n.metrics.handoffReceived.Add(float64(len(r.Items)))
	return &pb.Envelope{Body: &pb.Envelope_HandoffResp{HandoffResp: &pb.HandoffResponse{Applied: int32(len(r.Items))}}}
}

// syncStore makes every earlier write durable (one synced write of a marker key).
func (n *Node) syncStore() error {
	if err := n.store.Put([]byte(keySyncMarker), []byte{1}, storage.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// HintTarget is one target's pending hints (GET /v1/admin/hints).
type HintTarget struct {
	Target     string  `json:"target"`
	State      string  `json:"state"`
	Pending    int     `json:"pending"`
	Bytes      int64   `json:"bytes"`
	OldestAgeS float64 `json:"oldest_age_s"`
	Delivered  uint64  `json:"delivered"`
	Expired    uint64  `json:"expired"`
	Dropped    uint64  `json:"dropped"`
	Handoff    bool    `json:"handoff_running"`
}

// HintsInfo is GET /v1/admin/hints.
type HintsInfo struct {
	Node     string       `json:"node"`
	Pending  int          `json:"pending"`
	Bytes    int64        `json:"bytes"`
	WindowS  float64      `json:"window_s"`
	MaxBytes int64        `json:"max_bytes_per_target"`
	Targets  []HintTarget `json:"targets"`
}

// Hints describes the hints this node keeps for other nodes.
func (n *Node) Hints() HintsInfo {
	now := n.physMs()
	hi := HintsInfo{Node: n.cfg.ID, WindowS: n.cfg.HintWindow.Seconds(), MaxBytes: n.cfg.HintMaxBytes, Targets: []HintTarget{}}
	n.handoff.mu.Lock()
	running := make(map[string]bool, len(n.handoff.running))
	for k, v := range n.handoff.running {
		running[k] = v
	}
	n.handoff.mu.Unlock()
	for _, st := range n.hints.Stats() {
		ht := HintTarget{Target: st.Target, State: "down", Pending: st.Pending, Bytes: st.Bytes,
			Delivered: st.Delivered, Expired: st.Expired, Dropped: st.Dropped, Handoff: running[st.Target]}
		if m, ok := n.member(st.Target); ok {
			ht.State = string(m.State)
		}
		if st.Pending > 0 && st.OldestMs > 0 {
			ht.OldestAgeS = float64(now-st.OldestMs) / 1000
		}
		hi.Pending += st.Pending
		hi.Bytes += st.Bytes
		hi.Targets = append(hi.Targets, ht)
	}
	return hi
}

// hintCollector exports the hint queues' state at scrape time.
type hintCollector struct {
	n                                      *Node
	pending, pendingBytes                  *prometheus.Desc
	delivered, expired, dropped, oldestAge *prometheus.Desc
}

func newHintCollector(n *Node) *hintCollector {
	l := []string{"target"}
	return &hintCollector{
		n:            n,
		pending:      prometheus.NewDesc("quorumkv_hints_pending", "Hints kept for a target, waiting for handoff.", l, nil),
		pendingBytes: prometheus.NewDesc("quorumkv_hints_pending_bytes", "Bytes of hints kept for a target.", l, nil),
		oldestAge:    prometheus.NewDesc("quorumkv_hints_oldest_age_seconds", "Age of the oldest pending hint for a target.", l, nil),
		delivered:    prometheus.NewDesc("quorumkv_hints_delivered_by_target_total", "Hints handed off to a target since start.", l, nil),
		expired:      prometheus.NewDesc("quorumkv_hints_expired_total", "Hints dropped because they outlived the hint window, since start.", l, nil),
		dropped:      prometheus.NewDesc("quorumkv_hints_dropped_total", "Hints refused because the target's hint bytes were at the bound, since start.", l, nil),
	}
}

func (c *hintCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.pending, c.pendingBytes, c.oldestAge, c.delivered, c.expired, c.dropped} {
		ch <- d
	}
}

func (c *hintCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.n.Hints().Targets {
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(t.Pending), t.Target)
		ch <- prometheus.MustNewConstMetric(c.pendingBytes, prometheus.GaugeValue, float64(t.Bytes), t.Target)
		ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, t.OldestAgeS, t.Target)
		ch <- prometheus.MustNewConstMetric(c.delivered, prometheus.CounterValue, float64(t.Delivered), t.Target)
		ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(t.Expired), t.Target)
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(t.Dropped), t.Target)
	}
}
