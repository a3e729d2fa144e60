package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/quorumkv/quorumkv/internal/crdt"
)

// Hashes over the Redis protocol: HSET, HSETNX, HMSET, HGET, HMGET, HDEL, HGETALL, HKEYS,
// HVALS, HLEN, HEXISTS, HINCRBY. A hash is a map CRDT whose fields are LWW registers
// (HSET) or counters (HINCRBY). HSET replaces a field whatever its type (a counter field
// becomes a register, FieldOp.Replace); HINCRBY on a register field answers Redis's "hash
// value is not an integer". Should a field hold both (an HSET and a concurrent HINCRBY
// through different nodes, neither having seen the other), the register's value is the
// field's: what HSET wrote wins, as the later command would in Redis most of the time.

const errHashNotInteger = "ERR hash value is not an integer"

// hashField is one field of a hash as Redis shows it.
type hashField struct {
	name  string
	value []byte
}

// hashFields lists a hash's fields by name, each with its value: a register's bytes, or a
// counter's decimal value when the name has no register. Fields of other types (not
// written by Redis commands) are left out.
func hashFields(s crdt.State) []hashField {
	var out []hashField
	for _, f := range s.Fields() {
		var v []byte
		switch f.Type {
		case crdt.Register:
			x, _ := f.State.Value().(string)
			v = []byte(x)
		case crdt.Counter:
			v = strconv.AppendInt(nil, f.State.Value().(int64), 10)
		default:
			continue
		}
		if n := len(out); n > 0 && out[n-1].name == f.Name {
			if f.Type == crdt.Register { // sorted by type: counter before register
				out[n-1].value = v
			}
			continue
		}
		out = append(out, hashField{name: f.Name, value: v})
	}
	return out
}

// hashGet is one field's value; nil when absent.
func hashGet(fs []hashField, name string) []byte {
	for _, f := range fs {
		if f.name == name {
			return f.value
		}
	}
	return nil
}

// readHash reads a hash; an absent key is the empty hash; false when it answered an error.
func (r *RESP) readHash(ctx context.Context, c *client, w *reply, key []byte) ([]hashField, bool) {
	res, ok := r.readKeyState(ctx, c, w, key)
	if !ok {
		return nil, false
	}
	if !res.Found {
		return nil, true
	}
	if res.State.Type() != crdt.Map {
		w.WriteError(errWrongType)
		return nil, false
	}
	return hashFields(res.State), true
}

// hset assigns fields (pairs of name and value, checked) and answers how many were not
// in the coordinator's state before.
func (r *RESP) hset(ctx context.Context, c *client, key []byte, pairs [][]byte) (int, error) {
	op := crdt.Op{Update: make(map[string]crdt.FieldOp, len(pairs)/2)}
	for i := 0; i < len(pairs); i += 2 {
		v := string(pairs[i+1])
		op.Update[string(pairs[i])] = crdt.FieldOp{Type: crdt.Register, Replace: true, Op: crdt.Op{Assign: &v}}
	}
	before, _, err := r.n.UpdateCRDT(ctx, RedisBucket, string(key), crdt.Map, op, false, c.writeOpts())
	if err != nil {
		return 0, err
	}
	had := hashFields(before)
	n := 0
	for name := range op.Update {
		if hashGet(had, name) == nil {
			n++
		}
	}
	return n, nil
}

// checkPairs checks HSET's field-value pairs: an even count, values within the limit.
func (r *RESP) checkPairs(w *reply, name string, pairs [][]byte) bool {
	if len(pairs) == 0 || len(pairs)%2 != 0 {
		w.WriteError(fmt.Sprintf("ERR wrong number of arguments for '%s' command", name))
		return false
	}
	for i := 0; i < len(pairs); i += 2 {
		if len(pairs[i+1]) > r.MaxValueBytes {
			w.WriteError(fmt.Sprintf("ERR value too large: %d bytes, the limit is %d", len(pairs[i+1]), r.MaxValueBytes))
			return false
		}
	}
	return true
}

// cmdHSet runs HSET key field value [field value ...]: the number of fields added; and
// HMSET, the same answering OK.
func cmdHSet(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	name := lower(args[0])
	if !r.checkPairs(w, name, args[2:]) || !checkKey(w, args[1]) {
		return
	}
	n, err := r.hset(ctx, c, args[1], args[2:])
	switch {
	case err != nil:
		r.fail(w, err)
	case name == "hmset":
		w.WriteString("OK")
	default:
		w.WriteInt(n)
	}
}

