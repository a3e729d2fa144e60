package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/node"
)

// Expiry over the Redis protocol: SET EX/PX/KEEPTTL, SETEX, PSETEX, EXPIRE, PEXPIRE, TTL,
// PTTL, PERSIST. A key's expiry is the core's (an absolute hybrid-clock time fixed at the
// write, core/expiry.go): EXPIRE and PERSIST rewrite the key's state with a new expiry (a
// touch), SET replaces it (KEEPTTL keeps it), INCR and SADD keep it.

// setArgs are SET's options.
type setArgs struct {
	exp     core.Expiry
	keepTTL bool
	cond    core.WriteCond
	get     bool // answer the old value (SET ... GET)
	past    bool // EXAT/PXAT at or before now: the key is deleted, as Redis does
}

// parseSet reads SET's options after the key and value; it answers the Redis error and
// reports false on a bad one. now is the time EXAT and PXAT count from.
func parseSet(w *reply, opts [][]byte, now time.Time) (setArgs, bool) {
	a := setArgs{exp: core.Expiry{Mode: core.ExpiryBucket}}
	timed := false
	for i := 0; i < len(opts); i++ {
		switch o := strings.ToUpper(string(opts[i])); o {
		case "EX", "PX", "EXAT", "PXAT":
			if timed || a.keepTTL || i+1 == len(opts) {
				w.WriteError("ERR syntax error")
				return a, false
			}
			i++
			var ttl time.Duration
			var ok bool
			if o == "EX" || o == "PX" {
				ttl, ok = parseTTL(w, opts[i], o == "PX", "set")
			} else {
				ttl, ok = parseAt(w, opts[i], o == "PXAT", now, "set")
				a.past = ok && ttl <= 0
			}
			if !ok {
				return a, false
			}
			a.exp, timed = core.Expiry{Mode: core.ExpiryTTL, TTL: max(ttl, time.Millisecond)}, true
		case "KEEPTTL":
			if timed || a.keepTTL {
				w.WriteError("ERR syntax error")
				return a, false
			}
			a.keepTTL, a.exp = true, core.Expiry{Mode: core.ExpiryAuto}
		case "NX", "XX":
			if a.cond != core.CondNone {
				w.WriteError("ERR syntax error")
				return a, false
			}
			a.cond = core.CondAbsent
			if o == "XX" {
				a.cond = core.CondPresent
			}
		case "GET":
			a.get = true
		default:
			w.WriteError("ERR syntax error")
			return a, false
		}
	}
	return a, true
}

// parseTTL reads a positive TTL in seconds (ms: milliseconds) as Redis does: not an integer
// answers Redis's integer error, zero, negative or too long its "invalid expire time".
func parseTTL(w *reply, b []byte, ms bool, cmd string) (time.Duration, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		w.WriteError(errNotInteger)
		return 0, false
	}
	unit := time.Second
	if ms {
		unit = time.Millisecond
	}
	if n <= 0 || n > int64(core.MaxTTL/unit) {
		w.WriteError(fmt.Sprintf("ERR invalid expire time in '%s' command", cmd))
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// parseAt reads a positive Unix time in seconds (ms: milliseconds) and answers the time
// left from now until it, zero or less when it has passed. Zero or negative times, and
// times over MaxTTL away, answer "invalid expire time".
func parseAt(w *reply, b []byte, ms bool, now time.Time, cmd string) (time.Duration, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		w.WriteError(errNotInteger)
		return 0, false
	}
	at, ok := unixMillis(n, ms)
	if !ok || n <= 0 || at-now.UnixMilli() > core.MaxTTL.Milliseconds() {
		w.WriteError(fmt.Sprintf("ERR invalid expire time in '%s' command", cmd))
		return 0, false
	}
	return time.Duration(at-now.UnixMilli()) * time.Millisecond, true
}

// unixMillis converts a Unix time in seconds (ms: milliseconds) to milliseconds; false
// when it would overflow.
func unixMillis(n int64, ms bool) (int64, bool) {
	if ms {
		return n, true
	}
	if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
		return 0, false
	}
	return n * 1000, true
}

