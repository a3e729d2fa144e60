package sim

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/quorum"
)

// pbsConfig is PBS's experiment on the simulator at N=3 (three nodes, each a replica of
// every key, so the coordinator is always one of them): every write to a fresh key, read
// after the given delay through a random node, no read repair nor anti-entropy to help.
func pbsConfig(model string, rq, wq int, after time.Duration, seed uint64) Config {
	m, err := PBSModel(model)
	if err != nil {
		panic(err)
	}
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Nodes, cfg.N, cfg.R, cfg.W = 3, 3, rq, wq
	cfg.Duration, cfg.Rate = 20*time.Second, 200
	cfg.ReadAfterWrite = after
	cfg.Latency = m
	cfg.RequestTimeout = 10 * time.Second
	cfg.ReadRepair = quorum.RepairNone
	cfg.AAE = false
	cfg.HealBudget = 0
	return cfg
}

func pbsRun(t testing.TB, cfg Config) *Report {
	t.Helper()
	rep, err := Run(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestPBSShape: under the paper's latency fits, the nodes' own core reproduces WARS with a
// storing coordinator (warsNeeds with storing: the coordinator is a replica and holds the
// write at once, its own acknowledgement still comes after a W and an A latency) at the
// paper's section 5.5 points, within 3 points (about 4,000 reads a run). These are
// fresher than the paper's figures, whose coordinator is a proxy: at t=0 LNKD-DISK is
// 0.72, not 0.44 (docs/sim.md).
func TestPBSShape(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, c := range PBSPaperPoints {
		m, _ := PBSModel(c.Model)
		want := 1 - staleAt(warsNeeds(m, 3, c.R, c.W, 100000, r, true), c.T)
		rep := pbsRun(t, pbsConfig(c.Model, c.R, c.W, c.T, 11))
		got := 1 - rep.StaleReadPct/100
		t.Logf("%-9s t=%-4s p_consistent %.3f (WARS, storing coordinator %.3f; paper, proxy %.3f)", c.Model, c.T, got, want, c.PConsistent)
		if math.Abs(got-want) > 0.03 {
			t.Errorf("%s t=%s: p_consistent %.3f, WARS with a storing coordinator %.3f", c.Model, c.T, got, want)
		}
	}
}

// TestPBS999 checks the simulator at the paper's Table 4 times to 99.9% consistency: the
// stale share of reads started that long after their write's acknowledgement matches WARS
// with a storing coordinator at that time, within 4 sigma plus 0.05 points. By default a
// fixed few cells (the YMMR R=W=1 at 1,364 ms among them); -sim.sweep runs all
// of Table 4.
func TestPBS999(t *testing.T) {
	cells := []PBSPoint{
		{"ymmr", 1, 1, ms(1364), 0.999}, {"lnkd-disk", 2, 1, ms(13.6), 0.999},
		{"wan", 2, 1, ms(30.2), 0.999}, {"lnkd-ssd", 1, 1, ms(1.85), 0.999},
	}
	if *sweep > 0 {
		cells = PBSPaper999
	}
	r := rand.New(rand.NewPCG(9, 9))
	for _, c := range cells {
		m, _ := PBSModel(c.Model)
		want := staleAt(warsNeeds(m, 3, c.R, c.W, pbsIters(), r, true), c.T)
		rep := pbsRun(t, pbsConfig(c.Model, c.R, c.W, c.T, 13))
		got := rep.StaleReadPct / 100
		tol := 4*math.Sqrt(max(want, 0.001)*(1-want)/float64(rep.Reads)) + 0.0005
		t.Logf("%-9s R=%d W=%d t=%-7s %d reads, %.3f%% stale (WARS, storing coordinator %.3f%%; paper 0.1%%)",
			c.Model, c.R, c.W, c.T, rep.Reads, 100*got, 100*want)
		if math.Abs(got-want) > tol {
			t.Errorf("%s R=%d W=%d t=%s: %.3f%% stale, WARS with a storing coordinator %.3f%% (±%.3f)", c.Model, c.R, c.W, c.T, 100*got, 100*want, 100*tol)
		}
	}
}

// TestReadAfterWriteFreshKeys: PBS's experiment writes a fresh key every time, whatever
// Keys says. It used to draw keys from Keys (1,000 by default): at 1,000 ops/s a key
// came back within the read's delay, the read was judged against the newer write, and
// YMMR at R=W=1, 1,364 ms after the ack, read 98.1% consistent instead of the model's
// 99.9%.
func TestReadAfterWriteFreshKeys(t *testing.T) {
	cfg := pbsConfig("ymmr", 1, 1, ms(1364), 3)
	def := DefaultConfig()
	cfg.Keys, cfg.Rate, cfg.Duration = def.Keys, def.Rate, 5*time.Second
	w, err := newWorld(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.run(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.hist.keys) != rep.Writes || rep.Writes < 4000 {
		t.Errorf("%d writes to %d keys: want one fresh key per write", rep.Writes, len(w.hist.keys))
	}
	if rep.StaleReadPct > 0.3 {
		t.Errorf("%.2f%% of %d reads stale 1,364 ms after the ack (YMMR, R=W=1): want about 0.1%%", rep.StaleReadPct, rep.Reads)
	}
	t.Logf("%d writes, %d keys, %d reads, %.3f%% stale", rep.Writes, len(w.hist.keys), rep.Reads, rep.StaleReadPct)
}
