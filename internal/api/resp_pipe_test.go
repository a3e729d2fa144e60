package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
)

// respCmd encodes a command as a RESP multibulk.
func respCmd(args ...string) []byte {
	b := fmt.Appendf(nil, "*%d\r\n", len(args))
	for _, a := range args {
		b = fmt.Appendf(b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b
}

// readReply reads one reply and renders it: +status, -error, :int, the bulk's bytes,
// (nil), or [a b c] for an array.
func readReply(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', '-', ':':
		return line, nil
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rd, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "(nil)", nil
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(rd); err != nil {
				return "", err
			}
		}
		return "[" + strings.Join(parts, " ") + "]", nil
	}
	return "", fmt.Errorf("not a reply: %q", line)
}

// pipeline sends every command in one write and reads as many replies.
func pipeline(t *testing.T, addr string, cmds [][]string) []string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return pipelineOn(t, conn, cmds)
}

func pipelineOn(t *testing.T, conn net.Conn, cmds [][]string) []string {
	t.Helper()
	var in []byte
	for _, c := range cmds {
		in = append(in, respCmd(c...)...)
	}
	if _, err := conn.Write(in); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	rd := bufio.NewReader(conn)
	out := make([]string, len(cmds))
	for i := range out {
		r, err := readReply(rd)
		if err != nil {
			t.Fatalf("reply %d of %d (to %q): %v; got %q", i+1, len(cmds), cmds[i], err, out[:i])
		}
		out[i] = r
	}
	return out
}

// checkReplies compares replies one by one.
func checkReplies(t *testing.T, cmds [][]string, got, want []string) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reply %d to %q = %q, want %q", i, cmds[i], got[i], want[i])
		}
	}
}

// TestRESPPipelineOrder: a pipeline mixing commands on many keys, on the same keys, and
// barriers is answered in order, and each command sees the effects of those before it on
// its keys.
func TestRESPPipelineOrder(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	var cmds [][]string
	var want []string
	add := func(reply string, args ...string) {
		cmds = append(cmds, args)
		want = append(want, reply)
	}
	for round := range 3 {
		for i := range 40 {
			k := fmt.Sprintf("k%d", i)
			v := fmt.Sprintf("v%d.%d", i, round)
			add("+OK", "SET", k, v)
			add(v, "GET", k)
			add(":"+strconv.Itoa(round*2+1), "INCR", "c"+k)
			add(":"+strconv.Itoa(round*2+2), "INCRBY", "c"+k, "1")
			if i%10 == 0 {
				add("+PONG", "PING")
				add("+OK", "SELECT", "0") // a barrier
				add("+OK", "QKV.QUORUM", "quorum", "quorum")
			}
		}
		add(":1", "SADD", "s", fmt.Sprint("m", round))
		add(strconv.Itoa(round*2+2), "GET", "ck0")
	}
	// Same key, read and write in turns: each sees exactly the writes before it.
	add("+OK", "SET", "x", "1")
	add("1", "GET", "x")
	add("+OK", "SET", "x", "2")
	add("[2 (nil) 6]", "MGET", "x", "nope", "ck1")
	add(":1", "DEL", "x")
	add("(nil)", "GET", "x")
	add(":0", "EXISTS", "x")
	add(":1", "INCR", "x")
	add("1", "GET", "x")
	add("[m0 m1 m2]", "SMEMBERS", "s")
	add(":1", "SREM", "s", "m1")
	add("[m0 m2]", "SMEMBERS", "s")
	add(":2", "DEL", "x", "s", "x")
	add(":0", "EXISTS", "x", "s")
	got := pipeline(t, rs[0].Addr(), cmds)
	checkReplies(t, cmds, got, want)

	// The same through go-redis's pipeline, through another node.
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[1].Addr(), MaxRetries: -1})
	defer c.Close()
	pipe := c.Pipeline()
	var gets []*redis.StringCmd
	for i := range 100 {
		pipe.Set(ctx, fmt.Sprint("p", i), fmt.Sprint("w", i), 0)
		gets = append(gets, pipe.Get(ctx, fmt.Sprint("p", i)))
	}
	incr := pipe.IncrBy(ctx, "ck0", 10)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, g := range gets {
		if g.Val() != fmt.Sprint("w", i) {
			t.Fatalf("GET p%d in a go-redis pipeline = %q", i, g.Val())
		}
	}
	if incr.Val() != 16 {
		t.Fatalf("INCRBY ck0 10 = %d, want 16", incr.Val())
	}
}

