package api

// The Redis-protocol (RESP2) front end (docs/redis.md).
//
// Model: a thin translation between Redis commands and the node's CRDT operations, served
// with tidwall/redcon. Every Redis key lives in one bucket, RedisBucket; a key keeps one
// data type: strings are LWW registers, INCR* makes a counter, SADD makes a set (the type
// is the one of the key's folded state). Commands answer in Redis's forms (-ERR,
// -WRONGTYPE, and -QUORUM when the node could not reach R or W).
//
// Invariants:
//   - no input makes the server allocate without bound: a framing guard in front of
//     redcon's parser (which has no limits) refuses, with an error reply and a closed
//     connection, a command over maxCommandBytes, more than maxArgs arguments, a bulk
//     length or multibulk count that is not a small decimal, or an inline command over
//     maxInlineBytes, before redcon buffers it;
//   - every command runs under the connection's context: it ends when the client
//     disconnects (or half-closes) or the server closes, and the node bounds each
//     operation with its request timeout;
//   - Close closes the listener and every connection and returns once every connection's
//     goroutines have ended;
//   - the commands of a connection are answered in the order they came, even when a
//     pipeline runs them concurrently (resp_pipe.go).

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/redcon"

	"github.com/quorumkv/quorumkv/internal/auth"
	"github.com/quorumkv/quorumkv/internal/node"
)

// RedisBucket is the bucket that holds every Redis key. Its properties (n, r, w; PUT
// /v1/buckets/redis) apply to Redis commands; QKV.QUORUM overrides R and W per connection.
const RedisBucket = "redis"

// Limits of the framing guard, beside the node's value limit.
const (
	// maxArgs: 65536 arguments per command. redcon re-parses a partial command from its
	// start on every read, so the count bounds the work per read of a big command.
	maxArgs = 1 << 16
	// maxInlineBytes: 64 KiB per inline (telnet-style) command, as Redis.
	maxInlineBytes = 64 << 10
	// commandSlack: a command may be this much larger than the node's value limit (for
	// its key, name and framing); a value a little over the limit is then answered
	// "value too large" on a connection that stays usable, and only a larger one closes it.
	commandSlack = 1 << 20
	// readChunk: each connection reads the socket in chunks of 8 KiB, two at most in
	// flight, so a connection costs 16 KiB of read buffers beside redcon's own.
	readChunk = 8 << 10
	// defaultMaxClients: 10000 connections, Redis's maxclients default.
	defaultMaxClients = 10000
)

// RESP is the Redis-protocol front end of a node.
type RESP struct {
	n     *node.Node
	log   *slog.Logger
	start time.Time

	// MaxValueBytes is the largest SET value accepted (the node's MaxValueBytes); set it
	// before Listen. Commands are framed up to MaxValueBytes + 1 MiB.
	MaxValueBytes int
	// MaxClients is the most connections served at once; set it before Listen.
	MaxClients int
	// Auth checks AUTH and HELLO AUTH; RequireAuth makes every command but AUTH, HELLO
	// and QUIT wait for a login (resp_auth.go). Set both before Listen.
	Auth        *auth.Authenticator
	RequireAuth bool

	authFailures *prometheus.CounterVec

	base       context.Context // parent of every connection's context
	cancelBase context.CancelFunc
	nextID     atomic.Int64
	clients    atomic.Int64

	mu        sync.Mutex
	ln        net.Listener
	serveDone chan struct{}
	closed    bool
	wg        sync.WaitGroup // connection handlers, socket readers and job workers
	workers   jobWorkers     // run pipelined commands (resp_workers.go)
	running   chan struct{}  // a place per pipelined command running (maxRunning)
}

// NewRESP returns the Redis front end of n; Listen starts it.
func NewRESP(n *node.Node, log *slog.Logger) *RESP {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &RESP{
		n: n, log: log, start: time.Now(),
		MaxValueBytes: node.DefaultConfig().MaxValueBytes,
		MaxClients:    defaultMaxClients,
		base:          ctx, cancelBase: cancel,
		authFailures: authMetrics(n.Registry()),
		workers:      jobWorkers{maxIdle: maxIdleWorkers},
		running:      make(chan struct{}, maxRunning),
	}
}

// Listen binds addr (host:port; port 0 picks one) and serves it in a goroutine.
func (r *RESP) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("redis protocol: listen on %s: %w", addr, err)
	}
	return r.Serve(ln)
}

// Serve serves an already bound listener in a goroutine (the server binds before the
// node starts, so that the node announces the bound address). RESP owns ln from now on.
func (r *RESP) Serve(ln net.Listener) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.ln != nil {
		_ = ln.Close()
		return errors.New("redis protocol: already serving or closed")
	}
	r.ln = ln
	r.serveDone = make(chan struct{})
	srv := redcon.NewServerNetwork("tcp", ln.Addr().String(), r.serve, r.accept, r.closedConn)
	srv.AcceptError = func(err error) { r.log.Warn("redis protocol: accept", "err", err) }
	go func() {
		defer close(r.serveDone)
		_ = srv.Serve(&guardListener{Listener: ln, r: r})
	}()
	return nil
}

