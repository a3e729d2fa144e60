// Package api is quorumkv's HTTP front end (docs/http-api.md).
//
// Model: a thin translation between HTTP and the node's operations. Every input is
// validated before anything is written: unknown query parameters, bad quorum values, bad
// contexts, invalid bucket names, oversized keys or values and truncated bodies answer a
// 4xx JSON error {"error","code"} and change nothing. With Options.RequireAuth every
// route but GET /healthz checks HTTP basic auth and the grant the route needs before its
// handler runs (auth.go): a refused request (401, 403) reads and changes nothing.
package api

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/auth"
	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/ui"
	"github.com/quorumkv/quorumkv/internal/version"
)

// ContextHeader carries the causal context.
const ContextHeader = "X-Quorumkv-Context"

// maxTimeout bounds the timeout query parameter.
const maxTimeout = 60 * time.Second

type server struct {
	n   *node.Node
	log *slog.Logger
	// maxValue is the largest value accepted; bodies are read up to one byte past it.
	maxValue int64

	auth         *auth.Authenticator
	requireAuth  bool
	authFailures *prometheus.CounterVec
}

// Options configure the HTTP API.
type Options struct {
	Logger *slog.Logger
	// DebugFaults serves POST /v1/debug/faults and /debug/pprof/ (admin only with auth).
	DebugFaults bool
	// MaxValue is the largest value accepted, in bytes.
	MaxValue int
	// Auth checks credentials and keeps users; nil makes one over the node (users can
	// then be managed, but nothing is required of clients unless RequireAuth).
	Auth *auth.Authenticator
	// RequireAuth: every request but GET /healthz needs HTTP basic auth and a grant.
	RequireAuth bool
	// PeerTLS, when set, is how the dashboard asks the other nodes (HTTPS, the cluster
	// CA's check: pki.Bundle.InternodeClient); nil asks them over plain HTTP.
	PeerTLS *tls.Config
}

// New returns the HTTP handler of n, open to every client (no authentication).
func New(n *node.Node, log *slog.Logger, debugFaults bool, maxValue int) http.Handler {
	return NewWithOptions(n, Options{Logger: log, DebugFaults: debugFaults, MaxValue: maxValue})
}

