package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// serverConn is one accepted connection: requests from one peer come in on it and their
// responses go back out, queued for its writer goroutine.
type serverConn struct {
	t      *Transport
	nc     net.Conn
	from   string
	ctx    context.Context // done once the connection is closed
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: a response was queued
	room   chan struct{} // cap 1: the writer took the queue

	mu     sync.Mutex
	out    []*pb.Envelope
	closed bool
}

// acceptLoop accepts connections until the listener is closed.
func (t *Transport) acceptLoop() {
	var delay time.Duration
	for {
		nc, err := t.lis.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little and go on, as
			// net/http's server does.
			delay = min(max(5*time.Millisecond, 2*delay), time.Second)
			t.log.Warn("internode accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.serveConn(nc)
		}()
	}
}

// serveConn runs the handshake of an accepted connection, then reads its requests until
// it breaks.
func (t *Transport) serveConn(raw net.Conn) {
	ctx, cancel := context.WithCancel(t.ctx)
	sc := &serverConn{t: t, nc: raw, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		cancel()
		_ = raw.Close()
		return
	}
	t.accepted[sc] = struct{}{}
	t.mu.Unlock()
	defer func() {
		sc.close()
		t.mu.Lock()
		delete(t.accepted, sc)
		t.mu.Unlock()
	}()

	from, br, ok := t.accept(sc)
	if !ok {
		return
	}
	sc.from = from
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		sc.write()
	}()
	async, _ := t.cfg.Handler.(AsyncHandler)
	var buf []byte
	for {
		payload, err := readFrame(br, buf, t.cfg.MaxMsgBytes)
		if err == nil {
			if t.dropped(from) {
				n := 0
				err = decodeBatch(payload, func(*pb.Envelope) { n++ })
				t.Stats.Dropped.Add(uint64(n))
			} else {
				err = decodeBatch(payload, func(m *pb.Envelope) { t.dispatch(sc, async, m) })
			}
		}
		if err != nil {
			switch {
			case errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformedFrame):
				t.Stats.BadFrames.Add(1)
				t.log.Warn("internode connection closed: bad frame", "peer", from, "remote", raw.RemoteAddr().String(), "err", err)
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || ctx.Err() != nil:
			default:
				t.log.Debug("internode connection broken", "peer", from, "err", err)
			}
			return
		}
		buf = payload
		if cap(buf) > keepBufBytes {
			buf = nil
		}
	}
}

// accept runs the TLS handshake (when configured) and reads the hello, within
// HandshakeTimeout; it answers the hello and reports the peer's node id, or refuses.
func (t *Transport) accept(sc *serverConn) (string, *bufio.Reader, bool) {
	remote := sc.nc.RemoteAddr().String()
	_ = sc.nc.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	if t.cfg.ServerTLS != nil {
		nc, err := t.serverHandshake(sc.ctx, sc.nc)
		if err != nil {
			return "", nil, false
		}
		sc.mu.Lock()
		closed := sc.closed
		sc.nc = nc
		sc.mu.Unlock()
		if closed {
			_ = nc.Close()
			return "", nil, false
		}
	}
	br := bufio.NewReaderSize(sc.nc, readBufBytes)
	payload, err := readFrame(br, nil, maxHelloBytes)
	var from string
	if err == nil {
		from, err = parseHello(payload)
	}
	if err != nil {
		if !errors.Is(err, io.EOF) {
			t.Stats.BadFrames.Add(1)
			t.log.Warn("internode connection refused: no valid hello", "remote", remote, "err", err)
			// Say what this port is, so that a client pointed at it by mistake (the CLI
			// probes a port that is not an HTTP API) can tell its user.
			_, _ = sc.nc.Write(appendHelloAnswer(nil, errors.New("this is a quorumkv node's internode port")))
		}
		return "", nil, false
	}
	refusal := t.checkSender(sc.nc, from, remote)
	if _, err := sc.nc.Write(appendHelloAnswer(nil, refusal)); err != nil || refusal != nil {
		return "", nil, false
	}
	_ = sc.nc.SetDeadline(time.Time{})
	return from, br, true
}

// dispatch hands one request to the handler.
func (t *Transport) dispatch(sc *serverConn, async AsyncHandler, m *pb.Envelope) {
	if async != nil {
		async.HandleAsync(sc.ctx, sc.from, m, Responder{t: t, sc: sc, id: m.Id})
		return
	}
	j := job{sc: sc, req: m}
	if t.cfg.Inline != nil && t.cfg.Inline(m) {
		t.serve(j)
		return
	}
	select {
	case t.jobs <- j:
	case <-sc.ctx.Done():
	}
}

// job is one request waiting for a worker.
type job struct {
	sc  *serverConn
	req *pb.Envelope
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
	if j.sc.ctx.Err() != nil {
		return // the asker is gone
	}
	t.respond(j.sc, j.req.Id, t.cfg.Handler.Handle(j.sc.ctx, j.sc.from, j.req), true)
}

