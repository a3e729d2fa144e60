// Package transport carries quorumkv's internode messages: length-prefixed protobuf batches
// on long-lived TCP connections, mutual TLS when configured.
//
// Model: for every ordered pair of nodes there is at most one connection, dialled by the
// asking node when it first has something to send; requests go out on it and their
// responses come back on it. Each side of a connection has one writer goroutine that
// takes every message queued since its last write and sends them as one write (frames of
// at most Config.MaxBatch envelopes each; frame.go has the format), and one reader
// goroutine. A request carries an id unique on its connection, and its response the same
// id. A connection that breaks is dialled again on the next call, no sooner than a backoff
// after a failed dial (50 ms growing to 1 s; ResetBackoff cuts it short).
//
// Invariants:
//   - Call never blocks, and its callback runs exactly once: with the response, or with an
//     error that says whether the request may have been served (ErrLost) or surely was not
//     (ErrUnreachable, ErrOverloaded, ErrFrameTooLarge, ErrClosed; ErrTimeout says only that
//     no answer came in time).
//   - Queues are bounded (Config.QueueLen per connection and direction): a full queue fails
//     the call at once with ErrOverloaded, or drops a response (the asker times out).
//   - A frame over Config.MaxMsgBytes or that does not decode closes the connection and is
//     logged; nothing of it reaches the handler. A message too large to send fails alone.
//   - No request from a peer reaches the handler before the handshake: with TLS, the
//     peer's certificate is signed by the cluster CA and names the node id its hello
//     claims.
//
// Security: with Config.ServerTLS and ClientTLS every connection is mutual TLS; a peer
// whose certificate the cluster CA did not sign (or a plaintext one) fails the handshake
// before any message is read, either way round, and is counted in Stats.TLSRejected and
// logged (tls.go). A member's certificate must name its node id (common name or DNS
// name): a connection whose hello claims a sender the certificate does not name is
// refused, and a dialled peer must show a certificate naming the node dialled, so no
// member speaks for another.
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

// Handler serves requests that arrive from other nodes. Handle runs on its own goroutine
// (bounded by Config.MaxInflight) and returns the response envelope; its Id is set by the
// transport. It must honour ctx.
type Handler interface {
	Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope
}

// AsyncHandler is a Handler that can also take requests without holding a goroutine:
// HandleAsync must not block; it calls respond.Respond exactly once, from any goroutine,
// with the response envelope (or nil for none), whose Id the transport sets. A Handler
// that implements it gets every request through it, on the connection's reader goroutine.
type AsyncHandler interface {
	Handler
	HandleAsync(ctx context.Context, from string, req *pb.Envelope, respond Responder)
}

// Responder answers one request taken by an AsyncHandler. It is a small value, not a
// closure, so that taking a request allocates nothing for its answer's way back; a
// handler may keep it as long as it needs to.
type Responder struct {
	t  *Transport
	sc *serverConn
	id uint64
	fn func(*pb.Envelope) // set by ResponderFunc: answered by a call instead
}

// ResponderFunc is a Responder that calls fn with the answer: for callers that relay an
// answer themselves (a synchronous wrapper, an answer gathered from parts).
func ResponderFunc(fn func(*pb.Envelope)) Responder { return Responder{fn: fn} }

// Respond sends resp (nil: no answer) to the asker.
func (r Responder) Respond(resp *pb.Envelope) {
	if r.fn != nil {
		r.fn(resp)
		return
	}
	r.t.respond(r.sc, r.id, resp, false)
}

// Resolver maps a node ID to its current RPC address.
type Resolver func(id string) (addr string, ok bool)

// Config configures a Transport. Fields added after the first release treat their zero
// value as the default, so a Config built field by field keeps working.
type Config struct {
	NodeID     string
	ListenAddr string // host:port; port 0 picks one
	Resolve    Resolver
	Handler    Handler
	Logger     *slog.Logger
	// MaxBatch bounds envelopes per frame: 256 keeps a frame of small messages well under
	// one TCP window while amortising the per-frame cost. A write may hold several frames.
	MaxBatch int
	// QueueLen bounds each connection's send queue, each way; beyond it calls fail fast
	// with ErrOverloaded (responses are dropped) rather than letting memory grow without
	// bound.
	QueueLen int
	// MaxInflight is the number of long-lived worker goroutines serving requests of a
	// Handler that is not an AsyncHandler: enough that a slow request does not stall every
	// peer, and long-lived so that no request pays for a fresh goroutine's stack growth.
	MaxInflight int
	// MaxMsgBytes bounds one frame (a batch): a value may be 4 MiB and an object may hold
	// up to 100 siblings, so 256 MiB. A longer frame closes the connection; a message that
	// alone would exceed it fails with ErrFrameTooLarge.
	MaxMsgBytes int
	// Inline, when set, picks the requests of a non-async Handler that are served on the
	// connection's reader goroutine instead of a worker: short, non-blocking ones.
	Inline func(*pb.Envelope) bool
	// DefaultTimeout applies to calls whose context has no deadline.
	DefaultTimeout time.Duration
	// DialTimeout bounds a connection attempt: TCP connect, TLS handshake and the hello
	// exchange. 1 s: peers are on one network, and a silent host should cost callers
	// little.
	DialTimeout time.Duration
	// HandshakeTimeout bounds how long an accepted connection may take to complete the
	// TLS handshake and send its hello (0: 5 s, room for a slow TLS handshake on a loaded
	// machine while a silent client holds a goroutine for no longer).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one write to a connection (0: 10 s): a peer that stops reading
	// loses its connection instead of stalling every caller behind a full socket.
	WriteTimeout time.Duration
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
		MaxBatch:         256,
		QueueLen:         16384,
		MaxInflight:      256,
		MaxMsgBytes:      256 << 20,
		DefaultTimeout:   10 * time.Second,
		DialTimeout:      time.Second,
		HandshakeTimeout: 5 * time.Second,
		WriteTimeout:     10 * time.Second,
	}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	switch {
	case c.NodeID == "":
		return errors.New("transport: NodeID is required")
	case len(c.NodeID) > maxHelloBytes/2:
		return errors.New("transport: NodeID is too long")
	case c.Resolve == nil:
		return errors.New("transport: Resolve is required")
	case c.Handler == nil:
		return errors.New("transport: Handler is required")
	case c.MaxBatch <= 0 || c.QueueLen <= 0 || c.MaxInflight <= 0 || c.MaxMsgBytes <= 0:
		return errors.New("transport: MaxBatch, QueueLen, MaxInflight and MaxMsgBytes must be positive")
	case c.MaxMsgBytes > 1<<31:
		return errors.New("transport: MaxMsgBytes must be at most 2 GiB")
	case c.DefaultTimeout <= 0 || c.DialTimeout <= 0 || c.HandshakeTimeout < 0 || c.WriteTimeout < 0:
		return errors.New("transport: timeouts must be positive")
	case (c.ServerTLS == nil) != (c.ClientTLS == nil):
		return errors.New("transport: set both ServerTLS and ClientTLS, or neither")
	}
	return nil
}

