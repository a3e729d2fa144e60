package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/testcluster"
)

// forwarded sums the writes the nodes forwarded to a primary (a non-replica received them).
func forwarded(t *testing.T, nodes []*node.Node) int {
	t.Helper()
	total := 0
	for _, n := range nodes {
		for _, line := range strings.Split(scrape(t, n), "\n") {
			var v float64
			if _, err := fmt.Sscanf(line, "quorumkv_forwarded_writes_total %g", &v); err == nil {
				total += int(v)
			}
		}
	}
	return total
}

func scrape(t *testing.T, n *node.Node) string {
	t.Helper()
	resp, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// With routing, a five-node cluster (N=3, so two nodes are not replicas of a key) forwards
// none of a client's writes: each goes to one of its key's primaries. Without it, writes
// through one node are forwarded whenever that node is not a replica.
func TestRoutingSendsWritesToAPrimary(t *testing.T) {
	nodes := testcluster.Start(t, 5, func(cfg *node.Config) {
		cfg.HTTPHandler = api.Handler(nil, false, cfg.MaxValueBytes)
	})
	ctx := context.Background()
	plain := client.New(nodes[0].HTTPAddr())
	for i := range 50 {
		if _, err := plain.Put(ctx, "b", fmt.Sprintf("p%d", i), []byte("v"), "", client.Quorum{}); err != nil {
			t.Fatal(err)
		}
	}
	before := forwarded(t, nodes)
	if before == 0 {
		t.Fatal("50 writes through one node of five: none forwarded (the check below would prove nothing)")
	}
	routed := client.New(nodes[0].HTTPAddr(), client.WithRouting())
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		// The first requests go to the configured address while the ring is fetched.
		if _, err := routed.Put(ctx, "b", "warm", []byte("v"), "", client.Quorum{}); err != nil {
			t.Fatal(err)
		}
		if routed.Routed() || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := forwarded(t, nodes)
	for i := range 50 {
		key := fmt.Sprintf("r%d", i)
		if _, err := routed.Put(ctx, "b", key, []byte("v"+key), "", client.Quorum{}); err != nil {
			t.Fatal(err)
		}
		obj, err := routed.Get(ctx, "b", key, client.Quorum{})
		if err != nil || string(obj.Values[0]) != "v"+key {
			t.Fatalf("read back %s: %+v %v", key, obj, err)
		}
	}
	if got := forwarded(t, nodes) - start; got != 0 {
		t.Fatalf("routed writes: %d forwarded, want 0 (%d before routing)", got, before)
	}
}
