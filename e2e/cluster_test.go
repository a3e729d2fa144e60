package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// addNode starts one more server process joining the cluster through n1 (open mode).
func (c *cluster) addNode(id string, extra ...string) *proc {
	c.t.Helper()
	p := &proc{t: c.t, id: id, data: filepath.Join(c.t.TempDir(), id), http: freePort(c.t), resp: freePort(c.t),
		rpc: freePort(c.t), gossip: freePort(c.t), join: []string{c.procs[0].gossip}, extra: extra}
	p.logPath = p.data + ".log"
	c.procs = append(c.procs, p)
	p.start()
	return p
}

// waitRing waits until every running node sees no change pending and the ring want.
func (c *cluster) waitRing(want ...string) {
	c.t.Helper()
	slices.Sort(want)
	c.waitFor(60*time.Second, "the ring "+strings.Join(want, ",")+" with no change pending", func() bool {
		for _, p := range c.procs {
			select {
			case <-p.exited:
				continue
			default:
			}
			t, err := p.client().Transfers(context.Background())
			if err != nil || t.Pending || !slices.Equal(t.Ring, want) {
				return false
			}
		}
		return true
	})
}

// TestJoinLeaveAndKilledLeaver, with real processes: 600 keys written at w=all on three
// nodes; n4 joins while n1 reads every key at R=quorum (none missing); then n2 is told to
// leave and killed with -9 right away — its partitions still have their other replicas,
// the transfers stream from those, and the ring ends as n1, n3, n4 with every key
// readable through every node at R=all.
func TestJoinLeaveAndKilledLeaver(t *testing.T) {
	c := startClusterMode(t, 3, false)
	ctx := context.Background()
	cl := c.procs[0].client()
	const keys = 600
	key := func(i int) string { return fmt.Sprintf("k%03d", i) }
	for i := range keys {
		if _, err := c.procs[i%3].client().Put(ctx, "b", key(i), []byte("v"+key(i)), "", client.Quorum{W: "all"}); err != nil {
			t.Fatalf("put %s: %v", key(i), err)
		}
	}
	readAll := func(via *proc, r, when string) {
		t.Helper()
		vc := via.client()
		for i := range keys {
			obj, err := vc.Get(ctx, "b", key(i), client.Quorum{R: r})
			if err != nil || !obj.Found || len(obj.Values) != 1 || string(obj.Values[0]) != "v"+key(i) {
				t.Fatalf("%s: %s via %s at r=%s: %+v %v", when, key(i), via.id, r, obj, err)
			}
		}
	}

	n4 := c.addNode("n4")
	// n4 is joining: reads through n1 never miss while it takes its partitions over.
	for round := 0; round < 3; round++ {
		readAll(c.procs[0], "quorum", "during the join")
	}
	c.waitRing("n1", "n2", "n3", "n4")
	readAll(n4, "all", "after the join")

	out, err := c.procs[0].cli("cluster", "leave", "n2").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "n2 is leaving") {
		t.Fatalf("cluster leave n2: %v\n%s", err, out)
	}
	c.node("n2").kill()
	c.waitRing("n1", "n3", "n4")
	for _, id := range []string{"n1", "n3", "n4"} {
		readAll(c.node(id), "all", "after n2 left")
	}
	tr, err := cl.Transfers(ctx)
	if err != nil || tr.States["n2"] != "left" || tr.States["n4"] != "active" {
		t.Fatalf("states after the changes: %+v %v", tr, err)
	}
	status, err := c.procs[0].cli("cluster", "status").CombinedOutput()
	if err != nil || !strings.Contains(string(status), "no change pending: the ring is n1, n3, n4") {
		t.Fatalf("cluster status: %v\n%s", err, status)
	}

	// A leave that would leave fewer nodes than a bucket's n is refused, clearly.
	if _, err := cl.Leave(ctx, "n3"); err == nil || !strings.Contains(err.Error(), "fewer than the 3 replicas") {
		t.Fatalf("leaving below n=3: %v", err)
	}
}

