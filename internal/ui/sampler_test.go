package ui

import (
	"context"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/node"
)

var testBounds = []float64{.001, .0025, .005, .01, .025, .05, .1}

// exactQuantile is the naive answer: sort the observations, take the rank.
func exactQuantile(q float64, obs []float64) float64 {
	s := slices.Clone(obs)
	sort.Float64s(s)
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

func histOf(obs []float64) histo {
	h := histo{bounds: testBounds, counts: make([]float64, len(testBounds))}
	for _, o := range obs {
		for i, b := range testBounds {
			if o <= b {
				h.counts[i]++
			}
		}
		h.total++
	}
	return h
}

func TestQuantile(t *testing.T) {
	cases := []struct {
		name string
		obs  []float64
		q    float64
		want float64 // by linear interpolation inside the bucket, as histogram_quantile
	}{
		{"one bucket, median", []float64{.002, .002, .002, .002}, .5, .001 + .0015*.5},
		{"first bucket interpolates from 0", []float64{.0005, .0005}, .5, .0005},
		{"p99 of a tail", append(slices.Repeat([]float64{.0008}, 99), .04), .99, .001},
		{"above the last bound answers the bound", []float64{.5, .5}, .99, .1},
	}
	for _, c := range cases {
		got, ok := quantile(c.q, histOf(c.obs))
		if !ok || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: quantile(%v) = %v, %v; want %v", c.name, c.q, got, ok, c.want)
		}
	}
	if _, ok := quantile(.5, histo{bounds: testBounds, counts: make([]float64, len(testBounds))}); ok {
		t.Error("quantile of an empty histogram reported a value")
	}
}

// TestQuantileWithinBucket checks the estimate against the exact quantile: it must lie in
// the same bucket (the histogram cannot know more).
func TestQuantileWithinBucket(t *testing.T) {
	bucketOf := func(v float64) int {
		for i, b := range testBounds {
			if v <= b {
				return i
			}
		}
		return len(testBounds) - 1 // above the last bound: clamped to it
	}
	seed := uint64(1)
	next := func() float64 { // xorshift: deterministic observations between 0 and 0.2 s
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return float64(seed%200000) / 1e6
	}
	for round := range 200 {
		obs := make([]float64, 1+round%50)
		for i := range obs {
			obs[i] = next()
		}
		for _, q := range []float64{.5, .9, .99} {
			got, ok := quantile(q, histOf(obs))
			exact := exactQuantile(q, obs)
			if !ok || bucketOf(got) != bucketOf(exact) {
				t.Fatalf("round %d: q%v of %v = %v, exact %v: different buckets", round, q, obs, got, exact)
			}
		}
	}
}

