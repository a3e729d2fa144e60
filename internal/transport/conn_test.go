package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// countingHandler counts the requests that reach it and answers like echo.
type countingHandler struct{ n atomic.Int64 }

func (h *countingHandler) Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope {
	h.n.Add(1)
	return echo{}.Handle(ctx, from, req)
}

func listenOne(t *testing.T, id string, h Handler, edit func(*Config)) *Transport {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Handler = id, "127.0.0.1:0", h
	cfg.Resolve = func(string) (string, bool) { return "", false }
	if edit != nil {
		edit(&cfg)
	}
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// rawConn dials tr and, with hello, completes the handshake as node "raw".
func rawConn(t *testing.T, tr *Transport, hello bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	if hello {
		if _, err := nc.Write(appendHello(nil, "raw")); err != nil {
			t.Fatal(err)
		}
		ans, err := readFrame(br, nil, maxHelloBytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := parseHelloAnswer(ans); err != nil {
			t.Fatal(err)
		}
	}
	return nc, br
}

// closedByPeer reports whether the other side closed nc (a read sees EOF or a reset).
func closedByPeer(nc net.Conn, br *bufio.Reader) bool {
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := br.ReadByte(); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// TestBadFramesCloseTheConnection: a frame over the limit, a malformed one, or requests
// without a hello close the connection; nothing reaches the handler, and the refusal is
// counted. The transport keeps serving others.
func TestBadFramesCloseTheConnection(t *testing.T) {
	h := &countingHandler{}
	tr := listenOne(t, "b", h, func(c *Config) { c.MaxMsgBytes = 1 << 10 })
	good := encodeFrame(t, nil, []*pb.Envelope{{Id: 1, Body: &pb.Envelope_Get{Get: &pb.GetRequest{Key: "k"}}}})

	// A well-formed request after the hello is answered.
	nc, br := rawConn(t, tr, true)
	if _, err := nc.Write(good); err != nil {
		t.Fatal(err)
	}
	ans, err := readFrame(br, nil, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got *pb.Envelope
	if err := decodeBatch(ans, func(e *pb.Envelope) { got = e }); err != nil || got.GetId() != 1 || string(got.GetGetResp().GetObject()) != "raw|k" {
		t.Fatalf("answer %v %v", got, err)
	}

	cases := map[string]struct {
		hello bool
		bytes []byte
	}{
		"oversized frame":       {true, []byte{0, 0, 0x04, 0x01}}, // 1025 bytes, limit 1024
		"malformed frame":       {true, []byte{0, 0, 0, 3, 0x0a, 0x05, 0x00}},
		"request without hello": {false, good},
		"tls on a plain port":   {false, []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}},
	}
	for name, c := range cases {
		before, served := tr.Stats.BadFrames.Load(), h.n.Load()
		nc, br := rawConn(t, tr, c.hello)
		if _, err := nc.Write(c.bytes); err != nil {
			t.Fatal(err)
		}
		if !c.hello {
			// A stranger to the protocol is told what the port is before it is closed.
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			ans, err := readFrame(br, nil, maxHelloBytes)
			if err != nil || !errors.Is(parseHelloAnswer(ans), errRefused) || !strings.Contains(string(ans), "internode port") {
				t.Errorf("%s: answer %q %v", name, ans, err)
			}
		}
		if !closedByPeer(nc, br) {
			t.Errorf("%s: the connection stayed open", name)
		}
		if tr.Stats.BadFrames.Load() == before {
			t.Errorf("%s: not counted", name)
		}
		if h.n.Load() != served {
			t.Errorf("%s: a request reached the handler", name)
		}
	}
	// Still serving.
	a := listenOne(t, "a", echo{}, func(c *Config) { c.Resolve = func(string) (string, bool) { return tr.Addr(), true } })
	if _, err := callSync(a, context.Background(), "b", "k"); err != nil {
		t.Fatalf("after the bad frames: %v", err)
	}
}

// TestTooLargeMessages: a request over the frame limit fails alone with ErrFrameTooLarge
// (the connection serves the next one); a response over it reaches the asker as an error
// answer with code too_large.
func TestTooLargeMessages(t *testing.T) {
	big := strings.Repeat("x", 4<<10)
	b := listenOne(t, "b", handlerFunc(func(_ context.Context, _ string, req *pb.Envelope) *pb.Envelope {
		if req.GetGet().GetKey() == "big-answer" {
			return &pb.Envelope{Body: &pb.Envelope_GetResp{GetResp: &pb.GetResponse{Object: []byte(big)}}}
		}
		return echo{}.Handle(context.Background(), "a", req)
	}), func(c *Config) { c.MaxMsgBytes = 2 << 10 })
	a := listenOne(t, "a", echo{}, func(c *Config) {
		c.MaxMsgBytes = 2 << 10
		c.Resolve = func(string) (string, bool) { return b.Addr(), true }
	})
	ctx := context.Background()
	if _, err := callSync(a, ctx, "b", big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized request: %v, want ErrFrameTooLarge", err)
	}
	if e, err := callSync(a, ctx, "b", "k"); err != nil || string(e.GetGetResp().GetObject()) != "a|k" {
		t.Fatalf("the next request: %v %v", e, err)
	}
	e, err := callSync(a, ctx, "b", "big-answer")
	if err != nil || e.GetError().GetCode() != "too_large" {
		t.Fatalf("oversized answer: %v %v, want an error answer with code too_large", e, err)
	}
}

type handlerFunc func(context.Context, string, *pb.Envelope) *pb.Envelope

func (f handlerFunc) Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope {
	return f(ctx, from, req)
}

// TestSilentPeerAndFullQueue: a peer that accepts TCP but never answers the hello costs a
// caller at most the dial timeout (ErrUnreachable, not sent); while the writer waits on
// it, calls beyond the queue bound fail at once with ErrOverloaded; after the failed
// dial, calls fail fast until the backoff passes or ResetBackoff.
func TestSilentPeerAndFullQueue(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held sync.WaitGroup
	held.Add(1)
	go func() {
		defer held.Done()
		var conns []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	a := listenOne(t, "a", echo{}, func(c *Config) {
		c.QueueLen = 2
		c.DialTimeout = 300 * time.Millisecond
		c.Resolve = func(string) (string, bool) { return silent.Addr().String(), true }
	})
	const n = 5
	errs := make(chan error, n)
	for range n {
		a.Call(context.Background(), "b", &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Key: "k"}}}, func(_ *pb.Envelope, err error) { errs <- err })
	}
	var overloaded, unreachable int
	for range n {
		switch err := <-errs; {
		case errors.Is(err, ErrOverloaded):
			overloaded++
		case errors.Is(err, ErrUnreachable):
			unreachable++
		default:
			t.Errorf("unexpected result %v", err)
		}
	}
	if overloaded == 0 || unreachable == 0 {
		t.Errorf("%d overloaded, %d unreachable: want some of each", overloaded, unreachable)
	}
	// Backing off: the next call fails without dialling.
	if _, err := callSync(a, context.Background(), "b", "k"); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "reconnecting") {
		t.Errorf("during the backoff: %v", err)
	}
	_ = silent.Close()
	held.Wait()
}

