package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// Reconnection backoff after a failed dial: calls to the peer fail fast with
// ErrUnreachable until it has passed (a peer that is down costs its callers nothing), and
// the next call dials again. It starts short, since a restarting peer comes back within
// a second, and is capped so a returning peer is noticed within one cap.
const (
	backoffBase = 50 * time.Millisecond
	backoffMax  = time.Second
)

// readBufBytes sizes each connection's read buffer: many small frames per read syscall.
const readBufBytes = 64 << 10

// keepBufBytes: a write or read buffer grown past this for one big frame is dropped
// afterwards rather than kept for the connection's life.
const keepBufBytes = 4 << 20

// peer is the dialing side towards one node: a bounded queue of calls, the current
// connection (if any), and the writer goroutine that owns both.
type peer struct {
	t    *Transport
	id   string
	addr string
	wake chan struct{} // cap 1: something was queued
	done chan struct{} // closed by close

	mu       sync.Mutex
	queue    []*call
	closed   bool
	closeErr error
	conn     *clientConn
	nextDial time.Time // no dial before this (backoff after a failed one)
	backoff  time.Duration
	lastErr  error // why the last dial failed
}

// clientConn is one connection of a peer, with the calls sent on it awaiting answers.
type clientConn struct {
	p  *peer
	nc net.Conn
	br *bufio.Reader

	nextID uint64 // writer goroutine only

	mu      sync.Mutex
	pending map[uint64]*call
	broken  bool
}

func newPeer(t *Transport, id, addr string) *peer {
	p := &peer{t: t, id: id, addr: addr, wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		p.run()
	}()
	return p
}

