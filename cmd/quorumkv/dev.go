package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/storage"
)

const (
	// devStartTimeout bounds how long one node may take to print its ready line and
	// then to answer /healthz.
	devStartTimeout = 30 * time.Second
	// devStopTimeout is how long a node gets to stop after SIGTERM before it is killed;
	// the same as the server's own shutdown bound.
	devStopTimeout = shutdownTimeout
	// devMaxNodes keeps the fixed port blocks (base+i, base+100+i, ...) from overlapping.
	devMaxNodes = 100
)

// devExecutable is the binary dev runs as "server"; a variable for tests.
var devExecutable = os.Executable

func init() {
	register(&command{
		name:    "dev",
		group:   "Running",
		args:    "[--nodes 3] [--data DIR] [--base-port 8080] [--debug-faults]",
		summary: "run a local cluster on this machine",
		run:     runDev,
	})
}

func runDev(e *env, args []string) int {
	c := lookup("dev")
	fs := e.flags(c, `
Starts a cluster of N 'quorumkv server' processes on 127.0.0.1 (nodes n1..nN, node 1
first, the others joining it), waits until every node answers, prints their
endpoints and some commands to try, and runs until Ctrl-C, which stops every node
cleanly. Data lives in DIR/n1, DIR/n2, ...; each node's log in DIR/n1.log, ...

A node that exits (it crashed, or you killed it to see hints pile up) stays down until
you press Enter in dev's terminal: every node that exited is started again on its
addresses and data. dev also prints the command that restarts it by hand.

Ports: node i (from 0) gets HTTP base+i, Redis protocol base+100+i, internode RPC
base+200+i and gossip base+300+i. The default base 8080 puts node 1's HTTP API at
127.0.0.1:8080, where the client commands look by default; --base-port 0 picks free
ports instead.`)
	nodes := fs.Int("nodes", 3, "number of `nodes`")
	data := fs.String("data", ".qkv-dev", "`dir`ectory for the nodes' data and logs")
	base := fs.Int("base-port", 8080, "first `port` (0: pick free ports)")
	debugFaults := fs.Bool("debug-faults", false, "start the nodes with --debug-faults")
	logLevel := fs.String("log-level", "info", "the nodes' log `level`")
	serverFlags := fs.String("server-flags", "", "extra `flags` for every node, space-separated (e.g. \"--no-aae --hint-window 1m\")")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	if *nodes < 1 || *nodes > devMaxNodes {
		return usageErr(fs, "--nodes must be in 1..%d, got %d", devMaxNodes, *nodes)
	}
	if *base < 0 || (*base > 0 && (*base < 1024 || *base+300+*nodes > 65535)) {
		return usageErr(fs, "--base-port must be 0 or in 1024..%d, got %d", 65535-300-*nodes, *base)
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		return e.fail("dev: %v", err)
	}
	exe, err := devExecutable()
	if err != nil {
		return e.fail("dev: cannot find my own executable: %v", err)
	}
	d := &devCluster{
		e: e, exe: exe, dir: dir, n: *nodes, base: *base,
		debugFaults: *debugFaults, logLevel: *logLevel, extra: strings.Fields(*serverFlags),
	}
	ctx, stop := e.signals()
	defer stop()
	return d.run(ctx)
}

// devCluster runs the child processes of one dev invocation.
type devCluster struct {
	e           *env
	exe, dir    string
	n, base     int
	debugFaults bool
	logLevel    string
	extra       []string // more server flags

	children []*devChild
	exited   chan *devChild // a child's Wait returned
}

// devChild is one server process.
type devChild struct {
	id                      string
	http, resp, rpc, gossip string // the addresses it was given
	ready                   map[string]string
	up                      bool // it was ready and healthy
	logPath                 string
	cmd                     *exec.Cmd
	done                    chan struct{} // closed when the process has been waited for
	err                     error         // its exit status, once done
	readyCh                 chan string
	join                    string // the --join it was given
	started                 bool   // in children
}

