package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/quorumkv/quorumkv/internal/node"
)

// The metric families the sampler reads (internal/node/metrics.go).
const (
	metricLatency      = "quorumkv_request_duration_seconds"
	metricReads        = "quorumkv_reads_total"
	metricWrites       = "quorumkv_writes_total"
	metricAAEExchanges = "quorumkv_aae_exchanges_total"
	metricAAEDiffered  = "quorumkv_aae_segments_differed_total"
	metricAAERepaired  = "quorumkv_aae_keys_repaired_total"
	metricAAEBytes     = "quorumkv_aae_bytes_total"
	metricStaleReads   = "quorumkv_stale_reads_total"
	metricReadRepairs  = "quorumkv_read_repairs_total"

	metricHintsPending   = "quorumkv_hints_pending"
	metricHintsBytes     = "quorumkv_hints_pending_bytes"
	metricHintsOldest    = "quorumkv_hints_oldest_age_seconds"
	metricHintsDelivered = "quorumkv_hints_delivered_by_target_total"
	metricHintsExpired   = "quorumkv_hints_expired_total"
	metricHintsDropped   = "quorumkv_hints_dropped_total"

	metricTreesReady   = "quorumkv_aae_trees_ready"
	metricTreeProgress = "quorumkv_aae_tree_rebuild_progress"
	metricTreeRebuilds = "quorumkv_aae_tree_rebuilds_total"
	metricTreeDrift    = "quorumkv_aae_tree_drift_total"
	metricTreeBytes    = "quorumkv_aae_tree_bytes"
)

// Ops are the operations the latency histogram labels, in display order.
var Ops = []string{"get", "put", "delete", "update"}

// histo is one operation's cumulative latency histogram, summed over its consistency
// labels.
type histo struct {
	bounds []float64 // upper bounds in seconds, ascending, +Inf excluded
	counts []float64 // cumulative count at each bound
	total  float64   // every observation, including those above the last bound
}

// sample is what one gather read: cumulative values since the node started.
type sample struct {
	at        time.Time
	hist      map[string]histo
	reads     float64
	readErrs  float64
	writes    float64
	writeErrs float64
	aaeOK     float64
	aaeErr    float64
	differed  float64
	repaired  float64
	aaeBytes  float64
	stale     float64
	repairs   float64
	hints     map[string]*HintTarget // by target
	trees     TreeView
}

// parseSample reads a sample out of gathered metric families. Families it does not know
// are ignored; one it knows with an unexpected type is an error.
func parseSample(at time.Time, mfs []*dto.MetricFamily) (sample, error) {
	s := sample{at: at, hist: map[string]histo{}, hints: map[string]*HintTarget{}}
	target := func(m *dto.Metric) *HintTarget {
		name := label(m, "target")
		t, ok := s.hints[name]
		if !ok {
			t = &HintTarget{Target: name}
			s.hints[name] = t
		}
		return t
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case metricLatency:
			if mf.GetType() != dto.MetricType_HISTOGRAM {
				return s, fmt.Errorf("ui: %s is a %v, want a histogram", mf.GetName(), mf.GetType())
			}
			for _, m := range mf.GetMetric() {
				op := label(m, "op")
				if err := s.addHisto(op, m.GetHistogram()); err != nil {
					return s, err
				}
			}
		case metricReads, metricWrites, metricAAEExchanges:
			for _, m := range mf.GetMetric() {
				v := m.GetCounter().GetValue()
				res := label(m, "result")
				bad := res == "error" || res == "quorum_failed"
				switch mf.GetName() {
				case metricReads:
					s.reads += v
					if bad {
						s.readErrs += v
					}
				case metricWrites:
					s.writes += v
					if bad {
						s.writeErrs += v
					}
				default:
					if res == "ok" {
						s.aaeOK += v
					} else {
						s.aaeErr += v
					}
				}
			}
		case metricAAEDiffered:
			s.differed = counterSum(mf)
		case metricAAERepaired:
			s.repaired = counterSum(mf)
		case metricAAEBytes:
			s.aaeBytes = counterSum(mf)
		case metricStaleReads:
			s.stale = counterSum(mf)
		case metricReadRepairs:
			s.repairs = counterSum(mf)
		case metricHintsPending, metricHintsBytes, metricHintsOldest, metricHintsDelivered, metricHintsExpired, metricHintsDropped:
			for _, m := range mf.GetMetric() {
				t, v := target(m), value(m)
				switch mf.GetName() {
				case metricHintsPending:
					t.Pending = v
				case metricHintsBytes:
					t.Bytes = v
				case metricHintsOldest:
					t.OldestAgeS = v
				case metricHintsDelivered:
					t.Delivered = v
				case metricHintsExpired:
					t.Expired = v
				default:
					t.Dropped = v
				}
			}
		case metricTreesReady:
			s.trees.Ready = gaugeSum(mf) > 0
		case metricTreeProgress:
			s.trees.RebuildProgress = gaugeSum(mf)
		case metricTreeRebuilds:
			s.trees.Rebuilds = counterSum(mf)
		case metricTreeDrift:
			s.trees.Drift = counterSum(mf)
		case metricTreeBytes:
			s.trees.TreeBytes = gaugeSum(mf)
		}
	}
	return s, nil
}

