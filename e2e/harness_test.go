// Package e2e tests quorumkv as users run it: real `quorumkv server` processes on loopback
// ports chosen at run time, killed with SIGKILL, paused, restarted.
package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/pki"
	"github.com/quorumkv/quorumkv/internal/testbin"
)

var binary string

// secureMode runs every cluster of the suite as a production node runs: TLS for clients,
// mutual TLS between nodes, an encrypted gossip, --auth (CI runs the suite once so).
var secureMode = os.Getenv("QUORUMKV_E2E_SECURE") == "1"

// e2eAdminPassword is the first admin's password in secure clusters.
const e2eAdminPassword = "e2e-admin-password"

// secure is a cluster's certificates, gossip key and the client settings to reach it.
type secure struct {
	dir string
	tls *tls.Config
}

// newSecure writes a CA, certificates for n1..nSize and a gossip key under dir.
func newSecure(t *testing.T, dir string, size int) *secure {
	t.Helper()
	var names []string
	for i := 1; i <= size; i++ {
		names = append(names, fmt.Sprintf("n%d", i))
	}
	if _, err := pki.Generate(dir, pki.Options{Nodes: names}); err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCAs(filepath.Join(dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return &secure{dir: dir, tls: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

// serverArgs are node id's security flags.
func (s *secure) serverArgs(id string) []string {
	cf, kf := pki.NodeFiles(id)
	return []string{"--tls-cert", filepath.Join(s.dir, cf), "--tls-key", filepath.Join(s.dir, kf),
		"--tls-ca", filepath.Join(s.dir, pki.CAFile), "--gossip-key", filepath.Join(s.dir, pki.GossipFile), "--auth"}
}

func TestMain(m *testing.M) { os.Exit(testbin.Run(m, "../cmd/quorumkv", &binary)) }

// freePort asks the kernel for an unused loopback port.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// proc is one server process and the addresses it keeps across restarts.
type proc struct {
	t                       *testing.T
	id, data                string
	http, resp, rpc, gossip string
	join                    []string
	extra                   []string // extra server flags (startClusterWith)
	sec                     *secure  // nil: plaintext, no auth
	cmd                     *exec.Cmd
	exited                  chan struct{}
	logPath                 string
}

type cluster struct {
	t     *testing.T
	procs []*proc
}

// startCluster starts size nodes (n1 first; the rest join it) and waits until every node
// sees every member alive.
func startCluster(t *testing.T, size int) *cluster {
	t.Helper()
	return startClusterWith(t, size)
}

// startClusterWith is startCluster with extra server flags for every node (kept across
// restarts), e.g. "--hint-window", "2s".
func startClusterWith(t *testing.T, size int, extra ...string) *cluster {
	t.Helper()
	return startClusterMode(t, size, secureMode, extra...)
}

// startClusterMode is startClusterWith in the given mode: secured (TLS, mTLS, gossip
// key, --auth) or open.
func startClusterMode(t *testing.T, size int, secured bool, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t}
	root := t.TempDir()
	var sec *secure
	if secured {
		sec = newSecure(t, filepath.Join(root, "certs"), size)
	}
	for i := 1; i <= size; i++ {
		p := &proc{t: t, id: fmt.Sprintf("n%d", i), data: filepath.Join(root, fmt.Sprintf("n%d", i)),
			http: freePort(t), resp: freePort(t), rpc: freePort(t), gossip: freePort(t), extra: extra, sec: sec}
		p.logPath = filepath.Join(root, p.id+".log")
		if i > 1 {
			p.join = []string{c.procs[0].gossip}
		}
		c.procs = append(c.procs, p)
		p.startFresh()
	}
	c.stopAtCleanup()
	c.waitAlive(size)
	return c
}

// stopAtCleanup kills every node when the test ends, after showing the last lines of each
// node's log if it failed.
func (c *cluster) stopAtCleanup() {
	t := c.t
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.kill()
		}
		if t.Failed() {
			for _, p := range c.procs {
				if b, err := os.ReadFile(p.logPath); err == nil {
					lines := strings.Split(string(b), "\n")
					if len(lines) > 40 {
						lines = lines[len(lines)-40:]
					}
					t.Logf("--- last log lines of %s ---\n%s", p.id, strings.Join(lines, "\n"))
				}
			}
		}
	})
}

// startFresh starts a node for the first time and waits until it is ready. A port chosen
// by freePort is free when chosen; another process (parallel test packages) may take it
// before the server binds it. Then it chooses again.
func (p *proc) startFresh() {
	p.t.Helper()
	for attempt := 0; ; attempt++ {
		if p.tryStart() {
			return
		}
		b, _ := os.ReadFile(p.logPath)
		if attempt == 4 || !strings.Contains(string(b), "address already in use") {
			p.t.Fatalf("%s exited before it was ready (log %s)", p.id, p.logPath)
		}
		p.http, p.resp, p.rpc, p.gossip = freePort(p.t), freePort(p.t), freePort(p.t), freePort(p.t)
	}
}

