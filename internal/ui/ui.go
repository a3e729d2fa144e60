package ui

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/ring"
)

//go:embed static
var staticFiles embed.FS

// Source is what the dashboard reads from its node; *node.Node implements it. Cluster and
// Ring are atomic loads. Registry is gathered by the sampler only, off the request path:
// one gather costs the node what a Prometheus scrape does. Endpoints and Local serve the
// key inspector, as GET /v1/admin does.
type Source interface {
	ID() string
	Cluster() node.ClusterInfo
	Ring() *ring.Ring
	Endpoints(bucket, key string) (node.EndpointsInfo, error)
	Local(bucket, key string) (node.LocalCopy, error)
	Registry() *prometheus.Registry
	// Go runs the sampler on a goroutine the node owns: done closes when the node starts
	// closing, and the node waits for the sampler before it closes its store.
	Go(f func(done <-chan struct{}))
}

// Config configures the dashboard.
type Config struct {
	Logger *slog.Logger
	// Interval between two samples of the node's metrics. 5s: Grafana's usual resolution;
	// a sample (gather, derive, encode ten minutes of windows) costs 1-2 ms of one core
	// (BenchmarkSample), under 0.05% of it every 5s.
	Interval time.Duration
	// History is how many windows the sampler keeps: 120 windows of 5s are the last ten
	// minutes, about 40 KB of JSON.
	History int
	// PeerTimeout bounds every call to another node. 1s: a live peer on a LAN answers in
	// milliseconds; a dead one must not hold the page longer than one refresh.
	PeerTimeout time.Duration
	// CacheFor is how long one cluster fan-out answers every caller. 1s: several open
	// browsers cost one fan-out per second, not one each.
	CacheFor time.Duration
	// Client makes the peer calls; nil uses a private client (with PeerTLS when set).
	Client *http.Client
	// PeerTLS, when set, makes the peer calls HTTPS with this configuration (the cluster
	// CA's check, pki.Bundle.InternodeClient); nil asks peers over plain HTTP.
	PeerTLS *tls.Config
	// Authorize, when set, runs before every dashboard handler; an error answers 401. nil
	// lets everyone in (the HTTP API checks --auth logins before the dashboard is reached).
	// Either way the peer calls carry the caller's Authorization header, so each node
	// applies the caller's grants.
	Authorize func(*http.Request) error
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{Interval: 5 * time.Second, History: 120, PeerTimeout: time.Second, CacheFor: time.Second}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 || c.PeerTimeout <= 0 || c.CacheFor < 0 {
		errs = append(errs, errors.New("ui: interval and peer timeout must be positive, cache time >= 0"))
	}
	if c.History < 2 {
		errs = append(errs, fmt.Errorf("ui: history %d: want at least 2 windows", c.History))
	}
	return errors.Join(errs...)
}

// UI is the dashboard of one node: an http.Handler for /ui/.
type UI struct {
	src    Source
	cfg    Config
	log    *slog.Logger
	client *http.Client
	scheme string // of the peer calls: "http://" or "https://"
	mux    *http.ServeMux
	view   published
	fan    fanCache
}

// New returns the dashboard of src and starts its sampler (src.Go), which runs until the
// node closes.
func New(src Source, cfg Config) (*UI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &UI{src: src, cfg: cfg, log: log.With("component", "ui"), client: cfg.Client, scheme: "http://"}
	if cfg.PeerTLS != nil {
		u.scheme = "https://"
	}
	if u.client == nil {
		u.client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
			TLSClientConfig:     cfg.PeerTLS,
		}}
	}
	assets, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("ui: embedded assets: %w", err)
	}
	u.mux = http.NewServeMux()
	u.mux.Handle("GET /ui/", u.guard(assetHandler(assets)))
	u.mux.Handle("GET /ui/api/node", u.guard(http.HandlerFunc(u.nodeView)))
	u.mux.Handle("GET /ui/api/cluster", u.guard(http.HandlerFunc(u.clusterView)))
	u.mux.Handle("GET /ui/api/key", u.guard(http.HandlerFunc(u.keyView)))
	u.mux.Handle("/ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "bad_request", "the dashboard only answers GET")
	}))

	s := newSampler(src, cfg, u.log, &u.view)
	s.tick(time.Now()) // a first view at once: the page has something before the first interval
	src.Go(s.run)
	return u, nil
}