func (s *sample) addHisto(op string, h *dto.Histogram) error {
	var bounds, counts []float64
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		bounds = append(bounds, b.GetUpperBound())
		counts = append(counts, float64(b.GetCumulativeCount()))
	}
	cur, ok := s.hist[op]
	if !ok {
		s.hist[op] = histo{bounds: bounds, counts: counts, total: float64(h.GetSampleCount())}
		return nil
	}
	if !slices.Equal(cur.bounds, bounds) {
		return fmt.Errorf("ui: %s{op=%q}: bucket bounds differ between consistency labels", metricLatency, op)
	}
	for i := range counts {
		cur.counts[i] += counts[i]
	}
	cur.total += float64(h.GetSampleCount())
	s.hist[op] = cur
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// value reads a counter or a gauge.
func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func gaugeSum(mf *dto.MetricFamily) float64 {
	var v float64
	for _, m := range mf.GetMetric() {
		v += m.GetGauge().GetValue()
	}
	return v
}

func counterSum(mf *dto.MetricFamily) float64 {
	var v float64
	for _, m := range mf.GetMetric() {
		v += m.GetCounter().GetValue()
	}
	return v
}

// Point is what happened between two samples: rates per second, latency quantiles of the
// requests that finished in the window, anti-entropy work done in the window.
type Point struct {
	T      int64              `json:"t"` // end of the window, Unix milliseconds
	Ops    map[string]OpPoint `json:"ops"`
	Reads  RatePoint          `json:"reads"`
	Writes RatePoint          `json:"writes"`
	AAE    AAEPoint           `json:"aae"`
}

// OpPoint is one operation's request rate and latency in a window. The quantiles are
// absent when no request of the operation finished in the window.
type OpPoint struct {
	Rate  float64  `json:"rate"`
	P50Ms *float64 `json:"p50_ms,omitempty"`
	P99Ms *float64 `json:"p99_ms,omitempty"`
}

// RatePoint is requests and failed requests (quorum not reached, or any other error,
// including refused bad input) per second. Reads and writes are what the node's result
// counters distinguish; not-found reads are not errors.
type RatePoint struct {
	Rate   float64 `json:"rate"`
	Errors float64 `json:"errors"`
}

// AAEPoint is the anti-entropy work of a window, as counts (not rates).
type AAEPoint struct {
	Exchanges        float64 `json:"exchanges"`
	Errors           float64 `json:"errors"`
	SegmentsDiffered float64 `json:"segments_differed"`
	KeysRepaired     float64 `json:"keys_repaired"`
}

// point derives the window from prev to cur.
func point(prev, cur sample) Point {
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		secs = math.SmallestNonzeroFloat64
	}
	rate := func(a, b float64) float64 { return max(0, b-a) / secs }
	p := Point{T: cur.at.UnixMilli(), Ops: map[string]OpPoint{}}
	for _, op := range Ops {
		h := cur.hist[op]
		var op0 OpPoint
		if ph, ok := prev.hist[op]; ok && slices.Equal(ph.bounds, h.bounds) {
			d := histo{bounds: h.bounds, counts: make([]float64, len(h.counts)), total: h.total - ph.total}
			for i := range h.counts {
				d.counts[i] = h.counts[i] - ph.counts[i]
			}
			op0.Rate = max(0, d.total) / secs
			op0.P50Ms = ms(quantile(0.5, d))
			op0.P99Ms = ms(quantile(0.99, d))
		} else if h.total > 0 {
			// First observations of this operation: the window holds all of them.
			op0.Rate = h.total / secs
			op0.P50Ms = ms(quantile(0.5, h))
			op0.P99Ms = ms(quantile(0.99, h))
		}
		p.Ops[op] = op0
	}
	p.Reads = RatePoint{Rate: rate(prev.reads, cur.reads), Errors: rate(prev.readErrs, cur.readErrs)}
	p.Writes = RatePoint{Rate: rate(prev.writes, cur.writes), Errors: rate(prev.writeErrs, cur.writeErrs)}
	p.AAE = AAEPoint{
		Exchanges:        max(0, cur.aaeOK+cur.aaeErr-prev.aaeOK-prev.aaeErr),
		Errors:           max(0, cur.aaeErr-prev.aaeErr),
		SegmentsDiffered: max(0, cur.differed-prev.differed),
		KeysRepaired:     max(0, cur.repaired-prev.repaired),
	}
	return p
}

