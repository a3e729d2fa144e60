package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/sim"
)

func TestSimFlagsDefaults(t *testing.T) {
	e, _, errb := testEnv("", nil)
	cfg, opts, code, ok := parseSimFlags(e, nil)
	if !ok {
		t.Fatalf("exit %d: %s", code, errb)
	}
	def := sim.DefaultConfig()
	if cfg.Nodes != 5 || cfg.N != 3 || cfg.R != 2 || cfg.W != 2 || cfg.Duration != time.Minute || cfg.Seed != 1 ||
		cfg.Rate != 1000 || cfg.Keys != 1000 || cfg.KeyDist != "uniform" || cfg.ReadRatio != def.ReadRatio ||
		cfg.DeleteRatio != def.DeleteRatio || cfg.Loss != 0 || cfg.ReadRepair != quorum.RepairBlocking ||
		!cfg.HintedHandoff || !cfg.AAE || cfg.AAEInterval != def.AAEInterval || cfg.DetectDelay != def.DetectDelay ||
		cfg.RequestTimeout != def.RequestTimeout || cfg.HealBudget != def.HealBudget || len(cfg.Faults) != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg.Latency.Name != "exp:1ms" {
		t.Errorf("default latency %q", cfg.Latency.Name)
	}
	if opts.json || opts.plot != "" {
		t.Errorf("options %+v", opts)
	}
	if want := "quorumkv sim --nodes 5 --n 3 --r 2 --w 2 --duration 1m0s --seed 1"; opts.command != want {
		t.Errorf("replay command\n%s\nwant\n%s", opts.command, want)
	}
}

