package node

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// A node runs Config.loops() event loops, each driving one shard of the core: the shard
// owning a contiguous range of partitions (core.ShardConfig). A request goes to the loop
// of its key's partition; what spans shards (views, start, repair and reaping runs,
// reports) goes to every loop. The shards share the node's identity through
// sharedMinter.

// shardOf is the shard that serves a peer's request (shard 0 for one that spans shards
// or that the core will refuse).
func (n *Node) shardOf(env *pb.Envelope) int {
	if len(n.loops) == 1 {
		return 0
	}
	s, _ := core.Route(env, n.cfg.Partitions, len(n.loops))
	return s
}

// loopFor is the loop of (bucket, key)'s shard.
func (n *Node) loopFor(bucket, key string) *loop {
	if len(n.loops) == 1 {
		return n.loops[0]
	}
	p := core.PartitionOf(bucket, key, n.cfg.Partitions)
	return n.loops[core.ShardOf(p, n.cfg.Partitions, len(n.loops))]
}

// loopForPartition is the loop of partition p's shard.
func (n *Node) loopForPartition(p int) *loop {
	return n.loops[core.ShardOf(p, n.cfg.Partitions, len(n.loops))]
}

// broadcast steps ev on every loop.
func (n *Node) broadcast(ev core.Event) {
	for _, l := range n.loops {
		l.submit(func() { l.step(ev) })
	}
}

// eachCore runs f on every loop in turn and waits for each.
func (n *Node) eachCore(ctx context.Context, f func(c *core.Core)) error {
	for _, l := range n.loops {
		if err := l.do(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// sharedMinter is the node's identity shared by its shards.
type sharedMinter struct {
	mu sync.Mutex
	id *core.Identity
}

func (m *sharedMinter) Actor() string { return m.id.Actor() } // fixed at load: no lock

func (m *sharedMinter) Mint(floor uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id.Mint(floor)
}

func (m *sharedMinter) Minted() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id.Minted()
}

func (m *sharedMinter) stop() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id.Stop()
}

// mergeTreeInfo describes the node's trees from its shards': ready once every shard's
// are, a rebuild complete once every shard has completed it.
func mergeTreeInfo(parts []core.TreeInfo) core.TreeInfo {
	if len(parts) == 0 {
		return core.TreeInfo{}
	}
	out := parts[0]
	out.Roots = slices.Clone(out.Roots)
	for _, p := range parts[1:] {
		out.Enabled = out.Enabled && p.Enabled
		out.Ready = out.Ready && p.Ready
		out.Progress += p.Progress
		out.Rebuilds = min(out.Rebuilds, p.Rebuilds)
		out.Drift += p.Drift
		out.Bytes += p.Bytes
		out.Roots = append(out.Roots, p.Roots...)
	}
	out.Progress /= float64(len(parts))
	slices.SortFunc(out.Roots, func(a, b core.TreeRoot) int {
		if a.Partition != b.Partition {
			return a.Partition - b.Partition
		}
		return a.N - b.N
	})
	return out
}

// stoppedErr is the error of a request to a node that is stopping.
func (n *Node) stoppedErr() error {
	return fmt.Errorf("%w: node %s is stopping", ErrUnavailable, n.cfg.ID)
}
