package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/node"
)

// The tests in this file check the CRDT endpoints (POST/GET /v1/crdt/{bucket}/{key}) of
// docs/http-api.md on real three-node clusters (N=3: every node is a primary of every key).

// crdtRead is the GET /v1/crdt answer.
type crdtRead struct {
	Value   json.RawMessage `json:"value"`
	Context string          `json:"context"`
	Type    string          `json:"type"` // the key's data type (the bucket's, or a Redis key's own)
}

// crdtPost POSTs op to bucket/key through n and returns the status and body.
func crdtPost(t *testing.T, n *node.Node, bucket, key, query, op string) (int, string) {
	t.Helper()
	resp, body := do(t, "POST", addr(n, "/v1/crdt/"+bucket+"/"+key+query), op, map[string]string{"Content-Type": "application/json"})
	return resp.StatusCode, body
}

// crdtApply POSTs op and requires 204.
func crdtApply(t *testing.T, n *node.Node, bucket, key, query, op string) {
	t.Helper()
	if st, body := crdtPost(t, n, bucket, key, query, op); st != 204 {
		t.Fatalf("POST %s to %s/%s%s via %s: %d %s", op, bucket, key, query, n.ID(), st, body)
	}
}

// crdtGet reads bucket/key through n and requires 200.
func crdtGet(t *testing.T, n *node.Node, bucket, key, query string) crdtRead {
	t.Helper()
	resp, body := do(t, "GET", addr(n, "/v1/crdt/"+bucket+"/"+key+query), "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s/%s%s via %s: %d %s", bucket, key, query, n.ID(), resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s/%s: content type %q", bucket, key, ct)
	}
	var r crdtRead
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil || r.Value == nil || r.Type == "" {
		t.Fatalf("GET %s/%s via %s: %v: %q", bucket, key, n.ID(), err, body)
	}
	return r
}

func crdtInt(t *testing.T, r crdtRead) int64 {
	t.Helper()
	var v int64
	if err := json.Unmarshal(r.Value, &v); err != nil {
		t.Fatalf("counter value %s: %v", r.Value, err)
	}
	return v
}

func crdtStrings(t *testing.T, r crdtRead) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal(r.Value, &v); err != nil || v == nil {
		t.Fatalf("set value %s: %v", r.Value, err)
	}
	return v
}

// wantJSON checks that got and want are the same JSON value.
func wantJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v: %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: %s, want %s", what, got, want)
	}
}

// localState merges n's own copy of bucket/key (no other node asked).
func localState(t *testing.T, n *node.Node, bucket, key string) (crdt.State, bool) {
	t.Helper()
	st, lc := local(t, n, bucket, key)
	if st == 404 {
		return crdt.State{}, false
	}
	var s crdt.State
	for i, v := range lc.Values {
		d, err := crdt.Decode(v)
		if err != nil {
			t.Fatalf("local %s/%s on %s: sibling %d: %v", bucket, key, n.ID(), i, err)
		}
		if i == 0 {
			s = d
		} else if s, err = crdt.Merge(s, d); err != nil {
			t.Fatal(err)
		}
	}
	return s, len(lc.Values) > 0
}

