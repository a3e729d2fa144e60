package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Shards: a node may run several cores, each owning a contiguous range of the ring's
// partitions (ScyllaDB's shard per core), so that one node's protocol work spreads over
// its CPUs with no lock per key: every key, and so every request, replica write, tree and
// reaping scan, belongs to exactly one shard. Data keys are ordered by key hash, hence by
// partition (DataKey), so a shard's keys are one contiguous range of the store and its
// scans read nothing of the other shards'.
//
// The shards of one node share its identity (Deps.Minter: one actor, no dot minted twice),
// its store and its hint store, which are safe for concurrent use. Shard 0 alone runs hinted
// handoff (hints are kept per target, not per partition); anti-entropy exchanges and
// reaping run in every shard over its own partitions, at 1/Shards of the node's rate each.
// Each shard keeps its own hybrid logical clock: timestamps are compared within a key, and
// a key never changes shard.

// PartitionOf is the partition of (bucket, key) on a ring of partitions (a power of two),
// whatever its members.
func PartitionOf(bucket, key string, partitions int) int {
	pbits := bits.TrailingZeros(uint(partitions))
	if pbits == 0 {
		return 0
	}
	return int(ring.KeyHash(bucket, key) >> (64 - uint(pbits)))
}

// ShardOf is the shard owning partition p: shards own contiguous, near-equal ranges.
func ShardOf(p, partitions, shards int) int {
	if shards <= 1 {
		return 0
	}
	return p * shards / partitions
}

// ShardPartitions is the range [lo, hi) of partitions shard s owns.
func ShardPartitions(s, partitions, shards int) (lo, hi int) {
	if shards <= 1 {
		return 0, partitions
	}
	first := func(s int) int { return (s*partitions + shards - 1) / shards } // ceil(s·Q/K)
	return first(s), first(s + 1)
}

// ShardConfig is the configuration of shard s of k: cfg with the shard set and the node's
// anti-entropy pace divided among the shards.
func ShardConfig(cfg Config, s, k int) Config {
	if k <= 1 {
		cfg.Shard, cfg.Shards = 0, 1
		return cfg
	}
	cfg.Shard, cfg.Shards = s, k
	cfg.AAEInterval *= time.Duration(k)
	cfg.AAERate /= int64(k)
	return cfg
}

// owns reports whether partition p is this core's.
func (c *Core) owns(p int) bool { return ShardOf(p, c.cfg.Partitions, c.cfg.Shards) == c.cfg.Shard }

// dataRange is the store key range of this core's data keys.
func (c *Core) dataRange() (lo, hi []byte) {
	plo, phi := ShardPartitions(c.cfg.Shard, c.cfg.Partitions, c.cfg.Shards)
	return partitionStart(plo, c.cfg.Partitions), partitionStart(phi, c.cfg.Partitions)
}

// partitionStart is the first data key of partition p (the end of all data keys for p =
// partitions).
func partitionStart(p, partitions int) []byte {
	if p >= partitions {
		return []byte{PrefixData[0] + 1}
	}
	pbits := bits.TrailingZeros(uint(partitions))
	return binary.BigEndian.AppendUint32([]byte(PrefixData), uint32(uint64(p)<<(32-uint(pbits))))
}

// scanChunk calls fn with up to limit data keys of this shard from cursor on (each with
// its bucket and key parsed; malformed keys are skipped but counted), and returns where the
// next chunk starts: nil when the shard's range is done.
func (c *Core) scanChunk(st interface {
	Scan(start, end []byte, fn func(k, v []byte) bool) error
}, cursor []byte, limit int, fn func(bucket, key string, k, v []byte)) ([]byte, error) {
	_, hi := c.dataRange()
	n := 0
	var last []byte
	err := st.Scan(cursor, hi, func(k, v []byte) bool {
		if n >= limit {
			return false
		}
		n++
		last = append(last[:0], k...)
		if bucket, key, ok := ParseDataKey(k); ok {
			fn(bucket, key, k, v)
		}
		return true
	})
	if err != nil || n < limit {
		return nil, err
	}
	return append(last, 0), nil // the next key after the last one scanned
}

// ErrSplit is Route's answer for a request that spans shards (a handoff batch): the
// driver splits it with SplitHandoff.
var ErrSplit = errors.New("core: request spans shards")

