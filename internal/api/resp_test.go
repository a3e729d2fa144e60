package api_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/node"
)

// startRESPCluster starts an in-process cluster (as startCluster, for a test or a fuzz
// target) with the Redis front end on every node.
func startRESPCluster(t testing.TB, size int) ([]*node.Node, []*api.RESP) {
	t.Helper()
	nodes := startCluster(t, size)
	rs := make([]*api.RESP, len(nodes))
	for i, n := range nodes {
		r := api.NewRESP(n, nil)
		if err := r.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // before the node closes: cleanups run last registered first
			if err := r.Close(); err != nil {
				t.Errorf("close RESP: %v", err)
			}
		})
		rs[i] = r
	}
	return nodes, rs
}

// needTool skips when a command-line tool is missing, except under CI=true, where the
// test fails.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing (install Debian's %s); CI=true requires it", name, pkg)
		}
		t.Skipf("%s is missing (install Debian's %s)", name, pkg)
	}
	return p
}

func TestRESPGoRedis(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1})
	defer c.Close()
	other := redis.NewClient(&redis.Options{Addr: rs[2].Addr(), MaxRetries: -1})
	defer other.Close()

	must := func(what string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
	wantErr := func(what string, err error, prefix string) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), prefix) {
			t.Fatalf("%s: err %v, want %q...", what, err, prefix)
		}
	}

	pong, err := c.Ping(ctx).Result()
	must("PING", pong, "PONG", err)
	echo, err := c.Echo(ctx, "hi").Result()
	must("ECHO", echo, "hi", err)
	ok, err := c.Do(ctx, "SELECT", "0").Result()
	must("SELECT 0", ok, "OK", err)
	wantErr("SELECT 1", c.Do(ctx, "SELECT", "1").Err(), "ERR DB index is out of range")

	// strings
	must("SET", c.Set(ctx, "s", "v1", 0).Val(), "OK", c.Set(ctx, "s", "v1", 0).Err())
	v, err := other.Get(ctx, "s").Result()
	must("GET via another node", v, "v1", err)
	if err := c.Get(ctx, "absent").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET absent: %v, want nil", err)
	}
	if err := c.Do(ctx, "SET", "sg", "x", "GET").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("SET GET of an absent key: %v, want nil", err)
	}
	bin := "a\x00b\r\n\xff"
	c.Set(ctx, "bin", bin, 0)
	v, err = c.Get(ctx, "bin").Result()
	must("binary value", strconv.Quote(v), strconv.Quote(bin), err)

	// counters
	n, err := c.Incr(ctx, "ctr").Result()
	must("INCR", n, 1, err)
	n, err = c.IncrBy(ctx, "ctr", 41).Result()
	must("INCRBY", n, 42, err)
	// Updates answer the coordinator's view, which may lack acknowledged updates that
	// reached the other replicas only: update through one node, read through another.
	n, err = c.Decr(ctx, "ctr").Result()
	must("DECR", n, 41, err)
	n, err = c.DecrBy(ctx, "ctr", 50).Result()
	must("DECRBY", n, -9, err)
	v, err = other.Get(ctx, "ctr").Result()
	must("GET counter", v, "-9", err)
	wantErr("INCRBY x", c.Do(ctx, "INCRBY", "ctr", "x").Err(), "ERR value is not an integer or out of range")

	// sets
	n, err = c.SAdd(ctx, "set", "a", "b", "c", "a").Result()
	must("SADD", n, 3, err)
	n, err = c.SAdd(ctx, "set", "c", "d").Result()
	must("SADD again", n, 1, err)
	ms, err := other.SMembers(ctx, "set").Result()
	must("SMEMBERS", ms, []string{"a", "b", "c", "d"}, err)
	is, err := c.SIsMember(ctx, "set", "b").Result()
	must("SISMEMBER b", is, true, err)
	is, err = c.SIsMember(ctx, "set", "z").Result()
	must("SISMEMBER z", is, false, err)
	n, err = c.SCard(ctx, "set").Result()
	must("SCARD", n, 4, err)
	n, err = c.SRem(ctx, "set", "a", "z").Result()
	must("SREM", n, 1, err)
	ms, err = c.SMembers(ctx, "set").Result()
	must("SMEMBERS after SREM", ms, []string{"b", "c", "d"}, err)
	ms, err = c.SMembers(ctx, "noset").Result()
	must("SMEMBERS absent", ms, []string{}, err)

	// wrong types
	wantErr("GET set", c.Get(ctx, "set").Err(), "WRONGTYPE")
	wantErr("INCR string", c.Incr(ctx, "s").Err(), "WRONGTYPE")
	c.Set(ctx, "num", "10", 0)
	wantErr("INCR a decimal string", c.Incr(ctx, "num").Err(), "WRONGTYPE")
	wantErr("SADD counter", c.SAdd(ctx, "ctr", "x").Err(), "WRONGTYPE")
	wantErr("SMEMBERS string", c.SMembers(ctx, "s").Err(), "WRONGTYPE")
	wantErr("SREM counter", c.SRem(ctx, "ctr", "x").Err(), "WRONGTYPE")
	if err := c.SAdd(ctx, "set2", "m").Err(); err != nil {
		t.Fatal(err)
	}
	must("SET over a set", c.Set(ctx, "set2", "x", 0).Val(), "OK", nil)
	v, err = c.Get(ctx, "set2").Result()
	must("SET replaces a set", v, "x", err)

	// DEL / EXISTS / MGET
	vals, err := c.MGet(ctx, "s", "absent", "ctr", "set").Result()
	must("MGET", vals, []any{"v1", nil, "-9", nil}, err)
	n, err = c.Exists(ctx, "s", "ctr", "set", "absent", "s").Result()
	must("EXISTS", n, 4, err)
	n, err = c.Del(ctx, "s", "ctr", "absent").Result()
	must("DEL", n, 2, err)
	n, err = other.Exists(ctx, "s", "ctr").Result()
	must("EXISTS after DEL", n, 0, err)
	if err := other.Get(ctx, "s").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET deleted: %v, want nil", err)
	}
	n, err = c.Del(ctx, "s").Result()
	must("DEL again", n, 0, err)
	n, err = c.Incr(ctx, "ctr").Result()
	must("INCR a deleted counter", n, 1, err)
	// an empty set does not exist, as in Redis
	c.SRem(ctx, "set", "b", "c", "d")
	n, err = c.Exists(ctx, "set").Result()
	must("EXISTS empty set", n, 0, err)

	// QKV.QUORUM
	must("QKV.QUORUM", c.Do(ctx, "QKV.QUORUM", "one", "all").Val(), "OK", c.Do(ctx, "QKV.QUORUM", "one", "all").Err())
	must("QKV.QUORUM numbers", c.Do(ctx, "qkv.quorum", "2", "3").Val(), "OK", nil)
	wantErr("QKV.QUORUM 4", c.Do(ctx, "QKV.QUORUM", "4", "1").Err(), "ERR r")
	wantErr("QKV.QUORUM 0", c.Do(ctx, "QKV.QUORUM", "1", "0").Err(), "ERR w")
	wantErr("QKV.QUORUM arity", c.Do(ctx, "QKV.QUORUM", "1").Err(), "ERR wrong number of arguments for 'qkv.quorum' command")

	// INFO, CLIENT, COMMAND, HELLO
	info, err := c.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Server", "node_id:n1", "# Cluster", "members:3", "ring_size:256", "partitions_owned:",
		"member0:id=n1,state=alive", "# Replication", "n:3", "r:quorum", "w:quorum", "# Keyspace"} {
		if !strings.Contains(info, want) {
			t.Fatalf("INFO lacks %q:\n%s", want, info)
		}
	}
	info, _ = c.Info(ctx, "replication").Result()
	if strings.Contains(info, "# Server") || !strings.Contains(info, "# Replication") {
		t.Fatalf("INFO replication:\n%s", info)
	}
	must("CLIENT SETNAME", c.Do(ctx, "CLIENT", "SETNAME", "me").Val(), "OK", nil)
	name, err := c.Do(ctx, "CLIENT", "GETNAME").Result()
	must("CLIENT GETNAME", name, "me", err)
	if _, err := c.ClientID(ctx).Result(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(ctx, "COMMAND", "DOCS").Result(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "HELLO", "3").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPROTO") {
		t.Fatalf("HELLO 3: %v", err)
	}
	hello, err := c.Do(ctx, "HELLO", "2").Slice()
	if err != nil || len(hello) != 14 || hello[0] != "server" || hello[5] != int64(2) {
		t.Fatalf("HELLO 2 = %v, %v", hello, err)
	}

	// errors
	wantErr("unknown", c.Do(ctx, "FOO", "a", "b").Err(), "ERR unknown command 'FOO', with args beginning with: 'a' 'b'")
	wantErr("arity", c.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
	wantErr("bad key", c.Get(ctx, "\xff").Err(), "ERR keys must be valid UTF-8")
	big := strings.Repeat("x", node.DefaultConfig().MaxValueBytes+1)
	wantErr("value too large", c.Set(ctx, "big", big, 0).Err(), "ERR value too large")
	pong, err = c.Ping(ctx).Result()
	must("PING after a refused value", pong, "PONG", err)
}

