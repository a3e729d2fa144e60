package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
)

// The tests in this file hold what a new user met off the happy path (issue 16): a wrong
// type of write changes nothing and never breaks a key, CRDT and Redis values read over
// /v1/kv, a wrong method is 405, CRDT keys delete over /v1/crdt.

// snapshotLocal is every node's own copy of bucket/key.
func snapshotLocal(t *testing.T, nodes []*node.Node, bucket, key string) string {
	t.Helper()
	var b strings.Builder
	for _, n := range nodes {
		_, lc := local(t, n, bucket, key)
		j, _ := json.Marshal(lc)
		b.WriteString(n.ID() + ":" + string(j) + "\n")
	}
	return b.String()
}

func TestWrongTypeWritesChangeNothing(t *testing.T) {
	t.Parallel()
	nodes, rs := startRESPCluster(t, 3)
	n1 := nodes[0]
	setBucket(t, nodes, "tags", `{"type":"set"}`)
	crdtApply(t, n1, "tags", "t1", "?w=all", `{"add":["a"]}`)
	rc := redis.NewClient(&redis.Options{Addr: rs[1].Addr(), MaxRetries: -1})
	defer rc.Close()
	ctx := context.Background()
	if err := rc.Set(ctx, "greeting", "hi", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// A plain PUT to a set bucket or to the Redis keys: 409 wrong_type, nothing written,
	// whether the key exists or not.
	for _, k := range []struct{ bucket, key string }{{"tags", "t1"}, {"tags", "t2"}, {"redis", "greeting"}, {"redis", "fromhttp"}} {
		before := snapshotLocal(t, nodes, k.bucket, k.key)
		resp, body := do(t, "PUT", addr(n1, "/v1/kv/"+k.bucket+"/"+k.key+"?w=all"), "hello", nil)
		wantError(t, "PUT "+k.bucket+"/"+k.key, 409, "wrong_type", resp.StatusCode, body)
		if after := snapshotLocal(t, nodes, k.bucket, k.key); after != before {
			t.Fatalf("PUT %s/%s changed the replicas:\n%s\nthen\n%s", k.bucket, k.key, before, after)
		}
	}
	if got := crdtStrings(t, crdtGet(t, n1, "tags", "t1", "")); strings.Join(got, ",") != "a" {
		t.Fatalf("tags/t1 = %v", got)
	}
	if v, err := rc.Get(ctx, "greeting").Result(); err != nil || v != "hi" {
		t.Fatalf("GET greeting = %q, %v", v, err)
	}
	if n, err := rc.Exists(ctx, "fromhttp").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS fromhttp = %d, %v", n, err)
	}

	// A bucket's type changed after plain values were written: the key answers 409
	// wrong_type to CRDT reads and operations (never 500), stays readable as a plain key
	// and can be deleted over either API.
	put(t, n1, "late", "k", "?w=all", "plain", "")
	setBucket(t, nodes, "late", `{"type":"counter"}`)
	resp, body := do(t, "GET", addr(n1, "/v1/crdt/late/k"), "", nil)
	e := wantError(t, "GET /v1/crdt on plain values", 409, "wrong_type", resp.StatusCode, body)
	if !strings.Contains(e.Error, "plain values") {
		t.Fatalf("message %q does not say what the key holds", e.Error)
	}
	st, body := crdtPost(t, n1, "late", "k", "", `{"increment":1}`)
	wantError(t, "POST /v1/crdt on plain values", 409, "wrong_type", st, body)
	getOne(t, nodes[2], "late", "k", "", "plain")
	resp, body = do(t, "DELETE", addr(n1, "/v1/crdt/late/k?w=all"), "", nil)
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE /v1/crdt/late/k: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", addr(n1, "/v1/crdt/late/k"), "", nil)
	wantError(t, "GET after delete", 404, "not_found", resp.StatusCode, body)
	crdtApply(t, n1, "late", "k", "?w=all", `{"increment":2}`)
	if got := crdtInt(t, crdtGet(t, n1, "late", "k", "")); got != 2 {
		t.Fatalf("late/k = %d after delete and increment", got)
	}
}