func (d *devCluster) run(ctx context.Context) int {
	e := d.e
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return e.fail("dev: %v", err)
	}
	if err := d.checkDirsFree(); err != nil {
		return e.fail("dev: %v", err)
	}
	addrs, err := d.addresses()
	if err != nil {
		return e.fail("dev: %v", err)
	}
	// Children run until stopCtx ends; then exec sends SIGTERM, and SIGKILL after
	// devStopTimeout.
	stopCtx, stopAll := context.WithCancel(context.Background())
	defer stopAll()
	d.exited = make(chan *devChild, d.n)
	defer d.shutdown(stopAll)

	fmt.Fprintf(e.stdout, "quorumkv dev: starting %d node(s) in %s\n", d.n, d.dir)
	for i := range d.n {
		c := &devChild{id: fmt.Sprintf("n%d", i+1), http: addrs[i][0], resp: addrs[i][1], rpc: addrs[i][2], gossip: addrs[i][3]}
		var join string
		if i > 0 {
			join = d.children[0].ready["gossip"]
		}
		if err := d.start(stopCtx, c, join); err != nil {
			return e.fail("dev: %s: %v", c.id, err)
		}
		if err := d.waitReady(ctx, c); err != nil {
			if ctx.Err() != nil {
				fmt.Fprintln(e.stdout, "quorumkv dev: interrupted")
				return exitOK
			}
			if pid := storage.LockHolder(filepath.Join(d.dir, c.id)); pid != 0 {
				err = fmt.Errorf("%w; its data directory %s is in use by %s", err, filepath.Join(d.dir, c.id), describeProcess(pid))
			}
			return e.fail("dev: %s: %v (log: %s)", c.id, err, c.logPath)
		}
		c.up = true
	}
	d.waitRing(ctx, e)
	d.printReady()

	// A line on stdin (Enter) restarts the nodes that exited.
	restart := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			select {
			case restart <- struct{}{}:
			default:
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return exitOK // the deferred shutdown stops the children
		case c := <-d.exited:
			if !c.up {
				continue // reported when it failed to start
			}
			fmt.Fprintf(e.stdout, "quorumkv dev: node %s exited unexpectedly: %v (log: %s)\n", c.id, exitDesc(c.err), c.logPath)
			fmt.Fprintf(e.stdout, "quorumkv dev: press Enter here to restart it, or run it yourself in another terminal (this dev will not stop that one):\n  %s\n",
				d.restartCommand(c))
		case <-restart:
			if err := d.restartExited(ctx, stopCtx); err != nil {
				if ctx.Err() != nil {
					return exitOK
				}
				fmt.Fprintf(e.stdout, "quorumkv dev: %v\n", err)
			}
		}
	}
}

// restartExited starts again, on the addresses they had bound and their data, the nodes
// that were up and have exited.
func (d *devCluster) restartExited(ctx, stopCtx context.Context) error {
	n := 0
	for _, c := range d.children {
		select {
		case <-c.done:
		default:
			continue // running
		}
		if !c.up {
			continue
		}
		c.http, c.resp, c.rpc, c.gossip = c.addr("http"), c.addr("resp"), c.addr("rpc"), c.addr("gossip")
		c.up = false
		fmt.Fprintf(d.e.stdout, "quorumkv dev: restarting %s\n", c.id)
		if err := d.start(stopCtx, c, c.join); err != nil {
			return fmt.Errorf("%s: restart: %w", c.id, err)
		}
		if err := d.waitReady(ctx, c); err != nil {
			return fmt.Errorf("%s: restart: %w (log: %s)", c.id, err, c.logPath)
		}
		c.up = true
		n++
		fmt.Fprintf(d.e.stdout, "quorumkv dev: node %s is back (pid %d)\n", c.id, c.cmd.Process.Pid)
	}
	if n == 0 {
		fmt.Fprintln(d.e.stdout, "quorumkv dev: every node is running")
	}
	return nil
}

// checkDirsFree refuses to start when a node's data directory is open in another process
// (another dev, or a server started by hand): its store's LOCK is held.
func (d *devCluster) checkDirsFree() error {
	for i := range d.n {
		dir := filepath.Join(d.dir, fmt.Sprintf("n%d", i+1))
		if pid := storage.LockHolder(dir); pid != 0 {
			return fmt.Errorf("data directory %s is in use by %s: stop it (another 'quorumkv dev'?), or give this one another --data", dir, describeProcess(pid))
		}
	}
	return nil
}

// serverArgs are the arguments of c's "quorumkv server" with the given addresses.
func (d *devCluster) serverArgs(c *devChild, httpAddr, resp, rpc, gossip string) []string {
	args := []string{"server", "--id", c.id, "--data", filepath.Join(d.dir, c.id),
		"--http", httpAddr, "--resp", resp, "--rpc", rpc, "--gossip", gossip,
		"--log-level", d.logLevel}
	if c.join != "" {
		args = append(args, "--join", c.join)
	}
	if d.debugFaults {
		args = append(args, "--debug-faults")
	}
	if os.Getenv(envPrefix+"LOOPS") == "" {
		// The nodes share this machine: each takes its share of the CPUs as event loops
		// (a server alone on a machine runs one per CPU). Measured on 2 CPUs, 3 nodes of one
		// loop each serve 10-15% more than of two (docs/benchmarks.md).
		args = append(args, "--loops", strconv.Itoa(max(1, runtime.GOMAXPROCS(0)/d.n)))
	}
	return append(args, d.extra...)
}

