package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/quorumkv/quorumkv/client"
)

func init() {
	register(&command{name: "keys", group: "Data", args: "BUCKET [--prefix P] [--limit N] [--cursor C] [--r R] [--json]",
		summary: "list a bucket's keys", run: runKeys})
}

func runKeys(e *env, args []string) int {
	c := lookup("keys")
	fs := e.flags(c, `
Lists BUCKET's live keys, one per line, in the store's order (by key hash, not sorted):
every key that exists for the whole listing exactly once; deleted and expired keys never.
It reads every partition of the cluster (a coverage query), page after page.

--limit N prints one page of at most N keys and, on stderr, the cursor to go on from
('next: C'; pass it back with --cursor). --json prints each page's JSON form
({"keys":[...],"next":"..."}), one per line. --r says how many replicas of each partition
to read and merge (default: the bucket's R).

`)
	cf := e.addClientFlags(fs, true)
	prefix := fs.String("prefix", "", "only keys starting with `P`")
	limit := fs.Int("limit", 0, "print one page of at most `N` keys (0: every page)")
	cursor := fs.String("cursor", "", "start at `C`, a page's next cursor")
	r := fs.String("r", "", "replicas read per partition: 1..N, one, quorum, all (default: the bucket's R)")
	asJSON := fs.Bool("json", false, "print each page's JSON form")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageErr(fs, "want BUCKET, got %d argument(s)", len(pos))
	}
	if *limit < 0 {
		return usageErr(fs, "--limit %d: want 1 or more (0: every page)", *limit)
	}
	cl := cf.client()
	o := client.KeysOptions{Prefix: *prefix, Cursor: *cursor, Limit: *limit, R: *r}
	for {
		p, err := cl.Keys(context.Background(), pos[0], o)
		if err != nil {
			return e.apiFail(err, "")
		}
		if *asJSON {
			b, _ := json.Marshal(p)
			fmt.Fprintf(e.stdout, "%s\n", b)
		} else {
			for _, k := range p.Keys {
				fmt.Fprintln(e.stdout, printable([]byte(k)))
			}
		}
		if p.Next == "" {
			return exitOK
		}
		if *limit > 0 {
			if !*asJSON {
				fmt.Fprintf(e.stderr, "next: %s\n", p.Next)
			}
			return exitOK
		}
		o.Cursor = p.Next
	}
}
