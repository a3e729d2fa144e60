package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/auth"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/pki"
	"github.com/quorumkv/quorumkv/internal/testcluster"
)

// The tests in this file run a three-node cluster with everything on, as
// 'quorumkv server --tls-cert --tls-key --tls-ca --gossip-key --auth' runs it: HTTPS and
// Redis over TLS, mutual TLS between nodes, encrypted gossip, and users with roles.

// Passwords of the test users. Each is distinctive so that the log check below finds any
// copy of it.
const (
	adminPW  = "admin-pw-7f3a9c"
	writerPW = "writer-pw-2b8e1d"
	readerPW = "reader-pw-5c6f0a"
	minePW   = "mine-pw-9d4b7e"
	wrongPW  = "wrong-pw-1a2b3c"
)

var allSecrets = []string{adminPW, writerPW, readerPW, minePW, wrongPW}

// syncBuffer is a log sink shared by the nodes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type secureCluster struct {
	nodes []*node.Node
	resps []*api.RESP
	auths []*auth.Authenticator
	ca    *tls.Config // a client's configuration trusting the cluster CA
	https *http.Client
	logs  *syncBuffer
	dir   string
}

// noBackoff lets a test fail as often as it needs from loopback without waiting.
func noBackoff() auth.BackoffConfig {
	b := auth.DefaultBackoff()
	b.Free = 1 << 20
	return b
}

