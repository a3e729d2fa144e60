package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/quorumkv/quorumkv/client"
)

func init() {
	register(&command{name: "incr", group: "Data", args: "BUCKET KEY [N] [--w W] [--pw PW] [--dw DW]",
		summary: "add N (default 1, may be negative) to a counter", run: runIncr})
	register(&command{name: "sadd", group: "Data", args: "BUCKET KEY MEMBER... [--w W] [--pw PW] [--dw DW]",
		summary: "add members to a set", run: runSAdd})
	register(&command{name: "srem", group: "Data", args: "BUCKET KEY MEMBER... [--context C] [--r R] [--w W] [--pw PW] [--dw DW]",
		summary: "remove members from a set", run: runSRem})
	register(&command{name: "crdt", group: "Data", args: "BUCKET KEY [--r R] [--pr PR] [--json]",
		summary: "read a counter, set or map", run: runCRDT})
	register(&command{name: "crdt-op", group: "Data", args: "BUCKET KEY JSON|- [--w W] [--pw PW] [--dw DW]",
		summary: "apply any operation to a counter, set or map", run: runCRDTOp})
}

const crdtHelp = `BUCKET must have a CRDT type, set with: quorumkv bucket BUCKET --set '{"type":"counter"}'
(or "set", "map"). Concurrent updates merge: no acknowledged update is lost. An update that
fails (quorum not reached, timeout) may still have been applied by some replicas.`

// isNegInt reports whether s is a negative integer ("-5"), which the flag package would
// take for a flag.
func isNegInt(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// parseNeg is parse for commands whose positional arguments may be negative integers and
// whose flags all take a value: "-5" is an argument unless it is the value of the flag
// before it (--w -5 is left to the flag's own check).
func parseNeg(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	start := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !isNegInt(a) {
			continue
		}
		if i > 0 {
			prev := args[i-1]
			if strings.HasPrefix(prev, "-") && !strings.Contains(prev, "=") && !isNegInt(prev) {
				continue // the value of the flag prev
			}
		}
		p, code, ok := parse(fs, args[start:i])
		if !ok {
			return nil, code, false
		}
		pos = append(append(pos, p...), a)
		start = i + 1
	}
	p, code, ok := parse(fs, args[start:])
	if !ok {
		return nil, code, false
	}
	return append(pos, p...), 0, true
}

