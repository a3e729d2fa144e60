package sim

import (
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/quorum"
)

// pbsRun measures, with the real coordinator, the probability that a read started t after
// a write's acknowledgement sees it, at N=3 R=W=1 under a PBS latency model.
func pbsRun(t testing.TB, model string, after time.Duration, seed uint64) float64 {
	m, err := PBSModel(model)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Nodes, cfg.N, cfg.R, cfg.W = 3, 3, 1, 1
	cfg.Duration, cfg.Rate, cfg.Keys = 20*time.Second, 200, 100000
	cfg.ReadAfterWrite = after
	cfg.Latency = m
	cfg.RequestTimeout = 10 * time.Second
	cfg.ReadRepair = quorum.RepairNone
	cfg.AAE, cfg.HintedHandoff = false, false
	cfg.HealBudget = 0
	rep, err := Run(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return 1 - rep.StaleReadPct/100
}

// TestPBSShape: under the paper's fitted latencies, our coordinator and replicas reproduce
// the paper's t-visibility for N=3, R=W=1 (section 5.5): immediately after commit
// LNKD-SSD 97.5%, LNKD-DISK 43.9%, YMMR 89.3%; 10 ms after, 100%, 92.5%, 93.9%.
func TestPBSShape(t *testing.T) {
	for _, c := range []struct {
		model string
		after time.Duration
		paper float64
	}{
		{"lnkd-ssd", 0, 0.975}, {"lnkd-disk", 0, 0.439}, {"ymmr", 0, 0.893},
		{"lnkd-ssd", 10 * time.Millisecond, 1.0}, {"lnkd-disk", 10 * time.Millisecond, 0.925}, {"ymmr", 10 * time.Millisecond, 0.939},
	} {
		p := pbsRun(t, c.model, c.after, 11)
		t.Logf("%-9s t=%-4s p_consistent %.3f (paper %.3f)", c.model, c.after, p, c.paper)
		// About 4,000 reads per run: 3 sigma of a binomial near 0.5 is 0.024.
		if p < c.paper-0.03 || p > c.paper+0.03 {
			t.Errorf("%s t=%s: p_consistent %.3f, the paper %.3f", c.model, c.after, p, c.paper)
		}
	}
}
