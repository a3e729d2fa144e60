package sim

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPBSModelKinds(t *testing.T) {
	ssd := paretoExp(0.9122, 0.235, 10, 1.66)
	cases := []struct {
		name       string
		w, a, r, s string
	}{
		{"lnkd-ssd", ssd.String(), ssd.String(), ssd.String(), ssd.String()},
		{"LNKD-DISK", "mix:0.38:(pareto:1.05ms:1.51):(exp:5.46448ms)", ssd.String(), ssd.String(), ssd.String()},
		{"ymmr", "mix:0.939:(pareto:3ms:3.35):(exp:357.142857ms)",
			"mix:0.982:(pareto:1.5ms:3.8):(exp:46.082949ms)",
			"mix:0.982:(pareto:1.5ms:3.8):(exp:46.082949ms)",
			"mix:0.982:(pareto:1.5ms:3.8):(exp:46.082949ms)"},
	}
	for _, c := range cases {
		m, err := PBSModel(c.name)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if m.Name != strings.ToLower(c.name) {
			t.Errorf("%s: name %q", c.name, m.Name)
		}
		for i, got := range []Dist{m.W, m.A, m.R, m.S} {
			want := []string{c.w, c.a, c.r, c.s}[i]
			if got.String() != want {
				t.Errorf("%s kind %c: %s, want %s", c.name, "WARS"[i], got, want)
			}
		}
	}
	if got, want := ssd.String(), "mix:0.9122:(pareto:235µs:10):(exp:602.409µs)"; got != want {
		t.Errorf("LNKD-SSD: %s, want %s", got, want)
	}
}

func TestPBSModelWAN(t *testing.T) {
	m, err := PBSModel("wan")
	if err != nil {
		t.Fatal(err)
	}
	disk, _ := PBSModel("lnkd-disk")
	if m.Remote != WANDelay || m.W.String() != disk.W.String() || m.A.String() != disk.A.String() ||
		m.R.String() != disk.R.String() || m.S.String() != disk.S.String() {
		t.Errorf("wan = %+v, want LNKD-DISK with %s between nodes", m, WANDelay)
	}
	for _, name := range []string{"lnkd-ssd", "lnkd-disk", "ymmr"} {
		if m, _ := PBSModel(name); m.Remote != 0 {
			t.Errorf("%s: remote delay %s", name, m.Remote)
		}
	}
}

func TestPBSModelUnknown(t *testing.T) {
	for _, name := range []string{"", "lnkd", "exp:1ms", "ymmr2"} {
		if _, err := PBSModel(name); err == nil {
			t.Errorf("PBSModel(%q): no error", name)
		}
	}
}

func TestParseModel(t *testing.T) {
	cases := []struct {
		spec, name string
		ok         bool
	}{
		{"lnkd-ssd", "lnkd-ssd", true},
		{" WAN ", "wan", true},
		{"ymmr", "ymmr", true},
		{"const:1ms", "const:1ms", true},
		{"exp:2ms", "exp:2ms", true},
		{"mix:0.9:(exp:1ms):(const:50ms)", "mix:0.9:(exp:1ms):(const:50ms)", true},
		{"pareto:1ms:1.5", "pareto:1ms:1.5", true},
		{"", "", false},
		{"lnkd", "", false},
		{"exp:-1ms", "", false},
	}
	for _, c := range cases {
		m, err := ParseModel(c.spec)
		if (err == nil) != c.ok {
			t.Errorf("ParseModel(%q): err %v, want ok=%v", c.spec, err, c.ok)
			continue
		}
		if !c.ok {
			if !strings.Contains(err.Error(), "lnkd-ssd") {
				t.Errorf("ParseModel(%q): error %q does not list the PBS models", c.spec, err)
			}
			continue
		}
		if m.Name != c.name || m.W == nil || m.A == nil || m.R == nil || m.S == nil {
			t.Errorf("ParseModel(%q) = %+v, want name %q and every kind", c.spec, m, c.name)
		}
	}
}

// pbsIters is how many WARS trials a figure gets: enough for 99.9% figures (about 50
// stale trials) by default, ten times more with -sim.sweep.
func pbsIters() int {
	if *sweep > 0 {
		return 500000
	}
	return 50000
}

