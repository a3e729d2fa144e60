// Package transport carries quorumkv's internode messages over gRPC.
//
// Model: every pair of nodes shares one long-lived bidirectional gRPC stream per direction.
// The dialing node sends request Envelopes on it and receives the responses on the same
// stream; the receiving node answers on it. Envelopes are batched: a sender goroutine per
// stream drains its queue into one Batch per Send, so N concurrent requests cost far fewer
// than N syscalls. Call never blocks: it enqueues and returns; the callback runs exactly once,
// with the response or an error (unreachable peer, overload, timeout, broken stream).
//
// Security: with Config.ServerTLS and ClientTLS every connection is mutual TLS; a peer
// whose certificate the cluster CA did not sign (or a plaintext one) fails the handshake
// before any message is read, either way round, and is counted in Stats.TLSRejected and
// logged (tls.go). A member's certificate must name its node id (common name or DNS
// name): a stream whose claimed sender the certificate does not name is refused, and a
// dialled peer must show a certificate naming the node dialled, so no member speaks for
// another.
//
// A fault layer (SetFaults) drops traffic to and from named peers and delays outbound
// messages. It serves tests and demonstrations and is enabled only with --debug-faults.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// Errors a Call's callback may receive. Test with errors.Is.
var (
	// ErrUnreachable: the request was not sent: no connection to the peer could be had (down, unknown, or dropped by
	// the fault layer).
	ErrUnreachable = errors.New("transport: peer unreachable")
	// ErrLost: the request was sent (or may have been) but the connection broke before its
	// answer: the peer may or may not have served it, so retrying it elsewhere may do it
	// twice.
	ErrLost = errors.New("transport: connection lost after sending; the request may have been served")
	// ErrTimeout: the peer did not answer before the call's deadline.
	ErrTimeout = errors.New("transport: timed out")
	// ErrOverloaded: the peer's send queue is full.
	ErrOverloaded = errors.New("transport: send queue full")
	// ErrClosed: the transport was closed.
	ErrClosed = errors.New("transport: closed")
)

const fromHeader = "qkv-from"

// Handler serves requests that arrive from other nodes. Handle runs on its own goroutine
// (bounded by Config.MaxInflight) and returns the response envelope; its Id is set by the
// transport. It must honour ctx.
type Handler interface {
	Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope
}

// AsyncHandler is a Handler that can also take requests without holding a goroutine:
// HandleAsync must not block; it calls respond exactly once, from any goroutine, with the
// response envelope (or nil for none), whose Id the transport sets. A Handler that
// implements it gets every request through it, on the stream's receive goroutine.
type AsyncHandler interface {
	Handler
	HandleAsync(ctx context.Context, from string, req *pb.Envelope, respond func(*pb.Envelope))
}

// Resolver maps a node ID to its current RPC address.
type Resolver func(id string) (addr string, ok bool)

// Config configures a Transport.
type Config struct {
	NodeID     string
	ListenAddr string // host:port; port 0 picks one
	Resolve    Resolver
	Handler    Handler
	Logger     *slog.Logger
	// MaxBatch bounds envelopes per Batch: 256 keeps a batch of small messages well under
	// one TCP window while amortising the per-Send cost.
	MaxBatch int
	// QueueLen bounds each peer's send queue; beyond it calls fail fast with ErrOverloaded
	// rather than letting memory grow without bound.
	QueueLen int
	// MaxInflight is the number of long-lived worker goroutines serving requests: enough
	// that synced writes group-commit and a slow disk does not stall every peer, and long-
	// lived so that no request pays for a fresh goroutine's stack growth.
	MaxInflight int
	// MaxMsgBytes bounds one gRPC message (a Batch): a value may be 4 MiB and an object may
	// hold up to 100 siblings, so 256 MiB.
	MaxMsgBytes int
	// Inline, when set, picks the requests that are served on the stream's receive
	// goroutine instead of a worker: short, non-blocking ones (a local read, an unsynced
	// local write), for which handing over to a worker costs more than the work.
	Inline func(*pb.Envelope) bool
	// DefaultTimeout applies to calls whose context has no deadline.
	DefaultTimeout time.Duration
	// DialTimeout bounds waiting for a connection to become ready.
	DialTimeout time.Duration
	// ServerTLS, when set, makes the listening side speak TLS only; it should require a
	// client certificate signed by the cluster CA (pki.Bundle.InternodeServer). A peer
	// whose handshake fails is refused before any message is read, counted in
	// Stats.TLSRejected and logged.
	ServerTLS *tls.Config
	// ClientTLS, when set, is what the node dials its peers with: its own certificate and
	// the check of theirs (pki.Bundle.InternodeClient). Set both or neither.
	ClientTLS *tls.Config
}