// restartCommand is the shell command that starts c again as it ran: the addresses it
// bound, its data, its log appended to.
func (d *devCluster) restartCommand(c *devChild) string {
	join := c.join
	if join == "" && len(d.children) > 1 { // n1 joins any other node
		join = d.children[1].addr("gossip")
	}
	cc := *c
	cc.join = join
	args := d.serverArgs(&cc, c.addr("http"), c.addr("resp"), c.addr("rpc"), c.addr("gossip"))
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = quoteArg(a)
	}
	return quoteArg(d.exe) + " " + strings.Join(quoted, " ") + " >>" + quoteArg(c.logPath) + " 2>&1"
}

// quoteArg quotes s for a POSIX shell when it needs it (sim.go has its own: the sim's
// files are another owner's).
func quoteArg(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:,=@+-%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// addresses returns each node's [http, resp, rpc, gossip] addresses.
func (d *devCluster) addresses() ([][4]string, error) {
	out := make([][4]string, d.n)
	if d.base == 0 {
		ports, err := freePorts(4 * d.n)
		if err != nil {
			return nil, err
		}
		for i := range out {
			for j := range 4 {
				out[i][j] = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[4*i+j]))
			}
		}
		return out, nil
	}
	for i := range out {
		for j := range 4 {
			port := d.base + 100*j + i
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			if err := portFree(addr); err != nil {
				return nil, fmt.Errorf("port %d is not free (another dev cluster running?); use --base-port 0 to pick free ports: %w", port, err)
			}
			out[i][j] = addr
		}
	}
	return out, nil
}

// portFree reports whether addr can be bound for TCP and UDP (gossip uses both).
func portFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer l.Close()
	p, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	return p.Close()
}

// freePorts returns n distinct loopback ports that are free for TCP and UDP. They are
// released before returning, so another process could take one; the window is small.
func freePorts(n int) ([]int, error) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 10*n+100 {
			return nil, errors.New("cannot find free ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		p, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // taken for UDP; keep the TCP listener so this port is not offered again
		}
		held = append(held, p)
		ports = append(ports, port)
	}
	return ports, nil
}

// start launches c's server process.
func (d *devCluster) start(stopCtx context.Context, c *devChild, join string) error {
	dataDir := filepath.Join(d.dir, c.id)
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	c.logPath = filepath.Join(d.dir, c.id+".log")
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "\n=== quorumkv dev: starting %s at %s ===\n", c.id, time.Now().Format(time.RFC3339))
	c.join = join
	cmd := exec.CommandContext(stopCtx, d.exe, d.serverArgs(c, c.http, c.resp, c.rpc, c.gossip)...)
	c.readyCh = make(chan string, 1)
	cmd.Stdout = &readyWriter{out: logf, ready: c.readyCh}
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = devStopTimeout
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	if !c.started { // a restart reuses its place
		d.children = append(d.children, c)
		c.started = true
	}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
		d.exited <- c
	}()
	return nil
}

// waitRing waits until n1 sees every node in the ring with no change pending: the nodes
// after the first join, and take their partitions over before they count (at once, on an
// empty cluster; the partitions of a cluster dev started before are streamed).
func (d *devCluster) waitRing(ctx context.Context, e *env) {
	if len(d.children) == 0 {
		return
	}
	cl := client.New(d.children[0].addr("http"), client.WithTimeout(2*time.Second))
	deadline := time.Now().Add(devStartTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		t, err := cl.Transfers(ctx)
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return // a server without cluster changes
		}
		if err == nil && !t.Pending && len(t.Ring) == len(d.children) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(e.stderr, "quorumkv dev: the nodes have not all joined the ring after %v; see 'quorumkv cluster status'\n", devStartTimeout)
}

