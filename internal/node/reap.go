package node

import (
	"context"
	"fmt"
	"github.com/quorumkv/quorumkv/internal/core"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Tombstone reaping: a delete leaves a tombstone so that a replica that slept through the
// delete cannot bring the value back. A tombstone is removed only when both hold: its
// bucket's gc_grace has passed since the delete, and every primary of the key is known to
// hold this very tombstone — checked, just before reaping, by asking each primary for its
// copy (a primary holding nothing has reaped it already). A primary that is down, or
// holds anything else, keeps the tombstone alive here.

func (n *Node) reapLoop() {
	defer n.bg.Done()
	for sleepCtx(n.ctx, n.cfg.ReapInterval) {
		if _, err := n.ReapTombstones(n.ctx); err != nil && n.ctx.Err() == nil {
			n.log.Warn("tombstone reaping stopped early", "err", err)
		}
	}
}

// ReapTombstones scans this node's data once and reaps the tombstones it may. It returns
// how many it reaped.
func (n *Node) ReapTombstones(ctx context.Context) (int, error) {
	type cand struct {
		bucket, key string
		raw         []byte
	}
	var cands []cand
	err := n.store.Scan([]byte(prefixData), []byte{prefixData[0] + 1}, func(k, v []byte) bool {
		if ctx.Err() != nil {
			return false
		}
		bucket, key, ok := core.ParseDataKey(k)
		if !ok {
			return true
		}
		obj, err := version.Decode(v)
		if err != nil || !obj.Deleted() || !core.PastGCGrace(obj, n.Bucket(bucket), n.physMs()) {
			return true
		}
		cands = append(cands, cand{bucket, key, append([]byte(nil), v...)})
		return true
	})
	if err != nil {
		return 0, fmt.Errorf("scan for tombstones: %w", err)
	}
	reaped := 0
	for _, c := range cands {
		if ctx.Err() != nil {
			return reaped, ctx.Err()
		}
		ok, err := n.everyPrimaryHolds(ctx, c.bucket, c.key, c.raw)
		if err != nil || !ok {
			continue
		}
		var done bool
		if derr := n.loop.do(ctx, func(co *core.Core) { done, err = co.Reap(c.bucket, c.key, c.raw) }); derr != nil {
			return reaped, derr
		}
		if err != nil {
			return reaped, err
		}
		if done { // unchanged since it was checked
			reaped++
			n.metrics.tombstonesReaped.Inc()
		}
	}
	if reaped > 0 {
		n.log.Info("tombstones reaped", "count", reaped, "candidates", len(cands))
	}
	return reaped, nil
}

// everyPrimaryHolds asks every other primary of a key whether it holds exactly this stored
// object, or nothing at all (it reaped the tombstone already).
func (n *Node) everyPrimaryHolds(ctx context.Context, bucket, key string, raw []byte) (bool, error) {
	rs, err := n.replicas(ctx, bucket, key)
	if err != nil {
		return false, err
	}
	if !slices.Contains(rs.Primaries, n.cfg.ID) {
		return false, nil // not ours to judge (the ring moved); a primary will
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, p := range rs.Primaries {
		if p == n.cfg.ID {
			continue
		}
		resp, err := n.call(ctx, p, &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: bucket, Key: key}}})
		if err != nil {
			return false, nil // unreachable: cannot confirm
		}
		gr := resp.GetGetResp()
		if gr == nil || gr.Found && string(gr.Object) != string(raw) {
			return false, nil
		}
		// A primary holding nothing has reaped this tombstone already (it confirmed, before
		// reaping, that every primary held it) or never had the key; either way it has no
		// older value to bring back (hints older than gc_grace are discarded, not
		// delivered). Requiring it to hold the tombstone would let only the first primary
		// ever reap: the others would keep the tombstone forever.
	}
	return true, nil
}

// treeCollector exports the hash trees' state at scrape time.
type treeCollector struct {
	n                                      *Node
	ready, progress, rebuilds, drift, size *prometheus.Desc
}

func newTreeCollector(n *Node) *treeCollector {
	return &treeCollector{
		n:        n,
		ready:    prometheus.NewDesc("quorumkv_aae_trees_ready", "1 once the hash trees describe the data (first rebuild done).", nil, nil),
		progress: prometheus.NewDesc("quorumkv_aae_tree_rebuild_progress", "Progress of the running (or last) tree rebuild, 0 to 1.", nil, nil),
		rebuilds: prometheus.NewDesc("quorumkv_aae_tree_rebuilds_total", "Completed tree rebuilds.", nil, nil),
		drift:    prometheus.NewDesc("quorumkv_aae_tree_drift_total", "Partitions whose live tree differed from a rebuild (silent corruption or a bug).", nil, nil),
		size:     prometheus.NewDesc("quorumkv_aae_tree_bytes", "Memory held by the hash trees.", nil, nil),
	}
}

func (c *treeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ready, c.progress, c.rebuilds, c.drift, c.size} {
		ch <- d
	}
}

func (c *treeCollector) Collect(ch chan<- prometheus.Metric) {
	ts := c.n.trees
	ready := 0.0
	if ts.ready.Load() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(c.progress, prometheus.GaugeValue, float64(ts.progress.Load())/1e6)
	ch <- prometheus.MustNewConstMetric(c.rebuilds, prometheus.CounterValue, float64(ts.rebuilds.Load()))
	ch <- prometheus.MustNewConstMetric(c.drift, prometheus.CounterValue, float64(ts.drift.Load()))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(ts.memoryBytes()))
}