func ms(sec float64, ok bool) *float64 {
	if !ok {
		return nil
	}
	v := math.Round(sec*1e6) / 1e3 // milliseconds, to the microsecond
	return &v
}

// quantile estimates the q-quantile of a histogram as Prometheus's histogram_quantile
// does: find the bucket holding rank q*total and interpolate linearly inside it (the first
// bucket from 0). A rank above the last finite bound answers that bound. ok is false when
// the histogram is empty.
func quantile(q float64, h histo) (float64, bool) {
	if h.total <= 0 || len(h.bounds) == 0 {
		return 0, false
	}
	rank := q * h.total
	lower, below := 0.0, 0.0
	for i, ub := range h.bounds {
		c := h.counts[i]
		if c >= rank && c > below {
			return lower + (ub-lower)*(rank-below)/(c-below), true
		}
		lower, below = ub, c
	}
	return h.bounds[len(h.bounds)-1], true
}

// RecentWindow is how far back NodeView.Recent sums anti-entropy work.
const RecentWindow = 5 * time.Minute

// recent sums the anti-entropy work of the windows that ended after since.
func recent(pts []Point, since time.Time) AAEPoint {
	var a AAEPoint
	for _, p := range pts {
		if p.T <= since.UnixMilli() {
			continue
		}
		a.Exchanges += p.AAE.Exchanges
		a.Errors += p.AAE.Errors
		a.SegmentsDiffered += p.AAE.SegmentsDiffered
		a.KeysRepaired += p.AAE.KeysRepaired
	}
	return a
}

// Totals are cumulative counts since the node started.
type Totals struct {
	Reads            float64 `json:"reads"`
	ReadErrors       float64 `json:"read_errors"`
	Writes           float64 `json:"writes"`
	WriteErrors      float64 `json:"write_errors"`
	StaleReads       float64 `json:"stale_reads"`
	ReadRepairs      float64 `json:"read_repairs"`
	AAEExchanges     float64 `json:"aae_exchanges"`
	AAEErrors        float64 `json:"aae_errors"`
	SegmentsDiffered float64 `json:"aae_segments_differed"`
	KeysRepaired     float64 `json:"aae_keys_repaired"`
	AAEBytes         float64 `json:"aae_bytes"`
}

func totals(s sample) Totals {
	return Totals{Reads: s.reads, ReadErrors: s.readErrs, Writes: s.writes, WriteErrors: s.writeErrs,
		StaleReads: s.stale, ReadRepairs: s.repairs, AAEExchanges: s.aaeOK + s.aaeErr, AAEErrors: s.aaeErr,
		SegmentsDiffered: s.differed, KeysRepaired: s.repaired, AAEBytes: s.aaeBytes}
}

// TreeView is the node's hash trees, from its quorumkv_aae_tree* metrics.
type TreeView struct {
	Ready           bool    `json:"ready"`
	RebuildProgress float64 `json:"rebuild_progress"`
	Rebuilds        float64 `json:"rebuilds"`
	Drift           float64 `json:"drift"`
	TreeBytes       float64 `json:"tree_bytes"`
}

// HintsView is the hints a node keeps for others, from its quorumkv_hints_* metrics, with
// each target's state as the node's membership sees it.
type HintsView struct {
	Pending float64      `json:"pending"`
	Bytes   float64      `json:"bytes"`
	Targets []HintTarget `json:"targets"` // by target name
}

// HintTarget is the hints kept for one target.
type HintTarget struct {
	Target     string  `json:"target"`
	State      string  `json:"state"` // alive, suspect, down, leaving; down when not a member
	Pending    float64 `json:"pending"`
	Bytes      float64 `json:"bytes"`
	OldestAgeS float64 `json:"oldest_age_s"`
	Delivered  float64 `json:"delivered"`
	Expired    float64 `json:"expired"`
	Dropped    float64 `json:"dropped"`
}

