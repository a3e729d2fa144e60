package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestExpiryAcrossAPartition (real processes): a value that supersedes an older one with a
// 2 s TTL, written while n3 is cut off; n3 keeps the older value through the expiry. After
// the heal, every node reads the key as absent — n3 too, through its own coordination —
// and anti-entropy hands n3 the expired value, which supersedes its older one.
func TestExpiryAcrossAPartition(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	n1 := c.node("n1").client()
	if _, err := n1.Put(ctx, "exp", "k", []byte("old"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}
	c.partition("n3")
	obj, err := n1.Get(ctx, "exp", "k", client.Quorum{})
	if err != nil || !obj.Found {
		t.Fatalf("read before the TTL write: %+v %v", obj, err)
	}
	if _, err := n1.PutWith(ctx, "exp", "k", []byte("session"), client.PutOptions{Context: obj.Context, TTL: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	c.waitFor(10*time.Second, "the value to expire on n1 and n2", func() bool {
		for _, id := range []string{"n1", "n2"} {
			if o, err := c.node(id).client().Get(ctx, "exp", "k", client.Quorum{}); err != nil || o.Found {
				return false
			}
		}
		return true
	})
	if lc, err := c.node("n3").client().Local(ctx, "exp", "k"); err != nil || !lc.Found || string(lc.Values[0]) != "old" {
		t.Fatalf("n3's own copy while cut off: %+v %v (want the old value)", lc, err)
	}
	c.heal()
	for _, p := range c.procs {
		if o, err := p.client().Get(ctx, "exp", "k", client.Quorum{R: "all"}); err != nil || o.Found {
			t.Fatalf("read through %s after the heal: %+v %v, want absent", p.id, o, err)
		}
	}
	c.repair(c.node("n1"))
	c.waitFor(10*time.Second, "n3 to hold the expired value", func() bool {
		lc, err := c.node("n3").client().Local(ctx, "exp", "k")
		return err == nil && lc.Found && len(lc.Siblings) == 1 && string(lc.Siblings[0].Value) == "session" && lc.Siblings[0].ExpiresMs > 0
	})
	// A fresh write after the expiry is one value, not a sibling of a dead one.
	if _, err := c.node("n3").client().Put(ctx, "exp", "k", []byte("new"), "", client.Quorum{}); err != nil {
		t.Fatal(err)
	}
	if o, err := n1.Get(ctx, "exp", "k", client.Quorum{R: "all"}); err != nil || len(o.Values) != 1 || string(o.Values[0]) != "new" {
		t.Fatalf("read after a fresh write: %+v %v", o, err)
	}
}