// authzKey carries the caller's Authorization header to the peer calls made for it.
type authzKey struct{}

// withCaller is ctx carrying r's Authorization header, if any.
func withCaller(ctx context.Context, r *http.Request) context.Context {
	if a := r.Header.Get("Authorization"); a != "" {
		return context.WithValue(ctx, authzKey{}, a)
	}
	return ctx
}

// HandlerWith is New with cfg and the given logger, for mounting in the HTTP API; it
// panics on a configuration error, which only a broken caller makes.
func HandlerWith(src Source, log *slog.Logger, cfg Config) http.Handler {
	cfg.Logger = log
	u, err := New(src, cfg)
	if err != nil {
		panic(err)
	}
	return u
}

// Handler is New with the default configuration and the given logger, for mounting in
// the HTTP API. A configuration error is impossible there, so it panics on one.
func Handler(src Source, log *slog.Logger) http.Handler {
	cfg := DefaultConfig()
	cfg.Logger = log
	u, err := New(src, cfg)
	if err != nil {
		panic(err) // DefaultConfig validates
	}
	return u
}

func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) { u.mux.ServeHTTP(w, r) }

// guard is the one gate of every dashboard handler.
func (u *UI) guard(h http.Handler) http.Handler {
	if u.cfg.Authorize == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := u.cfg.Authorize(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="quorumkv"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
			return
		}
		h.ServeHTTP(w, r)
	})
}

// assetHandler serves the embedded page. The files change only with the binary, so the
// browser may cache them briefly; /ui/ itself is index.html.
func assetHandler(assets fs.FS) http.Handler {
	files := http.StripPrefix("/ui/", http.FileServerFS(assets))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		// Everything the page loads comes from this node: no CDN, no inline script.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'")
		files.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
}

// nodeView is GET /ui/api/node[?series=0][&node=ID]: this node's sampled view, or, with
// node=ID, another member's, fetched from it.
func (u *UI) nodeView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	series := q.Get("series") != "0"
	if id := q.Get("node"); id != "" && id != u.src.ID() {
		m, ok := u.member(id)
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no member %q", id))
			return
		}
		var nv json.RawMessage
		path := "/ui/api/node"
		if !series {
			path += "?series=0"
		}
		if err := u.getJSON(withCaller(r.Context(), r), m.HTTP, path, &nv, false); err != nil {
			writeError(w, http.StatusBadGateway, "unreachable", err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(nv)
		return
	}
	ev := u.view.load()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if series {
		_, _ = w.Write(ev.full)
	} else {
		_, _ = w.Write(ev.brief)
	}
}

func (u *UI) member(id string) (node.NodeInfo, bool) {
	for _, m := range u.src.Cluster().Nodes {
		if m.ID == id {
			return m, true
		}
	}
	return node.NodeInfo{}, false
}

// getJSON asks a peer's HTTP API, bounded by PeerTimeout, and decodes the answer. With
// notFoundOK a 404 decodes too (GET /v1/admin/local answers 404 when it holds nothing).
func (u *UI) getJSON(ctx context.Context, hostport, path string, v any, notFoundOK bool) error {
	if hostport == "" {
		return errors.New("no HTTP address announced")
	}
	ctx, cancel := context.WithTimeout(ctx, u.cfg.PeerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.scheme+hostport+path, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", path, err)
	}
	if a, ok := ctx.Value(authzKey{}).(string); ok && a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && !(notFoundOK && resp.StatusCode == http.StatusNotFound) {
		return fmt.Errorf("GET %s: status %s", path, resp.Status)
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}
