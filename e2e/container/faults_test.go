package container

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// fault is one injected fault: what, on which nodes, for how long.
type fault struct {
	kind    string // partition, kill, pause, stop or loss
	targets []*node
	hold    time.Duration
	loss    int // for loss: the percentage of the node's outgoing packets dropped
}

func (f fault) String() string {
	var names []string
	for _, n := range f.targets {
		names = append(names, n.name)
	}
	s := fmt.Sprintf("%s %s for %v", f.kind, strings.Join(names, ","), f.hold)
	if f.kind == "loss" {
		s += fmt.Sprintf(" (%d%% of outgoing packets)", f.loss)
	}
	return s
}

// plan draws the run's faults from the seed: each kind alone once, in a random order, on
// a random node (a partition cuts one or two nodes off, each alone); then two kinds at
// once on two other nodes. Never more than two nodes are affected at a time.
func plan(r *rand.Rand, nodes []*node, kinds []string) [][]fault {
	kinds = slices.Clone(kinds)
	r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	draw := func(k string, n *node, other *node) fault {
		f := fault{kind: k, targets: []*node{n}, hold: time.Duration(5000+r.IntN(4000)) * time.Millisecond}
		switch k {
		case "partition":
			if other != nil && r.IntN(2) == 0 {
				f.targets = append(f.targets, other)
			}
		case "loss":
			f.loss = []int{40, 100}[r.IntN(2)]
		}
		return f
	}
	var steps [][]fault
	for _, k := range kinds {
		perm := r.Perm(len(nodes))
		steps = append(steps, []fault{draw(k, nodes[perm[0]], nodes[perm[1]])})
	}
	perm := r.Perm(len(nodes))
	pair := r.Perm(len(kinds))
	steps = append(steps, []fault{draw(kinds[pair[0]], nodes[perm[0]], nil), draw(kinds[pair[1]], nodes[perm[1]], nil)})
	return steps
}

// faultKinds are the faults this host can inject. One-way loss is a packet filter in the
// container's network namespace (the image has no tools of its own): it needs root,
// nsenter and iptables on the host. (iptables' statistic match rather than tc netem: the
// kernels of some hosts, this one among them, lack sch_netem.)
func faultKinds(t *testing.T) []string {
	kinds := []string{"partition", "kill", "pause", "stop"}
	_, errNs := exec.LookPath("nsenter")
	_, errIpt := exec.LookPath("iptables")
	if os.Geteuid() == 0 && errNs == nil && errIpt == nil {
		return append(kinds, "loss")
	}
	t.Logf("no one-way packet loss in this run: it needs root, nsenter and iptables on the host")
	return kinds
}

// lossRule is the iptables rule that drops pct% of what a node sends.
func lossRule(pct int) []string {
	if pct >= 100 {
		return []string{"OUTPUT", "-j", "DROP"}
	}
	return []string{"OUTPUT", "-m", "statistic", "--mode", "random", "--probability", fmt.Sprintf("%.2f", float64(pct)/100), "-j", "DROP"}
}

// netns runs a command in n's network namespace.
func (c *cluster) netns(n *node, args ...string) {
	c.t.Helper()
	pid := c.docker("inspect", "--format", "{{.State.Pid}}", n.container)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := run(ctx, nil, "nsenter", append([]string{"--target", pid, "--net"}, args...)...); err != nil {
		c.t.Fatal(err)
	}
}

// inject starts f; heal ends it.
func (c *cluster) inject(f fault) {
	for _, n := range f.targets {
		switch f.kind {
		case "partition":
			c.docker("network", "disconnect", c.network, n.container)
		case "kill":
			c.docker("kill", "--signal", "KILL", n.container)
		case "pause":
			c.docker("pause", n.container)
		case "loss":
			// Only what the node sends is lost: it hears the others, they hear it badly.
			c.netns(n, append([]string{"iptables", "-A"}, lossRule(f.loss)...)...)
		case "stop":
			// SIGTERM under load: the node must finish what is in flight, flush and exit 0.
			c.docker("stop", "--time", "30", n.container)
			if code := c.docker("inspect", "--format", "{{.State.ExitCode}}", n.container); code != "0" {
				c.t.Errorf("%s stopped by SIGTERM exited %s, want 0 (a clean stop)", n.name, code)
			}
		}
	}
}

func (c *cluster) heal(f fault) {
	for _, n := range f.targets {
		switch f.kind {
		case "partition":
			// Back at its own address and name: its listeners are bound there.
			c.docker("network", "connect", "--ip", n.ip, "--alias", n.name, c.network, n.container)
		case "kill", "stop":
			c.docker("start", n.container) // the same container: the same volume
		case "pause":
			c.docker("unpause", n.container)
		case "loss":
			c.netns(n, append([]string{"iptables", "-D"}, lossRule(f.loss)...)...)
		}
	}
}