// start starts (or restarts) the node and waits until it is ready.
func (p *proc) start() {
	p.t.Helper()
	if !p.tryStart() {
		p.t.Fatalf("%s exited before it was ready (log %s)", p.id, p.logPath)
	}
}

// tryStart starts the node and waits until it is ready; false if it exited first.
func (p *proc) tryStart() bool {
	t := p.t
	t.Helper()
	args := []string{"server", "--id", p.id, "--data", p.data, "--http", p.http, "--resp", p.resp,
		"--rpc", p.rpc, "--gossip", p.gossip, "--debug-faults", "--log-level", "debug"}
	if len(p.join) > 0 {
		args = append(args, "--join", strings.Join(p.join, ","))
	}
	if p.sec != nil {
		args = append(args, p.sec.serverArgs(p.id)...)
	}
	args = append(args, p.extra...)
	cmd := exec.Command(binary, args...)
	if p.sec != nil {
		cmd.Env = append(os.Environ(), "QUORUMKV_ADMIN_PASSWORD="+e2eAdminPassword)
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.id, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "quorumkv ready") {
				select {
				case ready <- line:
				default:
				}
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	select {
	case <-ready:
		return true
	case <-p.exited:
		return false
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready within 30s", p.id)
		return false
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *proc) kill() { p.signalAndWait(syscall.SIGKILL) }

// stop sends SIGTERM (a clean stop) and waits for the process to be gone.
func (p *proc) stop() { p.signalAndWait(syscall.SIGTERM) }

func (p *proc) signalAndWait(sig os.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	<-p.exited
}

func (p *proc) client() *client.Client { return p.clientWith() }

// clientWith is a client of p's HTTP API with opts, over TLS as admin in a secure cluster.
func (p *proc) clientWith(opts ...client.Option) *client.Client {
	if p.sec != nil {
		opts = append(opts, client.WithTLS(p.sec.tls), client.WithCredentials("admin", e2eAdminPassword))
	}
	return client.New(p.http, opts...)
}

// httpGet GETs path from p's HTTP API (HTTPS as admin in a secure cluster).
func (p *proc) httpGet(path string) (*http.Response, error) {
	if p.sec == nil {
		return http.Get("http://" + p.http + path)
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+p.http+path, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("admin", e2eAdminPassword)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.sec.tls}, Timeout: 10 * time.Second}
	return hc.Do(req)
}

// dialHTTP opens a raw connection to p's HTTP port (TLS in a secure cluster) and returns
// the Authorization header line a request on it needs ("" in an open cluster).
func (p *proc) dialHTTP() (net.Conn, string, error) {
	if p.sec == nil {
		c, err := net.Dial("tcp", p.http)
		return c, "", err
	}
	c, err := tls.Dial("tcp", p.http, p.sec.tls)
	if err != nil {
		return nil, "", err
	}
	cred := base64.StdEncoding.EncodeToString([]byte("admin:" + e2eAdminPassword))
	return c, "Authorization: Basic " + cred + "\r\n", nil
}

// cli runs the quorumkv binary against p with the client flags and environment its
// cluster needs.
func (p *proc) cli(args ...string) *exec.Cmd {
	args = append(args, "--addr", p.http)
	cmd := exec.Command(binary, args...)
	if p.sec != nil {
		cmd.Env = append(os.Environ(), "QUORUMKV_USER=admin", "QUORUMKV_PASSWORD="+e2eAdminPassword,
			"QUORUMKV_TLS_CA="+filepath.Join(p.sec.dir, pki.CAFile))
	}
	return cmd
}

func (c *cluster) node(id string) *proc {
	for _, p := range c.procs {
		if p.id == id {
			return p
		}
	}
	c.t.Fatalf("no node %s", id)
	return nil
}

// waitAlive waits until every running node reports want members alive.
func (c *cluster) waitAlive(want int) {
	c.t.Helper()
	c.waitFor(30*time.Second, fmt.Sprintf("%d alive members on every running node", want), func() bool {
		for _, p := range c.procs {
			select {
			case <-p.exited:
				continue
			default:
			}
			ci, err := p.client().Cluster(context.Background())
			if err != nil {
				return false
			}
			alive := 0
			for _, n := range ci.Nodes {
				if n.State == "alive" {
					alive++
				}
			}
			if alive != want {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond until it holds or the deadline passes.
func (c *cluster) waitFor(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