func TestKVReadsOfCRDTValues(t *testing.T) {
	t.Parallel()
	nodes, rs := startRESPCluster(t, 3)
	n1, n3 := nodes[0], nodes[2]
	setBucket(t, nodes, "tags", `{"type":"set"}`)
	setBucket(t, nodes, "hits", `{"type":"counter"}`)
	crdtApply(t, n1, "tags", "t1", "?w=all", `{"add":["b","a"]}`)
	crdtApply(t, n1, "hits", "h", "?w=all", `{"increment":-7}`)
	rc := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1})
	defer rc.Close()
	ctx := context.Background()
	for _, err := range []error{
		rc.Set(ctx, "greeting", "hello world", 0).Err(),
		rc.IncrBy(ctx, "visits", 5).Err(),
		rc.SAdd(ctx, "colors", "red", "green").Err(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		path, body, ctype, typ string
	}{
		{"/v1/kv/tags/t1", `["a","b"]`, "application/json", "set"},
		{"/v1/kv/hits/h", `-7`, "application/json", "counter"},
		{"/v1/kv/redis/greeting", `hello world`, "application/octet-stream", "register"},
		{"/v1/kv/redis/visits", `5`, "application/json", "counter"},
		{"/v1/kv/redis/colors", `["green","red"]`, "application/json", "set"},
	} {
		resp, body := do(t, "GET", addr(n3, tc.path+"?r=all"), "", nil)
		if resp.StatusCode != 200 || body != tc.body || resp.Header.Get("Content-Type") != tc.ctype ||
			resp.Header.Get("X-Quorumkv-Type") != tc.typ || resp.Header.Get(api.ContextHeader) == "" {
			t.Errorf("GET %s: %d %q %v", tc.path, resp.StatusCode, body, resp.Header)
		}
		// The JSON form: the same bytes in values, and the value itself.
		resp, body = do(t, "GET", addr(n3, tc.path), "", map[string]string{"Accept": "application/json"})
		var j struct {
			Values  []string        `json:"values"`
			Context string          `json:"context"`
			Type    string          `json:"type"`
			Value   json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal([]byte(body), &j); err != nil || resp.StatusCode != 200 || len(j.Values) != 1 || j.Type != tc.typ || j.Context == "" {
			t.Fatalf("GET %s as JSON: %d %q (%v)", tc.path, resp.StatusCode, body, err)
		}
		if v, _ := base64.StdEncoding.DecodeString(j.Values[0]); string(v) != tc.body {
			t.Errorf("GET %s as JSON: values[0] = %q, want %q", tc.path, v, tc.body)
		}
	}
	// GET /v1/crdt/redis/{key} reads any Redis key as its type.
	for _, tc := range []struct{ key, value, typ string }{
		{"greeting", `"hello world"`, "register"}, {"visits", `5`, "counter"}, {"colors", `["green","red"]`, "set"},
	} {
		resp, body := do(t, "GET", addr(n1, "/v1/crdt/redis/"+tc.key), "", nil)
		var j struct {
			Value json.RawMessage `json:"value"`
			Type  string          `json:"type"`
		}
		if err := json.Unmarshal([]byte(body), &j); err != nil || resp.StatusCode != 200 || string(j.Value) != tc.value || j.Type != tc.typ {
			t.Errorf("GET /v1/crdt/redis/%s: %d %q", tc.key, resp.StatusCode, body)
		}
	}
	for _, p := range []string{"/v1/kv/redis/nokey", "/v1/crdt/redis/nokey", "/v1/kv/tags/nokey"} {
		resp, body := do(t, "GET", addr(n1, p), "", nil)
		wantError(t, "GET "+p, 404, "not_found", resp.StatusCode, body)
	}
	// A Redis key deleted over HTTP is gone for Redis too.
	resp, body := do(t, "DELETE", addr(n1, "/v1/crdt/redis/visits?w=all"), "", nil)
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE /v1/crdt/redis/visits: %d %s", resp.StatusCode, body)
	}
	if n, err := rc.Exists(ctx, "visits").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS visits after the HTTP delete = %d, %v", n, err)
	}
}