// TestBackoffAndReset: after a failed dial, calls fail fast; ResetBackoff lets the next
// call dial at once, which reaches a peer that came up meanwhile.
func TestBackoffAndReset(t *testing.T) {
	// A port with nothing listening: take one, free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	a := listenOne(t, "a", echo{}, func(c *Config) { c.Resolve = func(string) (string, bool) { return addr, true } })
	if _, err := callSync(a, context.Background(), "b", "k"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("nothing listening: %v", err)
	}
	cfg := DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Handler = "b", addr, echo{}
	cfg.Resolve = func(string) (string, bool) { return "", false }
	b, err := Listen(cfg)
	if err != nil {
		t.Skipf("could not bind %s again: %v", addr, err)
	}
	defer b.Close()
	a.ResetBackoff("b")
	if e, err := callSync(a, context.Background(), "b", "k"); err != nil || string(e.GetGetResp().GetObject()) != "a|k" {
		t.Fatalf("after ResetBackoff: %v %v", e, err)
	}
}

// TestLostConnectionFailsPendingWithErrLost: a call in flight when the connection breaks
// fails with ErrLost (it may have been served), not ErrUnreachable.
func TestLostConnectionFailsPendingWithErrLost(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	p := newPair(t, echo{block: block})
	done := make(chan error, 1)
	p.a.Call(context.Background(), "b", &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Key: "k"}}}, func(_ *pb.Envelope, err error) { done <- err })
	waitUntil(t, "the request to be sent", func() bool { return p.a.Stats.MessagesSent.Load() > 0 })
	_ = p.b.Close()
	if err := <-done; !errors.Is(err, ErrLost) {
		t.Fatalf("in flight when the peer closed: %v, want ErrLost", err)
	}
}

// TestDelayFault: with a delay injected, no answer comes sooner than the delay, and
// calls still succeed.
func TestDelayFault(t *testing.T) {
	p := newPair(t, echo{})
	if _, err := callSync(p.a, context.Background(), "b", "k"); err != nil {
		t.Fatal(err)
	}
	p.a.SetFaults(Faults{Delay: 150 * time.Millisecond})
	start := time.Now()
	if _, err := callSync(p.a, context.Background(), "b", "k"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("answer after %v, before the injected delay", took)
	}
	if got := p.a.CurrentFaults().Delay; got != 150*time.Millisecond {
		t.Fatalf("CurrentFaults: %v", got)
	}
}

// TestRefusedHelloIsLoggedAndCounted: with TLS, a member claiming another id is refused
// with a reason the dialler sees.
func TestRefusedHelloReason(t *testing.T) {
	certs := bundles(t, "a", "b")
	n := &tlsNet{addrs: map[string]string{}}
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	a := n.listen(t, "a", certs["a"], log)
	imp := n.listen(t, "c", certs["b"], slog.New(slog.DiscardHandler))
	_, err := callSync(imp, context.Background(), "a", "k")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "does not name") {
		t.Fatalf("impostor's call: %v", err)
	}
	if a.Stats.TLSRejected.Load() == 0 {
		t.Error("refusal not counted")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "internode stream refused") {
		t.Errorf("refusal not logged:\n%s", logs.String())
	}
}
