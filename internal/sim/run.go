package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/version"
)

func runSim(cfg Config, progress func(done, total time.Duration)) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	wallStart := time.Now()
	w, err := newWorld(cfg)
	if err != nil {
		return nil, err
	}
	for _, n := range w.nodes {
		w.startTicks(n)
	}
	w.scheduleFaults()
	w.scheduleWorkload()

	// The workload, then healing: every fault undone, handoff and anti-entropy given
	// HealBudget to converge.
	total := cfg.Duration + cfg.HealBudget
	nextProgress := time.Duration(0)
	report := func() {
		if progress != nil && w.now >= nextProgress {
			progress(w.now, total)
			nextProgress = w.now + total/200
		}
	}
	for w.step(cfg.Duration) {
		report()
	}
	w.now = cfg.Duration
	w.healAll()
	w.healing = true
	convergedAt := time.Duration(-1)
	for t := cfg.Duration; t <= total; t += 250 * time.Millisecond {
		for w.step(t) {
			report()
		}
		w.now = t
		if w.converged() {
			convergedAt = t - cfg.Duration
			break
		}
	}
	if progress != nil {
		progress(total, total)
	}
	w.hist.checkFinal(w)
	rep := w.finishReport(convergedAt, time.Since(wallStart))
	if len(rep.Violations) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrViolation, strings.Join(rep.Violations, "; "))
	}
	return rep, nil
}

// startTicks schedules a node's periodic work (again after a restart).
func (w *world) startTicks(n *snode) {
	jitter := func(d time.Duration) time.Duration { return d/2 + time.Duration(w.rng.Int64N(int64(d))) }
	if w.cfg.HintedHandoff {
		var tick func()
		tick = func() {
			n.handoff()
			w.atNode(w.now+w.cfg.HandoffInterval, n.id, tick)
		}
		w.atNode(w.now+jitter(w.cfg.HandoffInterval), n.id, tick)
	}
	if w.cfg.AAE {
		var tick func()
		tick = func() {
			n.exchange()
			w.atNode(w.now+w.cfg.AAEInterval, n.id, tick)
		}
		w.atNode(w.now+jitter(w.cfg.AAEInterval), n.id, tick)
	}
}

// activeFault is a fault in force, and how to undo it.
type activeFault struct {
	f    Fault
	undo func()
}

func (w *world) scheduleFaults() {
	for _, f := range w.cfg.Faults {
		f := f
		w.at(f.At, func() {
			if w.healing {
				return
			}
			undo := w.apply(f)
			end := w.cfg.Duration
			if f.For > 0 && f.At+f.For < end {
				end = f.At + f.For
			}
			af := &activeFault{f: f, undo: undo}
			w.active = append(w.active, af)
			w.at(end, func() { w.undo(af) })
		})
	}
}

func (w *world) undo(af *activeFault) {
	i := slices.Index(w.active, af)
	if i < 0 {
		return
	}
	w.active = slices.Delete(w.active, i, i+1)
	af.undo()
	w.refreshReachability()
}

// healAll undoes every fault still in force.
func (w *world) healAll() {
	for len(w.active) > 0 {
		w.undo(w.active[0])
	}
}

// apply puts a fault in force and returns what undoes it.
func (w *world) apply(f Fault) func() {
	defer w.refreshReachability()
	switch f.Kind {
	case Partition:
		a, b := f.Groups[0], f.Groups[1]
		var links [][2]int
		for _, i := range a {
			for _, j := range b {
				links = append(links, [2]int{i, j})
				if !f.OneWay {
					links = append(links, [2]int{j, i})
				}
			}
		}
		for _, l := range links {
			w.cut[l[0]][l[1]] = true
		}
		return func() {
			for _, l := range links {
				w.cut[l[0]][l[1]] = false
			}
		}
	case Crash:
		for _, i := range f.Groups[0] {
			w.crash(w.nodes[i])
		}
		return func() {
			for _, i := range f.Groups[0] {
				w.restart(w.nodes[i])
			}
		}
	case Pause:
		for _, i := range f.Groups[0] {
			w.nodes[i].paused = true
		}
		return func() {
			for _, i := range f.Groups[0] {
				n := w.nodes[i]
				n.paused = false
				for _, e := range n.deferred {
					w.atNode(w.now, n.id, e.fn)
				}
				n.deferred = nil
			}
		}
	case Skew:
		for _, i := range f.Groups[0] {
			w.nodes[i].skew = f.Skew
		}
		return func() {
			for _, i := range f.Groups[0] {
				w.nodes[i].skew = 0
			}
		}
	}
	return func() {}
}

// crash kills a node: its pending events die with it, and its store keeps only what was
// synced.
func (w *world) crash(n *snode) {
	if !n.up {
		return
	}
	n.up, n.paused, n.deferred = false, false, nil
	n.inc++
	n.store = n.store.CrashClone()
}

