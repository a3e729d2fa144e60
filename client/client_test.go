package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// recorded is what the fake server saw of one request.
type recorded struct {
	Method, RawPath, Path, Query, Context, Accept, Body string
}

// fake starts a server that records each request and answers with h.
func fake(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) (*Client, *[]recorded) {
	t.Helper()
	var got []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, recorded{
			Method: r.Method, RawPath: r.URL.EscapedPath(), Path: r.URL.Path, Query: r.URL.RawQuery,
			Context: r.Header.Get(ContextHeader), Accept: r.Header.Get("Accept"), Body: string(b),
		})
		r.Body = io.NopCloser(bytes.NewReader(b))
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return New(srv.URL), &got
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestNewAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080"},
		{"https://db.example:443/prefix/", "https://db.example:443/prefix"},
		{"ftp://x", ""},
		{"http://", ""},
	} {
		c := New(tc.in)
		if got := c.Addr(); got != tc.want {
			t.Errorf("New(%q).Addr() = %q, want %q", tc.in, got, tc.want)
		}
		if tc.want == "" {
			if _, err := c.Get(context.Background(), "b", "k", Quorum{}); err == nil {
				t.Errorf("New(%q): Get succeeded, want bad address error", tc.in)
			}
		}
	}
}

func TestGetSingleValueJSON(t *testing.T) {
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ContextHeader, "ctx1")
		writeJSON(w, 200, map[string]any{"values": [][]byte{[]byte("hello")}, "context": "ctx1"})
	})
	obj, err := c.Get(context.Background(), "my bucket", "a/b?c%d", Quorum{R: "2", PR: "1", W: "all", Timeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := &Object{Values: [][]byte{[]byte("hello")}, Context: "ctx1", Found: true}
	if !reflect.DeepEqual(obj, want) {
		t.Fatalf("Get = %+v, want %+v", obj, want)
	}
	r := (*got)[0]
	if r.Method != "GET" || r.RawPath != "/v1/kv/my%20bucket/a%2Fb%3Fc%25d" || r.Path != "/v1/kv/my bucket/a/b?c%d" {
		t.Errorf("request path = %s %q (%q)", r.Method, r.RawPath, r.Path)
	}
	if r.Query != "pr=1&r=2&timeout=1500" { // W is not a read parameter
		t.Errorf("query = %q", r.Query)
	}
	if r.Accept != "application/json" {
		t.Errorf("Accept = %q", r.Accept)
	}
}

func TestGetSiblings(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]any{"values": [][]byte{[]byte("a"), {}, {0xff, 0}}, "context": "c2"})
		})
		obj, err := c.Get(context.Background(), "b", "k", Quorum{})
		if err != nil {
			t.Fatal(err)
		}
		want := &Object{Values: [][]byte{[]byte("a"), {}, {0xff, 0}}, Context: "c2", Found: true}
		if !reflect.DeepEqual(obj, want) {
			t.Fatalf("Get = %+v, want %+v", obj, want)
		}
	})
	t.Run("300", func(t *testing.T) { // a server that ignores Accept
		c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 300, map[string]any{"siblings": []map[string][]byte{{"value": []byte("x")}, {"value": []byte("y")}}, "context": "c3"})
		})
		obj, err := c.Get(context.Background(), "b", "k", Quorum{})
		if err != nil {
			t.Fatal(err)
		}
		want := &Object{Values: [][]byte{[]byte("x"), []byte("y")}, Context: "c3", Found: true}
		if !reflect.DeepEqual(obj, want) {
			t.Fatalf("Get = %+v, want %+v", obj, want)
		}
	})
	t.Run("raw200", func(t *testing.T) {
		c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set(ContextHeader, "c4")
			_, _ = w.Write([]byte(`{"values":"not json form"}`))
		})
		obj, err := c.Get(context.Background(), "b", "k", Quorum{})
		if err != nil {
			t.Fatal(err)
		}
		want := &Object{Values: [][]byte{[]byte(`{"values":"not json form"}`)}, Context: "c4", Found: true}
		if !reflect.DeepEqual(obj, want) {
			t.Fatalf("Get = %+v, want %+v", obj, want)
		}
	})
}

func TestGetNotFound(t *testing.T) {
	c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/kv/b/deleted" {
			w.Header().Set(ContextHeader, "tomb")
		}
		writeJSON(w, 404, map[string]string{"error": "not found", "code": "not_found"})
	})
	for key, ctxWant := range map[string]string{"absent": "", "deleted": "tomb"} {
		obj, err := c.Get(context.Background(), "b", key, Quorum{})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if obj.Found || len(obj.Values) != 0 || obj.Context != ctxWant {
			t.Errorf("%s: Get = %+v, want not found with context %q", key, obj, ctxWant)
		}
	}
}

