package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/bench"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/testcluster"
)

// TestBenchWorkloadA runs `quorumkv bench --workload a` briefly against an in-process
// 3-node cluster: the load inserts every record, the run does every op, and the counts
// per op type add up to the totals.
func TestBenchWorkloadA(t *testing.T) {
	nodes := testcluster.Start(t, 3, func(cfg *node.Config) {
		cfg.HTTPHandler = api.Handler(nil, false, cfg.MaxValueBytes)
	})
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.HTTPAddr())
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "--workload", "a", "--addrs", strings.Join(addrs, ","),
		"--records", "200", "--operations", "1000", "--clients", "8", "--field-length", "20", "--progress", "--json"},
		strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var rep bench.YCSBReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if rep.Workload != "a" || rep.Nodes != 3 || rep.RecordBytes != 200 || rep.Bucket != "ycsb" {
		t.Fatalf("report header %+v", rep)
	}
	if rep.Load == nil || rep.Load.Total.Ops != 200 || rep.Load.Total.Errors != 0 {
		t.Fatalf("load %+v", rep.Load)
	}
	var sum, errs int64
	ops := map[string]int64{}
	for _, o := range rep.Run.ByOp {
		sum += o.Ops
		errs += o.Errors
		ops[o.Op] = o.Ops
	}
	if sum != 1000 || rep.Run.Total.Ops != 1000 || ops["read"] == 0 || ops["update"] == 0 || ops["read"]+ops["update"] != 1000 {
		t.Fatalf("run: total %+v, by op %v", rep.Run.Total, ops)
	}
	if errs != rep.Run.Total.Errors || rep.Run.Total.Errors != 0 || rep.Run.Total.NotFound != 0 {
		t.Fatalf("run: errors %d, total %+v (first error %q)", errs, rep.Run.Total, rep.Run.FirstError)
	}
	if rep.Run.Total.P50US <= 0 || rep.Run.Total.OpsPerS <= 0 {
		t.Fatalf("run figures %+v", rep.Run.Total)
	}
	if !strings.Contains(stderr.String(), "run a: 1000/1000 ops") {
		t.Errorf("no progress line on stderr:\n%s", stderr.String())
	}
}

// TestBenchWorkloadUsage: an unknown workload and mixed-up flags are usage errors that say
// why.
func TestBenchWorkloadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--workload", "z"}, `unknown workload "z"`},
		{[]string{"--workload", "a", "--requests", "5"}, "--requests is for the put/get mode"},
		{[]string{"--records", "5"}, "--records needs --workload"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"bench", "--addrs", "127.0.0.1:1"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