// DefaultConfig returns the defaults, with reasons beside each in Config.
func DefaultConfig() Config {
	return Config{
		MaxBatch:       256,
		QueueLen:       16384,
		MaxInflight:    256,
		MaxMsgBytes:    256 << 20,
		DefaultTimeout: 10 * time.Second,
		DialTimeout:    time.Second,
	}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("transport: NodeID is required")
	case c.Resolve == nil:
		return errors.New("transport: Resolve is required")
	case c.Handler == nil:
		return errors.New("transport: Handler is required")
	case c.MaxBatch <= 0 || c.QueueLen <= 0 || c.MaxInflight <= 0 || c.MaxMsgBytes <= 0:
		return errors.New("transport: MaxBatch, QueueLen, MaxInflight and MaxMsgBytes must be positive")
	case c.DefaultTimeout <= 0 || c.DialTimeout <= 0:
		return errors.New("transport: timeouts must be positive")
	case (c.ServerTLS == nil) != (c.ClientTLS == nil):
		return errors.New("transport: set both ServerTLS and ClientTLS, or neither")
	}
	return nil
}

// Faults is the fault-injection state: traffic to and from Drop is discarded, and every
// outbound message is held back by Delay.
type Faults struct {
	Drop  map[string]bool
	Delay time.Duration
}

// Transport is a node's internode endpoint. Safe for concurrent use.
type Transport struct {
	cfg    Config
	log    *slog.Logger
	lis    net.Listener
	srv    *grpc.Server
	faults atomic.Pointer[Faults]
	jobs   chan job
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	peers  map[string]*peer
	closed bool

	Stats Stats
}

// Stats counts transport activity; read with atomic loads.
type Stats struct {
	BatchesSent   atomic.Uint64
	MessagesSent  atomic.Uint64
	BytesSent     atomic.Uint64
	Dropped       atomic.Uint64
	FailedToReach atomic.Uint64
	// TLSRejected counts internode TLS handshakes refused, either side.
	TLSRejected atomic.Uint64
}

// Listen binds cfg.ListenAddr and starts serving.
func Listen(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", cfg.ListenAddr, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:    cfg,
		log:    log,
		lis:    lis,
		jobs:   make(chan job, cfg.QueueLen),
		ctx:    ctx,
		cancel: cancel,
		peers:  map[string]*peer{},
	}
	t.faults.Store(&Faults{})
	t.srv = grpc.NewServer(
		grpc.Creds(t.serverCreds()),
		grpc.MaxRecvMsgSize(cfg.MaxMsgBytes),
		grpc.MaxSendMsgSize(cfg.MaxMsgBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 10 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 2 * time.Second, PermitWithoutStream: true}),
	)
	pb.RegisterInternodeServer(t.srv, &server{t: t})
	for range cfg.MaxInflight {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.work()
		}()
	}
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		if err := t.srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("internode server stopped", "err", err)
		}
	}()
	go func() {
		defer t.wg.Done()
		t.sweep()
	}()
	return t, nil
}

// Addr is the bound RPC address.
func (t *Transport) Addr() string { return t.lis.Addr().String() }

// SetFaults replaces the fault-injection state.
func (t *Transport) SetFaults(f Faults) {
	cp := Faults{Drop: map[string]bool{}, Delay: f.Delay}
	for k, v := range f.Drop {
		if v {
			cp.Drop[k] = true
		}
	}
	t.faults.Store(&cp)
}

// CurrentFaults returns the fault-injection state.
func (t *Transport) CurrentFaults() Faults { return *t.faults.Load() }

func (t *Transport) dropped(node string) bool {
	f := t.faults.Load()
	return f.Drop[node]
}