// TestReplaceAndRemoveDeadNodes, with real processes: four nodes hold 400 keys written at
// w=all. n4 is killed with -9 and replaced by n5 (server --replace n4); then n3 is killed
// and removed (cluster remove n3). After each change every key reads at R=all through
// every live node, so each is back on its three replicas.
func TestReplaceAndRemoveDeadNodes(t *testing.T) {
	c := startClusterMode(t, 3, false)
	ctx := context.Background()
	c.addNode("n4")
	c.waitRing("n1", "n2", "n3", "n4")
	const keys = 400
	key := func(i int) string { return fmt.Sprintf("r%03d", i) }
	for i := range keys {
		if _, err := c.procs[i%4].client().Put(ctx, "b", key(i), []byte("v"+key(i)), "", client.Quorum{W: "all"}); err != nil {
			t.Fatalf("put %s: %v", key(i), err)
		}
	}
	readAll := func(when string, ids ...string) {
		t.Helper()
		for _, id := range ids {
			vc := c.node(id).client()
			for i := range keys {
				obj, err := vc.Get(ctx, "b", key(i), client.Quorum{R: "all"})
				if err != nil || !obj.Found || string(obj.Values[0]) != "v"+key(i) {
					t.Fatalf("%s: %s via %s at r=all: %+v %v", when, key(i), id, obj, err)
				}
			}
		}
	}

	c.node("n4").kill()
	c.waitFor(30*time.Second, "n1 to see n4 down", func() bool {
		ci, err := c.procs[0].client().Cluster(ctx)
		if err != nil {
			return false
		}
		for _, n := range ci.Nodes {
			if n.ID == "n4" {
				return n.State == "down"
			}
		}
		return false
	})
	c.addNode("n5", "--replace", "n4")
	c.waitRing("n1", "n2", "n3", "n5")
	readAll("after n5 replaced n4", "n1", "n2", "n3", "n5")

	c.node("n3").kill()
	c.waitFor(30*time.Second, "n1 to see n3 down", func() bool {
		ci, err := c.procs[0].client().Cluster(ctx)
		if err != nil {
			return false
		}
		for _, n := range ci.Nodes {
			if n.ID == "n3" {
				return n.State == "down"
			}
		}
		return false
	})
	out, err := c.procs[0].cli("cluster", "remove", "n3").CombinedOutput()
	if err != nil {
		t.Fatalf("cluster remove n3: %v\n%s", err, out)
	}
	c.waitRing("n1", "n2", "n5")
	readAll("after n3 was removed", "n1", "n2", "n5")
}

// TestKillMidTransfer, with real processes: transfers throttled to 64 KiB/s so that they
// take seconds. n4 joins and is killed with -9 in the middle of streaming, then started
// again: it goes on (the partitions it completed were recorded) and the join completes.
// Then n5 joins and one of its sources, n2, is killed mid-transfer: n5 streams from the
// other replicas meanwhile; n2 comes back (a node that gains partitions in the change must
// be up to take them, so the change waits for it) and the join completes. No key is
// missing at R=quorum at any point.
func TestKillMidTransfer(t *testing.T) {
	slow := []string{"--transfer-rate", "65536"}
	c := startClusterMode(t, 3, false, slow...) // addNode starts open nodes
	ctx := context.Background()
	const keys = 600
	key := func(i int) string { return fmt.Sprintf("m%03d", i) }
	value := strings.Repeat("x", 400)
	for i := range keys {
		if _, err := c.procs[i%3].client().Put(ctx, "b", key(i), []byte(value+key(i)), "", client.Quorum{W: "all"}); err != nil {
			t.Fatalf("put %s: %v", key(i), err)
		}
	}
	readAll := func(when string) {
		t.Helper()
		vc := c.procs[0].client()
		for i := range keys {
			obj, err := vc.Get(ctx, "b", key(i), client.Quorum{})
			if err != nil || !obj.Found || string(obj.Values[0]) != value+key(i) {
				t.Fatalf("%s: %s: %+v %v", when, key(i), obj, err)
			}
		}
	}
	streaming := func(p *proc) bool {
		tr, err := p.client().Transfers(ctx)
		if err != nil {
			return false
		}
		for _, x := range tr.Transfers {
			if x.KeysDone > 0 {
				return true
			}
		}
		return false
	}

	n4 := c.addNode("n4", slow...)
	c.waitFor(30*time.Second, "n4 to stream something", func() bool { return streaming(n4) })
	n4.kill()
	readAll("n4 killed mid-join")
	n4.start()
	c.waitRing("n1", "n2", "n3", "n4")
	readAll("after n4's join")

	n5 := c.addNode("n5", slow...)
	c.waitFor(30*time.Second, "n5 to stream something", func() bool { return streaming(n5) })
	n2 := c.node("n2")
	n2.kill()
	readAll("n2 killed while n5 streams")
	n2.start()
	c.waitRing("n1", "n2", "n3", "n4", "n5")
	readAll("after n5's join")
}
