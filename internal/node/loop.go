package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// loop drives one shard of the node's core (package core) from one goroutine: every
// protocol decision is the core's; the loop feeds it what happens (client requests, peer
// requests, answers, membership views, time) and carries out its Ready — one fsync for
// the turn's durable writes, then messages to peers, answers to peers, replies to
// clients. Nothing else touches the core, so it needs no lock; other goroutines hand the
// loop closures.
type loop struct {
	n     *Node
	c     *core.Core
	shard int
	batch *storage.TurnBatch // the core's store: a turn's writes commit as one batch
	log   *slog.Logger
	start time.Time
	self  string

	mu    sync.Mutex
	queue []func()
	// The common events wait in typed queues rather than as closures: one allocation
	// less each, for every request, answer and peer message.
	reqs   []queuedRequest
	resps  []core.Response
	own    []core.PeerRequest // this loop's messages to itself, back from the syncer
	served []servedRequest    // peers' requests (peerRequestAsync)
	wake   chan struct{}
	done   chan struct{} // closed when the loop has stopped

	// Owned by the loop goroutine.
	nextID  uint64
	clients map[uint64]chan core.Reply
	peers   map[uint64]transport.Responder // answers owed to peers, by request
	local   localEvents                    // events for the core raised while carrying out a Ready
	// localSpare is local's other buffer: flush steps one while the next fills the other.
	localSpare localEvents
	timer      *time.Timer
	repairs    map[uint64]*repairWatch
	reaps      map[uint64]chan core.ReapDone

	// xfer is the core's transfer status as of its last durable change (published).
	// Turns are carried out in order only among those that need no sync: a snapshot is
	// taken only if it is newer (seq) than the one held, so a turn that waited for the
	// syncer never puts back an older plan over a newer one.
	xferMu  sync.Mutex
	xfer    xferSnapshot
	xferSeq uint64 // the seq of the last snapshot taken by a turn (loop goroutine only)
	// observed: the partitions whose transfer duration was recorded, for observedFor.
	observed    map[int]bool
	observedFor string

	answered func(uint64, *pb.Envelope, error) // onAnswer, as one func value for every send

	cur       core.Time // the time steps are fed (step)
	stepsLeft int       // steps that may still use cur
}

func newLoop(n *Node, c *core.Core, shard int, batch *storage.TurnBatch) *loop {
	l := &loop{n: n, c: c, shard: shard, batch: batch, log: n.log.With("shard", shard), start: n.clock.Now(), self: n.cfg.ID, wake: make(chan struct{}, 1),
		done: make(chan struct{}), clients: map[uint64]chan core.Reply{}, peers: map[uint64]transport.Responder{},
		repairs: map[uint64]*repairWatch{}, reaps: map[uint64]chan core.ReapDone{}}
	l.answered = l.onAnswer
	return l
}

// now is the core's time: the wall clock (skewed by fault injection) and a monotonic clock.
func (l *loop) now() core.Time {
	return core.Time{Wall: l.n.physMs(), Mono: l.n.clock.Since(l.start)}
}

// queuedRequest is a client request waiting for the loop.
type queuedRequest struct {
	req core.ClientRequest
	ch  chan core.Reply
}

// submit hands f to the loop; it never blocks.
func (l *loop) submit(f func()) {
	l.mu.Lock()
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	l.signal()
}

// submitResponse hands the loop an answer (or failure) of one of its messages.
func (l *loop) submitResponse(r core.Response) {
	l.mu.Lock()
	l.resps = append(l.resps, r)
	l.mu.Unlock()
	l.signal()
}

func (l *loop) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// localEvents are a loop's messages to itself and their answers, typed rather than as
// core.Events so that queuing them allocates nothing per event. Their order does not
// matter: the core never relies on the order of messages.
type localEvents struct {
	reqs  []core.PeerRequest
	resps []core.Response
}

func (e *localEvents) len() int { return len(e.reqs) + len(e.resps) }

// reset empties e, keeping its slices (their elements cleared: nothing stays reachable).
func (e *localEvents) reset() {
	clear(e.reqs)
	clear(e.resps)
	e.reqs, e.resps = e.reqs[:0], e.resps[:0]
}

func (e *localEvents) add(o localEvents) {
	e.reqs = append(e.reqs, o.reqs...)
	e.resps = append(e.resps, o.resps...)
}

// submitLocal hands the loop its own messages and answers, once their turn is durable.
func (l *loop) submitLocal(e localEvents) {
	l.mu.Lock()
	l.own = append(l.own, e.reqs...)
	l.resps = append(l.resps, e.resps...)
	l.mu.Unlock()
	l.signal()
}

