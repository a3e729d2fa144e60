package main

import (
	"encoding/json"
	"fmt"

	"github.com/quorumkv/quorumkv/client"
)

func init() {
	register(&command{name: "repair", group: "Cluster", args: "[--partition P] [--node ID] [--json]",
		summary: "run anti-entropy now, with a progress bar and a summary", run: runRepair})
}

func runRepair(e *env, args []string) int {
	c := lookup("repair")
	fs := e.flags(c, `
Asks the node at --addr to compare, now, its hash trees with the other primaries of every
partition it holds (or of one --partition, or only with one --node), and to repair every
key that differs. Shows a progress bar (plain lines every 2s when stderr is not a
terminal), then what it compared, found and repaired.`)
	cf := e.addClientFlags(fs, false)
	partition := fs.Int("partition", -1, "only this `partition` (default: all)")
	peer := fs.String("node", "", "only exchanges with this node `id` (default: all)")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	opts := client.RepairOptions{Node: *peer}
	if *partition >= 0 {
		opts.Partition = partition
	}
	ctx, stop := e.signals()
	defer stop()
	bar := newMeter(e.stderr, "repair")
	sum, err := cf.client().Repair(ctx, opts, func(p client.RepairProgress) {
		bar.update(float64(p.Done)/float64(max(1, p.Total)), fmt.Sprintf("%d/%d exchanges", p.Done, p.Total))
	})
	bar.finish()
	if err != nil {
		return e.apiFail(err, "")
	}
	if *asJSON {
		b, _ := json.MarshalIndent(sum, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "compared %d partitions in %d exchanges (%.1fs): %d differed, %d of %d segments compared differed, %d keys repaired, %d bytes sent\n",
		sum.PartitionsCompared, sum.Exchanges, sum.ElapsedS, sum.PartitionsDiffered, sum.SegmentsDiffered, sum.SegmentsCompared, sum.KeysRepaired, sum.BytesSent)
	if sum.Errors > 0 {
		fmt.Fprintf(e.stdout, "%d exchanges failed:\n", sum.Errors)
		for _, f := range sum.FailedExchanges {
			fmt.Fprintf(e.stdout, "  partition %d with %s: %s\n", f.Partition, f.Peer, f.Error)
		}
		return exitFail
	}
	return exitOK
}