func TestRESPQuorumError(t *testing.T) {
	nodes, rs := startRESPCluster(t, 3)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1})
	defer c.Close()
	if err := nodes[0].SetFaults(node.Faults{Drop: []string{"n2", "n3"}}); err != nil {
		t.Fatal(err)
	}
	c.Do(ctx, "QKV.QUORUM", "one", "all")
	err := c.Set(ctx, "k", "v", 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "QUORUM quorum not reached") {
		t.Fatalf("SET at W=all with two nodes cut off: %v, want -QUORUM", err)
	}
	c.Do(ctx, "QKV.QUORUM", "one", "one")
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET at W=1: %v", err)
	}
}

// redisCLIScript and its expected output: redis-cli prints replies raw when its output
// is not a terminal (errors, then an empty line; nil as an empty line).
const redisCLIScript = `PING
SELECT 0
SET greeting hello
GET greeting
INCR hits
INCRBY hits 9
DECR hits
GET hits
SADD tags red green blue
SMEMBERS tags
SISMEMBER tags red
SREM tags red
SCARD tags
GET tags
INCR greeting
MGET greeting nope hits
EXISTS greeting hits tags nope
DEL greeting nope
GET greeting
QKV.QUORUM one all
ECHO "two words"
NOSUCH x
`

const redisCLIWant = `PONG
OK
OK
hello
1
10
9
9
3
blue
green
red
1
1
2
WRONGTYPE Operation against a key holding the wrong kind of value

WRONGTYPE Operation against a key holding the wrong kind of value

hello

9
3
1

OK
two words
ERR unknown command 'NOSUCH', with args beginning with: 'x' 

`

