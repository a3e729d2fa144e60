package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/pki"
)

// tlsNet is a set of transports that resolve one another by ID.
type tlsNet struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (n *tlsNet) resolve(id string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, ok := n.addrs[id]
	return a, ok
}

// bundle makes a CA in a fresh directory with certificates for names.
func bundles(t *testing.T, names ...string) map[string]*pki.Bundle {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.Generate(dir, pki.Options{Nodes: names}); err != nil {
		t.Fatal(err)
	}
	out := map[string]*pki.Bundle{}
	for _, n := range names {
		cf, kf := pki.NodeFiles(n)
		b, err := pki.Load(filepath.Join(dir, cf), filepath.Join(dir, kf), filepath.Join(dir, pki.CAFile))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

func (n *tlsNet) listen(t *testing.T, id string, b *pki.Bundle, log *slog.Logger) *Transport {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Resolve, cfg.Handler = id, "127.0.0.1:0", n.resolve, echo{}
	cfg.DefaultTimeout, cfg.DialTimeout = 2*time.Second, time.Second
	cfg.Logger = log
	if b != nil {
		cfg.ServerTLS, cfg.ClientTLS = b.InternodeServer(), b.InternodeClient()
	}
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.addrs[id] = tr.Addr()
	n.mu.Unlock()
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// TestMutualTLS: nodes with certificates of the cluster CA talk; a node with a
// certificate of another CA, or none, can neither send to a member nor be sent to, and
// every refused handshake is counted and logged.
func TestMutualTLS(t *testing.T) {
	cluster := bundles(t, "a", "b")
	foreign := bundles(t, "x")
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	net := &tlsNet{addrs: map[string]string{}}
	a := net.listen(t, "a", cluster["a"], log)
	b := net.listen(t, "b", cluster["b"], log)
	x := net.listen(t, "x", foreign["x"], log)
	plain := net.listen(t, "plain", nil, log)
	ctx := context.Background()

	if e, err := callSync(a, ctx, "b", "k"); err != nil || string(e.GetGetResp().GetObject()) != "a|k" {
		t.Fatalf("a → b over mutual TLS: %v %v", e, err)
	}
	for _, c := range []struct {
		from *Transport
		to   string
	}{{x, "b"}, {plain, "b"}, {b, "x"}, {b, "plain"}} {
		before := b.Stats.TLSRejected.Load()
		if e, err := callSync(c.from, ctx, c.to, "k"); err == nil {
			t.Errorf("%s → %s succeeded: %v", c.from.cfg.NodeID, c.to, e)
		}
		if c.to == "b" || c.from == b {
			waitUntil(t, "b counts the refused handshake", func() bool { return b.Stats.TLSRejected.Load() > before })
		}
	}
	logMu.Lock()
	got := logs.String()
	logMu.Unlock()
	if !bytes.Contains([]byte(got), []byte("internode TLS handshake refused")) {
		t.Errorf("refused handshakes not logged:\n%s", got)
	}
	if bytes.Contains([]byte(got), []byte("PRIVATE KEY")) {
		t.Error("a log line holds key material")
	}
	// The members still talk after all that.
	if _, err := callSync(b, ctx, "a", "k"); err != nil {
		t.Fatalf("b → a after the refusals: %v", err)
	}
}

func TestTLSConfigBothOrNeither(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.Resolve, cfg.Handler = "a", func(string) (string, bool) { return "", false }, echo{}
	cfg.ServerTLS = &tls.Config{}
	if cfg.Validate() == nil {
		t.Fatal("ServerTLS without ClientTLS validated")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCertificateNamesNode: a member's certificate speaks for its own node only. A
// member claiming another id is refused by the receiver; a peer answering at another
// node's address is refused by the dialler.
func TestCertificateNamesNode(t *testing.T) {
	certs := bundles(t, "a", "b", "c")
	log := slog.New(slog.DiscardHandler)
	net := &tlsNet{addrs: map[string]string{}}
	a := net.listen(t, "a", certs["a"], log)
	// "c" runs with b's certificate: a member pretending to be another.
	impostor := net.listen(t, "c", certs["b"], log)
	ctx := context.Background()
	before := a.Stats.TLSRejected.Load()
	if _, err := callSync(impostor, ctx, "a", "k"); err == nil {
		t.Fatal("a stream from c over b's certificate was answered")
	}
	waitUntil(t, "a counts the impostor", func() bool { return a.Stats.TLSRejected.Load() > before })

	// a dials "b", but b's address leads to c's listener (which shows b's certificate,
	// fine) ... and then to a listener with c's own certificate, which is not b.
	net.mu.Lock()
	net.addrs["b"] = impostor.Addr()
	net.mu.Unlock()
	if _, err := callSync(a, ctx, "b", "k"); err != nil {
		t.Fatalf("a → b's certificate at b's address: %v", err)
	}
	honestC := net.listen(t, "c2", certs["c"], log)
	net.mu.Lock()
	net.addrs["b"] = honestC.Addr()
	net.mu.Unlock()
	a.ResetBackoff("b")
	a.mu.Lock()
	if p := a.peers["b"]; p != nil { // forget the connection to the old address
		delete(a.peers, "b")
		p.close(ErrClosed)
	}
	a.mu.Unlock()
	before = a.Stats.TLSRejected.Load()
	if _, err := callSync(a, ctx, "b", "k"); err == nil {
		t.Fatal("a accepted c's certificate when it dialled b")
	}
	if a.Stats.TLSRejected.Load() == before {
		t.Error("the dialler did not count the wrong certificate")
	}
}