// NewWithOptions returns the HTTP handler of n.
func NewWithOptions(n *node.Node, o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Auth == nil {
		a, err := auth.New(auth.Config{Store: n, Logger: log, Params: auth.DefaultParams})
		if err != nil {
			panic(err) // only a broken random source fails here
		}
		o.Auth = a
	}
	s := &server{n: n, log: log, maxValue: int64(o.MaxValue), auth: o.Auth, requireAuth: o.RequireAuth,
		authFailures: authMetrics(n.Registry())}
	mux := http.NewServeMux()
	// handle registers h behind the route's authorization check, which sees the route's
	// path values (the bucket) and runs before anything is read or changed.
	handle := func(pattern string, h http.Handler) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if s.authorize(w, r, pattern) {
				h.ServeHTTP(w, r)
			}
		})
	}
	handleFunc := func(pattern string, h http.HandlerFunc) { handle(pattern, h) }
	handleFunc("GET /v1/kv/{bucket}/{key...}", s.getKV)
	handleFunc("PUT /v1/kv/{bucket}/{key...}", s.putKV)
	handleFunc("DELETE /v1/kv/{bucket}/{key...}", s.deleteKV)
	handleFunc("POST /v1/crdt/{bucket}/{key...}", s.updateCRDT)
	handleFunc("GET /v1/crdt/{bucket}/{key...}", s.getCRDT)
	handleFunc("DELETE /v1/crdt/{bucket}/{key...}", s.deleteCRDT)
	handleFunc("GET /v1/keys/{bucket}", s.listKeys)
	handleFunc("GET /v1/buckets/{bucket}", s.getBucket)
	handleFunc("PUT /v1/buckets/{bucket}", s.putBucket)
	handleFunc("GET /v1/cluster", s.cluster)
	handleFunc("GET /v1/cluster/transfers", s.transfers)
	handleFunc("POST /v1/cluster/leave", s.clusterChange(false))
	handleFunc("POST /v1/cluster/remove", s.clusterChange(true))
	handleFunc("GET /v1/admin/endpoints/{bucket}/{key...}", s.endpoints)
	handleFunc("GET /v1/admin/local/{bucket}/{key...}", s.local)
	handleFunc("GET /v1/admin/hints", s.hints)
	handleFunc("POST /v1/admin/repair", s.repair)
	handleFunc("GET /v1/admin/aae", s.aae)
	handleFunc("GET /v1/users", s.listUsers)
	handleFunc("GET /v1/users/{name}", s.getUser)
	handleFunc("PUT /v1/users/{name}", s.putUser)
	handleFunc("DELETE /v1/users/{name}", s.deleteUser)
	handleFunc("POST /v1/users/{name}/grant", s.grantUser(false))
	handleFunc("POST /v1/users/{name}/revoke", s.grantUser(true))
	handleFunc("GET /healthz", s.healthz)
	handle("GET /metrics", n.MetricsHandler())
	uiCfg := ui.DefaultConfig()
	uiCfg.PeerTLS = o.PeerTLS
	handle("/ui/", ui.HandlerWith(n, log, uiCfg))
	if o.DebugFaults {
		handleFunc("POST /v1/debug/faults", s.setFaults)
		handleFunc("GET /v1/debug/faults", s.getFaults)
		// Profiling rides on the same debug switch: it is for operators chasing a problem.
		handleFunc("GET /debug/pprof/", pprof.Index)
		handleFunc("GET /debug/pprof/profile", pprof.Profile)
		handleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	handleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowed(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ServeMux answers a path with "." or ".." segments or empty segments with a
		// redirect to its cleaned form, which names another key (a//b → a/b) and which
		// clients follow with the same method and body. Refuse it instead.
		if p := r.URL.EscapedPath(); p != cleanPath(p) {
			writeError(w, http.StatusBadRequest, "bad_request",
				fmt.Sprintf("path %q has empty, \".\" or \"..\" segments; percent-encode them in keys and bucket names", p))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// allowed lists the methods mux serves at r's path (HEAD wherever GET is), or nil when
// the path is unknown to every method.
func allowed(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

// cleanPath is the canonical form ServeMux gives a path: rooted, no "." or ".." elements,
// no empty elements, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// HandlerWithOptions adapts NewWithOptions to node.Config.HTTPHandler.
func HandlerWithOptions(o Options) func(*node.Node) http.Handler {
	return func(n *node.Node) http.Handler { return NewWithOptions(n, o) }
}

// Handler adapts New to node.Config.HTTPHandler.
func Handler(log *slog.Logger, debugFaults bool, maxValue int) func(*node.Node) http.Handler {
	return func(n *node.Node) http.Handler { return New(n, log, debugFaults, maxValue) }
}

type errorBody struct {
	Error    string `json:"error"`
	Code     string `json:"code"`
	Acks     *int   `json:"acks,omitempty"`
	Required *int   `json:"required,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Code: code})
}

// fail maps a node error to its HTTP status and JSON body.
func (s *server) fail(w http.ResponseWriter, err error) {
	var qe *quorum.QuorumError
	if errors.As(err, &qe) {
		acks, req := qe.Acks, qe.Required
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: qe.Error(), Code: "quorum_failed", Acks: &acks, Required: &req})
		return
	}
	code := node.ErrorCode(err)
	status := map[string]int{
		"bad_request":         http.StatusBadRequest,
		"too_large":           http.StatusRequestEntityTooLarge,
		"too_many_siblings":   http.StatusConflict,
		"unavailable":         http.StatusServiceUnavailable,
		"wrong_type":          http.StatusConflict,
		"not_found":           http.StatusNotFound,
		"precondition_failed": http.StatusPreconditionFailed,
	}[code]
	if status == 0 {
		status = http.StatusInternalServerError
		s.log.Error("request failed", "err", err)
	}
	writeError(w, status, code, err.Error())
}

// params checks that the query has only the allowed parameters, each at most once.
func params(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: query: %w", node.ErrBadRequest, err)
	}
	for k, v := range q {
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: unknown query parameter %q (allowed: %s)", node.ErrBadRequest, k, strings.Join(allowed, ", "))
		}
		if len(v) != 1 {
			return nil, fmt.Errorf("%w: query parameter %q given %d times", node.ErrBadRequest, k, len(v))
		}
	}
	return q, nil
}

// ParseTimeout reads the timeout parameter (milliseconds, 1..60000).
func ParseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	ms, err := strconv.Atoi(s)
	// Compare in milliseconds: converting a huge ms to a Duration first overflows int64
	// and can wrap to an accepted value.
	if err != nil || ms <= 0 || int64(ms) > maxTimeout.Milliseconds() {
		return 0, fmt.Errorf("%w: timeout %q: want milliseconds, 1..%d", node.ErrBadRequest, s, maxTimeout.Milliseconds())
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func pathKey(r *http.Request) (string, string) { return r.PathValue("bucket"), r.PathValue("key") }

// readOptions reads a read's query parameters: r, pr and timeout, and no others.
func readOptions(r *http.Request) (node.ReadOptions, error) {
	q, err := params(r, "r", "pr", "timeout")
	if err != nil {
		return node.ReadOptions{}, err
	}
	to, err := ParseTimeout(q.Get("timeout"))
	if err != nil {
		return node.ReadOptions{}, err
	}
	return node.ReadOptions{R: q.Get("r"), PR: q.Get("pr"), Timeout: to}, nil
}

func (s *server) getKV(w http.ResponseWriter, r *http.Request) {
	o, err := readOptions(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	bucket, key := pathKey(r)
	if s.isCRDTBucket(bucket) && s.getKVCRDT(w, r, o) {
		return
	}
	res, err := s.n.Get(r.Context(), bucket, key, o)
	if err != nil {
		s.fail(w, err)
		return
	}
	if res.Context != "" {
		w.Header().Set(ContextHeader, res.Context)
	}
	if !res.Found {
		msg := "not found"
		if res.Deleted {
			msg = "not found (deleted)"
		}
		writeError(w, http.StatusNotFound, "not_found", msg)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		vals := make([]string, len(res.Values))
		for i, v := range res.Values {
			vals[i] = base64.StdEncoding.EncodeToString(v)
		}
		out := map[string]any{"values": vals, "context": res.Context}
		if described(res) {
			out["described"] = siblingsJSON(res, false)
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	if len(res.Values) > 1 {
		writeJSON(w, http.StatusMultipleChoices, map[string]any{"siblings": siblingsJSON(res, true), "context": res.Context})
		return
	}
	ct := res.ContentTypes[0]
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	for _, m := range res.Metas[0] {
		w.Header().Set(MetaHeaderPrefix+m.Key, m.Value)
	}
	if e := res.Expires[0]; e != 0 {
		w.Header().Set(ExpiresHeader, strconv.FormatInt(e, 10))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Values[0])
}

// MetaHeaderPrefix starts the headers that carry a value's user metadata
// (X-Quorumkv-Meta-Author: ann), kept with the value as Riak keeps its X-Riak-Meta-*.
const MetaHeaderPrefix = "X-Quorumkv-Meta-"

// described reports whether any value of a read carries a content type or metadata.
func described(res node.ReadResult) bool {
	for i := range res.Values {
		if res.ContentTypes[i] != "" || len(res.Metas[i]) > 0 || res.Expires[i] != 0 {
			return true
		}
	}
	return false
}

// siblingsJSON describes each value of a read: its bytes (with value), content type and
// metadata.
func siblingsJSON(res node.ReadResult, value bool) []map[string]any {
	out := make([]map[string]any, len(res.Values))
	for i, v := range res.Values {
		e := map[string]any{}
		if value {
			e["value"] = base64.StdEncoding.EncodeToString(v)
		}
		if ct := res.ContentTypes[i]; ct != "" {
			e["content_type"] = ct
		}
		if x := res.Expires[i]; x != 0 {
			e["expires_ms"] = x
		}
		if len(res.Metas[i]) > 0 {
			m := make(map[string]string, len(res.Metas[i]))
			for _, x := range res.Metas[i] {
				m[x.Key] = x.Value
			}
			e["meta"] = m
		}
		out[i] = e
	}
	return out
}

// describeValue reads what a put says of its value: Content-Type and the metadata headers,
// keys lower-cased and sorted (a header given twice keeps its values joined by ", ").
func describeValue(r *http.Request, o *node.WriteOptions) {
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" { // the default, not kept
		o.ContentType = ct
	}
	for name, vals := range r.Header {
		if len(name) > len(MetaHeaderPrefix) && strings.EqualFold(name[:len(MetaHeaderPrefix)], MetaHeaderPrefix) {
			o.Meta = append(o.Meta, version.MetaEntry{Key: strings.ToLower(name[len(MetaHeaderPrefix):]), Value: strings.Join(vals, ", ")})
		}
	}
	slices.SortFunc(o.Meta, func(a, b version.MetaEntry) int { return strings.Compare(a.Key, b.Key) })
}

func (s *server) writeOptions(r *http.Request) (node.WriteOptions, error) {
	q, err := params(r, "w", "pw", "dw", "timeout", "ttl")
	if err != nil {
		return node.WriteOptions{}, err
	}
	to, err := ParseTimeout(q.Get("timeout"))
	if err != nil {
		return node.WriteOptions{}, err
	}
	ctx := r.Header.Get(ContextHeader)
	if _, _, err := version.DecodeContext(ctx); err != nil {
		return node.WriteOptions{}, fmt.Errorf("%w: %s: %w", node.ErrBadRequest, ContextHeader, err)
	}
	exp, err := ParseTTL(q.Get("ttl"), q.Has("ttl"))
	if err != nil {
		return node.WriteOptions{}, err
	}
	return node.WriteOptions{W: q.Get("w"), PW: q.Get("pw"), DW: q.Get("dw"), Timeout: to, Context: ctx, Expiry: exp}, nil
}

// writeCond reads a put's precondition: If-None-Match: * (create only) or If-Match: *
// (only over a live value). Entity tags are not supported: values have none.
func writeCond(r *http.Request) (core.WriteCond, error) {
	inm, im := r.Header.Values("If-None-Match"), r.Header.Values("If-Match")
	switch {
	case len(inm) == 0 && len(im) == 0:
		return core.CondNone, nil
	case len(inm) > 0 && len(im) > 0:
		return core.CondNone, fmt.Errorf("%w: If-None-Match and If-Match together", node.ErrBadRequest)
	case len(inm) == 1 && strings.TrimSpace(inm[0]) == "*":
		return core.CondAbsent, nil
	case len(im) == 1 && strings.TrimSpace(im[0]) == "*":
		return core.CondPresent, nil
	}
	return core.CondNone, fmt.Errorf("%w: If-None-Match and If-Match take only \"*\" (values have no entity tags)", node.ErrBadRequest)
}

// ParseTTL reads the ttl parameter: whole seconds, 1 up to core.MaxTTL; 0 means "never
// expires", overriding the bucket's ttl_s; absent takes the bucket's.
func ParseTTL(s string, given bool) (core.Expiry, error) {
	if !given {
		return core.Expiry{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > int64(core.MaxTTL/time.Second) {
		return core.Expiry{}, fmt.Errorf("%w: ttl %q: want whole seconds, 0 (never) or 1..%d", node.ErrBadRequest, s, int64(core.MaxTTL/time.Second))
	}
	if n == 0 {
		return core.Expiry{Mode: core.ExpiryNever}, nil
	}
	return core.Expiry{Mode: core.ExpiryTTL, TTL: time.Duration(n) * time.Second}, nil
}

// ExpiresHeader gives a single value's expiry on a read: Unix time in milliseconds.
const ExpiresHeader = "X-Quorumkv-Expires"

// readBody reads the whole body, refusing one over limit or shorter than its
// Content-Length.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: body is %d bytes, the limit is %d", node.ErrTooLarge, r.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body: %w", node.ErrBadRequest, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: body is over the limit of %d bytes", node.ErrTooLarge, limit)
	}
	if r.ContentLength >= 0 && int64(len(b)) != r.ContentLength {
		return nil, fmt.Errorf("%w: body is %d bytes, Content-Length said %d", node.ErrBadRequest, len(b), r.ContentLength)
	}
	return b, nil
}

func (s *server) putKV(w http.ResponseWriter, r *http.Request) {
	o, err := s.writeOptions(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	body, err := readBody(r, s.maxValue)
	if err != nil {
		s.fail(w, err)
		return
	}
	bucket, key := pathKey(r)
	describeValue(r, &o)
	if o.Cond, err = writeCond(r); err != nil {
		s.fail(w, err)
		return
	}
	ctx, err := s.n.Put(r.Context(), bucket, key, body, o)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set(ContextHeader, ctx)
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) deleteKV(w http.ResponseWriter, r *http.Request) {
	o, err := s.writeOptions(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	// A delete has no use for a body, but a request cut short (a body shorter than its
	// Content-Length) must change nothing, as for a put.
	if _, err := readBody(r, 64<<10); err != nil {
		s.fail(w, err)
		return
	}
	bucket, key := pathKey(r)
	ctx, err := s.n.Delete(r.Context(), bucket, key, o)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set(ContextHeader, ctx)
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) getBucket(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, bucketView(s.n.Bucket(r.PathValue("bucket"))))
}

// smallBody reads the body of a request that takes no query parameters and a small JSON
// document; on failure it has answered and reports false.
func (s *server) smallBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return nil, false
	}
	body, err := readBody(r, 64<<10)
	if err != nil {
		s.fail(w, err)
		return nil, false
	}
	return body, true
}

func (s *server) putBucket(w http.ResponseWriter, r *http.Request) {
	body, ok := s.smallBody(w, r)
	if !ok {
		return
	}
	p, err := s.n.SetBucket(r.PathValue("bucket"), body)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, bucketView(p))
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": s.n.ID()})
}
