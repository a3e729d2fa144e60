package api

import (
	"context"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/internal/auth"
)

// The command table: the one description of every Redis command this front end serves.
// COMMAND answers from it (in Redis 7's form), dispatch checks arity against it, the
// pipeline takes keys and barriers from it (resp_pipe.go) and authorization takes roles
// from its flags (resp_auth.go).

// handler runs one command whose name and arity are checked, writing its reply into w.
type handler func(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte)

// command is one Redis command.
type command struct {
	name string
	// arity counts the name, as Redis does; negative: at least that many.
	arity int
	// flags are Redis's command flags (COMMAND): "write" makes it need the write role and
	// a write in its keys' lanes, "readonly" the read role, "no_auth" lets it run before
	// a login.
	flags []string
	// first, last, step: the key positions as Redis gives them (last < 0 counts from the
	// end; first 0: no key).
	first, last, step int
	acl               []string // ACL categories, for COMMAND
	// barrier: a pipeline runs it alone, after every command before it has been answered
	// (it reads or changes the connection's state, or the whole keyspace).
	barrier bool
	run     handler

	// derived from flags by init
	write  bool
	role   auth.Role // "" for commands that need only a login
	noAuth bool
}

// Flag sets shared by many commands.
var (
	fRead      = []string{"readonly", "fast"}
	fReadSlow  = []string{"readonly"}
	fWrite     = []string{"write", "fast"}
	fWriteOOM  = []string{"write", "denyoom", "fast"}
	fWriteSlow = []string{"write", "denyoom"}
	fConn      = []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}
)

// commands is the command table, by lower-case name.
var commands map[string]*command

// commandList is the table in name order.
var commandList []*command