// replyChans recycles the channels client requests wait on (buffered, one reply each).
var replyChans = sync.Pool{New: func() any { return make(chan core.Reply, 1) }}

// do runs f on the loop and waits for it.
func (l *loop) do(ctx context.Context, f func(c *core.Core)) error {
	ran := make(chan struct{})
	l.submit(func() {
		f(l.c)
		// What f wrote is in the store when do returns (a caller may read it directly).
		if err := l.batch.Commit(); err != nil {
			l.log.Error("store write failed", "err", err)
		}
		close(ran)
	})
	select {
	case <-ran:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return fmt.Errorf("%w: node %s is stopping", ErrUnavailable, l.self)
	}
}

// step feeds the core one event. The clocks are read once for a run of events (up to
// stepsPerClockRead of them, and anew at each turn and each round of flush), not for
// each: two clock reads per event, five events or more per request, were 4% of the
// answering node's CPU under pipelined GETs, and the core needs its time current only
// to within a turn.
func (l *loop) step(ev core.Event) {
	if l.stepsLeft <= 0 {
		l.cur, l.stepsLeft = l.now(), stepsPerClockRead
	}
	l.stepsLeft--
	l.c.Step(l.cur, ev)
}

// stepsPerClockRead bounds how many events share one reading of the clocks.
const stepsPerClockRead = 32

// freshClock makes the next step read the clocks.
func (l *loop) freshClock() { l.stepsLeft = 0 }

// request runs a client request and waits for its reply.
func (l *loop) request(ctx context.Context, req core.ClientRequest) (core.Reply, error) {
	ch := replyChans.Get().(chan core.Reply)
	l.mu.Lock()
	l.reqs = append(l.reqs, queuedRequest{req, ch})
	l.mu.Unlock()
	l.signal()
	select {
	case r := <-ch:
		replyChans.Put(ch) // drained, and nothing else sends on it: reusable
		return r, r.Err
	case <-ctx.Done():
		return core.Reply{}, ctx.Err()
	case <-l.done:
		return core.Reply{}, fmt.Errorf("%w: node %s is stopping", ErrUnavailable, l.self)
	}
}

func (l *loop) run(ctx context.Context) {
	defer close(l.done)
	l.timer = time.NewTimer(time.Hour)
	defer l.timer.Stop()
	var (
		batch  []func()
		reqs   []queuedRequest
		resps  []core.Response
		own    []core.PeerRequest
		served []servedRequest
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		case <-l.timer.C:
			l.freshClock()
			l.step(core.Tick{})
		}
		l.freshClock()
		l.mu.Lock()
		batch, l.queue = l.queue, batch[:0]
		reqs, l.reqs = l.reqs, reqs[:0]
		resps, l.resps = l.resps, resps[:0]
		own, l.own = l.own, own[:0]
		served, l.served = l.served, served[:0]
		l.mu.Unlock()
		for i, f := range batch {
			f()
			batch[i] = nil
		}
		// Answers first: they finish work in flight before new work starts.
		for i := range resps {
			l.step(resps[i])
			resps[i] = core.Response{}
		}
		for i := range own {
			l.step(own[i])
			own[i] = core.PeerRequest{}
		}
		for i := range served {
			l.stepServed(served[i])
			served[i] = servedRequest{}
		}
		for i := range reqs {
			q := &reqs[i]
			l.nextID++
			q.req.ID = l.nextID
			l.clients[q.req.ID] = q.ch
			l.step(q.req)
			*q = queuedRequest{}
		}
		l.flush(ctx)
	}
}

