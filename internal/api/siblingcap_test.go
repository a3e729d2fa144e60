package api_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/internal/api"
)

// TestSiblingCapRefusesNeverTrims: blind writes pile up siblings up to the cap (100); the
// next one is refused with 409 by whichever node coordinates it and nothing is trimmed; a
// write with the read's context resolves them.
func TestSiblingCapRefusesNeverTrims(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	const limit = 100
	// w=all: every replica holds every sibling, so whichever coordinates the next write
	// sees the object at the cap.
	for i := 0; i < limit; i++ {
		put(t, nodes[i%3], "cap", "k", "?w=all", fmt.Sprintf("v%d", i), "")
	}
	for _, n := range nodes {
		resp, body := do(t, "PUT", addr(n, "/v1/kv/cap/k"), "one-too-many", nil)
		e := wantError(t, "write past the sibling cap via "+n.ID(), 409, "too_many_siblings", resp.StatusCode, body)
		if e.Error == "" {
			t.Fatal("no message")
		}
	}
	resp, body := do(t, "GET", addr(nodes[1], "/v1/kv/cap/k?r=all"), "", nil)
	if resp.StatusCode != 300 {
		t.Fatalf("read: %d %s", resp.StatusCode, body)
	}
	var sib struct {
		Siblings []struct{ Value string } `json:"siblings"`
		Context  string                   `json:"context"`
	}
	if err := json.Unmarshal([]byte(body), &sib); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range sib.Siblings {
		seen[s.Value] = true
	}
	if len(seen) != limit || seen[b64("one-too-many")] {
		t.Fatalf("%d distinct siblings (refused write present: %v); want exactly the %d accepted", len(seen), seen[b64("one-too-many")], limit)
	}
	put(t, nodes[2], "cap", "k", "", "resolved", resp.Header.Get(api.ContextHeader))
	getOne(t, nodes[0], "cap", "k", "?r=all", "resolved")
}
