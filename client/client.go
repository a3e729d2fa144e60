// Package client is the Go client for the quorumkv HTTP API (docs/http-api.md).
//
// A Client talks to one node at a time; every node serves the whole API and coordinates
// any request, so one address is enough. Given several ("h1:8080,h2:8080,h3:8080"), it
// keeps to the first that answers and moves to the next when a node cannot be reached
// (connection refused or unroutable: the request was never sent, so retrying it elsewhere
// cannot apply a write twice). WithRouting sends each key's reads and writes straight to
// one of its primaries, from the ring the client fetches and refreshes (route.go). A
// Client is safe for concurrent use.
//
// # Model
//
// quorumkv keeps every concurrent write: a read returns one or more values (siblings)
// and an opaque causal context. A write passes back the context of the read it
// supersedes; a write without a context is "blind" and becomes a sibling of whatever
// exists. The usual read-modify-write loop is therefore:
//
//	c := client.New("127.0.0.1:8080")
//	obj, err := c.Get(ctx, "users", "alice", client.Quorum{})
//	if err != nil {
//		return err
//	}
//	merged := resolve(obj.Values) // application-specific; obj.Values is empty if !obj.Found
//	_, err = c.Put(ctx, "users", "alice", merged, obj.Context, client.Quorum{W: "quorum"})
//	var qerr *client.APIError
//	if errors.As(err, &qerr) && qerr.Code == client.CodeQuorumFailed {
//		// fewer than W replicas acknowledged; the write may still have reached
//		// some of them (it is not rolled back)
//	}
//
// Every non-2xx answer is returned as an *APIError, except 404 on Get, which is
// reported as Object.Found == false (the Context of a tombstone is still returned, so
// a write can supersede the delete). Transport failures are returned as they come
// from net/http, wrapped.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ContextHeader carries the causal context on reads and writes.
const ContextHeader = "X-Quorumkv-Context"

// Error codes of the API (APIError.Code).
const (
	CodeBadRequest      = "bad_request"
	CodeNotFound        = "not_found"
	CodeTooLarge        = "too_large"
	CodeTooManySiblings = "too_many_siblings"
	CodeQuorumFailed    = "quorum_failed"
	CodeUnavailable     = "unavailable"
	CodeInternal        = "internal"
	// CodeUnauthorized: no credentials, or wrong ones (HTTP 401); see WithCredentials.
	CodeUnauthorized = "unauthorized"
	// CodeForbidden: the user lacks the grant the request needs (HTTP 403).
	CodeForbidden = "forbidden"
	// CodePreconditionFailed: a conditional write's condition did not hold (HTTP 412);
	// nothing was written. See PutOptions.IfAbsent.
	CodePreconditionFailed = "precondition_failed"
)

// DefaultTimeout bounds one request when WithTimeout is not given. It is longer than
// the server's default quorum timeout (5 s) so the server's answer, not ours, reports
// a slow quorum.
const DefaultTimeout = 30 * time.Second

// maxErrorBody caps how much of an error response is read.
const maxErrorBody = 64 << 10