// Addr is the bound address ("" before Listen).
func (r *RESP) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil {
		return ""
	}
	return r.ln.Addr().String()
}

// Close stops accepting, closes every connection (cancelling their commands) and waits
// for their goroutines to end.
func (r *RESP) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	ln, done := r.ln, r.serveDone
	r.mu.Unlock()
	r.cancelBase()
	var err error
	if ln != nil {
		err = ln.Close()
		<-done // redcon closes the connections it serves as its loop ends
	}
	r.workers.close()
	r.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// client is a connection's state (redcon's conn context).
type client struct {
	id   int64
	g    *guardConn
	addr string
	name string
	r, w string // QKV.QUORUM; "" takes the bucket's
	user string // the logged-in user ("" before AUTH)
	p    *pipe
}

func (r *RESP) accept(conn redcon.Conn) bool {
	g, ok := conn.NetConn().(*guardConn)
	if !ok { // never: the listener is wrapped
		return false
	}
	if r.clients.Add(1) > int64(r.MaxClients) {
		r.clients.Add(-1)
		g.reject("ERR max number of clients reached")
		return false
	}
	r.wg.Add(1)
	c := &client{id: r.nextID.Add(1), g: g, addr: conn.RemoteAddr()}
	c.p = newPipe(r, c, g)
	g.p = c.p
	conn.SetContext(c)
	return true
}

func (r *RESP) closedConn(conn redcon.Conn, err error) {
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, errFraming) {
		r.log.Debug("redis protocol: connection ended", "remote", conn.RemoteAddr(), "err", err)
	}
	if c, ok := conn.Context().(*client); ok {
		c.g.cancel()
		r.clients.Add(-1)
		r.wg.Done()
	}
}

// serve runs a command and the commands buffered behind it (resp_pipe.go).
func (r *RESP) serve(conn redcon.Conn, cmd redcon.Command) {
	conn.Context().(*client).p.serve(conn, cmd)
}

// guardListener wraps each accepted connection in a guardConn.
type guardListener struct {
	net.Listener
	r *RESP
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	maxCmd := l.r.MaxValueBytes + commandSlack
	return newGuardConn(l.r, c, newFramer(maxCmd)), nil
}

// errFraming ends a connection whose input broke the framing limits.
var errFraming = errors.New("redis protocol: input refused by the framing guard")

// guardConn is a client connection as redcon sees it. A goroutine reads the socket
// ahead (at most two chunks), so that a client that disconnects is noticed while its
// command runs and the command's context is cancelled; Read passes the bytes on through
// the framer, which stops a command over the limits before redcon buffers it.
type guardConn struct {
	net.Conn
	ctx    context.Context
	cancel context.CancelFunc

	chunks chan []byte // filled chunks, from readLoop
	free   chan []byte // empty chunks, back to readLoop
	done   chan struct{}
	rerr   error // readLoop's final error; read after chunks is closed
	once   sync.Once

	// p orders the replies: bytes redcon writes itself (a protocol error) wait for the
	// pipeline's replies, as does a refusal of the framer. Set by accept.
	p *pipe

	// owned by the reading side (redcon's goroutine)
	f    *framer
	buf  []byte // the chunk being delivered
	cur  []byte // its bytes not delivered yet
	ferr error  // a framing error, reported once cur is delivered
}

func newGuardConn(r *RESP, c net.Conn, f *framer) *guardConn {
	ctx, cancel := context.WithCancel(r.base)
	g := &guardConn{Conn: c, ctx: ctx, cancel: cancel, f: f,
		chunks: make(chan []byte), free: make(chan []byte, 2), done: make(chan struct{})}
	g.free <- nil
	g.free <- nil
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		g.readLoop()
	}()
	return g
}

func (g *guardConn) readLoop() {
	defer close(g.chunks)
	for {
		var b []byte
		select {
		case b = <-g.free:
		case <-g.done:
			g.rerr = net.ErrClosed
			return
		}
		if b == nil {
			b = make([]byte, readChunk)
		}
		n, err := g.Conn.Read(b[:cap(b)])
		if n > 0 {
			select {
			case g.chunks <- b[:n]:
			case <-g.done:
				g.rerr = net.ErrClosed
				return
			}
		}
		if err != nil {
			// A plaintext client on a TLS port: tell it so in its own protocol before
			// the connection closes, rather than leaving it with a bare reset.
			var rhe tls.RecordHeaderError
			if errors.As(err, &rhe) && rhe.Conn != nil {
				_ = rhe.Conn.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = rhe.Conn.Write(redcon.AppendError(nil, "ERR this port speaks TLS: connect with TLS (redis-cli --tls --cacert CA)"))
			}
			// EOF or a broken connection: the client is gone, and so are its commands.
			g.rerr = err
			g.cancel()
			return
		}
	}
}

