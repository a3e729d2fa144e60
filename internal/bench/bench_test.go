package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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
