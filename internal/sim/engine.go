package sim

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// event is one scheduled action. node >= 0 ties it to a node's incarnation: it is dropped
// if the node crashed since, and deferred while the node is paused. The frequent kinds
// (a message or an answer arriving, a message lost at its deadline, a core's timer, a
// client request) are typed, so scheduling them allocates no closure; events are reused.
type event struct {
	at    time.Duration
	seq   uint64
	node  int
	inc   int
	kind  evKind
	due   time.Duration // evTick: the timer it was scheduled for (at moves if deferred)
	shard int           // evTick: the shard whose timer it is
	c     *call
	op    *clientOp
	fn    func()
}

type evKind uint8

const (
	evFunc    evKind = iota // run fn
	evRequest               // c's request reaches its target
	evAnswer                // c's answer reaches its sender
	evLost                  // c's deadline passed without an answer
	evTick                  // the node's core timer is due
	evClient                // op's request reaches its node
)

// eventQueue is a binary min-heap of events by (at, seq), written out rather than
// through container/heap: it is the simulator's hottest structure.
type eventQueue []*event

func (q eventQueue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q *eventQueue) push(e *event) {
	*q = append(*q, e)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *eventQueue) pop() *event {
	h := *q
	e := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = nil
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return e
}

// msgKind is a message's kind for the latency model.
type msgKind int

const (
	kindW msgKind = iota // a write (or repair, handoff batch, forwarded write) reaching a replica
	kindA                // its answer
	kindR                // a read request reaching a replica
	kindS                // its answer
)

// requestKind maps a core message to PBS's WARS kinds: what reads a replica — a replica
// read, an anti-entropy tree or key-list question — travels as R (answered as S); what
// writes one — a replica write or repair, a forwarded write, a handoff batch — as W
// (answered as A).
func requestKind(env *pb.Envelope) msgKind {
	switch env.Body.(type) {
	case *pb.Envelope_Get, *pb.Envelope_Tree, *pb.Envelope_TreeKeys:
		return kindR
	}
	return kindW
}

func answerKind(req msgKind) msgKind {
	if req == kindR {
		return kindS
	}
	return kindA
}

// world is one simulation: the network, the clocks, the faults, the workload and the
// checkers around the simulated nodes' cores.
type world struct {
	cfg Config
	rng *rand.Rand
	// lagRng draws the gossip lags (gossipLag).
	lagRng *rand.Rand
	// allMovedSeq is the first view of the pending change with every partition moved (0:
	// none yet); pushedRing the ring of the last view pushed.
	allMovedSeq  uint64
	allMovedName string // the change allMovedSeq is for
	pushedRing   *ring.Ring
	now          time.Duration
	seq          uint64
	q            eventQueue
	nodes        []*snode
	ring         *ring.Ring
	walks        [][]ring.NodeID // every partition's preference order
	pbits        int             // log2(Partitions)
	trace        *xxhash.Digest

	buckets simBuckets

	free []*event // events to reuse

	// cut[i][j]: messages from i to j are lost (a partition).
	cut [][]bool
	// unreachableSince[i][j]: since when j has been unreachable from i (crashed, paused, or
	// the link cut either way); -1 when reachable. The failure detector reads it.
	unreachableSince [][]time.Duration

	// calls are the core messages in flight (request sent, no Response delivered yet), by
	// the ID their target's core sees.
	calls    map[uint64]*call
	nextCall uint64
	// parts are the parts of split handoff batches being merged, by their PeerRequest ID.
	parts map[uint64]*splitCall

	// membership (membership.go): every member's state, the next ring and the moved
	// partitions while a change is under way; viewSeq bumps on every change.
	states        []memberState
	ringCache     map[string]*ring.Ring
	next          *ring.Ring
	moved         []bool
	change        string // the pending change's name (core.View.Change)
	heard         bool   // every member has heard of it (core.View.Heard)
	changeSeq     int    // bumps on every join and leave: changes to the same ring get new names
	membershipDue bool
	viewSeq       uint64
	// clients are the client requests in flight, by request ID.
	clients    map[uint64]*clientOp
	nextClient uint64

	hist    *history
	rep     *Report
	events  int
	healing bool
	active  []*activeFault

	failedWrites int
	valueSeq     int

	// timeline: per second of the workload (by an operation's start), what ended how;
	// tlLat the write latencies of each second, for its percentiles.
	timeline []TimelinePoint
	tlLat    [][]float64

	keyNames, counterNames []string
}