// ResetBackoff makes the next call to node id try to connect at once, even when a recent
// attempt failed (call it when the failure detector sees the node up again).
func (t *Transport) ResetBackoff(id string) {
	t.mu.Lock()
	p := t.peers[id]
	t.mu.Unlock()
	if p != nil {
		p.conn.ResetConnectBackoff()
	}
}

// Close stops serving and fails every pending call with ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	peers := t.peers
	t.peers = map[string]*peer{}
	t.mu.Unlock()
	t.cancel()
	for _, p := range peers {
		p.close(ErrClosed)
	}
	// Streams from peers stay open as long as the peers live, so a graceful stop would
	// wait for them; in-flight requests fail instead and their callers time out or retry.
	t.srv.Stop()
	t.wg.Wait()
	return nil
}

// Call sends req to node `to` and arranges for cb to run exactly once with the response or
// an error. It never blocks. The deadline is ctx's, or DefaultTimeout. req belongs to the
// transport from here on (its Id is set): never pass one envelope to two calls.
func (t *Transport) Call(ctx context.Context, to string, req *pb.Envelope, cb func(*pb.Envelope, error)) {
	if t.dropped(to) {
		t.Stats.Dropped.Add(1)
		cb(nil, fmt.Errorf("%w: %s (fault injected)", ErrUnreachable, to))
		return
	}
	addr, ok := t.cfg.Resolve(to)
	if !ok {
		cb(nil, fmt.Errorf("%w: %s has no known address", ErrUnreachable, to))
		return
	}
	p, err := t.peer(to, addr)
	if err != nil {
		cb(nil, err)
		return
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(t.cfg.DefaultTimeout)
	}
	c := &call{req: req, cb: cb, deadline: deadline}
	if d := t.faults.Load().Delay; d > 0 {
		time.AfterFunc(d, func() { p.enqueue(c) })
		return
	}
	p.enqueue(c)
}

func (t *Transport) peer(id, addr string) (*peer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	p := t.peers[id]
	if p != nil && p.addr == addr {
		return p, nil
	}
	if p != nil {
		go p.close(fmt.Errorf("%w: %s moved to %s", ErrLost, id, addr))
	}
	p, err := newPeer(t, id, addr)
	if err != nil {
		return nil, err
	}
	t.peers[id] = p
	return p, nil
}

// sweep fails calls whose deadline has passed.
func (t *Transport) sweep() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-tick.C:
			t.mu.Lock()
			peers := make([]*peer, 0, len(t.peers))
			for _, p := range t.peers {
				peers = append(peers, p)
			}
			t.mu.Unlock()
			for _, p := range peers {
				p.expire(now)
			}
		}
	}
}

type call struct {
	req      *pb.Envelope
	cb       func(*pb.Envelope, error)
	deadline time.Time
	done     atomic.Bool
}

func (c *call) finish(resp *pb.Envelope, err error) {
	if c.done.CompareAndSwap(false, true) {
		c.cb(resp, err)
	}
}

// peer is the dialing side of one node pair.
type peer struct {
	t     *Transport
	id    string
	addr  string
	conn  *grpc.ClientConn
	queue chan *call
	ctx   context.Context
	stop  context.CancelFunc

	mu      sync.Mutex
	pending map[uint64]*call
	nextID  uint64
}