func TestSimFlagsAll(t *testing.T) {
	e, _, errb := testEnv("", nil)
	args := []string{"--nodes", "7", "--n", "5", "--r", "1", "--w", "3", "--duration", "90s", "--seed", "42",
		"--rate", "250", "--keys", "50", "--key-dist", "zipfian", "--read-ratio", "0.5", "--delete-ratio", "0.1",
		"--latency", "lnkd-disk", "--loss", "0.01", "--read-repair", "async", "--conflict", "lww", "--handoff=false", "--aae=false",
		"--aae-interval", "2s", "--detect-delay", "3s", "--request-timeout", "500ms", "--handoff-timeout", "2s",
		"--gossip-lag", "1s", "--client-failover=false", "--ttl-ratio", "0.2", "--ttl", "3s", "--blind-writes", "0.3",
		"--gc-grace", "60s", "--heal-budget", "30s",
		"--faults", "partition n1,n2|n3,n4,n5 10s@20s; crash n3@30s; skew n2 500ms",
		"--json", "--plot", "out.svg"}
	cfg, opts, code, ok := parseSimFlags(e, args)
	if !ok {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if cfg.Nodes != 7 || cfg.N != 5 || cfg.R != 1 || cfg.W != 3 || cfg.Duration != 90*time.Second || cfg.Seed != 42 ||
		cfg.Rate != 250 || cfg.Keys != 50 || cfg.KeyDist != "zipfian" || cfg.ReadRatio != 0.5 || cfg.DeleteRatio != 0.1 ||
		cfg.Loss != 0.01 || cfg.ReadRepair != quorum.RepairAsync || cfg.HintedHandoff || cfg.AAE ||
		cfg.AAEInterval != 2*time.Second || cfg.DetectDelay != 3*time.Second || cfg.RequestTimeout != 500*time.Millisecond ||
		cfg.HandoffTimeout != 2*time.Second || cfg.GCGrace != time.Minute || cfg.HealBudget != 30*time.Second || cfg.Conflict != "lww" ||
		cfg.GossipLag != time.Second || cfg.ClientFailover || cfg.TTLRatio != 0.2 || cfg.TTL != 3*time.Second || cfg.BlindRatio != 0.3 {
		t.Errorf("config: %+v", cfg)
	}
	if cfg.Latency.Name != "lnkd-disk" {
		t.Errorf("latency %q", cfg.Latency.Name)
	}
	if len(cfg.Faults) != 3 || cfg.Faults[0].Kind != sim.Partition || cfg.Faults[1].Kind != sim.Crash || cfg.Faults[2].Kind != sim.Skew {
		t.Errorf("faults %v", cfg.Faults)
	}
	if !opts.json || opts.plot != "out.svg" {
		t.Errorf("options %+v", opts)
	}
	want := "quorumkv sim --nodes 7 --n 5 --r 1 --w 3 --duration 1m30s --seed 42 --rate 250 --keys 50 " +
		"--key-dist zipfian --read-ratio 0.5 --delete-ratio 0.1 --ttl-ratio 0.2 --ttl 3s --blind-writes 0.3 --latency lnkd-disk --loss 0.01 --read-repair async --conflict lww " +
		"--handoff=false --aae=false --aae-interval 2s --detect-delay 3s --request-timeout 500ms --handoff-timeout 2s " +
		"--gossip-lag 1s --client-failover=false --gc-grace 1m0s --heal-budget 30s " +
		"--faults 'partition n1,n2|n3,n4,n5 10s@20s; crash n3@30s; skew n2 500ms'"
	if opts.command != want {
		t.Errorf("replay command\n%s\nwant\n%s", opts.command, want)
	}
}

func TestSimFlagsBad(t *testing.T) {
	for _, tc := range []struct {
		args []string
		errs string
	}{
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--latency", "lnkd"}, "--latency"},
		{[]string{"--latency", "exp:-1ms"}, "--latency"},
		{[]string{"--read-repair", "sometimes"}, "--read-repair"},
		{[]string{"--faults", "explode n1@1s"}, "--faults"},
		{[]string{"--faults", "crash n9@1s"}, "names node n9"},
		{[]string{"--plot", "out.jpg"}, "want a .png or .svg file"},
		{[]string{"--r", "4"}, "r 4 and w 2"},
		{[]string{"--key-dist", "pareto"}, "key distribution"},
		{[]string{"--loss", "1"}, "loss in [0, 1)"},
		{[]string{"--duration", "0s"}, "must be positive"},
		{[]string{"--seed", "-1"}, "invalid value"},
		{[]string{"--gc-grace", "1500ms"}, "gc grace must be whole seconds"},
		{[]string{"--conflict", "newest"}, `conflict "newest"`},
	} {
		e, out, errb := testEnv("", nil)
		if code := e.run(append([]string{"sim"}, tc.args...)); code != exitUsage {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errb.String(), tc.errs) || out.String() != "" {
			t.Errorf("%q: stderr %q (want %q), stdout %q", tc.args, errb, tc.errs, out)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"1m0s": "1m0s", "lnkd-ssd": "lnkd-ssd", "": "''", "a b": "'a b'", "it's": `'it'\''s'`,
		"mix:0.9:(exp:1ms):(const:50ms)": "'mix:0.9:(exp:1ms):(const:50ms)'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// sampleReport is a hand-made report.
func sampleReport() *sim.Report {
	r := &sim.Report{
		Seed: 7, Config: "5 nodes, N=3 R=1 W=1, 30s at 200 ops/s", Faults: "partition n1,n2|n3,n4,n5 10s@10s",
		Reads: 4800, Writes: 1200, StaleReads: 96, StaleReadPct: 2, FailedReads: 12,
		WriteSuccessRate: 0.995, ReadSuccessRate: 0.9975,
		ReadLatencyMs:  sim.Percentiles{P50: 1.25, P99: 4.5, P999: 9.125},
		WriteLatencyMs: sim.Percentiles{P50: 2, P99: 8, P999: 120},
		TVisibility: []sim.VisPoint{{TMs: 0, PConsistent: 0.9, Samples: 100}, {TMs: 1, PConsistent: 0.95, Samples: 90},
			{TMs: 10, PConsistent: 0.999, Samples: 80}, {TMs: 100, PConsistent: 1, Samples: 70}},
		KStaleness:  []sim.KPoint{{K: 0, Fraction: 0.98}, {K: 1, Fraction: 0.019}, {K: 2, Fraction: 0.001}},
		HintsStored: 30, HintsDelivered: 29, HintsPending: 1, ReadRepairs: 17, AAEExchanges: 400, AAERepairs: 5, TombstonesReaped: 3,
		Messages: 50000, MessagesLost: 10, Converged: true, ConvergedAfterMs: 1500,
		TraceHash: "9f2c1a", SimulatedSeconds: 90, WallSeconds: 0.5, Events: 123456,
	}
	for i := 1; i <= 500; i++ {
		r.ReadLatencies = append(r.ReadLatencies, 0.2+float64(i%97)/10)
		r.WriteLatencies = append(r.WriteLatencies, 0.5+float64(i%89)/5)
	}
	r.ReadLatencies = append(r.ReadLatencies, 0) // not drawable on log x; must be skipped
	return r
}

func TestSimReportFormat(t *testing.T) {
	var b bytes.Buffer
	writeSimReport(&b, sampleReport())
	out := b.String()
	for _, want := range []string{
		"seed 7: 5 nodes, N=3 R=1 W=1, 30s at 200 ops/s\n",
		"faults: partition n1,n2|n3,n4,n5 10s@10s\n",
		"stale reads    2.00%   (96 of 4800 reads; 12 failed, read success 99.75%)\n",
		"write success  99.50%  (of 1200 writes)\n",
		"read latency   p50 1.250 ms  p99 4.500 ms  p99.9 9.125 ms\n",
		"write latency  p50 2.000 ms  p99 8.000 ms  p99.9 120.000 ms\n",
		"t-visibility (P[a read started t after a write's ack sees it]; a row: t up to the next row's t):\n",
		"  t (ms)  p_consistent  samples\n",
		"       0        0.9000      100\n",
		"      10        0.9990       80\n",
		"  k=1   1.90%\n",
		"hints            stored 30, delivered 29, pending 1\n",
		"read repairs     17\n",
		"anti-entropy     400 exchanges, 5 keys repaired\n",
		"tombstones       3 reaped\n",
		"messages         50000 (10 lost)\n",
		"converged after  1500 ms\n",
		"violations       none\n",
		"trace hash       9f2c1a\n",
		"speed            180.0 simulated s per wall s (90.0 s simulated in 0.50 s, 123456 events)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	r := sampleReport()
	r.Converged, r.Violations, r.Command = false, []string{"acknowledged write lost: k1"}, "quorumkv sim --seed 7"
	b.Reset()
	writeSimReport(&b, r)
	for _, want := range []string{"not converged within the heal budget", "violations       1\n",
		"  - acknowledged write lost: k1\n", "replay: quorumkv sim --seed 7\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

// stubSim makes the sim command run fn instead of the engine.
func stubSim(t *testing.T, fn func(sim.Config, func(done, total time.Duration)) (*sim.Report, error)) {
	old := simRun
	simRun = fn
	t.Cleanup(func() { simRun = old })
}

func TestSimCommandJSON(t *testing.T) {
	var got sim.Config
	stubSim(t, func(cfg sim.Config, progress func(done, total time.Duration)) (*sim.Report, error) {
		got = cfg
		total := cfg.Duration + cfg.HealBudget
		for d := time.Duration(0); d <= total; d += total / 4 {
			progress(d, total)
		}
		return sampleReport(), nil
	})
	e, out, errb := testEnv("", nil)
	if code := e.run([]string{"sim", "--r", "1", "--w", "1", "--duration", "30s", "--seed", "7", "--json"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if got.R != 1 || got.W != 1 || got.Seed != 7 || got.Duration != 30*time.Second {
		t.Errorf("engine got %+v", got)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out.String()), &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, k := range []string{"stale_read_pct", "write_success_rate", "read_latency_ms", "write_latency_ms", "t_visibility"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	for _, k := range []string{"p50", "p99", "p999"} {
		if _, ok := m["read_latency_ms"].(map[string]any)[k]; !ok {
			t.Errorf("read_latency_ms lacks %q", k)
		}
	}
	tv := m["t_visibility"].([]any)[0].(map[string]any)
	if tv["t_ms"] != 0.0 || tv["p_consistent"] != 0.9 {
		t.Errorf("t_visibility[0] = %v", tv)
	}
	if m["command"] != "quorumkv sim --nodes 5 --n 3 --r 1 --w 1 --duration 30s --seed 7" {
		t.Errorf("command %v", m["command"])
	}
	// Progress, on stderr that is not a terminal: plain lines, the first and the last
	// (the others come within the meter's interval), naming the workload and heal budget.
	want := "sim:   0% workload 0s of 30s, virtual (then up to 1m0s heal budget)\n" +
		"sim: 100% done: workload 30s + healing (of a 1m0s heal budget), virtual\n"
	if s := errb.String(); s != want {
		t.Errorf("progress %q, want %q", s, want)
	}
}

func TestSimCommandViolation(t *testing.T) {
	stubSim(t, func(cfg sim.Config, _ func(done, total time.Duration)) (*sim.Report, error) {
		r := sampleReport()
		r.Seed = cfg.Seed
		r.Violations = []string{"value read that was never written: k9", "version vector went backwards on n2"}
		return r, fmt.Errorf("%w: 2 violations", sim.ErrViolation)
	})
	e, out, errb := testEnv("", nil)
	code := e.run([]string{"sim", "--seed", "99", "--faults", "crash n3@30s", "--latency", "mix:0.9:(exp:1ms):(const:50ms)"})
	if code != exitFail {
		t.Fatalf("exit %d, want 1", code)
	}
	want := "quorumkv sim: sim: invariant violated: 2 violations\n" +
		"  - value read that was never written: k9\n" +
		"  - version vector went backwards on n2\n" +
		"seed: 99\n" +
		"replay: quorumkv sim --nodes 5 --n 3 --r 2 --w 2 --duration 1m0s --seed 99 --latency 'mix:0.9:(exp:1ms):(const:50ms)' --faults 'crash n3@30s'\n"
	if !strings.HasSuffix(errb.String(), want) {
		t.Errorf("stderr\n%s\nwant suffix\n%s", errb, want)
	}
	if !strings.Contains(out.String(), "violations       2\n") {
		t.Errorf("stdout %s", out)
	}

	// The engine's own replay command wins.
	stubSim(t, func(sim.Config, func(done, total time.Duration)) (*sim.Report, error) {
		return &sim.Report{Seed: 5, Command: "quorumkv sim --seed 5 --exact"}, sim.ErrViolation
	})
	e, _, errb = testEnv("", nil)
	if code := e.run([]string{"sim", "--seed", "5"}); code != exitFail || !strings.HasSuffix(errb.String(), "seed: 5\nreplay: quorumkv sim --seed 5 --exact\n") {
		t.Errorf("exit %d, stderr %q", code, errb)
	}
}

func TestSimCommandEngineError(t *testing.T) {
	stubSim(t, func(sim.Config, func(done, total time.Duration)) (*sim.Report, error) {
		return nil, errors.New("sim: not built yet")
	})
	e, out, errb := testEnv("", nil)
	if code := e.run([]string{"sim"}); code != exitFail {
		t.Errorf("exit %d, want 1", code)
	}
	if errb.String() != "quorumkv: sim: sim: not built yet\n" || out.String() != "" {
		t.Errorf("stderr %q stdout %q", errb, out)
	}
}

func TestSimProgressText(t *testing.T) {
	const m = time.Minute
	for _, tc := range []struct {
		done time.Duration
		want string
	}{
		{0, "workload 0s of 1m0s, virtual (then up to 1m0s heal budget)"},
		{30*time.Second + 400*time.Millisecond, "workload 30s of 1m0s, virtual (then up to 1m0s heal budget)"},
		{m + 5*time.Second, "workload 1m0s done; healing 5s of at most 1m0s (heal budget), virtual"},
		{2 * m, "done: workload 1m0s + healing (of a 1m0s heal budget), virtual"},
	} {
		if got := simProgress(tc.done, 2*m, m); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.done, got, tc.want)
		}
	}
}

// TestSimReportLabels: the open-ended last t-visibility bin and percentiles at the request
// timeout are labelled as such.
func TestSimReportLabels(t *testing.T) {
	rep := sampleReport()
	rep.TVisibility = append(rep.TVisibility, sim.VisPoint{TMs: 1000, PConsistent: 1, Samples: 5000, OpenEnded: true})
	rep.RequestTimeoutMs = 1000
	rep.WriteLatencyMs.P999 = 1000
	var b bytes.Buffer
	writeSimReport(&b, rep)
	out := b.String()
	for _, want := range []string{
		"  ≥ 1000        1.0000     5000\n",
		"write latency  p50 2.000 ms  p99 8.000 ms  p99.9 ≥ 1000 ms (timeout)\n",
		"read latency   p50 1.250 ms  p99 4.500 ms  p99.9 9.125 ms\n",
		"     100        1.0000       70\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestSimRefusedBeforeRunning: a fault after the end of the run and a --plot file that
// cannot be created are refused before the run starts.
func TestSimRefusedBeforeRunning(t *testing.T) {
	ran := false
	stubSim(t, func(sim.Config, func(done, total time.Duration)) (*sim.Report, error) {
		ran = true
		return sampleReport(), nil
	})
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		errs string
	}{
		{[]string{"--duration", "10s", "--faults", "crash n3@20s"}, "fault crash n3@20s starts at 20s, when the workload (duration 10s) is over"},
		{[]string{"--plot", filepath.Join(dir, "no", "such", "dir", "out.png")}, "--plot: open " + filepath.Join(dir, "no")},
	} {
		e, out, errb := testEnv("", nil)
		if code := e.run(append([]string{"sim"}, tc.args...)); code != exitUsage {
			t.Errorf("%q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errb.String(), tc.errs) || out.String() != "" {
			t.Errorf("%q: stderr %q (want %q), stdout %q", tc.args, errb, tc.errs, out)
		}
	}
	if ran {
		t.Error("the run started")
	}
	// A plot path that can be created is left as it was found: absent.
	path := filepath.Join(dir, "later.png")
	if err := checkCreatable(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("checkCreatable left %s: %v", path, err)
	}
}

func TestSimPlot(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"sim.png", "sim.svg", "EMPTY.SVG"} {
		path := filepath.Join(dir, name)
		rep := sampleReport()
		if strings.HasPrefix(name, "EMPTY") {
			rep = &sim.Report{}
		}
		if err := writeSimPlot(path, rep); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		switch strings.ToLower(filepath.Ext(name)) {
		case ".png":
			if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1000 {
				t.Errorf("%s: not a PNG (%d bytes)", name, len(b))
			}
		case ".svg":
			if !bytes.Contains(b, []byte("<svg")) {
				t.Errorf("%s: not an SVG", name)
			}
		}
	}
	if err := writeSimPlot(filepath.Join(dir, "x.gif"), sampleReport()); err == nil {
		t.Error("x.gif: no error")
	}

	// Through the command.
	stubSim(t, func(sim.Config, func(done, total time.Duration)) (*sim.Report, error) { return sampleReport(), nil })
	path := filepath.Join(dir, "cmd.png")
	e, _, errb := testEnv("", nil)
	if code := e.run([]string{"sim", "--plot", path}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Errorf("%s: %v", path, err)
	}
}

// TestSimPlotTimeline: a real run with a partition draws its timeline panel (with the
// fault window) into the PNG, beside the curves.
func TestSimPlotTimeline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "timeline.png")
	e, _, errb := testEnv("", nil)
	code := e.run([]string{"sim", "--w", "3", "--duration", "10s", "--rate", "300", "--keys", "200",
		"--heal-budget", "30s", "--faults", "partition n1,n2|n3,n4,n5 4s@3s", "--json", "--plot", path})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 1000 {
		t.Fatalf("not a PNG (%d bytes)", len(b))
	}
	if dst := os.Getenv("SIM_PLOT_OUT"); dst != "" { // to look at it
		_ = os.WriteFile(dst, b, 0o644)
	}
}

// TestSimReplayHasEveryFlag: every flag of the sim command but the output ones has its
// place in the replay command (a flag left out would replay another run).
func TestSimReplayHasEveryFlag(t *testing.T) {
	e, out, errb := testEnv("", nil)
	parseSimFlags(e, []string{"--help"})
	help := out.String() + errb.String()
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help, -1)
	if len(flags) < 20 {
		t.Fatalf("found %d flags in the help:\n%s", len(flags), help)
	}
	for _, f := range flags {
		if name := f[1]; name != "json" && name != "plot" && !slices.Contains(simFlagOrder, name) {
			t.Errorf("--%s is missing from simFlagOrder: a replay command would drop it", name)
		}
	}
}
