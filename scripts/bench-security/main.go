// Command bench-security measures what TLS and --auth cost: two 3-node clusters of real
// 'quorumkv server' processes on loopback, one open and one with TLS, mutual TLS between
// nodes, an encrypted gossip and --auth, driven by the same workload in alternating
// pairs (per operation: open then secured, then the other way round), so that both see
// the same machine. It prints the
// median throughput and p99 latency of each operation and their ratio.
//
//	go run ./scripts/bench-security [-rounds 3] [-requests 10000] [-clients 32]
//
// Operations: HTTP PUT and GET of 100-byte values (the client keeps its connections, as
// any real client does: TLS handshakes and password checks are paid once per connection),
// and Redis SET and GET over a go-redis pool.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumkv/quorumkv/internal/pki"
)

const adminPassword = "bench-admin-password"

type node struct {
	http, resp string
	cmd        *exec.Cmd
}

type cluster struct {
	name   string
	nodes  []*node
	tls    *tls.Config // nil: open
	hc     *http.Client
	rdb    []*redis.Client
	scheme string
}

func main() {
	rounds := flag.Int("rounds", 3, "rounds per mode")
	requests := flag.Int("requests", 10000, "requests per operation and round")
	clients := flag.Int("clients", 32, "concurrent clients")
	flag.Parse()
	if err := run(*rounds, *requests, *clients); err != nil {
		fmt.Fprintln(os.Stderr, "bench-security:", err)
		os.Exit(1)
	}
}

func run(rounds, requests, clients int) error {
	dir, err := os.MkdirTemp("", "qkv-bench-sec-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "quorumkv")
	build := exec.Command("go", "build", "-o", bin, "./cmd/quorumkv")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	certs := filepath.Join(dir, "certs")
	if _, err := pki.Generate(certs, pki.Options{Nodes: []string{"n1", "n2", "n3"}}); err != nil {
		return err
	}
	open, err := start(bin, filepath.Join(dir, "open"), "", clients)
	if err != nil {
		return err
	}
	defer open.stop()
	secured, err := start(bin, filepath.Join(dir, "secured"), certs, clients)
	if err != nil {
		return err
	}
	defer secured.stop()

	ops := []string{"http-put", "http-get", "resp-set", "resp-get"}
	type sample struct{ rps, p99 float64 }
	results := map[string]map[string][]sample{}
	for _, c := range []*cluster{open, secured} {
		results[c.name] = map[string][]sample{}
	}
	// Per operation, the two modes run back to back, in alternating order from round to
	// round, after one warm-up pair: on a shared machine whose load drifts, each pair sees
	// about the same load, and the medians compare like with like.
	for r := -1; r < rounds; r++ {
		for _, op := range ops {
			pair := []*cluster{open, secured}
			if r%2 != 0 {
				pair = []*cluster{secured, open}
			}
			for _, c := range pair {
				rps, p99, err := c.load(op, requests, clients, r+1)
				if err != nil {
					return fmt.Errorf("%s %s: %w", c.name, op, err)
				}
				if r < 0 {
					continue // warm-up
				}
				results[c.name][op] = append(results[c.name][op], sample{rps, p99})
				fmt.Fprintf(os.Stderr, "round %d %-8s %-9s %8.0f req/s  p99 %6.2f ms\n", r+1, c.name, op, rps, p99)
			}
		}
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	fmt.Printf("medians of %d rounds, %d requests per op and round, %d clients, 3 nodes each, 100-byte values\n\n", rounds, requests, clients)
	fmt.Printf("| op | open req/s | TLS+auth req/s | ratio | open p99 ms | TLS+auth p99 ms | ratio |\n|---|---|---|---|---|---|---|\n")
	for _, op := range ops {
		var or, sr, op99, sp99 []float64
		for _, s := range results["open"][op] {
			or, op99 = append(or, s.rps), append(op99, s.p99)
		}
		for _, s := range results["secured"][op] {
			sr, sp99 = append(sr, s.rps), append(sp99, s.p99)
		}
		fmt.Printf("| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |\n", op, median(or), median(sr), median(sr)/median(or),
			median(op99), median(sp99), median(sp99)/median(op99))
	}
	return nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start runs a 3-node cluster; with certs it is secured.
func start(bin, dir, certs string, clients int) (*cluster, error) {
	c := &cluster{name: "open", scheme: "http"}
	if certs != "" {
		c.name, c.scheme = "secured", "https"
		pool, err := pki.LoadCAs(filepath.Join(certs, pki.CAFile))
		if err != nil {
			return nil, err
		}
		c.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	var seed string
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		var addrs [4]string
		for j := range addrs {
			a, err := freePort()
			if err != nil {
				return nil, err
			}
			addrs[j] = a
		}
		args := []string{"server", "--id", id, "--data", filepath.Join(dir, id), "--http", addrs[0], "--resp", addrs[1],
			"--rpc", addrs[2], "--gossip", addrs[3], "--log-level", "warn"}
		if seed != "" {
			args = append(args, "--join", seed)
		} else {
			seed = addrs[3]
		}
		if certs != "" {
			cf, kf := pki.NodeFiles(id)
			args = append(args, "--tls-cert", filepath.Join(certs, cf), "--tls-key", filepath.Join(certs, kf),
				"--tls-ca", filepath.Join(certs, pki.CAFile), "--gossip-key", filepath.Join(certs, pki.GossipFile), "--auth")
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "QUORUMKV_ADMIN_PASSWORD="+adminPassword)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		n := &node{http: addrs[0], resp: addrs[1], cmd: cmd}
		c.nodes = append(c.nodes, n)
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "quorumkv ready") {
					ready <- true
				}
			}
			close(ready)
		}()
		select {
		case ok := <-ready:
			if !ok {
				c.stop()
				return nil, fmt.Errorf("%s %s exited", c.name, id)
			}
		case <-time.After(30 * time.Second):
			c.stop()
			return nil, fmt.Errorf("%s %s not ready", c.name, id)
		}
	}
	tr := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients, IdleConnTimeout: time.Minute, TLSClientConfig: c.tls}
	c.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	for _, n := range c.nodes {
		o := &redis.Options{Addr: n.resp, PoolSize: clients, TLSConfig: c.tls}
		if c.tls != nil {
			o.Username, o.Password = "admin", adminPassword
		}
		c.rdb = append(c.rdb, redis.NewClient(o))
	}
	// Wait until every node sees three members and writes succeed at W=quorum.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.request(http.MethodPut, 0, "/v1/kv/bench/warm", []byte("x"))
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("%s: no write within 30s: %w", c.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *cluster) stop() {
	for _, r := range c.rdb {
		_ = r.Close()
	}
	for _, n := range c.nodes {
		if n.cmd.Process != nil {
			_ = n.cmd.Process.Signal(os.Interrupt)
			_ = n.cmd.Wait()
		}
	}
}