func runIncr(e *env, args []string) int {
	c := lookup("incr")
	fs := e.flags(c, `
Adds N (default 1) to the counter BUCKET/KEY; a negative N subtracts ("quorumkv incr b k
-5"). Prints nothing on success; read the value with 'quorumkv crdt BUCKET KEY'.

Retrying an increment whose outcome was unknown (an error) may count it twice.

`+crdtHelp+"\n\n"+quorumHelp)
	cf := e.addClientFlags(fs, true)
	q := addQuorumFlags(fs, "w", "pw", "dw")
	pos, code, ok := parseNeg(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 && len(pos) != 3 {
		return usageErr(fs, "want BUCKET KEY [N], got %d argument(s)", len(pos))
	}
	n := int64(1)
	if len(pos) == 3 {
		v, err := strconv.ParseInt(pos[2], 10, 64)
		if err != nil {
			return usageErr(fs, "N must be an integer, got %q", pos[2])
		}
		n = v
	}
	if err := cf.client().Increment(context.Background(), pos[0], pos[1], n, q.quorum(cf)); err != nil {
		return e.apiFail(err, q.failed(true))
	}
	return exitOK
}

func runSAdd(e *env, args []string) int {
	c := lookup("sadd")
	fs := e.flags(c, `
Adds each MEMBER to the set BUCKET/KEY. Prints nothing on success. Adding is safe to
retry.

`+crdtHelp+"\n\n"+quorumHelp)
	cf := e.addClientFlags(fs, true)
	q := addQuorumFlags(fs, "w", "pw", "dw")
	pos, code, ok := parseLiteral(fs, args, func(i int) bool { return i >= 2 })
	if !ok {
		return code
	}
	if len(pos) < 3 {
		return usageErr(fs, "want BUCKET KEY MEMBER..., got %d argument(s)", len(pos))
	}
	if err := cf.client().SetAdd(context.Background(), pos[0], pos[1], pos[2:], q.quorum(cf)); err != nil {
		return e.apiFail(err, q.failed(true))
	}
	return exitOK
}

func runSRem(e *env, args []string) int {
	c := lookup("srem")
	fs := e.flags(c, `
Removes each MEMBER from the set BUCKET/KEY. Prints nothing on success.

The remove takes the context of the read it is based on (--context, from 'quorumkv crdt
BUCKET KEY --json'): an add that read had not seen survives (add wins). Without
--context, srem first reads the set (with --r, default the bucket's R) and removes what
that read saw; a set that does not exist exits 1 with "not found".

`+crdtHelp+"\n\n"+quorumHelp)
	cf := e.addClientFlags(fs, true)
	cctx := fs.String("context", "", "causal `context` of the read the remove is based on (default: read it first)")
	q := addQuorumFlags(fs, "r", "w", "pw", "dw")
	pos, code, ok := parseLiteral(fs, args, func(i int) bool { return i >= 2 })
	if !ok {
		return code
	}
	if len(pos) < 3 {
		return usageErr(fs, "want BUCKET KEY MEMBER..., got %d argument(s)", len(pos))
	}
	cl := cf.client()
	ctx := context.Background()
	quorum := q.quorum(cf)
	seen := *cctx
	if seen == "" {
		v, err := cl.GetCRDT(ctx, pos[0], pos[1], client.Quorum{R: quorum.R, Timeout: quorum.Timeout})
		if err != nil {
			return e.apiFail(err, "r")
		}
		if !v.Found {
			return e.fail("not found")
		}
		if v.Context == "" {
			return e.fail("%s/%s is not a set (its value is %s)", pos[0], pos[1], v.Value)
		}
		seen = v.Context
	}
	quorum.R = ""
	if err := cl.SetRemove(ctx, pos[0], pos[1], pos[2:], seen, quorum); err != nil {
		return e.apiFail(err, q.failed(true))
	}
	return exitOK
}

func runCRDT(e *env, args []string) int {
	c := lookup("crdt")
	fs := e.flags(c, `
Reads the counter, set or map BUCKET/KEY (or any Redis key, in the bucket redis) and
prints its value: a counter's number, a set's members one per line (sorted; unprintable
ones quoted), a map as indented JSON, a Redis string as its text.
--json prints {"found":true,"value":...,"context":"..."}, the context being what to
pass to removes ('quorumkv srem --context', or "context" in 'quorumkv crdt-op').

Exits 1 with "not found" when the key holds nothing.

`+crdtHelp+"\n\n"+quorumHelp)
	cf := e.addClientFlags(fs, true)
	q := addQuorumFlags(fs, "r", "pr")
	asJSON := fs.Bool("json", false, "print the JSON form (value and context)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return usageErr(fs, "want BUCKET KEY, got %d argument(s)", len(pos))
	}
	v, err := cf.client().GetCRDT(context.Background(), pos[0], pos[1], q.quorum(cf))
	if err != nil {
		return e.apiFail(err, q.failed(false))
	}
	if *asJSON {
		out := struct {
			Found   bool            `json:"found"`
			Value   json.RawMessage `json:"value"`
			Context string          `json:"context"`
		}{v.Found, v.Value, v.Context}
		if !v.Found {
			out.Value = json.RawMessage("null")
		}
		b, err := json.Marshal(out)
		if err != nil {
			return e.fail("bad value from the server: %v", err)
		}
		fmt.Fprintf(e.stdout, "%s\n", b)
		if !v.Found {
			return e.fail("not found")
		}
		return exitOK
	}
	if !v.Found {
		return e.fail("not found")
	}
	switch t := bytes.TrimSpace(v.Value); {
	case len(t) > 0 && t[0] == '[':
		members, err := v.Strings()
		if err != nil {
			return e.fail("%v", err)
		}
		for _, m := range members {
			fmt.Fprintln(e.stdout, printable([]byte(m)))
		}
	case len(t) > 0 && t[0] == '{':
		var buf bytes.Buffer
		if err := json.Indent(&buf, t, "", "  "); err != nil {
			return e.fail("bad value from the server: %v", err)
		}
		fmt.Fprintf(e.stdout, "%s\n", buf.Bytes())
	case len(t) > 0 && t[0] == '"': // a register (a Redis string): its text
		var str string
		if err := json.Unmarshal(t, &str); err != nil {
			return e.fail("bad value from the server: %v", err)
		}
		fmt.Fprintln(e.stdout, printable([]byte(str)))
	default:
		fmt.Fprintf(e.stdout, "%s\n", t)
	}
	return exitOK
}

func runCRDTOp(e *env, args []string) int {
	c := lookup("crdt-op")
	fs := e.flags(c, `
Applies one operation, given as JSON (or read from stdin when JSON is "-"), to the CRDT
BUCKET/KEY. Prints nothing on success. The operations:

  counter  {"increment": 5}                       (negative decrements)
  set      {"add": ["a","b"], "remove": ["c"], "context": "C"}
  map      {"update": {"visits": {"type": "counter", "increment": 1},
                       "tags": {"type": "set", "add": ["x"]}},
            "remove": ["old"], "context": "C"}

"context" is the context of the read a remove is based on ('quorumkv crdt --json'); an
add it had not seen survives. An operation the bucket's type does not take is refused
and changes nothing.

`+crdtHelp+"\n\n"+quorumHelp)
	cf := e.addClientFlags(fs, true)
	q := addQuorumFlags(fs, "w", "pw", "dw")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 3 {
		return usageErr(fs, "want BUCKET KEY JSON (or - for stdin), got %d argument(s)", len(pos))
	}
	op := []byte(pos[2])
	if pos[2] == "-" {
		var err error
		if op, err = io.ReadAll(e.stdin); err != nil {
			return e.fail("reading stdin: %v", err)
		}
	}
	op = bytes.TrimSpace(op)
	if !json.Valid(op) || len(op) == 0 || op[0] != '{' {
		return usageErr(fs, "the operation must be a JSON object, got %q", clipArg(op))
	}
	if err := cf.client().UpdateCRDT(context.Background(), pos[0], pos[1], json.RawMessage(op), q.quorum(cf)); err != nil {
		return e.apiFail(err, q.failed(true))
	}
	return exitOK
}

func clipArg(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