// Read implements net.Conn for redcon.
func (g *guardConn) Read(p []byte) (int, error) {
	for len(g.cur) == 0 {
		if g.ferr != nil {
			g.drain() // the commands before the bad input are answered first
			g.reject("ERR Protocol error: " + g.ferr.Error())
			return 0, fmt.Errorf("%w: %w", errFraming, g.ferr)
		}
		if g.buf != nil {
			g.free <- g.buf // never blocks: only two chunks exist
			g.buf = nil
		}
		b, ok := <-g.chunks
		if !ok {
			// The client is gone (its commands are cancelled) or the connection closed:
			// the pipeline's goroutines end before redcon ends the connection.
			g.drain()
			return 0, g.rerr
		}
		n, err := g.f.scan(b)
		g.buf, g.cur, g.ferr = b, b[:n], err
	}
	n := copy(p, g.cur)
	g.cur = g.cur[n:]
	return n, nil
}

// drain waits for the pipeline's replies to be written (or to fail).
func (g *guardConn) drain() {
	if g.p != nil {
		g.p.drain()
	}
}

// Write implements net.Conn for redcon, which writes only what the pipeline does not: an
// empty flush after each batch of commands, or a protocol error, after the replies.
func (g *guardConn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	g.drain()
	return g.Conn.Write(b)
}

// reject answers an error straight on the socket (redcon has flushed its replies: it
// reads only then) and ends the connection's commands.
func (g *guardConn) reject(msg string) {
	g.cancel()
	_ = g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = g.Conn.Write(redcon.AppendError(nil, msg))
}

// Close implements net.Conn.
func (g *guardConn) Close() error {
	err := net.ErrClosed
	g.once.Do(func() {
		g.cancel()
		close(g.done)
		err = g.Conn.Close()
	})
	return err
}

// framer follows the RESP2 framing of a client's byte stream (multibulk commands and
// inline commands, as redcon parses them) and reports the first byte that breaks a limit.
// It keeps no data, only the position in the current command.
type framer struct {
	maxCmd int // bytes per command

	state int
	hdr   [12]byte // a header line ("*3", "$10") being read, without its '*' or '$'
	nhdr  int
	args  int // bulk strings still expected in this command
	body  int // bytes of the current bulk still expected, CRLF included
	size  int // bytes of the current command so far
}

const (
	fsStart  = iota // at the start of a command
	fsInline        // in an inline command, until '\n'
	fsCount         // in "*<count>\r\n"
	fsDollar        // expecting the '$' of the next bulk
	fsLen           // in "$<len>\r\n"
	fsBody          // in a bulk's bytes and CRLF
)

func newFramer(maxCmd int) *framer { return &framer{maxCmd: maxCmd} }

// scan consumes b and returns how many of its bytes are acceptable; when that is less
// than len(b), err says why the next byte is not (the stream is then broken for good).
func (f *framer) scan(b []byte) (int, error) {
	i := 0
	for i < len(b) {
		if f.state == fsBody {
			k := min(f.body, len(b)-i)
			i += k
			f.body -= k
			f.size += k
			if f.body == 0 {
				f.args--
				f.state = fsDollar
				if f.args == 0 {
					f.state, f.size = fsStart, 0
				}
			}
			continue
		}
		c := b[i]
		f.size++
		if f.size > f.maxCmd {
			return i, fmt.Errorf("command over the limit of %d bytes", f.maxCmd)
		}
		switch f.state {
		case fsStart:
			f.nhdr = 0
			switch c {
			case '*':
				f.state = fsCount
			case '\n':
				f.size = 0
			default:
				f.state = fsInline
			}
		case fsInline:
			if f.size > maxInlineBytes {
				return i, errors.New("too big inline request")
			}
			if c == '\n' {
				f.state, f.size = fsStart, 0
			}
		case fsDollar:
			if c != '$' {
				return i, fmt.Errorf("expected '$', got %q", c)
			}
			f.state, f.nhdr = fsLen, 0
		case fsCount, fsLen:
			if c != '\n' {
				if f.nhdr == len(f.hdr) {
					if f.state == fsCount {
						return i, errors.New("invalid multibulk length")
					}
					return i, errors.New("invalid bulk length")
				}
				f.hdr[f.nhdr] = c
				f.nhdr++
				break
			}
			v, ok := f.header()
			if f.state == fsCount {
				if !ok || v < 1 || v > maxArgs {
					return i, fmt.Errorf("invalid multibulk length (1..%d arguments)", maxArgs)
				}
				f.args, f.state = v, fsDollar
				break
			}
			if !ok {
				return i, errors.New("invalid bulk length")
			}
			if v > f.maxCmd-f.size-2 {
				return i, fmt.Errorf("invalid bulk length: the command would be over the limit of %d bytes", f.maxCmd)
			}
			f.body, f.state = v+2, fsBody
		}
		i++
	}
	return i, nil
}

// header parses a header line "<decimal>\r" read so far; false when it is not one.
func (f *framer) header() (int, bool) {
	h := f.hdr[:f.nhdr]
	if len(h) < 2 || h[len(h)-1] != '\r' || len(h) > 11 {
		return 0, false
	}
	v, err := strconv.Atoi(string(h[:len(h)-1]))
	return v, err == nil && v >= 0
}

// Interface checks.
var (
	_ net.Conn     = (*guardConn)(nil)
	_ net.Listener = (*guardListener)(nil)
	_ io.Reader    = (*guardConn)(nil)
)