func (c *cluster) request(method string, node int, path string, body []byte) error {
	req, err := http.NewRequest(method, c.scheme+"://"+c.nodes[node].http+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if c.tls != nil {
		req.SetBasicAuth("admin", adminPassword)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil
}

// load runs requests of op from clients goroutines; it returns requests per second and
// the p99 latency in ms.
func (c *cluster) load(op string, requests, clients, round int) (float64, float64, error) {
	value := bytes.Repeat([]byte("v"), 100)
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	ctx := context.Background()
	begin := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := w % len(c.nodes)
			for {
				i := next.Add(1) - 1
				if i >= int64(requests) {
					return
				}
				key := fmt.Sprintf("k%d-%d", round, i)
				t0 := time.Now()
				var err error
				switch op {
				case "http-put":
					err = c.request(http.MethodPut, node, "/v1/kv/bench/"+key, value)
				case "http-get":
					err = c.request(http.MethodGet, node, "/v1/kv/bench/"+key, nil)
				case "resp-set":
					err = c.rdb[node].Set(ctx, key, value, 0).Err()
				case "resp-get":
					err = c.rdb[node].Get(ctx, key).Err()
				}
				lat[w] = append(lat[w], time.Since(t0))
				if err != nil && firstErr.Load() == nil {
					firstErr.Store(err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if e := firstErr.Load(); e != nil {
		return 0, 0, e.(error)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	p99 := all[len(all)*99/100]
	return float64(requests) / elapsed.Seconds(), float64(p99.Microseconds()) / 1000, nil
}