func TestPutDelete(t *testing.T) {
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(ContextHeader, "new-"+r.Method)
		w.WriteHeader(http.StatusNoContent)
	})
	ctx := context.Background()
	nc, err := c.Put(ctx, "b", "k", []byte("v1"), "old", Quorum{W: "all", PW: "0", DW: "1", R: "3"})
	if err != nil || nc != "new-PUT" {
		t.Fatalf("Put = %q, %v", nc, err)
	}
	nc, err = c.Put(ctx, "b", "k", nil, "", Quorum{})
	if err != nil || nc != "new-PUT" {
		t.Fatalf("blind Put = %q, %v", nc, err)
	}
	nc, err = c.Delete(ctx, "b", "k", "seen", Quorum{W: "one"})
	if err != nil || nc != "new-DELETE" {
		t.Fatalf("Delete = %q, %v", nc, err)
	}
	want := []recorded{
		{Method: "PUT", RawPath: "/v1/kv/b/k", Path: "/v1/kv/b/k", Query: "dw=1&pw=0&w=all", Context: "old", Body: "v1"},
		{Method: "PUT", RawPath: "/v1/kv/b/k", Path: "/v1/kv/b/k"},
		{Method: "DELETE", RawPath: "/v1/kv/b/k", Path: "/v1/kv/b/k", Query: "w=one", Context: "seen"},
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("requests:\n got %+v\nwant %+v", *got, want)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   APIError
		quorum bool
		nf     bool
		msg    string
	}{
		{"quorum", 503, `{"error":"w not met","code":"quorum_failed","acks":2,"required":3}`,
			APIError{Status: 503, Code: "quorum_failed", Message: "w not met", Acks: 2, Required: 3}, true, false,
			"quorum not reached: 2 of 3 acks"},
		{"unavailable", 503, `{"error":"no replica reachable","code":"unavailable"}`,
			APIError{Status: 503, Code: "unavailable", Message: "no replica reachable"}, false, false,
			"no replica reachable (unavailable, HTTP 503)"},
		{"bad", 400, `{"error":"bad quorum value \"x\"","code":"bad_request"}`,
			APIError{Status: 400, Code: "bad_request", Message: `bad quorum value "x"`}, false, false,
			`bad quorum value "x" (bad_request, HTTP 400)`},
		{"toolarge", 413, `{"error":"value over 4 MiB","code":"too_large"}`,
			APIError{Status: 413, Code: "too_large", Message: "value over 4 MiB"}, false, false,
			"value over 4 MiB (too_large, HTTP 413)"},
		{"notjson", 502, "bad gateway\n", APIError{Status: 502, Message: "bad gateway"}, false, false,
			"bad gateway (HTTP 502)"},
		{"404put", 404, `{"error":"no such route","code":"not_found"}`,
			APIError{Status: 404, Code: "not_found", Message: "no such route"}, false, true,
			"no such route (not_found, HTTP 404)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			_, err := c.Put(context.Background(), "b", "k", []byte("v"), "", Quorum{})
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("Put error %v (%T) is not an *APIError", err, err)
			}
			if *ae != tc.want {
				t.Errorf("APIError = %+v, want %+v", *ae, tc.want)
			}
			if err.Error() != tc.msg {
				t.Errorf("Error() = %q, want %q", err.Error(), tc.msg)
			}
			if IsQuorumFailed(err) != tc.quorum || IsNotFound(err) != tc.nf {
				t.Errorf("IsQuorumFailed = %v, IsNotFound = %v", IsQuorumFailed(err), IsNotFound(err))
			}
			// Get reports errors the same way (except 404).
			if tc.status != 404 {
				if _, err := c.Get(context.Background(), "b", "k", Quorum{}); !errors.As(err, &ae) || ae.Status != tc.status {
					t.Errorf("Get error = %v", err)
				}
			}
		})
	}
}

func TestEmptyNames(t *testing.T) {
	c := New("127.0.0.1:1")
	ctx := context.Background()
	if _, err := c.Get(ctx, "", "k", Quorum{}); err == nil {
		t.Error("Get with empty bucket succeeded")
	}
	if _, err := c.Put(ctx, "b", "", nil, "", Quorum{}); err == nil {
		t.Error("Put with empty key succeeded")
	}
	if _, err := c.GetBucket(ctx, ""); err == nil {
		t.Error("GetBucket with empty bucket succeeded")
	}
}

