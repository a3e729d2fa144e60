package container

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// fault is one injected fault: what, on which nodes, for how long.
type fault struct {
	kind    string // partition, kill, pause or stop
	targets []*node
	hold    time.Duration
}

func (f fault) String() string {
	var names []string
	for _, n := range f.targets {
		names = append(names, n.name)
	}
	return fmt.Sprintf("%s %s for %v", f.kind, strings.Join(names, ","), f.hold)
}

// plan draws the run's faults from the seed: each kind once, in a random order, on
// random nodes; a partition cuts one or two nodes off the network (each alone).
func plan(r *rand.Rand, nodes []*node) []fault {
	kinds := []string{"partition", "kill", "pause", "stop"}
	r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	var faults []fault
	for _, k := range kinds {
		perm := r.Perm(len(nodes))
		f := fault{kind: k, targets: []*node{nodes[perm[0]]}, hold: time.Duration(5000+r.IntN(4000)) * time.Millisecond}
		if k == "partition" && r.IntN(2) == 0 {
			f.targets = append(f.targets, nodes[perm[1]])
		}
		faults = append(faults, f)
	}
	return faults
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
	t.Logf("image %s: %.1f MB, built in %v", img.tag, float64(img.size)/1e6, img.buildTime.Round(time.Millisecond))
	startAt := time.Now()
	c, serving := startCluster(t, tl, img)
	c.waitHealthy(time.Minute)
	healthy := time.Since(startAt)
	t.Logf("cluster %s: every node serving and seeing 5 alive after %v, Docker health checks healthy after %v",
		c.project, serving.Round(time.Millisecond), healthy.Round(time.Millisecond))

	r := rand.New(rand.NewPCG(s, 0))
	faults := plan(r, c.nodes)
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
	for _, f := range faults {
		t.Logf("fault: %v", f)
		c.inject(f)
		time.Sleep(f.hold)
		c.heal(f)
		time.Sleep(3 * time.Second)
	}
	stop()
	<-done
	healed := time.Now()

	// Heal and repair, then require every invariant within the budget.
	c.waitServing(2*time.Minute, nil)
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
		t.Fatalf("not converged %v after the last fault healed (%d repair rounds)", converged.Round(time.Millisecond), rounds)
	}
	t.Logf("converged %v after the last fault healed (%d repair rounds)", converged.Round(time.Millisecond), rounds)
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
