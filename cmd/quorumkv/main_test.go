package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for "quorumkv server" when dev re-executes it.
func TestMain(m *testing.M) {
	if os.Getenv("QKV_TEST_FAKE_SERVER") == "1" {
		os.Exit(fakeServer(os.Args[1:]))
	}
	if p := os.Getenv("QKV_TEST_HOLD_LOCK"); p != "" {
		os.Exit(holdLock(p))
	}
	os.Exit(m.Run())
}

// fakeServer mimics the server's process contract: flags, the ready line, /healthz,
// a clean exit on SIGTERM. It writes its pid to DATA/pid. SIGUSR1 makes it exit 3 (a
// crash).
func fakeServer(args []string) int {
	if len(args) == 0 || args[0] != "server" {
		fmt.Fprintln(os.Stderr, "fake server: want the server subcommand")
		return 2
	}
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	id := fs.String("id", "", "")
	data := fs.String("data", "", "")
	httpAddr := fs.String("http", "", "")
	resp := fs.String("resp", "", "")
	rpc := fs.String("rpc", "", "")
	gossip := fs.String("gossip", "", "")
	fs.String("join", "", "")
	fs.String("log-level", "", "")
	fs.Bool("debug-faults", false, "")
	loops := fs.Int("loops", 0, "")
	if err := fs.Parse(args[1:]); err != nil || *loops < 1 {
		return 2 // dev gives every node its share of the CPUs: at least one loop
	}
	if err := os.WriteFile(filepath.Join(*data, "pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt, syscall.SIGUSR1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/cluster/transfers" {
			// The ring dev waits for (QKV_TEST_FAKE_RING), settled.
			ring := strings.Split(os.Getenv("QKV_TEST_FAKE_RING"), ",")
			b, _ := json.Marshal(map[string]any{"node": *id, "pending": false, "ring": ring})
			w.Write(b)
			return
		}
		fmt.Fprintf(w, `{"status":"ok","node":%q}`, *id)
	}))
	l, err := netListen(*httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv.Listener = l
	srv.Start()
	fmt.Fprintln(os.Stderr, "fake server starting", *id)
	fmt.Printf("%sid=%s http=%s resp=%s rpc=%s gossip=%s\n", readyPrefix, *id, l.Addr(), *resp, *rpc, *gossip)
	if <-sig == syscall.SIGUSR1 {
		return 3
	}
	srv.Close()
	return 0
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
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

// testEnv returns an env writing to buffers, with environment vars from vars.
func testEnv(stdin string, vars map[string]string) (*env, *syncBuffer, *syncBuffer) {
	out, errb := &syncBuffer{}, &syncBuffer{}
	e := &env{
		stdin: strings.NewReader(stdin), stdout: out, stderr: errb,
		signals: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
		getenv:  func(k string) string { return vars[k] },
	}
	return e, out, errb
}

func TestTopLevel(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string // substrings expected in stdout / stderr
	}{
		{nil, 2, "", "Usage:\n  quorumkv COMMAND"},
		{[]string{"help"}, 0, "Data commands:", ""},
		{[]string{"-h"}, 0, "Running commands:", ""},
		{[]string{"--help"}, 0, "quorumkv dev", ""},
		{[]string{"help", "get"}, 0, "Usage: quorumkv get BUCKET KEY", ""},
		{[]string{"help", "server"}, 0, "quorumkv ready id=n1", ""},
		{[]string{"help", "nope"}, 2, "", `unknown command "nope"`},
		{[]string{"frobnicate"}, 2, "", `quorumkv: unknown command "frobnicate"`},
		{[]string{"bench", "--clients", "0", "--addrs", "127.0.0.1:1"}, 2, "", "must be positive"},
	} {
		e, out, errb := testEnv("", nil)
		if code := e.run(tc.args); code != tc.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.args, code, tc.code, errb)
		}
		if !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errs) {
			t.Errorf("%q:\nstdout %q\nstderr %q\nwant %q / %q", tc.args, out, errb, tc.out, tc.errs)
		}
	}
}

