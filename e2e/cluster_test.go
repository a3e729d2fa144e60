package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	p.startFresh()
	return p
}

// sees is the state p's failure detector gives node id ("alive", "down", ...; "" when p
// does not answer or does not know id).
func (p *proc) sees(ctx context.Context, id string) string {
	ci, err := p.client().Cluster(ctx)
	if err != nil {
		return ""
	}
	for _, n := range ci.Nodes {
		if n.ID == id {
			return n.State
		}
	}
	return ""
}

// waitRing waits until every running node sees no change pending and the ring want.
func (c *cluster) waitRing(want ...string) {
	c.t.Helper()
	slices.Sort(want)
	seen := map[string]string{} // each node's last answer, to show on a timeout
	defer func() {
		if c.t.Failed() {
			for id, v := range seen {
				c.t.Logf("%s's transfers when the wait ended: %s", id, v)
			}
		}
	}()
	c.waitFor(60*time.Second, "the ring "+strings.Join(want, ",")+" with no change pending", func() bool {
		settled := true
		for _, p := range c.procs {
			select {
			case <-p.exited:
				continue
			default:
			}
			t, err := p.client().Transfers(context.Background())
			if err != nil {
				seen[p.id] = err.Error()
				settled = false
				continue
			}
			t.Transfers = nil // the gist: states, gainers, partitions moved
			b, _ := json.Marshal(t)
			seen[p.id] = string(b)
			settled = settled && !t.Pending && slices.Equal(t.Ring, want)
		}
		return settled
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
	c.waitFor(30*time.Second, "n1 to see n4 down", func() bool { return c.procs[0].sees(ctx, "n4") == "down" })
	c.addNode("n5", "--replace", "n4")
	c.waitRing("n1", "n2", "n3", "n5")
	readAll("after n5 replaced n4", "n1", "n2", "n3", "n5")

	c.node("n3").kill()
	c.waitFor(30*time.Second, "n1 to see n3 down", func() bool { return c.procs[0].sees(ctx, "n3") == "down" })
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
// Then n2 is killed and n5 joins: n5 streams from the other replicas; n2 gains partitions
// in the change too, so the change waits for it, and cluster status names it; n2 comes
// back and the join completes. No key is missing at R=quorum at any point.
func TestKillMidTransfer(t *testing.T) {
	// At 16 KiB/s n4's share (about 180 KB) takes over ten seconds: time to cut it off
	// part way through.
	slow := []string{"--transfer-rate", "16384"}
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

	// n2 is killed, then n5 joins: n2 gains partitions in this change too (the ring
	// rebalances over every member) and is down, so the change waits for it, and cluster
	// status says so; n5 streams from the other replicas meanwhile.
	n2 := c.node("n2")
	n2.kill()
	c.waitFor(30*time.Second, "n1 to see n2 down", func() bool { return c.procs[0].sees(ctx, "n2") == "down" })
	n5 := c.addNode("n5", slow...)
	c.waitFor(30*time.Second, "n5 to stream something", func() bool { return streaming(n5) })
	readAll("n2 down while n5 streams")
	c.waitFor(30*time.Second, "n1 to see the change held back by n2", func() bool {
		tr, err := c.procs[0].client().Transfers(ctx)
		return err == nil && slices.Equal(tr.HeldBy, []string{"n2"})
	})
	status, err := c.procs[0].cli("cluster", "status").CombinedOutput()
	if err != nil || !strings.Contains(string(status), "held back by n2") ||
		!strings.Contains(string(status), "DOWN: the change waits for it (start it again, or: quorumkv cluster remove n2)") {
		t.Fatalf("cluster status while n2 is down: %v\n%s", err, status)
	}
	n2.start()
	// cluster status --wait follows the change to its end: a progress line per node taking
	// partitions over (plain lines, as stderr is no terminal here).
	wait := c.procs[0].cli("cluster", "status", "--wait")
	timer := time.AfterFunc(90*time.Second, func() { _ = wait.Process.Kill() })
	out, err := wait.CombinedOutput()
	timer.Stop()
	if err != nil || !strings.Contains(string(out), "no change pending") || !strings.Contains(string(out), "  n5 ") {
		t.Fatalf("cluster status --wait: %v\n%s", err, out)
	}
	c.waitRing("n1", "n2", "n3", "n4", "n5")
	readAll("after n5's join")
}

// TestPartitionMidTransfer, with real processes: transfers throttled so that they take
// seconds; n4 joins, and once it streams a partition the network between n4 and that
// source is cut both ways (the debug fault API; gossip still passes, so the failure
// detector sees both up). n4 passes the source over and streams from the other replicas:
// the join completes during the partition. Reads at R=quorum through a third node never
// miss a key, a write made meanwhile at w=quorum is readable afterwards, and once healed
// every key reads at R=all through every node.
func TestPartitionMidTransfer(t *testing.T) {
	// At 16 KiB/s n4's share (about 180 KB) takes over ten seconds: time to cut it off
	// part way through.
	slow := []string{"--transfer-rate", "16384"}
	c := startClusterMode(t, 3, false, slow...)
	ctx := context.Background()
	const keys = 600
	key := func(i int) string { return fmt.Sprintf("p%03d", i) }
	value := strings.Repeat("y", 400)
	for i := range keys {
		if _, err := c.procs[i%3].client().Put(ctx, "b", key(i), []byte(value+key(i)), "", client.Quorum{W: "all"}); err != nil {
			t.Fatalf("put %s: %v", key(i), err)
		}
	}
	readAll := func(via *proc, r, when string, n int) {
		t.Helper()
		vc := via.client()
		for i := range n {
			obj, err := vc.Get(ctx, "b", key(i), client.Quorum{R: r})
			if err != nil || !obj.Found || string(obj.Values[0]) != value+key(i) {
				t.Fatalf("%s: %s via %s at r=%s: %+v %v", when, key(i), via.id, r, obj, err)
			}
		}
	}

	n4 := c.addNode("n4", slow...)
	var source string
	// Mid-transfer: n4 has taken some partitions and not others. A partition is streamed
	// and checked in a few ms and the throttle then waits, so the test does not try to
	// catch one in flight (it missed them all once): it cuts n4 off from the source of one
	// it completed, which, as every node holds every partition, is a source of the rest.
	c.waitFor(60*time.Second, "n4 to be part way through its partitions", func() bool {
		tr, err := n4.client().Transfers(ctx)
		if err != nil {
			return false
		}
		done, from := 0, ""
		for _, x := range tr.Transfers {
			if x.Phase == "done" && x.From != "" {
				done, from = done+1, x.From
			}
		}
		if done > 0 && done < len(tr.Transfers)/2 {
			source = from
			return true
		}
		return false
	})
	src := c.node(source)
	if _, err := n4.client().SetFaults(ctx, client.Faults{Drop: []string{source}}); err != nil {
		t.Fatal(err)
	}
	if _, err := src.client().SetFaults(ctx, client.Faults{Drop: []string{"n4"}}); err != nil {
		t.Fatal(err)
	}
	var via *proc // a node on neither side
	for _, p := range c.procs[:3] {
		if p.id != source {
			via = p
			break
		}
	}
	readAll(via, "quorum", "n4 cut off from "+source, keys)
	// Written during the partition, through the source: it reaches n4 only once healed.
	const more = 50
	for i := keys; i < keys+more; i++ {
		if _, err := src.client().Put(ctx, "b", key(i), []byte(value+key(i)), "", client.Quorum{}); err != nil {
			t.Fatalf("put %s during the partition: %v", key(i), err)
		}
	}
	c.waitRing("n1", "n2", "n3", "n4")
	tr, err := n4.client().Transfers(ctx)
	if err != nil || tr.Pending {
		t.Fatalf("n4 after the join: %+v %v", tr, err)
	}
	readAll(via, "quorum", "joined while cut off from "+source, keys+more)

	for _, p := range []*proc{n4, src} {
		if _, err := p.client().SetFaults(ctx, client.Faults{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range c.procs {
		readAll(p, "all", "healed", keys+more)
	}
}

// TestGrowShrinkUnderLoad, with real processes: under a continuous load of quorum writes
// (each key rewritten in turn with the context of its last write, so a newer value always
// supersedes) and quorum reads through the three nodes that stay, the cluster grows from
// 3 to 5 nodes and shrinks back to 3 (n4 and n5 leave, then stop). No request fails, and no
// read misses a key or returns a value older than the last write acknowledged before the
// read began. Afterwards every key reads its last acknowledged value at R=all.
func TestGrowShrinkUnderLoad(t *testing.T) {
	c := startClusterMode(t, 3, false)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	stable := slices.Clone(c.procs[:3])
	type keyState struct {
		mu    sync.Mutex
		acked int    // the sequence number of the last acknowledged write
		cctx  string // its causal context
		tried int    // the last write's: acked, or acked+1 when cut short by the end of the load
	}
	const writers, perWriter = 4, 25
	states := make([]*keyState, writers*perWriter)
	for i := range states {
		states[i] = &keyState{}
	}
	key := func(i int) string { return fmt.Sprintf("g%03d", i) }
	value := func(i, seq int) string { return fmt.Sprintf("%s#%06d", key(i), seq) }
	newest := func(vs [][]byte) int { // the highest sequence number among the values
		best := 0
		for _, v := range vs {
			_, s, _ := strings.Cut(string(v), "#")
			n, _ := strconv.Atoi(s)
			best = max(best, n)
		}
		return best
	}
	var failures, missing, stale, writes, reads atomic.Int64
	var firstProblem atomic.Value
	problem := func(format string, args ...any) {
		firstProblem.CompareAndSwap(nil, fmt.Sprintf(format, args...))
	}
	// The first read that goes wrong describes the key on every node at once (procsMu:
	// nodes are added while the readers run).
	var procsMu sync.Mutex
	var described atomic.Bool
	var description string
	describe := func(i int) {
		if described.CompareAndSwap(false, true) {
			procsMu.Lock()
			description = c.describeKey("b", key(i))
			procsMu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for j := 0; ctx.Err() == nil; j++ {
				i := w*perWriter + j%perWriter
				st := states[i]
				st.mu.Lock()
				seq := st.acked + 1
				st.tried = seq
				cctx, err := stable[rng.IntN(len(stable))].client().Put(ctx, "b", key(i), []byte(value(i, seq)), st.cctx, client.Quorum{})
				if err == nil {
					st.acked, st.cctx = seq, cctx
					writes.Add(1)
				} else if ctx.Err() == nil {
					failures.Add(1)
					problem("put %s: %v", key(i), err)
				}
				st.mu.Unlock()
			}
		}()
	}
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			for ctx.Err() == nil {
				i := rng.IntN(len(states))
				st := states[i]
				st.mu.Lock()
				want := st.acked
				st.mu.Unlock()
				via := stable[rng.IntN(len(stable))]
				began := time.Now().UTC().Format("15:04:05.000")
				obj, err := via.client().Get(ctx, "b", key(i), client.Quorum{})
				switch {
				case ctx.Err() != nil:
				case err != nil:
					failures.Add(1)
					problem("get %s via %s at %s: %v", key(i), via.id, began, err)
				case want > 0 && !obj.Found:
					missing.Add(1)
					problem("get %s via %s at %s: missing, %d acknowledged", key(i), via.id, began, want)
					describe(i)
				case want > 0 && newest(obj.Values) < want:
					stale.Add(1)
					problem("get %s via %s at %s: %q, older than the acknowledged #%d", key(i), via.id, began, obj.Values, want)
					describe(i)
				default:
					reads.Add(1)
				}
			}
		}()
	}

	time.Sleep(2 * time.Second)
	procsMu.Lock()
	c.addNode("n4")
	c.addNode("n5")
	procsMu.Unlock()
	c.waitRing("n1", "n2", "n3", "n4", "n5")
	time.Sleep(time.Second)
	for _, id := range []string{"n4", "n5"} {
		if _, err := c.procs[0].client().Leave(context.Background(), id); err != nil {
			t.Fatalf("leave %s: %v", id, err)
		}
	}
	c.waitRing("n1", "n2", "n3")
	time.Sleep(time.Second)
	stop()
	wg.Wait()
	for _, id := range []string{"n4", "n5"} {
		c.node(id).kill()
	}
	t.Logf("%d writes and %d reads under load: %d failed, %d missing, %d stale", writes.Load(), reads.Load(), failures.Load(), missing.Load(), stale.Load())
	if p := firstProblem.Load(); p != nil {
		if described.Load() {
			t.Logf("%s\nmembership events:\n%s", description, c.membershipEvents())
		}
		t.Fatalf("%d failed, %d missing, %d stale requests; the first: %s", failures.Load(), missing.Load(), stale.Load(), p)
	}
	if writes.Load() < int64(len(states)) {
		t.Fatalf("only %d writes acknowledged: the load did not run", writes.Load())
	}
	for _, p := range stable {
		vc := p.client()
		for i, st := range states {
			if st.acked == 0 {
				continue
			}
			obj, err := vc.Get(context.Background(), "b", key(i), client.Quorum{R: "all"})
			if err != nil || !obj.Found || len(obj.Values) != 1 ||
				string(obj.Values[0]) != value(i, st.acked) && string(obj.Values[0]) != value(i, st.tried) {
				t.Fatalf("after the changes, %s via %s at r=all: %+v %v, want %s (or %s, written when the load stopped)",
					key(i), p.id, obj, err, value(i, st.acked), value(i, st.tried))
			}
		}
	}
}