// cmdSet assigns a register, replacing a key of any type, as Redis's SET does; its
// expiry is the one given (EX, PX, EXAT, PXAT), the key's (KEEPTTL), or the bucket's
// ttl_s. With NX or XX it answers nil when the condition did not hold; with GET the old
// value (nil when absent) instead of OK.
func cmdSet(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	a, ok := parseSet(w, args[3:], time.Now())
	if !ok || !r.checkValue(w, args[2]) || !checkKey(w, args[1]) {
		return
	}
	written, old, err := r.set(ctx, c, args[1], args[2], a)
	switch {
	case err != nil:
		r.fail(w, err)
	case a.get && old == nil:
		w.WriteNull()
	case a.get:
		w.WriteBulk(old)
	case written:
		w.WriteString("OK")
	default:
		w.WriteNull()
	}
}

// checkValue refuses a value over the limit.
func (r *RESP) checkValue(w *reply, v []byte) bool {
	if len(v) > r.MaxValueBytes {
		w.WriteError(fmt.Sprintf("ERR value too large: %d bytes, the limit is %d", len(v), r.MaxValueBytes))
		return false
	}
	return true
}

// set runs SET: written reports whether it wrote (a condition, NX or XX, may not hold),
// old is the key's value before (with a.get only; nil when absent). A condition is
// checked by the node at the redis bucket's R in the same request; with a connection R
// (QKV.QUORUM), with GET, or with a time already past, this front end reads the key at
// the connection's R first and decides, then writes (or deletes) with that read's
// context: the same check-then-write as the node's, not atomic either.
func (r *RESP) set(ctx context.Context, c *client, key, value []byte, a setArgs) (written bool, old []byte, err error) {
	v := string(value)
	o := c.writeOpts()
	o.Expiry = a.exp
	if !a.get && !a.past && (a.cond == core.CondNone || c.r == "") {
		o.Cond = a.cond
		err := r.n.ApplyCRDT(ctx, RedisBucket, string(key), crdt.Register, crdt.Op{Assign: &v}, true, o)
		if errors.Is(err, node.ErrPreconditionFailed) {
			return false, nil, nil
		}
		return err == nil, nil, err
	}
	res, err := r.readAny(ctx, c, key)
	if err != nil {
		return false, nil, err
	}
	if a.get && res.Found {
		v, null, ok := stringValue(res.State)
		if !ok {
			return false, nil, fmt.Errorf("%w: SET GET of a %s", node.ErrWrongType, res.State.Type())
		}
		if !null {
			old = v
		}
	}
	if (a.cond == core.CondAbsent && res.Found) || (a.cond == core.CondPresent && !res.Found) {
		return false, old, nil
	}
	if a.past {
		if res.Context == "" {
			return true, old, nil // nothing stored: nothing to delete
		}
		o.Context, o.Expiry = res.Context, core.Expiry{}
		_, err := r.n.Delete(ctx, RedisBucket, string(key), o)
		return err == nil, old, err
	}
	err = r.n.ApplyCRDT(ctx, RedisBucket, string(key), crdt.Register, crdt.Op{Assign: &v}, true, o)
	return err == nil, old, err
}

// cmdSetNX runs SETNX key value: SET key value NX answering 1 when set, 0 when not.
func cmdSetNX(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	if !checkKey(w, args[1]) || !r.checkValue(w, args[2]) {
		return
	}
	written, _, err := r.set(ctx, c, args[1], args[2], setArgs{exp: core.Expiry{Mode: core.ExpiryBucket}, cond: core.CondAbsent})
	switch {
	case err != nil:
		r.fail(w, err)
	case written:
		w.WriteInt(1)
	default:
		w.WriteInt(0)
	}
}

// cmdSetEx runs SETEX key seconds value and PSETEX key milliseconds value.
func cmdSetEx(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	ttl, ok := parseTTL(w, args[2], name == "psetex", name)
	if !ok || !checkKey(w, args[1]) {
		return
	}
	if !r.checkValue(w, args[3]) {
		return
	}
	if _, _, err := r.set(ctx, c, args[1], args[3], setArgs{exp: core.Expiry{Mode: core.ExpiryTTL, TTL: ttl}}); err != nil {
		r.fail(w, err)
		return
	}
	w.WriteString("OK")
}

