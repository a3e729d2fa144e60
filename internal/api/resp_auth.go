package api

// Authentication of the Redis protocol (docs/redis.md, docs/security.md).
//
// Model: with RESP.RequireAuth a connection starts unauthenticated and may send only
// AUTH, HELLO and QUIT; anything else answers "NOAUTH Authentication required.", as
// Redis does. AUTH user pass (or
// HELLO 2 AUTH user pass) logs the connection in as that user; a wrong pair answers
// WRONGPASS and leaves the connection as it was. Each command then needs the user's
// grant on the redis bucket: read for reads, write for writes, or it answers NOPERM.
// The user's record is looked up again on every command, so a revoked grant or a
// removed user takes effect at once on open connections.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/quorumkv/quorumkv/internal/auth"
)

// Replies of the authentication layer, worded as Redis words them.
const (
	errNoAuth    = "NOAUTH Authentication required."
	errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
)

// admit checks that connection c may run command name (cmd: its table entry, nil for an
// unknown command); when it answers false it has written the refusal. The grant a
// command needs comes from its flags in the table (resp_table.go): write for "write",
// read for "readonly", a login only for the others; "no_auth" runs before a login.
func (r *RESP) admit(c *client, w *reply, name string, cmd *command) bool {
	if !r.RequireAuth || (cmd != nil && cmd.noAuth) {
		return true
	}
	if c.user == "" {
		r.authFailures.WithLabelValues("resp", "missing").Inc()
		w.WriteError(errNoAuth)
		return false
	}
	u, err := r.Auth.Current(c.user)
	if err != nil { // removed since it logged in
		c.user = ""
		r.authFailures.WithLabelValues("resp", "missing").Inc()
		w.WriteError(errNoAuth)
		return false
	}
	if cmd != nil && cmd.role != "" && !u.Can(cmd.role, RedisBucket) {
		r.authFailures.WithLabelValues("resp", "forbidden").Inc()
		w.WriteError(fmt.Sprintf("NOPERM User %s has no permissions to run the '%s' command", u.Name, name))
		return false
	}
	return true
}

// login checks a name and password for c. It answers nothing: the caller does.
func (r *RESP) login(ctx context.Context, c *client, name, pw []byte) error {
	if r.Auth == nil {
		return errors.New("ERR AUTH is not available on this node")
	}
	u, err := r.Auth.Authenticate(ctx, c.addr, string(name), string(pw))
	if err != nil {
		r.authFailures.WithLabelValues("resp", "invalid").Inc()
		if errors.Is(err, auth.ErrBadCredentials) {
			return errors.New(errWrongPass)
		}
		return errors.New("ERR authentication did not finish")
	}
	c.user = u.Name
	return nil
}

// cmdAuth answers AUTH [username] password. The one-argument form logs in as the user
// "default", as Redis 6 does.
func cmdAuth(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	var name, pw []byte
	switch len(args) {
	case 2:
		name, pw = []byte("default"), args[1]
	case 3:
		name, pw = args[1], args[2]
	default:
		w.WriteError("ERR syntax error")
		return
	}
	if !r.RequireAuth && r.Auth == nil {
		w.WriteError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	if err := r.login(ctx, c, name, pw); err != nil {
		w.WriteError(err.Error())
		return
	}
	w.WriteString("OK")
}

// helloAuth handles HELLO's AUTH option; it reports whether the connection may go on.
func helloAuth(r *RESP, ctx context.Context, c *client, w *reply, name, pw []byte) bool {
	if err := r.login(ctx, c, name, pw); err != nil {
		w.WriteError(err.Error())
		return false
	}
	return true
}

// hasAuthOption reports whether a HELLO carries the AUTH option.
func hasAuthOption(args [][]byte) bool {
	for _, a := range args[min(2, len(args)):] {
		if strings.EqualFold(string(a), "auth") {
			return true
		}
	}
	return false
}
