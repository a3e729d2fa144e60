package api_test

import (
	"encoding/json"
	"testing"

	"github.com/quorumkv/quorumkv/internal/node"
)

// TestSilentPrimaryGetsAStandIn: a primary that silently drops the coordinator's traffic
// still looks alive to the failure detector (gossip is untouched). A W=all write must not
// wait out its deadline on it: after the hedge delay a fallback stands in and keeps a hint
// and the write succeeds; a write that needs every primary (pw=all) still fails.
func TestSilentPrimaryGetsAStandIn(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 5)
	byID := map[string]*node.Node{}
	for _, n := range nodes {
		byID[n.ID()] = n
	}
	resp, body := do(t, "GET", addr(nodes[0], "/v1/admin/endpoints/b/k"), "", nil)
	var ep node.EndpointsInfo
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &ep) != nil || len(ep.Primaries) != 3 {
		t.Fatalf("endpoints: %d %s", resp.StatusCode, body)
	}
	coord, silent := byID[ep.Primaries[0].ID], byID[ep.Primaries[2].ID]
	setFaults(t, silent, []string{coord.ID()}, 0) // inbound from coord is dropped silently

	put(t, coord, "b", "k", "?w=all&timeout=4000", "v", "")

	// Some node other than the primaries keeps the write as a hint for the silent one.
	holder := ""
	for _, n := range nodes {
		if n == silent || n.ID() == ep.Primaries[0].ID || n.ID() == ep.Primaries[1].ID {
			continue
		}
		if _, lc := local(t, n, "b", "k"); lc.Found && lc.HintedFor != nil && *lc.HintedFor == silent.ID() {
			holder = n.ID()
		}
	}
	if holder == "" {
		t.Fatalf("no fallback holds a hint for %s", silent.ID())
	}
	if _, lc := local(t, silent, "b", "k"); lc.Found {
		t.Fatalf("the silent primary stored the write: %+v", lc)
	}
	// PW counts primaries only: with one silent, pw=all cannot be met.
	resp, body = do(t, "PUT", addr(coord, "/v1/kv/b/k?pw=all&timeout=1500"), "v", nil)
	e := wantError(t, "pw=all with a silent primary", 503, "quorum_failed", resp.StatusCode, body)
	if e.Acks == nil || e.Required == nil || *e.Acks != 2 || *e.Required != 3 {
		t.Fatalf("pw=all: %+v", e)
	}
}
