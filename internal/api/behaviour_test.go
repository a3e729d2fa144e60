package api_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
)

// The tests in this file run a real three-node cluster each (N=3: every node is a primary
// of every key) and check the HTTP contract of docs/http-api.md end to end. Each test owns
// its cluster, so they run in parallel.

func addr(n *node.Node, path string) string { return "http://" + n.HTTPAddr() + path }

// apiError is the JSON error body.
type apiError struct {
	Error    string `json:"error"`
	Code     string `json:"code"`
	Acks     *int   `json:"acks"`
	Required *int   `json:"required"`
}

func decodeError(t *testing.T, body string) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %q", err, body)
	}
	if e.Error == "" || e.Code == "" {
		t.Fatalf("error body lacks error or code: %q", body)
	}
	return e
}

// wantError checks status and JSON error code.
func wantError(t *testing.T, what string, status int, code string, gotStatus int, body string) apiError {
	t.Helper()
	if gotStatus != status {
		t.Fatalf("%s: status %d, want %d; body %q", what, gotStatus, status, body)
	}
	e := decodeError(t, body)
	if e.Code != code {
		t.Fatalf("%s: code %q, want %q; body %q", what, e.Code, code, body)
	}
	return e
}

// setFaults replaces n's fault-injection state.
func setFaults(t *testing.T, n *node.Node, drop []string, skewMs int64) {
	t.Helper()
	if drop == nil {
		drop = []string{}
	}
	b, _ := json.Marshal(node.Faults{Drop: drop, ClockSkewMs: skewMs})
	resp, body := do(t, "POST", addr(n, "/v1/debug/faults"), string(b), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("faults on %s: %d %s", n.ID(), resp.StatusCode, body)
	}
	var got node.Faults
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(drop))
	if !slices.Equal(got.Drop, want) || got.ClockSkewMs != skewMs {
		t.Fatalf("faults on %s: in force %+v, want drop %v skew %d", n.ID(), got, want, skewMs)
	}
}

// isolate cuts off the internode links between victim and every other node, both ways.
func isolate(t *testing.T, nodes []*node.Node, victim *node.Node) {
	t.Helper()
	var others []string
	for _, n := range nodes {
		if n != victim {
			others = append(others, n.ID())
			setFaults(t, n, []string{victim.ID()}, 0)
		}
	}
	setFaults(t, victim, others, 0)
}

// heal clears every node's faults.
func heal(t *testing.T, nodes []*node.Node) {
	t.Helper()
	for _, n := range nodes {
		setFaults(t, n, nil, 0)
	}
}

// local is n's own copy of bucket/key (GET /v1/admin/local).
func local(t *testing.T, n *node.Node, bucket, key string) (int, node.LocalCopy) {
	t.Helper()
	resp, body := do(t, "GET", addr(n, "/v1/admin/local/"+bucket+"/"+key), "", nil)
	var lc node.LocalCopy
	if err := json.Unmarshal([]byte(body), &lc); err != nil {
		t.Fatalf("local %s/%s on %s: %v: %q", bucket, key, n.ID(), err, body)
	}
	if (resp.StatusCode == 200) != lc.Found || (resp.StatusCode != 200 && resp.StatusCode != 404) {
		t.Fatalf("local %s/%s on %s: status %d with found=%v", bucket, key, n.ID(), resp.StatusCode, lc.Found)
	}
	return resp.StatusCode, lc
}

// wantAbsent checks that no node stores bucket/key.
func wantAbsent(t *testing.T, nodes []*node.Node, bucket, key string) {
	t.Helper()
	for _, n := range nodes {
		if st, lc := local(t, n, bucket, key); st != 404 || lc.Found {
			t.Fatalf("%s/%s exists on %s: %+v", bucket, key, n.ID(), lc)
		}
	}
}

