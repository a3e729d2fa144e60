package api

// Pipelining: the commands of one connection are coordinated concurrently and answered in
// order (docs/redis.md, "Pipelining").
//
// Model: redcon hands the connection's goroutine a command together with the commands
// already buffered behind it (ReadPipeline). A command that arrives alone on an idle
// connection runs there and then, as before (the unpipelined path costs no goroutine).
// Otherwise each command becomes a job, admitted in arrival order by that goroutine:
//
//   - a command on keys runs on a worker goroutine (resp_workers.go) once the earlier
//     commands on the same keys have run (per-key lanes: a write waits for every earlier
//     command on its keys, a read for the earlier writes), so the commands of a pipeline
//     that touch different keys wait for their quorums together;
//   - a barrier (connection state: AUTH, HELLO, SELECT, CLIENT, QKV.QUORUM, QUIT; the
//     keyspace: SCAN, KEYS, DBSIZE) waits until every job before it has been answered,
//     then runs alone, before anything after it is admitted;
//   - a command that touches neither (PING, ECHO, INFO, COMMAND, CONFIG), and every
//     refusal (unknown command, arity, NOAUTH, NOPERM), is answered at admission.
//
// Which class a command is in, and its keys, come from the command table (resp_table.go).
//
// Invariants:
//   - replies reach the socket strictly in arrival order: each job writes its reply into
//     its own buffer, and whichever goroutine finds the oldest unwritten reply complete
//     writes every complete reply from there on, one writer at a time;
//   - replies are written in batches: complete replies wait while a later command of the
//     pipeline still runs (its answer usually comes a moment later, in the next loop turn
//     or group commit, and one write for both costs less than two), but never more than
//     holdReplies of them, nor longer than holdFor;
//   - at most maxInFlight replies of a connection are unwritten; admission waits for a
//     slot, so a client that sends without reading stops being read (back pressure);
//   - a connection holds at most maxInFlight commands of maxPipelinedBytes each: a larger
//     command (a big SET) runs as a barrier, out of redcon's buffer, as an unpipelined
//     one does;
//   - authentication and the connection's settings are read and changed in order: admit
//     (the NOAUTH/NOPERM check) runs at admission, and every command that changes them is
//     a barrier;
//   - every job runs on a worker goroutine (resp_workers.go), counted in RESP.wg, and
//     ends, which the connection's context bounds: a client that disconnects cancels them
//     all, and the connection's goroutine waits for them (drain) before it lets redcon
//     close it.

import (
	"context"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/redcon"
)

// maxInFlight bounds a connection's unwritten replies, and slotBytes the argument bytes
// its commands in flight keep: a command takes one slot, and one more per slotBytes of its
// arguments, out of maxInFlight. A bulk load (redis-cli --pipe) keeps 256 writes in flight,
// where 64 had bounded it to 64 per write latency; a client that does not read pins at
// most 256 replies; the copies of arguments stay within 4 MiB per connection, as they
// did with 64 commands of 64 KiB.
const (
	maxInFlight = 256
	slotBytes   = 16 << 10
)

// maxRunning bounds the pipelined commands running at once over all connections, each on
// a worker goroutine: a command admitted past it waits (its connection stops being read
// meanwhile) until one ends. Without it, 32 `redis-cli --pipe` streams of 256 commands
// in flight kept 8,000 goroutines, whose stacks the collector scans every cycle and which
// count against the memory limit: a bulk load took 200 µs of CPU per key instead of 70-90,
// most of it collecting (docs/benchmarks.md). 1024 commands in flight keep the node's
// loops busy: a bulk load of 32 streams runs as fast as with 8,000. A command holds its
// place while it runs, not while its reply waits for the client to read it, so a client
// that stops reading holds at most its own maxInFlight replies, and no one's place.
const maxRunning = 1024

// maxPipelinedBytes: a command whose arguments are larger runs alone (as a barrier), so
// that the copies a pipeline keeps stay within maxInFlight × slotBytes per connection.
const maxPipelinedBytes = 64 << 10

// holdReplies and holdFor bound how long complete replies wait for the rest of their
// pipeline before they are written: 16 replies (redis-benchmark's -P 16 gets one write per
// round trip), 1 ms (about one group-committed fsync, which every write waits for: the
// answers of one round trip come within about one).
const holdReplies = 16

var holdFor = time.Millisecond // a variable for tests

// reply is one command's answer in RESP2, built in memory; the pipeline writes it.
type reply struct {
	b    []byte
	quit bool // close the connection once this reply is written (QUIT)
}

