package api_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/api"
)

// TestExpiryHTTP: PUT ?ttl=S gives a value a lifetime, the bucket's ttl_s one to every
// write without its own (ttl=0 opts out); the expiry comes back in X-Quorumkv-Expires;
// after it the key answers 404 through every node, and a new write starts a fresh value.
// Bad TTLs answer 400 and change nothing.
func TestExpiryHTTP(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	before := time.Now().UnixMilli()
	put(t, n1, "e", "short", "?ttl=1", "v", "")
	put(t, n1, "e", "plain", "", "p", "")
	resp, body := do(t, "GET", addr(n2, "/v1/kv/e/short"), "", nil)
	if resp.StatusCode != 200 || body != "v" {
		t.Fatalf("get before expiry: %d %q", resp.StatusCode, body)
	}
	exp, err := strconv.ParseInt(resp.Header.Get(api.ExpiresHeader), 10, 64)
	if err != nil || exp < before+1000 || exp > time.Now().UnixMilli()+1000 {
		t.Fatalf("%s = %q, want about %d+1000", api.ExpiresHeader, resp.Header.Get(api.ExpiresHeader), before)
	}
	if resp, _ := do(t, "GET", addr(n2, "/v1/kv/e/plain"), "", nil); resp.Header.Get(api.ExpiresHeader) != "" {
		t.Fatalf("a value without a TTL has %s %q", api.ExpiresHeader, resp.Header.Get(api.ExpiresHeader))
	}

	// Bad TTLs: refused, nothing written.
	for _, q := range []string{"?ttl=-1", "?ttl=abc", "?ttl=1.5", "?ttl=", "?ttl=1&ttl=2", "?ttl=99999999999"} {
		resp, body := do(t, "PUT", addr(n1, "/v1/kv/e/bad"+q), "x", nil)
		wantError(t, "put "+q, 400, "bad_request", resp.StatusCode, body)
	}
	resp, body = do(t, "DELETE", addr(n1, "/v1/kv/e/plain?ttl=5"), "", nil)
	wantError(t, "delete with a ttl", 400, "bad_request", resp.StatusCode, body)
	wantAbsent(t, nodes, "e", "bad")
	getOne(t, n3, "e", "plain", "", "p")

	// A bucket's ttl_s; ttl=0 writes a value that never expires.
	setBucket(t, nodes, "cache", `{"ttl_s":1}`)
	put(t, n1, "cache", "k", "", "cached", "")
	put(t, n1, "cache", "pinned", "?ttl=0", "kept", "")
	if resp, _ := do(t, "GET", addr(n3, "/v1/kv/cache/k"), "", nil); resp.Header.Get(api.ExpiresHeader) == "" {
		t.Fatal("a write to a bucket with ttl_s has no expiry")
	}
	resp, body = do(t, "PUT", addr(n1, "/v1/buckets/cache2"), `{"ttl_s":-1}`, nil)
	wantError(t, "ttl_s -1", 400, "bad_request", resp.StatusCode, body)

	// Past the expiry: 404 through every node, for both.
	waitFor(t, 5*time.Second, "the values to expire", func() bool {
		for _, n := range nodes {
			for _, p := range []string{"/v1/kv/e/short", "/v1/kv/cache/k"} {
				if resp, _ := do(t, "GET", addr(n, p), "", nil); resp.StatusCode != 404 {
					return false
				}
			}
		}
		return true
	})
	getOne(t, n2, "cache", "pinned", "?r=all", "kept")
	getOne(t, n2, "e", "plain", "?r=all", "p")
	// Every replica still holds the expired value (until it is reaped), yet none reads it.
	for _, n := range nodes {
		if st, _ := local(t, n, "e", "short"); st != 200 {
			t.Fatalf("%s reaped the expired value before gc_grace", n.ID())
		}
	}
	// A write after the expiry is a fresh value, not a sibling of the expired one.
	put(t, n3, "e", "short", "", "again", "")
	getOne(t, n1, "e", "short", "?r=all", "again")
}