func init() {
	key := func(name string, arity int, flags []string, acl string, run handler) *command {
		return &command{name: name, arity: arity, flags: flags, first: 1, last: 1, step: 1,
			acl: aclFor(flags, acl), run: run}
	}
	keys := func(name string, arity int, flags []string, acl string, last, step int, run handler) *command {
		return &command{name: name, arity: arity, flags: flags, first: 1, last: last, step: step,
			acl: aclFor(flags, acl), run: run}
	}
	none := func(name string, arity int, flags []string, acl []string, barrier bool, run handler) *command {
		return &command{name: name, arity: arity, flags: flags, acl: acl, barrier: barrier, run: run}
	}
	list := []*command{
		none("ping", -1, []string{"fast"}, []string{"@fast", "@connection"}, false, cmdPing),
		none("echo", 2, []string{"fast"}, []string{"@fast", "@connection"}, false, cmdEcho),
		none("auth", -2, fConn, []string{"@fast", "@connection"}, true, cmdAuth),
		none("hello", -1, fConn, []string{"@fast", "@connection"}, true, cmdHello),
		none("quit", -1, fConn, []string{"@fast", "@connection"}, true, cmdQuit),
		none("select", 2, []string{"loading", "stale", "fast"}, []string{"@keyspace", "@fast"}, true, cmdSelect),
		none("client", -2, []string{"loading", "stale"}, []string{"@slow", "@connection"}, true, cmdClient),
		none("qkv.quorum", 3, []string{"fast"}, []string{"@fast", "@connection"}, true, cmdQuorum),
		none("command", -1, []string{"loading", "stale"}, []string{"@slow", "@connection"}, false, cmdCommand),
		none("config", -2, []string{"admin", "noscript", "loading", "stale"}, []string{"@admin", "@slow", "@dangerous"}, false, cmdConfig),
		none("info", -1, []string{"loading", "stale"}, []string{"@slow", "@dangerous"}, false, cmdInfo),
		none("scan", -2, fReadSlow, []string{"@keyspace", "@read", "@slow"}, true, cmdScan),
		none("keys", 2, fReadSlow, []string{"@keyspace", "@read", "@slow", "@dangerous"}, true, cmdKeys),
		none("dbsize", 1, fRead, []string{"@keyspace", "@read", "@fast"}, true, cmdDBSize),

		key("get", 2, fRead, "@string", cmdGet),
		key("set", -3, fWriteSlow, "@string", cmdSet),
		key("setnx", 3, fWriteOOM, "@string", cmdSetNX),
		key("setex", 4, fWriteSlow, "@string", cmdSetEx),
		key("psetex", 4, fWriteSlow, "@string", cmdSetEx),
		keys("mget", -2, fRead, "@string", -1, 1, cmdMGet),
		key("incr", 2, fWriteOOM, "@string", cmdIncr),
		key("decr", 2, fWriteOOM, "@string", cmdIncr),
		key("incrby", 3, fWriteOOM, "@string", cmdIncr),
		key("decrby", 3, fWriteOOM, "@string", cmdIncr),

		keys("mset", -3, fWriteSlow, "@string", -1, 2, cmdMSet),

		keys("del", -2, []string{"write"}, "@keyspace", -1, 1, cmdDel),
		keys("unlink", -2, fWrite, "@keyspace", -1, 1, cmdDel),
		key("type", 2, fRead, "@keyspace", cmdType),
		key("expireat", -3, fWrite, "@keyspace", cmdExpire),
		key("pexpireat", -3, fWrite, "@keyspace", cmdExpire),
		keys("exists", -2, fRead, "@keyspace", -1, 1, cmdExists),
		key("expire", -3, fWrite, "@keyspace", cmdExpire),
		key("pexpire", -3, fWrite, "@keyspace", cmdExpire),
		key("ttl", 2, fRead, "@keyspace", cmdTTL),
		key("pttl", 2, fRead, "@keyspace", cmdTTL),
		key("persist", 2, fWrite, "@keyspace", cmdPersist),

		key("sadd", -3, fWriteOOM, "@set", cmdSAdd),
		key("srem", -3, fWrite, "@set", cmdSRem),
		key("smembers", 2, fReadSlow, "@set", cmdSMembers),
		key("sismember", 3, fRead, "@set", cmdSIsMember),
		key("scard", 2, fRead, "@set", cmdSCard),

		key("hset", -4, fWriteOOM, "@hash", cmdHSet),
		key("hmset", -4, fWriteOOM, "@hash", cmdHSet),
		key("hsetnx", 4, fWriteOOM, "@hash", cmdHSetNX),
		key("hget", 3, fRead, "@hash", cmdHGet),
		key("hmget", -3, fRead, "@hash", cmdHMGet),
		key("hgetall", 2, fReadSlow, "@hash", cmdHGetAll),
		key("hkeys", 2, fReadSlow, "@hash", cmdHGetAll),
		key("hvals", 2, fReadSlow, "@hash", cmdHGetAll),
		key("hlen", 2, fRead, "@hash", cmdHLen),
		key("hexists", 3, fRead, "@hash", cmdHExists),
		key("hdel", -3, fWrite, "@hash", cmdHDel),
		key("hincrby", 4, fWriteOOM, "@hash", cmdHIncrBy),
	}
	commands = make(map[string]*command, len(list))
	for _, c := range list {
		c.write = slices.Contains(c.flags, "write")
		switch {
		case c.write:
			c.role = auth.RoleWrite
		case slices.Contains(c.flags, "readonly"):
			c.role = auth.RoleRead
		}
		c.noAuth = slices.Contains(c.flags, "no_auth")
		if commands[c.name] != nil {
			panic("redis protocol: command " + c.name + " listed twice")
		}
		commands[c.name] = c
	}
	commandList = slices.SortedFunc(func(yield func(*command) bool) {
		for _, c := range list {
			if !yield(c) {
				return
			}
		}
	}, func(a, b *command) int { return strings.Compare(a.name, b.name) })
}

// aclFor is a keyed command's ACL categories: read or write, its group, fast or slow.
func aclFor(flags []string, group string) []string {
	rw := "@read"
	if slices.Contains(flags, "write") {
		rw = "@write"
	}
	speed := "@slow"
	if slices.Contains(flags, "fast") {
		speed = "@fast"
	}
	if group == "@keyspace" {
		return []string{group, rw, speed}
	}
	return []string{rw, group, speed}
}

// forKeys calls fn with each key of a command, in order, as the table places them.
func forKeys(c *command, args [][]byte, fn func(k []byte)) {
	if c.first == 0 {
		return
	}
	last := c.last
	if last < 0 {
		last += len(args)
	}
	for i := c.first; i <= last && i < len(args); i += c.step {
		fn(args[i])
	}
}

// writeInfo writes a command's COMMAND INFO entry, as Redis 7 does: name, arity, flags,
// first key, last key, step, ACL categories, tips, key specifications, subcommands
// (the last three empty).
func (c *command) writeInfo(w *reply) {
	w.WriteArray(10)
	w.WriteBulkString(c.name)
	w.WriteInt(c.arity)
	w.WriteArray(len(c.flags))
	for _, f := range c.flags {
		w.WriteString(f)
	}
	w.WriteInt(c.first)
	w.WriteInt(c.last)
	w.WriteInt(c.step)
	w.WriteArray(len(c.acl))
	for _, a := range c.acl {
		w.WriteString(a)
	}
	w.WriteArray(0)
	w.WriteArray(0)
	w.WriteArray(0)
}
