package api

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/testcluster"
)

// blocker is a test command, "test.block key" (a write) and "test.peek key" (a read), that
// records when it starts and waits for release: it shows which commands of a pipeline
// run at the same time, with no clock involved.
type blocker struct {
	mu      sync.Mutex
	running int
	started []string
	release chan struct{}
}

func (b *blocker) run(_ *RESP, ctx context.Context, _ *client, w *reply, args [][]byte) {
	b.mu.Lock()
	b.running++
	b.started = append(b.started, strings.ToLower(string(args[0]))+" "+string(args[1]))
	b.mu.Unlock()
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	b.mu.Lock()
	b.running--
	b.mu.Unlock()
	w.WriteBulk(args[1])
}

func (b *blocker) state() (int, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running, append([]string(nil), b.started...)
}

// withBlocker adds the test commands to the table for one test (not a parallel one: the
// table is global).
func withBlocker(t *testing.T) *blocker {
	b := &blocker{release: make(chan struct{})}
	commands["test.block"] = &command{name: "test.block", arity: 2, flags: fWrite, first: 1, last: 1, step: 1, write: true, run: b.run}
	commands["test.peek"] = &command{name: "test.peek", arity: 2, flags: fRead, first: 1, last: 1, step: 1, run: b.run}
	// test.blockv KEY VALUE: test.block with a value (a large command).
	commands["test.blockv"] = &command{name: "test.blockv", arity: 3, flags: fWrite, first: 1, last: 1, step: 1, write: true, run: b.run}
	t.Cleanup(func() {
		delete(commands, "test.blockv")
		delete(commands, "test.block")
		delete(commands, "test.peek")
	})
	return b
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialBlockerRESP starts a RESP server over one node and connects to it, for the length
// of the test.
func dialBlockerRESP(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", startBlockerRESP(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func startBlockerRESP(t *testing.T) string {
	nodes := testcluster.Start(t, 1, func(*node.Config) {})
	r := NewRESP(nodes[0], nil)
	if err := r.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r.Addr()
}

// TestPipelineLanes: commands of a pipeline on different keys run at once; on one key a
// write waits for every command before it, a read for the writes before it; a barrier
// waits for everything before it and holds back everything after it; replies come in
// the order sent.
func TestPipelineLanes(t *testing.T) {
	b := withBlocker(t)
	conn := dialBlockerRESP(t)
	var sent []string
	// Written in one go, so that redcon reads them as one pipeline (a pipeline read in
	// several parts is ordered the same way: the lanes outlive a read).
	var buf strings.Builder
	for _, c := range []string{
		"test.block a", "test.block b", "test.peek c", "test.peek c", "test.block d",
		"test.block a", // waits for the first a
		"test.peek b",  // waits for the write of b
		"test.block c", // waits for both reads of c
		"PING",         // answered at admission, in its place
		"SELECT 0",     // a barrier: waits for all the above
		"test.block e", // admitted after the barrier
	} {
		f := strings.Fields(c)
		fmt.Fprintf(&buf, "*%d\r\n", len(f))
		for _, a := range f {
			fmt.Fprintf(&buf, "$%d\r\n%s\r\n", len(a), a)
		}
		sent = append(sent, c)
	}
	if _, err := conn.Write([]byte(buf.String())); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the five independent commands run together", func() bool { n, _ := b.state(); return n == 5 })
	_, started := b.state()
	want := map[string]bool{"test.block a": true, "test.block b": true, "test.peek c": true, "test.block d": true}
	for _, s := range started {
		if !want[s] {
			t.Fatalf("started %q before the commands it waits for ended: %q", s, started)
		}
	}
	close(b.release)
	rd := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []string
	for range sent {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		if strings.HasPrefix(line, "$") {
			line, _ = rd.ReadString('\n')
		}
		got = append(got, strings.TrimSpace(line))
	}
	wantReplies := []string{"a", "b", "c", "c", "d", "a", "b", "c", "+PONG", "+OK", "e"}
	if fmt.Sprint(got) != fmt.Sprint(wantReplies) {
		t.Fatalf("replies %q, want %q", got, wantReplies)
	}
	_, started = b.state()
	pos := func(s string, nth int) int {
		for i, x := range started {
			if x == s {
				if nth == 0 {
					return i
				}
				nth--
			}
		}
		t.Fatalf("%q never started: %q", s, started)
		return -1
	}
	if pos("test.block e", 0) != len(started)-1 {
		t.Fatalf("test.block e ran before the barrier's predecessors: %q", started)
	}
	if pos("test.block c", 0) < pos("test.peek c", 1) || pos("test.block a", 1) < 5 {
		t.Fatalf("order on one key broken: %q", started)
	}
}

// TestPipelineBound: a connection has at most maxInFlight unanswered commands, fewer
// when they are large (a slot more per slotBytes of arguments); the next waits (and
// redcon stops reading) until one is answered.
func TestPipelineBound(t *testing.T) {
	for _, c := range []struct {
		name     string
		valueLen int // 0: test.block KEY; else test.blockv KEY VALUE
		bound    int
	}{
		{"small", 0, maxInFlight},
		// After two small commands sent together (so that the pipeline is busy, and a large
		// command arriving alone is not run on the unpipelined path, where it would block
		// the connection): 84 of 3 slots each.
		{"40KiB", 40 << 10, 2 + (maxInFlight-2)/(1+(40<<10)/slotBytes)},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := withBlocker(t)
			conn := dialBlockerRESP(t)
			key := func(i int) string { return fmt.Sprint("k", i) }
			total := c.bound + 20
			if c.valueLen > 0 {
				if _, err := conn.Write([]byte("*2\r\n$10\r\ntest.block\r\n$2\r\nk0\r\n*2\r\n$10\r\ntest.block\r\n$2\r\nk1\r\n")); err != nil {
					t.Fatal(err)
				}
				waitUntil(t, "two small commands run", func() bool { n, _ := b.state(); return n == 2 })
			}
			go func() {
				var buf strings.Builder
				value := strings.Repeat("x", c.valueLen)
				for i := range total {
					k := key(i)
					if c.valueLen > 0 && i < 2 {
						continue // sent above
					}
					if c.valueLen == 0 {
						fmt.Fprintf(&buf, "*2\r\n$10\r\ntest.block\r\n$%d\r\n%s\r\n", len(k), k)
					} else {
						fmt.Fprintf(&buf, "*3\r\n$11\r\ntest.blockv\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", len(k), k, len(value), value)
					}
				}
				_, _ = conn.Write([]byte(buf.String())) // blocks while the bound holds
			}()
			waitUntil(t, "the bound's commands run", func() bool { n, _ := b.state(); return n == c.bound })
			time.Sleep(50 * time.Millisecond)
			// None beyond the bound starts while they block (checked again below, after release).
			if _, started := b.state(); len(started) != c.bound {
				t.Fatalf("%d started, want %d", len(started), c.bound)
			}
			close(b.release)
			rd := bufio.NewReader(conn)
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for i := range total {
				line, _ := rd.ReadString('\n')
				val, err := rd.ReadString('\n')
				if err != nil || line != fmt.Sprintf("$%d\r\n", len(key(i))) || val != key(i)+"\r\n" {
					t.Fatalf("reply %d: %q %q %v", i, line, val, err)
				}
			}
		})
	}
}