// restart brings a crashed node back on what its store kept.
func (w *world) restart(n *snode) {
	if n.up {
		return
	}
	if err := n.open(); err != nil {
		w.hist.violate("%s did not restart: %v", n.name, err)
		return
	}
	n.up = true
	n.hlc = version.HLClock{}
	w.startTicks(n)
}

// scheduleWorkload issues client operations as a Poisson process at Rate.
func (w *world) scheduleWorkload() {
	var zipf *rand.Zipf
	if w.cfg.KeyDist == "zipfian" {
		zipf = rand.NewZipf(w.rng, w.cfg.ZipfS, 1, uint64(w.cfg.Keys-1))
	}
	var next func()
	fresh := 0
	next = func() {
		if w.now >= w.cfg.Duration {
			return
		}
		gap := time.Duration(w.rng.ExpFloat64() / w.cfg.Rate * float64(time.Second))
		if w.cfg.ReadAfterWrite >= 0 {
			key := keyName(fresh % w.cfg.Keys)
			fresh++
			w.clientWriteThen(key, w.rng.IntN(w.cfg.Nodes), func() {
				w.at(w.now+w.cfg.ReadAfterWrite, func() { w.clientRead(key, w.rng.IntN(w.cfg.Nodes)) })
			})
			w.at(w.now+gap, next)
			return
		}
		var ki int
		if zipf != nil {
			ki = int(zipf.Uint64())
		} else {
			ki = w.rng.IntN(w.cfg.Keys)
		}
		via := w.rng.IntN(w.cfg.Nodes)
		switch r := w.rng.Float64(); {
		case r < w.cfg.ReadRatio:
			w.clientRead(keyName(ki), via)
		case r < w.cfg.ReadRatio+(1-w.cfg.ReadRatio)*w.cfg.CounterRatio:
			w.clientIncrement(counterName(ki%counterKeys(w.cfg)), via)
		default:
			tomb := w.rng.Float64() < w.cfg.DeleteRatio
			w.clientWrite(keyName(ki), via, tomb)
		}
		w.at(w.now+gap, next)
	}
	w.at(0, next)
}

func (w *world) clientRead(key string, via int) {
	start := w.now
	n := w.nodes[via]
	if !n.up {
		w.hist.failedReads++
		return
	}
	settled := false
	w.atNode(w.now, via, func() {
		n.get(key, func(a *quorum.Answer) {
			if settled {
				return
			}
			settled = true
			w.rep.ReadLatencies = append(w.rep.ReadLatencies, msOf(w.now-start))
			w.hist.read(key, start, a, w.cfg.VisibilityBins)
			w.traceResult(1, key, a.Err == nil)
		})
	})
	w.at(start+2*w.cfg.RequestTimeout, func() {
		if !settled {
			settled = true
			w.hist.failedReads++
			w.traceResult(1, key, false)
		}
	})
}

func (w *world) clientWrite(key string, via int, tomb bool) {
	w.clientWriteOp(key, via, tomb, nil)
}

// clientWriteThen writes key and runs then once the write is acknowledged.
func (w *world) clientWriteThen(key string, via int, then func()) {
	w.clientWriteOp(key, via, false, then)
}

func (w *world) clientWriteOp(key string, via int, tomb bool, then func()) {
	start := w.now
	n := w.nodes[via]
	w.rep.Writes++
	if !n.up {
		w.failedWrites++
		return
	}
	ctx := w.hist.lastRead[key]
	w.valueSeq++
	value := []byte(fmt.Sprintf("%s:%d", key, w.valueSeq))
	if tomb {
		value = nil
	}
	settled := false
	w.atNode(w.now, via, func() {
		n.put(key, putOp{value: value, tomb: tomb}, ctx.Clock, ctx.MaxTimestamp(), func(ok bool, dot version.Dot) {
			if settled {
				return
			}
			settled = true
			w.rep.WriteLatencies = append(w.rep.WriteLatencies, msOf(w.now-start))
			if ok {
				w.hist.ack(dot, w.now)
				if then != nil {
					then()
				}
			} else {
				w.failedWrites++
			}
			w.traceResult(2, key, ok)
		})
	})
	w.at(start+3*w.cfg.RequestTimeout, func() {
		if !settled {
			settled = true
			w.failedWrites++
			w.traceResult(2, key, false)
		}
	})
}