func TestCRDTCounter(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	setBucket(t, nodes, "hits", `{"type":"counter"}`)

	var want int64
	for round := 0; round < 3; round++ {
		for i, n := range nodes {
			inc := int64(i + 1)
			crdtApply(t, n, "hits", "c", "", fmt.Sprintf(`{"increment":%d}`, inc))
			want += inc
		}
	}
	crdtApply(t, nodes[1], "hits", "c", "?w=all", `{"increment":-25}`)
	want -= 25
	crdtApply(t, nodes[2], "hits", "c", "?w=1&timeout=1000", `{"increment":0}`)
	for _, n := range nodes {
		r := crdtGet(t, n, "hits", "c", "?r=all")
		if got := crdtInt(t, r); got != want {
			t.Fatalf("counter via %s: %d, want %d", n.ID(), got, want)
		}
		if r.Context != "" {
			t.Fatalf("a counter's context: %q, want \"\"", r.Context)
		}
	}
	if want != -7 {
		t.Fatalf("test arithmetic: %d", want)
	}

	// Below zero and back, and the extremes of int64 on another key.
	crdtApply(t, nodes[0], "hits", "big", "", `{"increment":9223372036854775807}`)
	crdtApply(t, nodes[1], "hits", "big", "", `{"increment":-9223372036854775808}`)
	if got := crdtInt(t, crdtGet(t, nodes[2], "hits", "big", "")); got != -1 {
		t.Fatalf("MaxInt64 + MinInt64 = %d, want -1", got)
	}
	if st, body := crdtPost(t, nodes[0], "hits", "big", "", `{"increment":9223372036854775808}`); st != 400 {
		t.Fatalf("increment beyond int64: %d %s", st, body)
	}
}

func TestCRDTSetAddWins(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	setBucket(t, nodes, "tags", `{"type":"set"}`)

	crdtApply(t, n1, "tags", "s", "?w=all", `{"add":["a","b","c"]}`)
	r := crdtGet(t, n2, "tags", "s", "")
	if got := crdtStrings(t, r); !slices.Equal(got, []string{"a", "b", "c"}) || r.Context == "" {
		t.Fatalf("after add: %v %q", got, r.Context)
	}
	seen := r.Context
	// An add of "a" the read did not see (a new dot), then a remove of a, b based on the
	// read: b goes, a stays (add wins).
	crdtApply(t, n3, "tags", "s", "?w=all", `{"add":["a","d"]}`)
	crdtApply(t, n2, "tags", "s", "?w=all", fmt.Sprintf(`{"remove":["a","b"],"context":%q}`, seen))
	for _, n := range nodes {
		if got := crdtStrings(t, crdtGet(t, n, "tags", "s", "?r=all")); !slices.Equal(got, []string{"a", "c", "d"}) {
			t.Fatalf("via %s after add-wins remove: %v, want [a c d]", n.ID(), got)
		}
	}
	// A remove based on a read that saw the latest add removes it.
	r = crdtGet(t, n1, "tags", "s", "?r=all")
	crdtApply(t, n1, "tags", "s", "", fmt.Sprintf(`{"remove":["a"],"context":%q}`, r.Context))
	// Without a context: what the coordinator has observed.
	crdtApply(t, n3, "tags", "s", "?w=all", `{"remove":["c"]}`)
	// Removing an absent element changes nothing; add and remove in one op.
	crdtApply(t, n2, "tags", "s", "?w=all", fmt.Sprintf(`{"add":["e"],"remove":["zzz"],"context":%q}`, r.Context))
	for _, n := range nodes {
		if got := crdtStrings(t, crdtGet(t, n, "tags", "s", "?r=all")); !slices.Equal(got, []string{"d", "e"}) {
			t.Fatalf("via %s: %v, want [d e]", n.ID(), got)
		}
	}
	// Removing every element leaves an empty set, which is still found.
	r = crdtGet(t, n1, "tags", "s", "")
	crdtApply(t, n1, "tags", "s", "?w=all", fmt.Sprintf(`{"remove":["d","e"],"context":%q}`, r.Context))
	if r := crdtGet(t, n2, "tags", "s", ""); string(r.Value) != "[]" {
		t.Fatalf("emptied set: %s, want []", r.Value)
	}

	// Truly concurrent: n3 is cut off and adds "x" (already present, a new dot) while n1
	// removes "x" based on a read that cannot have seen n3's add. After healing, x stays.
	crdtApply(t, n1, "tags", "cc", "?w=all", `{"add":["x","y"]}`)
	isolate(t, nodes, n3)
	r = crdtGet(t, n1, "tags", "cc", "?r=2")
	crdtApply(t, n3, "tags", "cc", "?w=1", `{"add":["x"]}`)
	crdtApply(t, n1, "tags", "cc", "?w=2", fmt.Sprintf(`{"remove":["x","y"],"context":%q}`, r.Context))
	if got := crdtStrings(t, crdtGet(t, n2, "tags", "cc", "?r=2")); len(got) != 0 {
		t.Fatalf("majority side after remove: %v, want []", got)
	}
	heal(t, nodes)
	for _, n := range nodes {
		if got := crdtStrings(t, crdtRetry(t, n, "tags", "cc", "?r=all")); !slices.Equal(got, []string{"x"}) {
			t.Fatalf("via %s after heal: %v, want [x] (add wins)", n.ID(), got)
		}
	}
}

