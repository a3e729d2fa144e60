package ui_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/testcluster"
	"github.com/quorumkv/quorumkv/internal/ui"
)

// startCluster starts size in-process nodes serving the whole HTTP API (the dashboard
// included) on loopback ports chosen at run time, and waits until every node sees every
// member alive. As internal/api's helper of the same name. With sample > 0 the dashboard
// at /ui/ is one sampling every sample instead of the default's 5s, so a test sees
// charts within seconds.
func startCluster(t testing.TB, size int, sample time.Duration) []*node.Node {
	t.Helper()
	return testcluster.Start(t, size, func(cfg *node.Config) {
		cfg.HTTPHandler = api.Handler(nil, false, cfg.MaxValueBytes)
		if sample > 0 {
			maxValue := cfg.MaxValueBytes
			cfg.HTTPHandler = func(n *node.Node) http.Handler {
				uc := ui.DefaultConfig()
				uc.Interval = sample
				u, err := ui.New(n, uc)
				if err != nil {
					t.Fatalf("dashboard of %s: %v", n.ID(), err)
				}
				mux := http.NewServeMux()
				mux.Handle("/ui/", u)
				mux.Handle("/", api.New(n, nil, false, maxValue))
				return mux
			}
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func url(n *node.Node, path string) string { return "http://" + n.HTTPAddr() + path }

// get fetches a URL and returns status and body.
func get(t testing.TB, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", u, err)
	}
	return resp.StatusCode, b
}

// getJSON fetches a URL that must answer 200 with JSON and decodes it into v.
func getJSON(t testing.TB, u string, v any) {
	t.Helper()
	st, b := get(t, u)
	if st != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", u, st, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
}

// put writes a value blindly (no context), so two puts make siblings.
func put(t testing.TB, n *node.Node, bucket, key, value string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url(n, "/v1/kv/"+bucket+"/"+key), strings.NewReader(value))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("put %s/%s via %s: %v", bucket, key, n.ID(), err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("put %s/%s via %s: %d %s", bucket, key, n.ID(), resp.StatusCode, b)
	}
}

// needTool finds a command-line tool among names. When none is installed it skips,
// naming the Debian package, except under CI=true, where the test fails.
func needTool(t *testing.T, pkg string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s is missing (install Debian's %s: apt-get install -y %s)", names[0], pkg, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true requires it", msg)
	}
	t.Skip(msg)
	return ""
}
