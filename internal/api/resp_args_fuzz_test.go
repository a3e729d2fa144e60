package api

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
)

// FuzzParseSet: whatever SET's options, parseSet either accepts them, answering nothing,
// with an expiry the node accepts, or answers one Redis error line and accepts nothing.
func FuzzParseSet(f *testing.F) {
	for _, s := range []string{
		"", "NX", "XX GET", "EX 10", "PX 1", "EXAT 1", "PXAT 99999999999999", "KEEPTTL", "EX 10 NX GET",
		"EX", "EX 0", "EX -1", "EX x", "EX 10 PX 10", "NX XX", "KEEPTTL EX 1", "EXAT 0", "PXAT -5",
		"EXAT 9223372036854775807", "GET GET", "bogus", "ex 5 get nx",
	} {
		f.Add(s)
	}
	now := time.UnixMilli(1_700_000_000_000)
	f.Fuzz(func(t *testing.T, in string) {
		var opts [][]byte
		for _, o := range strings.Fields(in) {
			opts = append(opts, []byte(o))
		}
		var w reply
		a, ok := parseSet(&w, opts, now)
		if ok {
			if len(w.b) != 0 {
				t.Fatalf("accepted %q but answered %q", in, w.b)
			}
			if err := a.exp.Validate(); err != nil {
				t.Fatalf("accepted %q with an expiry the node refuses: %v", in, err)
			}
			if a.keepTTL && a.exp.Mode != core.ExpiryAuto {
				t.Fatalf("KEEPTTL with expiry %+v", a.exp)
			}
			return
		}
		if !bytes.HasPrefix(w.b, []byte("-ERR ")) || bytes.Count(w.b, []byte("\r\n")) != 1 {
			t.Fatalf("refused %q with %q, want one -ERR line", in, w.b)
		}
	})
}
