package membership

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestHelperProcess is not a real test: it runs one gossip node in a child
// process for TestKilledNodeDefaultConfig, prints its address and blocks.
func TestHelperProcess(t *testing.T) {
	seed := os.Getenv("MEMBERSHIP_HELPER_SEED")
	if seed == "" {
		t.Skip("helper process only")
	}
	cfg := DefaultConfig()
	cfg.Meta = NodeMeta{ID: "child"}
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Seeds = []string{seed}
	cfg.Logger = testLogger(nil)
	m, err := Start(context.Background(), cfg)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Println("ADDR", m.GossipAddr())
	select {} // until SIGKILL
}

func startChild(t *testing.T, seed string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "MEMBERSHIP_HELPER_SEED="+seed)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		t.Fatalf("child did not start: %q %v", line, err)
	}
	return cmd, strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
}

// TestKilledNodeDefaultConfig SIGKILLs a node running the default timing in
// another process and measures how long the survivor takes to see it Down,
// then restarts it on a new port and waits for it to be Alive again.
func TestKilledNodeDefaultConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("uses the default (seconds-long) timing")
	}
	cfg := DefaultConfig()
	cfg.Meta = NodeMeta{ID: "parent"}
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Logger = testLogger(nil)
	p := start(t, cfg)
	// A second in-process node so suspicion gets confirmations, as in a
	// real 3-node cluster.
	cfg2 := cfg
	cfg2.Meta = NodeMeta{ID: "peer"}
	cfg2.Seeds = []string{p.GossipAddr()}
	peer := start(t, cfg2)

	child, addr := startChild(t, p.GossipAddr())
	all := map[string]State{"parent": Alive, "peer": Alive, "child": Alive}
	waitFor(t, 10*time.Second, "child alive", viewIs(all, p, peer))

	if err := p.SetMeta("bucket/default", []byte(`{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, 10*time.Second, "metadata on peer", metaIs("bucket/default", `{"n":3}`, peer))
	t.Logf("metadata propagation with the default config: %v", d)

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d = waitFor(t, 15*time.Second, "killed child down",
		viewIs(map[string]State{"parent": Alive, "peer": Alive, "child": Down}, p, peer))
	t.Logf("SIGKILLed node seen Down by both survivors after %v (default config)", d)

	_, addr2 := startChild(t, p.GossipAddr())
	if addr2 == addr {
		t.Fatalf("child restarted on the same address %s", addr)
	}
	d = waitFor(t, 15*time.Second, "restarted child alive", viewIs(all, p, peer))
	t.Logf("restarted node (new port %s) seen Alive after %v", addr2, d)
	waitFor(t, 10*time.Second, "new address everywhere", func() (bool, string) {
		for _, m := range []*Membership{p, peer} {
			for _, mb := range m.Members() {
				if mb.ID == "child" && mb.Gossip != addr2 {
					return false, m.ID() + " has " + mb.Gossip
				}
			}
		}
		return true, ""
	})
}