// metric reads the value of an unlabelled metric from n's /metrics.
func metric(t *testing.T, n *node.Node, name string) float64 {
	t.Helper()
	resp, body := do(t, "GET", addr(n, "/metrics"), "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("metric %s not in /metrics of %s", name, n.ID())
	return 0
}

// hlc parses a LocalSibling timestamp "wall.logical".
type hlc struct {
	wall    int64
	logical uint64
}

func (h hlc) less(o hlc) bool {
	return h.wall < o.wall || (h.wall == o.wall && h.logical < o.logical)
}

func parseHLC(t *testing.T, s string) hlc {
	t.Helper()
	w, l, ok := strings.Cut(s, ".")
	if !ok {
		t.Fatalf("timestamp %q is not wall.logical", s)
	}
	wall, err1 := strconv.ParseInt(w, 10, 64)
	logical, err2 := strconv.ParseUint(l, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("timestamp %q is not wall.logical", s)
	}
	return hlc{wall, logical}
}

// siblingsBody is the 300 answer.
type siblingsBody struct {
	Siblings []struct {
		Value string `json:"value"`
	} `json:"siblings"`
	Context string `json:"context"`
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func put(t *testing.T, n *node.Node, bucket, key, query, value, ctx string) string {
	t.Helper()
	var hdr map[string]string
	if ctx != "" {
		hdr = map[string]string{api.ContextHeader: ctx}
	}
	resp, body := do(t, "PUT", addr(n, "/v1/kv/"+bucket+"/"+key+query), value, hdr)
	if resp.StatusCode != 204 {
		t.Fatalf("put %s/%s%s via %s: %d %s", bucket, key, query, n.ID(), resp.StatusCode, body)
	}
	c := resp.Header.Get(api.ContextHeader)
	if c == "" {
		t.Fatalf("put %s/%s via %s: no context", bucket, key, n.ID())
	}
	return c
}

// getOne reads a key that must hold exactly want, returning its context.
func getOne(t *testing.T, n *node.Node, bucket, key, query, want string) string {
	t.Helper()
	resp, body := do(t, "GET", addr(n, "/v1/kv/"+bucket+"/"+key+query), "", nil)
	if resp.StatusCode != 200 || body != want {
		t.Fatalf("get %s/%s%s via %s: %d %q, want 200 %q", bucket, key, query, n.ID(), resp.StatusCode, body, want)
	}
	c := resp.Header.Get(api.ContextHeader)
	if c == "" {
		t.Fatalf("get %s/%s via %s: no context", bucket, key, n.ID())
	}
	return c
}

func setBucket(t *testing.T, nodes []*node.Node, bucket, props string) node.BucketProps {
	t.Helper()
	resp, body := do(t, "PUT", addr(nodes[0], "/v1/buckets/"+bucket), props, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("set bucket %s: %d %s", bucket, resp.StatusCode, body)
	}
	var want node.BucketProps
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	// The properties travel by gossip: wait until every node reports them.
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for {
			resp, body := do(t, "GET", addr(n, "/v1/buckets/"+bucket), "", nil)
			var got node.BucketProps
			if resp.StatusCode == 200 && json.Unmarshal([]byte(body), &got) == nil && got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bucket %s on %s: %d %s, want %+v", bucket, n.ID(), resp.StatusCode, body, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return want
}

func TestSiblings(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2 := nodes[0], nodes[1]

	put(t, n1, "b", "sib", "", "one", "")
	put(t, n2, "b", "sib", "", "two", "")

	for _, n := range nodes {
		resp, body := do(t, "GET", addr(n, "/v1/kv/b/sib"), "", nil)
		if resp.StatusCode != 300 {
			t.Fatalf("get via %s: %d %q, want 300", n.ID(), resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("300 content type %q", ct)
		}
		var sb siblingsBody
		if err := json.Unmarshal([]byte(body), &sb); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range sb.Siblings {
			got = append(got, s.Value)
		}
		slices.Sort(got)
		if want := []string{b64("one"), b64("two")}; !slices.Equal(got, want) {
			t.Fatalf("siblings via %s: %v, want %v", n.ID(), got, want)
		}
		if sb.Context == "" {
			t.Fatalf("300 without context: %q", body)
		}

		// The JSON form: always 200 with every value.
		resp, body = do(t, "GET", addr(n, "/v1/kv/b/sib"), "", map[string]string{"Accept": "application/json"})
		var jb struct {
			Values  []string `json:"values"`
			Context string   `json:"context"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &jb) != nil {
			t.Fatalf("json get via %s: %d %q", n.ID(), resp.StatusCode, body)
		}
		slices.Sort(jb.Values)
		if want := []string{b64("one"), b64("two")}; !slices.Equal(jb.Values, want) || jb.Context == "" {
			t.Fatalf("json get via %s: %q", n.ID(), body)
		}
	}

	// Resolve: a write with the context of the read supersedes both siblings.
	resp, body := do(t, "GET", addr(n1, "/v1/kv/b/sib"), "", nil)
	var sb siblingsBody
	if resp.StatusCode != 300 || json.Unmarshal([]byte(body), &sb) != nil {
		t.Fatalf("get: %d %q", resp.StatusCode, body)
	}
	if h := resp.Header.Get(api.ContextHeader); h != sb.Context {
		t.Fatalf("300: context header %q differs from body context %q", h, sb.Context)
	}
	put(t, n2, "b", "sib", "?w=all", "merged", sb.Context)
	for _, n := range nodes {
		getOne(t, n, "b", "sib", "", "merged")
		if _, lc := local(t, n, "b", "sib"); len(lc.Siblings) != 1 || string(lc.Values[0]) != "merged" {
			t.Fatalf("local on %s after resolving: %+v", n.ID(), lc)
		}
	}
	resp, body = do(t, "GET", addr(n1, "/v1/kv/b/sib"), "", map[string]string{"Accept": "application/json"})
	if resp.StatusCode != 200 || !strings.Contains(body, `"values":["`+b64("merged")+`"]`) {
		t.Fatalf("json get after resolving: %d %q", resp.StatusCode, body)
	}
}

func TestQuorumWithPartitionedNode(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n3 := nodes[0], nodes[2]
	isolate(t, nodes, n3)

	put(t, n1, "b", "q", "", "v1", "")
	put(t, n1, "b", "q", "?w=2&pw=2&dw=2", "v2", "")

	for _, q := range []string{"w=3", "w=all", "pw=3", "pw=all", "dw=3", "dw=all"} {
		resp, body := do(t, "PUT", addr(n1, "/v1/kv/b/q2?"+q+"&timeout=2000"), "x", nil)
		e := wantError(t, "put "+q, 503, "quorum_failed", resp.StatusCode, body)
		if e.Acks == nil || e.Required == nil || *e.Acks != 2 || *e.Required != 3 {
			t.Fatalf("put %s: %q, want acks=2 required=3", q, body)
		}
	}
	// The isolated node can only count itself.
	resp, body := do(t, "PUT", addr(n3, "/v1/kv/b/q3"), "x", nil)
	if e := wantError(t, "put via isolated n3", 503, "quorum_failed", resp.StatusCode, body); *e.Acks != 1 || *e.Required != 2 {
		t.Fatalf("put via n3: %q, want acks=1 required=2", body)
	}

	for _, q := range []string{"", "?r=2", "?r=quorum&pr=2", "?r=one"} {
		resp, body := do(t, "GET", addr(n1, "/v1/kv/b/q"+q), "", map[string]string{"Accept": "application/json"})
		if resp.StatusCode != 200 {
			t.Fatalf("get%s: %d %s", q, resp.StatusCode, body)
		}
	}
	for _, q := range []string{"?r=3", "?r=all", "?pr=3"} {
		resp, body := do(t, "GET", addr(n1, "/v1/kv/b/q"+q), "", nil)
		e := wantError(t, "get"+q, 503, "quorum_failed", resp.StatusCode, body)
		// A read fails as soon as R is out of reach: the replies counted so far.
		if e.Acks == nil || e.Required == nil || *e.Acks < 1 || *e.Acks > 2 || *e.Required != 3 {
			t.Fatalf("get%s: %q, want acks 1..2 required=3", q, body)
		}
	}
	if st, _ := local(t, n3, "b", "q"); st != 404 {
		t.Fatalf("isolated n3 holds the key")
	}

	heal(t, nodes)
	// Healed: W=3 succeeds again, and the read at R=3 repairs n3.
	put(t, n1, "b", "q4", "?w=all&pw=all&dw=all", "v", "")
	resp, body = do(t, "GET", addr(n1, "/v1/kv/b/q?r=all"), "", map[string]string{"Accept": "application/json"})
	if resp.StatusCode != 200 {
		t.Fatalf("get r=all after heal: %d %s", resp.StatusCode, body)
	}
}

func TestLWWUnderClockSkew(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	setBucket(t, nodes, "lww", `{"conflict":"lww"}`)
	a, b := nodes[0], nodes[1] // with N=3 on three nodes, both are primaries of every key

	// The endpoints agree: every node is a primary.
	resp, body := do(t, "GET", addr(a, "/v1/admin/endpoints/lww/k1"), "", nil)
	var ei node.EndpointsInfo
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &ei) != nil || len(ei.Primaries) != 3 {
		t.Fatalf("endpoints: %d %s", resp.StatusCode, body)
	}

	for _, withContext := range []bool{true, false} {
		key := fmt.Sprintf("k-ctx-%v", withContext)
		setFaults(t, b, nil, 0)
		// w=all: every replica (b too) holds v1 before b writes.
		put(t, a, "lww", key, "?w=all", "v1", "")
		_, lc := local(t, a, "lww", key)
		if len(lc.Siblings) != 1 {
			t.Fatalf("local after v1: %+v", lc)
		}
		ts1 := parseHLC(t, lc.Siblings[0].Timestamp)

		setFaults(t, b, nil, -500)
		ctx := ""
		if withContext {
			ctx = getOne(t, b, "lww", key, "", "v1")
		}
		put(t, b, "lww", key, "", "v2", ctx)
		// b's wall clock is now 500 ms behind the real one, so behind the wall time of v1's
		// timestamp unless the writes took half a second.
		bWall := time.Now().UnixMilli() - 500
		if bWall >= ts1.wall {
			t.Fatalf("test too slow to show the skew: b's clock %d is not behind v1's timestamp %v", bWall, ts1)
		}

		for _, n := range nodes {
			getOne(t, n, "lww", key, "?r=all", "v2")
		}
		for _, n := range nodes {
			_, lc := local(t, n, "lww", key)
			if len(lc.Siblings) != 1 || string(lc.Siblings[0].Value) != "v2" {
				t.Fatalf("local on %s (context %v): %+v, want only v2", n.ID(), withContext, lc)
			}
			ts2 := parseHLC(t, lc.Siblings[0].Timestamp)
			if !ts1.less(ts2) {
				t.Fatalf("v2's timestamp %v is not after v1's %v", ts2, ts1)
			}
			if ts2.wall <= bWall {
				t.Fatalf("v2's timestamp %v took b's skewed wall clock (%d) instead of the HLC", ts2, bWall)
			}
			t.Logf("context %v: %s holds v2 at %v > v1 at %v; b's skewed wall clock %d", withContext, n.ID(), ts2, ts1, bWall)
		}
	}
	setFaults(t, b, nil, 0)
}

func TestReadRepair(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n3 := nodes[0], nodes[2]
	setBucket(t, nodes, "rrnone", `{"read_repair":"none"}`)

	for _, tc := range []struct {
		bucket   string
		repaired bool
	}{{"b", true}, {"rrnone", false}} {
		repairs0 := metric(t, n1, "quorumkv_read_repairs_total")
		stale0 := metric(t, n1, "quorumkv_stale_reads_total")

		isolate(t, nodes, n3)
		put(t, n1, tc.bucket, "rr", "?w=2", "v", "")
		heal(t, nodes)
		if st, _ := local(t, n3, tc.bucket, "rr"); st != 404 {
			t.Fatalf("%s: n3 got the write through the partition", tc.bucket)
		}

		getOne(t, n1, tc.bucket, "rr", "?r=all", "v")
		st, lc := local(t, n3, tc.bucket, "rr")
		if tc.repaired && (st != 200 || len(lc.Values) != 1 || string(lc.Values[0]) != "v") {
			t.Fatalf("%s: blocking read repair did not reach n3 before the reply: %d %+v", tc.bucket, st, lc)
		}
		if !tc.repaired && st != 404 {
			t.Fatalf("%s: read repair none, yet n3 holds the key: %+v", tc.bucket, lc)
		}

		repairs := metric(t, n1, "quorumkv_read_repairs_total") - repairs0
		stale := metric(t, n1, "quorumkv_stale_reads_total") - stale0
		if stale != 1 {
			t.Fatalf("%s: stale reads moved by %v, want 1", tc.bucket, stale)
		}
		if want := map[bool]float64{true: 1, false: 0}[tc.repaired]; repairs != want {
			t.Fatalf("%s: read repairs moved by %v, want %v", tc.bucket, repairs, want)
		}
		// A second read finds nothing (more) to repair on a repaired key.
		getOne(t, n1, tc.bucket, "rr", "?r=all", "v")
		if tc.repaired {
			if d := metric(t, n1, "quorumkv_stale_reads_total") - stale0; d != 1 {
				t.Fatalf("%s: a read of a repaired key counted as stale", tc.bucket)
			}
		}
	}
}

func TestDeleteThenRecreate(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	put(t, n1, "b", "del", "", "v1", "")
	ctx := getOne(t, n2, "b", "del", "", "v1")

	resp, body := do(t, "DELETE", addr(n2, "/v1/kv/b/del?w=all"), "", map[string]string{api.ContextHeader: ctx})
	if resp.StatusCode != 204 || resp.Header.Get(api.ContextHeader) == "" {
		t.Fatalf("delete: %d %q context %q", resp.StatusCode, body, resp.Header.Get(api.ContextHeader))
	}
	var tombCtx string
	for _, n := range nodes {
		resp, body := do(t, "GET", addr(n, "/v1/kv/b/del"), "", nil)
		wantError(t, "get deleted via "+n.ID(), 404, "not_found", resp.StatusCode, body)
		tombCtx = resp.Header.Get(api.ContextHeader)
		if tombCtx == "" {
			t.Fatalf("404 of a deleted key via %s has no context", n.ID())
		}
		if _, lc := local(t, n, "b", "del"); !lc.Tombstone || len(lc.Values) != 0 {
			t.Fatalf("local on %s after delete: %+v", n.ID(), lc)
		}
	}
	resp, body = do(t, "GET", addr(n1, "/v1/kv/b/del"), "", map[string]string{"Accept": "application/json"})
	wantError(t, "json get of a deleted key", 404, "not_found", resp.StatusCode, body)

	put(t, n3, "b", "del", "?w=all", "v2", tombCtx)
	for _, n := range nodes {
		getOne(t, n, "b", "del", "", "v2")
		if _, lc := local(t, n, "b", "del"); lc.Tombstone || len(lc.Siblings) != 1 {
			t.Fatalf("local on %s after re-creating: %+v, want one live sibling", n.ID(), lc)
		}
	}

	// A key never written: 404 and no context.
	resp, body = do(t, "GET", addr(n1, "/v1/kv/b/never"), "", nil)
	wantError(t, "get absent", 404, "not_found", resp.StatusCode, body)
	if c := resp.Header.Get(api.ContextHeader); c != "" {
		t.Fatalf("absent key has context %q", c)
	}
}