// TestPipelineRunningBound: over all connections, at most maxRunning pipelined commands
// run at once (here lowered to 10): three connections pipelining 8 blocking commands each
// start 10 of them, the rest wait, and all 24 are answered, in order, once released.
func TestPipelineRunningBound(t *testing.T) {
	const bound, conns, per = 10, 3, 8
	b := withBlocker(t)
	nodes := testcluster.Start(t, 1, func(*node.Config) {})
	r := NewRESP(nodes[0], nil)
	r.running = make(chan struct{}, bound)
	if err := r.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	key := func(c, i int) string { return fmt.Sprintf("c%dk%d", c, i) }
	cs := make([]net.Conn, conns)
	for c := range cs {
		conn, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		cs[c] = conn
		var buf strings.Builder
		for i := range per {
			k := key(c, i)
			fmt.Fprintf(&buf, "*2\r\n$10\r\ntest.block\r\n$%d\r\n%s\r\n", len(k), k)
		}
		if _, err := conn.Write([]byte(buf.String())); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the bound's commands run", func() bool { n, _ := b.state(); return n == bound })
	time.Sleep(50 * time.Millisecond)
	if _, started := b.state(); len(started) != bound {
		t.Fatalf("%d commands started over %d connections, want at most %d", len(started), conns, bound)
	}
	close(b.release)
	for c, conn := range cs {
		rd := bufio.NewReader(conn)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := range per {
			line, _ := rd.ReadString('\n')
			val, err := rd.ReadString('\n')
			if err != nil || line != fmt.Sprintf("$%d\r\n", len(key(c, i))) || val != key(c, i)+"\r\n" {
				t.Fatalf("connection %d, reply %d: %q %q %v", c, i, line, val, err)
			}
		}
	}
	if n := len(r.running); n != 0 {
		t.Fatalf("%d places still taken after every command ended", n)
	}
}

// TestPipelineCutOff: a client that disconnects while its pipeline runs cancels every
// command of it, running or waiting, and leaves no goroutine behind.
func TestPipelineCutOff(t *testing.T) {
	b := withBlocker(t)
	nodes := testcluster.Start(t, 1, func(*node.Config) {})
	r := NewRESP(nodes[0], nil)
	if err := r.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for round := range 3 {
		conn, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		var buf strings.Builder
		for i := range 150 {
			k := fmt.Sprint("k", i%(40+round*30))
			fmt.Fprintf(&buf, "*2\r\n$10\r\ntest.block\r\n$%d\r\n%s\r\n", len(k), k)
		}
		if _, err := conn.Write([]byte(buf.String())); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "commands running", func() bool { n, _ := b.state(); return n > 0 })
		_ = conn.Close()
		waitUntil(t, "every command ended", func() bool {
			n, _ := b.state()
			return n == 0 && r.clients.Load() == 0 && pipeGoroutines() == 0
		})
	}
}