// call is one core Message on its way: the request to its target, then the answer (or
// the failure) back to its sender, who gets exactly one Response for it.
type call struct {
	id        uint64 // the PeerRequest ID the target sees
	from, to  int
	fromShard int // the sender's shard
	fromInc   int
	msgID     uint64 // the sender's Message ID
	req, ans  *pb.Envelope
	kind      msgKind
	deadline  time.Duration
	done      bool // the sender got its Response (or died)
	losing    bool // a lost-at-deadline Response is scheduled
}

// Errors the simulated transport reports to a sender's core.
var (
	errLost        = fmt.Errorf("sim: %w: no answer by the deadline (lost, partitioned or the peer died)", core.ErrLost)
	errUnreachable = fmt.Errorf("sim: %w: connection refused (the peer is down)", core.ErrUnreachable)
)

func newWorld(cfg Config) (*world, error) {
	w := &world{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), trace: xxhash.New(),
		calls: map[uint64]*call{}, parts: map[uint64]*splitCall{}, clients: map[uint64]*clientOp{}}
	members := make([]ring.Member, cfg.Nodes)
	for i := range members {
		members[i] = ring.Member{ID: ring.NodeID(nodeName(i))}
	}
	r, err := ring.New(ring.Config{Partitions: cfg.Partitions}, members)
	if err != nil {
		return nil, err
	}
	_ = r
	for 1<<w.pbits < cfg.Partitions {
		w.pbits++
	}
	w.ringCache = map[string]*ring.Ring{}
	w.states = make([]memberState, cfg.Nodes)
	for i := range w.states {
		if w.joinsLater(i) {
			w.states[i] = stateJoining
		}
	}
	initial, _ := w.buildRing(stateActive)
	w.setRing(initial)
	w.buckets = newSimBuckets(cfg)
	w.cut = make([][]bool, cfg.Nodes)
	w.unreachableSince = make([][]time.Duration, cfg.Nodes)
	for i := range w.cut {
		w.cut[i] = make([]bool, cfg.Nodes)
		w.unreachableSince[i] = make([]time.Duration, cfg.Nodes)
		for j := range w.unreachableSince[i] {
			w.unreachableSince[i][j] = -1
			if w.joinsLater(j) {
				w.unreachableSince[i][j] = -cfg.DetectDelay // not started yet: seen down
			}
		}
	}
	w.hist = newHistory()
	w.hist.lww = cfg.Conflict == core.ConflictLWW
	w.rep = &Report{Seed: cfg.Seed}
	for i := 0; i < cfg.Nodes; i++ {
		w.nodes = append(w.nodes, &snode{w: w, id: i, name: nodeName(i)})
	}
	for _, n := range w.nodes {
		if w.states[n.id] == stateJoining {
			continue // started by its join
		}
		if err := n.start(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func nodeName(i int) string { return fmt.Sprintf("n%d", i+1) }

// nodeIndex parses "n7" into 6.
func nodeIndex(id string) int {
	i := 0
	for _, c := range id[1:] {
		i = 10*i + int(c-'0')
	}
	return i - 1
}

// at schedules fn at time t (global: tied to no node).
func (w *world) at(t time.Duration, fn func()) { w.atInc(t, -1, 0, fn) }

// atNode schedules fn at time t on node's current incarnation: dropped if the node
// crashes before, deferred while it is paused.
func (w *world) atNode(t time.Duration, node int, fn func()) {
	w.atInc(t, node, w.nodes[node].inc, fn)
}

func (w *world) atInc(t time.Duration, node, inc int, fn func()) {
	e := w.newEvent(t, node, inc, evFunc)
	e.fn = fn
	w.push(e)
}

// newEvent returns an event to fill in and push.
func (w *world) newEvent(t time.Duration, node, inc int, kind evKind) *event {
	var e *event
	if n := len(w.free); n > 0 {
		e = w.free[n-1]
		w.free = w.free[:n-1]
	} else {
		e = new(event)
	}
	if t < w.now {
		t = w.now
	}
	e.at, e.node, e.inc, e.kind = t, node, inc, kind
	return e
}

func (w *world) push(e *event) {
	if e.at < w.now {
		e.at = w.now
	}
	w.seq++
	e.seq = w.seq
	w.q.push(e)
}

// step runs the next event; false when none is left before until.
func (w *world) step(until time.Duration) bool {
	if len(w.q) == 0 || w.q[0].at > until {
		return false
	}
	e := w.q.pop()
	w.now = e.at
	if e.node >= 0 {
		n := w.nodes[e.node]
		if n.inc != e.inc || !n.up {
			return true // the node crashed since: the event is lost with it
		}
		if n.paused {
			n.deferred = append(n.deferred, e)
			return true
		}
	}
	w.events++
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(e.at))
	binary.LittleEndian.PutUint64(b[8:], uint64(e.node+1))
	_, _ = w.trace.Write(b[:])
	switch e.kind {
	case evFunc:
		e.fn()
	case evRequest:
		w.deliver(e.c)
	case evAnswer:
		w.respond(e.c, core.Response{ID: e.c.msgID, Env: e.c.ans})
	case evLost:
		w.respond(e.c, core.Response{ID: e.c.msgID, Err: errLost})
	case evTick:
		n := w.nodes[e.node]
		if n.tickAt[e.shard] == e.due {
			n.tickAt[e.shard] = -1
			n.step(e.shard, core.Tick{})
		}
	case evClient:
		n := w.nodes[e.op.node]
		n.step(n.shardOfKey(e.op.key), e.op.req)
	}
	*e = event{}
	w.free = append(w.free, e)
	return true
}

// respond gives c's sender its one Response.
func (w *world) respond(c *call, r core.Response) {
	if c.done {
		return
	}
	c.done = true
	delete(w.calls, c.id)
	w.nodes[c.from].step(c.fromShard, r)
}

// deliver hands c's request to the shard of its target that serves it; a handoff batch
// spanning shards is checked whole and split, and its parts' answers gathered into one.
func (w *world) deliver(c *call) {
	n := w.nodes[c.to]
	from := w.nodes[c.from].name
	k, q := len(n.cores), w.cfg.Partitions
	ho := c.req.GetHandoff()
	if ho == nil || k == 1 {
		s, _ := core.Route(c.req, q, k)
		n.step(s, core.PeerRequest{From: from, ID: c.id, Env: c.req})
		return
	}
	parts, err := core.SplitHandoff(n.cores[0].Config(), ho, k)
	if err != nil {
		w.sendAnswer(n, core.Answer{To: from, ID: c.id, Env: core.ErrorEnvelope(err)})
		return
	}
	g := core.NewHandoffGather(parts)
	if !g.Waiting() {
		w.sendAnswer(n, core.Answer{To: from, ID: c.id, Env: g.Answer()})
		return
	}
	for s, p := range parts {
		if p == nil {
			continue
		}
		w.nextCall++
		w.parts[w.nextCall] = &splitCall{call: c.id, g: g}
		n.step(s, core.PeerRequest{From: from, ID: w.nextCall, Env: &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: p}}})
	}
}

