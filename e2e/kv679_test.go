package e2e

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/quorumkv/quorumkv/client"
)

// TestNodeThatLostItsDataNeverReusesADot is Riak's kv679: a node whose disk was wiped
// restarts with the same name and coordinates a write. Had it restarted its dot counters at
// the same actor, its new write would carry a dot the other replicas have already seen, and
// they would drop it silently. The new store incarnation gets a new actor epoch, so the
// write is a new event: both values survive as siblings.
func TestNodeThatLostItsDataNeverReusesADot(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	n1 := c.node("n1")
	if _, err := n1.client().Put(ctx, "b", "k", []byte("v1"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}
	before, err := n1.client().Local(ctx, "b", "k")
	if err != nil || !before.Found {
		t.Fatalf("n1's copy before the wipe: %+v %v", before, err)
	}

	n1.kill()
	if err := os.RemoveAll(n1.data); err != nil {
		t.Fatal(err)
	}
	n1.start()
	c.waitAlive(3)
	if lc, err := n1.client().Local(ctx, "b", "k"); err == nil && lc.Found {
		t.Fatalf("the wiped node still holds the key: %+v", lc)
	}

	// A blind write coordinated by the wiped node (it is a primary of every key here).
	if _, err := n1.client().Put(ctx, "b", "k", []byte("v2"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}
	obj, err := c.node("n2").client().Get(ctx, "b", "k", client.Quorum{R: "all"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range obj.Values {
		got = append(got, string(v))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"v1", "v2"}) {
		t.Fatalf("after the wiped node's write, values = %q; want both v1 and v2 (no write lost)", got)
	}
	after, err := n1.client().Local(ctx, "b", "k")
	if err != nil {
		t.Fatal(err)
	}
	dots := map[string]bool{}
	for _, s := range after.Siblings {
		if dots[s.Dot] {
			t.Fatalf("dot %s appears twice in %+v", s.Dot, after.Siblings)
		}
		dots[s.Dot] = true
	}
	if len(dots) != 2 || dots[before.Siblings[0].Dot] == false {
		t.Fatalf("siblings %+v; want v1's dot %s and a new one", after.Siblings, before.Siblings[0].Dot)
	}
}