// startSecureCluster starts size nodes with TLS, mTLS, a gossip key and --auth, users
// admin, writer (write everywhere), reader (read everywhere) and mine (write on bucket
// "mine" only), and a Redis front end on each node.
func startSecureCluster(t *testing.T, size int) *secureCluster {
	t.Helper()
	dir := t.TempDir()
	var names []string
	for i := 1; i <= size; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	if _, err := pki.Generate(dir, pki.Options{Nodes: names}); err != nil {
		t.Fatal(err)
	}
	keys, err := pki.LoadGossipKeys(filepath.Join(dir, pki.GossipFile))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCAs(filepath.Join(dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	sc := &secureCluster{logs: &syncBuffer{}, dir: dir, ca: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	sc.https = &http.Client{Transport: &http.Transport{TLSClientConfig: sc.ca}, Timeout: 10 * time.Second}
	log := slog.New(slog.NewTextHandler(sc.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	bundles := map[string]*pki.Bundle{}
	for _, n := range names {
		cf, kf := pki.NodeFiles(n)
		b, err := pki.Load(filepath.Join(dir, cf), filepath.Join(dir, kf), filepath.Join(dir, pki.CAFile))
		if err != nil {
			t.Fatal(err)
		}
		bundles[n] = b
	}
	var mu sync.Mutex
	auths := map[string]*auth.Authenticator{}
	sc.nodes = testcluster.Start(t, size, func(cfg *node.Config) {
		b := bundles[cfg.ID]
		cfg.Logger = log
		cfg.HTTPTLS = b.ClientFacing()
		cfg.InternodeServerTLS, cfg.InternodeClientTLS = b.InternodeServer(), b.InternodeClient()
		cfg.GossipKeys = keys
		id := cfg.ID
		cfg.HTTPHandler = func(n *node.Node) http.Handler {
			a, err := auth.New(auth.Config{Store: n, Logger: log, Backoff: noBackoff()})
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			auths[id] = a
			mu.Unlock()
			return api.NewWithOptions(n, api.Options{Logger: log, MaxValue: cfg.MaxValueBytes, Auth: a, RequireAuth: true, DebugFaults: true})
		}
	})
	for i, n := range sc.nodes {
		a := auths[n.ID()]
		sc.auths = append(sc.auths, a)
		r := api.NewRESP(n, log)
		r.Auth, r.RequireAuth = a, true
		ln, err := tls.Listen("tcp", "127.0.0.1:0", bundles[n.ID()].ClientFacing())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Serve(ln); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		sc.resps = append(sc.resps, r)
		_ = i
	}
	if made, err := sc.auths[0].Bootstrap("admin", adminPW); err != nil || !made {
		t.Fatalf("bootstrap admin: %v %v", made, err)
	}
	for _, u := range []struct {
		name, pw, body string
	}{
		{"writer", writerPW, `{"role":"write"}`},
		{"reader", readerPW, `{"role":"read"}`},
		{"mine", minePW, `{"role":"write","bucket":"mine"}`},
	} {
		st, body := sc.do(t, 0, "admin", adminPW, "PUT", "/v1/users/"+u.name, fmt.Sprintf(`{"password":%q,"grants":[%s]}`, u.pw, u.body))
		if st != 200 {
			t.Fatalf("create %s: %d %s", u.name, st, body)
		}
		if strings.Contains(body, u.pw) || strings.Contains(body, "argon2") {
			t.Fatalf("create %s: the answer shows the password or its hash: %s", u.name, body)
		}
	}
	// Users are cluster metadata: every node learns them by gossip.
	waitFor(t, 10*time.Second, "users on every node", func() bool {
		for _, a := range sc.auths {
			if len(a.List()) != 4 {
				return false
			}
		}
		return true
	})
	return sc
}

// do sends one HTTPS request to node i as user (none when user is "") and returns the
// status and body.
func (sc *secureCluster) do(t *testing.T, i int, user, pw, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+sc.nodes[i].HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := sc.https.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, s := range allSecrets {
		if strings.Contains(string(b), s) {
			t.Fatalf("%s %s: the answer carries a password: %s", method, path, b)
		}
	}
	return resp.StatusCode, string(b)
}

// value reads bucket/key as admin: its value, or "<absent>".
func (sc *secureCluster) value(t *testing.T, bucket, key string) string {
	t.Helper()
	st, body := sc.do(t, 0, "admin", adminPW, "GET", "/v1/kv/"+bucket+"/"+key, "")
	switch st {
	case 200:
		return body
	case 404:
		return "<absent>"
	}
	t.Fatalf("read %s/%s as admin: %d %s", bucket, key, st, body)
	return ""
}

func TestSecureHTTP(t *testing.T) {
	t.Parallel()
	sc := startSecureCluster(t, 3)
	if st, body := sc.do(t, 1, "writer", writerPW, "PUT", "/v1/kv/b/k", "v1"); st != 204 {
		t.Fatalf("writer put: %d %s", st, body)
	}

	t.Run("no credentials: 401 and nothing changed", func(t *testing.T) {
		for _, r := range []struct{ method, path, body string }{
			{"PUT", "/v1/kv/b/k", "evil"}, {"DELETE", "/v1/kv/b/k", ""}, {"PUT", "/v1/kv/b/new", "evil"},
			{"GET", "/v1/kv/b/k", ""}, {"PUT", "/v1/buckets/b", `{"n":1}`}, {"GET", "/v1/users", ""},
			{"GET", "/metrics", ""}, {"GET", "/ui/", ""}, {"GET", "/nowhere", ""},
		} {
			req, _ := http.NewRequest(r.method, "https://"+sc.nodes[0].HTTPAddr()+r.path, strings.NewReader(r.body))
			resp, err := sc.https.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantError(t, r.method+" "+r.path, 401, "unauthorized", resp.StatusCode, string(b))
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s %s: WWW-Authenticate %q", r.method, r.path, resp.Header.Get("WWW-Authenticate"))
			}
		}
		if v := sc.value(t, "b", "k"); v != "v1" {
			t.Errorf("b/k = %q after refused writes, want v1", v)
		}
		if v := sc.value(t, "b", "new"); v != "<absent>" {
			t.Errorf("b/new = %q after a refused write, want absent", v)
		}
		// Liveness stays open: a container's health check has no password.
		if st, _ := sc.do(t, 0, "", "", "GET", "/healthz", ""); st != 200 {
			t.Errorf("healthz without credentials: %d", st)
		}
	})

	t.Run("wrong password: 401", func(t *testing.T) {
		for _, who := range [][2]string{{"writer", wrongPW}, {"nobody", wrongPW}, {"", wrongPW}} {
			st, body := sc.do(t, 0, who[0], who[1], "PUT", "/v1/kv/b/k", "evil")
			if who[0] == "" {
				req, _ := http.NewRequest("PUT", "https://"+sc.nodes[0].HTTPAddr()+"/v1/kv/b/k", strings.NewReader("evil"))
				req.Header.Set("Authorization", "Basic "+wrongPW)
				resp, err := sc.https.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				st, body = resp.StatusCode, string(b)
			}
			wantError(t, "wrong password as "+who[0], 401, "unauthorized", st, body)
		}
		if v := sc.value(t, "b", "k"); v != "v1" {
			t.Errorf("b/k = %q, want v1", v)
		}
	})

	t.Run("read-only user: 403 on writes, nothing changed", func(t *testing.T) {
		if st, body := sc.do(t, 2, "reader", readerPW, "GET", "/v1/kv/b/k", ""); st != 200 || body != "v1" {
			t.Fatalf("reader get: %d %q", st, body)
		}
		for _, r := range []struct{ method, path, body string }{
			{"PUT", "/v1/kv/b/k", "evil"}, {"DELETE", "/v1/kv/b/k", ""}, {"POST", "/v1/crdt/c/k", `{"increment":1}`},
		} {
			st, body := sc.do(t, 2, "reader", readerPW, r.method, r.path, r.body)
			wantError(t, "reader "+r.method+" "+r.path, 403, "forbidden", st, body)
		}
		if v := sc.value(t, "b", "k"); v != "v1" {
			t.Errorf("b/k = %q after the reader's refused writes, want v1", v)
		}
	})

	t.Run("admin endpoints: 403 for a write user", func(t *testing.T) {
		before := sc.value(t, "b", "k")
		_, props := sc.do(t, 0, "admin", adminPW, "GET", "/v1/buckets/b", "")
		for _, r := range []struct{ method, path, body string }{
			{"PUT", "/v1/buckets/b", `{"n":1}`}, {"POST", "/v1/admin/repair", ""}, {"GET", "/v1/admin/hints", ""},
			{"GET", "/v1/admin/local/b/k", ""}, {"GET", "/v1/users", ""}, {"PUT", "/v1/users/evil", `{"password":"evil-password","grants":[{"role":"admin"}]}`},
			{"POST", "/v1/users/writer/grant", `{"role":"admin"}`}, {"POST", "/v1/debug/faults", `{"drop":["n2"]}`},
			{"GET", "/debug/pprof/", ""},
		} {
			st, body := sc.do(t, 0, "writer", writerPW, r.method, r.path, r.body)
			wantError(t, "writer "+r.method+" "+r.path, 403, "forbidden", st, body)
		}
		if _, after := sc.do(t, 0, "admin", adminPW, "GET", "/v1/buckets/b", ""); after != props {
			t.Errorf("bucket properties changed by a refused request: %s → %s", props, after)
		}
		if v := sc.value(t, "b", "k"); v != before {
			t.Errorf("b/k changed: %q → %q", before, v)
		}
		for _, a := range sc.auths {
			if u, err := a.Lookup("writer"); err != nil || u.Can(auth.RoleAdmin, "") {
				t.Errorf("writer after a refused self-grant: %+v %v", u, err)
			}
			if _, err := a.Lookup("evil"); err == nil {
				t.Errorf("a refused user creation made the user")
			}
		}
		// The admin may.
		if st, body := sc.do(t, 0, "admin", adminPW, "GET", "/v1/admin/hints", ""); st != 200 {
			t.Errorf("admin hints: %d %s", st, body)
		}
	})

	t.Run("per-bucket grant", func(t *testing.T) {
		if st, body := sc.do(t, 0, "mine", minePW, "PUT", "/v1/kv/mine/k", "m"); st != 204 {
			t.Fatalf("mine writes its bucket: %d %s", st, body)
		}
		st, body := sc.do(t, 0, "mine", minePW, "PUT", "/v1/kv/b/k", "evil")
		wantError(t, "mine writes another bucket", 403, "forbidden", st, body)
		st, body = sc.do(t, 0, "mine", minePW, "GET", "/v1/kv/b/k", "")
		wantError(t, "mine reads another bucket", 403, "forbidden", st, body)
		if v := sc.value(t, "b", "k"); v != "v1" {
			t.Errorf("b/k = %q, want v1", v)
		}
	})

	t.Run("revoke and remove take effect at once", func(t *testing.T) {
		if st, body := sc.do(t, 0, "admin", adminPW, "PUT", "/v1/users/temp", `{"password":"temp-password-1","grants":[{"role":"write"}]}`); st != 200 {
			t.Fatalf("create temp: %d %s", st, body)
		}
		if st, body := sc.do(t, 0, "temp", "temp-password-1", "PUT", "/v1/kv/b/t", "x"); st != 204 {
			t.Fatalf("temp writes: %d %s", st, body)
		}
		if st, body := sc.do(t, 0, "admin", adminPW, "POST", "/v1/users/temp/revoke", `{"role":"write"}`); st != 200 {
			t.Fatalf("revoke: %d %s", st, body)
		}
		st, body := sc.do(t, 0, "temp", "temp-password-1", "PUT", "/v1/kv/b/t", "y")
		wantError(t, "temp writes after revoke", 403, "forbidden", st, body)
		if st, body := sc.do(t, 0, "admin", adminPW, "DELETE", "/v1/users/temp", ""); st != 204 {
			t.Fatalf("remove: %d %s", st, body)
		}
		st, body = sc.do(t, 0, "temp", "temp-password-1", "GET", "/v1/cluster", "")
		wantError(t, "removed user", 401, "unauthorized", st, body)
	})

	t.Run("plaintext HTTP against the TLS port fails cleanly", func(t *testing.T) {
		resp, err := http.Get("http://" + sc.nodes[0].HTTPAddr() + "/v1/kv/b/k")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 400 || strings.Contains(string(b), "v1") {
				t.Errorf("plaintext request: %d %q, want 400 and no data", resp.StatusCode, b)
			}
		}
		if st, _ := sc.do(t, 0, "admin", adminPW, "GET", "/healthz", ""); st != 200 {
			t.Errorf("the node after a plaintext client: %d", st)
		}
	})

	t.Run("the dashboard reaches the other nodes over TLS with the caller's login", func(t *testing.T) {
		// The test cluster's HTTP handlers have no PeerTLS: a node asks its peers over plain
		// HTTP, so this subtest builds the handler the server builds, with it.
		var view struct {
			Nodes []struct {
				ID        string `json:"id"`
				Reachable bool   `json:"reachable"`
				Error     string `json:"error"`
			} `json:"nodes"`
		}
		cf, kf := pki.NodeFiles("n1")
		b, err := pki.Load(filepath.Join(sc.dir, cf), filepath.Join(sc.dir, kf), filepath.Join(sc.dir, pki.CAFile))
		if err != nil {
			t.Fatal(err)
		}
		// Without PeerTLS every other node shows unreachable (400: plain HTTP to a TLS port).
		h := api.NewWithOptions(sc.nodes[0], api.Options{Auth: sc.auths[0], RequireAuth: true, PeerTLS: b.InternodeClient(), MaxValue: 1 << 20})
		get := func(user, pw string) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/ui/api/cluster", nil)
			req.SetBasicAuth(user, pw)
			h.ServeHTTP(rec, req)
			return rec
		}
		rec := get("reader", readerPW)
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &view) != nil || len(view.Nodes) != 3 {
			t.Fatalf("cluster view as reader: %d %s", rec.Code, rec.Body)
		}
		for _, n := range view.Nodes {
			if !n.Reachable {
				t.Errorf("the dashboard of n1 cannot reach %s: %s", n.ID, n.Error)
			}
		}
		if rec := get("mine", minePW); rec.Code != 403 {
			t.Errorf("cluster view as a user without read on every bucket: %d", rec.Code)
		}
	})

	t.Run("failures are counted", func(t *testing.T) {
		_, body := sc.do(t, 0, "admin", adminPW, "GET", "/metrics", "")
		if !strings.Contains(body, `quorumkv_auth_failures_total{protocol="http",reason="forbidden"}`) ||
			!strings.Contains(body, `quorumkv_auth_failures_total{protocol="http",reason="missing"}`) ||
			!strings.Contains(body, `quorumkv_auth_failures_total{protocol="http",reason="invalid"}`) {
			t.Errorf("auth failure counters missing from /metrics")
		}
	})

	checkNoSecrets(t, sc)
}

// checkNoSecrets fails when any password appears in the nodes' logs.
func checkNoSecrets(t *testing.T, sc *secureCluster) {
	t.Helper()
	logs := sc.logs.String()
	if !strings.Contains(logs, "authentication failed") {
		t.Errorf("no failed authentication was logged")
	}
	for _, s := range allSecrets {
		if strings.Contains(logs, s) {
			i := strings.Index(logs, s)
			t.Errorf("a password is in the logs: ...%s...", logs[max(0, i-200):i])
		}
	}
}

// respConn is a raw Redis connection over TLS.
type respConn struct {
	t  *testing.T
	c  net.Conn
	rd *bufio.Reader
}

func dialRESP(t *testing.T, sc *secureCluster, i int) *respConn {
	t.Helper()
	c, err := tls.Dial("tcp", sc.resps[i].Addr(), sc.ca)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &respConn{t: t, c: c, rd: bufio.NewReader(c)}
}

func dialPlain(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// cmd sends one command and returns its reply's first line (a bulk's value for "$"),
// failing when the reply carries a test password.
func (r *respConn) cmd(args ...string) string {
	r.t.Helper()
	line := r.cmdNoCheck(args...)
	for _, s := range allSecrets {
		if strings.Contains(line, s) {
			r.t.Fatalf("%s: the reply carries a password: %q", args[0], line)
		}
	}
	return line
}

// cmdNoCheck is cmd without the password check.
func (r *respConn) cmdNoCheck(args ...string) string {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = r.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(r.c, b.String()); err != nil {
		r.t.Fatal(err)
	}
	return r.reply(args[0])
}

// reply reads one reply: a simple reply's line, a bulk's value, an array's "*N" header
// (its elements read and dropped).
func (r *respConn) reply(what string) string {
	r.t.Helper()
	line, err := r.rd.ReadString('\n')
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "$") && line != "$-1":
		v, err := r.rd.ReadString('\n')
		if err != nil {
			r.t.Fatal(err)
		}
		return strings.TrimRight(v, "\r\n")
	case strings.HasPrefix(line, "*"):
		var n int
		fmt.Sscanf(line, "*%d", &n)
		for range n {
			r.reply(what)
		}
	}
	return line
}

