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

// loop drives the node's core (package core) from one goroutine: every protocol decision
// is the core's; the loop feeds it what happens (client requests, peer requests, answers,
// membership views, time) and carries out its Ready — one fsync for the turn's durable
// writes, then messages to peers, answers to peers, replies to clients. Nothing else
// touches the core, so it needs no lock; other goroutines hand the loop closures.
type loop struct {
	n     *Node
	c     *core.Core
	log   *slog.Logger
	start time.Time
	self  string

	mu    sync.Mutex
	queue []func()
	wake  chan struct{}
	done  chan struct{} // closed when the loop has stopped

	// Owned by the loop goroutine.
	nextID  uint64
	clients map[uint64]chan core.Reply
	peers   map[uint64]chan *pb.Envelope
	local   []core.Event // events for the core raised while carrying out a Ready
	timer   *time.Timer
	repairs map[uint64]*repairWatch
	reaps   map[uint64]chan core.ReapDone
}

func newLoop(n *Node, c *core.Core) *loop {
	return &loop{n: n, c: c, log: n.log, start: time.Now(), self: n.cfg.ID, wake: make(chan struct{}, 1),
		done: make(chan struct{}), clients: map[uint64]chan core.Reply{}, peers: map[uint64]chan *pb.Envelope{},
		repairs: map[uint64]*repairWatch{}, reaps: map[uint64]chan core.ReapDone{}}
}

// now is the core's time: the wall clock (skewed by fault injection) and a monotonic clock.
func (l *loop) now() core.Time {
	return core.Time{Wall: l.n.physMs(), Mono: time.Since(l.start)}
}

// submit hands f to the loop; it never blocks.
func (l *loop) submit(f func()) {
	l.mu.Lock()
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// do runs f on the loop and waits for it.
func (l *loop) do(ctx context.Context, f func(c *core.Core)) error {
	ran := make(chan struct{})
	l.submit(func() { f(l.c); close(ran) })
	select {
	case <-ran:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.done:
		return fmt.Errorf("%w: node %s is stopping", ErrUnavailable, l.self)
	}
}

func (l *loop) step(ev core.Event) { l.c.Step(l.now(), ev) }

// request runs a client request and waits for its reply.
func (l *loop) request(ctx context.Context, req core.ClientRequest) (core.Reply, error) {
	ch := make(chan core.Reply, 1)
	l.submit(func() {
		l.nextID++
		req.ID = l.nextID
		l.clients[req.ID] = ch
		l.step(req)
	})
	select {
	case r := <-ch:
		return r, r.Err
	case <-ctx.Done():
		return core.Reply{}, ctx.Err()
	case <-l.done:
		return core.Reply{}, fmt.Errorf("%w: node %s is stopping", ErrUnavailable, l.self)
	}
}

// peerRequest serves a peer's request and waits for the core's answer.
func (l *loop) peerRequest(ctx context.Context, from string, env *pb.Envelope) *pb.Envelope {
	ch := make(chan *pb.Envelope, 1)
	l.submit(func() {
		l.nextID++
		id := l.nextID
		l.peers[id] = ch
		l.step(core.PeerRequest{From: from, ID: id, Env: env})
	})
	select {
	case a := <-ch:
		return a
	case <-ctx.Done():
		return core.ErrorEnvelope(fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err()))
	case <-l.done:
		return core.ErrorEnvelope(fmt.Errorf("%w: node %s is stopping", ErrUnavailable, l.self))
	}
}

func (l *loop) run(ctx context.Context) {
	defer close(l.done)
	l.timer = time.NewTimer(time.Hour)
	defer l.timer.Stop()
	var batch []func()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
		case <-l.timer.C:
			l.step(core.Tick{})
		}
		l.mu.Lock()
		batch, l.queue = l.queue, batch[:0]
		l.mu.Unlock()
		for i, f := range batch {
			f()
			batch[i] = nil
		}
		l.flush(ctx)
	}
}

