package ui_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The deployment's monitoring files live beside the other deployment files; they are
// checked here, next to the dashboard, against a live node's registry.
var (
	grafanaDashboard = filepath.Join("..", "..", "deploy", "grafana", "quorumkv.json")
	alertRules       = filepath.Join("..", "..", "deploy", "prometheus", "alerts.yml")
	alertRuleTests   = filepath.Join("..", "..", "deploy", "prometheus", "alerts_test.yml")
)

// metricName finds the names of quorumkv's own metrics and the Go and process collectors'.
var metricName = regexp.MustCompile(`\b(?:quorumkv|go|process)_[a-zA-Z0-9_]+\b`)

// registeredMetrics is every metric name a node registers, whether or not it has a
// sample yet (a labelled counter nobody incremented is not gathered, but is described).
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	n := startCluster(t, 1, 0)[0]
	ch := make(chan *prometheus.Desc)
	go func() {
		n.Registry().Describe(ch)
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := fq.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[m[1]] = true
	}
	if !names["quorumkv_request_duration_seconds"] || !names["quorumkv_hints_pending"] {
		t.Fatalf("the registry lacks metrics this test relies on; it has %d names", len(names))
	}
	return names
}

// exists reports whether name is a registered metric or a series of a registered
// histogram (_bucket, _sum, _count).
func exists(reg map[string]bool, name string) bool {
	if reg[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && reg[base] {
			return true
		}
	}
	return false
}

// TestGrafanaDashboard: the dashboard parses, has what Grafana needs to import it, and
// every metric it queries exists in a node's registry.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(grafanaDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Schema     int    `json:"schemaVersion"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("%s: %v", grafanaDashboard, err)
	}
	if dash.UID == "" || dash.Title == "" || dash.Schema == 0 || len(dash.Panels) == 0 {
		t.Fatalf("%s lacks uid, title, schemaVersion or panels", grafanaDashboard)
	}
	var vars []string
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, want := range []string{"datasource", "job", "instance"} {
		if !slices.Contains(vars, want) {
			t.Errorf("dashboard variables %v lack %q", vars, want)
		}
	}

	reg := registeredMetrics(t)
	ids := map[int]bool{}
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the dashboard's datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %q ignores the node selection", p.Title, tg.Expr)
			}
			for _, name := range metricName.FindAllString(tg.Expr, -1) {
				queried[name] = true
				if !exists(reg, name) {
					t.Errorf("panel %q queries %s, which no node exports", p.Title, name)
				}
			}
		}
	}
	// The metrics the design promises (DESIGN.md, "Metrics that must exist") are all on it.
	for _, must := range []string{"quorumkv_request_duration_seconds_bucket", "quorumkv_writes_total",
		"quorumkv_stale_reads_total", "quorumkv_read_repairs_total", "quorumkv_hints_stored_total",
		"quorumkv_hints_delivered_total", "quorumkv_hints_expired_total", "quorumkv_hints_pending_bytes",
		"quorumkv_aae_exchanges_total", "quorumkv_aae_segments_differed_total", "quorumkv_aae_keys_repaired_total",
		"quorumkv_aae_bytes_total", "quorumkv_siblings_bucket"} {
		if !queried[must] {
			t.Errorf("the dashboard does not show %s", must)
		}
	}
}

// futureOrExternal are the metrics the alert rules use that a node does not export
// (Prometheus's own, node_exporter's, the kubelet's): none at present.
var futureOrExternal []string

// TestAlertRulesUseRealMetrics: every quorumkv metric an alert reads exists, except
// the announced future ones.
func TestAlertRulesUseRealMetrics(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	reg := registeredMetrics(t)
	used := map[string]bool{}
	for _, name := range metricName.FindAllString(string(b), -1) {
		used[name] = true
		if !exists(reg, name) && !slices.Contains(futureOrExternal, name) {
			t.Errorf("alerts.yml reads %s, which no node exports", name)
		}
	}
	for _, name := range futureOrExternal {
		if !used[name] {
			t.Errorf("%s is listed as future but no rule uses it: drop it from the list", name)
		}
		if exists(reg, name) {
			t.Errorf("%s exists now: drop it from futureOrExternal so the check covers it", name)
		}
	}
}

// TestAlertRulesPromtool runs promtool over the rules: syntax, then the unit tests of
// alerts_test.yml, where each alert fires on its failure and stays quiet otherwise.
func TestAlertRulesPromtool(t *testing.T) {
	t.Parallel()
	promtool := needTool(t, "prometheus", "promtool")
	for _, args := range [][]string{{"check", "rules", alertRules}, {"test", "rules", alertRuleTests}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
