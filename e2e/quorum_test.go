package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestKillOneOfThree: with one node of three killed by SIGKILL, W=2 writes succeed, W=3
// writes answer 503 with acks=2 required=3, and R=2 reads see the data.
func TestKillOneOfThree(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	n1 := c.node("n1").client()
	if _, err := n1.Put(ctx, "b", "before", []byte("v0"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatalf("put with all nodes up: %v", err)
	}
	c.node("n3").kill()

	for _, via := range []string{"n1", "n2"} {
		cl := c.node(via).client()
		for i := 0; i < 20; i++ {
			key := fmt.Sprintf("k-%s-%d", via, i)
			if _, err := cl.Put(ctx, "b", key, []byte(key), "", client.Quorum{W: "2"}); err != nil {
				t.Fatalf("W=2 put %s via %s with n3 dead: %v", key, via, err)
			}
			obj, err := c.node("n1").client().Get(ctx, "b", key, client.Quorum{R: "2"})
			if err != nil || !obj.Found || len(obj.Values) != 1 || !bytes.Equal(obj.Values[0], []byte(key)) {
				t.Fatalf("R=2 get %s: %+v %v", key, obj, err)
			}
		}
		_, err := cl.Put(ctx, "b", "all-"+via, []byte("x"), "", client.Quorum{W: "3", Timeout: 2 * time.Second})
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Status != 503 || ae.Acks != 2 || ae.Required != 3 {
			t.Fatalf("W=3 put via %s with n3 dead: want 503 acks=2 required=3, got %v (%+v)", via, err, ae)
		}
	}
	obj, err := n1.Get(ctx, "b", "before", client.Quorum{R: "2"})
	if err != nil || !obj.Found || string(obj.Values[0]) != "v0" {
		t.Fatalf("R=2 read of a key written before the kill: %+v %v", obj, err)
	}
}

// TestDurableWritesSurviveKillOfEveryNode: writes acknowledged with dw=all are on disk on
// every replica: SIGKILL all three nodes, restart them, read everything back.
func TestDurableWritesSurviveKillOfEveryNode(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	const keys = 60
	for i := 0; i < keys; i++ {
		cl := c.procs[i%3].client()
		key := fmt.Sprintf("dur-%d", i)
		if _, err := cl.Put(ctx, "b", key, []byte("value-"+key), "", client.Quorum{W: "all", DW: "all"}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	for _, p := range c.procs {
		p.kill()
	}
	for _, p := range c.procs {
		p.start()
	}
	c.waitAlive(3)
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("dur-%d", i)
		// Every replica's own copy must hold it: the ack said so.
		for _, p := range c.procs {
			lc, err := p.client().Local(ctx, "b", key)
			if err != nil || !lc.Found || len(lc.Values) != 1 || string(lc.Values[0]) != "value-"+key {
				t.Fatalf("after restart, %s's own copy of %s: %+v %v", p.id, key, lc, err)
			}
		}
	}
}
