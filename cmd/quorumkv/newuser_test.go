package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// serveRaw accepts connections on a loopback port chosen at run time and answers each with
// answer(first line read); it returns the address.
func serveRaw(t *testing.T, answer func(line string) []byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				if b := answer(line); b != nil {
					_, _ = c.Write(b)
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestWrongPortSaysWhatItIs(t *testing.T) {
	resp := serveRaw(t, func(line string) []byte {
		if strings.HasPrefix(line, "PING") {
			return []byte("+PONG\r\n")
		}
		return []byte("-ERR unknown command 'GET', with args beginning with: '/v1/kv/b/k' \r\n")
	})
	// A real internode listener, which answers a stranger with a refusal naming the port.
	rpc := internodePort(t)
	silent := serveRaw(t, func(string) []byte { return nil })
	for _, tc := range []struct{ addr, want string }{
		{resp, "looks like a Redis protocol (RESP) port"},
		{rpc, "internode RPC port"},
		{silent, "closes connections without answering"},
	} {
		e, out, errb := testEnv("", nil)
		if code := e.run([]string{"get", "b", "k", "--addr", tc.addr}); code != 1 {
			t.Fatalf("get --addr %s: exit %d, stderr %q", tc.addr, code, errb)
		}
		s := errb.String()
		if !strings.Contains(s, tc.addr+" is not a node's HTTP API") || !strings.Contains(s, tc.want) ||
			!strings.Contains(s, "HTTP port") || strings.Count(s, "\n") != 1 || out.String() != "" {
			t.Errorf("get --addr %s: stderr %q, want %q", tc.addr, s, tc.want)
		}
	}
}

func TestBarePortAddr(t *testing.T) {
	addr, seen := fakeAPI(t)
	_, port, _ := net.SplitHostPort(addr)
	for _, a := range []string{port, ":" + port} {
		e, out, errb := testEnv("", nil)
		if code := e.run([]string{"get", "b", "one", "--addr", a}); code != 0 || out.String() != "hello" {
			t.Fatalf("get --addr %s: exit %d, stdout %q, stderr %q", a, code, out, errb)
		}
	}
	if len(*seen) != 2 {
		t.Fatalf("requests %q", *seen)
	}
	for _, tc := range []struct{ in, want string }{
		{"8081", "127.0.0.1:8081"}, {":8081", "127.0.0.1:8081"}, {"h:1", "h:1"}, {"http://h:1", "http://h:1"},
		{"99999", "99999"}, {"0", "0"}, {"localhost", "localhost"},
	} {
		if got := normalizeAddr(tc.in); got != tc.want {
			t.Errorf("normalizeAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTimeoutForms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"1500", 1500 * time.Millisecond, ""},
		{"1", time.Millisecond, ""},
		{"0", 0, ""},
		{"2s", 2 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"60000", time.Minute, ""},
		{"60001", 0, "outside 0..60000"},
		{"2m", 0, "2m0s is outside 0..1m0s"},
		{"-1", 0, "outside"},
		{"1x", 0, "want a duration with a unit (2s, 1500ms) or a number of milliseconds (1500)"},
		{"10us", 0, "under the API's resolution"},
	} {
		got, err := parseTimeout(tc.in)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parseTimeout(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
		}
	}
	e, _, errb := testEnv("", nil)
	if code := e.run([]string{"get", "b", "k", "--timeout", "1x"}); code != 2 || !strings.Contains(errb.String(), "invalid value \"1x\" for flag -timeout: want a duration") {
		t.Fatalf("exit %d, stderr %q", code, errb)
	}
}

func TestBucketUnreachableFails(t *testing.T) {
	for _, args := range [][]string{{"bucket", "b"}, {"bucket", "b", "--set", `{"n":2}`}} {
		e, out, errb := testEnv("", nil)
		if code := e.run(append(args, "--addr", "127.0.0.1:1")); code != 1 || out.String() != "" ||
			!strings.Contains(errb.String(), "connection refused") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errb)
		}
	}
}

func TestParseLiteral(t *testing.T) {
	e, _, _ := testEnv("", nil)
	for _, tc := range []struct {
		args []string
		pos  string
		ok   bool
	}{
		{[]string{"b", "k", "-5"}, "b,k,-5", true},
		{[]string{"b", "k", "-5", "--w", "2"}, "b,k,-5", true},
		{[]string{"--w", "-2", "b", "k", "v"}, "b,k,v", true}, // a flag's value, left to the flag
		{[]string{"b", "-k", "v"}, "", false},                 // only the value may start with '-'
		{[]string{"b", "k", "-w"}, "", false},                 // names a flag: needs a value
		{[]string{"b", "k", "--", "-w"}, "b,k,-w", true},
	} {
		fs := e.flags(lookup("put"), "")
		fs.String("w", "", "")
		pos, _, ok := parseLiteral(fs, tc.args, func(i int) bool { return i == 2 })
		if ok != tc.ok || (ok && strings.Join(pos, ",") != tc.pos) {
			t.Errorf("parseLiteral(%q) = %q, %v; want %q, %v", tc.args, pos, ok, tc.pos, tc.ok)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		e, out, errb := testEnv("", nil)
		if code := e.run(args); code != 0 || !strings.HasPrefix(out.String(), "quorumkv ") || !strings.Contains(out.String(), " go1.") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errb)
		}
	}
	var b strings.Builder
	printVersion(&b, func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-27T09:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}, true
	})
	if got, want := b.String(), "quorumkv v0.3.0 (0123456789ab, modified, 2026-11-27T09:00:00Z) go1.26.8\n"; got != want {
		t.Errorf("printVersion = %q, want %q", got, want)
	}
}