// flush carries out the core's Ready until it has nothing left, then arms the timer.
func (l *loop) flush(ctx context.Context) {
	for l.c.HasReady() || len(l.local) > 0 {
		for len(l.local) > 0 {
			ev := l.local[0]
			l.local = l.local[1:]
			l.step(ev)
		}
		if !l.c.HasReady() {
			break
		}
		rd := l.c.Ready()
		l.c.Advance()
		if rd.Sync {
			if err := l.n.store.Put([]byte(core.KeySyncMarker), []byte{1}, storage.WriteOptions{Sync: true}); err != nil {
				// Nothing that claims durability may leave: fail every reply of this turn.
				l.log.Error("store sync failed", "err", err)
				l.failTurn(rd, fmt.Errorf("sync: %w", err))
				continue
			}
		}
		for _, m := range rd.Messages {
			if m.To == l.self {
				// This node is one of the replicas: answered in this loop, no network.
				l.local = append(l.local, core.PeerRequest{From: l.self, ID: m.ID, Env: m.Env})
				continue
			}
			l.send(ctx, m)
		}
		for _, a := range rd.Answers {
			if a.To == l.self {
				l.local = append(l.local, core.Response{ID: a.ID, Env: a.Env})
				continue
			}
			if ch, ok := l.peers[a.ID]; ok {
				delete(l.peers, a.ID)
				ch <- a.Env
			}
		}
		for _, r := range rd.Replies {
			if ch, ok := l.clients[r.ID]; ok {
				delete(l.clients, r.ID)
				ch <- r
			}
		}
		for _, u := range rd.Repairs {
			if w, ok := l.repairs[u.ID]; ok {
				w.put(u)
				if u.Finished {
					delete(l.repairs, u.ID)
				}
			}
		}
		for _, d := range rd.Reaped {
			if ch, ok := l.reaps[d.ID]; ok {
				delete(l.reaps, d.ID)
				ch <- d
			}
		}
	}
	if t, ok := l.c.NextTimer(); ok {
		d := t - time.Since(l.start)
		l.timer.Reset(max(d, 0))
	}
}

// failTurn answers everything of a Ready that could not be made durable with err.
func (l *loop) failTurn(rd core.Ready, err error) {
	for _, m := range rd.Messages {
		l.local = append(l.local, core.Response{ID: m.ID, Err: fmt.Errorf("%w: %w", core.ErrLost, err)})
	}
	for _, a := range rd.Answers {
		if a.To == l.self {
			continue // its Message failed above
		}
		if ch, ok := l.peers[a.ID]; ok {
			delete(l.peers, a.ID)
			ch <- core.ErrorEnvelope(err)
		}
	}
	for _, r := range rd.Replies {
		if ch, ok := l.clients[r.ID]; ok {
			delete(l.clients, r.ID)
			ch <- core.Reply{ID: r.ID, Err: err}
		}
	}
}

// send hands a message to the transport; its answer, or failure, comes back to the loop.
func (l *loop) send(ctx context.Context, m core.Message) {
	id := m.ID
	dctx := deadlineCtx{Context: ctx, deadline: l.start.Add(m.Deadline)}
	l.n.tr.Call(dctx, m.To, m.Env, func(e *pb.Envelope, err error) {
		l.submit(func() { l.step(core.Response{ID: id, Env: e, Err: sendError(err)}) })
	})
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

// deadlineCtx carries a deadline to the transport (which reads only Deadline) without the
// timer context.WithDeadline would start for every message.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (d deadlineCtx) Deadline() (time.Time, bool) { return d.deadline, true }

// watchRepair registers w for the updates of a repair run; on the loop.
func (l *loop) watchRepair(w *repairWatch) uint64 {
	l.nextID++
	l.repairs[l.nextID] = w
	return l.nextID
}

// repairWatch queues a repair run's updates without bound: the loop never waits for the
// caller reading them.
type repairWatch struct {
	mu  sync.Mutex
	q   []core.RepairUpdate
	sig chan struct{}
}

func newRepairWatch() *repairWatch { return &repairWatch{sig: make(chan struct{}, 1)} }

func (w *repairWatch) put(u core.RepairUpdate) {
	w.mu.Lock()
	w.q = append(w.q, u)
	w.mu.Unlock()
	select {
	case w.sig <- struct{}{}:
	default:
	}
}

// take returns the queued updates, if any.
func (w *repairWatch) take() []core.RepairUpdate {
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
