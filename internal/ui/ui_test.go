package ui_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/ui"
)

// TestAPIServesTheDashboard checks the mount in internal/api: the page, its assets, the
// redirect from /ui, the JSON endpoints, and that it refuses other methods.
func TestAPIServesTheDashboard(t *testing.T) {
	t.Parallel()
	n := startCluster(t, 1, 0)[0]

	st, body := get(t, url(n, "/ui/"))
	if st != http.StatusOK || !strings.Contains(string(body), "<title>quorumkv dashboard</title>") {
		t.Fatalf("GET /ui/: %d %.200s", st, body)
	}
	for _, asset := range []string{"/ui/app.js", "/ui/style.css"} {
		if st, body := get(t, url(n, asset)); st != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", asset, st, len(body))
		}
	}
	// GET /ui redirects to /ui/ (ServeMux does it for the subtree).
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(url(n, "/ui"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || loc != "/ui/" {
		t.Errorf("GET /ui: %d to %q, want a redirect to /ui/", resp.StatusCode, loc)
	}

	var nv ui.NodeView
	getJSON(t, url(n, "/ui/api/node"), &nv)
	if nv.Node != "n1" || nv.IntervalS != 5 || !nv.Trees.Ready && nv.Trees.RebuildProgress > 1 {
		t.Errorf("node view: %+v", nv)
	}
	var cv ui.ClusterView
	getJSON(t, url(n, "/ui/api/cluster"), &cv)
	if cv.Node != "n1" || len(cv.Nodes) != 1 || !cv.Nodes[0].Reachable || len(cv.Owners) != cv.Partitions {
		t.Errorf("cluster view: %+v", cv)
	}

	req, _ := http.NewRequest(http.MethodPost, url(n, "/ui/api/node"), nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/api/node: %d, want 405", resp.StatusCode)
	}
}

// TestAssetsAreSelfContained: an air-gapped data centre reaches no CDN. The page may load
// only its own files; the stylesheet imports nothing.
func TestAssetsAreSelfContained(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("static", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	html := read("index.html")
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(html, -1) {
		if ref := m[1]; strings.Contains(ref, "//") || strings.HasPrefix(ref, "/") {
			t.Errorf("index.html loads %q: only the page's own relative files are allowed", ref)
		}
	}
	if css := read("style.css"); strings.Contains(css, "url(") || strings.Contains(css, "@import") {
		t.Error("style.css loads something (url( or @import)")
	}
	// Every fetch of the script goes to this node: a path, never a scheme and host.
	js := read("app.js")
	for _, m := range regexp.MustCompile(`getJSON\(([^)]*)\)`).FindAllStringSubmatch(js, -1) {
		if strings.Contains(m[1], "http") {
			t.Errorf("app.js fetches %s", m[1])
		}
	}
	if err := fs.WalkDir(os.DirFS("static"), ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".html") && !strings.HasSuffix(p, ".js") && !strings.HasSuffix(p, ".css") {
			t.Errorf("unexpected asset %s: the page is plain HTML, CSS and JS", p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestNodeViewSamplesRequests: after traffic, the node view carries rates and quantiles
// per operation.
func TestNodeViewSamplesRequests(t *testing.T) {
	t.Parallel()
	n := startCluster(t, 1, 20*time.Millisecond)[0]
	req, _ := http.NewRequest(http.MethodPut, url(n, "/v1/buckets/one"), strings.NewReader(`{"n":1}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("bucket with n=1: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for i := range 30 {
		put(t, n, "one", "k"+string(rune('a'+i%26)), "v")
	}
	var nv ui.NodeView
	waitFor(t, 10*time.Second, "the 30 puts in the sampled series", func() bool {
		getJSON(t, url(n, "/ui/api/node"), &nv)
		if nv.Totals.Writes < 30 {
			return false
		}
		for _, p := range nv.Series {
			if p.Ops["put"].Rate > 0 && p.Ops["put"].P99Ms != nil {
				return true
			}
		}
		return false
	})
	if nv.Totals.Writes != 30 || nv.Totals.WriteErrors != 0 {
		t.Errorf("totals: %+v, want 30 writes, no errors", nv.Totals)
	}
	var brief ui.NodeView
	getJSON(t, url(n, "/ui/api/node?series=0"), &brief)
	if len(brief.Series) != 0 || brief.Node != "n1" {
		t.Errorf("series=0 still carries %d points", len(brief.Series))
	}
}

// stuckRegistry is a node whose registry hangs on every gather after the first, as a slow
// collector would: the dashboard's handlers must still answer from the last snapshot.
type stuckRegistry struct {
	*node.Node
	reg *prometheus.Registry
}

func (s stuckRegistry) Registry() *prometheus.Registry { return s.reg }

// stuckCollector lets one Collect through; the next closes stuck and blocks until
// release closes.
type stuckCollector struct {
	calls   chan struct{}
	stuck   chan struct{}
	once    *sync.Once
	release chan struct{}
}

func (c stuckCollector) Describe(chan<- *prometheus.Desc) {} // unchecked

func (c stuckCollector) Collect(chan<- prometheus.Metric) {
	select {
	case c.calls <- struct{}{}:
	default:
		c.once.Do(func() { close(c.stuck) })
		<-c.release
	}
}

func TestHandlersReadSnapshots(t *testing.T) {
	t.Parallel()
	n := startCluster(t, 1, 0)[0]
	sc := stuckCollector{calls: make(chan struct{}, 1), stuck: make(chan struct{}), once: new(sync.Once), release: make(chan struct{})}
	defer close(sc.release) // before the node closes: Close waits for the sampler
	src := stuckRegistry{Node: n, reg: prometheus.NewRegistry()}
	src.reg.MustRegister(sc)
	cfg := ui.DefaultConfig()
	cfg.Interval = 10 * time.Millisecond
	u, err := ui.New(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sc.stuck:
	case <-time.After(10 * time.Second):
		t.Fatal("the sampler never gathered a second time")
	}
	// The sampler is stuck in its second gather; the handlers must not be.
	for _, path := range []string{"/ui/api/node", "/ui/api/cluster", "/ui/"} {
		start := time.Now()
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK || time.Since(start) > time.Second {
			t.Errorf("GET %s with the sampler stuck: %d after %v", path, rec.Code, time.Since(start))
		}
	}
}

// TestKeyViewWithANodeDown: the inspector asks every member, reports the stopped one
// unreachable within the peer timeout, and shows the siblings the others hold.
func TestKeyViewWithANodeDown(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, 0)
	put(t, nodes[0], "b", "k/1", "one")
	put(t, nodes[1], "b", "k/1", "two")
	if err := nodes[2].Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var kv ui.KeyView
	getJSON(t, url(nodes[0], "/ui/api/key?bucket=b&key=k%2F1"), &kv)
	if took := time.Since(start); took > ui.DefaultConfig().PeerTimeout+time.Second {
		t.Errorf("inspector took %v with a node down", took)
	}
	if kv.Endpoints.Key != "k/1" || len(kv.Endpoints.Primaries) != 3 || len(kv.Replicas) != 3 {
		t.Fatalf("key view: %+v", kv)
	}
	for _, r := range kv.Replicas {
		switch r.Node {
		case "n3":
			if r.Reachable || r.Error == "" || r.Copy != nil {
				t.Errorf("stopped n3: %+v, want unreachable with an error", r)
			}
		default:
			if !r.Reachable || r.Copy == nil || !r.Copy.Found || len(r.Copy.Values) != 2 || r.Role != "primary" {
				t.Errorf("%s: %+v, want a primary holding two siblings", r.Node, r)
			}
		}
	}

	// A key no node holds: every reachable member says so (GET /v1/admin/local answers 404).
	getJSON(t, url(nodes[1], "/ui/api/key?bucket=b&key=nothing"), &kv)
	for _, r := range kv.Replicas {
		if r.Node != "n3" && (!r.Reachable || r.Copy == nil || r.Copy.Found) {
			t.Errorf("absent key on %s: %+v", r.Node, r)
		}
	}

	for _, q := range []string{"", "?bucket=b", "?bucket=a%2Fb&key=k"} {
		st, body := get(t, url(nodes[0], "/ui/api/key"+q))
		var e struct{ Code string }
		if st != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Code != "bad_request" {
			t.Errorf("GET /ui/api/key%s: %d %s, want 400 bad_request", q, st, body)
		}
	}
}

// TestClusterViewWithANodeDown: the cluster view keeps the stopped member, unreachable,
// with its gossip state, and the ring's owners.
func TestClusterViewWithANodeDown(t *testing.T) {
	t.Parallel()
	nodes := startCluster(t, 3, 0)
	if err := nodes[2].Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	var cv ui.ClusterView
	waitFor(t, 30*time.Second, "n3 down in the cluster view", func() bool {
		getJSON(t, url(nodes[0], "/ui/api/cluster"), &cv)
		return len(cv.Nodes) == 3 && cv.Nodes[2].State == "down"
	})
	if n3 := cv.Nodes[2]; n3.ID != "n3" || n3.Reachable || n3.Error == "" || n3.View != nil {
		t.Errorf("n3: %+v", n3)
	}
	for _, n := range cv.Nodes[:2] {
		var nv ui.NodeView
		if !n.Reachable || json.Unmarshal(n.View, &nv) != nil || nv.Node != n.ID {
			t.Errorf("%s: reachable %v, view %.100s", n.ID, n.Reachable, n.View)
		}
	}
	count := map[int]int{}
	for _, o := range cv.Owners {
		count[o]++
	}
	for i, n := range cv.Nodes {
		if count[i] != n.Partitions {
			t.Errorf("%s owns %d partitions in owners, %d by the cluster API", n.ID, count[i], n.Partitions)
		}
	}
	if len(cv.Owners) != 256 || count[-1] != 0 {
		t.Errorf("owners: %d partitions, %d unknown", len(cv.Owners), count[-1])
	}

	// Another member's series through this node (the browser cannot ask it directly).
	var nv ui.NodeView
	getJSON(t, url(nodes[0], "/ui/api/node?node=n2"), &nv)
	if nv.Node != "n2" {
		t.Errorf("node=n2 answered %q", nv.Node)
	}
	if st, _ := get(t, url(nodes[0], "/ui/api/node?node=n3")); st != http.StatusBadGateway {
		t.Errorf("node=n3 (stopped): %d, want 502", st)
	}
	if st, _ := get(t, url(nodes[0], "/ui/api/node?node=zz")); st != http.StatusNotFound {
		t.Errorf("node=zz: %d, want 404", st)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := ui.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	bad := ui.DefaultConfig()
	bad.Interval, bad.History = 0, 1
	if err := bad.Validate(); err == nil {
		t.Fatal("zero interval and one window accepted")
	}
}

// TestAuthorizeGuardsEveryHandler: the one gate a login will use covers the page, its
// assets and every JSON endpoint.
func TestAuthorizeGuardsEveryHandler(t *testing.T) {
	t.Parallel()
	n := startCluster(t, 1, 0)[0]
	cfg := ui.DefaultConfig()
	cfg.Authorize = func(r *http.Request) error {
		if u, p, ok := r.BasicAuth(); ok && u == "admin" && p == "secret" {
			return nil
		}
		return errors.New("login required")
	}
	u, err := ui.New(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/api/node", "/ui/api/cluster", "/ui/api/key?bucket=b&key=k"} {
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without a login: %d, want 401 with a challenge", path, rec.Code)
		}
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.SetBasicAuth("admin", "secret")
		rec = httptest.NewRecorder()
		u.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s with a login: %d", path, rec.Code)
		}
	}
}
