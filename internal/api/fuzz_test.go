package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
)

// FuzzWriteParams drives the HTTP handler of a single in-process node with arbitrary query
// strings, context headers, keys and bodies on the kv endpoints. Whatever the input, the
// handler must not panic, must answer a status the contract knows, and every error must be
// a JSON {"error","code"}; no 5xx but 503 (a quorum a one-node cluster cannot meet).
func FuzzWriteParams(f *testing.F) {
	cfg := node.DefaultConfig()
	cfg.ID = "n1"
	cfg.DataDir = f.TempDir()
	cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RequestTimeout = 200 * time.Millisecond
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = n.Close(context.Background()) })
	deadline := time.Now().Add(10 * time.Second)
	for n.Ring() == nil {
		if time.Now().After(deadline) {
			f.Fatal("no ring")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h := api.New(n, nil, false, cfg.MaxValueBytes)

	// A valid context to start from.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/v1/kv/b/seed?w=1", strings.NewReader("v")))
	if rec.Code != 204 {
		f.Fatalf("seed write: %d %s", rec.Code, rec.Body)
	}
	validCtx := rec.Header().Get(api.ContextHeader)

	for _, s := range []struct {
		method      uint8
		query, ctx  string
		bucket, key string
		body        string
	}{
		{0, "w=1", "", "b", "k", "v"},
		{0, "w=1&pw=0&dw=1&timeout=100", validCtx, "b", "seed", "v2"},
		{0, "w=quorum", "", "b", "k", ""},
		{0, "w=all&timeout=60000", validCtx, "b", "k", "x"},
		{0, "w=ONE&dw=0", "", "b", "k", "x"},
		{0, "w=%zz", "", "b", "k", "x"},
		{0, "w=1&w=1", "", "b", "k", "x"},
		{0, "timeout=-1", "", "b", "k", "x"},
		{0, "timeout=99999999999999999999", "", "b", "k", "x"},
		{0, "w=1;dw=1", "", "b", "k", "x"},
		{0, "w=1", "garbage", "b", "k", "x"},
		{0, "w=1", validCtx + "A", "b", "k", "x"},
		{0, "w=1", "AA==", "\xff", "k", "x"},
		{1, "r=1&pr=0", "", "b", "seed", ""},
		{1, "r=4", "", "b", "seed", ""},
		{2, "w=1", validCtx, "b", "seed", ""},
		{2, "dw=all", validCtx, "b", "seed", ""},
	} {
		f.Add(s.method, s.query, s.ctx, s.bucket, s.key, []byte(s.body))
	}

	methods := []string{"PUT", "GET", "DELETE"}
	f.Fuzz(func(t *testing.T, m uint8, query, ctxHdr, bucket, key string, body []byte) {
		method := methods[int(m)%len(methods)]
		req := httptest.NewRequest(method, "/", strings.NewReader(string(body)))
		req.URL.Path = "/v1/kv/" + bucket + "/" + key
		req.URL.RawPath = "/v1/kv/" + url.PathEscape(bucket) + "/" + url.PathEscape(key)
		req.URL.RawQuery = query
		req.RequestURI = req.URL.RequestURI()
		if ctxHdr != "" {
			req.Header.Set(api.ContextHeader, ctxHdr)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		switch rec.Code {
		case 200, 204, 300:
			return
		case 400, 404, 409, 413, 503:
		default:
			t.Fatalf("%s %s with context %q: status %d: %s", method, req.URL, ctxHdr, rec.Code, rec.Body)
		}
		var e struct{ Error, Code string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" {
			t.Fatalf("%s %s: status %d with a body that is not a JSON error: %q", method, req.URL, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusServiceUnavailable && e.Code != "quorum_failed" && e.Code != "unavailable" {
			t.Fatalf("%s %s: 503 with code %q", method, req.URL, e.Code)
		}
	})
}

// FuzzDecodeCursor: a listing cursor from a client never panics, and one that decodes
// re-encodes to itself.
func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(api.EncodeCursor([]byte("d\x00\x00\x00\x00")))
	f.Add(api.EncodeCursor([]byte("d\x12\x34\x56\x78bucket\x00key\x00")))
	f.Add("!!")
	f.Add("ZA")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := api.DecodeCursor(s)
		if err != nil || s == "" {
			return
		}
		if got := api.EncodeCursor(b); got != s {
			t.Fatalf("cursor %q decodes to %x, which encodes as %q", s, b, got)
		}
	})
}
