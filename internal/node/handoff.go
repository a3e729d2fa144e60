package node

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/core"
)

// Hinted handoff is the core's (package core): this file reports on it.

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
	var running map[string]bool
	_ = n.loops[0].do(context.Background(), func(c *core.Core) { running = c.HandoffRunning() }) // shard 0 hands hints off
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
