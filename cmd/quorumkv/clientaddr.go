package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport"
)

// normalizeAddr accepts what a user types for --addr: one address or several separated by
// commas (the client fails over from a node it cannot reach to the next); a bare port
// ("8081") or ":8081" means that port on 127.0.0.1; anything else (host:port, a URL) is
// left as it is.
func normalizeAddr(s string) string {
	if strings.Contains(s, ",") {
		parts := strings.Split(s, ",")
		for i, p := range parts {
			parts[i] = normalizeAddr(p)
		}
		return strings.Join(parts, ",")
	}
	s = strings.TrimSpace(s)
	port := strings.TrimPrefix(s, ":")
	if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 65536 && port == strconv.Itoa(n) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return s
}

// maxRequestTimeout is the largest server-side timeout the HTTP API takes (60 s).
const maxRequestTimeout = 60 * time.Second

// timeoutFlag is --timeout: a Go duration ("2s", "1500ms") or a bare number of
// milliseconds ("1500"), the unit of the HTTP API's timeout= parameter.
type timeoutFlag struct{ d *time.Duration }

func (f timeoutFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return "0"
	}
	return f.d.String()
}

func (f timeoutFlag) Set(s string) error {
	d, err := parseTimeout(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// parseTimeout reads a --timeout value: a duration with a unit, or a whole number of
// milliseconds; 0 means the server's default; at most 60s.
func parseTimeout(s string) (time.Duration, error) {
	var d time.Duration
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 || ms > maxRequestTimeout.Milliseconds() {
			return 0, fmt.Errorf("%d ms is outside 0..%d", ms, maxRequestTimeout.Milliseconds())
		}
		d = time.Duration(ms) * time.Millisecond
	} else {
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("want a duration with a unit (2s, 1500ms) or a number of milliseconds (1500), got %q", s)
		}
	}
	if d < 0 || d > maxRequestTimeout {
		return 0, fmt.Errorf("%v is outside 0..%v", d, maxRequestTimeout)
	}
	if d > 0 && d < time.Millisecond {
		return 0, fmt.Errorf("%v is under the API's resolution of 1ms", d)
	}
	return d, nil
}

// probeTimeout bounds the look at a port that did not answer HTTP.
const probeTimeout = 2 * time.Second

// notHTTP explains a transport error from a port that does not speak HTTP: it looks at
// what listens there (a node's Redis protocol port answers PING with +PONG; its
// internode RPC port speaks HTTP/2, starting with a SETTINGS frame; its gossip port
// closes the connection without a word). It returns "" when err is not such an error
// or the port looks like HTTP after all.
func notHTTP(err error) string {
	var ue *url.Error
	var se setupError
	if !errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &se) {
		return ""
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return ""
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil || u.Host == "" {
		return ""
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[bool]string{true: "443", false: "80"}[u.Scheme == "https"])
	}
	what := probePort(host)
	if what == "" {
		return ""
	}
	return fmt.Sprintf("%s is not a node's HTTP API: it looks like %s. Client commands talk to a node's HTTP port: "+
		"'quorumkv dev' prints them in its HTTP column, 'quorumkv status --addr HTTP-ADDR' lists every node's", host, what)
}

// probePort says what listens at addr, or "" for HTTP or when it cannot tell.
func probePort(addr string) string {
	conn, err := net.DialTimeout("tcp", addr, probeTimeout)
	if err != nil {
		return ""
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return ""
	}
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(conn, buf, 5)
	b := buf[:n]
	switch {
	case bytes.HasPrefix(b, []byte("+PONG")), len(b) > 0 && (b[0] == '-' || b[0] == '+'):
		return "a Redis protocol (RESP) port (use redis-cli there)"
	case bytes.Contains(b, []byte(transport.HelloMagic)): // the internode handshake's refusal
		return "a node's internode RPC port"
	case bytes.HasPrefix(b, []byte("HTTP/")):
		return ""
	case n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		return "a port that closes connections without answering, such as a node's gossip port"
	case n > 0:
		return fmt.Sprintf("a port that answers %q", clipArg(b))
	}
	return ""
}

// parseLiteral is parse for commands whose positional arguments may start with '-' (a
// value "-5", a set member "-x"): an argument starting with a single '-' that names no
// flag of fs and comes where literal says a positional argument may be literal (by its
// index among the positional arguments) is taken as that argument. "--" still ends the
// flags; an argument starting with "--", or naming a flag, is always a flag: "put b k --
// --w" writes the value "--w".
func parseLiteral(fs *flag.FlagSet, args []string, literal func(index int) bool) (pos []string, code int, ok bool) {
	start := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		// "--name" always reads as a flag (a mistyped one is reported); "-x" that names no
		// flag may be a literal.
		if len(a) < 2 || a[0] != '-' || strings.HasPrefix(a, "--") || definedFlag(fs, a) {
			continue
		}
		if i > start && takesValue(fs, args[i-1]) {
			continue // the value of the flag before it
		}
		p, code, ok := parse(fs, args[start:i])
		if !ok {
			return nil, code, false
		}
		pos = append(pos, p...)
		if !literal(len(pos)) {
			// Not where a literal may be: let parse report the unknown flag.
			p, code, ok := parse(fs, args[i:])
			if !ok {
				return nil, code, false
			}
			return append(pos, p...), 0, true
		}
		pos = append(pos, a)
		start = i + 1
	}
	p, code, ok := parse(fs, args[start:])
	if !ok {
		return nil, code, false
	}
	return append(pos, p...), 0, true
}

// flagName is the name in "-name", "--name" or "--name=value".
func flagName(a string) string {
	name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	name, _, _ = strings.Cut(name, "=")
	return name
}

func definedFlag(fs *flag.FlagSet, a string) bool {
	name := flagName(a)
	return name == "h" || name == "help" || fs.Lookup(name) != nil
}

// takesValue reports whether a is a defined flag that takes the next argument as its value.
func takesValue(fs *flag.FlagSet, a string) bool {
	if len(a) < 2 || a[0] != '-' || strings.Contains(a, "=") {
		return false
	}
	f := fs.Lookup(flagName(a))
	if f == nil {
		return false
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}