// pipeGoroutines counts the goroutines of pipelined commands.
func pipeGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "(*pipe).runJob")
}

// gate is a test command, "test.gate key" (a write), that waits until its key is opened
// and answers with the key.
type gate struct {
	mu      sync.Mutex
	keys    map[string]chan struct{}
	started int
	ended   int
}

func (g *gate) ch(key string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.keys[key]
	if c == nil {
		c = make(chan struct{})
		g.keys[key] = c
	}
	return c
}

func (g *gate) run(_ *RESP, ctx context.Context, _ *client, w *reply, args [][]byte) {
	g.mu.Lock()
	g.started++
	g.mu.Unlock()
	select {
	case <-g.ch(string(args[1])):
	case <-ctx.Done():
	}
	w.WriteBulk(args[1])
	g.mu.Lock()
	g.ended++
	g.mu.Unlock()
}

func (g *gate) open(key string) { close(g.ch(key)) }

func (g *gate) endedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ended
}

func (g *gate) startedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}

// TestPipelineRepliesBatched: complete replies wait for the commands still running behind
// them, so that one write carries a round trip's replies; at most holdReplies of them,
// and no longer than holdFor.
func TestPipelineRepliesBatched(t *testing.T) {
	g := &gate{keys: map[string]chan struct{}{}}
	commands["test.gate"] = &command{name: "test.gate", arity: 2, flags: fWrite, first: 1, last: 1, step: 1, write: true, run: g.run}
	defer delete(commands, "test.gate")
	defer func(d time.Duration) { holdFor = d }(holdFor)
	holdFor = time.Hour // only the other rules release replies, until the last case
	conn := dialBlockerRESP(t)
	rd := bufio.NewReader(conn)
	sent := 0
	send := func(keys ...string) {
		var buf strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&buf, "*2\r\n$9\r\ntest.gate\r\n$%d\r\n%s\r\n", len(k), k)
		}
		if _, err := conn.Write([]byte(buf.String())); err != nil {
			t.Fatal(err)
		}
		// Every command admitted and running before any gate opens: one that ended before
		// a later one was admitted would be the last queued, and written at once.
		sent += len(keys)
		waitUntil(t, "the commands sent run", func() bool { return g.startedCount() == sent })
	}
	nothingYet := func(what string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if b, err := rd.Peek(1); err == nil {
			t.Fatalf("%s: a reply came (%q) while a command behind it still ran", what, b)
		}
		_ = conn.SetReadDeadline(time.Time{})
	}
	expect := func(keys ...string) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for _, k := range keys {
			line, _ := rd.ReadString('\n')
			val, err := rd.ReadString('\n')
			if err != nil || val != k+"\r\n" {
				t.Fatalf("reply for %s: %q %q %v", k, line, val, err)
			}
		}
		_ = conn.SetReadDeadline(time.Time{})
	}
	ended := 0
	openAndWait := func(keys ...string) {
		for _, k := range keys {
			g.open(k)
		}
		ended += len(keys)
		waitUntil(t, "the opened commands end", func() bool { return g.endedCount() == ended })
	}

	// A round trip of three: the first two end, their replies wait for the third.
	send("a1", "a2", "a3")
	openAndWait("a1", "a2")
	nothingYet("two of three ended")
	openAndWait("a3")
	expect("a1", "a2", "a3")

	// holdReplies complete replies are written even while a later command runs.
	var keys []string
	for i := range holdReplies + 1 {
		keys = append(keys, fmt.Sprint("b", i))
	}
	send(keys...)
	openAndWait(keys[:holdReplies]...)
	expect(keys[:holdReplies]...)
	openAndWait(keys[holdReplies])
	expect(keys[holdReplies])

	// A slow command holds the replies before it back for holdFor at most.
	holdFor = 20 * time.Millisecond
	send("c1", "c2")
	openAndWait("c1")
	expect("c1")
	openAndWait("c2")
	expect("c2")
}