func TestEveryCommandHelpAndBadFlag(t *testing.T) {
	for _, c := range commands {
		e, _, errb := testEnv("", nil)
		if code := e.run([]string{c.name, "-h"}); code != 0 {
			t.Errorf("%s -h: exit %d", c.name, code)
		}
		if !strings.Contains(errb.String(), "Usage: quorumkv "+c.name) {
			t.Errorf("%s -h: usage %q", c.name, errb)
		}
		e, out, errb := testEnv("", nil)
		if code := e.run([]string{c.name, "--no-such-flag"}); code != 2 {
			t.Errorf("%s --no-such-flag: exit %d, want 2", c.name, code)
		}
		want := "flag provided but not defined: -no-such-flag\nRun 'quorumkv help " + c.name + "' for usage.\n"
		if errb.String() != want || out.String() != "" {
			t.Errorf("%s --no-such-flag: stderr %q, stdout %q", c.name, errb, out)
		}
	}
}

func TestBadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		errs string
	}{
		{[]string{"get", "b"}, "quorumkv get: want BUCKET KEY, got 1 argument(s)"},
		{[]string{"get", "b", "k", "extra"}, "want BUCKET KEY, got 3"},
		{[]string{"get", "b", "k", "--r"}, "flag needs an argument: -r"},
		{[]string{"put", "b", "k"}, "quorumkv put: want BUCKET KEY VALUE"},
		{[]string{"put", "b", "k", "v", "--ttl", "0"}, "--ttl 0: want a positive number of seconds"},
		{[]string{"put", "b", "k", "v", "--if-absent", "--if-present"}, "--if-absent and --if-present together"},
		{[]string{"keys"}, "quorumkv keys: want BUCKET"},
		{[]string{"keys", "b", "--limit", "-1"}, "--limit -1: want 1 or more"},
		{[]string{"put", "b", "k", "v", "--ttl", "10ms"}, "--ttl 10ms: want a duration of at least 1s"},
		{[]string{"delete"}, "quorumkv delete: want BUCKET KEY"},
		{[]string{"bucket"}, "quorumkv bucket: want BUCKET"},
		{[]string{"bucket", "b", "--set", `{"n":3,"bogus":1}`}, `bad --set JSON: unknown property "bogus"`},
		{[]string{"bucket", "b", "--set", `{"n":`}, "bad --set JSON"},
		{[]string{"status", "x"}, `unexpected argument "x"`},
		{[]string{"ring", "--key", "nokey"}, "--key wants BUCKET/KEY"},
		{[]string{"server"}, "missing required flag --id, --data, --http, --rpc, --gossip"},
		{[]string{"server", "--id", "n1", "--data", "d", "--http", ":0", "--rpc", ":0", "--gossip", ":0", "--log-level", "loud"}, "bad --log-level"},
		{[]string{"server", "stray"}, `unexpected argument "stray"`},
		{[]string{"dev", "--nodes", "0"}, "--nodes must be in 1..100"},
		{[]string{"dev", "--base-port", "65500"}, "--base-port must be 0 or in"},
	} {
		e, out, errb := testEnv("", nil)
		if code := e.run(tc.args); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errb.String(), tc.errs) || out.String() != "" {
			t.Errorf("%q: stderr %q (want %q), stdout %q", tc.args, errb, tc.errs, out)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := fs.String("a", "", "")
	b := fs.Bool("b", false, "")
	pos, _, ok := parse(fs, []string{"p1", "--a", "v", "p2", "-b", "-", "--", "--a", "p3"})
	if !ok {
		t.Fatal("parse failed")
	}
	if *a != "v" || !*b || strings.Join(pos, ",") != "p1,p2,-,--a,p3" {
		t.Fatalf("a=%q b=%v pos=%q", *a, *b, pos)
	}
}

