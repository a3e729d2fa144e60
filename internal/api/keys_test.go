package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/api"
)

// TestListKeys: GET /v1/keys/{bucket} pages through a bucket's live keys, each exactly
// once, through any node; prefix filters; deleted and other buckets' keys never appear;
// bad parameters answer 400.
func TestListKeys(t *testing.T) {
	nodes := startCluster(t, 3)
	ctx := context.Background()
	cl := client.New(nodes[0].HTTPAddr())
	want := map[string]bool{}
	for i := range 300 {
		k := fmt.Sprintf("k%03d", i)
		if i%10 == 0 {
			k = fmt.Sprintf("p/%03d", i)
		}
		put(t, nodes[i%3], "lk", k, "", "v", "")
		want[k] = true
	}
	put(t, nodes[0], "other", "k000", "", "x", "")
	for i := 1; i < 300; i += 7 {
		if i%10 == 0 {
			continue
		}
		k := fmt.Sprintf("k%03d", i)
		ctx := getOne(t, nodes[1], "lk", k, "", "v")
		if resp, body := do(t, "DELETE", addr(nodes[1], "/v1/kv/lk/"+k), "", map[string]string{api.ContextHeader: ctx}); resp.StatusCode != 204 {
			t.Fatalf("delete %s: %d %s", k, resp.StatusCode, body)
		}
		delete(want, k)
	}

	// Pages of 40, each through another node, the cursor carried over.
	seen := map[string]int{}
	cursor, pages := "", 0
	for {
		c := client.New(nodes[pages%3].HTTPAddr())
		p, err := c.Keys(ctx, "lk", client.KeysOptions{Cursor: cursor, Limit: 40})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(p.Keys) > 40 {
			t.Fatalf("page %d has %d keys, limit 40", pages, len(p.Keys))
		}
		for _, k := range p.Keys {
			seen[k]++
		}
		pages++
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	for k := range want {
		if seen[k] != 1 {
			t.Errorf("key %s listed %d times, want once", k, seen[k])
		}
	}
	for k := range seen {
		if !want[k] {
			t.Errorf("key %s listed, but it was deleted or never written", k)
		}
	}
	if pages < len(want)/40 {
		t.Errorf("%d pages for %d keys at 40 a page", pages, len(want))
	}

	// Prefix, and every key in one page.
	var got []string
	if err := cl.EachKey(ctx, "lk", client.KeysOptions{Prefix: "p/"}, func(k string) bool { got = append(got, k); return true }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if len(got) != 30 || got[0] != "p/000" || got[29] != "p/290" {
		t.Fatalf("prefix p/: %d keys %v", len(got), got)
	}
	resp, body := do(t, "GET", addr(nodes[2], "/v1/keys/lk?r=all&limit=100000"), "", nil)
	var page struct {
		Keys []string `json:"keys"`
		Next *string  `json:"next"`
	}
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Keys) != len(want) || page.Next == nil || *page.Next != "" {
		t.Fatalf("one page at r=all: %d %s", resp.StatusCode, clip(body))
	}

	for _, q := range []string{"limit=0", "limit=x", "limit=100001", "cursor=!!", "cursor=AAAA", "r=9", "encoding=hex", "bogus=1", "timeout=0"} {
		resp, body := do(t, "GET", addr(nodes[0], "/v1/keys/lk?"+q), "", nil)
		wantError(t, q, 400, "bad_request", resp.StatusCode, body)
	}
	// An empty bucket: no keys, done.
	resp, body = do(t, "GET", addr(nodes[0], "/v1/keys/empty"), "", nil)
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"keys":[],"next":""}` {
		t.Fatalf("empty bucket: %d %s", resp.StatusCode, body)
	}
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
