package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/version"
)

func runSim(cfg Config, progress func(done, total time.Duration)) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w, err := newWorld(cfg)
	if err != nil {
		return nil, err
	}
	return w.run(progress)
}

// run runs the workload, heals, and checks.
func (w *world) run(progress func(done, total time.Duration)) (*Report, error) {
	cfg := w.cfg
	wallStart := time.Now()
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
	// Requests still unanswered (the heal budget ran out) have an unknown outcome.
	ids := make([]uint64, 0, len(w.clients))
	for id := range w.clients {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if op := w.clients[id]; op.kind == opIncr {
			w.hist.counted(op.key, 1, false)
		}
	}
	w.hist.checkFinal(w)
	w.rep.TTLWrites = w.hist.ttlWrites
	if convergedAt >= 0 {
		w.rep.StrayCopies = w.strayCopies()
	}
	rep := w.finishReport(convergedAt, time.Since(wallStart))
	if len(rep.Violations) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrViolation, strings.Join(rep.Violations, "; "))
	}
	return rep, nil
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
		// Requests and answers already on a cut link are lost.
		for _, l := range links {
			for _, c := range w.callsOf(l[0]) {
				if (c.from == l[0] && c.to == l[1]) || (c.from == l[1] && c.to == l[0]) {
					w.lose(c)
				}
			}
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
			n := w.nodes[i]
			n.paused = true
			// Its peers' transports give up on what it does not answer in time.
			for _, c := range w.callsOf(i) {
				if c.to == i {
					w.lose(c)
				}
			}
		}
		return func() {
			for _, i := range f.Groups[0] {
				n := w.nodes[i]
				n.paused = false
				for _, e := range n.deferred {
					e.at = w.now
					w.push(e)
				}
				n.deferred = nil
			}
		}
	case Join:
		w.changeSeq++
		for _, i := range f.Groups[0] {
			if n := w.nodes[i]; n.store == nil {
				if err := n.start(); err != nil {
					w.hist.violate("%s did not start: %v", n.name, err)
				}
			}
		}
		w.membershipChanged()
		return func() {}
	case Leave:
		w.changeSeq++
		for _, i := range f.Groups[0] {
			if w.states[i] == stateActive {
				w.states[i] = stateLeaving
			}
		}
		w.membershipChanged()
		return func() {}
	case Skew:
		for _, i := range f.Groups[0] {
			w.nodes[i].skew = f.Skew
		}
		// The expiry checker allows a read to see a value as late as the reader's clock
		// lags: the largest skew the run has had.
		w.hist.maxSkew = max(w.hist.maxSkew, f.Skew, -f.Skew)
		return func() {
			for _, i := range f.Groups[0] {
				w.nodes[i].skew = 0
			}
		}
	}
	return func() {}
}