// enqueue queues c for the writer, or fails it at once: closed, backing off after a failed
// dial, or queue full.
func (p *peer) enqueue(c *call) {
	p.mu.Lock()
	var err error
	switch {
	case p.closed:
		err = p.closeErr
	case (p.conn == nil || p.conn.isBroken()) && time.Now().Before(p.nextDial):
		p.t.Stats.FailedToReach.Add(1)
		err = fmt.Errorf("%w: %s at %s: reconnecting after a failed attempt (%v)", ErrUnreachable, p.id, p.addr, p.lastErr)
	case len(p.queue) >= p.t.cfg.QueueLen:
		err = fmt.Errorf("%w: %d calls queued for %s", ErrOverloaded, len(p.queue), p.id)
	default:
		p.queue = append(p.queue, c)
	}
	p.mu.Unlock()
	if err != nil {
		c.finish(nil, err)
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *peer) resetBackoff() {
	p.mu.Lock()
	p.nextDial = time.Time{}
	p.backoff = 0
	p.mu.Unlock()
}

// close fails every queued and pending call with err and stops the writer.
func (p *peer) close(err error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed, p.closeErr = true, err
	queue := p.queue
	p.queue = nil
	cc := p.conn
	p.mu.Unlock()
	close(p.done)
	for _, c := range queue {
		c.finish(nil, err)
	}
	if cc != nil {
		cc.fail(err)
	}
}

// expire fails the calls on the current connection whose deadline has passed.
func (p *peer) expire(now time.Time) {
	p.mu.Lock()
	cc := p.conn
	p.mu.Unlock()
	if cc == nil {
		return
	}
	var expired []*call
	cc.mu.Lock()
	for id, c := range cc.pending {
		if now.After(c.deadline) {
			delete(cc.pending, id)
			expired = append(expired, c)
		}
	}
	cc.mu.Unlock()
	for _, c := range expired {
		c.finish(nil, fmt.Errorf("%w: waiting for %s", ErrTimeout, p.id))
	}
}

// run is the writer goroutine: each time calls are queued it takes them all, dials when
// there is no connection, and writes them as frames in one write.
func (p *peer) run() {
	var (
		spare []*call
		buf   []byte
	)
	for {
		select {
		case <-p.done:
			return
		case <-p.wake:
		}
		// Let the goroutines that are ready to run go first: callers in the middle of a
		// burst (an event loop's turn) queue the rest of it, and the burst goes out in
		// one write. It costs no syscall, and a write saved is several µs of CPU.
		runtime.Gosched()
		for {
			p.mu.Lock()
			calls := p.queue
			p.queue = spare[:0]
			p.mu.Unlock()
			if len(calls) == 0 {
				spare = calls
				break
			}
			buf = p.send(calls, buf[:0])
			if cap(buf) > keepBufBytes {
				buf = nil
			}
			clear(calls)
			spare = calls
		}
	}
}

// send writes calls on the peer's connection, dialling it first if need be. Every call is
// either registered as pending on the connection or finished.
func (p *peer) send(calls []*call, buf []byte) []byte {
	now := time.Now()
	live := calls[:0]
	for _, c := range calls {
		if now.After(c.deadline) {
			c.finish(nil, fmt.Errorf("%w: queued for %s", ErrTimeout, p.id))
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return buf
	}
	cc, err := p.connection()
	if err != nil {
		for _, c := range live {
			c.finish(nil, err)
		}
		return buf
	}
	// Encode, cutting frames at MaxBatch envelopes or MaxMsgBytes; ids are set first, as
	// they are part of each envelope's bytes.
	sent := live[:0]
	start, inFrame, frameBytes := -1, 0, 0
	for _, c := range live {
		cc.nextID++
		c.req.Id = cc.nextID
		size, hot := envelopeBytes(c.req)
		fs := framedSize(size)
		if fs > p.t.cfg.MaxMsgBytes {
			c.finish(nil, fmt.Errorf("%w: a %T of %d bytes to %s, limit %d", ErrFrameTooLarge, c.req.Body, fs, p.id, p.t.cfg.MaxMsgBytes))
			continue
		}
		if start < 0 || inFrame == p.t.cfg.MaxBatch || frameBytes+fs > p.t.cfg.MaxMsgBytes {
			if start >= 0 {
				buf = endFrame(buf, start)
				p.t.Stats.BatchesSent.Add(1)
			}
			buf, start = beginFrame(buf)
			inFrame, frameBytes = 0, 0
		}
		mark := len(buf)
		var merr error
		if buf, merr = appendEnvelope(buf, c.req, size, hot); merr != nil {
			// Not expected for messages built by this program (invalid UTF-8 in a string
			// field is the one way): fail the call and take its bytes back out.
			buf = buf[:mark]
			c.finish(nil, fmt.Errorf("transport: encode a %T for %s: %w", c.req.Body, p.id, merr))
			continue
		}
		sent = append(sent, c)
		inFrame++
		frameBytes += fs
	}
	if start >= 0 {
		buf = endFrame(buf, start)
		p.t.Stats.BatchesSent.Add(1)
	}
	if len(sent) == 0 {
		return buf
	}
	// Register before writing: an answer may arrive before Write returns.
	cc.mu.Lock()
	if cc.broken {
		cc.mu.Unlock()
		for _, c := range sent {
			c.finish(nil, fmt.Errorf("%w: %s: connection closed before sending", ErrUnreachable, p.id))
		}
		return buf
	}
	for _, c := range sent {
		cc.pending[c.req.Id] = c
	}
	cc.mu.Unlock()
	_ = cc.nc.SetWriteDeadline(time.Now().Add(p.t.cfg.WriteTimeout))
	if _, err := cc.nc.Write(buf); err != nil {
		p.t.log.Debug("internode write failed", "peer", p.id, "err", err)
		cc.fail(fmt.Errorf("%w: %s: write: %w", ErrLost, p.id, err))
		return buf
	}
	p.t.Stats.Writes.Add(1)
	p.t.Stats.MessagesSent.Add(uint64(len(sent)))
	p.t.Stats.BytesSent.Add(uint64(len(buf)))
	return buf
}

// connection returns the live connection, dialling one if there is none; a failed dial
// sets the backoff and fails with ErrUnreachable.
func (p *peer) connection() (*clientConn, error) {
	p.mu.Lock()
	cc := p.conn
	if cc != nil && !cc.isBroken() {
		p.mu.Unlock()
		return cc, nil
	}
	p.conn = nil
	if wait := time.Until(p.nextDial); wait > 0 {
		err := fmt.Errorf("%w: %s at %s: reconnecting after a failed attempt (%v)", ErrUnreachable, p.id, p.addr, p.lastErr)
		p.mu.Unlock()
		p.t.Stats.FailedToReach.Add(1)
		return nil, err
	}
	p.mu.Unlock()

	cc, err := p.dial()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		if cc != nil {
			_ = cc.nc.Close()
		}
		return nil, p.closeErr
	}
	if err != nil {
		p.t.Stats.FailedToReach.Add(1)
		p.backoff = min(max(backoffBase, p.backoff*8/5), backoffMax)
		// ±20% jitter, so that the nodes that lost a peer do not all dial it in step.
		jitter := time.Duration(float64(p.backoff) * (0.8 + 0.4*rand.Float64()))
		p.nextDial = time.Now().Add(jitter)
		p.lastErr = err
		return nil, fmt.Errorf("%w: %s at %s: %w", ErrUnreachable, p.id, p.addr, err)
	}
	p.backoff, p.nextDial, p.lastErr = 0, time.Time{}, nil
	p.conn = cc
	p.t.wg.Add(1)
	go func() {
		defer p.t.wg.Done()
		cc.read()
	}()
	return cc, nil
}

// dial connects to the peer: TCP, TLS when configured (the peer's certificate must name
// p.id), then the hello exchange, all within DialTimeout.
func (p *peer) dial() (*clientConn, error) {
	ctx, cancel := context.WithTimeout(p.t.ctx, p.t.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}}
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	if p.t.cfg.ClientTLS != nil {
		if nc, err = p.t.clientHandshake(ctx, nc, p.id, p.addr); err != nil {
			return nil, err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := nc.Write(appendHello(nil, p.t.cfg.NodeID)); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	br := bufio.NewReaderSize(nc, readBufBytes)
	ans, err := readFrame(br, nil, maxHelloBytes)
	if err == nil {
		err = parseHelloAnswer(ans)
	}
	if err != nil {
		_ = nc.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("the peer closed the connection during the handshake: %w", err)
		}
		return nil, fmt.Errorf("hello: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	return &clientConn{p: p, nc: nc, br: br, pending: map[uint64]*call{}}, nil
}

func (cc *clientConn) isBroken() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.broken
}

// fail closes the connection and fails every call awaiting an answer on it with err.
func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	if cc.broken {
		cc.mu.Unlock()
		return
	}
	cc.broken = true
	pending := cc.pending
	cc.pending = nil
	cc.mu.Unlock()
	_ = cc.nc.Close()
	for _, c := range pending {
		c.finish(nil, err)
	}
}

// read is the connection's reader goroutine: it matches answers to pending calls until the
// connection breaks, then fails the rest with ErrLost.
func (cc *clientConn) read() {
	p := cc.p
	var buf []byte
	for {
		payload, err := readFrame(cc.br, buf, p.t.cfg.MaxMsgBytes)
		if err == nil {
			if p.t.dropped(p.id) {
				n := 0
				err = decodeBatch(payload, func(*pb.Envelope) { n++ })
				p.t.Stats.Dropped.Add(uint64(n)) // their answers are lost too; the calls time out
			} else {
				err = decodeBatch(payload, cc.deliver)
			}
		}
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformedFrame) {
				p.t.Stats.BadFrames.Add(1)
				p.t.log.Warn("internode connection closed: bad frame", "peer", p.id, "err", err)
			}
			cc.fail(fmt.Errorf("%w: %s: %w", ErrLost, p.id, err))
			return
		}
		buf = payload
		if cap(buf) > keepBufBytes {
			buf = nil
		}
	}
}

func (cc *clientConn) deliver(m *pb.Envelope) {
	cc.mu.Lock()
	c := cc.pending[m.Id]
	delete(cc.pending, m.Id)
	cc.mu.Unlock()
	if c != nil {
		c.finish(m, nil)
	}
}