// clientIncrement adds one to a counter key. An increment acknowledged must be in the final
// value; one that failed or timed out may or may not be.
func (w *world) clientIncrement(key string, via int) {
	start := w.now
	n := w.nodes[via]
	w.rep.Writes++
	if !n.up {
		w.failedWrites++
		return
	}
	settled := false
	w.atNode(w.now, via, func() {
		n.put(key, putOp{incr: 1}, nil, version.HLC{}, func(ok bool, dot version.Dot) {
			if settled {
				return
			}
			settled = true
			w.rep.WriteLatencies = append(w.rep.WriteLatencies, msOf(w.now-start))
			if ok {
				w.hist.ack(dot, w.now)
				w.hist.counted(key, 1, true)
			} else {
				w.failedWrites++
				w.hist.counted(key, 1, false)
			}
			w.traceResult(3, key, ok)
		})
	})
	w.at(start+3*w.cfg.RequestTimeout, func() {
		if !settled {
			settled = true
			w.failedWrites++
			w.hist.counted(key, 1, false)
			w.traceResult(3, key, false)
		}
	})
}

// counterKeys is how many counter keys the workload uses: a tenth of the key space.
func counterKeys(cfg Config) int { return max(1, cfg.Keys/10) }

func counterName(i int) string { return fmt.Sprintf("c%06d", i) }

func (w *world) traceResult(kind byte, key string, ok bool) {
	b := []byte{kind, 0}
	if ok {
		b[1] = 1
	}
	_, _ = w.trace.Write(b)
	_, _ = w.trace.WriteString(key)
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func percentiles(xs []float64) Percentiles {
	if len(xs) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(q float64) float64 { return s[int(math.Min(float64(len(s)-1), q*float64(len(s))))] }
	return Percentiles{P50: at(0.5), P99: at(0.99), P999: at(0.999)}
}

func (w *world) finishReport(convergedAt time.Duration, wall time.Duration) *Report {
	r := w.rep
	h := w.hist
	r.Config = fmt.Sprintf("nodes=%d n=%d r=%d w=%d duration=%s rate=%g keys=%d dist=%s latency=%s loss=%g read_repair=%s handoff=%v aae=%v",
		w.cfg.Nodes, w.cfg.N, w.cfg.R, w.cfg.W, w.cfg.Duration, w.cfg.Rate, w.cfg.Keys, w.cfg.KeyDist,
		w.cfg.Latency.Name, w.cfg.Loss, w.cfg.ReadRepair, w.cfg.HintedHandoff, w.cfg.AAE)
	var fs []string
	for _, f := range w.cfg.Faults {
		fs = append(fs, f.String())
	}
	r.Faults = strings.Join(fs, "; ")
	r.Reads, r.StaleReads, r.FailedReads = h.reads, h.stale, h.failedReads
	if h.reads > 0 {
		r.StaleReadPct = 100 * float64(h.stale) / float64(h.reads)
	}
	if all := h.reads + h.failedReads; all > 0 {
		r.ReadSuccessRate = float64(h.reads) / float64(all)
	}
	if r.Writes > 0 {
		r.WriteSuccessRate = float64(r.Writes-w.failedWrites) / float64(r.Writes)
	}
	r.ReadLatencyMs = percentiles(r.ReadLatencies)
	r.WriteLatencyMs = percentiles(r.WriteLatencies)
	r.TVisibility = []VisPoint{}
	for i, b := range w.cfg.VisibilityBins {
		if i >= len(h.visAll) || h.visAll[i] == 0 {
			continue
		}
		r.TVisibility = append(r.TVisibility, VisPoint{TMs: msOf(b), PConsistent: float64(h.visHits[i]) / float64(h.visAll[i]), Samples: h.visAll[i]})
	}
	ks := make([]int, 0, len(h.kCounts))
	total := 0
	for k, c := range h.kCounts {
		ks = append(ks, k)
		total += c
	}
	slices.Sort(ks)
	r.KStaleness = []KPoint{}
	for _, k := range ks {
		r.KStaleness = append(r.KStaleness, KPoint{K: k, Fraction: float64(h.kCounts[k]) / float64(total)})
	}
	for _, n := range w.nodes {
		for _, st := range n.hints.Stats() {
			r.HintsPending += st.Pending
		}
	}
	if r.HintsPending > 0 && w.cfg.HintedHandoff {
		h.violate("%d hints still pending after the heal budget", r.HintsPending)
	}
	r.Converged = convergedAt >= 0
	if r.Converged {
		r.ConvergedAfterMs = msOf(convergedAt)
	} else if w.cfg.AAE {
		h.violate("replicas did not converge within the heal budget (%s)", w.cfg.HealBudget)
	}
	r.Violations = h.violations
	if r.Violations == nil {
		r.Violations = []string{}
	}
	r.TraceHash = fmt.Sprintf("%016x", w.trace.Sum64())
	r.SimulatedSeconds = (w.cfg.Duration + time.Duration(math.Max(0, float64(convergedAt)))).Seconds()
	r.WallSeconds = wall.Seconds()
	r.Events = w.events
	return r
}
