package e2e

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// Tests of issue 5 with real processes: set and counter workloads under faults.

// crdtLedger is what the workers know of their operations' outcomes.
type crdtLedger struct {
	mu sync.Mutex
	// Set elements: acknowledged, outcome unknown (error or timeout after the request may
	// have reached a node), and never sent (the connection was refused).
	acked, unknown, unsent map[string]bool
	// Counter: the sums of acknowledged and of unknown increments (all positive).
	incAcked, incUnknown int64
	incOps, incAckedOps  int
	errSamples           map[string]int
}

// outcome classifies a request's error: "acked", "unsent" (refused before anything was
// sent) or "unknown". A 4xx answer is a bug in the test or the server.
func outcome(err error) (string, error) {
	if err == nil {
		return "acked", nil
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return "unsent", nil
	}
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 {
		return "", err
	}
	return "unknown", nil
}

func (l *crdtLedger) sample(err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	if len(msg) > 90 {
		msg = msg[:90]
	}
	l.errSamples[msg]++
}

// TestCRDTWorkloadUnderFaults: 5 nodes, N=3. Ten clients spread over every node add unique
// integers to a set and increment a counter, at W=1 and at quorum, while the test
// partitions the cluster in halves (n1,n2 | n3,n4,n5), kill -9's and restarts a node, and
// freezes one with SIGSTOP. Then it heals, lets handoff and anti-entropy run, and reads
// through every node with R=all: every acknowledged element is present, nothing never
// added appears, and the counter lies between the acknowledged sum and that sum plus the
// increments whose outcome is unknown.
func TestCRDTWorkloadUnderFaults(t *testing.T) {
	c := startClusterWith(t, 5, "--handoff-interval", "1s")
	ctx := context.Background()
	n1 := c.node("n1").client()
	for b, typ := range map[string]string{"eset": "set", "ecnt": "counter"} {
		if _, err := n1.SetBucket(ctx, b, client.BucketProps{Type: client.Ptr(typ)}); err != nil {
			t.Fatal(err)
		}
		c.waitFor(10*time.Second, "bucket "+b+" to be a "+typ+" on every node", func() bool {
			for _, p := range c.procs {
				props, err := p.client().GetBucket(ctx, b)
				if err != nil || props.Type == nil || *props.Type != typ {
					return false
				}
			}
			return true
		})
	}

	l := &crdtLedger{acked: map[string]bool{}, unknown: map[string]bool{}, unsent: map[string]bool{}, errSamples: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bug error
	var bugOnce sync.Once
	const workers = 10
	for w := 0; w < workers; w++ {
		p := c.procs[w%len(c.procs)]
		cl := p.clientWith(client.WithTimeout(3 * time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ { // bounded; stop ends it long before
				select {
				case <-stop:
					return
				default:
				}
				q := client.Quorum{W: "1", Timeout: 2 * time.Second}
				if i%2 == 1 {
					q.W = "quorum"
				}
				elem := strconv.Itoa(w*1000000 + i)
				err := cl.SetAdd(ctx, "eset", "s", []string{elem}, q)
				o, bad := outcome(err)
				inc := int64(i%5 + 1)
				ierr := cl.Increment(ctx, "ecnt", "c", inc, q)
				io, ibad := outcome(ierr)
				if bad != nil || ibad != nil {
					bugOnce.Do(func() { bug = errors.Join(bad, ibad) })
					return
				}
				l.mu.Lock()
				switch o {
				case "acked":
					l.acked[elem] = true
				case "unknown":
					l.unknown[elem] = true
				default:
					l.unsent[elem] = true
				}
				l.sample(err)
				l.incOps++
				switch io {
				case "acked":
					l.incAcked += inc
					l.incAckedOps++
				case "unknown":
					l.incUnknown += inc
				}
				l.sample(ierr)
				l.mu.Unlock()
				if o == "unsent" && io == "unsent" {
					// The node is down: don't spin on refused connections.
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}()
	}

	// The fault schedule, on a timer.
	stopped := false
	defer func() {
		if stopped {
			_ = c.node("n3").cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	phase := func(d time.Duration) { <-time.After(d) }
	halves := func(cut bool) {
		left, right := []string{"n1", "n2"}, []string{"n3", "n4", "n5"}
		for _, p := range c.procs {
			f := client.Faults{}
			if cut {
				f.Drop = right
				if p.id == "n3" || p.id == "n4" || p.id == "n5" {
					f.Drop = left
				}
			}
			if _, err := p.client().SetFaults(ctx, f); err != nil {
				t.Errorf("faults on %s: %v", p.id, err)
			}
		}
	}
	phase(1500 * time.Millisecond)
	t.Log("partition n1,n2 | n3,n4,n5")
	halves(true)
	phase(4 * time.Second)
	halves(false)
	t.Log("healed; kill -9 n4")
	phase(1 * time.Second)
	c.node("n4").kill()
	phase(2 * time.Second)
	c.node("n4").start()
	t.Log("n4 restarted; SIGSTOP n3")
	phase(1 * time.Second)
	if err := c.node("n3").cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped = true
	phase(3 * time.Second)
	if err := c.node("n3").cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	t.Log("SIGCONT n3")
	phase(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if bug != nil {
		t.Fatalf("an operation was refused: %v", bug)
	}
	t.Logf("set: %d acked, %d unknown, %d refused; counter: %d ops, %d acked (sum %d), unknown sum %d",
		len(l.acked), len(l.unknown), len(l.unsent), l.incOps, l.incAckedOps, l.incAcked, l.incUnknown)
	t.Logf("errors: %v", l.errSamples)
	if len(l.acked) < 100 || l.incAckedOps < 100 {
		t.Fatalf("too few acknowledged operations to mean anything")
	}

	// Heal, let handoff deliver and anti-entropy compare every replica.
	halves(false)
	c.waitAlive(5)
	// Within the handoff timeout (30 s) and some: the nodes heal one after another, and a
	// handoff batch sent in the instant between a sender's heal and its target's is dropped
	// like any message of the partition; its sender sends it again after the timeout.
	c.waitFor(45*time.Second, "the hint queues to drain", func() bool {
		pending, _, _, err := c.hintSums("")
		return err == nil && pending == 0
	})
	for round := 0; round < 2; round++ {
		for _, p := range c.procs {
			c.repair(p)
		}
	}

	for _, p := range c.procs {
		var sv, cv *client.CRDTValue
		c.waitFor(10*time.Second, "R=all reads through "+p.id, func() bool {
			var err1, err2 error
			sv, err1 = p.client().GetCRDT(ctx, "eset", "s", client.Quorum{R: "all"})
			cv, err2 = p.client().GetCRDT(ctx, "ecnt", "c", client.Quorum{R: "all"})
			return err1 == nil && err2 == nil
		})
		members, err := sv.Strings()
		if err != nil || !sv.Found {
			t.Fatalf("set via %s: %v (found %v)", p.id, err, sv.Found)
		}
		present := make(map[string]bool, len(members))
		for _, m := range members {
			present[m] = true
			if !l.acked[m] && !l.unknown[m] {
				t.Errorf("via %s: %q is in the set but was never added (refused: %v)", p.id, m, l.unsent[m])
			}
		}
		missing := 0
		for e := range l.acked {
			if !present[e] {
				missing++
				if missing <= 5 {
					t.Errorf("via %s: acknowledged element %s is missing", p.id, e)
				}
			}
		}
		if missing > 0 {
			t.Fatalf("via %s: %d of %d acknowledged elements missing", p.id, missing, len(l.acked))
		}
		v, err := cv.Int()
		if err != nil {
			t.Fatal(err)
		}
		if v < l.incAcked || v > l.incAcked+l.incUnknown {
			t.Fatalf("counter via %s: %d, want within [%d, %d]", p.id, v, l.incAcked, l.incAcked+l.incUnknown)
		}
		t.Logf("via %s: %d members (%d of %d unknown adds applied), counter %d in [%d, %d]", p.id, len(members),
			len(members)-len(l.acked), len(l.unknown), v, l.incAcked, l.incAcked+l.incUnknown)
	}
}
