// Package testcluster starts real in-process quorumkv nodes for tests: ports chosen at run
// time on loopback, joined through the first node's gossip, closed when the test ends.
package testcluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/membership"
	"github.com/quorumkv/quorumkv/internal/node"
)

// Start starts size nodes n1..nSIZE with node.DefaultConfig, a 2 s request timeout and
// temporary data directories; configure (may be nil) adjusts each node's configuration
// (its HTTP handler, say) before it starts. It returns once every node sees every member
// alive and in the ring (the joining nodes have taken their partitions over), and fails
// the test after 15 s otherwise.
func Start(t testing.TB, size int, configure func(*node.Config)) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	var seed string
	for i := 1; i <= size; i++ {
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i)
		cfg.DataDir = t.TempDir()
		cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.RequestTimeout = 2 * time.Second
		if seed != "" {
			cfg.Join = []string{seed}
		}
		if configure != nil {
			configure(&cfg)
		}
		n, err := node.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("start %s: %v", cfg.ID, err)
		}
		t.Cleanup(func() { _ = n.Close(context.Background()) })
		if seed == "" {
			seed = n.GossipAddr()
		}
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for Alive(n) < size || !n.RingSettled() || len(n.Ring().Members()) < size {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d of %d members alive, ring settled %v", n.ID(), Alive(n), size, n.RingSettled())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}

// Alive is how many members n sees alive.
func Alive(n *node.Node) int {
	c := 0
	for _, m := range n.Members() {
		if m.State == membership.Alive {
			c++
		}
	}
	return c
}