// TestRESPPipelineBigValues: commands over the pipelined size run alone, in their place.
func TestRESPPipelineBigValues(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	big := strings.Repeat("b", 100<<10)
	cmds := [][]string{
		{"SET", "small", "s"}, {"SET", "big", big}, {"GET", "big"}, {"GET", "small"},
		{"SET", "big", "x" + big}, {"INCR", "c"}, {"GET", "big"}, {"STRLEN", "big"},
	}
	want := []string{"+OK", "+OK", big, "s", "+OK", ":1", "x" + big,
		"-ERR unknown command 'STRLEN', with args beginning with: 'big' "}
	got := pipeline(t, rs[0].Addr(), cmds)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reply %d to %.20q = %.40q, want %.40q", i, cmds[i], got[i], want[i])
		}
	}
}

// TestRESPPipelineBadInput: commands that fail (unknown, wrong arity, bad arguments) are
// answered in place and the rest of the pipeline runs; input that breaks the framing
// is answered after every command before it, then the connection closes.
func TestRESPPipelineBadInput(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	cmds := [][]string{
		{"SET", "a", "1"},
		{"NOSUCH", "x"},
		{"GET"},
		{"INCRBY", "c", "notanumber"},
		{"GET", "a"},
		{"SET", "a", "2", "EX", "0"},
		{"SADD", "a", "m"},
		{"GET", "a"},
		{"PING"},
	}
	want := []string{
		"+OK",
		"-ERR unknown command 'NOSUCH', with args beginning with: 'x' ",
		"-ERR wrong number of arguments for 'get' command",
		"-ERR value is not an integer or out of range",
		"1",
		"-ERR invalid expire time in 'set' command",
		"-WRONGTYPE Operation against a key holding the wrong kind of value",
		"1",
		"+PONG",
	}
	got := pipeline(t, rs[0].Addr(), cmds)
	checkReplies(t, cmds, got, want)

	// Bad framing in the middle: the commands before it are answered, then the error.
	var in []byte
	for i := range 20 {
		in = append(in, respCmd("SET", fmt.Sprint("f", i), "v")...)
	}
	in = append(in, "*2\r\n$-5\r\n"...)
	in = append(in, respCmd("SET", "after", "v")...)
	out, closed := exchange(t, rs[0].Addr(), in, false)
	if want := strings.Repeat("+OK\r\n", 20) + "-ERR Protocol error"; !strings.HasPrefix(out, want) || !closed {
		t.Fatalf("pipeline with bad framing: %q (closed %v), want %q... and a close", clipString(out), closed, want)
	}
	if got := pipeline(t, rs[0].Addr(), [][]string{{"EXISTS", "f19", "after"}}); got[0] != ":1" {
		t.Fatalf("EXISTS f19 after = %s, want 1 (f19 written, after not)", got[0])
	}
}

// TestRESPPipelineQuit: QUIT answers after the commands before it; those after it are
// dropped.
func TestRESPPipelineQuit(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	in := append(respCmd("SET", "q1", "v"), respCmd("INCR", "q2")...)
	in = append(in, respCmd("QUIT")...)
	in = append(in, respCmd("SET", "q3", "v")...)
	out, closed := exchange(t, rs[0].Addr(), in, false)
	if out != "+OK\r\n:1\r\n+OK\r\n" || !closed {
		t.Fatalf("SET, INCR, QUIT, SET: %q (closed %v)", out, closed)
	}
	if got := pipeline(t, rs[0].Addr(), [][]string{{"EXISTS", "q1", "q2", "q3"}}); got[0] != ":2" {
		t.Fatalf("EXISTS q1 q2 q3 = %s, want 2", got[0])
	}
}

