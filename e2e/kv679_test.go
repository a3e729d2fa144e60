package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

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

// TestAcknowledgedWriteSurvivesItsCoordinatorsCrash is Riak's kv679 through real
// processes. n1's disk is made slow (every fsync waits 300 ms), so that its copy of a write
// is surely not durable when the client hears "ok" (no ack waits for an fsync without dw),
// and n1 coordinates a blind W=2 write and is killed with -9 the moment the client hears
// "ok". After the restart n1 coordinates another blind write of the key: both values must
// be there, read with R=all from n2. n1 restarted under a new actor, so its new dot cannot
// cover the write it lost; under its old actor the new dot (past the counter lease) would,
// and every replica would drop an acknowledged write as superseded. A clean stop (SIGTERM)
// keeps the actor: the write after it carries the actor of the write before it.
func TestAcknowledgedWriteSurvivesItsCoordinatorsCrash(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	n1, n2 := c.node("n1"), c.node("n2")
	actorOf := func(dot string) string {
		a, _, _ := strings.Cut(dot, ":")
		return a
	}
	// The actor of n1's write of key, from n2's copy (it holds one sibling: the write,
	// acknowledged by all).
	lastActor := func(key string) string {
		t.Helper()
		lc, err := n2.client().Local(ctx, "b", key)
		if err != nil || len(lc.Siblings) != 1 {
			t.Fatalf("n2's copy of %s: %+v %v", key, lc, err)
		}
		return actorOf(lc.Siblings[0].Dot)
	}
	const rounds = 3
	for i := range rounds {
		key := fmt.Sprint("k", i)
		if _, err := n1.client().SetFaults(ctx, client.Faults{SyncDelayMs: 300}); err != nil {
			t.Fatal(err)
		}
		// Blind (no context), as a Redis SET; n1 is a primary of every key with 3 nodes,
		// so it coordinates.
		if _, err := n1.client().Put(ctx, "b", key, []byte("acked"), "", client.Quorum{W: "2"}); err != nil {
			t.Fatalf("round %d: put: %v", i, err)
		}
		n1.kill()
		n1.start()
		c.waitAlive(3)
		if _, err := n1.client().Put(ctx, "b", key, []byte("after"), "", client.Quorum{W: "2"}); err != nil {
			t.Fatalf("round %d: put after the restart: %v", i, err)
		}
		obj, err := n2.client().Get(ctx, "b", key, client.Quorum{R: "all"})
		if err != nil {
			t.Fatalf("round %d: read: %v", i, err)
		}
		var got []string
		for _, v := range obj.Values {
			got = append(got, string(v))
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"acked", "after"}) {
			t.Fatalf("round %d: values %q after n1's crash and its next write; want both (no acknowledged write lost)", i, got)
		}
		// The read repaired n2's copy (blocking read repair): both siblings, and the write
		// after the kill -9 under another actor than the one before it.
		lc, err := n2.client().Local(ctx, "b", key)
		if err != nil {
			t.Fatal(err)
		}
		actors := map[string]string{}
		for _, s := range lc.Siblings {
			actors[string(s.Value)] = actorOf(s.Dot)
		}
		if len(actors) != 2 || actors["acked"] == actors["after"] {
			t.Fatalf("round %d: n2 holds %+v: want both writes, under two actors of n1", i, lc.Siblings)
		}
	}
	// A clean stop keeps the actor.
	if _, err := n1.client().Put(ctx, "b", "clean", []byte("v1"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}
	before := lastActor("clean")
	n1.stop()
	n1.start()
	c.waitAlive(3)
	obj, err := n1.client().Get(ctx, "b", "clean", client.Quorum{R: "all"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n1.client().Put(ctx, "b", "clean", []byte("v2"), obj.Context, client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}
	if after := lastActor("clean"); after != before {
		t.Fatalf("n1 wrote under actor %s after a clean stop, %s before it: a clean stop must keep the actor", after, before)
	}
}

// TestReplicaWriteSurvivesKill: a replica's ack without dw claims no fsync, but the write
// still reaches its disk within the sync interval (100 ms). n1 coordinates W=all writes;
// once n2 has synced periodically since the ack, n2 is killed with -9 and must hold the
// write after its restart. Before the periodic sync, a replica that coordinated nothing
// kept the tail of its log in memory until some later sync, however long: every such
// write was lost.
func TestReplicaWriteSurvivesKill(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	n1, n2 := c.node("n1"), c.node("n2")
	for i := range 3 {
		key := fmt.Sprint("r", i)
		// The count is read before the put: the write leaves n2's store unsynced, so at
		// least one sync follows it. (Read after the ack, the count could already include
		// the one sync that covered the write, and no other would come.) Any sync covers
		// the writes before it, periodic or durable (n2 may sync a turn of its own: a hint,
		// a repair). One counted since may have begun before the write reached n2 and left
		// it unsynced; then a periodic one follows within 100 ms, which the pause covers.
		syncs := func() float64 {
			var sum float64
			for _, v := range n2.metrics(t, "quorumkv_store_syncs_total") {
				sum += v
			}
			return sum
		}
		before := syncs()
		if _, err := n1.client().Put(ctx, "b", key, []byte("v"), "", client.Quorum{W: "all"}); err != nil {
			t.Fatalf("round %d: put: %v", i, err)
		}
		c.waitFor(10*time.Second, "a store sync on n2", func() bool { return syncs() > before })
		time.Sleep(150 * time.Millisecond)
		n2.kill()
		n2.start()
		lc, err := n2.client().Local(ctx, "b", key)
		if err != nil {
			t.Fatalf("round %d: n2's copy: %v", i, err)
		}
		if !lc.Found {
			t.Fatalf("round %d: n2 acknowledged %s (w=all) and lost it in a kill -9", i, key)
		}
	}
}