// crash kills a node: its pending events die with it, its store keeps only what was
// synced, its clients' connections break, and what it was asked is lost to its peers at
// their deadlines.
func (w *world) crash(n *snode) {
	if !n.up {
		return
	}
	n.up, n.paused, n.deferred = false, false, nil
	n.inc++
	n.store = n.store.CrashClone()
	n.cores, n.hints = nil, nil
	for _, c := range w.callsOf(n.id) {
		if c.from == n.id {
			c.done = true
			delete(w.calls, c.id)
			continue
		}
		w.lose(c)
	}
	ids := make([]uint64, 0)
	for id, op := range w.clients {
		if op.node == n.id {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		op := w.clients[id]
		delete(w.clients, id)
		w.clientFailed(op)
	}
}

// restart brings a crashed node back on what its store kept.
func (w *world) restart(n *snode) {
	if n.up {
		return
	}
	if err := n.start(); err != nil {
		w.hist.violate("%s did not restart: %v", n.name, err)
	}
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
			// PBS's experiment: every write is to a key never written before, whatever
			// Keys says, so that no later write to it can land within the read's delay.
			key := freshKeyName(fresh)
			fresh++
			w.clientWrite(key, w.rng.IntN(w.cfg.Nodes), false, func() {
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
			w.clientRead(w.keyName(ki), via)
		case r < w.cfg.ReadRatio+(1-w.cfg.ReadRatio)*w.cfg.CounterRatio:
			w.clientIncrement(w.counterName(ki%counterKeys(w.cfg)), via)
		default:
			tomb := w.rng.Float64() < w.cfg.DeleteRatio
			w.clientWrite(w.keyName(ki), via, tomb, nil)
		}
		w.at(w.now+gap, next)
	}
	w.at(0, next)
}

// opKind is a client operation's kind.
type opKind byte

const (
	opRead  opKind = 1
	opWrite opKind = 2
	opIncr  opKind = 3
)

// clientOp is a client request in flight.
type clientOp struct {
	kind  opKind
	key   string
	node  int
	start time.Duration
	then  func() // after an acknowledged write
	req   core.ClientRequest
}

// submit hands a client request to node via: if the node is down, the client tries the
// next node up (Config.ClientFailover) or its request fails at once; a paused node
// answers once it resumes.
func (w *world) submit(op *clientOp, req core.ClientRequest) {
	for w.nodes[op.node].store == nil {
		op.node = (op.node + 1) % len(w.nodes) // a node yet to join has no clients
	}
	if w.cfg.ClientFailover && !w.nodes[op.node].up {
		for i := 1; i < len(w.nodes); i++ {
			if j := (op.node + i) % len(w.nodes); w.nodes[j].store != nil && w.nodes[j].up {
				op.node = j
				break
			}
		}
	}
	n := w.nodes[op.node]
	if !n.up {
		w.clientFailed(op)
		return
	}
	w.nextClient++
	req.ID = w.nextClient
	req.Bucket = bucketOf(req.Key)
	w.clients[req.ID] = op
	op.req = req
	e := w.newEvent(w.now, op.node, n.inc, evClient)
	e.op = op
	w.push(e)
}

func (w *world) clientRead(key string, via int) {
	w.submit(&clientOp{kind: opRead, key: key, node: via, start: w.now}, core.ClientRequest{Op: core.OpGet, Key: key})
}

// clientWrite writes (or deletes) key with the context of the client's latest read of it,
// as a read-modify-write client does; then runs once the write is acknowledged.
func (w *world) clientWrite(key string, via int, tomb bool, then func()) {
	w.rep.Writes++
	w.hist.touch(key)
	req := core.ClientRequest{Op: core.OpPut, Key: key}
	if tomb {
		req.Op = core.OpDelete
	} else {
		w.valueSeq++
		req.Value = strconv.AppendInt(append([]byte(key), ':'), int64(w.valueSeq), 10)
		if w.cfg.TTLRatio > 0 && w.rng.Float64() < w.cfg.TTLRatio {
			req.Write.Expiry = core.Expiry{Mode: core.ExpiryTTL, TTL: w.cfg.TTL}
		}
	}
	blind := !tomb && w.cfg.BlindRatio > 0 && w.rng.Float64() < w.cfg.BlindRatio
	if ctx, ok := w.hist.lastRead[key]; ok && !blind {
		req.Write.Context = version.EncodeContext(ctx.Clock, ctx.MaxTimestamp())
	}
	w.submit(&clientOp{kind: opWrite, key: key, node: via, start: w.now, then: then}, req)
}

// clientIncrement adds one to a counter key. An increment acknowledged must be in the final
// value; one that failed or timed out may or may not be.
func (w *world) clientIncrement(key string, via int) {
	w.rep.Writes++
	w.hist.touch(key)
	one := int64(1)
	w.submit(&clientOp{kind: opIncr, key: key, node: via, start: w.now},
		core.ClientRequest{Op: core.OpCRDT, Key: key, CRDT: &core.CRDTOp{Type: crdt.Counter, Op: crdt.Op{Increment: &one}}})
}

// reply is a core's reply to a client request.
func (w *world) reply(n *snode, r core.Reply) {
	op := w.clients[r.ID]
	if op == nil {
		return
	}
	delete(w.clients, r.ID)
	lat := msOf(w.now - op.start)
	switch op.kind {
	case opRead:
		w.rep.ReadLatencies = append(w.rep.ReadLatencies, lat)
		reads, stale := w.hist.reads, w.hist.stale
		w.hist.read(op.key, op.start, r.Object, r.Err, w.cfg.VisibilityBins)
		if r.Err == nil {
			w.hist.unexpired(op.key, op.start, r.Object)
		}
		if tp := w.second(op.start); tp != nil {
			tp.Reads += w.hist.reads - reads
			tp.Stale += w.hist.stale - stale
		}
	default:
		w.rep.WriteLatencies = append(w.rep.WriteLatencies, lat)
		if tp := w.second(op.start); tp != nil {
			tp.Writes++
			if r.Err == nil {
				tp.OK++
			}
			w.tlLat[tp.Second] = append(w.tlLat[tp.Second], lat)
		}
		if r.Err != nil {
			w.failedWrites++
			if op.kind == opIncr {
				w.hist.counted(op.key, 1, false)
			}
			break
		}
		if err := w.hist.ack(op.key, r.Context, w.now); err != nil {
			w.hist.violate("%s: acknowledged write of %s: %v", n.name, op.key, err)
		}
		if op.kind == opIncr {
			w.hist.counted(op.key, 1, true)
		}
		if op.then != nil {
			op.then()
		}
	}
	w.traceResult(byte(op.kind), op.key, r.Err == nil)
}

// second is the timeline's bucket for an operation started at t, nil past the workload.
func (w *world) second(t time.Duration) *TimelinePoint {
	s := int(t / time.Second)
	if t < 0 || t >= w.cfg.Duration {
		return nil
	}
	if w.timeline == nil {
		n := int((w.cfg.Duration + time.Second - 1) / time.Second)
		w.timeline, w.tlLat = make([]TimelinePoint, n), make([][]float64, n)
		for i := range w.timeline {
			w.timeline[i].Second = i
		}
	}
	return &w.timeline[s]
}

// clientFailed ends a request whose connection broke (its node is down or crashed).
func (w *world) clientFailed(op *clientOp) {
	switch op.kind {
	case opRead:
		w.hist.failedReads++
	case opIncr:
		w.failedWrites++
		w.hist.counted(op.key, 1, false)
	default:
		w.failedWrites++
	}
	if op.kind != opRead {
		if tp := w.second(op.start); tp != nil {
			tp.Writes++
			w.tlLat[tp.Second] = append(w.tlLat[tp.Second], msOf(w.now-op.start))
		}
	}
	w.traceResult(byte(op.kind), op.key, false)
}

// count receives the cores' counters.
func (w *world) count(c core.Counter, n int) {
	r := w.rep
	switch c {
	case core.CountForward:
		r.Forwards += n
	case core.CountFallbackWrite:
		r.FallbackWrites += n
	case core.CountHintStored:
		r.HintsStored += n
	case core.CountReadRepair:
		r.ReadRepairs += n
	case core.CountHintsDelivered:
		r.HintsDelivered += n
	case core.CountHintsStale:
		r.HintsStale += n
	case core.CountAAEExchangeOK, core.CountAAEExchangeError:
		r.AAEExchanges += n
	case core.CountAAEKeysRepaired:
		r.AAERepairs += n
	case core.CountTombstonesReaped:
		r.TombstonesReaped += n
	case core.CountTransferKeys:
		r.TransferKeys += n
	}
}

// counterKeys is how many counter keys the workload uses: a tenth of the key space.
func counterKeys(cfg Config) int { return max(1, cfg.Keys/10) }

func counterName(i int) string { return fmt.Sprintf("c%06d", i) }

// keyName and counterName, kept: the workload names a key per operation.
func (w *world) keyName(i int) string {
	if w.keyNames == nil {
		w.keyNames = make([]string, w.cfg.Keys)
	}
	if w.keyNames[i] == "" {
		w.keyNames[i] = keyName(i)
	}
	return w.keyNames[i]
}

func (w *world) counterName(i int) string {
	if w.counterNames == nil {
		w.counterNames = make([]string, counterKeys(w.cfg))
	}
	if w.counterNames[i] == "" {
		w.counterNames[i] = counterName(i)
	}
	return w.counterNames[i]
}

// freshKeyName names the i-th key of PBS's experiment (never one of keyName's).
func freshKeyName(i int) string { return fmt.Sprintf("f%08d", i) }

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
	r.Config = fmt.Sprintf("nodes=%d n=%d r=%d w=%d duration=%s rate=%g keys=%d dist=%s latency=%s loss=%g read_repair=%s conflict=%s gc_grace=%s handoff=%v aae=%v",
		w.cfg.Nodes, w.cfg.N, w.cfg.R, w.cfg.W, w.cfg.Duration, w.cfg.Rate, w.cfg.Keys, w.cfg.KeyDist,
		w.cfg.Latency.Name, w.cfg.Loss, w.cfg.ReadRepair, w.cfg.Conflict, w.cfg.GCGrace, w.cfg.HintedHandoff, w.cfg.AAE)
	var fs []string
	r.FaultWindows = []FaultWindow{}
	for _, f := range w.cfg.Faults {
		fs = append(fs, f.String())
		if f.At >= w.cfg.Duration {
			continue
		}
		end := w.cfg.Duration
		if f.For > 0 && f.At+f.For < end {
			end = f.At + f.For
		}
		r.FaultWindows = append(r.FaultWindows, FaultWindow{Fault: f.String(), FromS: f.At.Seconds(), UntilS: end.Seconds()})
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
	r.RequestTimeoutMs = msOf(w.cfg.RequestTimeout)
	r.ReadLatencyMs = percentiles(r.ReadLatencies)
	r.WriteLatencyMs = percentiles(r.WriteLatencies)
	r.TVisibility = []VisPoint{}
	for i, b := range w.cfg.VisibilityBins {
		if i >= len(h.visAll) || h.visAll[i] == 0 {
			continue
		}
		r.TVisibility = append(r.TVisibility, VisPoint{TMs: msOf(b), PConsistent: float64(h.visHits[i]) / float64(h.visAll[i]), Samples: h.visAll[i],
			OpenEnded: i == len(w.cfg.VisibilityBins)-1})
	}
	w.second(0) // every second of the workload has its point, even an idle one
	r.Timeline = w.timeline
	for i := range r.Timeline {
		p := percentiles(w.tlLat[i])
		r.Timeline[i].WriteP50Ms, r.Timeline[i].WriteP99Ms = p.P50, p.P99
	}
	w.tlLat = nil
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
		if n.hints == nil {
			continue
		}
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
