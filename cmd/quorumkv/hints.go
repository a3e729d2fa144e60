package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
)

func init() {
	register(&command{name: "hints", group: "Cluster", args: "[--json]",
		summary: "show the hints a node keeps for nodes that were down", run: runHints})
}

func runHints(e *env, args []string) int {
	c := lookup("hints")
	fs := e.flags(c, `
Lists, per target node, the hints the node at --addr keeps for it (writes it took as a
fallback while the target was down): how many, their bytes, the oldest one's age, and how
many were delivered, expired (older than the hint window) or dropped (over the byte bound)
since the node started.`)
	cf := e.addClientFlags(fs, false)
	asJSON := fs.Bool("json", false, "print the raw JSON of GET /v1/admin/hints")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	h, err := cf.client().Hints(context.Background())
	if err != nil {
		return e.apiFail(err, "")
	}
	if *asJSON {
		b, _ := json.MarshalIndent(h, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "hints kept by %s: %d pending, %d bytes (window %.0fs, at most %d bytes per target)\n",
		h.Node, h.Pending, h.Bytes, h.WindowS, h.MaxBytes)
	if len(h.Targets) == 0 {
		return exitOK
	}
	fmt.Fprintln(e.stdout)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tSTATE\tPENDING\tBYTES\tOLDEST\tDELIVERED\tEXPIRED\tDROPPED\tHANDOFF")
	for _, t := range h.Targets {
		running := "-"
		if t.Handoff {
			running = "running"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1fs\t%d\t%d\t%d\t%s\n", t.Target, t.State, t.Pending, t.Bytes, t.OldestAgeS,
			t.Delivered, t.Expired, t.Dropped, running)
	}
	tw.Flush()
	return exitOK
}