// splitCall is one shard's part of a split handoff batch.
type splitCall struct {
	call uint64 // the batch's call
	g    *core.HandoffGather
}

// latency draws the latency of a message of kind k from node i to node j.
func (w *world) latency(k msgKind, i, j int) time.Duration {
	m := &w.cfg.Latency
	var d time.Duration
	switch k {
	case kindW:
		d = m.W.Sample(w.rng)
	case kindA:
		d = m.A.Sample(w.rng)
	case kindR:
		d = m.R.Sample(w.rng)
	default:
		d = m.S.Sample(w.rng)
	}
	if i != j {
		d += m.Remote
	}
	return d
}

// dropped reports whether a message from i to j is lost: the link is cut, or by chance.
// A node's messages to itself are never lost (but take their latency: PBS's WARS model
// treats the coordinator's own replica like any other).
func (w *world) dropped(i, j int) bool {
	if i == j {
		return false
	}
	return w.cut[i][j] || (w.cfg.Loss > 0 && w.rng.Float64() < w.cfg.Loss)
}

// sendMessage carries a core Message from node i to its target: after a latency of its
// kind the target's core gets it as a PeerRequest. A lost request, or one whose answer is
// lost or late, is answered to the sender as lost at the message's deadline; a target
// that is down refuses the connection after one latency (unreachable).
func (w *world) sendMessage(from *snode, shard int, m core.Message) {
	w.rep.Messages++
	to := nodeIndex(m.To)
	w.nextCall++
	c := &call{id: w.nextCall, from: from.id, fromShard: shard, to: to, fromInc: from.inc, msgID: m.ID, kind: requestKind(m.Env), deadline: m.Deadline}
	d := w.latency(c.kind, from.id, to)
	if w.dropped(from.id, to) {
		w.rep.MessagesLost++
		w.calls[c.id] = c
		w.lose(c)
		return
	}
	if !w.nodes[to].up {
		w.atInc(w.now+d, from.id, from.inc, func() { from.step(shard, core.Response{ID: m.ID, Err: errUnreachable}) })
		return
	}
	w.calls[c.id] = c
	if w.now+d > c.deadline {
		w.lose(c) // it arrives, but its answer cannot be in time
	}
	c.req = m.Env
	e := w.newEvent(w.now+d, to, w.nodes[to].inc, evRequest)
	e.c = c
	w.push(e)
}

