package transport

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type echo struct {
	block chan struct{} // when non-nil, Handle waits on it
}

func (e echo) Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope {
	if e.block != nil {
		select {
		case <-e.block:
		case <-ctx.Done():
		}
	}
	g := req.GetGet()
	return &pb.Envelope{Body: &pb.Envelope_GetResp{GetResp: &pb.GetResponse{Found: true, Object: []byte(from + "|" + g.GetKey())}}}
}

type pair struct {
	a, b *Transport
}

func newPair(t *testing.T, hb Handler) pair {
	t.Helper()
	var mu sync.Mutex
	addrs := map[string]string{}
	resolve := func(id string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		a, ok := addrs[id]
		return a, ok
	}
	mk := func(id string, h Handler) *Transport {
		cfg := DefaultConfig()
		cfg.NodeID, cfg.ListenAddr, cfg.Resolve, cfg.Handler = id, "127.0.0.1:0", resolve, h
		cfg.DefaultTimeout = 2 * time.Second
		tr, err := Listen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		addrs[id] = tr.Addr()
		mu.Unlock()
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	return pair{a: mk("a", echo{}), b: mk("b", hb)}
}

func callSync(tr *Transport, ctx context.Context, to, key string) (*pb.Envelope, error) {
	ch := make(chan struct {
		e   *pb.Envelope
		err error
	}, 1)
	tr.Call(ctx, to, &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Key: key}}}, func(e *pb.Envelope, err error) {
		ch <- struct {
			e   *pb.Envelope
			err error
		}{e, err}
	})
	r := <-ch
	return r.e, r.err
}

func TestCallRoundTripAndBatching(t *testing.T) {
	p := newPair(t, echo{})
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		key := string(rune('a'+i%26)) + time.Duration(i).String()
		p.a.Call(context.Background(), "b", &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Key: key}}}, func(e *pb.Envelope, err error) {
			defer wg.Done()
			if err != nil {
				errs <- err
				return
			}
			if got := string(e.GetGetResp().GetObject()); got != "a|"+key {
				errs <- errors.New("wrong answer " + got + " for " + key)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The sender counts a batch once its write returned, which may be after the answers
	// to it came back: wait for the counts to settle.
	deadline := time.Now().Add(10 * time.Second)
	for p.a.Stats.MessagesSent.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if sent, batches := p.a.Stats.MessagesSent.Load(), p.a.Stats.BatchesSent.Load(); sent != n || batches == 0 || batches > sent {
		t.Fatalf("sent %d messages in %d batches", sent, batches)
	}
}

func TestUnknownAndDroppedPeersFailFast(t *testing.T) {
	p := newPair(t, echo{})
	if _, err := callSync(p.a, context.Background(), "nobody", "k"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unknown peer: %v", err)
	}
	p.a.SetFaults(Faults{Drop: map[string]bool{"b": true}})
	if _, err := callSync(p.a, context.Background(), "b", "k"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("dropped peer: %v", err)
	}
	p.a.SetFaults(Faults{})
	if _, err := callSync(p.a, context.Background(), "b", "k"); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

func TestInboundDropTimesOut(t *testing.T) {
	p := newPair(t, echo{})
	// b ignores a: a's call reaches b but is discarded there, so a times out.
	p.b.SetFaults(Faults{Drop: map[string]bool{"a": true}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := callSync(p.a, ctx, "b", "k"); !errors.Is(err, ErrTimeout) {
		t.Fatalf("want timeout, got %v", err)
	}
}

func TestPeerDownThenUp(t *testing.T) {
	p := newPair(t, echo{})
	if _, err := callSync(p.a, context.Background(), "b", "k"); err != nil {
		t.Fatal(err)
	}
	addr := p.b.Addr()
	_ = p.b.Close()
	if _, err := callSync(p.a, context.Background(), "b", "k"); err == nil {
		t.Fatal("call to a closed peer succeeded")
	}
	// A new transport on the same address serves again; the caller reconnects.
	cfg := DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Handler = "b", addr, echo{}
	cfg.Resolve = func(string) (string, bool) { return "", false }
	b2, err := Listen(cfg)
	if err != nil {
		t.Skipf("could not rebind %s: %v", addr, err)
	}
	defer b2.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := callSync(p.a, context.Background(), "b", "k")
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCloseFailsPending(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	p := newPair(t, echo{block: block})
	done := make(chan error, 1)
	p.a.Call(context.Background(), "b", &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Key: "k"}}}, func(_ *pb.Envelope, err error) { done <- err })
	// Let the request reach b, where it blocks.
	deadline := time.Now().Add(5 * time.Second)
	for p.a.Stats.MessagesSent.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = p.a.Close()
	if err := <-done; err == nil {
		t.Fatal("pending call succeeded after Close")
	}
}

func BenchmarkCallParallel(b *testing.B) {
	t := &testing.T{}
	p := newPair(t, echo{})
	b.ReportAllocs()
	b.SetParallelism(16)
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := callSync(p.a, context.Background(), "b", "k"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	// CPU time of both ends (this process) per call: the figure the machine's load moves
	// least, unlike the wall time per call.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(p.a.Stats.MessagesSent.Load())/float64(max(1, p.a.Stats.BatchesSent.Load())), "msgs/batch")
	_ = p.a.Close()
	_ = p.b.Close()
}