// fakeAPI is an httptest server answering like the HTTP API for the client verbs.
func fakeAPI(t *testing.T) (addr string, seen *[]string) {
	t.Helper()
	var mu sync.Mutex
	var reqs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, fmt.Sprintf("%s %s?%s ctx=%s body=%s", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("X-Quorumkv-Context"), body))
		mu.Unlock()
		jsonReply := func(status int, v string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, v)
		}
		p := r.URL.Path
		switch {
		case p == "/v1/kv/b/one" && r.Method == "GET":
			w.Header().Set("X-Quorumkv-Context", "c1")
			jsonReply(200, `{"values":["aGVsbG8="],"context":"c1"}`)
		case p == "/v1/kv/b/sib" && r.Method == "GET":
			jsonReply(200, `{"values":["YQ==","Yg=="],"context":"c2"}`)
		case p == "/v1/kv/b/bin" && r.Method == "GET":
			jsonReply(200, `{"values":["AAE=","eA=="],"context":"c5"}`)
		case strings.HasPrefix(p, "/v1/kv/b/missing"):
			jsonReply(404, `{"error":"not found","code":"not_found"}`)
		case p == "/v1/kv/b/slow":
			jsonReply(503, `{"error":"w not met","code":"quorum_failed","acks":2,"required":3}`)
		case p == "/v1/kv/b/taken" && r.Header.Get("If-None-Match") == "*":
			jsonReply(412, `{"error":"precondition failed: the key holds a value (create-only write)","code":"precondition_failed"}`)
		case p == "/v1/kv/b/free" && r.Header.Get("If-None-Match") != "*":
			jsonReply(400, `{"error":"want If-None-Match","code":"bad_request"}`)
		case p == "/v1/keys/b" && r.URL.Query().Get("cursor") == "":
			jsonReply(200, `{"keys":["k1","k2"],"next":"CUR"}`)
		case p == "/v1/keys/b" && r.URL.Query().Get("cursor") == "CUR":
			jsonReply(200, `{"keys":["k3"],"next":""}`)
		case p == "/v1/kv/b/bad":
			jsonReply(400, `{"error":"bad quorum value \"x\"","code":"bad_request"}`)
		case strings.HasPrefix(p, "/v1/kv/") && (r.Method == "PUT" || r.Method == "DELETE"):
			w.Header().Set("X-Quorumkv-Context", "new-"+r.Method)
			w.WriteHeader(204)
		case p == "/v1/buckets/bad" && r.Method == "PUT":
			jsonReply(400, `{"error":"n=0 is outside 1..16","code":"bad_request"}`)
		case p == "/v1/buckets/users" && r.Method == "GET":
			jsonReply(200, `{"n":3,"r":"quorum","w":"quorum","pr":"0","pw":"0","dw":"0","conflict":"siblings","read_repair":"blocking","type":"kv","gc_grace_s":864000}`)
		case p == "/v1/buckets/users" && r.Method == "PUT":
			jsonReply(200, `{"n":5,"r":"quorum","w":"all","pr":"0","pw":"0","dw":"0","conflict":"siblings","read_repair":"blocking","type":"kv","gc_grace_s":864000}`)
		case p == "/v1/buckets/cache" && r.Method == "PUT":
			jsonReply(200, `{"n":3,"r":"quorum","w":"quorum","pr":"0","pw":"0","dw":"0","conflict":"siblings","read_repair":"blocking","type":"kv","gc_grace_s":864000,"ttl_s":60}`)
		case p == "/v1/cluster":
			jsonReply(200, `{"node":"n2","partitions":8,"nodes":[
				{"id":"n2","zone":"z","http":"h2","resp":"","rpc":"r2","gossip":"g2","state":"alive","partitions":3},
				{"id":"n1","zone":"","http":"h1","resp":"s1","rpc":"r1","gossip":"g1","state":"down","partitions":3},
				{"id":"n3","zone":"z","http":"h3","resp":"s3","rpc":"r3","gossip":"g3","state":"alive","partitions":2}]}`)
		case p == "/v1/admin/endpoints/b/k/1":
			jsonReply(200, `{"bucket":"b","key":"k/1","partition":5,"n":3,"primaries":[{"id":"n3","state":"alive"},{"id":"n1","state":"down"}],"fallbacks":[{"id":"n2","state":"alive"}]}`)
		default:
			jsonReply(404, `{"error":"no such endpoint","code":"not_found"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), &reqs
}

func TestClientVerbs(t *testing.T) {
	addr, seen := fakeAPI(t)
	vars := map[string]string{addrEnv: addr}
	for _, tc := range []struct {
		name      string
		args      []string
		stdin     string
		code      int
		out, errs string // exact stdout; substring of stderr
		req       string // substring of the last request
	}{
		{"get", []string{"get", "b", "one"}, "", 0, "hello", "", "GET /v1/kv/b/one? "},
		{"get flags after args", []string{"get", "b", "one", "--r", "2", "--pr", "1", "--timeout", "1500ms"}, "", 0, "hello", "", "GET /v1/kv/b/one?pr=1&r=2&timeout=1500 "},
		{"get json", []string{"get", "--json", "b", "one"}, "", 0, `{"found":true,"values":["aGVsbG8="],"context":"c1"}` + "\n", "", ""},
		{"siblings", []string{"get", "b", "sib"}, "", 0, "1) a\n2) b\n", "quorumkv: 2 siblings; resolve with --context c2", ""},
		{"binary siblings", []string{"get", "b", "bin"}, "", 0, "1) \"\\x00\\x01\"\n2) x\n", "", ""},
		{"not found", []string{"get", "b", "missing"}, "", 1, "", "quorumkv: not found\n", ""},
		{"not found json", []string{"get", "b", "missing", "--json"}, "", 1, `{"found":false,"values":[],"context":""}` + "\n", "quorumkv: not found\n", ""},
		{"get quorum", []string{"get", "b", "slow"}, "", 1, "", "quorumkv: quorum not reached: 2 of 3 acks (r=3)\n", ""},
		{"put quorum", []string{"put", "b", "slow", "v", "--w", "3"}, "", 1, "", "quorumkv: quorum not reached: 2 of 3 acks (w=3)\n", ""},
		{"put pw quorum", []string{"put", "b", "slow", "v", "--pw", "3"}, "", 1, "", "(pw=3)\n", ""},
		{"bad request", []string{"get", "b", "bad", "--r", "x"}, "", 1, "", "quorumkv: bad quorum value \"x\" (bad_request, HTTP 400)\n", ""},
		{"put", []string{"put", "b", "a/b c", "v1", "--context", "c1", "--w", "all", "--dw", "1"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/a%2Fb%20c?dw=1&w=all ctx=c1 body=v1"},
		{"put stdin", []string{"put", "b", "k", "-"}, "from\nstdin", 0, "context: new-PUT\n", "", "ctx= body=from\nstdin"},
		{"delete with context", []string{"delete", "b", "k", "--context", "c9"}, "", 0, "context: new-DELETE\n", "", "DELETE /v1/kv/b/k? ctx=c9"},
		{"delete reads first", []string{"delete", "b", "one", "--w", "2"}, "", 0, "context: new-DELETE\n", "", "DELETE /v1/kv/b/one?w=2 ctx=c1"},
		// Deleting an absent key succeeds, as DELETE /v1/kv answers 204, and writes nothing.
		{"delete missing", []string{"delete", "b", "missing"}, "", 0, "not found: nothing to delete\n", "", "GET /v1/kv/b/missing"},
		{"put negative value", []string{"put", "b", "neg", "-5"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/neg? ctx= body=-5"},
		{"put dash value then flags", []string{"put", "b", "neg", "-x", "--w", "2"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/neg?w=2 ctx= body=-x"},
		{"put flag-named value after --", []string{"put", "b", "k", "--", "--w"}, "", 0, "context: new-PUT\n", "", "ctx= body=--w"},
		{"put timeout in ms", []string{"put", "b", "k", "v", "--timeout", "1500"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/k?timeout=1500 "},
		{"put timeout as duration", []string{"put", "b", "k", "v", "--timeout", "2s"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/k?timeout=2000 "},
		{"put ttl", []string{"put", "b", "k", "v", "--ttl", "2m"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/k?ttl=120 "},
		{"put ttl seconds", []string{"put", "b", "k", "v", "--ttl", "45"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/k?ttl=45 "},
		{"put if-absent taken", []string{"put", "b", "taken", "v", "--if-absent"}, "", 1, "", "quorumkv: precondition failed: the key holds a value (create-only write)\n", ""},
		{"put if-absent free", []string{"put", "b", "free", "v", "--if-absent"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/free? ctx= body=v"},
		{"keys", []string{"keys", "b", "--prefix", "k"}, "", 0, "k1\nk2\nk3\n", "", "GET /v1/keys/b?cursor=CUR&prefix=k "},
		{"keys one page", []string{"keys", "b", "--limit", "2"}, "", 0, "k1\nk2\n", "next: CUR\n", "GET /v1/keys/b?limit=2 "},
		{"keys json", []string{"keys", "b", "--json"}, "", 0, "{\"keys\":[\"k1\",\"k2\"],\"next\":\"CUR\"}\n{\"keys\":[\"k3\"],\"next\":\"\"}\n", "", ""},
		{"put ttl never", []string{"put", "b", "k", "v", "--ttl", "never"}, "", 0, "context: new-PUT\n", "", "PUT /v1/kv/b/k?ttl=0 "},
		{"bucket", []string{"bucket", "users"}, "", 0, "{\n  \"n\": 3,\n  \"r\": \"quorum\",\n  \"w\": \"quorum\",\n  \"pr\": 0,\n  \"pw\": 0,\n  \"dw\": 0,\n  \"conflict\": \"siblings\",\n  \"read_repair\": \"blocking\",\n  \"type\": \"kv\",\n  \"gc_grace_s\": 864000\n}\n", "", ""},
		{"bucket set", []string{"bucket", "users", "--set", `{"n":5,"w":"all"}`}, "", 0, "", "", `PUT /v1/buckets/users? ctx= body={"n":5,"w":"all"}`},
		{"bucket set ttl_s", []string{"bucket", "cache", "--set", `{"ttl_s":60}`}, "", 0, "{\n  \"n\": 3,\n  \"r\": \"quorum\",\n  \"w\": \"quorum\",\n  \"pr\": 0,\n  \"pw\": 0,\n  \"dw\": 0,\n  \"conflict\": \"siblings\",\n  \"read_repair\": \"blocking\",\n  \"type\": \"kv\",\n  \"gc_grace_s\": 864000,\n  \"ttl_s\": 60\n}\n", "", `PUT /v1/buckets/cache? ctx= body={"ttl_s":60}`},
		{"bucket 404", []string{"bucket", "nope"}, "", 1, "", "quorumkv: not found\n", ""},
		{"bucket set refused", []string{"bucket", "bad", "--set", `{"n":0}`}, "", 1, "", "quorumkv: n=0 is outside 1..16 (bad_request, HTTP 400)\n", `PUT /v1/buckets/bad? ctx= body={"n":0}`},
		{"status", []string{"status"}, "", 0, "cluster as seen by n2: 3 nodes, 8 partitions\n\n" +
			"  ID  STATE  ZONE  PARTITIONS  HTTP  RESP  RPC  GOSSIP\n" +
			"  n1  down   -     3           h1    s1    r1   g1\n" +
			"* n2  alive  z     3           h2    -     r2   g2\n" +
			"  n3  alive  z     2           h3    s3    r3   g3\n", "", ""},
		{"ring key", []string{"ring", "--key", "b/k/1"}, "", 0, "b/k/1: partition 5, n=3\n\n" +
			"ROLE      NODE  STATE\nprimary   n3    alive\nprimary   n1    down\nfallback  n2    alive\n", "", "GET /v1/admin/endpoints/b/k%2F1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errb := testEnv(tc.stdin, vars)
			code := e.run(tc.args)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errb)
			}
			if tc.out != "" || tc.code != 0 {
				if out.String() != tc.out {
					t.Errorf("stdout:\n%q\nwant\n%q", out, tc.out)
				}
			}
			if !strings.Contains(errb.String(), tc.errs) {
				t.Errorf("stderr %q, want %q", errb, tc.errs)
			}
			if tc.req != "" {
				if last := (*seen)[len(*seen)-1]; !strings.Contains(last, tc.req) {
					t.Errorf("last request %q, want %q", last, tc.req)
				}
			}
		})
	}
}

func TestAddrFlagAndEnv(t *testing.T) {
	addr, _ := fakeAPI(t)
	// --addr wins over the environment.
	e, out, errb := testEnv("", map[string]string{addrEnv: "127.0.0.1:1"})
	if code := e.run([]string{"get", "--addr", "http://" + addr, "b", "one"}); code != 0 || out.String() != "hello" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errb)
	}
	// Nothing listening: one line on stderr, exit 1.
	e, _, errb = testEnv("", map[string]string{addrEnv: "127.0.0.1:1"})
	if code := e.run([]string{"status"}); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if s := errb.String(); !strings.HasPrefix(s, "quorumkv: ") || strings.Count(s, "\n") != 1 || !strings.Contains(s, "127.0.0.1:1") {
		t.Fatalf("stderr %q", s)
	}
}

func TestRing(t *testing.T) {
	addr, _ := fakeAPI(t)
	e, out, errb := testEnv("", map[string]string{addrEnv: addr})
	if code := e.run([]string{"ring", "--json"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var j struct {
		Partitions int
		Owners     []string
	}
	if err := json.Unmarshal([]byte(out.String()), &j); err != nil || j.Partitions != 8 || len(j.Owners) != 8 {
		t.Fatalf("ring --json = %q (%v)", out, err)
	}
	count := map[string]int{}
	for _, o := range j.Owners {
		count[o]++
	}
	e, out, errb = testEnv("", map[string]string{addrEnv: addr})
	if code := e.run([]string{"ring"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	s := out.String()
	for _, want := range []string{"ring as seen by n2: 8 partitions over 3 nodes", "a    n1    down   -     " + strconv.Itoa(count["n1"]), "partition owners"} {
		if !strings.Contains(s, want) {
			t.Errorf("ring output lacks %q:\n%s", want, s)
		}
	}
	// The fake's counts (3,3,2) may or may not match the computed ring; if not, say so.
	mismatch := count["n1"] != 3 || count["n2"] != 3 || count["n3"] != 2
	if strings.Contains(s, "warning:") != mismatch {
		t.Errorf("warning shown = %v, counts %v:\n%s", !mismatch, count, s)
	}
}

// TestDev runs dev with the test binary standing in for the server (see TestMain).
func TestDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv("QKV_TEST_FAKE_SERVER", "1")
	t.Setenv("QKV_TEST_FAKE_RING", "n1,n2,n3")
	dir := t.TempDir()
	e, out, errb := testEnv("", nil)
	stdin, typed := io.Pipe() // what a user types in dev's terminal
	defer typed.Close()
	e.stdin = stdin
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.signals = func() (context.Context, context.CancelFunc) { return ctx, func() {} }
	done := make(chan int, 1)
	go func() { done <- e.run([]string{"dev", "--nodes", "3", "--base-port", "0", "--data", dir}) }()

	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in output:\n%s\nstderr:\n%s", what, out, errb)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("Ctrl-C stops the cluster")
	s := out.String()
	for _, want := range []string{"3 node(s) ready", "NODE  HTTP", "export QUORUMKV_ADDR=127.0.0.1:", "quorumkv put demo hello world", "curl -i",
		"no fallback or hint can be seen. Run 'quorumkv dev --nodes 5'"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	log, err := os.ReadFile(filepath.Join(dir, "n2.log"))
	if err != nil || !strings.Contains(string(log), "fake server starting n2") || !strings.Contains(string(log), "quorumkv ready id=n2") {
		t.Errorf("n2.log = %q, %v", log, err)
	}
	pids := map[string]int{}
	for _, id := range []string{"n1", "n2", "n3"} {
		b, err := os.ReadFile(filepath.Join(dir, id, "pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(string(b))
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("%s (pid %d) is not running: %v", id, pid, err)
		}
		pids[id] = pid
	}
	// n3 crashes: dev reports it and carries on.
	if err := syscall.Kill(pids["n3"], syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor("node n3 exited unexpectedly: exit status 3")
	// Enter restarts it, on the same addresses.
	readPid := func(old int) int {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if b, err := os.ReadFile(filepath.Join(dir, "n3", "pid")); err == nil {
				if pid, _ := strconv.Atoi(string(b)); pid > 0 && pid != old {
					return pid
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("n3 wrote no new pid")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := io.WriteString(typed, "\n"); err != nil {
		t.Fatal(err)
	}
	waitFor("node n3 is back")
	pids["n3"] = readPid(pids["n3"])
	if err := syscall.Kill(pids["n3"], 0); err != nil {
		t.Fatalf("restarted n3 (pid %d) is not running: %v", pids["n3"], err)
	}
	// It crashes again; dev prints the command that restarts it; the command works.
	if err := syscall.Kill(pids["n3"], syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), " 2>&1\n") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second restart command:\n%s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(out.String(), "node n3 exited unexpectedly: exit status 3"); n != 2 {
		t.Fatalf("%d exits of n3 reported:\n%s", n, out)
	}
	restart := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, " server --id n3 ") {
			restart = strings.TrimSpace(l)
		}
	}
	for _, want := range []string{"--data " + filepath.Join(dir, "n3"), "--http 127.0.0.1:", "--join 127.0.0.1:", ">>" + filepath.Join(dir, "n3.log")} {
		if !strings.Contains(restart, want) {
			t.Fatalf("restart command %q lacks %q:\n%s", restart, want, out)
		}
	}
	if err := exec.Command("sh", "-c", restart+" &").Run(); err != nil {
		t.Fatalf("restart command: %v", err)
	}
	restarted := readPid(pids["n3"])
	if err := syscall.Kill(restarted, syscall.SIGTERM); err != nil {
		t.Fatalf("stop the restarted n3: %v", err)
	}

	cancel() // as Ctrl-C
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("dev exit %d, want 0; stderr %s", code, errb)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop")
	}
	if s := out.String(); !strings.Contains(s, "stopping 2 node(s)") || !strings.HasSuffix(s, "quorumkv dev: stopped\n") {
		t.Errorf("shutdown output:\n%s", s)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after dev stopped (%v)", pid, err)
		}
	}
}

func TestDevChildFailsToStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv("QKV_TEST_FAKE_SERVER", "1")
	old := devExecutable
	devExecutable = func() (string, error) { return "/bin/false", nil }
	defer func() { devExecutable = old }()
	e, _, errb := testEnv("", nil)
	if code := e.run([]string{"dev", "--nodes", "1", "--base-port", "0", "--data", t.TempDir()}); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if s := errb.String(); !strings.Contains(s, "quorumkv: dev: n1: exited before it was ready: exit status 1 (log: ") {
		t.Fatalf("stderr %q", s)
	}
}

func netListen(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// holdLock takes a POSIX write lock on path, as Pebble does on its LOCK file, says
// "locked" and holds it until stdin closes.
func holdLock(path string) int {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// TestDevDataDirInUse: a data directory whose store another process holds open is named,
// with that process.
func TestDevDataDirInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "n2"), 0o755); err != nil {
		t.Fatal(err)
	}
	holder := exec.Command(os.Args[0])
	holder.Env = append(os.Environ(), "QKV_TEST_HOLD_LOCK="+filepath.Join(dir, "n2", "LOCK"))
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = holder.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	e, out, errb := testEnv("", nil)
	if code := e.run([]string{"dev", "--nodes", "3", "--base-port", "0", "--data", dir}); code != 1 {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	want := fmt.Sprintf("quorumkv: dev: data directory %s is in use by pid %d (", filepath.Join(dir, "n2"), holder.Process.Pid)
	if s := errb.String(); !strings.HasPrefix(s, want) || !strings.Contains(s, "another --data") {
		t.Fatalf("stderr %q, want it to start %q", s, want)
	}
}

// TestDevSmallClusterNote: fewer nodes than the default n: dev says to lower the buckets'
// n before the put it suggests.
func TestDevSmallClusterNote(t *testing.T) {
	d := &devCluster{e: &env{}, n: 1, children: []*devChild{{id: "n1", http: "127.0.0.1:1"}}}
	var b strings.Builder
	d.e.stdout = &b
	d.printReady()
	s := b.String()
	set := strings.Index(s, `quorumkv bucket demo --set '{"n":1}'`)
	if set < 0 || set > strings.Index(s, "quorumkv put demo hello world") || !strings.Contains(s, `quorumkv bucket redis --set '{"n":1}'`) {
		t.Fatalf("dev --nodes 1 output:\n%s", s)
	}
	b.Reset()
	d.n, d.children = 5, append(d.children, &devChild{id: "n2"}, &devChild{id: "n3"}, &devChild{id: "n4"}, &devChild{id: "n5"})
	d.printReady()
	if s := b.String(); strings.Contains(s, "--set") || strings.Contains(s, "--nodes 5") {
		t.Fatalf("dev --nodes 5 output:\n%s", s)
	}
}