func TestRESPRedisCLI(t *testing.T) {
	cli := needTool(t, "redis-cli", "redis-tools")
	_, rs := startRESPCluster(t, 3)
	_, port, _ := net.SplitHostPort(rs[1].Addr())
	cmd := exec.Command(cli, "-h", "127.0.0.1", "-p", port)
	cmd.Stdin = strings.NewReader(redisCLIScript)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	if string(out) != redisCLIWant {
		t.Fatalf("redis-cli output:\n%s\nwant:\n%s", out, redisCLIWant)
	}
	// INFO through redis-cli, as an operator would ask.
	out, err = exec.Command(cli, "-p", port, "INFO", "cluster").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "members:3") {
		t.Fatalf("redis-cli INFO cluster: %v\n%s", err, out)
	}
}

func TestRESPRedisBenchmark(t *testing.T) {
	bench := needTool(t, "redis-benchmark", "redis-tools")
	_, rs := startRESPCluster(t, 3)
	_, port, _ := net.SplitHostPort(rs[0].Addr())
	cmd := exec.Command(bench, "-h", "127.0.0.1", "-p", port, "-n", "2000", "-c", "10", "-t", "set,get,incr,sadd", "-q")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("redis-benchmark: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	// -q prints progress lines ending in \r; the results end in \n.
	out := stdout.String()
	if strings.Contains(strings.ToLower(out+stderr.String()), "error") {
		t.Fatalf("redis-benchmark reported errors:\n%s\n%s", out, stderr.String())
	}
	for _, test := range []string{"SET", "GET", "INCR", "SADD"} {
		if !strings.Contains(out, test+": ") || !strings.Contains(out, "requests per second") {
			t.Fatalf("redis-benchmark output lacks %s:\n%s", test, out)
		}
	}
}

// respGoroutines counts the goroutines of the Redis front end's connections.
func respGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("redcon.handle")) || bytes.Contains(g, []byte("(*guardConn).readLoop")) ||
			bytes.Contains(g, []byte("(*pipe).runJob")) {
			n++
		}
	}
	return n
}

