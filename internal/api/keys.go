package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/node"
)

// Listing over HTTP: GET /v1/keys/{bucket}?prefix=&cursor=&limit=&r=&timeout=&encoding=.
// The cursor is the core's (a store key position) in base64url: opaque to clients,
// meaningful to every node.

// DefaultListLimit is a page's size when the request gives none.
const DefaultListLimit = 1000

// keysPage is the answer.
type keysPage struct {
	Keys []string `json:"keys"`
	Next string   `json:"next"`
}

// EncodeCursor is a listing cursor's HTTP form ("" for none).
func EncodeCursor(c []byte) string { return base64.RawURLEncoding.EncodeToString(c) }

// DecodeCursor parses a listing cursor's HTTP form; "" is the start.
func DecodeCursor(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < len(core.PrefixData)+4 || len(b) > len(core.PrefixData)+4+255+1+core.DefaultConfig().MaxKeyBytes+1 ||
		string(b[:len(core.PrefixData)]) != core.PrefixData {
		return nil, fmt.Errorf("%w: bad cursor %q: pass back a page's \"next\" as it is", node.ErrBadRequest, clipStr(s))
	}
	return b, nil
}

func clipStr(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func (s *server) listKeys(w http.ResponseWriter, r *http.Request) {
	q, err := params(r, "prefix", "cursor", "limit", "r", "timeout", "encoding")
	if err != nil {
		s.fail(w, err)
		return
	}
	o := node.ListOptions{Prefix: q.Get("prefix"), R: q.Get("r"), Limit: DefaultListLimit}
	if v := q.Get("limit"); q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > core.MaxListLimit {
			s.fail(w, fmt.Errorf("%w: limit %q: want 1..%d", node.ErrBadRequest, v, core.MaxListLimit))
			return
		}
		o.Limit = n
	}
	if o.Cursor, err = DecodeCursor(q.Get("cursor")); err != nil {
		s.fail(w, err)
		return
	}
	if o.Timeout, err = ParseTimeout(q.Get("timeout")); err != nil {
		s.fail(w, err)
		return
	}
	b64 := false
	switch q.Get("encoding") {
	case "", "utf8":
	case "base64":
		b64 = true
	default:
		s.fail(w, fmt.Errorf("%w: encoding %q: want utf8 or base64", node.ErrBadRequest, q.Get("encoding")))
		return
	}
	page, err := s.n.List(r.Context(), r.PathValue("bucket"), o)
	if err != nil {
		s.fail(w, err)
		return
	}
	out := keysPage{Keys: make([]string, 0, len(page.Keys)), Next: EncodeCursor(page.Next)}
	for _, k := range page.Keys {
		if b64 {
			out.Keys = append(out.Keys, base64.StdEncoding.EncodeToString([]byte(k.Key)))
			continue
		}
		if !utf8.ValidString(k.Key) {
			s.fail(w, fmt.Errorf("%w: key %q is not valid UTF-8: list with encoding=base64", node.ErrBadRequest, k.Key))
			return
		}
		out.Keys = append(out.Keys, k.Key)
	}
	writeJSON(w, http.StatusOK, out)
}