func TestDeleteCRDT(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	setBucket(t, nodes, "s", `{"type":"set"}`)
	crdtApply(t, n1, "s", "k", "?w=all", `{"add":["a"]}`)
	resp, _ := do(t, "GET", addr(n2, "/v1/crdt/s/k"), "", nil)
	seen := resp.Header.Get(api.ContextHeader)
	if seen == "" {
		t.Fatal("GET /v1/crdt gives no version context")
	}
	// An update the delete's context had not seen survives it, with the whole state it
	// wrote (a key-level delete is a tombstone beside it, not a remove of elements).
	crdtApply(t, n1, "s", "k", "?w=all", `{"add":["b"]}`)
	resp, body := do(t, "DELETE", addr(n2, "/v1/crdt/s/k?w=all"), "", map[string]string{api.ContextHeader: seen})
	if resp.StatusCode != 204 || resp.Header.Get(api.ContextHeader) == "" {
		t.Fatalf("DELETE with context: %d %s", resp.StatusCode, body)
	}
	if got := crdtStrings(t, crdtGet(t, n1, "s", "k", "?r=all")); strings.Join(got, ",") != "a,b" {
		t.Fatalf("after a delete that had not seen the add of b: %v, want [a b]", got)
	}
	// Without a context: what a read sees is deleted.
	resp, body = do(t, "DELETE", addr(n2, "/v1/crdt/s/k?w=all"), "", nil)
	if resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", addr(n1, "/v1/crdt/s/k?r=all"), "", nil)
	wantError(t, "GET after DELETE", 404, "not_found", resp.StatusCode, body)
	// A key never written: 204, as DELETE /v1/kv.
	if resp, body := do(t, "DELETE", addr(n2, "/v1/crdt/s/never"), "", nil); resp.StatusCode != 204 {
		t.Fatalf("DELETE of a key never written: %d %s", resp.StatusCode, body)
	}
	// A kv bucket: use /v1/kv.
	resp, body = do(t, "DELETE", addr(n2, "/v1/crdt/plain/k"), "", nil)
	wantError(t, "DELETE /v1/crdt on a kv bucket", 400, "bad_request", resp.StatusCode, body)
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 1)
	n1 := nodes[0]
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/v1/kv/b/k", "GET, HEAD, PUT, DELETE"},
		{"PUT", "/v1/crdt/b/k", "GET, HEAD, POST, DELETE"},
		{"DELETE", "/v1/buckets/b", "GET, HEAD, PUT"},
		{"PUT", "/healthz", "GET, HEAD"},
		{"GET", "/v1/admin/repair", "POST"},
	} {
		resp, body := do(t, tc.method, addr(n1, tc.path), "", nil)
		e := wantError(t, tc.method+" "+tc.path, 405, "method_not_allowed", resp.StatusCode, body)
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if !strings.Contains(e.Error, tc.allow) {
			t.Errorf("%s %s: message %q does not name the methods", tc.method, tc.path, e.Error)
		}
	}
	resp, body := do(t, "GET", addr(n1, "/v2/kv/b/k"), "", nil)
	wantError(t, "unknown path", 404, "not_found", resp.StatusCode, body)
}

func TestBucketJSONNumbers(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	resp, body := do(t, "PUT", addr(nodes[0], "/v1/buckets/nums"), `{"w":"2","pr":1,"r":"quorum"}`, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT bucket: %d %s", resp.StatusCode, body)
	}
	want := `{"n":3,"r":"quorum","w":2,"pr":1,"pw":0,"dw":0,"conflict":"siblings","read_repair":"blocking","type":"kv","gc_grace_s":864000}` + "\n"
	if body != want {
		t.Fatalf("PUT bucket answered\n%s\nwant\n%s", body, want)
	}
	resp, body = do(t, "GET", addr(nodes[0], "/v1/buckets/never-set"), "", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `"pr":0,"pw":0,"dw":0`) {
		t.Fatalf("GET bucket: %d %s", resp.StatusCode, body)
	}
}