func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	_, err := New(addr).Get(context.Background(), "b", "k", Quorum{})
	var ae *APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("Get on a closed port = %v, want a transport error", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := New(srv.URL, WithTimeout(50*time.Millisecond), WithHTTPClient(srv.Client()))
	_, err := c.Get(context.Background(), "b", "k", Quorum{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, want deadline exceeded", err)
	}
}

func TestBuckets(t *testing.T) {
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		full := map[string]any{"n": 3, "r": "quorum", "w": "quorum", "pr": "0", "pw": 0, "dw": "0",
			"conflict": "siblings", "read_repair": "blocking", "type": "kv", "gc_grace_s": 864000}
		if r.Method == "PUT" {
			stored := map[string]any{}
			_ = json.NewDecoder(r.Body).Decode(&stored)
			for k, v := range stored {
				full[k] = v
			}
		}
		writeJSON(w, 200, full)
	})
	ctx := context.Background()
	p, err := c.GetBucket(ctx, "users")
	if err != nil {
		t.Fatal(err)
	}
	if *p.N != 3 || *p.R != "quorum" || *p.PW != "0" || *p.ReadRepair != "blocking" || *p.GCGraceS != 864000 {
		t.Errorf("GetBucket = %+v", p)
	}
	p, err = c.SetBucket(ctx, "users", BucketProps{N: Ptr(5), Conflict: Ptr("lww")})
	if err != nil {
		t.Fatal(err)
	}
	if *p.N != 5 || *p.Conflict != "lww" || *p.W != "quorum" {
		t.Errorf("SetBucket = %+v", p)
	}
	if body := (*got)[1].Body; body != `{"n":5,"conflict":"lww"}` {
		t.Errorf("SetBucket sent %s, want only the set fields", body)
	}
	if r := (*got)[1]; r.Method != "PUT" || r.Path != "/v1/buckets/users" {
		t.Errorf("SetBucket request %s %s", r.Method, r.Path)
	}
}

func TestAdmin(t *testing.T) {
	c, got := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			writeJSON(w, 200, map[string]string{"status": "ok", "node": "n1"})
		case r.URL.Path == "/v1/cluster":
			_, _ = io.WriteString(w, `{"node":"n1","partitions":256,"nodes":[{"id":"n1","zone":"z1","http":"127.0.0.1:8080","resp":"127.0.0.1:6379","rpc":"127.0.0.1:7070","gossip":"127.0.0.1:7946","state":"alive","partitions":86}]}`)
		case strings.HasPrefix(r.URL.Path, "/v1/admin/endpoints/"):
			_, _ = io.WriteString(w, `{"bucket":"b","key":"k/1","partition":17,"n":3,"primaries":[{"id":"n2","state":"alive"},{"id":"n3","state":"down"}],"fallbacks":[{"id":"n1","state":"alive"}]}`)
		case r.URL.Path == "/v1/admin/local/b/k":
			_, _ = io.WriteString(w, `{"found":true,"values":["aGk="],"context":"c","tombstone":false,"siblings":[{"value":"aGk=","tombstone":false,"dot":"n1.ab12cd:7","timestamp":"1732222222222.0"}],"hinted_for":null}`)
		case strings.HasPrefix(r.URL.Path, "/v1/admin/local/"):
			writeJSON(w, 404, map[string]any{"found": false})
		case r.URL.Path == "/v1/debug/faults":
			var f Faults
			_ = json.NewDecoder(r.Body).Decode(&f)
			writeJSON(w, 200, f)
		default:
			writeJSON(w, 404, map[string]string{"error": "no route", "code": "not_found"})
		}
	})
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := c.Cluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantCl := &Cluster{Node: "n1", Partitions: 256, Nodes: []NodeInfo{{ID: "n1", Zone: "z1", HTTP: "127.0.0.1:8080",
		RESP: "127.0.0.1:6379", RPC: "127.0.0.1:7070", Gossip: "127.0.0.1:7946", State: "alive", Partitions: 86}}}
	if !reflect.DeepEqual(cl, wantCl) {
		t.Errorf("Cluster = %+v", cl)
	}
	ep, err := c.Endpoints(ctx, "b", "k/1")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Partition != 17 || len(ep.Primaries) != 2 || ep.Primaries[1].State != "down" || ep.Fallbacks[0].ID != "n1" {
		t.Errorf("Endpoints = %+v", ep)
	}
	if rp := (*got)[len(*got)-1].RawPath; rp != "/v1/admin/endpoints/b/k%2F1" {
		t.Errorf("Endpoints path = %q", rp)
	}
	l, err := c.Local(ctx, "b", "k")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Found || string(l.Values[0]) != "hi" || l.Siblings[0].Dot != "n1.ab12cd:7" || l.HintedFor != "" {
		t.Errorf("Local = %+v", l)
	}
	l, err = c.Local(ctx, "b", "nothing")
	if err != nil || l.Found {
		t.Errorf("Local(absent) = %+v, %v", l, err)
	}
	f, err := c.SetFaults(ctx, Faults{DelayMs: 5})
	if err != nil {
		t.Fatal(err)
	}
	if body := (*got)[len(*got)-1].Body; body != `{"drop":[],"delay_ms":5,"clock_skew_ms":0,"sync_delay_ms":0}` {
		t.Errorf("SetFaults sent %s", body)
	}
	if f.DelayMs != 5 || len(f.Drop) != 0 {
		t.Errorf("SetFaults = %+v", f)
	}
}

func TestHealthDown(t *testing.T) {
	c, _ := fake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 500, map[string]string{"error": "disk", "code": "internal"})
	})
	var ae *APIError
	if err := c.Health(context.Background()); !errors.As(err, &ae) || ae.Code != CodeInternal {
		t.Fatalf("Health = %v", err)
	}
}
