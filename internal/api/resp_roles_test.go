package api

import (
	"slices"
	"testing"

	"github.com/quorumkv/quorumkv/internal/auth"
)

// TestEveryDataCommandNeedsAGrant: a command added to the table without a grant would run
// for any logged-in user, whatever their roles. A command that reads or writes data (it
// has keys, or it is in the @read or @write ACL category) needs read or write on the
// redis bucket; the others (connection commands) only a login.
func TestEveryDataCommandNeedsAGrant(t *testing.T) {
	for _, c := range commandList {
		data := c.first > 0 || slices.Contains(c.acl, "@read") || slices.Contains(c.acl, "@write")
		want := auth.Role("")
		switch {
		case data && c.write:
			want = auth.RoleWrite
		case data:
			want = auth.RoleRead
		}
		if c.role != want {
			t.Errorf("command %q: role %q, want %q (flags %v, ACL %v)", c.name, c.role, want, c.flags, c.acl)
		}
		if data && !slices.Contains(c.flags, "write") && !slices.Contains(c.flags, "readonly") {
			t.Errorf("command %q touches data but is flagged neither write nor readonly", c.name)
		}
		if c.noAuth && c.name != "auth" && c.name != "hello" && c.name != "quit" {
			t.Errorf("command %q runs before a login", c.name)
		}
	}
}

// TestCommandTable: the table is consistent: keys where the arity allows them, barriers
// for the commands that change the connection or read the whole keyspace.
func TestCommandTable(t *testing.T) {
	for _, c := range commandList {
		if c.first > 0 && (c.step < 1 || (c.last > 0 && c.last < c.first)) {
			t.Errorf("command %q: keys %d..%d step %d", c.name, c.first, c.last, c.step)
		}
		if c.first > 0 && c.barrier {
			t.Errorf("command %q has keys and is a barrier", c.name)
		}
		if c.first > 0 && (c.arity > 0 && c.arity <= c.first || c.arity < 0 && -c.arity <= c.first) {
			t.Errorf("command %q: arity %d leaves no room for its first key", c.name, c.arity)
		}
	}
	for _, name := range []string{"auth", "hello", "quit", "select", "client", "qkv.quorum", "scan", "keys", "dbsize"} {
		if c := commands[name]; c == nil || !c.barrier {
			t.Errorf("%s is not a barrier", name)
		}
	}
}