func TestSecureRESP(t *testing.T) {
	t.Parallel()
	sc := startSecureCluster(t, 3)
	admin := dialRESP(t, sc, 0)
	if got := admin.cmd("AUTH", "admin", adminPW); got != "+OK" {
		t.Fatalf("AUTH admin: %q", got)
	}
	if got := admin.cmd("SET", "k", "v1"); got != "+OK" {
		t.Fatalf("SET as admin: %q", got)
	}

	t.Run("no AUTH: NOAUTH and nothing changed", func(t *testing.T) {
		c := dialRESP(t, sc, 1)
		for _, args := range [][]string{{"SET", "k", "evil"}, {"DEL", "k"}, {"INCR", "n"}, {"SADD", "s", "x"}, {"GET", "k"}, {"PING"}, {"NOSUCH"}} {
			if got := c.cmd(args...); got != "-NOAUTH Authentication required." {
				t.Errorf("%v before AUTH: %q", args, got)
			}
		}
		if got := admin.cmd("GET", "k"); got != "v1" {
			t.Errorf("k = %q after refused commands, want v1", got)
		}
		if got := admin.cmd("EXISTS", "n"); got != ":0" {
			t.Errorf("n exists after a refused INCR: %q", got)
		}
	})

	t.Run("wrong password: WRONGPASS, still not logged in", func(t *testing.T) {
		c := dialRESP(t, sc, 1)
		for _, args := range [][]string{{"AUTH", "writer", wrongPW}, {"AUTH", wrongPW}, {"AUTH", "nobody", wrongPW}} {
			if got := c.cmd(args...); !strings.HasPrefix(got, "-WRONGPASS") {
				t.Errorf("%s with a wrong password: %q", args[0], got)
			}
		}
		if got := c.cmd("SET", "k", "evil"); got != "-NOAUTH Authentication required." {
			t.Errorf("SET after a failed AUTH: %q", got)
		}
	})

	t.Run("read-only user: NOPERM and nothing changed", func(t *testing.T) {
		c := dialRESP(t, sc, 2)
		if got := c.cmd("AUTH", "reader", readerPW); got != "+OK" {
			t.Fatalf("AUTH reader: %q", got)
		}
		if got := c.cmd("GET", "k"); got != "v1" {
			t.Errorf("reader GET: %q", got)
		}
		for _, args := range [][]string{{"SET", "k", "evil"}, {"DEL", "k"}, {"INCR", "n"}, {"SADD", "s", "x"}} {
			want := fmt.Sprintf("-NOPERM User reader has no permissions to run the '%s' command", strings.ToLower(args[0]))
			if got := c.cmd(args...); got != want {
				t.Errorf("reader %v: %q, want %q", args, got, want)
			}
		}
		if got := admin.cmd("GET", "k"); got != "v1" {
			t.Errorf("k = %q after the reader's refused writes, want v1", got)
		}
	})

	t.Run("HELLO AUTH", func(t *testing.T) {
		c := dialRESP(t, sc, 0)
		if got := c.cmd("HELLO", "2"); !strings.HasPrefix(got, "-NOAUTH HELLO must be called") {
			t.Errorf("HELLO 2 before a login: %q", got)
		}
		if got := c.cmd("HELLO", "2", "AUTH", "writer", wrongPW); !strings.HasPrefix(got, "-WRONGPASS") {
			t.Errorf("HELLO with a wrong password: %q", got)
		}
		if got := c.cmd("HELLO", "2", "AUTH", "writer", writerPW); got != "*14" {
			t.Errorf("HELLO 2 AUTH writer: %q", got)
		}
		if got := c.cmd("SET", "k", "v2"); got != "+OK" {
			t.Errorf("writer SET after HELLO AUTH: %q", got)
		}
	})

	t.Run("a Redis client library with a user", func(t *testing.T) {
		rc := redis.NewClient(&redis.Options{Addr: sc.resps[1].Addr(), TLSConfig: sc.ca, Username: "writer", Password: writerPW})
		defer rc.Close()
		ctx := context.Background()
		if err := rc.Set(ctx, "lib", "x", 0).Err(); err != nil {
			t.Fatalf("go-redis SET as writer: %v", err)
		}
		bad := redis.NewClient(&redis.Options{Addr: sc.resps[1].Addr(), TLSConfig: sc.ca, Username: "reader", Password: readerPW})
		defer bad.Close()
		if err := bad.Set(ctx, "lib", "evil", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("go-redis SET as reader: %v, want NOPERM", err)
		}
	})

	t.Run("redis-cli --tls with a user", func(t *testing.T) {
		cli := needTool(t, "redis-cli", "redis-tools")
		host, port, _ := net.SplitHostPort(sc.resps[1].Addr())
		run := func(args ...string) string {
			base := []string{"-h", host, "-p", port, "--tls", "--cacert", filepath.Join(sc.dir, pki.CAFile), "--no-auth-warning"}
			out, _ := exec.Command(cli, append(base, args...)...).CombinedOutput()
			return strings.TrimSpace(string(out))
		}
		if got := run("--user", "writer", "--pass", writerPW, "SET", "cli", "v"); got != "OK" {
			t.Errorf("redis-cli --tls --user writer SET: %q", got)
		}
		if got := run("SET", "cli", "evil"); !strings.Contains(got, "NOAUTH") {
			t.Errorf("redis-cli --tls without a user: %q", got)
		}
		if got := run("--user", "reader", "--pass", readerPW, "SET", "cli", "evil"); !strings.Contains(got, "NOPERM") {
			t.Errorf("redis-cli --tls --user reader SET: %q", got)
		}
		if got := admin.cmd("GET", "cli"); got != "v" {
			t.Errorf("cli = %q after refused writes, want v", got)
		}
	})

	t.Run("plaintext client against the TLS port fails cleanly", func(t *testing.T) {
		out, closed := exchange(t, sc.resps[0].Addr(), []byte("*1\r\n$4\r\nPING\r\n"), false)
		if !strings.HasPrefix(out, "-ERR this port speaks TLS") || !closed {
			t.Errorf("plaintext PING on the TLS port: %q (closed %v)", out, closed)
		}
		if got := admin.cmd("PING"); got != "+PONG" {
			t.Errorf("the port after a plaintext client: %q", got)
		}
	})

	checkNoSecrets(t, sc)
}
