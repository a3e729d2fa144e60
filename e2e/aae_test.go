package e2e

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// Tests of issue 4 with real processes: anti-entropy converges cold keys, and a replica
// that slept through a delete never brings the key back. (Byte counts of exchanges and
// corrupt exchange messages are tested in-process, in internal/node/aae_test.go.)

// partition cuts id off from every other node, both directions; heal undoes it.
func (c *cluster) partition(id string) {
	c.t.Helper()
	ctx := context.Background()
	var others []string
	for _, p := range c.procs {
		if p.id != id {
			others = append(others, p.id)
			if _, err := p.client().SetFaults(ctx, client.Faults{Drop: []string{id}}); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	if _, err := c.node(id).client().SetFaults(ctx, client.Faults{Drop: others}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) heal() {
	c.t.Helper()
	for _, p := range c.procs {
		if _, err := p.client().SetFaults(context.Background(), client.Faults{}); err != nil {
			c.t.Fatal(err)
		}
	}
}

// repair runs one repair round on p, retrying while its trees are still being built or
// its connections are still coming up; it returns the first round without errors.
func (c *cluster) repair(p *proc) *client.RepairSummary {
	c.t.Helper()
	var sum *client.RepairSummary
	var last error
	c.waitFor(30*time.Second, "a repair round on "+p.id+" without errors", func() bool {
		s, err := p.client().Repair(context.Background(), client.RepairOptions{}, nil)
		if err == nil && s.Errors > 0 {
			err = fmt.Errorf("%d failed exchanges, first %+v", s.Errors, s.FailedExchanges[0])
		}
		if err != nil {
			if !errors.Is(err, last) {
				c.t.Logf("repair on %s: %v (retrying)", p.id, err)
			}
			last = err
			return false
		}
		sum = s
		return true
	})
	return sum
}

// roots returns every node's tree roots.
func (c *cluster) roots() map[string][]client.PartitionRoot {
	c.t.Helper()
	out := map[string][]client.PartitionRoot{}
	for _, p := range c.procs {
		a, err := p.client().AAE(context.Background())
		if err != nil || !a.Ready {
			c.t.Fatalf("aae of %s: %+v %v", p.id, a, err)
		}
		out[p.id] = a.Roots
	}
	return out
}

// TestColdKeysConverge: one replica of three is cut off while 20,000 keys are written
// (W=2, read repair off) and healed; nothing is read. One repair round on the lagging
// node repairs exactly the keys it missed: afterwards every replica's own copy of a
// sample of keys is the same and the three nodes' tree roots are equal.
func TestColdKeysConverge(t *testing.T) {
	const keys, writers = 20_000, 32
	c := startClusterWith(t, 3, "--aae-interval", "1h", "--log-level", "info")
	ctx := context.Background()
	n1, lag := c.node("n1"), c.node("n3")
	if _, err := n1.client().SetBucket(ctx, "cold", client.BucketProps{ReadRepair: client.Ptr("none")}); err != nil {
		t.Fatal(err)
	}
	c.partition("n3")

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(cl *client.Client) {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= keys {
					return
				}
				key := fmt.Sprintf("cold-%05d", i)
				if _, err := cl.Put(ctx, "cold", key, []byte("value of "+key), "", client.Quorum{W: "2"}); err != nil {
					errs <- fmt.Errorf("put %s via %s: %w", key, cl.Addr(), err)
					return
				}
			}
		}(c.procs[w%2].client()) // n1 and n2, the nodes on this side
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("wrote %d keys with n3 cut off in %v", keys, time.Since(start))
	if lc, err := lag.client().Local(ctx, "cold", "cold-00000"); err != nil || lc.Found {
		t.Fatalf("n3 holds a key written while it was cut off: %+v %v", lc, err)
	}
	c.heal()

	start = time.Now()
	sum := c.repair(lag)
	t.Logf("repair on n3 in %v: %+v", time.Since(start), *sum)
	if sum.KeysRepaired != keys || sum.PartitionsDiffered == 0 {
		t.Fatalf("repair summary %+v: want %d keys repaired", *sum, keys)
	}

	for i := 0; i < keys; i += keys / 200 {
		key := fmt.Sprintf("cold-%05d", i)
		var first *client.LocalCopy
		for _, p := range c.procs {
			lc, err := p.client().Local(ctx, "cold", key)
			if err != nil || !lc.Found || !sameValues(lc.Values, "value of "+key) {
				t.Fatalf("%s's copy of %s after the repair: %+v %v", p.id, key, lc, err)
			}
			if first == nil {
				first = lc
			} else if !reflect.DeepEqual(lc.Siblings, first.Siblings) || lc.Context != first.Context {
				t.Fatalf("copies of %s differ after the repair: %+v and %+v", key, first, lc)
			}
		}
	}
	roots := c.roots()
	if len(roots["n1"]) == 0 || !reflect.DeepEqual(roots["n1"], roots["n2"]) || !reflect.DeepEqual(roots["n1"], roots["n3"]) {
		t.Fatalf("tree roots differ after the repair: n1 %d partitions, n2 %d, n3 %d", len(roots["n1"]), len(roots["n2"]), len(roots["n3"]))
	}
	// Nothing is left to repair anywhere.
	for _, p := range c.procs {
		if s := c.repair(p); s.KeysRepaired != 0 || s.PartitionsDiffered != 0 {
			t.Fatalf("second repair round on %s: %+v", p.id, *s)
		}
	}
}

// TestTombstoneNeverComesBack: the seed's scenario. C (n3) is down during the delete of k;
// the tombstone's gc_grace passes and the reapers run, but cannot confirm C holds it, so
// they keep it; C returns still holding the old value; anti-entropy runs, and the key stays
// deleted on every node. Once all three hold the tombstone it is reaped. A re-created value
// then survives further repair rounds and reaper runs.
func TestTombstoneNeverComesBack(t *testing.T) {
	const grace = 2 * time.Second
	c := startClusterWith(t, 3, "--aae-interval", "200ms", "--reap-interval", "300ms", "--hint-window", "1s")
	ctx := context.Background()
	a, cNode := c.node("n1"), c.node("n3")
	if _, err := a.client().SetBucket(ctx, "t", client.BucketProps{GCGraceS: client.Ptr(int(grace / time.Second))}); err != nil {
		t.Fatal(err)
	}
	const k = "k"
	if _, err := a.client().Put(ctx, "t", k, []byte("v1"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.procs {
		if lc, err := p.client().Local(ctx, "t", k); err != nil || !sameValues(lc.Values, "v1") {
			t.Fatalf("%s's copy of %s before the delete: %+v %v", p.id, k, lc, err)
		}
	}

	cNode.kill()
	obj, err := a.client().Get(ctx, "t", k, client.Quorum{R: "2"})
	if err != nil || !obj.Found {
		t.Fatalf("R=2 get with n3 down: %+v %v", obj, err)
	}
	if _, err := a.client().Delete(ctx, "t", k, obj.Context, client.Quorum{W: "2"}); err != nil {
		t.Fatalf("W=2 delete with n3 down: %v", err)
	}
	deleted := time.Now()
	// gc_grace passes and the reapers run several times: n3 is unreachable, so neither
	// n1 nor n2 may reap.
	c.waitFor(grace+5*time.Second, "gc_grace and a few reaper runs to pass", func() bool {
		return time.Since(deleted) > grace+time.Second
	})
	for _, p := range c.procs[:2] {
		if lc, err := p.client().Local(ctx, "t", k); err != nil || !lc.Found || !lc.Tombstone {
			t.Fatalf("%s's copy past gc_grace with n3 down: %+v %v, want the tombstone", p.id, lc, err)
		}
		if r := p.metrics(t, "quorumkv_tombstones_reaped_total")[""]; r != 0 {
			t.Fatalf("%s reaped %v tombstones while n3, which missed the delete, was down", p.id, r)
		}
	}

	cNode.start()
	c.waitAlive(3)
	deletedEverywhere := func(when string) {
		t.Helper()
		for _, p := range c.procs {
			var got *client.Object
			c.waitFor(5*time.Second, "an R=all read of "+k+" via "+p.id, func() bool {
				var err error
				got, err = p.client().Get(ctx, "t", k, client.Quorum{R: "all"})
				return err == nil
			})
			if got.Found {
				t.Fatalf("%s: R=all read via %s found %q", when, p.id, got.Values)
			}
			if lc, err := p.client().Local(ctx, "t", k); err != nil || len(lc.Values) != 0 {
				t.Fatalf("%s: %s's own copy holds live values: %+v %v", when, p.id, lc, err)
			}
		}
	}
	for round := 1; round <= 3; round++ {
		for _, p := range c.procs {
			c.repair(p)
		}
		deletedEverywhere(fmt.Sprintf("after repair round %d", round))
	}

	// Every primary now holds the tombstone (or has reaped it): reaping goes ahead, and
	// not one copy of v1 is left.
	c.waitFor(15*time.Second, "the tombstone to be reaped on every node", func() bool {
		for _, p := range c.procs {
			if lc, err := p.client().Local(ctx, "t", k); err != nil || lc.Found {
				return false
			}
		}
		return true
	})
	reaped := 0.0
	for _, p := range c.procs {
		reaped += p.metrics(t, "quorumkv_tombstones_reaped_total")[""]
	}
	if reaped < 1 {
		t.Fatalf("quorumkv_tombstones_reaped_total summed over the nodes: %v", reaped)
	}
	deletedEverywhere("after reaping")

	// Re-create the key with the context of the 404: the new value survives everything.
	got, err := a.client().Get(ctx, "t", k, client.Quorum{R: "all"})
	if err != nil || got.Found {
		t.Fatalf("R=all read before the re-create: %+v %v", got, err)
	}
	if _, err := a.client().Put(ctx, "t", k, []byte("v2"), got.Context, client.Quorum{W: "all"}); err != nil {
		t.Fatalf("W=all re-create: %v", err)
	}
	reapedBefore := reaped
	for round := 1; round <= 2; round++ {
		for _, p := range c.procs {
			c.repair(p)
		}
		runs := time.Now()
		c.waitFor(5*time.Second, "a few reaper runs", func() bool { return time.Since(runs) > time.Second })
		for _, p := range c.procs {
			lc, err := p.client().Local(ctx, "t", k)
			if err != nil || !lc.Found || lc.Tombstone || len(lc.Siblings) != 1 || !sameValues(lc.Values, "v2") {
				t.Fatalf("round %d: %s's copy of the re-created %s: %+v %v", round, p.id, k, lc, err)
			}
			if o, err := p.client().Get(ctx, "t", k, client.Quorum{R: "all"}); err != nil || !o.Found || !sameValues(o.Values, "v2") {
				t.Fatalf("round %d: R=all read via %s: %+v %v", round, p.id, o, err)
			}
		}
	}
	reaped = 0
	for _, p := range c.procs {
		reaped += p.metrics(t, "quorumkv_tombstones_reaped_total")[""]
	}
	if reaped != reapedBefore {
		t.Fatalf("tombstones reaped after the re-create: %v, before %v", reaped, reapedBefore)
	}
}
