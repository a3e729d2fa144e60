package sim

import (
	"strings"
	"testing"
	"time"
)

// TestTimeline: the per-second timeline covers the workload, adds up to the report's
// totals, and shows a partition: with W=3, writes fail inside the window (the minority
// side cannot reach three nodes) and succeed outside it.
func TestTimeline(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duration, cfg.Rate, cfg.Keys = 10*time.Second, 300, 200
	cfg.W, cfg.HealBudget = 3, 30*time.Second
	f, err := ParseFaults("partition n1,n2|n3,n4,n5 4s@3s")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Faults = f
	rep, err := Run(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Timeline) != 10 {
		t.Fatalf("%d timeline points, want 10", len(rep.Timeline))
	}
	reads, stale := 0, 0
	rate := func(from, to int) float64 {
		w, ok := 0, 0
		for _, p := range rep.Timeline[from:to] {
			w, ok = w+p.Writes, ok+p.OK
		}
		if w == 0 {
			t.Fatalf("no writes in seconds %d..%d", from, to)
		}
		return float64(ok) / float64(w)
	}
	for i, p := range rep.Timeline {
		if p.Second != i || p.OK > p.Writes || p.Stale > p.Reads || p.WriteP50Ms > p.WriteP99Ms {
			t.Errorf("point %d: %+v", i, p)
		}
		reads, stale = reads+p.Reads, stale+p.Stale
	}
	if reads != rep.Reads || stale != rep.StaleReads {
		t.Errorf("timeline reads %d stale %d, report %d and %d", reads, stale, rep.Reads, rep.StaleReads)
	}
	before, inside, after := rate(0, 3), rate(3, 7), rate(8, 10)
	t.Logf("write success before %.3f, inside %.3f, after %.3f", before, inside, after)
	if before < 0.99 || after < 0.99 || inside > before-0.1 {
		t.Errorf("write success before %.3f, inside %.3f, after %.3f: want a drop inside the partition", before, inside, after)
	}
	// A write that times out inside the window is seen in its latency.
	if p := rep.Timeline[4]; p.WriteP99Ms < float64(cfg.RequestTimeout/time.Millisecond)/2 {
		t.Errorf("second 4: write p99 %.1f ms, want near the timeout", p.WriteP99Ms)
	}
}

// TestFaultAfterTheEndRefused: a fault scheduled at or after the end of the workload would
// never be applied; Validate says so instead of ignoring it.
func TestFaultAfterTheEndRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duration = 10 * time.Second
	for spec, bad := range map[string]bool{"crash n3@9s": false, "crash n3@10s": true, "partition n1|n2 5s@1m": true} {
		f, err := ParseFaults(spec)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Faults = f
		err = cfg.Validate()
		if bad != (err != nil) || (bad && !strings.Contains(err.Error(), "when the workload (duration 10s) is over")) {
			t.Errorf("%s: %v", spec, err)
		}
	}
}

// TestLastVisibilityBinOpenEnded: the last bin of the t-visibility curve holds every read
// started that long or longer after the ack, and says so.
func TestLastVisibilityBinOpenEnded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duration, cfg.Rate, cfg.Keys = 3*time.Second, 300, 50
	rep, err := Run(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tv := rep.TVisibility
	if len(tv) == 0 || !tv[len(tv)-1].OpenEnded || tv[len(tv)-1].TMs != 1000 {
		t.Fatalf("t-visibility %+v: want the last point open ended at 1000 ms", tv)
	}
	for _, p := range tv[:len(tv)-1] {
		if p.OpenEnded {
			t.Errorf("%+v is not the last bin", p)
		}
	}
	if rep.RequestTimeoutMs != 1000 {
		t.Errorf("request timeout %v ms", rep.RequestTimeoutMs)
	}
}
