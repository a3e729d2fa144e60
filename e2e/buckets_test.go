package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestBucketPropsSurviveKillOfEveryNode: bucket properties set through one node reach every
// node and are still there after every node was killed with SIGKILL and restarted.
func TestBucketPropsSurviveKillOfEveryNode(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	want, err := c.node("n2").client().SetBucket(ctx, "profiles", client.BucketProps{
		N: client.Ptr(2), W: client.Ptr("all"), Conflict: client.Ptr("lww"), ReadRepair: client.Ptr("async"),
	})
	if err != nil {
		t.Fatal(err)
	}
	same := func(p client.BucketProps) bool {
		return *p.N == 2 && *p.W == "all" && *p.Conflict == "lww" && *p.ReadRepair == "async" && *p.R == *want.R
	}
	if !same(want) {
		t.Fatalf("set returned %+v", want)
	}
	everyNodeHasIt := func() bool {
		for _, p := range c.procs {
			got, err := p.client().GetBucket(ctx, "profiles")
			if err != nil || !same(got) {
				return false
			}
		}
		return true
	}
	c.waitFor(10*time.Second, "bucket properties on every node", everyNodeHasIt)
	// A node saves the metadata (synced) when it applies it, so what it reports is on disk.
	for _, p := range c.procs {
		p.kill()
	}
	// Restart one node alone: before any gossip, it must know the properties from disk.
	c.procs[2].start()
	got, err := c.procs[2].client().GetBucket(ctx, "profiles")
	if err != nil || !same(got) {
		t.Fatalf("restarted n3, alone, reports %+v (%v)", got, err)
	}
	c.procs[0].start()
	c.procs[1].start()
	c.waitAlive(3)
	if !everyNodeHasIt() {
		t.Fatal("after restarting every node, some node lost the bucket properties")
	}
}
