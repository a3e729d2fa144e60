package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/api"
)

// TestContentTypeAndMetadataKept is item 12 of issue 16: a JSON value read back as
// application/octet-stream, and there was no way to keep user metadata. Both are now kept
// with each value, on every replica, and returned with it — alone, and per sibling.
func TestContentTypeAndMetadataKept(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n3 := nodes[0], nodes[2]
	resp, body := do(t, "PUT", addr(n1, "/v1/kv/m/doc"), `{"a":1}`, map[string]string{
		"Content-Type": "application/json", api.MetaHeaderPrefix + "Author": "ann", api.MetaHeaderPrefix + "rev": "1"})
	if resp.StatusCode != 204 {
		t.Fatalf("put: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", addr(n3, "/v1/kv/m/doc?r=all"), "", nil)
	if resp.StatusCode != 200 || body != `{"a":1}` {
		t.Fatalf("get: %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if a, r := resp.Header.Get(api.MetaHeaderPrefix+"author"), resp.Header.Get(api.MetaHeaderPrefix+"rev"); a != "ann" || r != "1" {
		t.Fatalf("metadata headers author=%q rev=%q", a, r)
	}
	for _, n := range nodes {
		lc, _ := do(t, "GET", addr(n, "/v1/admin/local/m/doc"), "", nil)
		if lc.StatusCode != 200 {
			t.Fatalf("%s local: %d", n.ID(), lc.StatusCode)
		}
	}

	// A concurrent blind write of another type: two siblings, each described.
	resp, body = do(t, "PUT", addr(nodes[1], "/v1/kv/m/doc"), "plain", map[string]string{"Content-Type": "text/plain"})
	if resp.StatusCode != 204 {
		t.Fatalf("second put: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", addr(n1, "/v1/kv/m/doc?r=all"), "", nil)
	if resp.StatusCode != 300 {
		t.Fatalf("siblings: %d %s", resp.StatusCode, body)
	}
	var got struct {
		Siblings []struct {
			Value       string            `json:"value"`
			ContentType string            `json:"content_type"`
			Meta        map[string]string `json:"meta"`
		} `json:"siblings"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, s := range got.Siblings {
		seen[s.ContentType] = s.Meta["author"]
	}
	if len(got.Siblings) != 2 || seen["application/json"] != "ann" || !strings.Contains(body, `"content_type":"text/plain"`) {
		t.Fatalf("siblings %s: want each with its own content type and metadata", body)
	}

	// Bad metadata is refused and changes nothing.
	resp, body = do(t, "PUT", addr(n1, "/v1/kv/m/big"), "x", map[string]string{api.MetaHeaderPrefix + "k": strings.Repeat("v", 9<<10)})
	if resp.StatusCode != 413 {
		t.Fatalf("oversized metadata: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, "GET", addr(n1, "/v1/kv/m/big"), "", nil); resp.StatusCode != 404 {
		t.Fatalf("refused write left a value: %d", resp.StatusCode)
	}
}
