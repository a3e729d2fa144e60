package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"pgregory.net/rapid"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/testcluster"
)

// TestNoSequenceBreaksAKey drives random sequences of HTTP, Redis-protocol and CLI
// operations, over every bucket type (kv, counter, set, map, the Redis keys, and a bucket
// whose type changes under its data), against a real three-node in-process cluster, and
// checks that no request ever answers 500 (or a Redis error other than the expected
// WRONGTYPE and integer errors, or a CLI "internal" error), and that every key touched
// stays readable afterwards over every API that reads it.
//
// By default it runs 20 sequences from a fixed seed, so a run takes seconds and a failure
// replays. More: go test ./cmd/quorumkv -run TestNoSequenceBreaksAKey -rapid.checks=500
// -rapid.seed=0 (0: a random seed, printed on failure).
func TestNoSequenceBreaksAKey(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	setFlagDefault(t, "rapid.checks", "20")
	setFlagDefault(t, "rapid.seed", "71")
	w := startWorld(t)
	var iter atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		p := &propRun{w: w, t: rt, prefix: fmt.Sprintf("i%d-", iter.Add(1)), touched: map[[2]string]bool{}}
		p.flip = p.prefix + "flip"
		steps := rapid.IntRange(5, 30).Draw(rt, "steps")
		for range steps {
			p.step()
		}
		p.checkReadable()
	})
}

// setFlagDefault sets a flag unless the command line did.
func setFlagDefault(t *testing.T, name, value string) {
	t.Helper()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if set {
		return
	}
	old := flag.Lookup(name).Value.String()
	if err := flag.Set(name, value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flag.Set(name, old) })
}

// world is the cluster under test: nodes with HTTP and Redis front ends.
type world struct {
	nodes []*node.Node
	resp  []*redis.Client
	hc    *http.Client
}

