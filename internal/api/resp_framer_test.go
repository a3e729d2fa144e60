package api

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tidwall/redcon"
)

// framedReader passes a reader's bytes through a framer, chunk by chunk, as guardConn
// does.
type framedReader struct {
	r     io.Reader
	f     *framer
	chunk int
	cur   []byte
	err   error
}

func (fr *framedReader) Read(p []byte) (int, error) {
	for len(fr.cur) == 0 {
		if fr.err != nil {
			return 0, fr.err
		}
		b := make([]byte, fr.chunk)
		n, err := fr.r.Read(b)
		if n == 0 && err != nil {
			return 0, err
		}
		k, ferr := fr.f.scan(b[:n])
		fr.cur = b[:k]
		if ferr != nil {
			fr.err = ferr
		}
	}
	n := copy(p, fr.cur)
	fr.cur = fr.cur[n:]
	return n, nil
}

func TestFramer(t *testing.T) {
	for _, tc := range []struct {
		in      string
		maxCmd  int
		wantOK  int    // bytes accepted
		wantErr string // "" when all are
	}{
		{"*1\r\n$4\r\nPING\r\n", 100, 14, ""},
		{"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", 100, 28, ""},
		{"PING\r\nGET a\r\n", 100, 13, ""},
		{"*2\r\n$-5\r\n", 100, 8, "invalid bulk length"},
		{"*0\r\n", 100, 3, "invalid multibulk length"},
		{"*-1\r\n", 100, 4, "invalid multibulk length"},
		{"*99999999999999999999\r\n", 100, 13, "invalid multibulk length"},
		{"*70000\r\n", 1 << 30, 7, "invalid multibulk length"},
		{"*1\r\n$50\r\n", 40, 8, "invalid bulk length"},
		{"*2\r\n$10\r\n0123456789\r\n$10\r\n", 30, 25, "would be over the limit"},
		{"*5\r\n$1\r\na\r\n$1\r\na\r\n", 12, 12, "command over the limit"},
		{"*1\r\n+PING\r\n", 100, 4, "expected '$'"},
		{"*1\r\n$4x\r\n", 100, 8, "invalid bulk length"},
		{"*1\r\n$4\n", 100, 6, "invalid bulk length"},
		{"*1\r\n$4\r\nPI", 100, 10, ""},
		{strings.Repeat("a", 70<<10), 1 << 20, 64 << 10, "too big inline request"},
	} {
		f := newFramer(tc.maxCmd)
		n, err := f.scan([]byte(tc.in))
		if n != tc.wantOK || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("scan(%.40q) = %d, %v; want %d, %q", tc.in, n, err, tc.wantOK, tc.wantErr)
		}
		// Byte by byte, the same.
		f = newFramer(tc.maxCmd)
		m := 0
		var err2 error
		for i := 0; i < len(tc.in) && err2 == nil; i++ {
			var k int
			k, err2 = f.scan([]byte{tc.in[i]})
			m += k
		}
		if m != n || (err2 == nil) != (err == nil) {
			t.Errorf("byte by byte scan(%.40q) = %d, %v; want %d, %v", tc.in, m, err2, n, err)
		}
	}
}

// FuzzRESPFramer feeds arbitrary bytes through the framer into redcon's reader: no
// panic, and no command redcon returns is over the limits.
func FuzzRESPFramer(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n", "*2\r\n$-5\r\n", "GET a\r\n\"unbalanced\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n",
		"*1\r\n$99999999999\r\n", "\x00\xff*$\r\n\n", "*2\r\n$1\r\na\r\n$0\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const maxCmd = 256
		fr := &framedReader{r: bytes.NewReader(in), f: newFramer(maxCmd), chunk: int(chunk%64) + 1}
		rd := redcon.NewReader(fr)
		for {
			cmds, err := rd.ReadCommands()
			for _, c := range cmds {
				if len(c.Raw) > maxCmd+maxInlineBytes || len(c.Args) > maxArgs || len(c.Args) == 0 {
					t.Fatalf("command over the limits: %d bytes, %d args", len(c.Raw), len(c.Args))
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) || fr.err != nil || strings.Contains(err.Error(), "Protocol error") {
					return
				}
				t.Fatalf("reader: %v", err)
			}
		}
	})
}