func newPeer(t *Transport, id, addr string) (*peer, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(t.clientCreds(id)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(t.cfg.MaxMsgBytes), grpc.MaxCallSendMsgSize(t.cfg.MaxMsgBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: t.cfg.DialTimeout,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s at %s: %w", id, addr, err)
	}
	ctx, stop := context.WithCancel(t.ctx)
	p := &peer{t: t, id: id, addr: addr, conn: conn, queue: make(chan *call, t.cfg.QueueLen), ctx: ctx, stop: stop, pending: map[uint64]*call{}}
	go p.run()
	return p, nil
}

func (p *peer) enqueue(c *call) {
	select {
	case p.queue <- c:
	default:
		c.finish(nil, fmt.Errorf("%w: to %s", ErrOverloaded, p.id))
	}
}

func (p *peer) close(err error) {
	p.stop()
	p.failPending(err)
	_ = p.conn.Close()
}

func (p *peer) failPending(err error) {
	p.mu.Lock()
	calls := p.pending
	p.pending = map[uint64]*call{}
	p.mu.Unlock()
	for _, c := range calls {
		c.finish(nil, err)
	}
}

func (p *peer) expire(now time.Time) {
	var expired []*call
	p.mu.Lock()
	for id, c := range p.pending {
		if now.After(c.deadline) {
			delete(p.pending, id)
			expired = append(expired, c)
		}
	}
	p.mu.Unlock()
	for _, c := range expired {
		c.finish(nil, fmt.Errorf("%w: waiting for %s", ErrTimeout, p.id))
	}
}

// run owns the peer's stream: it opens it when there is something to send, batches queued
// calls into Sends, and reopens it after a failure.
func (p *peer) run() {
	var (
		stream pb.Internode_StreamClient
		broken chan struct{}
	)
	batch := &pb.Batch{}
	calls := make([]*call, 0, p.t.cfg.MaxBatch)
	for {
		var first *call
		select {
		case <-p.ctx.Done():
			p.drain(ErrClosed)
			return
		case first = <-p.queue:
		}
		if stream != nil {
			select {
			case <-broken:
				stream = nil
			default:
			}
		}
		if stream == nil {
			s, b, err := p.open()
			if err != nil {
				p.t.Stats.FailedToReach.Add(1)
				err = fmt.Errorf("%w: %s at %s: %v", ErrUnreachable, p.id, p.addr, err)
				first.finish(nil, err)
				p.drain(err)
				continue
			}
			stream, broken = s, b
		}
		calls = append(calls[:0], first)
	fill:
		for len(calls) < p.t.cfg.MaxBatch {
			select {
			case c := <-p.queue:
				calls = append(calls, c)
			default:
				break fill
			}
		}
		batch.Msgs = batch.Msgs[:0]
		p.mu.Lock()
		for _, c := range calls {
			p.nextID++
			c.req.Id = p.nextID
			p.pending[p.nextID] = c
			batch.Msgs = append(batch.Msgs, c.req)
		}
		p.mu.Unlock()
		if err := stream.Send(batch); err != nil {
			p.t.log.Debug("internode send failed", "peer", p.id, "err", err)
			stream = nil
			p.failPending(fmt.Errorf("%w: %s: send: %v", ErrLost, p.id, err))
			continue
		}
		p.t.Stats.BatchesSent.Add(1)
		p.t.Stats.MessagesSent.Add(uint64(len(calls)))
		clear(calls)
	}
}

// drain fails every queued call without waiting.
func (p *peer) drain(err error) {
	for {
		select {
		case c := <-p.queue:
			c.finish(nil, err)
		default:
			return
		}
	}
}

// open waits (bounded) for the connection to be ready and opens the stream; its receive
// loop delivers responses until the stream breaks, then closes the returned channel.
func (p *peer) open() (pb.Internode_StreamClient, chan struct{}, error) {
	wctx, cancel := context.WithTimeout(p.ctx, p.t.cfg.DialTimeout)
	defer cancel()
	p.conn.Connect()
	retried := false
	for st := p.conn.GetState(); st != connectivity.Ready; st = p.conn.GetState() {
		switch st {
		case connectivity.Shutdown:
			return nil, nil, ErrClosed
		case connectivity.TransientFailure:
			// The last attempt failed and gRPC is backing off. Try again now, but wait
			// only briefly: a peer that just came back connects within milliseconds, and
			// one that is still down (connection refused) fails as fast, so only a
			// silent host costs the short wait.
			if retried {
				return nil, nil, errors.New("connection failed (retrying in the background)")
			}
			retried = true
			p.conn.ResetConnectBackoff()
			short, cancel := context.WithTimeout(wctx, p.t.cfg.DialTimeout/4)
			p.conn.WaitForStateChange(short, st)
			cancel()
			continue
		}
		if !p.conn.WaitForStateChange(wctx, st) {
			return nil, nil, fmt.Errorf("connection %s", p.conn.GetState())
		}
	}
	ctx := metadata.AppendToOutgoingContext(p.ctx, fromHeader, p.t.cfg.NodeID)
	stream, err := pb.NewInternodeClient(p.conn).Stream(ctx)
	if err != nil {
		return nil, nil, err
	}
	broken := make(chan struct{})
	go func() {
		defer close(broken)
		for {
			b, err := stream.Recv()
			if err != nil {
				p.failPending(fmt.Errorf("%w: %s: stream: %v", ErrLost, p.id, err))
				return
			}
			if p.t.dropped(p.id) {
				p.t.Stats.Dropped.Add(uint64(len(b.Msgs)))
				continue // their answers are lost too; the calls time out
			}
			for _, m := range b.Msgs {
				p.mu.Lock()
				c := p.pending[m.Id]
				delete(p.pending, m.Id)
				p.mu.Unlock()
				if c != nil {
					c.finish(m, nil)
				}
			}
		}
	}()
	return stream, broken, nil
}

// server is the answering side.
type server struct {
	pb.UnimplementedInternodeServer
	t *Transport
}

func (s *server) Stream(stream pb.Internode_StreamServer) error {
	t := s.t
	from := ""
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok {
		if v := md.Get(fromHeader); len(v) > 0 {
			from = v[0]
		}
	}
	if from == "" {
		return errors.New("transport: stream without sender id")
	}
	if err := t.checkSender(stream.Context(), from); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	out := make(chan *pb.Envelope, t.cfg.QueueLen)
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		batch := &pb.Batch{}
		for {
			var first *pb.Envelope
			select {
			case <-ctx.Done():
				return
			case first = <-out:
			}
			batch.Msgs = append(batch.Msgs[:0], first)
		fill:
			for len(batch.Msgs) < t.cfg.MaxBatch {
				select {
				case m := <-out:
					batch.Msgs = append(batch.Msgs, m)
				default:
					break fill
				}
			}
			if err := stream.Send(batch); err != nil {
				cancel()
				return
			}
			t.Stats.BatchesSent.Add(1)
			t.Stats.MessagesSent.Add(uint64(len(batch.Msgs)))
		}
	}()
	defer func() { cancel(); <-senderDone }()
	for {
		b, err := stream.Recv()
		if err != nil {
			return nil
		}
		if t.dropped(from) {
			t.Stats.Dropped.Add(uint64(len(b.Msgs)))
			continue
		}
		async, _ := t.cfg.Handler.(AsyncHandler)
		for _, m := range b.Msgs {
			j := job{ctx: ctx, from: from, req: m, out: out}
			if async != nil {
				async.HandleAsync(ctx, from, m, func(resp *pb.Envelope) { t.respond(j, resp, false) })
				continue
			}
			if t.cfg.Inline != nil && t.cfg.Inline(m) {
				t.serve(j)
				continue
			}
			select {
			case t.jobs <- j:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// job is one request waiting for a worker.
type job struct {
	ctx  context.Context // the stream's: done when the stream is gone
	from string
	req  *pb.Envelope
	out  chan<- *pb.Envelope
}

// work serves jobs until the transport closes.
func (t *Transport) work() {
	for {
		select {
		case <-t.ctx.Done():
			return
		case j := <-t.jobs:
			t.serve(j)
		}
	}
}

func (t *Transport) serve(j job) {
	if j.ctx.Err() != nil {
		return // the asker is gone
	}
	t.respond(j, t.cfg.Handler.Handle(j.ctx, j.from, j.req), true)
}

// respond queues a request's response on its stream. With wait it waits for room in the
// queue (a worker); without, a full queue drops the response (the asker times out) rather
// than block an asynchronous handler's caller.
func (t *Transport) respond(j job, resp *pb.Envelope, wait bool) {
	if resp == nil {
		return
	}
	resp.Id = j.req.Id
	send := func() {
		if t.dropped(j.from) {
			t.Stats.Dropped.Add(1)
			return
		}
		if !wait {
			select {
			case j.out <- resp:
			case <-j.ctx.Done():
			default:
				t.Stats.Dropped.Add(1)
			}
			return
		}
		select {
		case j.out <- resp:
		case <-j.ctx.Done():
		}
	}
	if d := t.faults.Load().Delay; d > 0 {
		time.AfterFunc(d, send)
		return
	}
	send()
}
