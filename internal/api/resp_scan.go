package api

import (
	"context"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/node"
)

// Key listing over the Redis protocol: SCAN, KEYS, DBSIZE, each a coverage query of the
// redis bucket (core/list.go). SCAN's cursor is a 32-bit hash position in decimal (Redis
// clients parse cursors as integers): a page ends between keys of different hash prefixes,
// so it goes on exactly where the last one stopped, on any node. They list with the values
// (ListOptions.Values): a key's folded CRDT state tells its type, and an empty set or hash
// is no key.

// scanType is the type SCAN's TYPE and TYPE report for a key's state.
func scanType(s crdt.State) string {
	switch s.Type() {
	case crdt.Register, crdt.Counter:
		return "string"
	case crdt.Set:
		return "set"
	case crdt.Map:
		return "hash"
	}
	return "none"
}

// liveState folds a listed key's object; ok is false for a key Redis would not show (an
// empty set, plain values).
func liveState(k core.ListedKey) (crdt.State, bool) {
	s, found, err := crdt.Fold(k.Object)
	if err != nil || !found || emptyCollection(s) {
		return s, false
	}
	return s, true
}

// cmdScan runs SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
func cmdScan(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	cur, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil || cur > 1<<32-1 {
		w.WriteError("ERR invalid cursor")
		return
	}
	count := 10
	var match []byte
	typ := ""
	for i := 2; i < len(args); i++ {
		opt := strings.ToUpper(string(args[i]))
		if i+1 == len(args) {
			w.WriteError("ERR syntax error")
			return
		}
		i++
		switch opt {
		case "MATCH":
			match = args[i]
		case "COUNT":
			n, err := strconv.Atoi(string(args[i]))
			switch {
			case err != nil:
				w.WriteError(errNotInteger)
				return
			case n < 1:
				w.WriteError("ERR syntax error")
				return
			}
			count = min(n, core.MaxListLimit)
		case "TYPE":
			typ = strings.ToLower(string(args[i]))
		default:
			w.WriteError("ERR syntax error")
			return
		}
	}
	o := node.ListOptions{Limit: count, HashAligned: true, R: c.r, Values: true}
	if cur != 0 {
		o.Cursor = core.ListCursorAt(uint32(cur))
	}
	page, err := r.n.List(ctx, RedisBucket, o)
	if err != nil {
		r.fail(w, err)
		return
	}
	var next uint64
	if page.Next != nil {
		h, ok := core.ListCursorHash(page.Next)
		if !ok || h == 0 {
			r.fail(w, fmt.Errorf("listing returned a cursor %x not at a hash boundary", page.Next))
			return
		}
		next = uint64(h)
	}
	var out []string
	for _, k := range page.Keys {
		s, ok := liveState(k)
		if !ok || (match != nil && !globMatch(match, []byte(k.Key))) || (typ != "" && scanType(s) != typ) {
			continue
		}
		out = append(out, k.Key)
	}
	w.WriteArray(2)
	w.WriteBulkString(strconv.FormatUint(next, 10))
	w.WriteArray(len(out))
	for _, k := range out {
		w.WriteBulkString(k)
	}
}

// cmdKeys runs KEYS pattern: a full listing of the redis bucket (expensive: it reads every
// partition of the cluster; SCAN spreads the same work over many calls).
func cmdKeys(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	var out []string
	o := node.ListOptions{Limit: 1000, R: c.r, Values: true}
	for {
		page, err := r.n.List(ctx, RedisBucket, o)
		if err != nil {
			r.fail(w, err)
			return
		}
		for _, k := range page.Keys {
			if _, ok := liveState(k); ok && globMatch(args[1], []byte(k.Key)) {
				out = append(out, k.Key)
			}
		}
		if page.Next == nil {
			break
		}
		o.Cursor = page.Next
	}
	w.WriteArray(len(out))
	for _, k := range out {
		w.WriteBulkString(k)
	}
}

// dbsizeSample is how many keys DBSIZE counts before it extrapolates.
const dbsizeSample = 2000

// cmdDBSize answers an estimate of the number of keys: it lists the redis bucket partition
// after partition until it has seen dbsizeSample keys (or every partition, and then the
// count is exact as of the listing), and scales the count by the share of partitions
// read. Keys are spread evenly over partitions by their hash, so the estimate is within a
// few percent.
func cmdDBSize(r *RESP, ctx context.Context, c *client, w *reply, _ [][]byte) {
	q := r.n.Partitions()
	o := node.ListOptions{Limit: 1000, R: c.r, Values: true}
	count := 0
	for {
		page, err := r.n.List(ctx, RedisBucket, o)
		if err != nil {
			r.fail(w, err)
			return
		}
		for _, k := range page.Keys {
			if _, ok := liveState(k); ok {
				count++
			}
		}
		if page.Next == nil {
			w.WriteInt(count)
			return
		}
		o.Cursor = page.Next
		if count >= dbsizeSample {
			h, _ := core.ListCursorHash(page.Next[:len(core.PrefixData)+4])
			done := int(uint64(h) >> (32 - uint(bits.TrailingZeros(uint(q)))))
			if done > 0 {
				w.WriteInt64(int64(count) * int64(q) / int64(done))
				return
			}
		}
	}
}

// globMatch is Redis's glob-style pattern match (stringmatchlen): * any run, ? any byte,
// [abc], [^a-z], [a-z] classes, \x a literal x.
func globMatch(pat, s []byte) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case '*':
			for len(pat) > 1 && pat[1] == '*' {
				pat = pat[1:]
			}
			if len(pat) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(pat[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
			pat = pat[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			pat = pat[1:]
			not := len(pat) > 0 && pat[0] == '^'
			if not {
				pat = pat[1:]
			}
			matched := false
			for len(pat) > 0 && pat[0] != ']' {
				switch {
				case pat[0] == '\\' && len(pat) >= 2:
					if pat[1] == s[0] {
						matched = true
					}
					pat = pat[2:]
				case len(pat) >= 3 && pat[1] == '-' && pat[2] != ']':
					lo, hi := pat[0], pat[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					if s[0] >= lo && s[0] <= hi {
						matched = true
					}
					pat = pat[3:]
				default:
					if pat[0] == s[0] {
						matched = true
					}
					pat = pat[1:]
				}
			}
			if len(pat) > 0 {
				pat = pat[1:] // the ']'
			}
			if matched == not {
				return false
			}
			s = s[1:]
		case '\\':
			if len(pat) >= 2 {
				pat = pat[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || pat[0] != s[0] {
				return false
			}
			s = s[1:]
			pat = pat[1:]
		}
	}
	return len(s) == 0
}
