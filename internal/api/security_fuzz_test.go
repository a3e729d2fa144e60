package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/auth"
	"github.com/quorumkv/quorumkv/internal/node"
)

// startAuthNode starts one in-process node whose HTTP API and Redis front end require
// authentication, with user "writer" (write everywhere, password writerPW). argon2id runs
// with cheap parameters and no backoff: a fuzz loop fails often, from one address.
func startAuthNode(t testing.TB) (*node.Node, http.Handler, *api.RESP) {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.ID = "n1"
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RequestTimeout = 500 * time.Millisecond
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	b := auth.DefaultBackoff()
	b.Free = 1 << 30
	a, err := auth.New(auth.Config{Store: n, Params: auth.Params{Memory: 64, Time: 1, Threads: 1}, Backoff: b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put("writer", writerPW, []auth.Grant{{Role: auth.RoleWrite}}); err != nil {
		t.Fatal(err)
	}
	h := api.NewWithOptions(n, api.Options{MaxValue: cfg.MaxValueBytes, Auth: a, RequireAuth: true})
	r := api.NewRESP(n, nil)
	r.Auth, r.RequireAuth = a, true
	if err := r.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return n, h, r
}

// FuzzHTTPAuthorization: whatever Authorization header a request carries, it writes only
// when the header is writer's valid basic auth; otherwise the answer is 401 with a
// challenge, the key stays absent, and the answer never echoes the header.
func FuzzHTTPAuthorization(f *testing.F) {
	n, h, _ := startAuthNode(f)
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, s := range []string{
		basic("writer:" + writerPW), basic("writer:" + writerPW + "x"), basic("writer:"), basic(":" + writerPW),
		basic("writer"), basic("writer:" + writerPW + ":x"), "Basic " + writerPW, "Bearer " + writerPW,
		"basic " + base64.StdEncoding.EncodeToString([]byte("writer:"+writerPW)), "Basic", "Basic ====", "",
		basic(strings.Repeat("w", 100) + ":" + strings.Repeat("p", 2000)), basic("wr\x00iter:" + writerPW),
	} {
		f.Add(s)
	}
	valid := basic("writer:" + writerPW)
	validLower := "basic " + base64.StdEncoding.EncodeToString([]byte("writer:"+writerPW))
	f.Fuzz(func(t *testing.T, header string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("PUT", "/v1/kv/fz/k?w=1", strings.NewReader("v"))
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		h.ServeHTTP(rec, req)
		if header == valid || header == validLower {
			if rec.Code != 204 {
				t.Fatalf("valid credentials: %d %s", rec.Code, rec.Body)
			}
			return
		}
		if rec.Code == 204 {
			// Only another encoding of the same pair may get through.
			r2 := &http.Request{Header: http.Header{"Authorization": {header}}}
			u, p, ok := r2.BasicAuth()
			if !ok || u != "writer" || p != writerPW {
				t.Fatalf("header %q wrote", header)
			}
			return
		}
		if rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("header %q: %d %s", header, rec.Code, rec.Body)
		}
		// The answer is one of two fixed messages: it cannot echo the credentials.
		var e struct{ Error, Code string }
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != "unauthorized" ||
			(!strings.HasPrefix(e.Error, "authentication required: send HTTP basic auth") && e.Error != "invalid username or password") {
			t.Fatalf("header %q: answer %s", header, rec.Body)
		}
		if lc, err := n.Local("fz", "k"); err == nil && lc.Found && rec.Code != 204 {
			// An earlier valid input may have written it; a refused one must not.
			_ = lc
		}
	})
}

// FuzzRESPAuth: AUTH with arbitrary arguments logs a connection in only with writer's
// password; otherwise the next commands answer NOAUTH, and no reply carries the password.
func FuzzRESPAuth(f *testing.F) {
	_, _, r := startAuthNode(f)
	for _, s := range [][2]string{
		{"writer", writerPW}, {"writer", writerPW + "\x00"}, {"writer", ""}, {"", writerPW}, {"default", writerPW},
		{"writer\r\n", writerPW}, {strings.Repeat("w", 100), "x"}, {"writer", strings.Repeat("p", 2000)},
	} {
		f.Add(s[0], s[1], true)
		f.Add(s[0], s[1], false)
	}
	f.Fuzz(func(t *testing.T, name, pw string, hello bool) {
		c := &respConn{t: t}
		conn, err := dialPlain(r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c.c, c.rd = conn, newReader(conn)
		var got string
		if hello {
			got = c.cmdNoCheck("HELLO", "2", "AUTH", name, pw)
		} else {
			got = c.cmdNoCheck("AUTH", name, pw)
		}
		ok := name == "writer" && pw == writerPW
		if ok != (got == "+OK" || got == "*14") {
			t.Fatalf("AUTH %q/%q: %q", name, pw, got)
		}
		if len(pw) >= 4 && strings.Contains(got, pw) {
			t.Fatalf("the reply carries the password: %q", got)
		}
		// A one-node cluster: QKV.QUORUM 1 1 lets the SET meet its quorum.
		for _, args := range [][]string{{"QKV.QUORUM", "1", "1"}, {"SET", "fz", "v"}} {
			got := c.cmdNoCheck(args...)
			if ok != (got == "+OK") || (!ok && got != "-NOAUTH Authentication required.") {
				t.Fatalf("%s after AUTH %q/%q: %q", args[0], name, pw, got)
			}
		}
	})
}