// waitReady waits for c's ready line, then for its /healthz to answer.
func (d *devCluster) waitReady(ctx context.Context, c *devChild) error {
	timer := time.NewTimer(devStartTimeout)
	defer timer.Stop()
	select {
	case line := <-c.readyCh:
		c.ready = parseReady(line)
	case <-c.done:
		return fmt.Errorf("exited before it was ready: %v", exitDesc(c.err))
	case <-timer.C:
		return fmt.Errorf("not ready after %v", devStartTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	httpAddr := c.ready["http"]
	if httpAddr == "" {
		httpAddr = c.http
	}
	cl := client.New(httpAddr, client.WithTimeout(2*time.Second))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if err = cl.Health(ctx); err == nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-c.done:
			return fmt.Errorf("exited before it was healthy: %v", exitDesc(c.err))
		case <-timer.C:
			return fmt.Errorf("/healthz at %s not answering after %v: %w", httpAddr, devStartTimeout, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// shutdown stops every child (SIGTERM, then SIGKILL after devStopTimeout) and waits.
func (d *devCluster) shutdown(stopAll context.CancelFunc) {
	if len(d.children) == 0 {
		return
	}
	running := 0
	for _, c := range d.children {
		select {
		case <-c.done:
		default:
			running++
		}
	}
	if running > 0 {
		fmt.Fprintf(d.e.stdout, "quorumkv dev: stopping %d node(s)...\n", running)
	}
	stopAll()
	for _, c := range d.children {
		<-c.done
		if c.err != nil && !isTermination(c.err) {
			fmt.Fprintf(d.e.stdout, "quorumkv dev: node %s: %v (log: %s)\n", c.id, exitDesc(c.err), c.logPath)
		}
	}
	fmt.Fprintln(d.e.stdout, "quorumkv dev: stopped")
}

// isTermination reports whether err is just the effect of our SIGTERM: exec reports a
// clean exit after Cancel as the context's error.
func isTermination(err error) bool {
	if errors.Is(err, context.Canceled) {
		return true
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return true
		}
	}
	return false
}

func exitDesc(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func (d *devCluster) printReady() {
	w := d.e.stdout
	fmt.Fprintf(w, "\nquorumkv dev: %d node(s) ready\n\n", len(d.children))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHTTP\tRESP\tRPC\tGOSSIP\tLOG")
	for _, c := range d.children {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.id, c.addr("http"), c.addr("resp"), c.addr("rpc"), c.addr("gossip"), c.logPath)
	}
	tw.Flush()
	n1 := d.children[0]
	h1 := n1.addr("http")
	hLast := d.children[len(d.children)-1].addr("http")
	fmt.Fprintln(w, "\nTry:")
	if h1 != defaultAddr {
		fmt.Fprintf(w, "  export %s=%s\n", addrEnv, h1)
	}
	if n := len(d.children); n < core.DefaultBucketProps().N {
		// The default quorums of a bucket with n=3 can never be met by fewer nodes.
		fmt.Fprintf(w, "  # buckets keep %d replicas by default, more than %d node(s) can hold: give each bucket n=%d first\n",
			core.DefaultBucketProps().N, n, n)
		fmt.Fprintf(w, "  quorumkv bucket demo --set '{\"n\":%d}'\n", n)
		fmt.Fprintf(w, "  quorumkv bucket redis --set '{\"n\":%d}'      # the Redis keys' bucket\n", n)
	}
	fmt.Fprintf(w, "  quorumkv put demo hello world\n")
	fmt.Fprintf(w, "  quorumkv get demo hello\n")
	fmt.Fprintf(w, "  quorumkv status\n")
	fmt.Fprintf(w, "  quorumkv ring --key demo/hello\n")
	fmt.Fprintf(w, "  curl -i -X PUT --data-binary world http://%s/v1/kv/demo/hello\n", h1)
	fmt.Fprintf(w, "  curl -i http://%s/v1/kv/demo/hello\n", hLast)
	if r := n1.addr("resp"); r != "-" {
		if _, port, err := net.SplitHostPort(r); err == nil {
			fmt.Fprintf(w, "  redis-cli -p %s INCRBY visits 1\n", port)
		}
	}
	if n := len(d.children); n <= core.DefaultBucketProps().N {
		fmt.Fprintf(w, "\nWith %d node(s) every node is a replica of every key (n=%d): a node that is down has no\n"+
			"stand-in, so no fallback or hint can be seen. Run 'quorumkv dev --nodes 5' to watch sloppy quorum\n"+
			"and hinted handoff.\n", n, min(n, core.DefaultBucketProps().N))
	}
	fmt.Fprintln(w, "\nCtrl-C stops the cluster. A node that exits stays down until you press Enter here.")
}

// addr is the bound address the child reported (or the one it was given).
func (c *devChild) addr(kind string) string {
	if a := c.ready[kind]; a != "" {
		return a
	}
	given := map[string]string{"http": c.http, "resp": c.resp, "rpc": c.rpc, "gossip": c.gossip}[kind]
	return dash(given)
}

// parseReady parses "quorumkv ready id=n1 http=... resp=..." into its fields.
func parseReady(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(strings.TrimPrefix(line, readyPrefix)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

// readyWriter is a child's stdout: it copies everything to out and sends the first
// line starting with readyPrefix to ready. exec calls Write from one goroutine.
type readyWriter struct {
	out   io.Writer
	ready chan<- string
	buf   []byte
	sent  bool
	mu    sync.Mutex
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sent {
		w.buf = append(w.buf, p...)
		for {
			i := bytes.IndexByte(w.buf, '\n')
			if i < 0 {
				break
			}
			line := string(w.buf[:i])
			w.buf = w.buf[i+1:]
			if strings.HasPrefix(line, readyPrefix) {
				w.ready <- line
				w.sent = true
				w.buf = nil
				break
			}
		}
		if len(w.buf) > 64<<10 { // no line this long is a ready line
			w.buf = nil
		}
	}
	_, _ = w.out.Write(p)
	return len(p), nil
}
