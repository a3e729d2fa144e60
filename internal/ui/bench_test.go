package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/node"
)

// benchNode starts one node without HTTP: the benchmarks call the dashboard directly.
func benchNode(b *testing.B) *node.Node {
	b.Helper()
	cfg := node.DefaultConfig()
	cfg.ID = "n1"
	cfg.DataDir = b.TempDir()
	cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

// BenchmarkSample is the sampler's work every Interval, off the request path: gather the
// registry, derive a window, read hints and trees, encode the view.
func BenchmarkSample(b *testing.B) {
	n := benchNode(b)
	cfg := DefaultConfig()
	var out published
	s := newSampler(n, cfg, nil, &out)
	now := time.Now()
	for range cfg.History {
		now = now.Add(cfg.Interval)
		s.tick(now) // a full history, as after ten minutes
	}
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(cfg.Interval)
		s.tick(now)
	}
}

// BenchmarkNodeView is GET /ui/api/node with a full history: it writes published bytes.
func BenchmarkNodeView(b *testing.B) {
	n := benchNode(b)
	cfg := DefaultConfig()
	cfg.Interval = time.Hour // the benchmark's own ticks only
	u, err := New(n, cfg)
	if err != nil {
		b.Fatal(err)
	}
	s := newSampler(n, cfg, u.log, &u.view)
	now := time.Now()
	for range cfg.History {
		now = now.Add(cfg.Interval)
		s.tick(now)
	}
	b.SetBytes(int64(len(u.view.load().full)))
	b.ReportAllocs()
	req := httptest.NewRequest(http.MethodGet, "/ui/api/node", nil)
	for b.Loop() {
		rec := httptest.NewRecorder()
		u.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
