// Package container tests quorumkv as deployed: the repository's Dockerfile built into an
// image, deploy/compose.yaml started as a 5-node cluster over 3 zones, and real faults
// injected from outside the processes (Jepsen style): the network cut with
// `docker network disconnect`, SIGKILL with `docker kill`, `docker pause`, and a clean
// stop and restart on the same volume. Workloads run through the published ports (an
// add-wins set and a counter over the Redis protocol, a read-modify-write register with
// siblings over HTTP); after the faults heal and anti-entropy runs, every acknowledged
// update must be on every node, nothing never written may appear, and the replicas must
// converge.
//
// With QUORUMKV_E2E_SECURE=1 the cluster runs secured, as deploy/compose.tls.yaml sets it
// up: certificates from 'quorumkv certs', TLS for HTTP and Redis, mutual TLS between the
// nodes, an encrypted gossip and --auth; the workloads log in as the first admin.
//
// It needs a Docker engine and docker-compose (or the compose plugin); without them it
// skips, saying what is missing, except under CI=true, where it fails. The host ports
// and the network's subnet are chosen at run time, and the compose project has a name of
// its own, so runs do not collide with each other or with a user's cluster.
package container

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/pki"
)

// nodeNames are the services of deploy/compose.yaml.
var nodeNames = []string{"n1", "n2", "n3", "n4", "n5"}

// tools are the commands the suite runs: docker and the compose command that works here.
type tools struct {
	compose []string // "docker-compose" or "docker compose"
}

// requireTools finds a Docker engine and a compose command, or skips the test (fails it
// under CI=true) naming what is missing.
func requireTools(t *testing.T) tools {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("docker"); err != nil {
		missing = append(missing, "the docker command")
	} else if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		missing = append(missing, fmt.Sprintf("a running Docker engine (docker info: %s)", strings.TrimSpace(string(out))))
	}
	var tl tools
	if _, err := exec.LookPath("docker-compose"); err == nil {
		tl.compose = []string{"docker-compose"}
	} else if err := exec.Command("docker", "compose", "version").Run(); err == nil {
		tl.compose = []string{"docker", "compose"}
	} else {
		missing = append(missing, "docker-compose (Debian: apt-get install docker-compose) or the docker compose plugin")
	}
	if len(missing) > 0 {
		msg := "container fault suite needs " + strings.Join(missing, " and ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: failing instead of skipping)")
		}
		t.Skip(msg)
	}
	return tl
}

// repoRoot is the repository's top directory (this package is e2e/container).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "Dockerfile")); err != nil {
		t.Fatalf("no Dockerfile at %s: %v", root, err)
	}
	return root
}

// run runs a command and returns its combined output; the error carries the output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// image is a built image and what it cost.
type image struct {
	tag       string
	size      int64 // bytes
	buildTime time.Duration
}

// buildImage builds the repository's Dockerfile the way scripts/docker-build.sh does,
// in a context directory of its own (the repository's dist/ is left alone).
func buildImage(t *testing.T) image {
	t.Helper()
	root := repoRoot(t)
	ctxDir := t.TempDir()
	start := time.Now()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(ctxDir, "dist", "quorumkv"), "./cmd/quorumkv")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the static binary: %v\n%s", err, out)
	}
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ctxDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(ctxDir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := image{tag: "quorumkv-e2e:" + randomName(8)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := run(ctx, nil, "docker", "build", "-q", "-t", img.tag, ctxDir); err != nil {
		t.Fatal(err)
	}
	img.buildTime = time.Since(start)
	t.Cleanup(func() { _, _ = run(context.Background(), nil, "docker", "rmi", "-f", img.tag) })
	out, err := run(ctx, nil, "docker", "image", "inspect", "--format", "{{.Size}}", img.tag)
	if err != nil {
		t.Fatal(err)
	}
	img.size, _ = strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	return img
}

// checkImage checks what the image holds: the binary and the data directory, owned by
// the non-root user it runs as, and nothing else (no shell, no libc); and that its
// health check is quorumkv healthcheck.
func checkImage(t *testing.T, img image) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	saved := exec.CommandContext(ctx, "docker", "save", img.tag)
	out, err := saved.Output()
	if err != nil {
		t.Fatalf("docker save: %v", err)
	}
	// The saved archive holds each layer as a tar of its own (legacy layout: */layer.tar;
	// OCI layout: blobs/sha256/*); other entries (JSON) do not read as tars.
	files := map[string]string{}
	outer := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := outer.Next()
		if err != nil {
			break
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		body, _ := io.ReadAll(outer)
		layer := tar.NewReader(bytes.NewReader(body))
		for {
			lh, err := layer.Next()
			if err != nil {
				break
			}
			files[strings.TrimSuffix(lh.Name, "/")] = fmt.Sprintf("%o %d:%d", lh.Mode&0o7777, lh.Uid, lh.Gid)
		}
	}
	want := map[string]string{"quorumkv": "755 0:0", "data": "755 65532:65532"}
	if !maps.Equal(files, want) {
		t.Errorf("image files %v, want only %v", files, want)
	}
	cfg, err := run(ctx, nil, "docker", "image", "inspect", "--format", "{{.Config.User}} {{json .Config.Healthcheck.Test}} {{json .Config.Entrypoint}}", img.tag)
	if err != nil {
		t.Fatal(err)
	}
	if w := `65532:65532 ["CMD","/quorumkv","healthcheck"] ["/quorumkv"]`; strings.TrimSpace(cfg) != w {
		t.Errorf("image config %q, want %q", strings.TrimSpace(cfg), w)
	}
}

