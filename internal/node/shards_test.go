package node

import (
	"context"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// A handoff batch spanning every shard of a 3-loop node is merged whole (each key by its
// own shard, answered once with the full count); a batch with one corrupt item changes
// nothing on any shard.
func TestHandoffBatchAcrossShards(t *testing.T) {
	nodes := startNodes(t, 2)
	n := nodes[1] // 3 loops
	if len(n.loops) != 3 {
		t.Fatalf("%d loops", len(n.loops))
	}
	ctx := context.Background()
	batch := func(prefix string, count int) *pb.HandoffRequest {
		req := &pb.HandoffRequest{}
		for i := range count {
			key := fmt.Sprintf("%s%d", prefix, i)
			obj := version.Object{Siblings: []version.Sibling{sibling("x.1", uint64(i+1), "v"+key)}}
			obj.Clock = obj.Clock.With(obj.Siblings[0].Dot)
			req.Items = append(req.Items, &pb.HandoffItem{Bucket: "b", Key: key, Object: obj.AppendBinary(nil)})
		}
		return req
	}
	good := batch("ok", 60)
	shards := map[int]bool{}
	for _, it := range good.Items {
		shards[n.loopFor(it.Bucket, it.Key).shard] = true
	}
	if len(shards) != 3 {
		t.Fatalf("60 keys fall in %d shards", len(shards))
	}
	ans := n.Handle(ctx, "n1", &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: good}})
	if ans.GetHandoffResp().GetApplied() != 60 {
		t.Fatalf("answer %v", ans)
	}
	for _, it := range good.Items {
		if rawCopy(t, n, it.Bucket, it.Key) != string(it.Object) {
			t.Fatalf("%s not merged", it.Key)
		}
	}

	bad := batch("bad", 60)
	bad.Items[42].Object = []byte{0xff}
	ans = n.Handle(ctx, "n1", &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: bad}})
	if ans.GetError() == nil || ans.GetError().GetCode() != string(core.CodeBadRequest) {
		t.Fatalf("corrupt batch answered %v", ans)
	}
	for _, it := range bad.Items {
		if rawCopy(t, n, it.Bucket, it.Key) != "" {
			t.Fatalf("%s stored from a refused batch", it.Key)
		}
	}
}

// Every shard mints under the node's one actor and never the same dot twice.
func TestShardsShareOneActor(t *testing.T) {
	nodes := startNodes(t, 3)
	n := nodes[1]
	dots := map[version.Dot]string{}
	for i := range 90 {
		key := fmt.Sprintf("k%d", i)
		if _, err := n.Put(context.Background(), "b", key, []byte("v"), WriteOptions{W: "all"}); err != nil {
			t.Fatal(err)
		}
		obj, err := n.getObject(context.Background(), "b", key, ReadOptions{R: "all"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range obj.Siblings {
			if s.Dot.Actor != n.Actor() {
				t.Fatalf("%s minted by %s, node actor %s", key, s.Dot.Actor, n.Actor())
			}
			if other, dup := dots[s.Dot]; dup {
				t.Fatalf("dot %v minted for %s and %s", s.Dot, other, key)
			}
			dots[s.Dot] = key
		}
	}
}

// TestTransferSnapshotsNeverGoBack: a turn that waited for the syncer is carried out after
// a later turn that did not; its transfer snapshot (an older plan) must not replace the
// later one, or the node publishes a report for a change that was replaced and the new
// change waits for it forever (seen: a node leaving right after another never reported
// hearing of the second leave).
func TestTransferSnapshotsNeverGoBack(t *testing.T) {
	l := &loop{n: &Node{xferSig: make(chan struct{}, 1)}}
	ctx := context.Background()
	l.carryOut(ctx, &turnOut{xfer: &xferSnapshot{next: "n1,n2,n3", seq: 2}})
	l.carryOut(ctx, &turnOut{xfer: &xferSnapshot{next: "n1,n2,n3,n5", seq: 1}})
	if next, _ := l.transferSnapshot(); next != "n1,n2,n3" {
		t.Fatalf("snapshot after an older turn was carried out: %q, want the later n1,n2,n3", next)
	}
}
