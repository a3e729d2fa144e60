package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/bench"
)

func init() {
	register(&command{name: "bench", group: "Tools",
		args: "[--addrs A,B,C] [--clients 32] [--requests 20000] [--value-size 100] [--ops put,get] [--r R] [--w W] [--json]\n" +
			"       quorumkv bench --workload a|b|c|d|e|f [--records 10000] [--operations 100000] [--clients 32] [--no-load] [--progress] [--json]",
		summary: "HTTP load generator: puts and gets, or the YCSB core workloads", run: runBench})
}

const benchHelp = `
Without --workload: runs puts then gets against the nodes' HTTP APIs from concurrent
clients spread over the nodes, and prints ops/s and p50/p99/p99.9 latency for each.

With --workload: runs a YCSB core workload as YCSB defines it, so the figures compare with
published YCSB results: a (50% read, 50% update), b (95/5 read/update), c (100% read),
d (95% read, 5% insert, the newest records the most read), f (50% read, 50%
read-modify-write), e (95% scan, 5% insert: a scan is a listing page of 1..100 keys
from the start key's position in the store's order, by key hash, keys only — quorumkv
keeps no key order); keys drawn from YCSB's scrambled Zipfian (constant 0.99) over
--records keys named as YCSB names them. The load phase comes first unless --no-load: it
inserts --records records of --field-count x --field-length bytes (YCSB's 10 x 100;
--value-size sets the record size instead). Then --operations ops from --clients clients
(YCSB's threadcount). A record is one value: updates and inserts write all of it, reads
read all of it. The bucket is made last-write-wins first (YCSB's updates are blind
overwrites; on a siblings bucket each would add a sibling) unless --lww=false;
read-modify-writes pass the read's causal context. Prints, per phase and op type, ops,
errors, ops/s and p50/p95/p99/p99.9/max latency from HDR histograms, as a table or with
--json. A progress line (ops done, current rate, elapsed) goes to stderr when it is a
terminal, or with --progress.

--addrs defaults to every node of the cluster that --addr belongs to.`