// Client is a quorumkv HTTP API client. Create it with New.
type Client struct {
	base    *url.URL   // scheme and host (and optional path prefix), no trailing slash
	bases   []*url.URL // every address given, base first
	cur     atomic.Int32
	routing bool
	router  router
	baseErr error // a bad address, reported by every call
	hc      *http.Client
	timeout time.Duration

	user, password string
	creds          bool
	tls            *tls.Config
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests through hc (for custom transports,
// TLS, or tests). The Client never modifies hc.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithCredentials sends name and password with every request (HTTP basic auth), for
// nodes started with --auth. Use it with TLS: basic auth sends the password as it is.
func WithCredentials(name, password string) Option {
	return func(c *Client) { c.user, c.password, c.creds = name, password, true }
}

// WithTLS talks HTTPS with cfg (its RootCAs holding the cluster CA, say); an address
// without a scheme then means https://. Ignored with WithHTTPClient, whose transport
// decides.
func WithTLS(cfg *tls.Config) Option { return func(c *Client) { c.tls = cfg } }

// WithTimeout bounds every request (including reading the response) to d; 0 means no
// bound beyond the caller's context. The default is DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client for the node at addr: "host:port" (HTTP is assumed) or a URL
// "http://host:port" / "https://host:port". A malformed addr is reported by every call.
func New(addr string, opts ...Option) *Client {
	c := &Client{timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{}
		if c.tls != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = c.tls
			c.hc.Transport = tr
		}
	}
	for _, a := range strings.Split(addr, ",") {
		u, err := c.parseAddr(strings.TrimSpace(a))
		if err != nil {
			c.baseErr, c.bases = err, nil
			break
		}
		c.bases = append(c.bases, u)
	}
	if len(c.bases) > 0 {
		c.base = c.bases[0]
	}
	return c
}

func (c *Client) parseAddr(addr string) (*url.URL, error) {
	raw := addr
	if !strings.Contains(raw, "://") {
		if c.tls != nil {
			raw = "https://" + raw
		} else {
			raw = "http://" + raw
		}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("client: bad address %q: %w", addr, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("client: bad address %q: scheme must be http or https", addr)
	case u.Host == "":
		return nil, fmt.Errorf("client: bad address %q: no host", addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.RawQuery, u.Fragment = "", ""
	return u, nil
}

// unreachable reports a transport error that means the request was never sent.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Addr returns the base URL the client talks to ("" if the address was malformed).
func (c *Client) Addr() string {
	if c.base == nil {
		return ""
	}
	return c.base.String()
}

// Quorum holds per-request consistency parameters. Each value is "1".."N", "one",
// "quorum" or "all" (PR, PW and DW may also be "0"); the zero value "" means the
// bucket's default. Timeout is the server-side deadline for the request (0 = the
// server default, 5 s).
type Quorum struct {
	R, W, PR, PW, DW string
	Timeout          time.Duration
}

func (q Quorum) readQuery() url.Values {
	v := url.Values{}
	setIf(v, "r", q.R)
	setIf(v, "pr", q.PR)
	q.setTimeout(v)
	return v
}

func (q Quorum) writeQuery() url.Values {
	v := url.Values{}
	setIf(v, "w", q.W)
	setIf(v, "pw", q.PW)
	setIf(v, "dw", q.DW)
	q.setTimeout(v)
	return v
}

func (q Quorum) setTimeout(v url.Values) {
	if q.Timeout > 0 {
		ms := q.Timeout.Milliseconds()
		if ms == 0 {
			ms = 1
		}
		v.Set("timeout", strconv.FormatInt(ms, 10))
	}
}

func setIf(v url.Values, k, s string) {
	if s != "" {
		v.Set(k, s)
	}
}

// Object is the result of a Get.
type Object struct {
	// Values are the current values: one normally, several when concurrent writes
	// left siblings (in the server's order). Empty when !Found.
	Values [][]byte
	// Context is the causal context to pass to the next Put or Delete of this key.
	// It may be set when !Found: the key was deleted and this is the tombstone's.
	Context string
	// Found is false when the key is absent or deleted (HTTP 404).
	Found bool
}

// APIError is a non-2xx answer of the server.
type APIError struct {
	Status  int    // HTTP status
	Code    string // machine code ("quorum_failed", ...); "" if the body was not the JSON error form
	Message string // human-readable message from the server
	// Acks and Required are set for quorum_failed: how many replicas acknowledged,
	// and how many the request required.
	Acks, Required int
}

func (e *APIError) Error() string {
	if e.Code == CodeQuorumFailed {
		return fmt.Sprintf("quorum not reached: %d of %d acks", e.Acks, e.Required)
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%s, HTTP %d)", msg, e.Code, e.Status)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// IsNotFound reports whether err is an *APIError for an absent key or object (404).
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && (e.Status == http.StatusNotFound || e.Code == CodeNotFound)
}

// IsQuorumFailed reports whether err is an *APIError saying R/W/PR/PW/DW was not
// reached.
func IsQuorumFailed(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == CodeQuorumFailed
}

// IsPreconditionFailed reports whether err is a conditional write refused because its
// condition did not hold (PutOptions.IfAbsent, IfPresent).
func IsPreconditionFailed(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == CodePreconditionFailed
}

// kvPath returns the escaped path of a key under prefix ("kv", "admin/endpoints", ...).
func kvPath(prefix, bucket, key string) (string, error) {
	if bucket == "" {
		return "", errors.New("client: empty bucket name")
	}
	if key == "" {
		return "", errors.New("client: empty key")
	}
	return "/v1/" + prefix + "/" + url.PathEscape(bucket) + "/" + url.PathEscape(key), nil
}

func bucketPath(bucket string) (string, error) {
	if bucket == "" {
		return "", errors.New("client: empty bucket name")
	}
	return "/v1/buckets/" + url.PathEscape(bucket), nil
}

// request describes one HTTP call.
type request struct {
	method  string
	path    string // already escaped
	query   url.Values
	body    []byte
	ctype   string
	accept  string
	context string // X-Quorumkv-Context to send, if any
	header  map[string]string
	// bucket and key, for a request about one key (routed to a primary WithRouting)
	bucket, key string
}

// do sends r and returns the response with its body fully read. Cancelling the
// timeout is deferred to here, so the body is read before it fires.
func (c *Client) do(ctx context.Context, r request) (*http.Response, []byte, error) {
	if c.baseErr != nil {
		return nil, nil, c.baseErr
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	if r.key != "" {
		if u := c.routeTo(r.bucket, r.key); u != nil {
			resp, data, err := c.doAt(ctx, u, r)
			if err == nil || !unreachable(err) || ctx.Err() != nil {
				return resp, data, err
			}
			// The primary is unreachable: any node coordinates.
		}
	}
	// Try the node that answered last, then each other one in turn.
	first := int(c.cur.Load())
	var err error
	for i := range c.bases {
		at := (first + i) % len(c.bases)
		var resp *http.Response
		var data []byte
		resp, data, err = c.doAt(ctx, c.bases[at], r)
		if err == nil || !unreachable(err) || ctx.Err() != nil {
			if err == nil && at != first {
				c.cur.Store(int32(at))
			}
			return resp, data, err
		}
	}
	return nil, nil, err
}

// doAt sends r to the node at base.
func (c *Client) doAt(ctx context.Context, base *url.URL, r request) (*http.Response, []byte, error) {
	u := *base
	u.RawPath = base.EscapedPath() + r.path
	p, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	u.Path = p
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.context != "" {
		req.Header.Set(ContextHeader, r.context)
	}
	if c.creds {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("client: %w", err)
	}
	defer resp.Body.Close()
	var rd io.Reader = resp.Body
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusMultipleChoices {
		rd = io.LimitReader(resp.Body, maxErrorBody)
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, nil, fmt.Errorf("client: %s %s: reading response: %w", r.method, u.Path, err)
	}
	return resp, data, nil
}

// apiError builds the error for a non-2xx response.
func apiError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode}
	var j struct {
		Error    string `json:"error"`
		Code     string `json:"code"`
		Acks     int    `json:"acks"`
		Required int    `json:"required"`
	}
	if json.Unmarshal(body, &j) == nil && (j.Error != "" || j.Code != "") {
		e.Message, e.Code, e.Acks, e.Required = j.Error, j.Code, j.Acks, j.Required
	} else {
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "..."
		}
	}
	return e
}

func ok(resp *http.Response) bool { return resp.StatusCode >= 200 && resp.StatusCode < 300 }

func isJSON(resp *http.Response) bool {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// Get reads bucket/key. It asks for the JSON form (Accept: application/json) so that
// one value and siblings look alike; it also understands the plain 200 and the 300
// sibling forms. A missing or deleted key gives Found == false and a nil error.
func (c *Client) Get(ctx context.Context, bucket, key string, q Quorum) (*Object, error) {
	path, err := kvPath("kv", bucket, key)
	if err != nil {
		return nil, err
	}
	resp, body, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q.readQuery(), accept: "application/json", bucket: bucket, key: key})
	if err != nil {
		return nil, err
	}
	obj := &Object{Context: resp.Header.Get(ContextHeader)}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return obj, nil
	case resp.StatusCode == http.StatusMultipleChoices:
		var j struct {
			Siblings []struct {
				Value []byte `json:"value"`
			} `json:"siblings"`
			Context string `json:"context"`
		}
		if err := json.Unmarshal(body, &j); err != nil {
			return nil, fmt.Errorf("client: GET %s: bad sibling response: %w", path, err)
		}
		obj.Found = true
		for _, s := range j.Siblings {
			obj.Values = append(obj.Values, nonNil(s.Value))
		}
		if j.Context != "" {
			obj.Context = j.Context
		}
		return obj, nil
	case !ok(resp):
		return nil, apiError(resp, body)
	case isJSON(resp):
		var j struct {
			Values  [][]byte `json:"values"`
			Context string   `json:"context"`
		}
		if err := json.Unmarshal(body, &j); err != nil {
			return nil, fmt.Errorf("client: GET %s: bad response: %w", path, err)
		}
		obj.Found = true
		for _, v := range j.Values {
			obj.Values = append(obj.Values, nonNil(v))
		}
		if j.Context != "" {
			obj.Context = j.Context
		}
		return obj, nil
	default: // a server that ignored Accept: the raw single value
		obj.Found = true
		obj.Values = [][]byte{body}
		return obj, nil
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Put writes value to bucket/key. context is the Context of the read this write
// supersedes ("" for a blind write, which becomes a sibling of what exists). It
// returns the new object's context. When the quorum is not met the error is an
// *APIError with Code "quorum_failed" (see IsQuorumFailed); the write may still have
// reached some replicas.
func (c *Client) Put(ctx context.Context, bucket, key string, value []byte, context string, q Quorum) (string, error) {
	return c.PutWith(ctx, bucket, key, value, PutOptions{Context: context, Quorum: q})
}

// NoExpiry as PutOptions.TTL writes a value that never expires, even in a bucket with a
// ttl_s.
const NoExpiry time.Duration = -1

// PutOptions are a write's settings beyond its value.
type PutOptions struct {
	// Context is the Context of the read this write supersedes ("": a blind write).
	Context string
	Quorum  Quorum
	// TTL gives the value a lifetime, in whole seconds (rounded up): after it every node
	// reads the key as absent. 0 takes the bucket's ttl_s (none by default); NoExpiry
	// never expires.
	TTL time.Duration
	// IfAbsent writes only when the key holds no live value at the read quorum
	// (If-None-Match: *); IfPresent only when it holds one (If-Match: *). Otherwise the
	// error satisfies IsPreconditionFailed and nothing is written. Two IfAbsent writes
	// racing can both succeed (they become siblings): this is a check, not a lock.
	IfAbsent, IfPresent bool
}

// PutWith is Put with every option.
func (c *Client) PutWith(ctx context.Context, bucket, key string, value []byte, o PutOptions) (string, error) {
	path, err := kvPath("kv", bucket, key)
	if err != nil {
		return "", err
	}
	if value == nil {
		value = []byte{}
	}
	query := o.Quorum.writeQuery()
	switch {
	case o.TTL == NoExpiry:
		query.Set("ttl", "0")
	case o.TTL < 0:
		return "", fmt.Errorf("client: TTL %v: want > 0, 0 (the bucket's) or NoExpiry", o.TTL)
	case o.TTL > 0:
		query.Set("ttl", strconv.FormatInt(int64((o.TTL+time.Second-1)/time.Second), 10))
	}
	var header map[string]string
	switch {
	case o.IfAbsent && o.IfPresent:
		return "", errors.New("client: IfAbsent and IfPresent together")
	case o.IfAbsent:
		header = map[string]string{"If-None-Match": "*"}
	case o.IfPresent:
		header = map[string]string{"If-Match": "*"}
	}
	resp, body, err := c.do(ctx, request{
		method: http.MethodPut, path: path, query: query, body: value,
		ctype: "application/octet-stream", context: o.Context, bucket: bucket, key: key, header: header,
	})
	if err != nil {
		return "", err
	}
	if !ok(resp) {
		return "", apiError(resp, body)
	}
	return resp.Header.Get(ContextHeader), nil
}

// Delete writes a tombstone for bucket/key superseding what context has seen, and
// returns the tombstone's context. W, PW, DW and Timeout of q apply.
func (c *Client) Delete(ctx context.Context, bucket, key, context string, q Quorum) (string, error) {
	path, err := kvPath("kv", bucket, key)
	if err != nil {
		return "", err
	}
	resp, body, err := c.do(ctx, request{method: http.MethodDelete, path: path, query: q.writeQuery(), context: context, bucket: bucket, key: key})
	if err != nil {
		return "", err
	}
	if !ok(resp) {
		return "", apiError(resp, body)
	}
	return resp.Header.Get(ContextHeader), nil
}

// getJSON GETs path and decodes a 2xx JSON answer into out.
func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.sendJSON(ctx, http.MethodGet, path, nil, out)
}

// sendJSON sends in (if not nil) as JSON and decodes a 2xx answer into out.
func (c *Client) sendJSON(ctx context.Context, method, path string, in, out any) error {
	r := request{method: method, path: path, accept: "application/json"}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		r.body, r.ctype = b, "application/json"
	}
	resp, body, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	if !ok(resp) {
		return apiError(resp, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("client: %s %s: bad response: %w", method, path, err)
	}
	return nil
}

// Health checks GET /healthz: nil when the node answers 200.
func (c *Client) Health(ctx context.Context) error {
	resp, body, err := c.do(ctx, request{method: http.MethodGet, path: "/healthz"})
	if err != nil {
		return err
	}
	if !ok(resp) {
		return apiError(resp, body)
	}
	return nil
}