// parkedWorkers counts the pipeline's workers parked between jobs (resp_workers.go): they
// outlive their commands by design, at most maxIdleWorkers of them, and end with the server.
func parkedWorkers() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("(*jobWorker).loop")) && !bytes.Contains(g, []byte("(*pipe).runJob")) {
			n++
		}
	}
	return n
}

// goroutinesBeyond waits until at most base+slack goroutines run besides the parked
// workers, and fails the test with every goroutine's stack if that does not come within d.
func goroutinesBeyond(t *testing.T, d time.Duration, base, slack int) {
	t.Helper()
	deadline := time.Now().Add(d)
	for runtime.NumGoroutine()-parkedWorkers() > base+slack {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("runtime.NumGoroutine %d (%d workers parked), was %d before:\n%s",
				runtime.NumGoroutine(), parkedWorkers(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exchange writes raw bytes on a fresh connection and reads what comes back until the
// server closes the connection or nothing arrives for a while.
func exchange(t *testing.T, addr string, in []byte, closeWrite bool) (out string, closed bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(in); err != nil {
		return "", true // the server may close before it has read everything
	}
	if closeWrite {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	var b bytes.Buffer
	buf := make([]byte, 4096)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			var ne net.Error
			return b.String(), !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

func ping(t *testing.T, addr string) {
	t.Helper()
	out, _ := exchange(t, addr, []byte("*1\r\n$4\r\nPING\r\n"), true)
	if out != "+PONG\r\n" {
		t.Fatalf("PING on a fresh connection: %q", out)
	}
}

type badInput struct {
	name       string
	in         []byte
	want       string // prefix of the reply
	wantClosed bool
	hangUp     bool // the client half-closes after sending: a disconnect mid-command
}

func TestRESPBadInput(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	addr := rs[0].Addr()
	ping(t, addr)
	maxValue := node.DefaultConfig().MaxValueBytes

	bigSet := func(n int) []byte {
		return fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n", n, strings.Repeat("x", n))
	}
	cases := []badInput{
		{"negative bulk length", []byte("*2\r\n$-5\r\n"), "-ERR Protocol error", true, false},
		{"bulk length not a number", []byte("*2\r\n$x\r\n"), "-ERR Protocol error", true, false},
		{"negative count", []byte("*-3\r\n"), "-ERR Protocol error", true, false},
		{"huge count", []byte("*9223372036854775807\r\n"), "-ERR Protocol error: invalid multibulk length", true, false},
		{"huge bulk length", []byte("*2\r\n$1099511627776\r\nxx"), "-ERR Protocol error: invalid", true, false},
		{"bulk without $", []byte("*2\r\n+GET\r\n"), "-ERR Protocol error", true, false},
		{"value just over the limit", bigSet(maxValue + 1), "-ERR value too large", false, false},
		{"value far over the limit", fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\nyyyy", maxValue+2<<20), "-ERR Protocol error: invalid bulk length", true, false},
		{"inline line too long", bytes.Repeat([]byte("a"), 70<<10), "-ERR Protocol error: too big inline request", true, false},
		{"unbalanced quotes", []byte("SET \"a b\r\n"), "-ERR Protocol error: unbalanced quotes", true, false},
		{"binary garbage", []byte("\x00\xff\xfe*\x01$\x02\r\n\x80\x81\r\n"), "-ERR unknown command", false, false},
		{"empty command", []byte("*0\r\n"), "-ERR Protocol error", true, false},
		{"truncated command", []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc"), "", true, true},
		{"just a star", []byte("*"), "", true, true},
		{"commands then a truncated one", []byte("PING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET"), "+PONG\r\n+PONG\r\n", true, true},
	}
	// Warm up: traffic through every node opens the internode streams, whose goroutines
	// would otherwise show up as growth.
	for _, r := range rs {
		c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
		for i := range 30 {
			if err := c.Set(context.Background(), fmt.Sprint("warm", i), "x", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	waitFor(t, 5*time.Second, "warm-up connections end", func() bool { return respGoroutines() == 0 })
	base := runtime.NumGoroutine() - parkedWorkers()
	for range 2 {
		badInputRound(t, addr, cases)
	}
	waitFor(t, 5*time.Second, "connection goroutines end", func() bool { return respGoroutines() == 0 })
	goroutinesBeyond(t, 5*time.Second, base, 5)
}

func badInputRound(t *testing.T, addr string, cases []badInput) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, closed := exchange(t, addr, tc.in, tc.hangUp)
			if !strings.HasPrefix(out, tc.want) {
				t.Fatalf("reply %q, want prefix %q", clipString(out), tc.want)
			}
			if tc.wantClosed && !closed {
				t.Fatalf("connection still open after %q", clipString(out))
			}
			ping(t, addr)
		})
	}

	// A client that disconnects in the middle of a command, many times over.
	for i := range 50 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("*3\r\n$4\r\nSADD\r\n$2\r\nss\r\n$5\r\nmemb")
		_, _ = conn.Write(msg[:len(msg)*i/50])
		_ = conn.Close()
	}
	ping(t, addr)
}

func clipString(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// TestRESPDisconnectCancels: a command waiting for replicas that will not answer ends
// when its client goes away, well before the request timeout.
func TestRESPDisconnectCancels(t *testing.T) {
	nodes, rs := startRESPCluster(t, 3)
	if err := nodes[0].SetFaults(node.Faults{Drop: []string{"n2", "n3"}, DelayMs: 0}); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", rs[0].Addr())
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	fmt.Fprint(conn, "*3\r\n$10\r\nQKV.QUORUM\r\n$3\r\none\r\n$3\r\nall\r\n")
	if line, _ := rd.ReadString('\n'); line != "+OK\r\n" {
		t.Fatalf("QKV.QUORUM: %q", line)
	}
	start := time.Now()
	fmt.Fprint(conn, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
	waitFor(t, time.Second, "the SET is running", func() bool { return respGoroutines() == 2 })
	_ = conn.Close()
	waitFor(t, time.Second, "the SET's goroutines end", func() bool { return respGoroutines() == 0 })
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("took %v; the request timeout is 2s", d)
	}
}

// TestRESPClose: Close ends every connection, also one running a command.
func TestRESPClose(t *testing.T) {
	nodes := startCluster(t, 1)
	r := api.NewRESP(nodes[0], nil)
	if err := r.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "PING\r\n")
		conns = append(conns, c)
	}
	for _, c := range conns {
		line, _ := bufio.NewReader(c).ReadString('\n')
		if line != "+PONG\r\n" {
			t.Fatalf("PING: %q", line)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := respGoroutines(); n != 0 {
		t.Fatalf("%d connection goroutines after Close", n)
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("read after Close: %v, want EOF", err)
		}
	}
	if _, err := net.Dial("tcp", r.Addr()); err == nil {
		t.Fatal("still accepting after Close")
	}
	if err := api.NewRESP(nodes[0], nil).Listen(r.Addr() + "x"); err == nil {
		t.Fatal("Listen on a bad address succeeded")
	}
}

// FuzzRESPCommand sends arbitrary bytes to a node's Redis port: whatever they are, the
// server answers or closes the connection, and keeps serving others.
func FuzzRESPCommand(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$4\r\nPING\r\n",
		"*2\r\n$-5\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n",
		"*3\r\n$4\r\nSADD\r\n$1\r\ns\r\n$1\r\nm\r\n",
		"GET k\r\nSMEMBERS s\r\n",
		"*1\r\n$4\r\nQUIT\r\n",
		"\x00\xff*\r\n$",
		"*99999999999\r\n",
		"HELLO 3\r\nCLIENT SETNAME x\r\nINFO\r\n",
		"HSET h a 1 b 2\r\nHINCRBY h c 5\r\nHINCRBY h a 1\r\nHGETALL h\r\nHDEL h a\r\nTYPE h\r\n",
		"MSET a 1 b 2 a 3\r\nSET a 4 GET\r\nSET a 5 EXAT 1\r\nEXPIREAT b 99999999999\r\nUNLINK a b\r\n",
		"SET x 1\r\nGET x\r\nINCR y\r\nQKV.QUORUM one one\r\nSET x 2 NX\r\nCOMMAND INFO get\r\nQUIT\r\nGET x\r\n",
	} {
		f.Add([]byte(s))
	}
	_, rs := startRESPCluster(f, 3)
	addr := rs[0].Addr()
	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write(in)
		_ = conn.(*net.TCPConn).CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(conn)
		if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("reading replies: %v (got %q)", err, clipString(string(out)))
		}
		if len(out) > 0 && !slices.Contains([]byte("+-:$*"), out[0]) {
			t.Fatalf("reply is not RESP: %q", clipString(string(out)))
		}
		ping(t, addr)
	})
}