// respond queues a request's response on its connection. With wait it waits for room in
// the queue (a worker); without, a full queue drops the response (the asker times out)
// rather than block an asynchronous handler's caller.
func (t *Transport) respond(sc *serverConn, id uint64, resp *pb.Envelope, wait bool) {
	if resp == nil {
		return
	}
	resp.Id = id
	if d := t.faults.Load().Delay; d > 0 {
		time.AfterFunc(d, func() { t.send(sc, resp, wait) })
		return
	}
	t.send(sc, resp, wait) // not through a closure: one allocation less per response
}

// send queues resp unless the fault layer drops traffic to its asker.
func (t *Transport) send(sc *serverConn, resp *pb.Envelope, wait bool) {
	if t.dropped(sc.from) {
		t.Stats.Dropped.Add(1)
		return
	}
	sc.enqueue(resp, wait)
}

func (sc *serverConn) enqueue(resp *pb.Envelope, wait bool) {
	for {
		sc.mu.Lock()
		if sc.closed {
			sc.mu.Unlock()
			return
		}
		if len(sc.out) < sc.t.cfg.QueueLen {
			sc.out = append(sc.out, resp)
			sc.mu.Unlock()
			select {
			case sc.wake <- struct{}{}:
			default:
			}
			return
		}
		sc.mu.Unlock()
		if !wait {
			sc.t.Stats.Dropped.Add(1)
			return
		}
		select {
		case <-sc.room:
		case <-sc.ctx.Done():
			return
		}
	}
}

// write is the connection's writer goroutine: each time responses are queued it takes
// them all and writes them as frames in one write.
func (sc *serverConn) write() {
	t := sc.t
	var (
		spare []*pb.Envelope
		buf   []byte
	)
	for {
		select {
		case <-sc.ctx.Done():
			return
		case <-sc.wake:
		}
		runtime.Gosched() // as in peer.run: let a burst of responses queue up
		for {
			sc.mu.Lock()
			msgs := sc.out
			sc.out = spare[:0]
			sc.mu.Unlock()
			select {
			case sc.room <- struct{}{}:
			default:
			}
			if len(msgs) == 0 {
				spare = msgs
				break
			}
			buf = t.encodeResponses(buf[:0], msgs, sc.from)
			_ = sc.nc.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
			if _, err := sc.nc.Write(buf); err != nil {
				t.log.Debug("internode write failed", "peer", sc.from, "err", err)
				sc.close()
				return
			}
			t.Stats.Writes.Add(1)
			t.Stats.MessagesSent.Add(uint64(len(msgs)))
			t.Stats.BytesSent.Add(uint64(len(buf)))
			if cap(buf) > keepBufBytes {
				buf = nil
			}
			clear(msgs)
			spare = msgs
		}
	}
}

// encodeResponses appends msgs as frames of at most MaxBatch envelopes and MaxMsgBytes. A
// response too large to send goes out as an error answer instead, so its asker learns why
// rather than timing out.
func (t *Transport) encodeResponses(buf []byte, msgs []*pb.Envelope, to string) []byte {
	start, inFrame, frameBytes := -1, 0, 0
	for _, m := range msgs {
		size, hot := envelopeBytes(m)
		fs := framedSize(size)
		if fs > t.cfg.MaxMsgBytes {
			t.log.Warn("internode response too large; an error sent instead", "peer", to, "type", fmt.Sprintf("%T", m.Body), "bytes", fs, "limit", t.cfg.MaxMsgBytes)
			m = tooLargeAnswer(m.Id, fs, t.cfg.MaxMsgBytes)
			size, hot = envelopeBytes(m)
			fs = framedSize(size)
		}
		if start < 0 || inFrame == t.cfg.MaxBatch || frameBytes+fs > t.cfg.MaxMsgBytes {
			if start >= 0 {
				buf = endFrame(buf, start)
				t.Stats.BatchesSent.Add(1)
			}
			buf, start = beginFrame(buf)
			inFrame, frameBytes = 0, 0
		}
		mark := len(buf)
		var err error
		if buf, err = appendEnvelope(buf, m, size, hot); err != nil {
			buf = buf[:mark]
			t.log.Error("internode response not encodable; dropped", "peer", to, "err", err)
			continue
		}
		inFrame++
		frameBytes += fs
	}
	if start >= 0 {
		buf = endFrame(buf, start)
		t.Stats.BatchesSent.Add(1)
	}
	return buf
}

// tooLargeAnswer is the error answer for a response over the frame limit. Its code is
// the core's "too_large" (core.CodeTooLarge; the transport does not import the core).
func tooLargeAnswer(id uint64, bytes, limit int) *pb.Envelope {
	return &pb.Envelope{Id: id, Body: &pb.Envelope_Error{Error: &pb.Error{
		Message: fmt.Sprintf("%v: response of %d bytes, limit %d", ErrFrameTooLarge, bytes, limit),
		Code:    "too_large",
	}}}
}

// close closes the connection; queued responses are dropped.
func (sc *serverConn) close() {
	sc.mu.Lock()
	if sc.closed {
		sc.mu.Unlock()
		return
	}
	sc.closed = true
	sc.out = nil
	nc := sc.nc
	sc.mu.Unlock()
	sc.cancel()
	_ = nc.Close()
}