// TestRESPPipelineAuth: AUTH is a barrier: the commands after a failed AUTH are refused,
// those after a good one run, in the order sent.
func TestRESPPipelineAuth(t *testing.T) {
	_, _, r := startAuthNode(t)
	cmds := [][]string{
		{"SET", "k", "1"},
		{"AUTH", "writer", "wrong"},
		{"GET", "k"},
		{"AUTH", "writer", writerPW},
		{"QKV.QUORUM", "1", "1"}, // one node
		{"SET", "k", "2"},
		{"GET", "k"},
		{"AUTH", "nobody", "x"},
		{"GET", "k"},
	}
	want := []string{
		"-NOAUTH Authentication required.",
		"-WRONGPASS invalid username-password pair or user is disabled.",
		"-NOAUTH Authentication required.",
		"+OK",
		"+OK",
		"+OK",
		"2",
		"-WRONGPASS invalid username-password pair or user is disabled.",
		"2", // a failed AUTH leaves the connection logged in as it was
	}
	got := pipeline(t, r.Addr(), cmds)
	checkReplies(t, cmds, got, want)
}

// TestRESPPipelineCutOff: clients that send a long pipeline and disconnect before the
// replies (their commands waiting for replicas that do not answer) leave no goroutine.
func TestRESPPipelineCutOff(t *testing.T) {
	nodes, rs := startRESPCluster(t, 3)
	addr := rs[0].Addr()
	ping(t, addr)
	waitFor(t, 5*time.Second, "warm-up connections end", func() bool { return respGoroutines() == 0 })
	base := runtime.NumGoroutine() - parkedWorkers()
	if err := nodes[0].SetFaults(node.Faults{Drop: []string{"n2", "n3"}}); err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		in := respCmd("QKV.QUORUM", "one", "all")
		for i := range 300 {
			in = append(in, respCmd("SET", fmt.Sprintf("cut%d.%d", round, i%50), "v")...)
			in = append(in, respCmd("GET", fmt.Sprintf("cut%d.%d", round, i%70))...)
		}
		if _, err := conn.Write(in[:len(in)*(round+1)/6]); err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(conn)
		if r, err := readReply(rd); err != nil || r != "+OK" {
			t.Fatalf("QKV.QUORUM: %q %v", r, err)
		}
		// Cut off while the SETs wait for replicas that do not answer, or have been
		// refused already: either way nothing may be left behind. (TestPipelineCutOff in
		// resp_pipe_internal_test.go cuts off commands known to be running.)
		_ = conn.Close()
	}
	waitFor(t, 10*time.Second, "connection goroutines end", func() bool { return respGoroutines() == 0 })
	if err := nodes[0].SetFaults(node.Faults{}); err != nil {
		t.Fatal(err)
	}
	goroutinesBeyond(t, 10*time.Second, base, 5)
	if n := parkedWorkers(); n > api.MaxIdleWorkers {
		t.Errorf("%d workers parked, more than the bound %d", n, api.MaxIdleWorkers)
	}
	ping(t, addr)
}

// BenchmarkRESPPipeline: SETs and GETs of distinct keys through one connection of an
// in-process 3-node cluster, 16 commands a round trip, as redis-benchmark -P 16 sends
// them; and the same without pipelining.
func BenchmarkRESPPipeline(b *testing.B) {
	_, rs := startRESPCluster(b, 3)
	for _, depth := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("P%d", depth), func(b *testing.B) {
			conn, err := net.Dial("tcp", rs[0].Addr())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			rd := bufio.NewReader(conn)
			value := strings.Repeat("x", 100)
			var in []byte
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += depth {
				in = in[:0]
				n := min(depth, b.N-i)
				for j := range n {
					k := strconv.Itoa((i + j) % 10000)
					if (i+j)%2 == 0 {
						in = append(in, respCmd("SET", "bench:"+k, value)...)
					} else {
						in = append(in, respCmd("GET", "bench:"+k)...)
					}
				}
				if _, err := conn.Write(in); err != nil {
					b.Fatal(err)
				}
				for range n {
					r, err := readReply(rd)
					if err != nil {
						b.Fatal(err)
					}
					if strings.HasPrefix(r, "-") {
						b.Fatal(r)
					}
				}
			}
		})
	}
}