func TestMeterPlainLinesOffTerminal(t *testing.T) {
	var b strings.Builder
	m := newMeter(&b, "repair") // a strings.Builder is not a terminal
	now := time.Unix(0, 0)
	m.now = func() time.Time { return now }
	for i := 0; i <= 100; i++ {
		m.update(float64(i)/100, fmt.Sprintf("%d/100 exchanges", i))
		now = now.Add(100 * time.Millisecond) // 10 s in all: a line every 2 s
	}
	m.finish()
	s := b.String()
	want := "repair:   0% 0/100 exchanges\nrepair:  20% 20/100 exchanges\nrepair:  40% 40/100 exchanges\n" +
		"repair:  60% 60/100 exchanges\nrepair:  80% 80/100 exchanges\nrepair: 100% 100/100 exchanges\n"
	if s != want {
		t.Fatalf("plain meter wrote\n%q\nwant\n%q", s, want)
	}
	// On a terminal: frames on one line, ended by a newline.
	b.Reset()
	m = newMeter(&b, "repair")
	m.tty, m.every = true, ttyEvery
	m.update(0.5, "1/2 exchanges")
	m.update(1, "2/2 exchanges")
	m.finish()
	if s := b.String(); !strings.HasPrefix(s, "\rrepair [###############               ] 1/2 exchanges\r") || !strings.HasSuffix(s, "2/2 exchanges\n") {
		t.Fatalf("terminal meter wrote %q", s)
	}
}

// TestRepairProgressToAFile: "repair 2>log" gets plain lines, not "\r" frames.
func TestRepairProgressToAFile(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		for i := 1; i <= 50; i++ {
			fmt.Fprintf(w, `{"progress":{"done":%d,"total":50}}`+"\n", i)
		}
		fmt.Fprintln(w, `{"summary":{"exchanges":50,"partitions_compared":25}}`)
	}))
	defer srv.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e, out, _ := testEnv("", nil)
	e.stderr = f
	if code := e.run([]string{"repair", "--addr", srv.URL}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	log, _ := os.ReadFile(f.Name())
	if strings.Contains(string(log), "\r") || !strings.HasSuffix(string(log), "repair: 100% 50/50 exchanges\n") || strings.Count(string(log), "\n") > 3 {
		t.Fatalf("stderr to a file: %q", log)
	}
	if !strings.HasPrefix(out.String(), "compared 25 partitions in 50 exchanges") {
		t.Fatalf("stdout %q", out)
	}
}

func TestDescribeProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if got := parentPID(os.Getpid()); got != os.Getppid() {
		t.Fatalf("parentPID = %d, want %d", got, os.Getppid())
	}
	if got, want := describeProcess(os.Getpid()), fmt.Sprintf("pid %d (%s ", os.Getpid(), filepath.Base(os.Args[0])); !strings.HasPrefix(got, want) {
		t.Fatalf("describeProcess = %q, want it to start %q", got, want)
	}
	if got := describeProcess(1 << 30); got != fmt.Sprintf("pid %d", 1<<30) {
		t.Fatalf("describeProcess of no process = %q", got)
	}
}

// refuseAll is an internode handler that answers nothing (no request reaches it here).
type refuseAll struct{}

func (refuseAll) Handle(context.Context, string, *pb.Envelope) *pb.Envelope { return nil }

// internodePort is the address of a real internode listener (a node's --rpc port).
func internodePort(t *testing.T) string {
	t.Helper()
	cfg := transport.DefaultConfig()
	cfg.NodeID, cfg.ListenAddr = "n1", "127.0.0.1:0"
	cfg.Handler = refuseAll{}
	cfg.Resolve = func(string) (string, bool) { return "", false }
	tr, err := transport.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr.Addr()
}
