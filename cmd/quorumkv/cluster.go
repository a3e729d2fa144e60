package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

func init() {
	register(&command{name: "cluster", group: "Cluster",
		args:    "status [--wait] [--json] | leave NODE | remove NODE",
		summary: "cluster changes: their progress, taking a node out (admin)", run: runCluster})
}

func runCluster(e *env, args []string) int {
	c := lookup("cluster")
	fs := e.flags(c, `
Changes the cluster's membership and shows their progress:

  cluster status [--wait] [--json]   every member's state (joining, active, leaving, left)
                                     and, for each node taking over partitions, its progress
                                     (and which of them is down, holding the change back);
                                     --wait shows a progress bar per node until no partition
                                     is left to move
  cluster leave NODE                 NODE hands all its partitions to the others, then leaves
                                     the ring (it keeps serving meanwhile; stop it afterwards)
  cluster remove NODE                drops NODE, which is down for good: its partitions are
                                     rebuilt on the others from the surviving replicas

A node joins by starting with --join; it streams the partitions it will own and takes
each over once its copy is complete. A node replaces a dead one with
'quorumkv server --replace OLD_ID ...'. A change that would leave fewer nodes than a
bucket's n is refused. Killing a node in the middle of a change loses nothing: its
partitions keep their other replicas, and the transfers start again from those.`)
	cf := e.addClientFlags(fs, false)
	wait := fs.Bool("wait", false, "status: wait until no partition is moving, with a progress bar")
	asJSON := fs.Bool("json", false, "status: print the JSON of GET /v1/cluster/transfers")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageErr(fs, "want a subcommand: status, leave or remove")
	}
	cl := cf.client()
	ctx := context.Background()
	switch sub, rest := pos[0], pos[1:]; sub {
	case "status":
		if len(rest) != 0 {
			return usageErr(fs, "cluster status takes no argument")
		}
		if *wait {
			if code := waitForChanges(ctx, e, cf, cl); code != exitOK {
				return code
			}
		}
		t, err := cl.Transfers(ctx)
		if err != nil {
			return e.apiFail(err, "")
		}
		if *asJSON {
			b, _ := json.MarshalIndent(t, "", "  ")
			fmt.Fprintf(e.stdout, "%s\n", b)
			return exitOK
		}
		printTransfers(ctx, e, cf, cl, t)
		return exitOK
	case "leave", "remove":
		if len(rest) != 1 {
			return usageErr(fs, "cluster %s takes one node id", sub)
		}
		change := cl.Leave
		if sub == "remove" {
			change = cl.Remove
		}
		t, err := change(ctx, rest[0])
		if err != nil {
			return e.apiFail(err, "")
		}
		fmt.Fprintf(e.stdout, "%s: %s is leaving the ring; its partitions move to %s.\n", sub, rest[0], strings.Join(t.Next, ", "))
		fmt.Fprintln(e.stdout, "Follow it with: quorumkv cluster status --wait")
		return exitOK
	}
	return usageErr(fs, "unknown subcommand %q: status, leave or remove", pos[0])
}

// waitForChanges shows the change's progress, one bar per node taking over partitions,
// until no change is pending.
func waitForChanges(ctx context.Context, e *env, cf clientFlags, cl *client.Client) int {
	b := newBoard(e.stderr)
	for {
		t, err := cl.Transfers(ctx)
		if err != nil {
			b.finish()
			return e.apiFail(err, "")
		}
		if !t.Pending {
			b.update([]string{"no change pending: the ring is " + strings.Join(t.Ring, ", ")})
			b.finish()
			return exitOK
		}
		rows := []string{fmt.Sprintf("change %s -> %s: %d/%d partitions moved",
			strings.Join(t.Ring, ","), strings.Join(t.Next, ","), t.Moved, t.Moved+t.Waiting)}
		rows = append(rows, gainerRows(ctx, cf, cl, t)...)
		b.update(rows)
		select {
		case <-ctx.Done():
			return exitFail
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// gainerRows is one line per node taking over partitions in the change t: a bar of the
// partitions it completed, and the keys and bytes it received so far (asked of that node;
// left out when it does not answer), or why the change waits for it.
func gainerRows(ctx context.Context, cf clientFlags, cl *client.Client, t *client.Transfers) []string {
	addrs := map[string]string{}
	if info, err := cl.Cluster(ctx); err == nil {
		for _, nd := range info.Nodes {
			addrs[nd.ID] = nd.HTTP
		}
	}
	var rows []string
	for _, g := range t.Gainers {
		frac := float64(g.Done) / float64(max(1, g.Partitions))
		row := fmt.Sprintf("  %-8s %s %3.0f%% %d/%d partitions", g.Node, bar(frac), 100*frac, g.Done, g.Partitions)
		switch {
		case !g.Up && g.Done < g.Partitions:
			row += fmt.Sprintf("; DOWN: the change waits for it (start it again, or: quorumkv cluster remove %s)", g.Node)
		case g.Done < g.Partitions || g.Node == t.Node:
			gt := t
			if g.Node != t.Node {
				gt = nil
				if addr := addrs[g.Node]; addr != "" {
					gt, _ = cf.clientAt(addr).Transfers(ctx)
				}
			}
			if gt != nil {
				row += fmt.Sprintf(", %d keys, %s received", gt.KeysDone, byteSize(gt.BytesDone))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// byteSize is n bytes for people: 512 B, 1.5 KiB, 120.3 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func printTransfers(ctx context.Context, e *env, cf clientFlags, cl *client.Client, t *client.Transfers) {
	ids := make([]string, 0, len(t.States))
	for id := range t.States {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTATE")
	for _, id := range ids {
		fmt.Fprintf(tw, "%s\t%s\n", id, t.States[id])
	}
	_ = tw.Flush()
	if !t.Pending {
		fmt.Fprintf(e.stdout, "\nno change pending: the ring is %s\n", strings.Join(t.Ring, ", "))
		return
	}
	fmt.Fprintf(e.stdout, "\nchange under way: %s -> %s; %d partitions moved, %d waiting (as %s sees it)\n",
		strings.Join(t.Ring, ","), strings.Join(t.Next, ","), t.Moved, t.Waiting, t.Node)
	for _, r := range gainerRows(ctx, cf, cl, t) {
		fmt.Fprintln(e.stdout, r)
	}
	if len(t.HeldBy) > 0 {
		fmt.Fprintf(e.stdout, "held back by %s: down with partitions still to take\n", strings.Join(t.HeldBy, ", "))
	}
}
