package api_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/testcluster"
)

// startCluster starts n in-process nodes on loopback ports chosen at run time and waits
// until every node sees every member alive.
func startCluster(t testing.TB, size int) []*node.Node {
	t.Helper()
	return testcluster.Start(t, size, func(cfg *node.Config) {
		cfg.DebugFaults = true
		cfg.HTTPHandler = api.Handler(nil, true, cfg.MaxValueBytes)
	})
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