// hintsView lists a sample's hint targets by name with their member state.
func hintsView(s sample, members []node.NodeInfo) HintsView {
	state := map[string]string{}
	for _, m := range members {
		state[m.ID] = m.State
	}
	hv := HintsView{Targets: []HintTarget{}}
	for _, t := range s.hints {
		ht := *t
		ht.State = "down"
		if st, ok := state[ht.Target]; ok {
			ht.State = st
		}
		hv.Pending += ht.Pending
		hv.Bytes += ht.Bytes
		hv.Targets = append(hv.Targets, ht)
	}
	slices.SortFunc(hv.Targets, func(a, b HintTarget) int { return strings.Compare(a.Target, b.Target) })
	return hv
}

// NodeView is GET /ui/api/node: one node's own view, rebuilt by the sampler every
// interval.
type NodeView struct {
	Node      string    `json:"node"`
	SampledAt int64     `json:"sampled_at"` // Unix milliseconds
	IntervalS float64   `json:"interval_s"`
	Latest    *Point    `json:"latest"` // the last window; null until two samples exist
	Series    []Point   `json:"series,omitempty"`
	Totals    Totals    `json:"totals"`
	Recent    AAEPoint  `json:"recent"` // anti-entropy work of the last RecentWindow
	Hints     HintsView `json:"hints"`
	Trees     TreeView  `json:"trees"`
	Error     string    `json:"error,omitempty"` // the last gather failed
}

// history is a fixed-size ring of points, oldest first once full. Only the sampler
// goroutine touches it.
type history struct {
	pts  []Point
	next int
	full bool
}

func newHistory(n int) *history { return &history{pts: make([]Point, n)} }

func (h *history) add(p Point) {
	h.pts[h.next] = p
	h.next = (h.next + 1) % len(h.pts)
	if h.next == 0 {
		h.full = true
	}
}

// points returns the points in time order, as a new slice.
func (h *history) points() []Point {
	if !h.full {
		return slices.Clone(h.pts[:h.next])
	}
	return append(slices.Clone(h.pts[h.next:]), h.pts[:h.next]...)
}

// encodedView is a NodeView encoded once, with and without its series, so a request
// writes bytes and computes nothing.
type encodedView struct {
	full, brief []byte
}

// published holds the latest encodedView; the sampler stores, handlers load.
type published struct{ p atomic.Pointer[encodedView] }

func (pb *published) store(v NodeView) error {
	full, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("ui: encode node view: %w", err)
	}
	v.Series = nil
	brief, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("ui: encode node view: %w", err)
	}
	pb.p.Store(&encodedView{full: full, brief: brief})
	return nil
}

func (pb *published) load() *encodedView { return pb.p.Load() }

// sampler gathers the node's registry every Interval and publishes a NodeView. Only its
// own goroutine calls tick after New's first one.
type sampler struct {
	src  Source
	cfg  Config
	log  *slog.Logger
	out  *published
	hist *history
	prev sample
	have bool // prev holds a sample
	last *Point
}

func newSampler(src Source, cfg Config, log *slog.Logger, out *published) *sampler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &sampler{src: src, cfg: cfg, log: log, out: out, hist: newHistory(cfg.History)}
}

func (s *sampler) run(done <-chan struct{}) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			s.tick(now)
		}
	}
}

// tick takes one sample and publishes the view it completes.
func (s *sampler) tick(now time.Time) {
	v := NodeView{Node: s.src.ID(), SampledAt: now.UnixMilli(), IntervalS: s.cfg.Interval.Seconds()}
	// Gather returns what it could collect along with an error naming what it could not.
	mfs, gerr := s.src.Registry().Gather()
	cur, perr := parseSample(now, mfs)
	if err := errors.Join(gerr, perr); err != nil {
		v.Error = err.Error()
		s.log.Warn("dashboard metrics sample failed", "err", err)
	}
	if perr == nil {
		if s.have {
			p := point(s.prev, cur)
			s.hist.add(p)
			s.last = &p
		}
		s.prev, s.have = cur, true
	}
	v.Latest = s.last
	v.Series = s.hist.points()
	v.Totals = totals(s.prev)
	v.Recent = recent(v.Series, now.Add(-RecentWindow))
	// Hints and trees come from the same gather: the sampler costs the node what one
	// Prometheus scrape does, no more.
	v.Hints = hintsView(s.prev, s.src.Cluster().Nodes)
	v.Trees = s.prev.trees
	if err := s.out.store(v); err != nil {
		s.log.Error("dashboard view not published", "err", err)
	}
}
