package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeCRDTAPI answers the CRDT endpoints like a node would, recording each request.
func fakeCRDTAPI(t *testing.T) (addr string, seen func() []string) {
	t.Helper()
	var mu sync.Mutex
	var reqs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, fmt.Sprintf("%s %s?%s body=%s", r.Method, r.URL.EscapedPath(), r.URL.RawQuery, body))
		mu.Unlock()
		reply := func(status int, v string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, v)
		}
		p := r.URL.Path
		switch {
		case r.Method == "GET" && p == "/v1/crdt/c/hits":
			reply(200, `{"value":-7,"context":""}`)
		case r.Method == "GET" && p == "/v1/crdt/s/tags":
			reply(200, `{"value":["a","b c","\u0001"],"context":"CTXS"}`)
		case r.Method == "GET" && p == "/v1/crdt/m/prof":
			reply(200, `{"value":{"n":3,"tags":["x"]},"context":"CTXM"}`)
		case r.Method == "GET" && strings.HasPrefix(p, "/v1/crdt/s/missing"):
			reply(404, `{"error":"not found","code":"not_found"}`)
		case r.Method == "POST" && strings.HasSuffix(p, "/slow"):
			reply(503, `{"error":"w not met","code":"quorum_failed","acks":1,"required":3}`)
		case r.Method == "POST" && p == "/v1/crdt/c/wrong":
			reply(400, `{"error":"wrong operation: add on a counter (want increment)","code":"bad_request"}`)
		case r.Method == "POST" && strings.HasPrefix(p, "/v1/crdt/"):
			w.WriteHeader(204)
		default:
			reply(404, `{"error":"no such endpoint","code":"not_found"}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), reqs...)
	}
}

func TestCRDTVerbs(t *testing.T) {
	addr, seen := fakeCRDTAPI(t)
	vars := map[string]string{addrEnv: addr}
	for _, tc := range []struct {
		name      string
		args      []string
		stdin     string
		code      int
		out, errs string   // exact stdout; substring of stderr
		reqs      []string // the requests made, in order (substrings)
	}{
		{"incr default", []string{"incr", "c", "hits"}, "", 0, "", "", []string{`POST /v1/crdt/c/hits? body={"increment":1}`}},
		{"incr n", []string{"incr", "c", "a/b", "5", "--w", "all"}, "", 0, "", "", []string{`POST /v1/crdt/c/a%2Fb?w=all body={"increment":5}`}},
		{"incr negative", []string{"incr", "c", "hits", "-5"}, "", 0, "", "", []string{`body={"increment":-5}`}},
		{"incr negative between flags", []string{"incr", "--w", "2", "c", "hits", "-12", "--timeout", "2s"}, "", 0, "", "", []string{`POST /v1/crdt/c/hits?timeout=2000&w=2 body={"increment":-12}`}},
		{"incr after --", []string{"incr", "c", "hits", "--", "-3"}, "", 0, "", "", []string{`body={"increment":-3}`}},
		{"incr quorum", []string{"incr", "c", "slow"}, "", 1, "", "quorumkv: quorum not reached: 1 of 3 acks (w=3)\n", nil},
		{"sadd", []string{"sadd", "s", "tags", "a", "b c", "--w", "1"}, "", 0, "", "", []string{`POST /v1/crdt/s/tags?w=1 body={"add":["a","b c"]}`}},
		{"sadd wrong type", []string{"sadd", "c", "wrong", "x"}, "", 1, "", "wrong operation: add on a counter (want increment) (bad_request, HTTP 400)", nil},
		{"srem reads first", []string{"srem", "s", "tags", "a", "--r", "all", "--w", "2"}, "", 0, "", "", []string{
			"GET /v1/crdt/s/tags?r=all body=", `POST /v1/crdt/s/tags?w=2 body={"remove":["a"],"context":"CTXS"}`}},
		{"srem with context", []string{"srem", "s", "tags", "a", "b", "--context", "C9"}, "", 0, "", "", []string{`POST /v1/crdt/s/tags? body={"remove":["a","b"],"context":"C9"}`}},
		{"srem missing", []string{"srem", "s", "missing", "a"}, "", 1, "", "quorumkv: not found\n", []string{"GET /v1/crdt/s/missing"}},
		{"srem on a counter", []string{"srem", "c", "hits", "a"}, "", 1, "", "c/hits is not a set", []string{"GET /v1/crdt/c/hits"}},
		{"crdt counter", []string{"crdt", "c", "hits", "--r", "all"}, "", 0, "-7\n", "", []string{"GET /v1/crdt/c/hits?r=all"}},
		{"crdt set", []string{"crdt", "s", "tags"}, "", 0, "a\nb c\n\"\\x01\"\n", "", nil},
		{"crdt map", []string{"crdt", "m", "prof"}, "", 0, "{\n  \"n\": 3,\n  \"tags\": [\n    \"x\"\n  ]\n}\n", "", nil},
		{"crdt json", []string{"crdt", "--json", "s", "tags"}, "", 0, `{"found":true,"value":["a","b c","\u0001"],"context":"CTXS"}` + "\n", "", nil},
		{"crdt missing", []string{"crdt", "s", "missing"}, "", 1, "", "quorumkv: not found\n", nil},
		{"crdt missing json", []string{"crdt", "s", "missing", "--json"}, "", 1, `{"found":false,"value":null,"context":""}` + "\n", "quorumkv: not found\n", nil},
		{"crdt-op", []string{"crdt-op", "m", "prof", `{"update":{"n":{"type":"counter","increment":1}}}`, "--dw", "1"}, "", 0, "", "", []string{
			`POST /v1/crdt/m/prof?dw=1 body={"update":{"n":{"type":"counter","increment":1}}}`}},
		{"crdt-op stdin", []string{"crdt-op", "s", "tags", "-"}, ` {"add":["z"]}` + "\n", 0, "", "", []string{`POST /v1/crdt/s/tags? body={"add":["z"]}`}},
		{"crdt-op quorum", []string{"crdt-op", "s", "slow", `{"add":["z"]}`, "--pw", "3"}, "", 1, "", "(pw=3)", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(seen())
			e, out, errb := testEnv(tc.stdin, vars)
			code := e.run(tc.args)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errb)
			}
			if out.String() != tc.out {
				t.Errorf("stdout:\n%q\nwant\n%q", out, tc.out)
			}
			if !strings.Contains(errb.String(), tc.errs) || (tc.errs == "" && errb.String() != "") {
				t.Errorf("stderr %q, want %q", errb, tc.errs)
			}
			if tc.reqs != nil {
				got := seen()[before:]
				if len(got) != len(tc.reqs) {
					t.Fatalf("requests %q, want %q", got, tc.reqs)
				}
				for i, want := range tc.reqs {
					if !strings.Contains(got[i], want) {
						t.Errorf("request %d: %q, want %q", i, got[i], want)
					}
				}
			}
		})
	}
}

func TestCRDTVerbsBadUsage(t *testing.T) {
	addr, seen := fakeCRDTAPI(t)
	vars := map[string]string{addrEnv: addr}
	for _, tc := range []struct {
		args []string
		errs string
	}{
		{[]string{"incr"}, "quorumkv incr: want BUCKET KEY [N], got 0 argument(s)"},
		{[]string{"incr", "c"}, "want BUCKET KEY [N], got 1"},
		{[]string{"incr", "c", "k", "1", "2"}, "want BUCKET KEY [N], got 4"},
		{[]string{"incr", "c", "k", "x"}, `N must be an integer, got "x"`},
		{[]string{"incr", "c", "k", "1.5"}, `N must be an integer, got "1.5"`},
		{[]string{"incr", "c", "k", "99999999999999999999"}, "N must be an integer"},
		{[]string{"incr", "c", "k", "--w"}, "flag needs an argument: -w"},
		{[]string{"incr", "c", "k", "--timeout", "soon"}, `invalid value "soon" for flag -timeout`},
		{[]string{"incr", "c", "k", "-x"}, "flag provided but not defined: -x"},
		{[]string{"incr", "c", "k", "--r", "2"}, "flag provided but not defined: -r"},
		{[]string{"sadd", "s", "k"}, "quorumkv sadd: want BUCKET KEY MEMBER..., got 2 argument(s)"},
		{[]string{"sadd", "s", "k", "m", "--context", "c"}, "flag provided but not defined: -context"},
		{[]string{"srem", "s", "k"}, "quorumkv srem: want BUCKET KEY MEMBER..., got 2 argument(s)"},
		{[]string{"srem", "s", "k", "m", "--context"}, "flag needs an argument: -context"},
		{[]string{"crdt", "s"}, "quorumkv crdt: want BUCKET KEY, got 1 argument(s)"},
		{[]string{"crdt", "s", "k", "extra"}, "want BUCKET KEY, got 3"},
		{[]string{"crdt", "s", "k", "--w", "1"}, "flag provided but not defined: -w"},
		{[]string{"crdt-op", "s", "k"}, "quorumkv crdt-op: want BUCKET KEY JSON (or - for stdin), got 2 argument(s)"},
		{[]string{"crdt-op", "s", "k", `{"add":`}, `the operation must be a JSON object, got "{\"add\":"`},
		{[]string{"crdt-op", "s", "k", `["a"]`}, "the operation must be a JSON object"},
		{[]string{"crdt-op", "s", "k", ""}, "the operation must be a JSON object"},
		{[]string{"crdt-op", "s", "k", "-"}, "the operation must be a JSON object"}, // empty stdin
	} {
		e, out, errb := testEnv("", vars)
		if code := e.run(tc.args); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errb.String(), tc.errs) || out.String() != "" {
			t.Errorf("%q: stderr %q (want %q), stdout %q", tc.args, errb, tc.errs, out)
		}
		if !strings.Contains(errb.String(), "Run 'quorumkv help "+tc.args[0]+"' for usage.") {
			t.Errorf("%q: stderr %q lacks the pointer to the help", tc.args, errb)
		}
	}
	if n := len(seen()); n != 0 {
		t.Fatalf("usage errors sent %d requests: %q", n, seen())
	}
}

func TestCRDTVerbsHelp(t *testing.T) {
	for _, name := range []string{"incr", "sadd", "srem", "crdt", "crdt-op"} {
		e, out, _ := testEnv("", nil)
		if code := e.run([]string{"help", name}); code != 0 {
			t.Fatalf("help %s: exit %d", name, code)
		}
		if !strings.Contains(out.String(), "Usage: quorumkv "+name+" BUCKET KEY") || !strings.Contains(out.String(), "-addr host:port") {
			t.Errorf("help %s: %q", name, out)
		}
	}
	e, out, _ := testEnv("", nil)
	e.run([]string{"help"})
	for _, name := range []string{"incr", "sadd", "srem", "crdt", "crdt-op"} {
		if !strings.Contains(out.String(), "  "+name+" ") {
			t.Errorf("top-level help lacks %s: %q", name, out)
		}
	}
}