// TestPointFromRegistry gathers a real registry shaped like the node's and checks the
// window's rates, errors and quantiles.
func TestPointFromRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricLatency, Buckets: testBounds}, []string{"op", "consistency"})
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricReads}, []string{"result"})
	writes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricWrites}, []string{"result"})
	aae := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricAAEExchanges}, []string{"result"})
	repaired := prometheus.NewCounter(prometheus.CounterOpts{Name: metricAAERepaired})
	reg.MustRegister(lat, reads, writes, aae, repaired)

	t0 := time.Unix(1000, 0)
	gather := func(at time.Time) sample {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		s, err := parseSample(at, mfs)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// Before the window: slow gets, which must not count in it.
	for range 10 {
		lat.WithLabelValues("get", "2of3").Observe(.09)
	}
	reads.WithLabelValues("ok").Add(10)
	s0 := gather(t0)

	// In the window (10 s): 100 gets over two consistency labels, 1 slow; 20 puts, first ever.
	for i := range 99 {
		lat.WithLabelValues("get", []string{"2of3", "1of3"}[i%2]).Observe(.0008)
	}
	lat.WithLabelValues("get", "3of3").Observe(.04)
	for range 20 {
		lat.WithLabelValues("put", "2of3").Observe(.003)
	}
	reads.WithLabelValues("ok").Add(90)
	reads.WithLabelValues("not_found").Add(5)
	reads.WithLabelValues("quorum_failed").Add(3)
	reads.WithLabelValues("error").Add(2)
	writes.WithLabelValues("ok").Add(20)
	aae.WithLabelValues("ok").Add(4)
	aae.WithLabelValues("error").Add(1)
	repaired.Add(7)
	p := point(s0, gather(t0.Add(10*time.Second)))

	if p.T != t0.Add(10*time.Second).UnixMilli() {
		t.Errorf("T = %d", p.T)
	}
	get := p.Ops["get"]
	// Rank 50 of 100 lies in the first bucket, (0, 1 ms], which holds 99: 50/99 of 1 ms
	// (to the microsecond); rank 99 is that bucket's top.
	if get.Rate != 10 || get.P50Ms == nil || *get.P50Ms != 0.505 || get.P99Ms == nil || *get.P99Ms != 1 {
		t.Errorf("get = rate %v p50 %v p99 %v; want 10/s, 0.505 ms, 1 ms", get.Rate, deref(get.P50Ms), deref(get.P99Ms))
	}
	put := p.Ops["put"]
	// All 20 in (2.5 ms, 5 ms]: rank 10 is halfway.
	if put.Rate != 2 || put.P50Ms == nil || *put.P50Ms != 3.75 {
		t.Errorf("put = rate %v p50 %v; want 2/s, 3.75 ms", put.Rate, deref(put.P50Ms))
	}
	if del := p.Ops["delete"]; del.Rate != 0 || del.P50Ms != nil || del.P99Ms != nil {
		t.Errorf("delete without requests = %+v, want zero rate and no quantiles", del)
	}
	if p.Reads != (RatePoint{Rate: 10, Errors: .5}) || p.Writes != (RatePoint{Rate: 2, Errors: 0}) {
		t.Errorf("reads %+v writes %+v; want 10/s with 0.5 errors/s, 2/s with none", p.Reads, p.Writes)
	}
	if p.AAE != (AAEPoint{Exchanges: 5, Errors: 1, KeysRepaired: 7}) {
		t.Errorf("aae = %+v", p.AAE)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestHistoryKeepsTheLastWindowsInOrder(t *testing.T) {
	h := newHistory(3)
	var want []int64
	for i := int64(1); i <= 7; i++ {
		h.add(Point{T: i})
		want = append(want, i)
		if len(want) > 3 {
			want = want[1:]
		}
		var got []int64
		for _, p := range h.points() {
			got = append(got, p.T)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after %d points: %v, want %v", i, got, want)
		}
	}
}

func TestRecentSumsTheLastWindows(t *testing.T) {
	now := time.Unix(10_000, 0)
	pts := []Point{
		{T: now.Add(-6 * time.Minute).UnixMilli(), AAE: AAEPoint{Exchanges: 100, KeysRepaired: 100}},
		{T: now.Add(-4 * time.Minute).UnixMilli(), AAE: AAEPoint{Exchanges: 2, KeysRepaired: 1}},
		{T: now.UnixMilli(), AAE: AAEPoint{Exchanges: 3, Errors: 1, SegmentsDiffered: 4, KeysRepaired: 2}},
	}
	if got := recent(pts, now.Add(-RecentWindow)); got != (AAEPoint{Exchanges: 5, Errors: 1, SegmentsDiffered: 4, KeysRepaired: 3}) {
		t.Fatalf("recent = %+v", got)
	}
}

func TestFanCacheSharesOneBuild(t *testing.T) {
	var c fanCache
	var builds atomic.Int32
	release := make(chan struct{})
	build := func() []byte {
		builds.Add(1)
		<-release
		return []byte("v")
	}
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.get(context.Background(), time.Minute, build)
			if err != nil {
				t.Error(err)
			}
			results[i] = string(v)
		}()
	}
	// Wait until the first caller builds; the others then wait on it.
	for builds.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("%d builds for 8 concurrent callers, want 1", n)
	}
	for i, r := range results {
		if r != "v" {
			t.Fatalf("caller %d got %q", i, r)
		}
	}
	// Expired: the next caller builds again.
	if _, err := c.get(context.Background(), 0, func() []byte { builds.Add(1); return []byte("w") }); err != nil || builds.Load() != 2 {
		t.Fatalf("after expiry: builds %d, err %v", builds.Load(), err)
	}
	// A caller whose context ends stops waiting for a build in progress.
	c2 := fanCache{inflight: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c2.get(ctx, time.Minute, build); err == nil {
		t.Fatal("a cancelled caller waited for another's build")
	}
}

// TestHintsAndTreesFromRegistry: the hint queues and hash trees come from the gather, with
// each target's state from the membership.
func TestHintsAndTreesFromRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	pending := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricHintsPending}, []string{"target"})
	oldest := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricHintsOldest}, []string{"target"})
	delivered := prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricHintsDelivered}, []string{"target"})
	ready := prometheus.NewGauge(prometheus.GaugeOpts{Name: metricTreesReady})
	drift := prometheus.NewCounter(prometheus.CounterOpts{Name: metricTreeDrift})
	reg.MustRegister(pending, oldest, delivered, ready, drift)
	pending.WithLabelValues("n3").Set(12)
	oldest.WithLabelValues("n3").Set(90)
	pending.WithLabelValues("gone").Set(1)
	delivered.WithLabelValues("n2").Add(5)
	ready.Set(1)
	drift.Add(2)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseSample(time.Now(), mfs)
	if err != nil {
		t.Fatal(err)
	}
	hv := hintsView(s, []node.NodeInfo{{ID: "n2", State: "alive"}, {ID: "n3", State: "down"}})
	want := []HintTarget{
		{Target: "gone", State: "down", Pending: 1},
		{Target: "n2", State: "alive", Delivered: 5},
		{Target: "n3", State: "down", Pending: 12, OldestAgeS: 90},
	}
	if !slices.Equal(hv.Targets, want) || hv.Pending != 13 {
		t.Fatalf("hints: %+v\nwant targets %+v and 13 pending", hv, want)
	}
	if s.trees != (TreeView{Ready: true, Drift: 2}) {
		t.Fatalf("trees: %+v", s.trees)
	}
}