// randomName is n random hex digits: names of this run's image and project (not from
// the seed: two runs with one seed must not collide).
func randomName(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// node is one container of the cluster and how the host reaches it.
type node struct {
	name      string
	container string // container id
	ip        string // fixed address on the cluster network
	http      string // host:port published for the HTTP API
	resp      string // host:port published for the Redis protocol
}

func (n *node) client() *client.Client { return n.clientWith(10 * time.Second) }

// secureMode runs the suite's cluster secured (see the package doc).
var secureMode = os.Getenv("QUORUMKV_E2E_SECURE") == "1"

// adminPassword is the first admin's password in a secured cluster.
const adminPassword = "container-admin-password"

// clientTLS trusts the secured cluster's CA (nil: an open cluster).
var clientTLS *tls.Config

// clientWith is a client of the node's HTTP API with a timeout, over TLS as admin in a
// secured cluster.
func (n *node) clientWith(d time.Duration) *client.Client {
	opts := []client.Option{client.WithTimeout(d)}
	if clientTLS != nil {
		opts = append(opts, client.WithTLS(clientTLS), client.WithCredentials("admin", adminPassword))
	}
	return client.New(n.http, opts...)
}

// secureFiles writes certificates for the five nodes into a directory the containers'
// user can read, and returns the compose override that mounts them there.
func secureFiles(t *testing.T) (override string, env []string) {
	t.Helper()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if _, err := pki.Generate(certs, pki.Options{Nodes: nodeNames}); err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCAs(filepath.Join(certs, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	clientTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	// The node's user (65532) reads its key: the files are the test's, in its temporary
	// directory, so they are made readable rather than chowned (which needs root).
	entries, _ := os.ReadDir(certs)
	for _, e := range entries {
		if err := os.Chmod(filepath.Join(certs, e.Name()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("services:\n")
	for _, n := range nodeNames {
		fmt.Fprintf(&b, "  %s:\n    volumes:\n      - %s:/certs:ro\n", n, certs)
	}
	override = filepath.Join(dir, "certs.yaml")
	if err := os.WriteFile(override, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return override, []string{"QKV_ADMIN_PASSWORD=" + adminPassword}
}

// cluster is a compose project started from deploy/compose.yaml plus an override.
type cluster struct {
	t       *testing.T
	tl      tools
	project string
	files   []string
	env     []string
	network string
	nodes   []*node
}

// startCluster starts the compose cluster with img on a subnet and host ports chosen
// now, and no restart policy (the test restarts what it kills). It returns
// once every node serves and sees all five members alive, and the time that took.
func startCluster(t *testing.T, tl tools, img image) (*cluster, time.Duration) {
	t.Helper()
	c := &cluster{t: t, tl: tl, project: "qkve2e" + randomName(8)}
	t.Cleanup(c.down)
	var took time.Duration
	for attempt := 0; ; attempt++ {
		// Host ports chosen now, not by Docker at each start: a restarted container
		// keeps them, so the clients keep reaching it.
		c.nodes = nil
		c.env = []string{"QKV_IMAGE=" + img.tag, "QKV_BIND=127.0.0.1"}
		for _, n := range nodeNames {
			nd := &node{name: n, http: freePort(t), resp: freePort(t)}
			c.nodes = append(c.nodes, nd)
			up := strings.ToUpper(n)
			c.env = append(c.env, "QKV_"+up+"_HTTP="+portOf(nd.http), "QKV_"+up+"_RESP="+portOf(nd.resp))
		}
		subnet, ips := pickSubnet()
		for i, nd := range c.nodes {
			nd.ip = ips[i]
		}
		override := filepath.Join(t.TempDir(), "override.yaml")
		if err := os.WriteFile(override, []byte(overrideYAML(subnet, ips)), 0o644); err != nil {
			t.Fatal(err)
		}
		c.files = []string{filepath.Join(repoRoot(t), "deploy", "compose.yaml"), override}
		if secureMode {
			certsOverride, env := secureFiles(t)
			c.files = []string{filepath.Join(repoRoot(t), "deploy", "compose.yaml"),
				filepath.Join(repoRoot(t), "deploy", "compose.tls.yaml"), certsOverride, override}
			c.env = append(c.env, env...)
		}
		start := time.Now()
		_, err := c.compose(3*time.Minute, "up", "-d")
		if err == nil {
			c.waitServing(2 * time.Minute)
			took = time.Since(start)
			c.discover()
			break
		}
		// Another network may hold the subnet, another process a port: choose again.
		if attempt < 4 && (strings.Contains(err.Error(), "overlap") || strings.Contains(err.Error(), "already")) {
			c.down()
			continue
		}
		t.Fatal(err)
	}
	return c, took
}

// pickSubnet chooses a /24 in 10.128.0.0/9 and the nodes' addresses in it.
func pickSubnet() (string, []string) {
	a, _ := rand.Int(rand.Reader, big.NewInt(128))
	b, _ := rand.Int(rand.Reader, big.NewInt(256))
	prefix := fmt.Sprintf("10.%d.%d.", 128+a.Int64(), b.Int64())
	var ips []string
	for i := range nodeNames {
		ips = append(ips, prefix+strconv.Itoa(11+i))
	}
	return prefix + "0/24", ips
}

// overrideYAML fixes each node's address, so that a container reconnected to the network
// (docker network connect --ip) or restarted keeps it: a node announces the address it
// bound, and a new one would strand its listeners. It also turns automatic restarts off
// and shortens the handoff retry interval.
func overrideYAML(subnet string, ips []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "networks:\n  default:\n    ipam:\n      config:\n        - subnet: %s\nservices:\n", subnet)
	for i, n := range nodeNames {
		fmt.Fprintf(&b, "  %s:\n    restart: \"no\"\n    environment:\n      QUORUMKV_HANDOFF_INTERVAL: 2s\n", n)
		fmt.Fprintf(&b, "    networks:\n      default:\n        ipv4_address: %s\n", ips[i])
	}
	return b.String()
}

// compose runs the compose command on this project.
func (c *cluster) compose(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{}, c.tl.compose[1:]...)
	full = append(full, "-p", c.project)
	for _, f := range c.files {
		full = append(full, "-f", f)
	}
	return run(ctx, c.env, c.tl.compose[0], append(full, args...)...)
}

// docker runs a docker command, failing the test on an error.
func (c *cluster) docker(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := run(ctx, nil, "docker", args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// discover finds each node's container and the cluster's network.
func (c *cluster) discover() {
	c.t.Helper()
	for _, n := range c.nodes {
		n.container = c.docker("ps", "-q", "--filter", "label=com.docker.compose.project="+c.project,
			"--filter", "label=com.docker.compose.service="+n.name)
		if n.container == "" || strings.Contains(n.container, "\n") {
			c.t.Fatalf("want one container for %s, have %q", n.name, n.container)
		}
	}
	c.network = c.docker("inspect", "--format", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}", c.nodes[0].container)
}

// waitServing waits until every node answers and sees every node alive.
func (c *cluster) waitServing(d time.Duration) {
	c.t.Helper()
	want := len(c.nodes)
	var last string
	err := poll(d, func() bool {
		for _, n := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			ci, err := n.clientWith(2 * time.Second).Cluster(ctx)
			cancel()
			if err != nil {
				last = fmt.Sprintf("%s: %v", n.name, err)
				return false
			}
			alive := 0
			for _, m := range ci.Nodes {
				if m.State == "alive" {
					alive++
				}
			}
			if alive != want {
				last = fmt.Sprintf("%s sees %d of %d alive", n.name, alive, want)
				return false
			}
		}
		return true
	})
	if err != nil {
		c.t.Fatalf("cluster not serving after %v: %s", d, last)
	}
}

// waitHealthy waits until Docker reports every container healthy (the image's
// HEALTHCHECK, which runs quorumkv healthcheck inside it).
func (c *cluster) waitHealthy(d time.Duration) {
	c.t.Helper()
	var last string
	if err := poll(d, func() bool {
		for _, n := range c.nodes {
			last = n.name + " " + c.docker("inspect", "--format", "{{.State.Health.Status}}", n.container)
			if last != n.name+" healthy" {
				return false
			}
		}
		return true
	}); err != nil {
		c.t.Fatalf("containers not healthy after %v: %s", d, last)
	}
}

// down removes the project: containers, network and volumes. On a failed test it first
// logs the end of every node's log.
func (c *cluster) down() {
	if c.t.Failed() {
		for _, n := range c.nodes {
			if n.container == "" {
				continue
			}
			out, _ := run(context.Background(), nil, "docker", "logs", "--tail", "30", n.container)
			c.t.Logf("--- last log lines of %s ---\n%s", n.name, out)
		}
	}
	if _, err := c.compose(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "2"); err != nil {
		c.t.Logf("compose down: %v", err)
	}
}

// freePort picks an unused loopback port below the kernel's ephemeral range, so that
// Docker holding it for the whole run never takes a port the kernel handed to another
// test (e2e restarts its processes on the ports they had, which the kernel may meanwhile
// give to anyone asking for port 0).
func freePort(t *testing.T) string {
	t.Helper()
	low := 32768 // Linux's default start of ip_local_port_range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				low = v
			}
		}
	}
	if low > 11000 {
		for range 100 {
			n, _ := rand.Int(rand.Reader, big.NewInt(int64(low-10000)))
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+int(n.Int64()))))
			if err == nil {
				addr := l.Addr().String()
				l.Close()
				return addr
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// poll checks cond every 100ms until it holds or d passes.
func poll(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