func (w *reply) WriteString(s string)     { w.b = redcon.AppendString(w.b, s) }
func (w *reply) WriteBulk(b []byte)       { w.b = redcon.AppendBulk(w.b, b) }
func (w *reply) WriteBulkString(s string) { w.b = redcon.AppendBulkString(w.b, s) }
func (w *reply) WriteInt(n int)           { w.b = redcon.AppendInt(w.b, int64(n)) }
func (w *reply) WriteInt64(n int64)       { w.b = redcon.AppendInt(w.b, n) }
func (w *reply) WriteError(msg string)    { w.b = redcon.AppendError(w.b, msg) }
func (w *reply) WriteArray(n int)         { w.b = redcon.AppendArray(w.b, n) }
func (w *reply) WriteNull()               { w.b = redcon.AppendNull(w.b) }
func (w *reply) reset()                   { w.b, w.quit = w.b[:0], false }

// job is one admitted command of a pipeline.
type job struct {
	args []byte   // the arguments' bytes, copied out of redcon's buffer
	argv [][]byte // the arguments, slices of args
	cmd  *command
	deps []chan struct{} // the ran channels of the commands it waits for
	// ran is closed when the command has run; made (under pipe.mu) only once a later
	// command waits for it, which most never do.
	ran   chan struct{}
	keys  []string // the lanes it is registered in
	keys1 [1]string
	rep   reply
	done  bool // rep is complete; guarded by pipe.mu
	extra int  // the slots it holds besides its own, for its argument bytes (slotBytes)
}

// lane orders the commands on one key.
type lane struct {
	write   *job   // the last write admitted
	readers []*job // reads admitted since
}

// pipe is a connection's pipeline.
type pipe struct {
	r     *RESP
	c     *client
	g     *guardConn
	slots chan struct{} // one per unwritten reply

	mu      sync.Mutex
	queue   [maxInFlight]*job // a ring: admitted, reply not written yet, in arrival order
	head, n int               // the oldest job's index, and the number queued
	lanes   map[string]*lane
	// freeLanes are emptied lanes kept for reuse (at most maxInFlight).
	freeLanes []*lane
	// freeJobs are jobs whose replies were written, kept for reuse with their reply
	// buffers and argument slices (at most maxInFlight): nothing refers to a job once its
	// reply is written (it has left the queue, its lanes and its worker). Their argument
	// bytes are not reused: a command that gave up on its node call (a cancelled
	// connection) may have left them with the node's loop.
	freeJobs []*job
	writing  bool        // a goroutine is writing replies
	wbuf     []byte      // the writer's buffer; owned by the goroutine that set writing
	hold     *time.Timer // writes held-back replies once holdFor has passed
	holding  bool        // hold is armed

	inline reply // the unpipelined path's reply, owned by the connection's goroutine
}

func newPipe(r *RESP, c *client, g *guardConn) *pipe {
	return &pipe{r: r, c: c, g: g, slots: make(chan struct{}, maxInFlight), lanes: map[string]*lane{}}
}

// idle reports whether no reply is waiting or being written: the connection's goroutine
// may then write to the socket itself.
func (p *pipe) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n == 0 && !p.writing
}

// drain waits until every admitted reply is written. Only the connection's goroutine,
// which admits, calls it, so nothing is admitted meanwhile.
func (p *pipe) drain() {
	for range maxInFlight {
		p.slots <- struct{}{}
	}
	for range maxInFlight {
		<-p.slots
	}
}

// serve runs the commands redcon has read: cmd and those buffered behind it.
func (p *pipe) serve(conn redcon.Conn, cmd redcon.Command) {
	if len(conn.PeekPipeline()) == 0 && p.idle() {
		w := &p.inline
		w.reset()
		p.r.run(p.g.ctx, p.c, w, cmd.Args)
		if _, err := p.g.Conn.Write(w.b); err != nil {
			_ = p.g.Close() // the read side ends the connection
			return
		}
		if w.quit {
			_ = conn.Close()
		}
		return
	}
	if !p.admit(cmd.Args) {
		p.quit(conn)
		return
	}
	for _, cmd := range conn.ReadPipeline() {
		if !p.admit(cmd.Args) {
			p.quit(conn)
			return
		}
	}
}

// quit ends the connection after a QUIT (or a broken one): its replies are written, the
// commands after it are dropped, as Redis drops them.
func (p *pipe) quit(conn redcon.Conn) {
	p.drain()
	_ = conn.Close()
}