func runBench(e *env, args []string) int {
	c := lookup("bench")
	fs := e.flags(c, benchHelp)
	cf := e.addClientFlags(fs, false)
	def := bench.DefaultConfig()
	ydef := bench.DefaultYCSBConfig()
	addrs := fs.String("addrs", "", "comma-separated `host:port` list of nodes (default: all nodes of --addr's cluster)")
	clients := fs.Int("clients", def.Clients, "concurrent `clients`")
	requests := fs.Int("requests", def.Requests, "`requests` per operation (without --workload)")
	size := fs.Int("value-size", def.ValueBytes, "value size in `bytes` (with --workload: the record size; default field-count x field-length)")
	ops := fs.String("ops", strings.Join(def.Ops, ","), "operations to run, in order (`put,get`; without --workload)")
	bucket := fs.String("bucket", def.Bucket, "`bucket` to use (with --workload: default "+ydef.Bucket+")")
	r := fs.String("r", "", "read quorum (`R`; default: the bucket's)")
	w := fs.String("w", "", "write quorum (`W`; default: the bucket's)")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	workload := fs.String("workload", "", "YCSB core `workload`: a, b, c, d or f")
	records := fs.Int64("records", ydef.Records, "YCSB recordcount: `records` loaded and drawn from")
	operations := fs.Int64("operations", ydef.Operations, "YCSB operationcount: `ops` of the run phase")
	fieldCount := fs.Int("field-count", 10, "YCSB fieldcount: `fields` per record")
	fieldLength := fs.Int("field-length", 100, "YCSB fieldlength: `bytes` per field")
	noLoad := fs.Bool("no-load", false, "skip the load phase (the records are there from an earlier run with the same --bucket and --records)")
	lww := fs.Bool("lww", ydef.LWW, "make the bucket last-write-wins before the run")
	seed := fs.Uint64("seed", ydef.Seed, "`seed` of the clients' random draws (op types, keys, values)")
	showProgress := fs.Bool("progress", false, "print the progress line on stderr even when it is not a terminal (with --workload)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var wl bench.Workload
	if *workload != "" {
		var err error
		if wl, err = bench.LookupWorkload(*workload); err != nil {
			return usageErr(fs, "%v", err)
		}
		for _, f := range []string{"requests", "ops"} {
			if set[f] {
				return usageErr(fs, "--%s is for the put/get mode; with --workload use --operations", f)
			}
		}
	} else {
		for _, f := range []string{"records", "operations", "field-count", "field-length", "no-load", "lww", "seed", "progress"} {
			if set[f] {
				return usageErr(fs, "--%s needs --workload", f)
			}
		}
	}

	var nodes []string
	if *addrs != "" {
		nodes = strings.Split(*addrs, ",")
	}
	if *workload != "" {
		cfg := ydef
		cfg.Addrs, cfg.Workload, cfg.Clients, cfg.R, cfg.W = nodes, wl, *clients, *r, *w
		cfg.Records, cfg.Operations, cfg.Load, cfg.LWW, cfg.Seed = *records, *operations, !*noLoad, *lww, *seed
		if set["bucket"] {
			cfg.Bucket = *bucket
		}
		if *fieldCount < 0 || *fieldLength < 0 {
			return usageErr(fs, "--field-count and --field-length must not be negative")
		}
		cfg.RecordBytes = *fieldCount * *fieldLength
		if set["value-size"] {
			cfg.RecordBytes = *size
		}
		if isTerminal(e.stderr) || *showProgress {
			cfg.Progress, cfg.ProgressLines = e.stderr, !isTerminal(e.stderr)
		}
		if len(cfg.Addrs) == 0 {
			if code := e.benchNodes(cf, &cfg.Addrs); code != exitOK {
				return code
			}
		}
		if err := cfg.Validate(); err != nil {
			return usageErr(fs, "%v", err)
		}
		return e.runYCSB(cfg, *asJSON, *noLoad)
	}

	cfg := def
	cfg.Addrs, cfg.Clients, cfg.Requests, cfg.ValueBytes, cfg.Bucket, cfg.R, cfg.W = nodes, *clients, *requests, *size, *bucket, *r, *w
	cfg.Ops = strings.Split(*ops, ",")
	cfg.Progress = e.stderr
	cfg.ProgressLines = !isTerminal(e.stderr)
	if len(cfg.Addrs) == 0 {
		if code := e.benchNodes(cf, &cfg.Addrs); code != exitOK {
			return code
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

// benchNodes sets addrs to the HTTP address of every alive node of --addr's cluster.
func (e *env) benchNodes(cf clientFlags, addrs *[]string) int {
	cl, err := cf.client().Cluster(context.Background())
	if err != nil {
		return e.apiFail(err, "")
	}
	for _, n := range sortedNodes(cl.Nodes) {
		if n.State == "alive" && n.HTTP != "" {
			*addrs = append(*addrs, n.HTTP)
		}
	}
	return exitOK
}

func (e *env) runYCSB(cfg bench.YCSBConfig, asJSON, noLoad bool) int {
	ctx, stop := e.signals()
	defer stop()
	load := fmt.Sprintf("load %d records of %d bytes, then ", cfg.Records, cfg.RecordBytes)
	if noLoad {
		load = ""
	}
	fmt.Fprintf(e.stderr, "bench: YCSB workload %s (%s): %s%d operations; %d clients over %d nodes, bucket %s\n",
		cfg.Workload.Name, cfg.Workload, load, cfg.Operations, cfg.Clients, len(cfg.Addrs), cfg.Bucket)
	start := time.Now()
	rep, err := bench.RunYCSB(ctx, cfg)
	if err != nil {
		if rep == nil || !errors.Is(err, bench.ErrLoadFailed) {
			fmt.Fprintf(e.stderr, "quorumkv: bench: %v\n", err)
			return exitFail
		}
	}
	if asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
	} else {
		rep.WriteText(e.stdout)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "quorumkv: bench: %v (after %.1f s)\n", err, time.Since(start).Seconds())
		return exitFail
	}
	return exitOK
}