// flush carries out the core's Ready until it has nothing left, then arms the timer.
//
// The turn's writes are committed first, as one batch (storage.TurnBatch).
//
// A turn that wrote nothing that must be durable is carried out at once: messages to this
// node itself (it is one of the replicas) and their answers are stepped here, the rest is
// handed to the transport and to the waiting callers, none of which blocks. A turn that
// must be durable goes, whole, to the syncer, which fsyncs the store and only then carries
// it out — its answers to this node itself too, so that even the coordinator's count of
// its own durable ack waits for the sync. The loop goes on stepping meanwhile, and the
// turns that pile up behind one fsync share the next (group commit). Outputs of turns
// without a sync may overtake those of an earlier turn with one: they claim nothing
// durable, and the core never relies on the order of messages.
func (l *loop) flush(ctx context.Context) {
	for l.c.HasReady() || l.local.len() > 0 {
		l.freshClock() // the last round committed to the store: time has passed
		for l.local.len() > 0 {
			// Stepping may raise more: take what is there, then look again. (Stepping
			// only adds to the core's Ready; l.local grows only below.)
			local := l.local
			l.local, l.localSpare = l.localSpare, localEvents{}
			for i := range local.resps {
				l.step(local.resps[i])
			}
			for i := range local.reqs {
				l.step(local.reqs[i])
			}
			local.reset()
			l.localSpare = local
		}
		if !l.c.HasReady() {
			break
		}
		rd := l.c.Ready()
		l.c.Advance()
		out := newTurnOut()
		out.sync = rd.Sync
		for _, m := range rd.Messages {
			if m.To == l.self && l.n.shardOf(m.Env) == l.shard {
				out.local.reqs = append(out.local.reqs, core.PeerRequest{From: l.self, ID: m.ID, Env: m.Env})
				continue
			}
			out.msgs = append(out.msgs, m)
		}
		for _, a := range rd.Answers {
			if a.To == l.self && a.ID&servedID == 0 {
				out.local.resps = append(out.local.resps, core.Response{ID: a.ID, Env: a.Env})
				continue
			}
			if ch, ok := l.peers[a.ID]; ok {
				delete(l.peers, a.ID)
				out.answers = append(out.answers, peerAnswer{ch, a.Env})
			}
		}
		for _, r := range rd.Replies {
			if ch, ok := l.clients[r.ID]; ok {
				delete(l.clients, r.ID)
				out.replies = append(out.replies, clientReply{ch, r})
			}
		}
		for _, u := range rd.Repairs {
			if w, ok := l.repairs[u.ID]; ok {
				out.repairs = append(out.repairs, repairOut{w, u})
				if u.Finished {
					delete(l.repairs, u.ID)
				}
			}
		}
		for _, d := range rd.Reaped {
			if ch, ok := l.reaps[d.ID]; ok {
				delete(l.reaps, d.ID)
				out.reaps = append(out.reaps, reapOut{ch, d})
			}
		}
		if rd.TransfersChanged {
			next, ts := l.c.TransferPlan()
			l.xferSeq++
			out.xfer = &xferSnapshot{next: next, ts: ts, seq: l.xferSeq}
			l.observeTransfers(next, ts)
		}
		for _, r := range rd.Compact {
			l.n.compact(r)
		}
		l.c.Recycle(rd) // copied into out
		if err := l.batch.Commit(); err != nil {
			l.log.Error("store write failed", "err", err)
			l.failTurn(out, fmt.Errorf("store: %w", err)) // nothing that relies on the writes may leave
			out.release()
			continue
		}
		if out.sync {
			out.l = l
			l.n.out.push(out)
			continue
		}
		l.local.add(out.local)
		l.carryOut(ctx, out)
		out.release()
	}
	// Writes of a turn with nothing to send (a reaping or cleanup step, a repair merge) are
	// committed here; they claimed nothing durable.
	if err := l.batch.Commit(); err != nil {
		l.log.Error("store write failed", "err", err)
	}
	if t, ok := l.c.NextTimer(); ok {
		d := t - l.n.clock.Since(l.start)
		l.timer.Reset(max(d, 0))
	}
}

// carryOut sends a turn's outputs that leave the loop; none of it blocks.
func (l *loop) carryOut(ctx context.Context, t *turnOut) {
	for _, m := range t.msgs {
		l.send(m)
	}
	for _, a := range t.answers {
		a.respond.Respond(a.env)
	}
	for _, r := range t.replies {
		r.ch <- r.r
	}
	for _, r := range t.repairs {
		r.w.put(l.shard, r.u)
	}
	for _, r := range t.reaps {
		r.ch <- r.d
	}
	if t.xfer != nil {
		l.xferMu.Lock()
		if t.xfer.seq > l.xfer.seq {
			l.xfer = *t.xfer
		}
		l.xferMu.Unlock()
		l.n.signalTransfers()
	}
}

// observeTransfers records the duration of each partition transfer once, when it is
// first seen complete.
func (l *loop) observeTransfers(next string, ts []core.TransferStatus) {
	if next != l.observedFor {
		l.observedFor, l.observed = next, map[int]bool{}
	}
	for _, t := range ts {
		if t.Phase == "done" && !l.observed[t.Partition] && t.Elapsed > 0 {
			l.observed[t.Partition] = true
			l.n.metrics.transferDuration.Observe(t.Elapsed.Seconds())
		}
	}
}

// xferSnapshot is a core's transfer plan and status (core.Core.TransferPlan).
type xferSnapshot struct {
	next string
	ts   []core.TransferStatus
	seq  uint64 // the loop's count of snapshots when it was taken
}

