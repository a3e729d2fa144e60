package api

// Authentication and authorization of the HTTP API (docs/security.md).
//
// Model: with Options.RequireAuth every request but GET /healthz carries HTTP basic
// auth; the route it reaches decides the grant it needs (permFor): reads need read on
// the bucket, writes write, bucket properties admin on the bucket, and the cluster-wide
// endpoints (admin, cluster changes, users, debug, profiling) admin on every bucket. The
// check runs before the handler, so a refused request changes nothing: 401 with
// WWW-Authenticate when the credentials are missing or wrong, 403 when the user lacks the
// grant. Neither answer nor any log line carries the password.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/auth"
)

// perm is what a route needs: a role on a bucket ("" = every bucket). An empty role needs
// only a valid login; open routes need nothing.
type perm struct {
	role   auth.Role
	bucket string
	open   bool
}

// permFor maps the route pattern that r reached to the grant it needs.
func permFor(pattern string, r *http.Request) perm {
	b := r.PathValue("bucket")
	switch pattern {
	case "GET /healthz":
		return perm{open: true}
	case "GET /v1/kv/{bucket}/{key...}", "GET /v1/crdt/{bucket}/{key...}", "GET /v1/buckets/{bucket}", "GET /v1/keys/{bucket}":
		return perm{role: auth.RoleRead, bucket: b}
	case "PUT /v1/kv/{bucket}/{key...}", "DELETE /v1/kv/{bucket}/{key...}",
		"POST /v1/crdt/{bucket}/{key...}", "DELETE /v1/crdt/{bucket}/{key...}":
		return perm{role: auth.RoleWrite, bucket: b}
	case "PUT /v1/buckets/{bucket}":
		return perm{role: auth.RoleAdmin, bucket: b}
	case "GET /v1/cluster", "GET /v1/cluster/transfers", "GET /metrics", "/":
		return perm{} // any user: the cluster's shape and changes, metrics, and "no such endpoint"
	case "/ui/":
		return perm{role: auth.RoleRead} // the dashboard's key inspector shows values
	}
	// Everything else is cluster-wide: /v1/admin/..., /v1/users..., /v1/debug/...,
	// /debug/pprof/... (and any route added later until it is listed above).
	return perm{role: auth.RoleAdmin}
}

// userKey carries the authenticated user in a request's context.
type userKey struct{}

// authorize authenticates r and checks the grant its route needs; when it answers false
// it has written the refusal.
func (s *server) authorize(w http.ResponseWriter, r *http.Request, pattern string) bool {
	p := permFor(pattern, r)
	if !s.requireAuth || p.open {
		return true
	}
	name, pw, ok := r.BasicAuth()
	if !ok {
		s.authFailures.WithLabelValues("http", "missing").Inc()
		challenge(w, "authentication required: send HTTP basic auth (quorumkv --user NAME, password in QUORUMKV_PASSWORD)")
		return false
	}
	u, err := s.auth.Authenticate(r.Context(), r.RemoteAddr, name, pw)
	if err != nil {
		if errors.Is(err, auth.ErrBadCredentials) {
			s.authFailures.WithLabelValues("http", "invalid").Inc()
			challenge(w, "invalid username or password")
		} else {
			writeError(w, http.StatusServiceUnavailable, "unavailable", "authentication did not finish: "+err.Error())
		}
		return false
	}
	if p.role != "" && !u.Can(p.role, p.bucket) {
		s.authFailures.WithLabelValues("http", "forbidden").Inc()
		where := "every bucket"
		if p.bucket != "" {
			where = fmt.Sprintf("bucket %q", p.bucket)
		}
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("user %s needs the %s role on %s for %s %s",
			u.Name, p.role, where, r.Method, r.URL.Path))
		return false
	}
	*r = *r.WithContext(context.WithValue(r.Context(), userKey{}, u))
	return true
}

func challenge(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="quorumkv", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", msg)
}

// authMetrics registers the authentication counters on the node's registry (once per
// registry: a second handler on the same node shares them).
func authMetrics(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quorumkv_auth_failures_total",
		Help: "Client requests refused by authentication or authorization, by protocol (http, resp) and reason (missing, invalid, forbidden).",
	}, []string{"protocol", "reason"})
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return ex
			}
		}
	}
	return c
}

// userRequest is PUT /v1/users/{name}'s body: a password (required for a new user;
// omitted, the password stays) and the grants (omitted, they stay).
type userRequest struct {
	Password string        `json:"password"`
	Grants   *[]auth.Grant `json:"grants"`
}

func (s *server) authFail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, auth.ErrNoUser):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, auth.ErrInvalid):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	default:
		s.log.Error("user management failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// decodeStrict decodes a small JSON body, refusing unknown fields. Its error never
// quotes the body (it may hold a password).
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("%w: malformed JSON at byte %d", auth.ErrInvalid, se.Offset)
		case errors.As(err, &te):
			return fmt.Errorf("%w: field %q has the wrong type", auth.ErrInvalid, te.Field)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return fmt.Errorf("%w: %s", auth.ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
		}
		return fmt.Errorf("%w: malformed JSON", auth.ErrInvalid)
	}
	return nil
}

func (s *server) listUsers(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": s.auth.List()})
}

func (s *server) getUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.auth.Lookup(r.PathValue("name"))
	if err != nil {
		s.authFail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u.Public())
}

func (s *server) putUser(w http.ResponseWriter, r *http.Request) {
	body, ok := s.smallBody(w, r)
	if !ok {
		return
	}
	var req userRequest
	if err := decodeStrict(body, &req); err != nil {
		s.authFail(w, err)
		return
	}
	var grants []auth.Grant
	if req.Grants != nil {
		grants = *req.Grants
		if grants == nil {
			grants = []auth.Grant{}
		}
	}
	u, err := s.auth.Put(r.PathValue("name"), req.Password, grants)
	if err != nil {
		s.authFail(w, err)
		return
	}
	s.log.Info("user stored", "user", u.Name, "by", requester(r))
	writeJSON(w, http.StatusOK, u.Public())
}

func (s *server) deleteUser(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	if err := s.auth.Remove(r.PathValue("name")); err != nil {
		s.authFail(w, err)
		return
	}
	s.log.Info("user removed", "user", r.PathValue("name"), "by", requester(r))
	w.WriteHeader(http.StatusNoContent)
}

// grantUser serves POST /v1/users/{name}/grant and /revoke, body {"role","bucket"}.
func (s *server) grantUser(revoke bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := s.smallBody(w, r)
		if !ok {
			return
		}
		var g auth.Grant
		if err := decodeStrict(body, &g); err != nil {
			s.authFail(w, err)
			return
		}
		var u *auth.User
		var err error
		if revoke {
			u, err = s.auth.Revoke(r.PathValue("name"), g)
		} else {
			u, err = s.auth.Grant(r.PathValue("name"), g)
		}
		if err != nil {
			s.authFail(w, err)
			return
		}
		s.log.Info("user grants changed", "user", u.Name, "grant", g.String(), "revoked", revoke, "by", requester(r))
		writeJSON(w, http.StatusOK, u.Public())
	}
}

// requester names who made r, for the log ("-" without --auth).
func requester(r *http.Request) string {
	if u, ok := r.Context().Value(userKey{}).(*auth.User); ok {
		return u.Name
	}
	return "-"
}
