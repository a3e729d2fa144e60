package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/quorumkv/quorumkv/internal/bench"
)

func init() {
	register(&command{name: "bench", group: "Tools",
		args:    "[--addrs A,B,C] [--clients 32] [--requests 20000] [--value-size 100] [--ops put,get] [--r R] [--w W] [--json]",
		summary: "HTTP load generator: throughput and latency percentiles", run: runBench})
}

func runBench(e *env, args []string) int {
	c := lookup("bench")
	fs := e.flags(c, `
Runs puts then gets against the nodes' HTTP APIs from concurrent clients spread over the
nodes, and prints ops/s and p50/p99/p99.9 latency for each. --addrs defaults to every node
of the cluster that --addr belongs to.`)
	cf := e.addClientFlags(fs, false)
	def := bench.DefaultConfig()
	addrs := fs.String("addrs", "", "comma-separated `host:port` list of nodes (default: all nodes of --addr's cluster)")
	clients := fs.Int("clients", def.Clients, "concurrent `clients`")
	requests := fs.Int("requests", def.Requests, "`requests` per operation")
	size := fs.Int("value-size", def.ValueBytes, "value size in `bytes`")
	ops := fs.String("ops", strings.Join(def.Ops, ","), "operations to run, in order (`put,get`)")
	bucket := fs.String("bucket", def.Bucket, "`bucket` to use")
	r := fs.String("r", "", "read quorum (`R`; default: the bucket's)")
	w := fs.String("w", "", "write quorum (`W`; default: the bucket's)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	cfg := def
	cfg.Clients, cfg.Requests, cfg.ValueBytes, cfg.Bucket, cfg.R, cfg.W = *clients, *requests, *size, *bucket, *r, *w
	cfg.Ops = strings.Split(*ops, ",")
	cfg.Progress = e.stderr
	cfg.ProgressLines = !isTerminal(e.stderr)
	if *addrs != "" {
		cfg.Addrs = strings.Split(*addrs, ",")
	} else {
		cl, err := cf.client().Cluster(context.Background())
		if err != nil {
			return e.apiFail(err, "")
		}
		for _, n := range sortedNodes(cl.Nodes) {
			if n.State == "alive" && n.HTTP != "" {
				cfg.Addrs = append(cfg.Addrs, n.HTTP)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return usageErr(fs, "%v", err)
	}
	ctx, stop := e.signals()
	defer stop()
	fmt.Fprintf(e.stderr, "bench: %d clients over %d nodes, %d requests per op, %d-byte values\n",
		cfg.Clients, len(cfg.Addrs), cfg.Requests, cfg.ValueBytes)
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "quorumkv: bench: %v\n", err)
		return exitFail
	}
	if *asJSON {
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	for _, r := range res {
		fmt.Fprintln(e.stdout, r)
	}
	return exitOK
}