// Route is the shard that must serve a peer's request. A handoff batch returns ErrSplit;
// a request the core would refuse anyway goes to shard 0, which says why.
func Route(env *pb.Envelope, partitions, shards int) (int, error) {
	if shards <= 1 {
		return 0, nil
	}
	byKey := func(bucket, key string) int { return ShardOf(PartitionOf(bucket, key, partitions), partitions, shards) }
	byPartition := func(p int32) int {
		if p < 0 || int(p) >= partitions {
			return 0
		}
		return ShardOf(int(p), partitions, shards)
	}
	switch b := env.GetBody().(type) {
	case *pb.Envelope_Get:
		return byKey(b.Get.GetBucket(), b.Get.GetKey()), nil
	case *pb.Envelope_Replicate:
		return byKey(b.Replicate.GetBucket(), b.Replicate.GetKey()), nil
	case *pb.Envelope_CoordPut:
		return byKey(b.CoordPut.GetBucket(), b.CoordPut.GetKey()), nil
	case *pb.Envelope_Tree:
		return byPartition(b.Tree.GetPartition()), nil
	case *pb.Envelope_TreeKeys:
		return byPartition(b.TreeKeys.GetPartition()), nil
	case *pb.Envelope_Transfer:
		return byPartition(b.Transfer.GetPartition()), nil
	case *pb.Envelope_ListKeys:
		return byPartition(b.ListKeys.GetPartition()), nil
	case *pb.Envelope_Handoff:
		return 0, ErrSplit
	}
	return 0, nil
}

// SplitHandoff checks every item of a handoff batch against cfg's limits and splits the
// batch by shard (nil entries for shards with no item). A batch with one bad item is
// refused whole, so a corrupt batch changes nothing on any shard.
func SplitHandoff(cfg Config, r *pb.HandoffRequest, shards int) ([]*pb.HandoffRequest, error) {
	out := make([]*pb.HandoffRequest, max(shards, 1))
	for i, it := range r.GetItems() {
		if err := cfg.ValidKey(it.GetBucket(), it.GetKey()); err != nil {
			return nil, fmt.Errorf("handoff item %d: %w", i, err)
		}
		if _, err := version.Decode(it.GetObject()); err != nil {
			return nil, fmt.Errorf("%w: handoff item %d (%s/%s): %w", ErrBadRequest, i, it.GetBucket(), it.GetKey(), err)
		}
		s := ShardOf(PartitionOf(it.GetBucket(), it.GetKey(), cfg.Partitions), cfg.Partitions, shards)
		if out[s] == nil {
			out[s] = &pb.HandoffRequest{}
		}
		out[s].Items = append(out[s].Items, it)
	}
	return out, nil
}

// HandoffGather combines the shards' answers to the parts of a split handoff batch into
// the one answer the sender waits for: the items applied, or the first failure (the sender
// then resends the whole batch; merging an item twice changes nothing).
type HandoffGather struct {
	left    int
	applied int32
	failed  *pb.Envelope
}

// NewHandoffGather waits for the answers of parts (SplitHandoff's non-nil entries).
func NewHandoffGather(parts []*pb.HandoffRequest) *HandoffGather {
	g := &HandoffGather{}
	for _, p := range parts {
		if p != nil {
			g.left++
		}
	}
	return g
}

// Waiting reports whether answers are still due.
func (g *HandoffGather) Waiting() bool { return g.left > 0 }

// Add takes one shard's answer; once the last is in, it returns the batch's answer.
func (g *HandoffGather) Add(e *pb.Envelope) (*pb.Envelope, bool) {
	if r := e.GetHandoffResp(); r != nil {
		g.applied += r.GetApplied()
	} else if g.failed == nil {
		g.failed = e
	}
	if g.left--; g.left > 0 {
		return nil, false
	}
	return g.Answer(), true
}

// Answer is the batch's answer from what came in.
func (g *HandoffGather) Answer() *pb.Envelope {
	if g.failed != nil {
		return g.failed
	}
	return &pb.Envelope{Body: &pb.Envelope_HandoffResp{HandoffResp: &pb.HandoffResponse{Applied: g.applied}}}
}