// crdtRetry reads with a quorum that may need a just-healed node: it retries for a bounded
// time while the failure detector catches up.
func crdtRetry(t *testing.T, n *node.Node, bucket, key, query string) crdtRead {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := do(t, "GET", addr(n, "/v1/crdt/"+bucket+"/"+key+query), "", nil)
		if resp.StatusCode == 200 {
			var r crdtRead
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		if resp.StatusCode != 503 || time.Now().After(deadline) {
			t.Fatalf("GET %s/%s%s via %s: %d %s", bucket, key, query, n.ID(), resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCRDTMap(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	setBucket(t, nodes, "prof", `{"type":"map"}`)

	crdtApply(t, n1, "prof", "m", "?w=all", `{"update":{"visits":{"type":"counter","increment":2},"tags":{"type":"set","add":["a","b"]}}}`)
	crdtApply(t, n2, "prof", "m", "?w=all", `{"update":{"visits":{"type":"counter","increment":3}}}`)
	crdtApply(t, n3, "prof", "m", "?w=all", `{"update":{"inner":{"type":"map","update":{"n":{"type":"counter","increment":-1}}}}}`)
	r := crdtGet(t, n1, "prof", "m", "?r=all")
	wantJSON(t, "map", r.Value, `{"visits":5,"tags":["a","b"],"inner":{"n":-1}}`)
	if r.Context == "" {
		t.Fatal("a map read without a context")
	}

	// Remove a field and a set element with the read's context; update another field in
	// the same op.
	crdtApply(t, n2, "prof", "m", "?w=all", fmt.Sprintf(
		`{"remove":["visits"],"update":{"tags":{"type":"set","remove":["a"]},"inner":{"type":"map","update":{"n":{"type":"counter","increment":1}}}},"context":%q}`, r.Context))
	for _, n := range nodes {
		wantJSON(t, "map via "+n.ID(), crdtGet(t, n, "prof", "m", "?r=all").Value, `{"tags":["b"],"inner":{"n":0}}`)
	}
	// A removed field comes back fresh when updated again.
	crdtApply(t, n3, "prof", "m", "?w=all", `{"update":{"visits":{"type":"counter","increment":1}}}`)
	wantJSON(t, "map", crdtGet(t, n1, "prof", "m", "?r=all").Value, `{"tags":["b"],"inner":{"n":0},"visits":1}`)

	// An update of a field with another type than it has is refused and changes nothing.
	before := crdtGet(t, n1, "prof", "m", "?r=all")
	if st, body := crdtPost(t, n2, "prof", "m", "?w=all", `{"update":{"visits":{"type":"set","add":["x"]}}}`); st != 400 {
		t.Fatalf("update of a counter field as a set: %d %s", st, body)
	}
	// A field op its type does not take, an unknown field type, and a nested op on a
	// counter field that carries set kinds.
	for _, op := range []string{
		`{"update":{"visits":{"type":"counter","add":["x"]}}}`,
		`{"update":{"visits":{"type":"hyperloglog","increment":1}}}`,
		`{"update":{"visits":{"increment":1}}}`,
		`{"update":{"tags":{"type":"set","add":["x"],"remove":["x"]}}}`,
		`{"update":{"visits":{"type":"counter","increment":1}},"remove":["visits"]}`,
		`{"increment":1}`,
		`{"add":["x"]}`,
	} {
		if st, body := crdtPost(t, n1, "prof", "m", "", op); st != 400 || decodeError(t, body).Code != "bad_request" {
			t.Fatalf("map op %s: %d %s, want 400 bad_request", op, st, body)
		}
	}
	after := crdtGet(t, n3, "prof", "m", "?r=all")
	wantJSON(t, "map after refused ops", after.Value, string(before.Value))
	if after.Context != before.Context {
		t.Fatalf("refused ops changed the context: %q → %q", before.Context, after.Context)
	}

	// Register and flag fields.
	crdtApply(t, n1, "prof", "m", "?w=all", `{"update":{"name":{"type":"register","assign":"ann"},"on":{"type":"flag","enable":true}}}`)
	crdtApply(t, n2, "prof", "m", "?w=all", `{"update":{"name":{"type":"register","assign":"bob"}}}`)
	wantJSON(t, "map with a register and a flag", crdtGet(t, n3, "prof", "m", "?r=all").Value,
		`{"tags":["b"],"inner":{"n":0},"visits":1,"name":"bob","on":true}`)
	r = crdtGet(t, n3, "prof", "m", "?r=all")
	crdtApply(t, n3, "prof", "m", "?w=all", fmt.Sprintf(`{"update":{"on":{"type":"flag","enable":false}},"remove":["tags","inner"],"context":%q}`, r.Context))
	wantJSON(t, "map after disable and removes", crdtGet(t, n1, "prof", "m", "?r=all").Value, `{"visits":1,"name":"bob","on":false}`)
}

func TestCRDTBadRequests(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]
	setBucket(t, nodes, "cnt", `{"type":"counter"}`)
	setBucket(t, nodes, "set", `{"type":"set"}`)

	crdtApply(t, n1, "cnt", "k", "?w=all", `{"increment":5}`)
	crdtApply(t, n1, "set", "k", "?w=all", `{"add":["a"]}`)
	snapshot := func() map[string][]node.LocalSibling {
		out := map[string][]node.LocalSibling{}
		for _, n := range nodes {
			for _, b := range []string{"cnt", "set"} {
				_, lc := local(t, n, b, "k")
				out[n.ID()+"/"+b] = lc.Siblings
			}
		}
		return out
	}
	before := snapshot()

	bad := []struct{ bucket, query, body, why string }{
		// Wrong operation for the bucket's type.
		{"cnt", "", `{"add":["x"]}`, "add on a counter"},
		{"cnt", "", `{"remove":["x"]}`, "remove on a counter"},
		{"cnt", "", `{"update":{"f":{"type":"counter","increment":1}}}`, "update on a counter"},
		{"cnt", "", `{"assign":"v"}`, "assign on a counter"},
		{"set", "", `{"increment":1}`, "increment on a set"},
		{"set", "", `{"enable":true}`, "enable on a set"},
		{"set", "", `{"add":["x"],"increment":1}`, "two types' ops"},
		// Malformed.
		{"cnt", "", ``, "empty body"},
		{"cnt", "", `{}`, "empty op"},
		{"cnt", "", `{"increment":"1"}`, "string increment"},
		{"cnt", "", `{"increment":1.5}`, "fractional increment"},
		{"cnt", "", `{"increment":1`, "truncated JSON"},
		{"cnt", "", `{"increment":1}{"increment":1}`, "two ops"},
		{"cnt", "", `{"increment":1} x`, "trailing garbage"},
		{"cnt", "", `{"incr":1}`, "unknown field"},
		{"cnt", "", `{"increment":1,"extra":true}`, "unknown field beside a good one"},
		{"cnt", "", `[{"increment":1}]`, "array"},
		{"cnt", "", `null`, "null"},
		{"cnt", "", "\xff\xfe", "binary"},
		{"set", "", `{"add":"x"}`, "add of a string, not a list"},
		{"set", "", `{"add":["x"],"remove":["x"]}`, "add and remove of one element"},
		{"set", "", `{"remove":["a"],"context":"!!not base64!!"}`, "bad context"},
		{"set", "", `{"add":["x"],"type":"set"}`, "type at the top"},
		// Bad parameters.
		{"cnt", "?r=2", `{"increment":1}`, "read parameter on a write"},
		{"cnt", "?w=7", `{"increment":1}`, "w above n"},
		{"cnt", "?w=most", `{"increment":1}`, "bad w"},
		{"cnt", "?timeout=-1", `{"increment":1}`, "bad timeout"},
	}
	for _, tc := range bad {
		st, body := crdtPost(t, n2, tc.bucket, "k", tc.query, tc.body)
		if st != 400 || decodeError(t, body).Code != "bad_request" {
			t.Fatalf("%s (%s %s): %d %s, want 400 bad_request", tc.why, tc.bucket, tc.body, st, body)
		}
	}
	if after := snapshot(); !reflect.DeepEqual(after, before) {
		t.Fatalf("refused operations changed the replicas:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := crdtInt(t, crdtGet(t, n1, "cnt", "k", "?r=all")); got != 5 {
		t.Fatalf("counter after refused ops: %d, want 5", got)
	}
	if got := crdtStrings(t, crdtGet(t, n1, "set", "k", "?r=all")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("set after refused ops: %v", got)
	}
	// Refused operations on a key that does not exist create nothing.
	if st, _ := crdtPost(t, n1, "cnt", "fresh", "", `{"add":["x"]}`); st != 400 {
		t.Fatalf("add on a fresh counter key: %d", st)
	}
	wantAbsent(t, nodes, "cnt", "fresh")

	// Bad read parameters.
	for _, q := range []string{"?w=1", "?r=0", "?r=x", "?timeout=abc", "?r=1&r=2"} {
		resp, body := do(t, "GET", addr(n1, "/v1/crdt/cnt/k"+q), "", nil)
		wantError(t, "GET"+q, 400, "bad_request", resp.StatusCode, body)
	}

	// A kv bucket (the default type) refuses CRDT operations and reads, and is unchanged.
	put(t, n1, "plain", "k", "?w=all", "v", "")
	st, body := crdtPost(t, n1, "plain", "k", "", `{"increment":1}`)
	if e := wantError(t, "POST to a kv bucket", 400, "bad_request", st, body); !strings.Contains(e.Error, "kv") {
		t.Fatalf("kv bucket error: %q", e.Error)
	}
	resp, body := do(t, "GET", addr(n1, "/v1/crdt/plain/k"), "", nil)
	wantError(t, "GET from a kv bucket", 400, "bad_request", resp.StatusCode, body)
	crdtPost(t, n2, "plain", "new", "", `{"add":["x"]}`)
	wantAbsent(t, nodes, "plain", "new")
	getOne(t, n2, "plain", "k", "?r=all", "v")

	// Missing keys: 404 not_found, for each type.
	for _, b := range []string{"cnt", "set"} {
		resp, body := do(t, "GET", addr(n2, "/v1/crdt/"+b+"/missing"), "", nil)
		wantError(t, "GET missing "+b, 404, "not_found", resp.StatusCode, body)
	}

	// A key written as a counter, read after its bucket became a set: wrong type (409),
	// and a set op does not clobber it.
	setBucket(t, nodes, "cnt", `{"type":"set"}`)
	resp, body = do(t, "GET", addr(n1, "/v1/crdt/cnt/k"), "", nil)
	wantError(t, "GET a counter key in a set bucket", 409, "wrong_type", resp.StatusCode, body)
	st, body = crdtPost(t, n1, "cnt", "k", "", `{"add":["x"]}`)
	wantError(t, "add to a counter key in a set bucket", 409, "wrong_type", st, body)
	setBucket(t, nodes, "cnt", `{"type":"counter"}`)
	if got := crdtInt(t, crdtGet(t, n2, "cnt", "k", "?r=all")); got != 5 {
		t.Fatalf("counter after the type round trip: %d, want 5", got)
	}
}

// TestCRDTConcurrentIncrementsPartitioned: every node increments one counter
// concurrently at W=1 while n3 is cut off from the others; after healing, a read with
// R=all through each node sees the exact sum: no increment is lost, none counted twice.
func TestCRDTConcurrentIncrementsPartitioned(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	setBucket(t, nodes, "hits", `{"type":"counter"}`)
	isolate(t, nodes, nodes[2])

	const perWorker = 25
	var wg sync.WaitGroup
	var sum, failed atomic.Int64
	errs := make(chan string, 1)
	for w := 0; w < 6; w++ {
		n := nodes[w%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				inc := int64(w*perWorker+i) - 60 // some negative
				st, body, err := doQuiet("POST", addr(n, "/v1/crdt/hits/c?w=1"), fmt.Sprintf(`{"increment":%d}`, inc))
				if err != nil || st != 204 {
					failed.Add(1)
					select {
					case errs <- fmt.Sprintf("via %s: %d %s %v", n.ID(), st, body, err):
					default:
					}
					continue
				}
				sum.Add(inc)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d W=1 increments failed, e.g. %s", failed.Load(), <-errs)
	}
	// The two sides differ while partitioned.
	side := crdtInt(t, crdtGet(t, nodes[0], "hits", "c", "?r=2"))
	alone := crdtInt(t, crdtGet(t, nodes[2], "hits", "c", "?r=1"))
	if side == sum.Load() || alone == sum.Load() {
		t.Fatalf("partitioned sides already see the sum %d: %d, %d", sum.Load(), side, alone)
	}
	heal(t, nodes)
	for _, n := range nodes {
		if got := crdtInt(t, crdtRetry(t, n, "hits", "c", "?r=all")); got != sum.Load() {
			t.Fatalf("R=all via %s after heal: %d, want %d", n.ID(), got, sum.Load())
		}
	}
	// The R=all reads repaired every replica.
	for _, n := range nodes {
		s, ok := localState(t, n, "hits", "c")
		if !ok || s.Value().(int64) != sum.Load() {
			t.Fatalf("%s's own copy after R=all reads: %v (found %v), want %d", n.ID(), s.Value(), ok, sum.Load())
		}
	}
}

// TestCRDTCounterPartitionDuringIncrements: increments at W=1 through n1 and n3 go on
// while n3 is partitioned away and healed; a read with R=all then repairs n3, whose own
// copy holds the exact value.
func TestCRDTCounterPartitionDuringIncrements(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	setBucket(t, nodes, "hits", `{"type":"counter"}`)

	var want int64
	for i := 0; i < 60; i++ {
		switch i {
		case 20:
			isolate(t, nodes, n3)
		case 40:
			heal(t, nodes)
		}
		via := n1
		if i%2 == 1 {
			via = n3
		}
		inc := int64(i%7) - 2
		crdtApply(t, via, "hits", "c", "?w=1", fmt.Sprintf(`{"increment":%d}`, inc))
		want += inc
	}
	if got := crdtInt(t, crdtRetry(t, n2, "hits", "c", "?r=all")); got != want {
		t.Fatalf("R=all via n2: %d, want %d", got, want)
	}
	for _, n := range nodes {
		s, ok := localState(t, n, "hits", "c")
		if !ok || s.Value().(int64) != want {
			t.Fatalf("%s's own copy after an R=all read: %v (found %v), want %d", n.ID(), s.Value(), ok, want)
		}
		if got := crdtInt(t, crdtGet(t, n, "hits", "c", "?r=1")); got != want {
			t.Fatalf("R=1 via %s: %d, want %d", n.ID(), got, want)
		}
	}
}

// doQuiet is do for goroutines: it reports errors instead of failing the test.
func doQuiet(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}
