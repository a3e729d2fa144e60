package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
)

// startCluster starts n in-process nodes on loopback ports chosen at run time and waits
// until every node sees every member alive.
func startCluster(t testing.TB, size int) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	var seed string
	for i := 1; i <= size; i++ {
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("n%d", i)
		cfg.DataDir = t.TempDir()
		cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.DebugFaults = true
		cfg.RequestTimeout = 2 * time.Second
		if seed != "" {
			cfg.Join = []string{seed}
		}
		cfg.HTTPHandler = api.Handler(nil, true, cfg.MaxValueBytes)
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
	for {
		ok := true
		for _, n := range nodes {
			alive := 0
			for _, m := range n.Members() {
				if m.State == "alive" {
					alive++
				}
			}
			if alive != size {
				ok = false
			}
		}
		if ok {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster did not converge on %d alive members", size)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestPutGetEveryNode(t *testing.T) {
	nodes := startCluster(t, 3)
	for i, n := range nodes {
		key := fmt.Sprintf("k%d", i)
		resp, body := do(t, "PUT", "http://"+n.HTTPAddr()+"/v1/kv/b/"+key, "v"+key, nil)
		if resp.StatusCode != 204 {
			t.Fatalf("put via %s: %d %s", n.ID(), resp.StatusCode, body)
		}
		for _, m := range nodes {
			resp, body := do(t, "GET", "http://"+m.HTTPAddr()+"/v1/kv/b/"+key, "", nil)
			if resp.StatusCode != 200 || body != "v"+key {
				t.Fatalf("get %s via %s: %d %q", key, m.ID(), resp.StatusCode, body)
			}
			if resp.Header.Get(api.ContextHeader) == "" {
				t.Fatalf("no context")
			}
		}
	}
}
