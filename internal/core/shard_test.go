package core

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Every partition belongs to exactly one shard; each shard's partitions are one contiguous
// range, and its data keys one contiguous range of the store, the ranges tiling the data.
func TestShardRangesTile(t *testing.T) {
	for _, q := range []int{1, 2, 64, 256} {
		for _, k := range []int{1, 2, 3, 5, 8} {
			if k > q {
				continue
			}
			next := 0
			for s := range k {
				lo, hi := ShardPartitions(s, q, k)
				if lo != next || hi <= lo {
					t.Fatalf("q=%d k=%d shard %d: partitions [%d,%d) after %d", q, k, s, lo, hi, next)
				}
				for p := lo; p < hi; p++ {
					if got := ShardOf(p, q, k); got != s {
						t.Fatalf("q=%d k=%d: partition %d in shard %d's range, ShardOf says %d", q, k, p, s, got)
					}
				}
				next = hi
			}
			if next != q {
				t.Fatalf("q=%d k=%d: shards cover %d partitions", q, k, next)
			}
		}
	}
	// Keys: a key's data key lies in its shard's store range, and in no other.
	const q, k = 256, 3
	cores := make([]*Core, k)
	for s := range k {
		cfg := ShardConfig(DefaultConfig(), s, k)
		cfg.ID, cfg.Partitions = "n1", q
		cores[s] = &Core{cfg: cfg}
	}
	for i := range 2000 {
		b, key := "b", fmt.Sprintf("k%d", i)
		dk := DataKey(b, key)
		own := ShardOf(PartitionOf(b, key, q), q, k)
		for s, c := range cores {
			lo, hi := c.dataRange()
			in := bytes.Compare(dk, lo) >= 0 && bytes.Compare(dk, hi) < 0
			if in != (s == own) {
				t.Fatalf("key %s: in shard %d's range %v, owner %d", key, s, in, own)
			}
			if c.owns(PartitionOf(b, key, q)) != (s == own) {
				t.Fatalf("key %s: shard %d owns=%v, owner %d", key, s, !in, own)
			}
		}
	}
}

func TestShardConfigDividesPace(t *testing.T) {
	base := DefaultConfig()
	c := ShardConfig(base, 2, 4)
	if c.Shard != 2 || c.Shards != 4 || c.AAEInterval != 4*base.AAEInterval || c.AAERate != base.AAERate/4 {
		t.Fatalf("shard config %+v", c)
	}
	c.ID = "n1"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Shard = 4
	if err := c.Validate(); err == nil {
		t.Fatal("shard 4 of 4 accepted")
	}
}

func TestRoute(t *testing.T) {
	const q, k = 256, 4
	b, key := "b", "some-key"
	want := ShardOf(PartitionOf(b, key, q), q, k)
	for _, env := range []*pb.Envelope{
		{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: b, Key: key}}},
		{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{Bucket: b, Key: key}}},
		{Body: &pb.Envelope_CoordPut{CoordPut: &pb.CoordPutRequest{Bucket: b, Key: key}}},
	} {
		if s, err := Route(env, q, k); err != nil || s != want {
			t.Fatalf("%T: shard %d, %v; want %d", env.Body, s, err, want)
		}
	}
	if s, _ := Route(&pb.Envelope{Body: &pb.Envelope_Tree{Tree: &pb.TreeRequest{Partition: 200}}}, q, k); s != 3 {
		t.Fatalf("tree of partition 200 → shard %d", s)
	}
	if s, _ := Route(&pb.Envelope{Body: &pb.Envelope_TreeKeys{TreeKeys: &pb.TreeKeysRequest{Partition: -1}}}, q, k); s != 0 {
		t.Fatalf("bad partition → shard %d, want 0 (which refuses it)", s)
	}
	if _, err := Route(&pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: &pb.HandoffRequest{}}}, q, k); !errors.Is(err, ErrSplit) {
		t.Fatalf("handoff: %v", err)
	}
}

// A handoff batch splits by shard, every item once; one bad item refuses the whole batch.
func TestSplitHandoff(t *testing.T) {
	cfg := DefaultConfig()
	obj := version.Object{Siblings: []version.Sibling{{Dot: version.Dot{Actor: "a", Counter: 1}, Value: []byte("v")}}}
	obj.Clock = obj.Clock.With(version.Dot{Actor: "a", Counter: 1})
	raw := obj.AppendBinary(nil)
	req := &pb.HandoffRequest{}
	for i := range 100 {
		req.Items = append(req.Items, &pb.HandoffItem{Bucket: "b", Key: fmt.Sprintf("k%d", i), Object: raw})
	}
	parts, err := SplitHandoff(cfg, req, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for s, p := range parts {
		for _, it := range p.GetItems() {
			if got := ShardOf(PartitionOf(it.Bucket, it.Key, cfg.Partitions), cfg.Partitions, 3); got != s {
				t.Fatalf("%s in shard %d's part, owner %d", it.Key, s, got)
			}
			seen++
		}
	}
	if seen != 100 {
		t.Fatalf("%d items after the split", seen)
	}
	req.Items[57].Object = []byte{0xff, 0x01}
	if parts, err := SplitHandoff(cfg, req, 3); err == nil || parts != nil || !errors.Is(err, ErrBadRequest) {
		t.Fatalf("corrupt item: %v, %v", parts, err)
	}
	req.Items[57] = &pb.HandoffItem{Bucket: "b", Key: ""}
	if _, err := SplitHandoff(cfg, req, 3); err == nil {
		t.Fatal("empty key accepted")
	}
}
