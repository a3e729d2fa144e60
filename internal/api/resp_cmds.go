package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/quorum"
)

// redisCompatVersion is the Redis version whose RESP2 command forms this front end
// follows; HELLO and INFO report it as redis_version for clients that look.
const redisCompatVersion = "7.0.0"

// Replies shared by several commands.
const (
	errWrongType  = "WRONGTYPE Operation against a key holding the wrong kind of value"
	errNotInteger = "ERR value is not an integer or out of range"
)

// check looks a command up, checks that the connection may run it and its arity; nil
// when it has answered the refusal.
func (r *RESP) check(c *client, w *reply, args [][]byte) *command {
	name := strings.ToLower(string(args[0]))
	cmd := commands[name]
	if !r.admit(c, w, name, cmd) {
		return nil
	}
	if cmd == nil {
		w.WriteError(unknownCommand(args))
		return nil
	}
	if (cmd.arity > 0 && len(args) != cmd.arity) || (cmd.arity < 0 && len(args) < -cmd.arity) {
		w.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", name))
		return nil
	}
	return cmd
}

// unknownCommand is Redis's message: the name and the first arguments, quoted, cut at
// 128 bytes each.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ERR unknown command '%s', with args beginning with: ", clip(args[0]))
	for _, a := range args[1:] {
		if b.Len() > 256 {
			break
		}
		fmt.Fprintf(&b, "'%s' ", clip(a))
	}
	return b.String()
}

// lower is a command name or option in lower case.
func lower(b []byte) string { return strings.ToLower(string(b)) }