// admit takes one command in; false when nothing more may be (QUIT, a cancelled
// connection).
func (p *pipe) admit(args [][]byte) bool {
	ctx := p.g.ctx
	select {
	case p.slots <- struct{}{}:
	default:
		// Wait for a slot, unless the client is gone. (A command read before the client
		// left still gets its answer, cancelled or not, as long as there is room.)
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
	}
	j := p.newJob()
	cmd := p.r.check(p.c, &j.rep, args)
	switch {
	case cmd == nil: // refused: answered
		p.enqueue(j, true)
	case cmd.barrier || argBytes(args) > maxPipelinedBytes:
		<-p.slots // drain counts every slot
		p.drain()
		p.slots <- struct{}{}
		p.r.runChecked(ctx, p.c, &j.rep, cmd, args)
		quit := j.rep.quit // j is another goroutine's to write, and reuse, once enqueued
		p.enqueue(j, true)
		if quit {
			return false
		}
	case cmd.first == 0: // no key, no connection state: answered at once
		p.r.runChecked(ctx, p.c, &j.rep, cmd, args)
		p.enqueue(j, true)
	default:
		if !p.r.startRunning(ctx) {
			j.rep.WriteError("ERR connection closed")
			p.enqueue(j, true)
			return false
		}
		if j.extra = argBytes(args) / slotBytes; j.extra > 0 && !p.takeSlots(ctx, j.extra) {
			p.r.endRunning()
			j.extra = 0
			j.rep.WriteError("ERR connection closed")
			p.enqueue(j, true)
			return false
		}
		j.cmd = cmd
		j.copyArgs(args)
		j.keys = j.keys1[:0]
		p.mu.Lock()
		p.order(j)
		p.push(j)
		p.mu.Unlock()
		p.r.workers.run(p.r, jobRun{p: p, ctx: ctx, j: j})
	}
	return true
}

// startRunning takes a place among the maxRunning commands running, waiting for one to
// end; false when ctx ends first.
func (r *RESP) startRunning(ctx context.Context) bool {
	select {
	case r.running <- struct{}{}:
		return true
	default:
	}
	select {
	case r.running <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// endRunning gives back the place startRunning took.
func (r *RESP) endRunning() { <-r.running }

// takeSlots takes n more slots for the command being admitted, waiting for the replies
// before it to be written; false, with none taken, when the client is gone.
func (p *pipe) takeSlots(ctx context.Context, n int) bool {
	for i := range n {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			for range i {
				<-p.slots // give back the i taken (they are in the channel: never blocks)
			}
			return false
		}
	}
	return true
}

// argBytes is the size of a command's arguments.
func argBytes(args [][]byte) int {
	n := 0
	for _, a := range args {
		n += len(a)
	}
	return n
}

// copyArgs keeps the arguments: redcon reuses its read buffer once the handler returns.
func (j *job) copyArgs(args [][]byte) {
	j.args = make([]byte, 0, argBytes(args))
	if cap(j.argv) >= len(args) {
		j.argv = j.argv[:len(args)]
	} else {
		j.argv = make([][]byte, len(args))
	}
	for i, a := range args {
		j.args = append(j.args, a...)
		j.argv[i] = j.args[len(j.args)-len(a) : len(j.args) : len(j.args)]
	}
}

// order registers j in the lanes of its keys and records what it waits for. p.mu held.
func (p *pipe) order(j *job) {
	write := j.cmd.write
	forKeys(j.cmd, j.argv, func(k []byte) {
		l := p.lanes[string(k)]
		if l == nil {
			ks := string(k)
			l = p.newLane()
			p.lanes[ks] = l
			j.keys = append(j.keys, ks)
		} else {
			if l.write == j || (len(l.readers) > 0 && l.readers[len(l.readers)-1] == j) {
				return // a key named twice
			}
			j.keys = append(j.keys, string(k))
		}
		if l.write != nil {
			j.deps = append(j.deps, l.write.waitRan())
		}
		if !write {
			l.readers = append(l.readers, j)
			return
		}
		for _, rd := range l.readers {
			j.deps = append(j.deps, rd.waitRan())
		}
		l.write, l.readers = j, l.readers[:0]
	})
}

// waitRan returns the channel closed once j has run, for a command behind it; p.mu held.
func (j *job) waitRan() chan struct{} {
	if j.ran == nil {
		j.ran = make(chan struct{})
	}
	return j.ran
}

// newJob returns an empty job, reusing one whose reply was written.
func (p *pipe) newJob() *job {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.freeJobs); n > 0 {
		j := p.freeJobs[n-1]
		p.freeJobs = p.freeJobs[:n-1]
		return j
	}
	return &job{}
}

// recycle keeps j, whose reply has been written, for a later command; p.mu held.
func (p *pipe) recycle(j *job) {
	if len(p.freeJobs) >= maxInFlight || cap(j.rep.b) > 4<<10 {
		return // a large reply's buffer is not worth keeping
	}
	clear(j.argv[:cap(j.argv)])
	clear(j.deps[:cap(j.deps)])
	clear(j.keys1[:])
	*j = job{argv: j.argv[:0], deps: j.deps[:0], rep: reply{b: j.rep.b[:0]}}
	p.freeJobs = append(p.freeJobs, j)
}