// warsNeeds is PBS's WARS Monte Carlo (section 5.1) for N replicas and quorums R and W
// under latency model m: for each of iters writes, the least t after its commit at which
// a read sees it (0: at once), sorted. A read started t after commit reaches replica i at
// commit + t + R_i and sees the write if that is no earlier than the write reached i
// (W_i); it returns once the first R replicas answered (R_i + S_i), and is consistent if
// one of them saw the write. The write commits on its W-th acknowledgement (W_i + A_i).
//
// With storing false the coordinator is a proxy, as in the paper. With storing true it is
// one of the replicas and holds the write from the start, as quorumkv's node core (and
// Dynamo's coordinator, section 4.5 of its paper) does: its own acknowledgement still
// takes W_i + A_i, and the write commits no earlier than it (the coordinator's copy must
// be durable before "ok"), but reads find its copy at once. With m.Remote (WAN) each replica is a
// datacenter: the write's and the read's coordinators each sit with one replica, chosen
// at random, and every other message pays Remote each way.
func warsNeeds(m Model, n, rq, wq, iters int, r *rand.Rand, storing bool) []time.Duration {
	out := make([]time.Duration, iters)
	ws, wa := make([]time.Duration, n), make([]time.Duration, n)
	rs, rt := make([]time.Duration, n), make([]time.Duration, n)
	acks := make([]time.Duration, n)
	idx := make([]int, n)
	for it := range iters {
		wl, rl := r.IntN(n), r.IntN(n)
		for i := range n {
			var dw, dr time.Duration
			if i != wl {
				dw = m.Remote
			}
			if i != rl {
				dr = m.Remote
			}
			ws[i] = m.W.Sample(r) + dw
			wa[i] = ws[i] + m.A.Sample(r) + dw
			rs[i] = m.R.Sample(r) + dr
			rt[i] = rs[i] + m.S.Sample(r) + dr
		}
		copy(acks, wa)
		slices.Sort(acks)
		commit := acks[wq-1]
		if storing {
			commit = max(commit, wa[wl]) // "ok" waits for the coordinator's own ack
			ws[wl] = 0
		}
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(rt[a], rt[b]) })
		need := time.Duration(math.MaxInt64)
		for _, i := range idx[:rq] {
			need = min(need, ws[i]-commit-rs[i])
		}
		out[it] = max(need, 0)
	}
	slices.Sort(out)
	return out
}

// staleAt is the share of needs above t: the probability that a read started t after
// commit misses the write.
func staleAt(needs []time.Duration, t time.Duration) float64 {
	i, _ := slices.BinarySearch(needs, t+1)
	return float64(len(needs)-i) / float64(len(needs))
}

// TestPBSModelsReproducePaper: our encoding of the paper's latency fits, run through
// its WARS model (proxy coordinator, as the paper), reproduces every t-visibility figure
// the paper publishes for them at N=3: section 5.5's points (R=W=1, t=0 and 10 ms) within
// 1.5 points, and Table 4's time to 99.9% consistency for every model and (R, W): at the
// paper's time the simulated staleness lies between 0.04% and 0.25% (the 99.9% time of a
// long tail moves a lot for a small change in probability: YMMR's exponential write tail
// has a 357 ms mean), or, where the paper gives 0, is below 0.15% at once. Also the
// LNKD-DISK times at N=2 and N=10 from the paper's replica sweep.
func TestPBSModelsReproducePaper(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	iters := pbsIters()
	for _, c := range PBSPaperPoints {
		m, _ := PBSModel(c.Model)
		got := 1 - staleAt(warsNeeds(m, 3, c.R, c.W, iters, r, false), c.T)
		t.Logf("%-9s t=%-4s p_consistent %.4f (paper %.3f)", c.Model, c.T, got, c.PConsistent)
		if math.Abs(got-c.PConsistent) > 0.015 {
			t.Errorf("%s t=%s: p_consistent %.4f, paper %.3f", c.Model, c.T, got, c.PConsistent)
		}
	}
	check := func(name string, n, rq, wq int, paperT time.Duration) {
		m, _ := PBSModel(name)
		needs := warsNeeds(m, n, rq, wq, iters, r, false)
		q := needs[int(0.999*float64(len(needs)))]
		stale := staleAt(needs, paperT)
		t.Logf("%-9s N=%d R=%d W=%d: 99.9%% at %8.2f ms (paper %7.2f ms); stale at the paper's time %.4f%%",
			name, n, rq, wq, msOf(q), msOf(paperT), 100*stale)
		if paperT == 0 && stale > 0.0015 || paperT > 0 && (stale < 0.0004 || stale > 0.0025) {
			t.Errorf("%s N=%d R=%d W=%d: %.4f%% stale at the paper's 99.9%% time %s", name, n, rq, wq, 100*stale, paperT)
		}
	}
	for _, c := range PBSPaper999 {
		check(c.Model, 3, c.R, c.W, c.T)
	}
	for _, c := range PBSPaper999N {
		check("lnkd-disk", c.N, 1, 1, c.T)
	}
}
