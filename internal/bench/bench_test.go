package bench

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsRequestsAndErrors(t *testing.T) {
	var puts, gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/kv/bench/b") {
			http.Error(w, "bad path", 400)
			return
		}
		switch r.Method {
		case http.MethodPut:
			if puts.Add(1)%10 == 0 {
				http.Error(w, "unavailable", 503)
				return
			}
			w.WriteHeader(204)
		case http.MethodGet:
			gets.Add(1)
			_, _ = w.Write([]byte("x"))
		}
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Addrs = []string{strings.TrimPrefix(srv.URL, "http://")}
	cfg.Requests, cfg.Clients, cfg.W = 200, 8, "2"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Op != "put" || res[1].Op != "get" {
		t.Fatalf("results %+v", res)
	}
	if puts.Load() != 200 || gets.Load() != 200 {
		t.Fatalf("server saw %d puts %d gets", puts.Load(), gets.Load())
	}
	if res[0].Errors != 20 || res[1].Errors != 0 {
		t.Fatalf("errors: put %d get %d", res[0].Errors, res[1].Errors)
	}
	if res[0].P50 <= 0 || res[0].P99 < res[0].P50 || res[0].OpsPerS <= 0 {
		t.Fatalf("figures %+v", res[0])
	}
}

func TestValidate(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Validate() == nil {
		t.Fatal("no addresses accepted")
	}
	cfg.Addrs = []string{"x:1"}
	cfg.Ops = []string{"scan"}
	if cfg.Validate() == nil {
		t.Fatal("unknown op accepted")
	}
}

// TestProgressLines: with ProgressLines the progress is plain lines, never "\r" frames (a
// log file or a pipe); without it, one redrawn terminal line.
func TestProgressLines(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(204)
			return
		}
		_, _ = w.Write([]byte("x"))
	}))
	defer srv.Close()
	for _, lines := range []bool{true, false} {
		var out syncWriter
		cfg := DefaultConfig()
		cfg.Addrs = []string{strings.TrimPrefix(srv.URL, "http://")}
		cfg.Requests, cfg.Clients = 50, 4
		cfg.Progress, cfg.ProgressLines = &out, lines
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if lines && (strings.Contains(s, "\r") || !strings.Contains(s, "put: 50/50\n") || !strings.Contains(s, "get: 50/50\n")) {
			t.Errorf("lines: %q", s)
		}
		if !lines && (!strings.Contains(s, "\rput  [") || !strings.Contains(s, "50/50\n")) {
			t.Errorf("terminal: %q", s)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestRunConnections: each client keeps one connection for all its requests; a server
// that closes a connection after a response, or a request whose reply never comes, costs
// that request an error (or nothing, for the close) and the client dials again.
func TestRunConnections(t *testing.T) {
	var conns, reqs atomic.Int64
	hang := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := reqs.Add(1)
		switch {
		case n%7 == 0:
			w.Header().Set("Connection", "close") // the client must dial again
		case n == 50:
			<-hang // never answered in time: the client's timeout
		}
		w.WriteHeader(204)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer close(hang)
	cfg := DefaultConfig()
	cfg.Addrs = []string{strings.TrimPrefix(srv.URL, "http://")}
	cfg.Requests, cfg.Clients, cfg.Ops = 300, 4, []string{"put"}
	cfg.HTTPTimeout = 500 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Errors != 1 {
		t.Fatalf("%d errors, want 1 (the request never answered)", res[0].Errors)
	}
	// 4 first connections, one more after each of the 42 closes and after the timeout,
	// but for a close on a client's last request (it dials no more; at most one a client:
	// which requests come last depends on the scheduling).
	if c := conns.Load(); c < 4+42+1-int64(cfg.Clients) || c > 4+42+1 {
		t.Fatalf("%d connections for 300 requests, 42 closed by the server, 1 timed out", c)
	}
}

// TestRunCancel: cancelling the run breaks off the requests in flight at once.
func TestRunCancel(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-hang
	}))
	defer srv.Close()
	defer close(hang)
	cfg := DefaultConfig()
	cfg.Addrs = []string{strings.TrimPrefix(srv.URL, "http://")}
	cfg.Requests, cfg.Clients, cfg.Ops = 10, 2, []string{"get"}
	cfg.HTTPTimeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, cfg)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not end within 10s of its cancellation")
	}
}