// sendAnswer carries a core Answer back to the sender of the request it answers.
func (w *world) sendAnswer(from *snode, a core.Answer) {
	if sp := w.parts[a.ID]; sp != nil {
		delete(w.parts, a.ID)
		ans, done := sp.g.Add(a.Env)
		if !done {
			return
		}
		a = core.Answer{To: a.To, ID: sp.call, Env: ans}
	}
	c := w.calls[a.ID]
	if c == nil || c.done {
		return // the sender got its Response already (lost at its deadline) or died
	}
	w.rep.Messages++
	if w.dropped(from.id, c.from) {
		w.rep.MessagesLost++
		w.lose(c)
		return
	}
	t := w.now + w.latency(answerKind(c.kind), from.id, c.from)
	if t > c.deadline {
		w.lose(c)
		return
	}
	c.req, c.ans = nil, a.Env
	e := w.newEvent(t, c.from, c.fromInc, evAnswer)
	e.c = c
	w.push(e)
}

// lose answers c to its sender as lost at its deadline (the transport gives up).
func (w *world) lose(c *call) {
	if c.done || c.losing {
		return
	}
	c.losing = true
	e := w.newEvent(c.deadline, c.from, c.fromInc, evLost)
	e.c = c
	w.push(e)
}

// callsOf returns the calls in flight from or to node i, in ID order.
func (w *world) callsOf(i int) []*call {
	var out []*call
	for _, c := range w.calls {
		if c.from == i || c.to == i {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *call) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return out
}

// alive reports whether node i's failure detector sees j up.
func (w *world) alive(i, j int) bool {
	if i == j {
		return true
	}
	s := w.unreachableSince[i][j]
	return s < 0 || w.now-s < w.cfg.DetectDelay
}

// reachable reports whether j can be reached from i right now, both ways.
func (w *world) reachable(i, j int) bool {
	if i == j {
		return true
	}
	return w.nodes[j].up && !w.nodes[j].paused && w.nodes[i].up && !w.cut[i][j] && !w.cut[j][i]
}

// refreshReachability updates unreachableSince after a fault changed something, and has
// every node's view checked now (a node seen back at once) and once the detector's delay
// has passed (a node seen down).
func (w *world) refreshReachability() {
	for i := range w.nodes {
		for j := range w.nodes {
			if i == j {
				continue
			}
			r := w.reachable(i, j)
			switch {
			case r:
				w.unreachableSince[i][j] = -1
			case w.unreachableSince[i][j] < 0:
				w.unreachableSince[i][j] = w.now
			}
		}
	}
	w.at(w.now, w.refreshViews)
	w.at(w.now+w.cfg.DetectDelay, w.refreshViews)
}

// refreshViews gives every running node whose failure detector now sees the cluster
// differently its new view.
func (w *world) refreshViews() {
	for _, n := range w.nodes {
		if n.up && w.aliveMask(n.id) != n.seen {
			w.atNode(w.now, n.id, n.pushView)
		}
	}
}

// aliveMask is the set of nodes i's failure detector sees up, as bits.
func (w *world) aliveMask(i int) uint64 {
	var m uint64
	for j := range w.nodes {
		if w.alive(i, j) {
			m |= 1 << j
		}
	}
	return m
}

// lives is how many incarnations the named node has had: its first, and one per crash
// (checkEntries).
func (w *world) lives(node string) int {
	i := nodeIndex(node)
	if i < 0 || i >= len(w.nodes) {
		return 1
	}
	return 1 + w.nodes[i].inc
}
