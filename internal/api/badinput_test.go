package api_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
)

// TestBadInput sends malformed requests: each must get a 4xx JSON {"error","code"} and
// change nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1 := nodes[0]

	// Bucket properties: malformed JSON, unknown fields, bad values; the bucket keeps its
	// defaults on every node.
	for _, body := range []string{
		`{"n":3`, `not json`, `{"n":3}{"n":2}`, `{"nn":3}`, `{"conflict":"lww","colour":"red"}`,
		`{"n":0}`, `{"n":"3"}`, `{"r":"5"}`, `{"conflict":"newest"}`, `{"read_repair":"sometimes"}`,
		`{"type":"blob"}`, `{"gc_grace_s":-1}`, `[]`, ``,
	} {
		resp, rb := do(t, "PUT", addr(n1, "/v1/buckets/x"), body, nil)
		wantError(t, "bucket props "+body, 400, "bad_request", resp.StatusCode, rb)
	}
	resp, rb := do(t, "PUT", addr(n1, "/v1/buckets/x?foo=1"), `{"n":2}`, nil)
	wantError(t, "bucket props with unknown query", 400, "bad_request", resp.StatusCode, rb)
	for _, n := range nodes {
		resp, body := do(t, "GET", addr(n, "/v1/buckets/x"), "", nil)
		var p node.BucketProps
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &p) != nil || p != node.DefaultBucketProps() {
			t.Fatalf("bucket x on %s after bad updates: %d %s", n.ID(), resp.StatusCode, body)
		}
	}

	bigKey := strings.Repeat("k", 8<<10+1)
	ctx := put(t, n1, "b", "exists", "", "old", "")

	for _, tc := range []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		code                     string
	}{
		{"unknown query parameter", "PUT", "/v1/kv/b/k?foo=1", "v", nil, 400, "bad_request"},
		{"repeated parameter", "PUT", "/v1/kv/b/k?w=1&w=2", "v", nil, 400, "bad_request"},
		{"bad query escaping", "PUT", "/v1/kv/b/k?w=%zz", "v", nil, 400, "bad_request"},
		{"w not a number", "PUT", "/v1/kv/b/k?w=abc", "v", nil, 400, "bad_request"},
		{"w over n", "PUT", "/v1/kv/b/k?w=4", "v", nil, 400, "bad_request"},
		{"w zero", "PUT", "/v1/kv/b/k?w=0", "v", nil, 400, "bad_request"},
		{"pw negative", "PUT", "/v1/kv/b/k?pw=-1", "v", nil, 400, "bad_request"},
		{"dw over n", "PUT", "/v1/kv/b/k?dw=9", "v", nil, 400, "bad_request"},
		{"timeout negative", "PUT", "/v1/kv/b/k?timeout=-1", "v", nil, 400, "bad_request"},
		{"timeout zero", "PUT", "/v1/kv/b/k?timeout=0", "v", nil, 400, "bad_request"},
		{"timeout too long", "PUT", "/v1/kv/b/k?timeout=60001", "v", nil, 400, "bad_request"},
		{"timeout overflow", "PUT", "/v1/kv/b/k?timeout=9223372036854775807", "v", nil, 400, "bad_request"},
		{"timeout not a number", "PUT", "/v1/kv/b/k?timeout=1s", "v", nil, 400, "bad_request"},
		{"garbage context", "PUT", "/v1/kv/b/k", "v", map[string]string{api.ContextHeader: "garbage!!"}, 400, "bad_request"},
		{"base64 context of garbage", "PUT", "/v1/kv/b/k", "v", map[string]string{api.ContextHeader: "AAAAAAAA"}, 400, "bad_request"},
		{"oversized key", "PUT", "/v1/kv/b/" + bigKey, "v", nil, 413, "too_large"},
		{"invalid UTF-8 bucket", "PUT", "/v1/kv/%ff/k", "v", nil, 400, "bad_request"},
		{"invalid UTF-8 key", "PUT", "/v1/kv/b/k%ff", "v", nil, 400, "bad_request"},
		{"get invalid UTF-8 key", "GET", "/v1/kv/b/%c3%28", "", nil, 400, "bad_request"},
		{"NUL in bucket", "PUT", "/v1/kv/a%00b/k", "v", nil, 400, "bad_request"},
		{"slash in bucket", "PUT", "/v1/kv/a%2Fb/k", "v", nil, 400, "bad_request"},
		{"empty key", "PUT", "/v1/kv/b/", "v", nil, 400, "bad_request"},
		{"dot bucket", "PUT", "/v1/kv/./k", "v", nil, 400, "bad_request"},
		{"dot-dot key", "PUT", "/v1/kv/b/x/../k", "v", nil, 400, "bad_request"},
		{"empty segment in key", "PUT", "/v1/kv/b/x//k", "v", nil, 400, "bad_request"},
		{"delete with garbage context", "DELETE", "/v1/kv/b/exists", "", map[string]string{api.ContextHeader: "%%%"}, 400, "bad_request"},
		{"delete with unknown query", "DELETE", "/v1/kv/b/exists?r=1", "", map[string]string{api.ContextHeader: ctx}, 400, "bad_request"},
		{"overwrite with bad w", "PUT", "/v1/kv/b/exists?w=many", "new", map[string]string{api.ContextHeader: ctx}, 400, "bad_request"},
		{"r over n", "GET", "/v1/kv/b/exists?r=4", "", nil, 400, "bad_request"},
		{"pr over n", "GET", "/v1/kv/b/exists?pr=4", "", nil, 400, "bad_request"},
		{"r not a number", "GET", "/v1/kv/b/exists?r=most", "", nil, 400, "bad_request"},
		{"get with w", "GET", "/v1/kv/b/exists?w=1", "", nil, 400, "bad_request"},
		{"get oversized key", "GET", "/v1/kv/b/" + bigKey, "", nil, 413, "too_large"},
		{"local oversized key", "GET", "/v1/admin/local/b/" + bigKey, "", nil, 413, "too_large"},
		{"get invalid UTF-8 bucket", "GET", "/v1/kv/%ff/k", "", nil, 400, "bad_request"},
		{"bucket props invalid UTF-8", "PUT", "/v1/buckets/%ff", `{"n":3}`, nil, 400, "bad_request"},
		{"unknown endpoint", "GET", "/v2/kv/b/k", "", nil, 404, "not_found"},
		{"unknown admin endpoint", "GET", "/v1/admin/nothing", "", nil, 404, "not_found"},
		// A wrong method on a known path is 405 with Allow (TestMethodNotAllowed).
		{"wrong method on kv", "POST", "/v1/kv/b/exists", "new", nil, 405, "method_not_allowed"},
		{"wrong method on buckets", "DELETE", "/v1/buckets/b", "", nil, 405, "method_not_allowed"},
		{"wrong method on healthz", "PUT", "/healthz", "", nil, 405, "method_not_allowed"},
		{"faults unknown field", "POST", "/v1/debug/faults", `{"drop":[],"partition":true}`, nil, 400, "bad_request"},
		{"faults empty id", "POST", "/v1/debug/faults", `{"drop":[""]}`, nil, 400, "bad_request"},
		{"faults negative delay", "POST", "/v1/debug/faults", `{"delay_ms":-5}`, nil, 400, "bad_request"},
		{"faults negative sync delay", "POST", "/v1/debug/faults", `{"sync_delay_ms":-1}`, nil, 400, "bad_request"},
		{"faults sync delay over a minute", "POST", "/v1/debug/faults", `{"sync_delay_ms":60001}`, nil, 400, "bad_request"},
	} {
		resp, body := do(t, tc.method, addr(n1, tc.path), tc.body, tc.hdr)
		wantError(t, tc.name, tc.status, tc.code, resp.StatusCode, body)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s: content type %q", tc.name, ct)
		}
	}
	wantAbsent(t, nodes, "b", "k")
	for _, n := range nodes {
		getOne(t, n, "b", "exists", "?r=all", "old")
	}
	resp, body := do(t, "GET", addr(n1, "/v1/debug/faults"), "", nil)
	if resp.StatusCode != 200 || body != `{"drop":[],"delay_ms":0,"clock_skew_ms":0,"sync_delay_ms":0}`+"\n" {
		t.Fatalf("faults after bad updates: %d %q", resp.StatusCode, body)
	}

	// Oversized value: 413, with or without a Content-Length up front.
	big := strings.Repeat("v", 4<<20+1)
	resp, body = do(t, "PUT", addr(n1, "/v1/kv/b/big"), big, nil)
	wantError(t, "oversized value", 413, "too_large", resp.StatusCode, body)
	req, _ := http.NewRequest("PUT", addr(n1, "/v1/kv/b/big"), io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1 // chunked: the size is known only by reading
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("chunked oversized value: %v", err)
	}
	b2, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	wantError(t, "chunked oversized value", 413, "too_large", r2.StatusCode, string(b2))
	wantAbsent(t, nodes, "b", "big")
	// Exactly at the limit is fine.
	// A 4 MiB write to three replicas takes a while under the race detector on a busy
	// machine: give it its own deadline rather than the test cluster's short default.
	put(t, n1, "b", "limit", "?timeout=30000", big[:4<<20], "")

	// A body shorter than its Content-Length: 400 or a closed connection, and no write.
	for _, method := range []string{"PUT", "DELETE"} {
		status := truncatedRequest(t, n1, method+" /v1/kv/b/trunc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
		if status != 0 && status != 400 {
			t.Fatalf("truncated %s body: status %d, want 400 or a closed connection", method, status)
		}
		wantAbsent(t, nodes, "b", "trunc")
	}
	status := truncatedRequest(t, n1, "PUT /v1/buckets/trunc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"n\":1}")
	if status != 0 && status != 400 {
		t.Fatalf("truncated bucket body: status %d", status)
	}
	resp, body = do(t, "GET", addr(n1, "/v1/buckets/trunc"), "", nil)
	var p node.BucketProps
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &p) != nil || p != node.DefaultBucketProps() {
		t.Fatalf("bucket after a truncated update: %s", body)
	}
}

// truncatedRequest writes raw to a new connection, closes the write side and returns the
// status of the answer, or 0 when the server closed without one.
func truncatedRequest(t *testing.T, n *node.Node, raw string) int {
	t.Helper()
	conn, err := net.Dial("tcp", n.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("no answer and no close: %v", err)
		}
		return 0
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 204 {
		decodeError(t, string(body))
	}
	return resp.StatusCode
}