// newLane returns an empty lane, reusing one freed by an earlier command; p.mu held.
func (p *pipe) newLane() *lane {
	if n := len(p.freeLanes); n > 0 {
		l := p.freeLanes[n-1]
		p.freeLanes = p.freeLanes[:n-1]
		return l
	}
	return &lane{}
}

// runJob runs a keyed command once the commands it waits for have run.
func (p *pipe) runJob(ctx context.Context, j *job) {
	for _, d := range j.deps {
		<-d // each ends: a command ends, its context bounding it
	}
	p.r.runChecked(ctx, p.c, &j.rep, j.cmd, j.argv)
	p.r.endRunning()
	p.mu.Lock()
	if j.ran != nil {
		close(j.ran)
	}
	for _, k := range j.keys {
		l := p.lanes[k]
		if l == nil { // never: a later command on k waits for this one
			continue
		}
		if l.write == j {
			l.write = nil
		}
		for i, rd := range l.readers {
			if rd == j {
				l.readers = append(l.readers[:i], l.readers[i+1:]...)
				break
			}
		}
		if l.write == nil && len(l.readers) == 0 {
			delete(p.lanes, k)
			if len(p.freeLanes) < maxInFlight {
				clear(l.readers[:cap(l.readers)]) // no finished job stays reachable
				p.freeLanes = append(p.freeLanes, l)
			}
		}
	}
	j.done = true
	p.mu.Unlock()
	p.flush()
}

// enqueue appends a job whose reply is complete and writes what can be written.
func (p *pipe) enqueue(j *job, done bool) {
	p.mu.Lock()
	j.done = done
	p.push(j)
	p.mu.Unlock()
	p.flush()
}

// push queues j; p.mu held. It never overflows: every queued job holds one of the
// maxInFlight slots.
func (p *pipe) push(j *job) {
	p.queue[(p.head+p.n)%maxInFlight] = j
	p.n++
}

// flush writes the complete replies at the head of the queue, unless another goroutine
// is writing (that one writes them after its own, as it looks again before it stops), or
// they are held back for the commands still running behind them (see holdReplies).
func (p *pipe) flush() { p.write(false) }

// write is flush; force writes held-back replies too.
func (p *pipe) write(force bool) {
	p.mu.Lock()
	if p.writing {
		p.mu.Unlock()
		return
	}
	p.writing = true
	for {
		done := 0
		for done < p.n && p.queue[(p.head+done)%maxInFlight].done {
			done++
		}
		if done > 0 && done < p.n && done < holdReplies && !force {
			// A later command still runs: its completion flushes again; the timer
			// bounds the wait should it be slow.
			if !p.holding {
				p.holding = true
				if p.hold == nil {
					p.hold = time.AfterFunc(holdFor, p.release)
				} else {
					p.hold.Reset(holdFor)
				}
			}
			done = 0
		}
		if done == 0 {
			p.writing = false
			p.mu.Unlock()
			return
		}
		force = false
		if p.holding { // what it held goes now: the next hold waits its full holdFor
			p.hold.Stop()
			p.holding = false
		}
		quit := false
		buf := p.wbuf[:0]
		slots := 0
		for range done {
			j := p.queue[p.head]
			buf = append(buf, j.rep.b...)
			quit = quit || j.rep.quit
			slots += 1 + j.extra
			p.recycle(j)
			p.queue[p.head] = nil
			p.head = (p.head + 1) % maxInFlight
			p.n--
		}
		p.mu.Unlock()
		_, err := p.g.Conn.Write(buf)
		if cap(buf) <= 64<<10 {
			p.wbuf = buf
		}
		for range slots {
			<-p.slots
		}
		if err != nil || quit {
			// The client is gone, or a command broke an invariant: the read side ends
			// the connection. (QUIT also closes it in the connection's goroutine.)
			_ = p.g.Close()
		}
		p.mu.Lock()
	}
}

// release writes the replies held back past holdFor.
func (p *pipe) release() {
	p.mu.Lock()
	p.holding = false
	p.mu.Unlock()
	p.write(true)
}

// run checks a command and runs it; the unpipelined path.
func (r *RESP) run(ctx context.Context, c *client, w *reply, args [][]byte) {
	if cmd := r.check(c, w, args); cmd != nil {
		r.runChecked(ctx, c, w, cmd, args)
	}
}

// runChecked runs a checked command. A panic (a broken invariant) is logged, answered,
// and ends the connection, not the process.
func (r *RESP) runChecked(ctx context.Context, c *client, w *reply, cmd *command, args [][]byte) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("redis protocol: command panicked", "command", strings.ToLower(string(args[0])),
				"panic", p, "stack", string(debug.Stack()))
			w.b = w.b[:0]
			w.WriteError("ERR internal error")
			w.quit = true
		}
	}()
	cmd.run(r, ctx, c, w, args)
}
