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
                                     and the partitions still moving; --wait shows a progress
                                     bar until none is left
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
			if code := waitForChanges(ctx, e, cl); code != exitOK {
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
		printTransfers(e, t)
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

// waitForChanges shows the partitions moving until none is.
func waitForChanges(ctx context.Context, e *env, cl *client.Client) int {
	bar := newMeter(e.stderr, "moving")
	total := 0
	for {
		t, err := cl.Transfers(ctx)
		if err != nil {
			bar.finish()
			return e.apiFail(err, "")
		}
		if !t.Pending {
			bar.update(1, "no change pending")
			bar.finish()
			return exitOK
		}
		total = max(total, t.Moved+t.Waiting)
		bar.update(float64(t.Moved)/float64(max(1, total)), fmt.Sprintf("%d/%d partitions moved", t.Moved, total))
		select {
		case <-ctx.Done():
			return exitFail
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printTransfers(e *env, t *client.Transfers) {
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
	if len(t.Transfers) == 0 {
		return
	}
	phases := map[string]int{}
	var keys, bytes int64
	for _, x := range t.Transfers {
		phases[x.Phase]++
		keys += x.KeysDone
		bytes += x.BytesDone
	}
	fmt.Fprintf(e.stdout, "%s takes over %d partitions: %d done, %d checking, %d streaming, %d waiting; %d keys, %d bytes received\n",
		t.Node, len(t.Transfers), phases["done"], phases["checking"], phases["streaming"], phases["waiting"], keys, bytes)
}