// transferSnapshot is the loop's transfer status as of its last durable change.
func (l *loop) transferSnapshot() (string, []core.TransferStatus) {
	l.xferMu.Lock()
	defer l.xferMu.Unlock()
	return l.xfer.next, l.xfer.ts
}

// turnOuts recycles carried-out turns (release): without it every turn grows its slices
// anew, several allocations for each request.
var turnOuts = sync.Pool{New: func() any { return new(turnOut) }}

// newTurnOut returns an empty turnOut, its slices reused.
func newTurnOut() *turnOut { return turnOuts.Get().(*turnOut) }

// release empties t, which was carried out (or failed) and is referenced no more, and
// keeps its slices for another turn; slices grown large by a burst are dropped.
func (t *turnOut) release() {
	const keep = 1024
	t.local.reset()
	*t = turnOut{
		local:   t.local,
		msgs:    recycled(t.msgs, keep),
		answers: recycled(t.answers, keep),
		replies: recycled(t.replies, keep),
		repairs: recycled(t.repairs, keep),
		reaps:   recycled(t.reaps, keep),
	}
	if cap(t.local.reqs) > keep || cap(t.local.resps) > keep {
		t.local = localEvents{}
	}
	turnOuts.Put(t)
}

// recycled empties s for reuse (nil when its capacity is over keep).
func recycled[T any](s []T, keep int) []T {
	if cap(s) > keep {
		return nil
	}
	clear(s)
	return s[:0]
}

// turnOut is what one turn sends out of the node.
type turnOut struct {
	l       *loop // the loop whose turn it is
	sync    bool
	local   localEvents // for this node's own core
	msgs    []core.Message
	answers []peerAnswer
	replies []clientReply
	repairs []repairOut
	reaps   []reapOut
	xfer    *xferSnapshot // a transfer completed: publish once durable
}

type peerAnswer struct {
	respond transport.Responder
	env     *pb.Envelope
}

type clientReply struct {
	ch chan core.Reply
	r  core.Reply
}

type repairOut struct {
	w *repairWatch
	u core.RepairUpdate
}

type reapOut struct {
	ch chan core.ReapDone
	d  core.ReapDone
}

func (o *turnOut) empty() bool {
	return !o.sync && o.local.len() == 0 && len(o.msgs) == 0 && len(o.answers) == 0 && len(o.replies) == 0 && len(o.repairs) == 0 && len(o.reaps) == 0 && o.xfer == nil
}

// outbox queues turns for the dispatcher without bound (the loop never waits for it).
type outbox struct {
	mu  sync.Mutex
	q   []*turnOut
	sig chan struct{}
}

func (o *outbox) push(t *turnOut) {
	o.mu.Lock()
	o.q = append(o.q, t)
	o.mu.Unlock()
	select {
	case o.sig <- struct{}{}:
	default:
	}
}

func (o *outbox) take(buf []*turnOut) []*turnOut {
	o.mu.Lock()
	defer o.mu.Unlock()
	buf = append(buf[:0], o.q...)
	clear(o.q)
	o.q = o.q[:0]
	return buf
}

