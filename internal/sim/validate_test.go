package sim

import (
	"github.com/quorumkv/quorumkv/internal/quorum"
	"math"
	"testing"
	"time"
)

// TestImmediateReadsMatchTheClosedForm: with writes that reach the replicas slowly and
// reads issued the instant a write is acknowledged, a read sees the write only if one of
// the first R replicas to answer holds it. With a proxy coordinator exactly W replicas do,
// and P(stale) = C(N-W, R) / C(N, R) (PBS, Bailis et al. 2012); the node's core
// coordinates on a replica, stores its own copy at once and answers only with its own ack
// among the W, so max(W, k) do when its ack is the k-th (ClosedFormStaleStoring). The
// simulator, running the nodes' own core, must agree with the latter within sampling
// error — and not with the former.
func TestImmediateReadsMatchTheClosedForm(t *testing.T) {
	for _, tc := range []struct{ n, r, w int }{{3, 1, 1}, {3, 1, 2}, {3, 2, 1}, {5, 1, 1}, {5, 2, 2}, {5, 1, 3}} {
		cfg := DefaultConfig()
		cfg.Nodes, cfg.N, cfg.R, cfg.W = tc.n, tc.n, tc.r, tc.w
		cfg.Seed = uint64(100*tc.n + 10*tc.r + tc.w)
		cfg.Duration, cfg.Rate, cfg.Keys = 20*time.Second, 200, 100000
		cfg.ReadAfterWrite = 0
		// Writes crawl to replicas (mean 2 s), everything else is fast (1 ms): when a write
		// is acknowledged exactly W replicas hold it for the next milliseconds.
		fast := Exponential{Mean: time.Millisecond}
		cfg.Latency = Model{Name: "slow-writes", W: Exponential{Mean: 2 * time.Second}, A: fast, R: fast, S: fast}
		cfg.RequestTimeout = 30 * time.Second
		cfg.ReadRepair = quorum.RepairNone // a repair must not help the next trial
		cfg.AAE = false
		cfg.HealBudget = 0
		rep, err := Run(cfg, nil)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		got := rep.StaleReadPct / 100
		want := ClosedFormStaleStoring(tc.n, tc.r, tc.w)
		// Binomial sampling error, 4 sigma, plus 1% for writes that reach one more replica
		// within the read's few milliseconds.
		sigma := math.Sqrt(want * (1 - want) / float64(rep.Reads))
		proxy := ClosedFormStale(tc.n, tc.r, tc.w)
		t.Logf("N=%d R=%d W=%d: %d reads, stale %.4f, closed form %.4f (±%.4f; with a proxy coordinator %.4f)",
			tc.n, tc.r, tc.w, rep.Reads, got, want, 4*sigma, proxy)
		if math.Abs(got-want) > 4*sigma+0.01 {
			t.Errorf("N=%d R=%d W=%d: stale %.4f, closed form %.4f", tc.n, tc.r, tc.w, got, want)
		}
		if math.Abs(got-proxy) <= 4*sigma+0.01 {
			t.Errorf("N=%d R=%d W=%d: stale %.4f is the proxy coordinator's %.4f: is the coordinator's own copy stored late?", tc.n, tc.r, tc.w, got, proxy)
		}
	}
}