func startWorld(t *testing.T) *world {
	t.Helper()
	w := &world{hc: &http.Client{Timeout: 20 * time.Second}}
	nodes := testcluster.Start(t, 3, func(cfg *node.Config) {
		cfg.RequestTimeout = 5 * time.Second
		cfg.HTTPHandler = api.Handler(nil, false, cfg.MaxValueBytes)
	})
	for _, n := range nodes {
		r := api.NewRESP(n, nil)
		if err := r.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() }) // before the node closes
		c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		w.nodes, w.resp = append(w.nodes, n), append(w.resp, c)
	}

	// The fixed-type buckets, set once and waited for on every node.
	deadline := time.Now().Add(15 * time.Second)
	for b, typ := range map[string]string{"pcnt": "counter", "pset": "set", "pmap": "map"} {
		w.setBucket(t, b, typ)
		for _, n := range w.nodes {
			for n.Bucket(b).Type != typ {
				if time.Now().After(deadline) {
					t.Fatalf("bucket %s is not a %s on %s", b, typ, n.ID())
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	return w
}

func (w *world) setBucket(t fataler, bucket, typ string) {
	t.Helper()
	st, body := w.http(t, 0, "PUT", "/v1/buckets/"+bucket, `{"type":"`+typ+`"}`, nil)
	if st != 200 {
		t.Fatalf("set bucket %s: %d %s", bucket, st, body)
	}
}

// http sends one request to node i and returns the status and body; a transport error
// fails the test.
func (w *world) http(t fataler, i int, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+w.nodes[i].HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fataler is what the helpers need of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// propRun is one random sequence.
type propRun struct {
	w       *world
	t       *rapid.T
	prefix  string // keys of this sequence start with it
	flip    string // this sequence's bucket whose type changes
	touched map[[2]string]bool
}

var propBuckets = []string{"pkv", "pcnt", "pset", "pmap", "redis", "flip"}

func (p *propRun) target() (bucket, key string) {
	bucket = rapid.SampledFrom(propBuckets).Draw(p.t, "bucket")
	if bucket == "flip" {
		bucket = p.flip
	}
	key = p.prefix + rapid.SampledFrom([]string{"a", "b", "c"}).Draw(p.t, "key")
	p.touched[[2]string{bucket, key}] = true
	return bucket, key
}

// ok500 fails on an answer that is a server fault.
func (p *propRun) wantNo500(what string, status int, body string) {
	if status >= 500 && status != http.StatusServiceUnavailable || strings.Contains(body, `"code":"internal"`) {
		p.t.Fatalf("%s answered %d: %s", what, status, body)
	}
	if status == http.StatusServiceUnavailable {
		// A healthy cluster meets every quorum; 503 here would hide a fault as well.
		p.t.Fatalf("%s answered 503 on a healthy cluster: %s", what, body)
	}
}

func (p *propRun) wantRedis(what string, err error) {
	if err == nil || err == redis.Nil {
		return
	}
	s := err.Error()
	if strings.HasPrefix(s, "WRONGTYPE") || strings.HasPrefix(s, "ERR value is not an integer") {
		return
	}
	p.t.Fatalf("%s: Redis error %q", what, s)
}

func (p *propRun) cli(args ...string) {
	n := p.w.nodes[rapid.IntRange(0, len(p.w.nodes)-1).Draw(p.t, "cli node")]
	e, out, errb := testEnv("", map[string]string{addrEnv: n.HTTPAddr()})
	code := e.run(args)
	if code == exitUsage || strings.Contains(errb.String(), "internal") || strings.Contains(errb.String(), "HTTP 5") {
		p.t.Fatalf("quorumkv %q: exit %d, stdout %q, stderr %q", args, code, out, errb)
	}
}

var members = []string{"x", "y", "-z"}

func (p *propRun) step() {
	t := p.t
	i := rapid.IntRange(0, len(p.w.nodes)-1).Draw(t, "node")
	rc := p.w.resp[i]
	ctx := context.Background()
	bucket, key := p.target()
	path := bucket + "/" + key
	switch op := rapid.SampledFrom([]string{
		"http put", "http get", "http delete", "crdt op", "crdt get", "crdt delete", "flip type", "flip props",
		"redis set", "redis get", "redis incr", "redis sadd", "redis srem", "redis smembers", "redis del", "redis exists",
		"cli get", "cli put", "cli delete", "cli incr", "cli sadd", "cli crdt",
	}).Draw(t, "op"); op {
	case "http put":
		v := rapid.SampledFrom([]string{"v", "12", "-5", `{"json":1}`, "\x01\x02binary"}).Draw(t, "value")
		st, body := p.w.http(t, i, "PUT", "/v1/kv/"+path, v, nil)
		p.wantNo500(op+" "+path, st, body)
	case "http get":
		accept := rapid.SampledFrom([]string{"", "application/json"}).Draw(t, "accept")
		st, body := p.w.http(t, i, "GET", "/v1/kv/"+path, "", map[string]string{"Accept": accept})
		p.wantNo500(op+" "+path, st, body)
	case "http delete":
		st, body := p.w.http(t, i, "DELETE", "/v1/kv/"+path, "", nil)
		p.wantNo500(op+" "+path, st, body)
	case "crdt op":
		o := rapid.SampledFrom([]string{`{"increment":3}`, `{"increment":-1}`, `{"add":["x","y"]}`, `{"remove":["x"]}`,
			`{"update":{"f":{"type":"counter","increment":1}}}`, `{"update":{"g":{"type":"set","add":["q"]}}}`, `{"assign":"r"}`, `{}`}).Draw(t, "crdt op")
		st, body := p.w.http(t, i, "POST", "/v1/crdt/"+path, o, nil)
		p.wantNo500(op+" "+o+" "+path, st, body)
	case "crdt get":
		st, body := p.w.http(t, i, "GET", "/v1/crdt/"+path, "", nil)
		p.wantNo500(op+" "+path, st, body)
	case "crdt delete":
		st, body := p.w.http(t, i, "DELETE", "/v1/crdt/"+path, "", nil)
		p.wantNo500(op+" "+path, st, body)
	case "flip props":
		props := rapid.SampledFrom([]string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"conflict":"lww"}`, `{"conflict":"siblings"}`, `{"r":1,"w":"all"}`}).Draw(t, "props")
		st, body := p.w.http(t, i, "PUT", "/v1/buckets/"+p.flip, props, nil)
		if st != 200 {
			t.Fatalf("set %s %s: %d %s", p.flip, props, st, body)
		}
	case "flip type":
		typ := rapid.SampledFrom([]string{"kv", "counter", "set", "map"}).Draw(t, "type")
		st, body := p.w.http(t, i, "PUT", "/v1/buckets/"+p.flip, `{"type":"`+typ+`"}`, nil)
		if st != 200 {
			t.Fatalf("set %s type %s: %d %s", p.flip, typ, st, body)
		}
	case "redis set":
		p.wantRedis(op, rc.Set(ctx, key, rapid.SampledFrom([]string{"s", "7", ""}).Draw(t, "value"), 0).Err())
	case "redis get":
		p.wantRedis(op, rc.Get(ctx, key).Err())
	case "redis incr":
		p.wantRedis(op, rc.IncrBy(ctx, key, int64(rapid.IntRange(-3, 3).Draw(t, "by"))).Err())
	case "redis sadd":
		p.wantRedis(op, rc.SAdd(ctx, key, rapid.SampledFrom(members).Draw(t, "member")).Err())
	case "redis srem":
		p.wantRedis(op, rc.SRem(ctx, key, rapid.SampledFrom(members).Draw(t, "member")).Err())
	case "redis smembers":
		p.wantRedis(op, rc.SMembers(ctx, key).Err())
	case "redis del":
		p.wantRedis(op, rc.Del(ctx, key).Err())
	case "redis exists":
		p.wantRedis(op, rc.Exists(ctx, key).Err())
	case "cli get":
		p.cli("get", bucket, key)
	case "cli put":
		p.cli("put", bucket, key, rapid.SampledFrom([]string{"v", "-5", "-x"}).Draw(t, "value"))
	case "cli delete":
		p.cli("delete", bucket, key)
	case "cli incr":
		p.cli("incr", bucket, key, rapid.SampledFrom([]string{"1", "-2"}).Draw(t, "by"))
	case "cli sadd":
		p.cli("sadd", bucket, key, rapid.SampledFrom(members).Draw(t, "member"))
	case "cli crdt":
		p.cli("crdt", bucket, key)
	}
}

// checkReadable reads every key the sequence touched, through every node: GET /v1/kv
// answers a value, siblings or 404; a CRDT bucket's key also reads over /v1/crdt (or is
// 409 wrong_type when it holds plain values, never 500); a Redis key answers GET and
// EXISTS.
func (p *propRun) checkReadable() {
	ctx := context.Background()
	for bk := range p.touched {
		bucket, key := bk[0], bk[1]
		for i := range p.w.nodes {
			st, body := p.w.http(p.t, i, "GET", "/v1/kv/"+bucket+"/"+key, "", nil)
			if st != 200 && st != 300 && st != 404 {
				p.t.Fatalf("%s/%s is not readable over /v1/kv via n%d: %d %s", bucket, key, i+1, st, body)
			}
			st, body = p.w.http(p.t, i, "GET", "/v1/crdt/"+bucket+"/"+key, "", nil)
			p.wantNo500("GET /v1/crdt/"+bucket+"/"+key, st, body)
			if bucket == "redis" {
				p.wantRedis("GET "+key, p.w.resp[i].Get(ctx, key).Err())
				p.wantRedis("EXISTS "+key, p.w.resp[i].Exists(ctx, key).Err())
			}
		}
	}
}

// TestCLIOnACluster runs the client verbs against a real cluster where the server's
// answer matters: CRDT and Redis values print readably, wrong-type writes and impossible
// bucket properties fail with the server's reason, deletes agree with the HTTP API.
func TestCLIOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	w := startWorld(t)
	ctx := context.Background()
	if err := w.resp[0].IncrBy(ctx, "cli-visits", 5).Err(); err != nil {
		t.Fatal(err)
	}
	if err := w.resp[0].Set(ctx, "cli-greeting", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		e, out, errb := testEnv("", map[string]string{addrEnv: w.nodes[1].HTTPAddr()})
		code := e.run(args)
		return code, out.String(), errb.String()
	}
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"sadd", "pset", "cli-s", "b", "-a"}, 0, "", ""},
		{[]string{"get", "pset", "cli-s"}, 0, `["-a","b"]`, ""},
		{[]string{"get", "redis", "cli-visits"}, 0, "5", ""},
		{[]string{"get", "redis", "cli-greeting"}, 0, "hello", ""},
		{[]string{"crdt", "redis", "cli-greeting"}, 0, "hello\n", ""},
		{[]string{"put", "pset", "cli-s", "x"}, 1, "", `bucket "pset" holds sets (type set): write them with the CRDT API`},
		{[]string{"put", "redis", "cli-greeting", "x"}, 1, "", "(wrong_type, HTTP 409)"},
		{[]string{"get", "redis", "cli-greeting"}, 0, "hello", ""},
		{[]string{"bucket", "big", "--set", `{"n":4}`}, 1, "", "n=4 but the cluster has 3 node(s)"},
		{[]string{"delete", "pkv", "never"}, 0, "not found: nothing to delete\n", ""},
		{[]string{"put", "pkv", "neg", "-5"}, 0, "context: ", ""},
		{[]string{"get", "pkv", "neg"}, 0, "-5", ""},
		{[]string{"delete", "pset", "cli-s"}, 0, "context: ", ""},
		{[]string{"crdt", "pset", "cli-s"}, 1, "", "quorumkv: not found"},
		{[]string{"delete", "redis", "cli-visits"}, 0, "context: ", ""},
		{[]string{"get", "redis", "cli-visits"}, 1, "", "quorumkv: not found"},
	} {
		code, out, errs := cli(tc.args...)
		if code != tc.code || !strings.HasPrefix(out, tc.out) || !strings.Contains(errs, tc.errs) {
			t.Errorf("quorumkv %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out, errs, tc.code, tc.out, tc.errs)
		}
	}
}