// syncer carries out the turns of every loop that must be durable, in order: one fsync
// for every turn queued (whichever loop it came from), then their outputs, their events
// for this node's own cores back to their loops. Every SyncInterval it also syncs the
// writes that claimed no durability, if there are any (storage.SyncTracker).
func (n *Node) syncer(ctx context.Context) {
	var turns []*turnOut
	window := time.NewTimer(time.Hour)
	window.Stop()
	var periodic <-chan time.Time
	tracker, _ := n.store.(storage.SyncTracker)
	if n.cfg.SyncInterval > 0 && tracker != nil {
		t := time.NewTicker(n.cfg.SyncInterval)
		defer t.Stop()
		periodic = t.C
	}
	wait := func(d time.Duration) bool {
		window.Reset(d)
		select {
		case <-window.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	// slowDisk waits out the injected fsync delay (fault injection), starting over when
	// it is changed: healed, the wait ends at once. False when the node stops.
	slowDisk := func() bool {
		for {
			d := n.syncDelay.Load()
			if d <= 0 {
				return true
			}
			window.Reset(time.Duration(d) * time.Millisecond)
			select {
			case <-window.C:
				return true
			case <-n.syncDelaySet:
				window.Stop()
			case <-ctx.Done():
				return false
			}
		}
	}
	for {
		select {
		case <-n.out.sig:
		case <-periodic:
			if !tracker.Unsynced() {
				continue
			}
			if !slowDisk() {
				return
			}
			if err := n.syncStore("periodic"); err != nil {
				n.log.Error("store sync failed", "err", err)
			}
			continue
		case <-ctx.Done():
			return
		}
		// Group commit: the turns queued while the last fsync ran share this one, and with
		// a window (Cassandra's batch commit-log window; none by default) so do the turns
		// of the next moment.
		if n.cfg.SyncWindow > 0 && !wait(n.cfg.SyncWindow) {
			return
		}
		if !slowDisk() {
			return
		}
		turns = n.out.take(turns)
		if len(turns) == 0 {
			continue
		}
		var serr error
		if err := n.syncStore("durable"); err != nil {
			n.log.Error("store sync failed", "err", err)
			serr = fmt.Errorf("sync: %w", err)
		}
		for i, t := range turns {
			if serr != nil {
				t.l.failTurn(t, serr) // nothing that claims durability may leave
			} else {
				t.l.carryOut(ctx, t)
				if t.local.len() > 0 {
					t.l.submitLocal(t.local) // copies the events
				}
			}
			t.release()
			turns[i] = nil
		}
	}
}

// syncStore makes every store write so far durable: a synced write of the sync marker.
func (n *Node) syncStore(cause string) error {
	if err := n.store.Put([]byte(core.KeySyncMarker), []byte{1}, storage.WriteOptions{Sync: true}); err != nil {
		return err
	}
	n.metrics.syncs.WithLabelValues(cause).Inc()
	return nil
}

// failTurn answers everything of a turn that could not be made durable with err.
func (l *loop) failTurn(t *turnOut, err error) {
	lost := func(id uint64) { l.submitResponse(core.Response{ID: id, Err: fmt.Errorf("%w: %w", core.ErrLost, err)}) }
	for _, m := range t.msgs {
		lost(m.ID)
	}
	// A message to itself, or its answer, would claim the sync that failed.
	for _, r := range t.local.reqs {
		lost(r.ID)
	}
	for _, r := range t.local.resps {
		lost(r.ID)
	}
	for _, a := range t.answers {
		a.respond.Respond(core.ErrorEnvelope(err))
	}
	for _, r := range t.replies {
		r.ch <- core.Reply{ID: r.r.ID, Err: err}
	}
	for _, r := range t.repairs {
		r.w.put(l.shard, r.u)
	}
	for _, r := range t.reaps {
		r.ch <- r.d
	}
}

// send hands a message to the transport (or, for this node itself, to the shard that
// serves it); its answer, or failure, comes back to the loop.
func (l *loop) send(m core.Message) {
	id := m.ID
	if m.To == l.self {
		l.n.serve(l.self, m.Env, transport.ResponderFunc(func(e *pb.Envelope) { l.submitResponse(core.Response{ID: id, Env: e}) }))
		return
	}
	l.n.tr.Send(l.start.Add(m.Deadline), m.To, m.Env, id, l.answered)
}

// onAnswer is every sent message's callback (Transport.Send), on the transport's goroutines.
func (l *loop) onAnswer(id uint64, e *pb.Envelope, err error) {
	l.submitResponse(core.Response{ID: id, Env: e, Err: sendError(err)})
}

// sendError tells the core whether a failed message was sent at all.
func sendError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, transport.ErrUnreachable):
		return fmt.Errorf("%w: %w", core.ErrUnreachable, err)
	}
	return fmt.Errorf("%w: %w", core.ErrLost, err)
}

// watchRepair registers w for the updates of a repair run; on the loop.
func (l *loop) watchRepair(w *repairWatch) uint64 {
	l.nextID++
	l.repairs[l.nextID] = w
	return l.nextID
}

// repairWatch queues a repair run's updates, from every shard taking part, without bound:
// the loops never wait for the caller reading them.
type repairWatch struct {
	mu  sync.Mutex
	q   []shardUpdate
	sig chan struct{}
}

type shardUpdate struct {
	shard int
	core.RepairUpdate
}

func newRepairWatch() *repairWatch { return &repairWatch{sig: make(chan struct{}, 1)} }

func (w *repairWatch) put(shard int, u core.RepairUpdate) {
	w.mu.Lock()
	w.q = append(w.q, shardUpdate{shard, u})
	w.mu.Unlock()
	select {
	case w.sig <- struct{}{}:
	default:
	}
}

// take returns the queued updates, if any.
func (w *repairWatch) take() []shardUpdate {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.q
	w.q = nil
	return q
}

// watchReap registers ch for the end of a reaping pass; on the loop.
func (l *loop) watchReap(ch chan core.ReapDone) uint64 {
	l.nextID++
	l.reaps[l.nextID] = ch
	return l.nextID
}