// withDefaults fills the fields whose zero value means the default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	return c
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
	faults atomic.Pointer[Faults]
	jobs   chan job
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	peers    map[string]*peer
	accepted map[*serverConn]struct{}
	closed   bool

	Stats Stats
}

// Stats counts transport activity; read with atomic loads.
type Stats struct {
	// BatchesSent counts frames of envelopes written, MessagesSent the envelopes in them,
	// BytesSent their bytes (headers included), both ways.
	BatchesSent  atomic.Uint64
	MessagesSent atomic.Uint64
	BytesSent    atomic.Uint64
	// Writes counts write calls to connections (each may carry several frames).
	Writes        atomic.Uint64
	Dropped       atomic.Uint64
	FailedToReach atomic.Uint64
	// TLSRejected counts internode TLS handshakes refused, either side, and connections
	// whose certificate does not name the node they claim or were dialled as.
	TLSRejected atomic.Uint64
	// BadFrames counts connections closed for a frame over the size limit or one that
	// did not decode.
	BadFrames atomic.Uint64
}

// Listen binds cfg.ListenAddr and starts serving.
func Listen(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
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
		cfg:      cfg,
		log:      log,
		lis:      lis,
		ctx:      ctx,
		cancel:   cancel,
		peers:    map[string]*peer{},
		accepted: map[*serverConn]struct{}{},
	}
	t.faults.Store(&Faults{})
	if _, async := cfg.Handler.(AsyncHandler); !async {
		t.jobs = make(chan job, cfg.QueueLen)
		for range cfg.MaxInflight {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				t.work()
			}()
		}
	}
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		t.acceptLoop()
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
		p.resetBackoff()
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
	accepted := t.accepted
	t.accepted = map[*serverConn]struct{}{}
	t.mu.Unlock()
	t.cancel()
	_ = t.lis.Close()
	for _, p := range peers {
		p.close(ErrClosed)
	}
	// Connections from peers stay open as long as the peers live, so a graceful stop would
	// wait for them; in-flight requests fail instead and their callers time out or retry.
	for sc := range accepted {
		sc.close()
	}
	t.wg.Wait()
	return nil
}

// Call sends req to node `to` and arranges for cb to run exactly once with the response or
// an error. It never blocks. The deadline is ctx's, or DefaultTimeout. req belongs to the
// transport from here on (its Id is set): never pass one envelope to two calls.
func (t *Transport) Call(ctx context.Context, to string, req *pb.Envelope, cb func(*pb.Envelope, error)) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(t.cfg.DefaultTimeout)
	}
	t.call(to, &call{req: req, cb: cb, deadline: deadline})
}

// Send is Call for a caller that tells its calls apart by a tag: cb, typically one
// function for all of them, runs exactly once with tag and the response or an error. It
// costs one allocation less than Call with a closure and a context (an event loop sends
// thousands a second).
func (t *Transport) Send(deadline time.Time, to string, req *pb.Envelope, tag uint64, cb func(tag uint64, resp *pb.Envelope, err error)) {
	t.call(to, &call{req: req, tcb: cb, tag: tag, deadline: deadline})
}

func (t *Transport) call(to string, c *call) {
	if t.dropped(to) {
		t.Stats.Dropped.Add(1)
		c.finish(nil, fmt.Errorf("%w: %s (fault injected)", ErrUnreachable, to))
		return
	}
	addr, ok := t.cfg.Resolve(to)
	if !ok {
		c.finish(nil, fmt.Errorf("%w: %s has no known address", ErrUnreachable, to))
		return
	}
	p, err := t.peer(to, addr)
	if err != nil {
		c.finish(nil, err)
		return
	}
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
	p = newPeer(t, id, addr)
	t.peers[id] = p
	return p, nil
}

// sweep fails calls whose deadline has passed.
func (t *Transport) sweep() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var peers []*peer
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-tick.C:
			t.mu.Lock()
			peers = peers[:0]
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
	cb       func(*pb.Envelope, error)         // Call's
	tcb      func(uint64, *pb.Envelope, error) // Send's, with tag
	tag      uint64
	deadline time.Time
	done     atomic.Bool
}

func (c *call) finish(resp *pb.Envelope, err error) {
	if c.done.CompareAndSwap(false, true) {
		if c.tcb != nil {
			c.tcb(c.tag, resp, err)
			return
		}
		c.cb(resp, err)
	}
}