// TestPipelineWorkers: pipelined commands run on workers that park between jobs and serve
// the next pipeline (no goroutine per command); at most maxIdleWorkers stay parked; Close
// ends every one.
func TestPipelineWorkers(t *testing.T) {
	b := withBlocker(t)
	close(b.release) // every command answers at once
	nodes := testcluster.Start(t, 1, func(*node.Config) {})
	r := NewRESP(nodes[0], nil)
	if err := r.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = r.Close()
		}
	})
	conn, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	round := func(n int) {
		t.Helper()
		var buf strings.Builder
		for i := range n {
			k := fmt.Sprint("k", i)
			fmt.Fprintf(&buf, "*2\r\n$9\r\ntest.peek\r\n$%d\r\n%s\r\n", len(k), k)
		}
		if _, err := conn.Write([]byte(buf.String())); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := range n {
			line, _ := rd.ReadString('\n')
			val, err := rd.ReadString('\n')
			if err != nil || val != fmt.Sprint("k", i)+"\r\n" {
				t.Fatalf("reply %d: %q %q %v", i, line, val, err)
			}
		}
	}
	parked := func() int {
		r.workers.mu.Lock()
		defer r.workers.mu.Unlock()
		return len(r.workers.idle)
	}
	// settled: every worker is parked (none between its reply and its parking).
	settled := func() bool { p := parked(); return p > 0 && workerGoroutines() == p }
	for range 21 {
		round(32)
	}
	waitUntil(t, "the workers park", settled)
	// 21 pipelines of 32 commands ran; no more than 32 run at once, and a few workers may
	// not have parked yet when the next pipeline starts. Had each command started a worker
	// of its own, 672 would have parked.
	if n := parked(); n > 2*32 {
		t.Fatalf("%d workers parked after 21 pipelines of 32 commands: workers are not reused", n)
	}

	// The bound: a worker that finds maxIdle parked ends.
	r.workers.mu.Lock()
	r.workers.maxIdle = 3
	r.workers.mu.Unlock()
	round(32)
	waitUntil(t, "workers beyond the bound end", func() bool { return settled() && workerGoroutines() <= 3 })
	if p := parked(); p != 3 {
		t.Fatalf("%d workers parked, want the bound 3", p)
	}
	round(8)

	closed = true
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := workerGoroutines(); n != 0 {
		t.Fatalf("%d worker goroutines left after Close", n)
	}
}

// workerGoroutines counts the goroutines of jobWorker.loop, running a job or parked.
func workerGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "(*jobWorker).loop")
}
