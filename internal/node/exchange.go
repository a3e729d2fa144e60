package node

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/core"
)

// Anti-entropy and tombstone reaping are the core's (package core): this file starts them
// on demand and reports on them.

// ExchangeResult is one exchange of a tree with one peer, with its repairs.
type ExchangeResult = core.ExchangeResult

// RepairSummary is the answer of POST /v1/admin/repair.
type RepairSummary struct {
	Exchanges          int              `json:"exchanges"`
	PartitionsCompared int              `json:"partitions_compared"`
	PartitionsDiffered int              `json:"partitions_differed"`
	SegmentsCompared   int              `json:"segments_compared"`
	SegmentsDiffered   int              `json:"segments_differed"`
	KeysRepaired       int              `json:"keys_repaired"`
	BytesSent          int              `json:"bytes_sent"`
	Errors             int              `json:"errors"`
	ElapsedS           float64          `json:"elapsed_s"`
	FailedExchanges    []ExchangeResult `json:"failed_exchanges,omitempty"`
}

// RepairProgress reports an on-demand repair's progress.
type RepairProgress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// Repair runs anti-entropy now: every exchange of this node's trees with their other
// replicas, or only those of one partition (partition >= 0) or with one peer (peer != "").
// progress, when set, is called after each exchange.
func (n *Node) Repair(ctx context.Context, partition int, peer string, progress func(RepairProgress)) (RepairSummary, error) {
	start := time.Now()
	var sum RepairSummary
	if n.cfg.NoAAE {
		return sum, fmt.Errorf("%w: anti-entropy is off on this node (--no-aae)", ErrUnavailable)
	}
	// Each shard exchanges its own partitions' trees; the run is done when all are.
	loops := n.loops
	if partition >= 0 && partition < n.cfg.Partitions {
		loops = []*loop{n.loopForPartition(partition)}
	}
	watch := newRepairWatch()
	for _, l := range loops {
		var id uint64
		if err := l.do(ctx, func(*core.Core) {
			id = l.watchRepair(watch)
			l.step(core.StartRepair{ID: id, Partition: partition, Peer: peer})
		}); err != nil {
			return sum, err
		}
		defer l.submit(func() { delete(l.repairs, id) })
	}
	compared := map[int]bool{}
	differed := map[int]bool{}
	done, total := map[int]int{}, map[int]int{} // by shard
	for finished := 0; finished < len(loops); {
		select {
		case <-watch.sig:
		case <-ctx.Done():
			return sum, ctx.Err()
		case <-n.ctx.Done():
			return sum, n.stoppedErr()
		}
		for _, u := range watch.take() {
			if u.Err != nil {
				return sum, u.Err
			}
			if u.Total > 0 {
				er := u.Result
				sum.Exchanges++
				compared[er.Partition] = true
				if !er.Equal {
					differed[er.Partition] = true
				}
				sum.SegmentsCompared += er.SegmentsCompared
				sum.SegmentsDiffered += er.SegmentsDiffered
				sum.KeysRepaired += er.KeysRepaired
				sum.BytesSent += er.Bytes
				if er.Error != "" {
					sum.Errors++
					if len(sum.FailedExchanges) < 20 {
						sum.FailedExchanges = append(sum.FailedExchanges, er)
					}
				}
				done[u.shard], total[u.shard] = u.Done, u.Total
				if progress != nil {
					progress(sumProgress(done, total))
				}
			}
			if u.Finished {
				finished++
			}
		}
	}
	sum.PartitionsCompared = len(compared)
	sum.PartitionsDiffered = len(differed)
	sum.ElapsedS = time.Since(start).Seconds()
	n.log.Info("anti-entropy repair run", "exchanges", sum.Exchanges, "keys_repaired", sum.KeysRepaired,
		"segments_differed", sum.SegmentsDiffered, "bytes", sum.BytesSent, "errors", sum.Errors)
	return sum, nil
}

// sumProgress is a run's progress over its shards (each knows its own total from the start).
func sumProgress(done, total map[int]int) RepairProgress {
	var p RepairProgress
	for s, t := range total {
		p.Done += done[s]
		p.Total += t
	}
	return p
}

// ReapTombstones runs one reaping pass now (every shard over its own keys) and returns
// how many tombstones it reaped.
func (n *Node) ReapTombstones(ctx context.Context) (int, error) {
	ch := make(chan core.ReapDone, len(n.loops))
	for _, l := range n.loops {
		if err := l.do(ctx, func(*core.Core) {
			id := l.watchReap(ch)
			l.step(core.StartReap{ID: id})
		}); err != nil {
			return 0, err
		}
	}
	reaped := 0
	for range n.loops {
		select {
		case d := <-ch:
			reaped += d.Reaped
		case <-ctx.Done():
			return reaped, ctx.Err()
		case <-n.ctx.Done():
			return reaped, n.stoppedErr()
		}
	}
	return reaped, nil
}

// PartitionRoot is one tree's root.
type PartitionRoot struct {
	Partition int    `json:"partition"`
	N         int    `json:"n"`
	Root      string `json:"root"`
}

// AAEInfo is GET /v1/admin/aae.
type AAEInfo struct {
	Node            string          `json:"node"`
	Ready           bool            `json:"ready"`
	RebuildProgress float64         `json:"rebuild_progress"`
	Rebuilds        int64           `json:"rebuilds"`
	Segments        int             `json:"segments"`
	TreeBytes       int             `json:"tree_bytes"`
	Roots           []PartitionRoot `json:"roots"`
}

func (n *Node) treeInfo(roots bool) core.TreeInfo {
	parts := make([]core.TreeInfo, 0, len(n.loops))
	_ = n.eachCore(context.Background(), func(c *core.Core) { parts = append(parts, c.Trees(roots)) })
	return mergeTreeInfo(parts)
}

// AAE describes this node's hash trees: the root of every tree holding data.
func (n *Node) AAE() AAEInfo {
	ti := n.treeInfo(true)
	info := AAEInfo{Node: n.cfg.ID, Ready: ti.Ready, RebuildProgress: ti.Progress, Rebuilds: ti.Rebuilds,
		Segments: ti.Segments, TreeBytes: ti.Bytes, Roots: []PartitionRoot{}}
	for _, r := range ti.Roots {
		info.Roots = append(info.Roots, PartitionRoot{Partition: r.Partition, N: r.N, Root: fmt.Sprintf("%016x", r.Root)})
	}
	return info
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
		drift:    prometheus.NewDesc("quorumkv_aae_tree_drift_total", "Trees that differed from a rebuild (silent corruption, a bug or a bucket whose n changed).", nil, nil),
		size:     prometheus.NewDesc("quorumkv_aae_tree_bytes", "Memory held by the hash trees.", nil, nil),
	}
}

func (c *treeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ready, c.progress, c.rebuilds, c.drift, c.size} {
		ch <- d
	}
}

func (c *treeCollector) Collect(ch chan<- prometheus.Metric) {
	ti := c.n.treeInfo(false)
	ready := 0.0
	if ti.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(c.progress, prometheus.GaugeValue, ti.Progress)
	ch <- prometheus.MustNewConstMetric(c.rebuilds, prometheus.CounterValue, float64(ti.Rebuilds))
	ch <- prometheus.MustNewConstMetric(c.drift, prometheus.CounterValue, float64(ti.Drift))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(ti.Bytes))
}
