package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/ring"
)

// maxMapPartitions caps the partitions drawn in the ring map.
const maxMapPartitions = 4096

// mapRow is the number of partitions per line of the ring map.
const mapRow = 64

func runRing(e *env, args []string) int {
	c := lookup("ring")
	fs := e.flags(c, `
Without --key: how the partitions are spread over the nodes (count and share per
node) and a map of which node owns each partition. Ownership is a pure function of
the member set, so the map is computed here from the members the node at --addr
reports; a warning says so if its counts disagree with that node's.

With --key BUCKET/KEY: the key's partition and preference list (its primaries, and
the fallbacks in use now), as the node at --addr computes it.`)
	cf := e.addClientFlags(fs, false)
	key := fs.String("key", "", "show the preference list of `BUCKET/KEY` (the bucket is up to the first /)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	cl := cf.client()
	if *key != "" {
		bucket, k, found := strings.Cut(*key, "/")
		if !found || bucket == "" || k == "" {
			return usageErr(fs, "--key wants BUCKET/KEY, got %q", *key)
		}
		ep, err := cl.Endpoints(context.Background(), bucket, k)
		if err != nil {
			return e.apiFail(err, "")
		}
		if *asJSON {
			b, _ := json.MarshalIndent(ep, "", "  ")
			fmt.Fprintf(e.stdout, "%s\n", b)
			return exitOK
		}
		printEndpoints(e.stdout, ep)
		return exitOK
	}
	info, err := cl.Cluster(context.Background())
	if err != nil {
		return e.apiFail(err, "")
	}
	owners, err := ownerMap(info)
	if err != nil {
		return e.fail("computing the ring: %v", err)
	}
	if *asJSON {
		out := struct {
			Partitions int      `json:"partitions"`
			Owners     []string `json:"owners"`
		}{info.Partitions, owners}
		b, _ := json.Marshal(out)
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	printRing(e.stdout, info, owners)
	return exitOK
}

// ownerMap computes the owner of every partition from the members in info.
func ownerMap(info *client.Cluster) ([]string, error) {
	ms := make([]ring.Member, 0, len(info.Nodes))
	for _, n := range info.Nodes {
		ms = append(ms, ring.Member{ID: ring.NodeID(n.ID), Zone: n.Zone})
	}
	r, err := ring.New(ring.Config{Partitions: info.Partitions}, ms)
	if err != nil {
		return nil, err
	}
	owners := make([]string, r.Partitions())
	for p := range owners {
		owners[p] = string(r.Owner(p))
	}
	return owners, nil
}

func sortedNodes(ns []client.NodeInfo) []client.NodeInfo {
	out := slices.Clone(ns)
	slices.SortFunc(out, func(a, b client.NodeInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

const mapSymbols = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func printRing(w io.Writer, info *client.Cluster, owners []string) {
	q := len(owners)
	nodes := sortedNodes(info.Nodes)
	count := map[string]int{}
	for _, o := range owners {
		count[o]++
	}
	fmt.Fprintf(w, "ring as seen by %s: %d partitions over %d nodes (ideal %.1f each)\n\n", info.Node, q, len(nodes), float64(q)/float64(max(len(nodes), 1)))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SYM\tNODE\tSTATE\tZONE\tPARTITIONS\tSHARE")
	var disagree []string
	sym := map[string]byte{}
	for i, n := range nodes {
		s := "-"
		if i < len(mapSymbols) {
			sym[n.ID] = mapSymbols[i]
			s = string(mapSymbols[i])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%.1f%%\n", s, n.ID, n.State, dash(n.Zone), count[n.ID], 100*float64(count[n.ID])/float64(q))
		if count[n.ID] != n.Partitions {
			disagree = append(disagree, fmt.Sprintf("%s: %d here, %d there", n.ID, count[n.ID], n.Partitions))
		}
	}
	tw.Flush()
	if len(disagree) > 0 {
		fmt.Fprintf(w, "\nwarning: %s reports other counts (%s): its ring may be changing\n", info.Node, strings.Join(disagree, "; "))
	}
	if q > maxMapPartitions || len(nodes) > len(mapSymbols) {
		return
	}
	fmt.Fprintf(w, "\npartition owners (one symbol per partition, %d per line):\n", mapRow)
	for start := 0; start < q; start += mapRow {
		var b strings.Builder
		for p := start; p < min(start+mapRow, q); p++ {
			if p > start && (p-start)%16 == 0 {
				b.WriteByte(' ')
			}
			b.WriteByte(sym[owners[p]])
		}
		fmt.Fprintf(w, "%5d  %s\n", start, b.String())
	}
}

func printEndpoints(w io.Writer, ep *client.Endpoints) {
	fmt.Fprintf(w, "%s/%s: partition %d, n=%d\n\n", ep.Bucket, ep.Key, ep.Partition, ep.N)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tNODE\tSTATE")
	for _, n := range ep.Primaries {
		fmt.Fprintf(tw, "primary\t%s\t%s\n", n.ID, n.State)
	}
	for _, n := range ep.Fallbacks {
		fmt.Fprintf(tw, "fallback\t%s\t%s\n", n.ID, n.State)
	}
	tw.Flush()
	if len(ep.Fallbacks) == 0 {
		fmt.Fprintln(w, "\nno fallbacks in use")
	}
}