// seed is QKV_SEED when set, else a new one; a failure prints it with the command that
// replays the run's choices.
func seed(t *testing.T) uint64 {
	if s := os.Getenv("QKV_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("QKV_SEED=%q: %v", s, err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// TestFaults is the suite: build, start, run the workloads through a fault of each kind,
// heal, repair, check.
func TestFaults(t *testing.T) {
	tl := requireTools(t)
	if testing.Short() {
		t.Skip("container fault suite: skipped in -short mode (it takes a few minutes)")
	}
	s := seed(t)
	t.Logf("seed %d (replay the faults: QKV_SEED=%d go test ./e2e/container/ -run TestFaults -v)", s, s)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: QKV_SEED=%d go test ./e2e/container/ -run TestFaults -v", s, s)
		}
	}()

	img := buildImage(t)
	checkImage(t, img)
	t.Logf("image %s: %.1f MB, built in %v", img.tag, float64(img.size)/1e6, img.buildTime.Round(time.Millisecond))
	startAt := time.Now()
	c, serving := startCluster(t, tl, img)
	c.waitHealthy(time.Minute)
	healthy := time.Since(startAt)
	t.Logf("cluster %s: every node serving and seeing 5 alive after %v, Docker health checks healthy after %v",
		c.project, serving.Round(time.Millisecond), healthy.Round(time.Millisecond))

	r := rand.New(rand.NewPCG(s, 0))
	steps := plan(r, c.nodes, faultKinds(t))
	w := newWorkload(c.nodes)
	defer w.close()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, s)
	}()
	// The nemesis paces itself by the clock: a fault lasts its hold, then the cluster
	// gets a few seconds with everything up before the next one.
	time.Sleep(3 * time.Second)
	for _, step := range steps {
		var hold time.Duration
		for _, f := range step {
			t.Logf("fault: %v", f)
			c.inject(f)
			hold = max(hold, f.hold)
		}
		time.Sleep(hold)
		for _, f := range step {
			c.heal(f)
		}
		time.Sleep(3 * time.Second)
	}
	// Convergence is timed from here: every fault healed (the last one 3 s ago) and the
	// last operation answered, so nothing writes any more.
	stop()
	<-done
	healed := time.Now()

	// Heal and repair, then require every invariant within the budget.
	c.waitServing(2 * time.Minute)
	var (
		fig      figures
		problems []string
		rounds   int
	)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rounds++
		for _, n := range c.nodes {
			rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := n.client().Repair(rctx, client.RepairOptions{}, nil)
			cancel()
			if err != nil {
				t.Logf("repair via %s: %v", n.name, err)
			}
		}
		fig, problems = w.check()
		if len(problems) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	converged := time.Since(healed)
	t.Logf("figures: %v", fig)
	w.l.mu.Lock()
	t.Logf("error samples: %v", w.l.errs)
	w.l.mu.Unlock()
	if len(problems) > 0 {
		for _, p := range problems {
			t.Error(p)
		}
		t.Fatalf("not converged %v after the faults healed and the workload stopped (%d repair rounds)", converged.Round(time.Millisecond), rounds)
	}
	t.Logf("converged %v after the faults healed and the workload stopped (%d repair rounds)", converged.Round(time.Millisecond), rounds)
	checkTheChecks(t, w)
	if path := os.Getenv("QKV_REPORT"); path != "" {
		line := fmt.Sprintf("seed=%d image_mb=%.1f start_serving_s=%.1f start_healthy_s=%.1f converge_s=%.1f repair_rounds=%d %v\n",
			s, float64(img.size)/1e6, serving.Seconds(), healthy.Seconds(), converged.Seconds(), rounds, fig)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			_, _ = f.WriteString(line)
			_ = f.Close()
		}
	}
}

// checkTheChecks shows, on the converged cluster, that each check fails when the ledger
// says something the cluster does not hold: a check that cannot fail proves nothing.
func checkTheChecks(t *testing.T, w *workload) {
	l := w.l
	var someElem, someWrite string
	for e := range l.setAcked {
		someElem = e
		break
	}
	for v, rw := range l.regWrites {
		if rw.acked {
			someWrite = v
			break
		}
	}
	if someElem == "" || someWrite == "" {
		t.Fatal("no acknowledged set element or register write to check the checks with")
	}
	for _, tc := range []struct {
		name      string
		lie, undo func()
		want      string
	}{
		{"an acknowledged element that was never added",
			func() { l.setAcked["ghost"] = true }, func() { delete(l.setAcked, "ghost") }, "acknowledged set elements missing"},
		{"an element the ledger forgot",
			func() { delete(l.setAcked, someElem) }, func() { l.setAcked[someElem] = true }, "set elements never added"},
		{"a thousand acknowledged increments too many",
			func() { l.incAcked += 1000 }, func() { l.incAcked -= 1000 }, "outside"},
		{"an acknowledged register write that was never made",
			func() { l.regWrites["ghost"] = &regWrite{key: regKeys[0], acked: true} }, func() { delete(l.regWrites, "ghost") }, "neither there nor superseded"},
		{"a register write the ledger forgot",
			func() { l.regWrites["hidden"] = l.regWrites[someWrite]; delete(l.regWrites, someWrite) },
			func() { l.regWrites[someWrite] = l.regWrites["hidden"]; delete(l.regWrites, "hidden") }, "was never written"},
	} {
		l.mu.Lock()
		tc.lie()
		l.mu.Unlock()
		_, problems := w.check()
		l.mu.Lock()
		tc.undo()
		l.mu.Unlock()
		if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
			t.Errorf("checker self-test: %s went unnoticed (problems: %q)", tc.name, problems)
		}
	}
}