// cmdHSetNX runs HSETNX key field value: 1 when the field was absent and is set, else 0.
// Like SET NX it is a check at the read quorum, then a write: not atomic.
func cmdHSetNX(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	if !r.checkPairs(w, "hsetnx", args[2:]) {
		return
	}
	fs, ok := r.readHash(ctx, c, w, args[1])
	if !ok {
		return
	}
	if hashGet(fs, string(args[2])) != nil {
		w.WriteInt(0)
		return
	}
	if _, err := r.hset(ctx, c, args[1], args[2:]); err != nil {
		r.fail(w, err)
		return
	}
	w.WriteInt(1)
}

func cmdHGet(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	fs, ok := r.readHash(ctx, c, w, args[1])
	if !ok {
		return
	}
	if v := hashGet(fs, string(args[2])); v != nil {
		w.WriteBulk(v)
	} else {
		w.WriteNull()
	}
}

func cmdHMGet(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	fs, ok := r.readHash(ctx, c, w, args[1])
	if !ok {
		return
	}
	w.WriteArray(len(args) - 2)
	for _, f := range args[2:] {
		if v := hashGet(fs, string(f)); v != nil {
			w.WriteBulk(v)
		} else {
			w.WriteNull()
		}
	}
}

// cmdHGetAll answers HGETALL (names and values), HKEYS and HVALS, in name order.
func cmdHGetAll(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	fs, ok := r.readHash(ctx, c, w, args[1])
	if !ok {
		return
	}
	switch lower(args[0]) {
	case "hgetall":
		w.WriteArray(2 * len(fs))
		for _, f := range fs {
			w.WriteBulkString(f.name)
			w.WriteBulk(f.value)
		}
	case "hkeys":
		w.WriteArray(len(fs))
		for _, f := range fs {
			w.WriteBulkString(f.name)
		}
	default:
		w.WriteArray(len(fs))
		for _, f := range fs {
			w.WriteBulk(f.value)
		}
	}
}

func cmdHLen(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	fs, ok := r.readHash(ctx, c, w, args[1])
	if ok {
		w.WriteInt(len(fs))
	}
}

func cmdHExists(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	fs, ok := r.readHash(ctx, c, w, args[1])
	if !ok {
		return
	}
	if hashGet(fs, string(args[2])) != nil {
		w.WriteInt(1)
	} else {
		w.WriteInt(0)
	}
}

// cmdHDel removes fields as the coordinator observed them (a concurrent HSET it had not
// seen survives); it answers how many were in its state.
func cmdHDel(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	if !checkKey(w, args[1]) {
		return
	}
	names := make([]string, 0, len(args)-2)
	for _, f := range args[2:] {
		names = append(names, string(f))
	}
	before, _, err := r.n.UpdateCRDT(ctx, RedisBucket, string(args[1]), crdt.Map, crdt.Op{Remove: names}, false, c.writeOpts())
	if err != nil {
		r.fail(w, err)
		return
	}
	had := hashFields(before)
	n := 0
	seen := map[string]bool{}
	for _, f := range names {
		if !seen[f] && hashGet(had, f) != nil {
			n++
		}
		seen[f] = true
	}
	w.WriteInt(n)
}

// cmdHIncrBy increments a counter field and answers its value after the increment, in
// the coordinator's view (as INCRBY). A register field answers "hash value is not an
// integer" and changes nothing.
func cmdHIncrBy(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	by, err := strconv.ParseInt(string(args[3]), 10, 64)
	if err != nil {
		w.WriteError(errNotInteger)
		return
	}
	if !checkKey(w, args[1]) {
		return
	}
	field := string(args[2])
	op := crdt.Op{Update: map[string]crdt.FieldOp{field: {Type: crdt.Counter, Op: crdt.Op{Increment: &by}}}}
	_, after, err := r.n.UpdateCRDT(ctx, RedisBucket, string(args[1]), crdt.Map, op, false, c.writeOpts())
	switch {
	case errors.Is(err, crdt.ErrTypeMismatch): // a register field (the cause survives forwarding)
		w.WriteError(errHashNotInteger)
		return
	case err != nil:
		r.fail(w, err)
		return
	}
	for _, f := range after.Fields() {
		if f.Name == field && f.Type == crdt.Counter {
			w.WriteInt64(f.State.Value().(int64))
			return
		}
	}
	r.fail(w, fmt.Errorf("the coordinator's state lacks the field %q it incremented", field))
}