func clip(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

// fail answers a node error in Redis's form.
func (r *RESP) fail(w *reply, err error) {
	var qe *quorum.QuorumError
	switch {
	case errors.As(err, &qe):
		w.WriteError("QUORUM " + qe.Error())
	case errors.Is(err, node.ErrWrongType):
		w.WriteError(errWrongType)
	case errors.Is(err, context.Canceled):
		w.WriteError("ERR request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		w.WriteError("ERR request timed out")
	default:
		code := node.ErrorCode(err)
		if code == "internal" {
			r.log.Error("redis protocol: command failed", "err", err)
		}
		w.WriteError("ERR " + err.Error())
	}
}

func (c *client) readOpts() node.ReadOptions   { return node.ReadOptions{R: c.r} }
func (c *client) writeOpts() node.WriteOptions { return node.WriteOptions{W: c.w} }

// checkKey refuses keys the node cannot carry: internode messages hold keys as UTF-8.
func checkKey(w *reply, keys ...[]byte) bool {
	for _, k := range keys {
		if !utf8.Valid(k) {
			w.WriteError("ERR keys must be valid UTF-8")
			return false
		}
	}
	return true
}

// emptyCollection reports whether s is an empty set or hash: no key, as in Redis.
func emptyCollection(s crdt.State) bool {
	return (s.Type() == crdt.Set || s.Type() == crdt.Map) && s.Len() == 0
}

// read reads a key as a CRDT. An empty set or hash is no key, as in Redis.
func (r *RESP) read(ctx context.Context, c *client, key []byte) (node.CRDTResult, error) {
	return r.readAs(ctx, c, key, true)
}

// readState is read without the causal context (Context ""), for a command that answers
// what it read and writes nothing back.
func (r *RESP) readState(ctx context.Context, c *client, key []byte) (node.CRDTResult, error) {
	return r.readAs(ctx, c, key, false)
}

func (r *RESP) readAs(ctx context.Context, c *client, key []byte, withContext bool) (node.CRDTResult, error) {
	res, err := readCRDT(ctx, r.n, RedisBucket, string(key), c.readOpts(), withContext)
	if err == nil && res.Found && emptyCollection(res.State) {
		res.Found = false
	}
	return res, err
}

// readKey checks key and reads it, with its causal context; false when an error has been
// answered.
func (r *RESP) readKey(ctx context.Context, c *client, w *reply, key []byte) (node.CRDTResult, bool) {
	return r.readKeyAs(ctx, c, w, key, true)
}

// readKeyState is readKey without the causal context (readState).
func (r *RESP) readKeyState(ctx context.Context, c *client, w *reply, key []byte) (node.CRDTResult, bool) {
	return r.readKeyAs(ctx, c, w, key, false)
}

func (r *RESP) readKeyAs(ctx context.Context, c *client, w *reply, key []byte, withContext bool) (node.CRDTResult, bool) {
	if !checkKey(w, key) {
		return node.CRDTResult{}, false
	}
	res, err := r.readAs(ctx, c, key, withContext)
	if err != nil {
		r.fail(w, err)
		return res, false
	}
	return res, true
}

// readAny is read, except that a key holding plain values (written over HTTP before such
// writes were refused) is found as an unset register, with the context of a plain read,
// so that DEL and SET can supersede it.
func (r *RESP) readAny(ctx context.Context, c *client, key []byte) (node.CRDTResult, error) {
	res, err := r.read(ctx, c, key)
	if errors.Is(err, node.ErrWrongType) {
		var plain node.ReadResult
		if plain, err = r.n.Get(ctx, RedisBucket, string(key), c.readOpts()); err == nil {
			res = node.CRDTResult{Found: plain.Found, Context: plain.Context, State: crdt.New(crdt.Register)}
		}
	}
	return res, err
}

// stringValue is a key's value as GET answers it: a register's bytes, a counter's decimal
// value; ok is false for another type.
func stringValue(s crdt.State) (v []byte, null, ok bool) {
	switch s.Type() {
	case crdt.Register:
		x, isStr := s.Value().(string)
		return []byte(x), !isStr, true
	case crdt.Counter:
		return strconv.AppendInt(nil, s.Value().(int64), 10), false, true
	}
	return nil, false, false
}

func cmdPing(r *RESP, _ context.Context, _ *client, w *reply, args [][]byte) {
	switch len(args) {
	case 1:
		w.WriteString("PONG")
	case 2:
		w.WriteBulk(args[1])
	default:
		w.WriteError("ERR wrong number of arguments for 'ping' command")
	}
}

func cmdEcho(r *RESP, _ context.Context, _ *client, w *reply, args [][]byte) {
	w.WriteBulk(args[1])
}

func cmdQuit(r *RESP, _ context.Context, _ *client, w *reply, _ [][]byte) {
	w.WriteString("OK")
	w.quit = true // the connection closes once the reply is written
}

func cmdSelect(r *RESP, _ context.Context, _ *client, w *reply, args [][]byte) {
	db, err := strconv.Atoi(string(args[1]))
	switch {
	case err != nil:
		w.WriteError(errNotInteger)
	case db != 0:
		w.WriteError("ERR DB index is out of range (quorumkv has one database, 0)")
	default:
		w.WriteString("OK")
	}
}

// cmdHello answers HELLO [protover [AUTH user pass] [SETNAME name]]. Only RESP2 is
// spoken: HELLO 3 answers NOPROTO, on which clients (go-redis) carry on in RESP2.
func cmdHello(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	if len(args) > 1 {
		v, err := strconv.Atoi(string(args[1]))
		if err != nil {
			w.WriteError("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 {
			w.WriteError("NOPROTO this server speaks RESP2 only")
			return
		}
	}
	if r.RequireAuth && c.user == "" && !hasAuthOption(args) {
		w.WriteError("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	name := c.name
	for i := 2; i < len(args); i++ {
		switch strings.ToLower(string(args[i])) {
		case "auth":
			if i+2 >= len(args) {
				w.WriteError("ERR syntax error in HELLO option 'auth'")
				return
			}
			if !helloAuth(r, ctx, c, w, args[i+1], args[i+2]) {
				return
			}
			i += 2
		case "setname":
			if i+1 >= len(args) {
				w.WriteError("ERR syntax error in HELLO option 'setname'")
				return
			}
			i++
			if !validClientName(args[i]) {
				w.WriteError("ERR Client names cannot contain spaces, newlines or special characters.")
				return
			}
			name = string(args[i])
		default:
			w.WriteError(fmt.Sprintf("ERR syntax error in HELLO option '%s'", clip(args[i])))
			return
		}
	}
	c.name = name
	w.WriteArray(14)
	w.WriteBulkString("server")
	w.WriteBulkString("quorumkv")
	w.WriteBulkString("version")
	w.WriteBulkString(redisCompatVersion)
	w.WriteBulkString("proto")
	w.WriteInt(2)
	w.WriteBulkString("id")
	w.WriteInt64(c.id)
	w.WriteBulkString("mode")
	w.WriteBulkString("standalone")
	w.WriteBulkString("role")
	w.WriteBulkString("master")
	w.WriteBulkString("modules")
	w.WriteArray(0)
}

func validClientName(b []byte) bool {
	for _, c := range b {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

func cmdClient(r *RESP, _ context.Context, c *client, w *reply, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	switch {
	case sub == "setname" && len(args) == 3:
		if !validClientName(args[2]) {
			w.WriteError("ERR Client names cannot contain spaces, newlines or special characters.")
			return
		}
		c.name = string(args[2])
		w.WriteString("OK")
	case sub == "getname" && len(args) == 2:
		if c.name == "" {
			w.WriteNull()
			return
		}
		w.WriteBulkString(c.name)
	case sub == "id" && len(args) == 2:
		w.WriteInt64(c.id)
	case sub == "setinfo" && len(args) == 4:
		w.WriteString("OK") // library name and version: accepted, not kept
	case (sub == "info" || sub == "list") && len(args) == 2:
		// LIST shows this connection only: connections are not shared across clients.
		w.WriteBulkString(fmt.Sprintf("id=%d addr=%s name=%s db=0 resp=2\n", c.id, c.addr, c.name))
	case sub == "setname" || sub == "getname" || sub == "id" || sub == "setinfo" || sub == "info" || sub == "list":
		w.WriteError(fmt.Sprintf("ERR wrong number of arguments for 'client|%s' command", sub))
	default:
		w.WriteError(fmt.Sprintf("ERR unsupported CLIENT subcommand '%s' (supported: SETNAME GETNAME ID SETINFO INFO LIST)", clip(args[1])))
	}
}

// cmdCommand answers COMMAND (every command's entry, as Redis 7 gives it), COMMAND COUNT,
// COMMAND INFO name... (nil for a name that is not a command), COMMAND LIST and COMMAND
// DOCS (empty: redis-cli 7 asks for it at start and does without).
func cmdCommand(r *RESP, _ context.Context, _ *client, w *reply, args [][]byte) {
	if len(args) == 1 {
		w.WriteArray(len(commandList))
		for _, c := range commandList {
			c.writeInfo(w)
		}
		return
	}
	switch sub := strings.ToLower(string(args[1])); sub {
	case "docs":
		w.WriteArray(0)
	case "count":
		if len(args) != 2 {
			w.WriteError("ERR wrong number of arguments for 'command|count' command")
			return
		}
		w.WriteInt(len(commandList))
	case "info":
		w.WriteArray(len(args) - 2)
		for _, a := range args[2:] {
			if c := commands[strings.ToLower(string(a))]; c != nil {
				c.writeInfo(w)
			} else {
				w.WriteNull()
			}
		}
	case "list":
		w.WriteArray(len(commandList))
		for _, c := range commandList {
			w.WriteBulkString(c.name)
		}
	default:
		w.WriteError(fmt.Sprintf("ERR unknown subcommand '%s'. Try COMMAND HELP.", clip(args[1])))
	}
}

// cmdConfig answers CONFIG GET for the two parameters redis-benchmark asks about at
// start (save, appendonly); other parameters are unknown, CONFIG SET is refused.
func cmdConfig(r *RESP, _ context.Context, _ *client, w *reply, args [][]byte) {
	if strings.ToLower(string(args[1])) != "get" {
		w.WriteError(fmt.Sprintf("ERR unsupported CONFIG subcommand '%s' (supported: GET)", clip(args[1])))
		return
	}
	known := map[string]string{"save": "", "appendonly": "no"}
	var out []string
	for _, a := range args[2:] {
		if v, ok := known[strings.ToLower(string(a))]; ok {
			out = append(out, strings.ToLower(string(a)), v)
		}
	}
	w.WriteArray(len(out))
	for _, s := range out {
		w.WriteBulkString(s)
	}
}

func cmdGet(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	res, ok := r.readKeyState(ctx, c, w, args[1])
	if !ok {
		return
	}
	if !res.Found {
		w.WriteNull()
		return
	}
	if v, ok := res.State.Register(); ok { // the common case, without stringValue's copy
		w.WriteBulkString(v)
		return
	}
	v, null, ok := stringValue(res.State)
	switch {
	case !ok:
		w.WriteError(errWrongType)
	case null:
		w.WriteNull()
	default:
		w.WriteBulk(v)
	}
}

// cmdDel deletes each key found, with the context of the read that found it, so the
// delete supersedes what was read (a concurrent write it did not see survives).
func cmdDel(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	if !checkKey(w, args[1:]...) {
		return
	}
	n := 0
	for _, k := range args[1:] {
		res, err := r.readAny(ctx, c, k)
		if err != nil {
			r.fail(w, err)
			return
		}
		if !res.Found && res.State.Type() == "" {
			continue // absent or already deleted (an empty set is deleted, not counted)
		}
		o := c.writeOpts()
		o.Context = res.Context
		if _, err := r.n.Delete(ctx, RedisBucket, string(k), o); err != nil {
			r.fail(w, err)
			return
		}
		if res.Found {
			n++
		}
	}
	w.WriteInt(n)
}

func cmdExists(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	if !checkKey(w, args[1:]...) {
		return
	}
	n := 0
	for _, k := range args[1:] {
		res, err := r.readState(ctx, c, k)
		if err != nil {
			r.fail(w, err)
			return
		}
		if res.Found {
			n++
		}
	}
	w.WriteInt(n)
}

// cmdMGet answers each key's GET value; a key of another type is nil, as in Redis.
func cmdMGet(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	if !checkKey(w, args[1:]...) {
		return
	}
	vals := make([][]byte, len(args)-1)
	for i, k := range args[1:] {
		res, err := r.readState(ctx, c, k)
		if err != nil {
			r.fail(w, err)
			return
		}
		if !res.Found {
			continue
		}
		if v, null, ok := stringValue(res.State); ok && !null {
			vals[i] = v
		}
	}
	w.WriteArray(len(vals))
	for _, v := range vals {
		if v == nil {
			w.WriteNull()
		} else {
			w.WriteBulk(v)
		}
	}
}

// cmdIncr runs INCR, DECR, INCRBY and DECRBY on a counter and answers its value after
// the increment in the coordinator's view. A register is not a counter, even if it
// holds a decimal integer: WRONGTYPE.
func cmdIncr(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	by := int64(1)
	if len(args) == 3 {
		v, err := strconv.ParseInt(string(args[2]), 10, 64)
		if err != nil {
			w.WriteError(errNotInteger)
			return
		}
		by = v
	}
	if strings.HasPrefix(name, "decr") {
		if by == -1<<63 {
			w.WriteError("ERR decrement would overflow")
			return
		}
		by = -by
	}
	if !checkKey(w, args[1]) {
		return
	}
	_, after, err := r.n.UpdateCRDT(ctx, RedisBucket, string(args[1]), crdt.Counter, crdt.Op{Increment: &by}, false, c.writeOpts())
	if err != nil {
		r.fail(w, err)
		return
	}
	w.WriteInt64(after.Value().(int64))
}

// members is a command's set members, sorted and distinct: any bytes (a forwarded
// operation carries them as bytes).
func members(args [][]byte) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		out = append(out, string(a))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// cmdSAdd adds members; it answers how many were not in the coordinator's state before.
func cmdSAdd(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	ms := members(args[2:])
	if !checkKey(w, args[1]) {
		return
	}
	before, _, err := r.n.UpdateCRDT(ctx, RedisBucket, string(args[1]), crdt.Set, crdt.Op{Add: ms}, false, c.writeOpts())
	if err != nil {
		r.fail(w, err)
		return
	}
	n := 0
	for _, m := range ms {
		if !before.Contains(m) {
			n++
		}
	}
	w.WriteInt(n)
}

// cmdSRem removes members as the coordinator observed them (a concurrent add it had not
// seen wins); it answers how many were in the coordinator's state.
func cmdSRem(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	ms := members(args[2:])
	if !checkKey(w, args[1]) {
		return
	}
	before, _, err := r.n.UpdateCRDT(ctx, RedisBucket, string(args[1]), crdt.Set, crdt.Op{Remove: ms}, false, c.writeOpts())
	if err != nil {
		r.fail(w, err)
		return
	}
	n := 0
	for _, m := range ms {
		if before.Contains(m) {
			n++
		}
	}
	w.WriteInt(n)
}

// readSet reads a set; an absent key is the empty set; false when it answered an error.
func (r *RESP) readSet(ctx context.Context, c *client, w *reply, key []byte) (crdt.State, bool) {
	res, ok := r.readKeyState(ctx, c, w, key)
	if !ok {
		return crdt.State{}, false
	}
	if !res.Found {
		return crdt.New(crdt.Set), true
	}
	if res.State.Type() != crdt.Set {
		w.WriteError(errWrongType)
		return crdt.State{}, false
	}
	return res.State, true
}

func cmdSMembers(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	s, ok := r.readSet(ctx, c, w, args[1])
	if !ok {
		return
	}
	ms := s.Value().([]string) // sorted
	w.WriteArray(len(ms))
	for _, m := range ms {
		w.WriteBulkString(m)
	}
}

func cmdSIsMember(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	s, ok := r.readSet(ctx, c, w, args[1])
	if !ok {
		return
	}
	if s.Contains(string(args[2])) {
		w.WriteInt(1)
	} else {
		w.WriteInt(0)
	}
}

func cmdSCard(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	s, ok := r.readSet(ctx, c, w, args[1])
	if !ok {
		return
	}
	w.WriteInt(s.Len())
}

// cmdQuorum is QKV.QUORUM <r> <w>: this connection's R and W (1..N, one, quorum, all),
// checked against the redis bucket's N now (and by the node on every request).
func cmdQuorum(r *RESP, _ context.Context, c *client, w *reply, args [][]byte) {
	n := r.n.Bucket(RedisBucket).N
	rv, wv := strings.ToLower(string(args[1])), strings.ToLower(string(args[2]))
	if _, err := quorum.Parse(rv, n, 1, 0); err != nil || rv == "" {
		w.WriteError(fmt.Sprintf("ERR r %q: want 1..%d, one, quorum or all", clip(args[1]), n))
		return
	}
	if _, err := quorum.Parse(wv, n, 1, 0); err != nil || wv == "" {
		w.WriteError(fmt.Sprintf("ERR w %q: want 1..%d, one, quorum or all", clip(args[2]), n))
		return
	}
	c.r, c.w = rv, wv
	w.WriteString("OK")
}

// cmdInfo answers INFO [section ...]: server, clients, cluster, replication, keyspace.
func cmdInfo(r *RESP, _ context.Context, c *client, w *reply, args [][]byte) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(string(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["default"] || want["everything"]
	var b bytes.Buffer
	section := func(name string, lines func()) {
		if !all && !want[strings.ToLower(name)] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + name + "\r\n")
		lines()
	}
	field := func(k string, v any) { fmt.Fprintf(&b, "%s:%v\r\n", k, v) }
	ci := r.n.Cluster()
	section("Server", func() {
		field("redis_version", redisCompatVersion)
		field("redis_mode", "standalone")
		field("quorumkv_version", buildVersion())
		field("node_id", r.n.ID())
		field("actor", r.n.Actor())
		field("process_id", os.Getpid())
		field("tcp_port", portOf(r.Addr()))
		field("uptime_in_seconds", int64(time.Since(r.start).Seconds()))
	})
	section("Clients", func() {
		field("connected_clients", r.clients.Load())
		field("maxclients", r.MaxClients)
	})
	section("Cluster", func() {
		field("cluster_enabled", 0) // not the Redis Cluster protocol: any node serves any key
		field("ring_size", ci.Partitions)
		field("members", len(ci.Nodes))
		owned := 0
		for i, m := range ci.Nodes {
			if m.ID == ci.Node {
				owned = m.Partitions
			}
			field(fmt.Sprintf("member%d", i), fmt.Sprintf("id=%s,state=%s,zone=%s,partitions=%d,resp=%s,http=%s",
				m.ID, m.State, m.Zone, m.Partitions, m.RESP, m.HTTP))
		}
		field("partitions_owned", owned)
	})
	section("Replication", func() {
		p := r.n.Bucket(RedisBucket)
		field("role", "master") // leaderless: every node takes reads and writes
		field("bucket", RedisBucket)
		field("n", p.N)
		field("r", p.R)
		field("w", p.W)
		field("connection_r", orDefault(c.r, "bucket"))
		field("connection_w", orDefault(c.w, "bucket"))
		field("conflict", p.Conflict)
		field("read_repair", p.ReadRepair)
	})
	section("Keyspace", func() {
		// The number of keys is not known without a scan of every replica.
		field("bucket", RedisBucket)
	})
	w.WriteBulk(b.Bytes())
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func portOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// buildVersion is the main module's version from the build information.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
