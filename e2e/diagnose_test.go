package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// describeKey is what every running node holds and believes about bucket/key right now:
// its view of the membership, the key's preference list, its own stored copy, and its
// transfers. A test calls it the moment it sees a read go wrong, so that a rare failure
// explains itself in the log of the run that met it.
func (c *cluster) describeKey(bucket, key string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "state of %s/%s at %s:\n", bucket, key, time.Now().UTC().Format("15:04:05.000"))
	asJSON := func(v any, err error) string {
		if err != nil {
			return "error: " + err.Error()
		}
		js, _ := json.Marshal(v)
		return string(js)
	}
	for _, p := range c.procs {
		select {
		case <-p.exited:
			fmt.Fprintf(&b, "  %s: not running\n", p.id)
			continue
		default:
		}
		cl := p.client()
		if members, err := cl.Cluster(ctx); err == nil {
			var states []string
			for _, m := range members.Nodes {
				states = append(states, fmt.Sprintf("%s:%s/%d", m.ID, m.State, m.Partitions))
			}
			fmt.Fprintf(&b, "  %s members:   %s\n", p.id, strings.Join(states, " "))
		} else {
			fmt.Fprintf(&b, "  %s members:   error: %v\n", p.id, err)
		}
		ep, err := cl.Endpoints(ctx, bucket, key)
		fmt.Fprintf(&b, "  %s endpoints: %s\n", p.id, asJSON(ep, err))
		local, err := cl.Local(ctx, bucket, key)
		if err == nil {
			var sibs []string
			for _, s := range local.Siblings {
				sibs = append(sibs, fmt.Sprintf("%q dot=%s ts=%s tomb=%v", s.Value, s.Dot, s.Timestamp, s.Tombstone))
			}
			fmt.Fprintf(&b, "  %s local:     hinted_for=%q %s\n", p.id, local.HintedFor, strings.Join(sibs, "; "))
		} else {
			fmt.Fprintf(&b, "  %s local:     error: %v\n", p.id, err)
		}
		tr, err := cl.Transfers(ctx)
		if err == nil {
			tr.Transfers = nil // hundreds of partitions: the summary is what helps
		}
		fmt.Fprintf(&b, "  %s transfers: %s\n", p.id, asJSON(tr, err))
	}
	return b.String()
}

// membershipEvents are the lines of every node's log about membership and ring changes,
// and about replica writes that failed: what explains a read that went wrong during a
// cluster change.
func (c *cluster) membershipEvents() string {
	re := regexp.MustCompile(`member (unreachable|reachable|state)|ring updated|cluster change|suspect|other ring failed|replica write failed|not a primary|partition moved|leav`)
	var b strings.Builder
	for _, p := range c.procs {
		raw, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s ---\n", p.id)
		n := 0
		for line := range strings.SplitSeq(string(raw), "\n") {
			if re.MatchString(line) && !strings.Contains(line, "partition transfer complete") {
				if n++; n <= 200 {
					b.WriteString(line + "\n")
				}
			}
		}
		if n > 200 {
			fmt.Fprintf(&b, "(%d more)\n", n-200)
		}
	}
	return b.String()
}