// cmdExpire runs EXPIRE key seconds [NX|XX|GT|LT] and PEXPIRE: 1 when the key's expiry was
// set, 0 when the key is absent or the condition did not hold. A TTL of zero or less
// deletes the key, as in Redis.
func cmdExpire(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	n, err := strconv.ParseInt(string(args[2]), 10, 64)
	if err != nil {
		w.WriteError(errNotInteger)
		return
	}
	ms := strings.HasPrefix(name, "p")
	unit := time.Second
	if ms {
		unit = time.Millisecond
	}
	abs := strings.HasSuffix(name, "at")
	at, ok := unixMillis(n, ms)
	if (abs && !ok) || (!abs && n > int64(core.MaxTTL/unit)) {
		w.WriteError(fmt.Sprintf("ERR invalid expire time in '%s' command", name))
		return
	}
	var cond expireCond
	for _, o := range args[3:] {
		switch x := strings.ToUpper(string(o)); x {
		case "NX":
			cond.nx = true
		case "XX":
			cond.xx = true
		case "GT":
			cond.gt = true
		case "LT":
			cond.lt = true
		default:
			w.WriteError(fmt.Sprintf("ERR Unsupported option %s", clip(o)))
			return
		}
	}
	if cond.nx && (cond.xx || cond.gt || cond.lt) {
		w.WriteError("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if cond.gt && cond.lt {
		w.WriteError("ERR GT and LT options at the same time are not compatible")
		return
	}
	// Read first: the answer needs the key's current expiry, and the read (with its read
	// repair) brings the coordinator's copy up to date for the touch.
	res, ok := r.readKey(ctx, c, w, args[1])
	if !ok {
		return
	}
	if !res.Found {
		w.WriteInt(0)
		return
	}
	ttl := time.Duration(max(n, 0)) * unit // past: zero
	if abs {
		// An absolute time counts from the time the read judged expiry at.
		if at-res.At > core.MaxTTL.Milliseconds() {
			w.WriteError(fmt.Sprintf("ERR invalid expire time in '%s' command", name))
			return
		}
		ttl = time.Duration(at-res.At) * time.Millisecond
	}
	if !cond.allows(res, ttl) {
		w.WriteInt(0)
		return
	}
	if ttl <= 0 {
		o := c.writeOpts()
		o.Context = res.Context
		if _, err := r.n.Delete(ctx, RedisBucket, string(args[1]), o); err != nil {
			r.fail(w, err)
			return
		}
		w.WriteInt(1)
		return
	}
	r.touch(ctx, c, w, args[1], res.State.Type(), core.Expiry{Mode: core.ExpiryTTL, TTL: ttl})
}

// expireCond is EXPIRE's options: NX only without an expiry, XX only with one, GT only
// to a later expiry (no expiry counts as infinite), LT only to an earlier one.
type expireCond struct{ nx, xx, gt, lt bool }

func (c expireCond) allows(res node.CRDTResult, ttl time.Duration) bool {
	has := res.Expires != 0
	newAt := res.At + ttl.Milliseconds()
	return (!c.nx || !has) && (!c.xx || has) && (!c.gt || has && newAt > res.Expires) && (!c.lt || !has || newAt < res.Expires)
}

// touch rewrites a key's state with exp and answers 1, or 0 when the key is gone.
func (r *RESP) touch(ctx context.Context, c *client, w *reply, key []byte, typ crdt.Type, exp core.Expiry) {
	o := c.writeOpts()
	o.Expiry = exp
	err := r.n.TouchCRDT(ctx, RedisBucket, string(key), typ, o)
	switch {
	case errors.Is(err, node.ErrNotFound):
		w.WriteInt(0) // gone (expired or deleted) since the read
	case err != nil:
		r.fail(w, err)
	default:
		w.WriteInt(1)
	}
}

// cmdTTL answers TTL (seconds, rounded) and PTTL (milliseconds): -2 for an absent key, -1
// for one without an expiry.
func cmdTTL(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	res, ok := r.readKey(ctx, c, w, args[1])
	switch {
	case !ok:
	case !res.Found:
		w.WriteInt(-2)
	case res.Expires == 0:
		w.WriteInt(-1)
	default:
		ms := max(res.Expires-res.At, 0)
		if strings.ToLower(string(args[0])) == "pttl" {
			w.WriteInt64(ms)
		} else {
			w.WriteInt64((ms + 500) / 1000)
		}
	}
}

// cmdPersist removes a key's expiry: 1 when it had one, 0 otherwise.
func cmdPersist(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	res, ok := r.readKey(ctx, c, w, args[1])
	switch {
	case !ok:
	case !res.Found || res.Expires == 0:
		w.WriteInt(0)
	default:
		r.touch(ctx, c, w, args[1], res.State.Type(), core.Expiry{Mode: core.ExpiryNever})
	}
}
