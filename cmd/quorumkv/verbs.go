package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/client"
)

// defaultAddr is the node client commands talk to unless --addr or $QUORUMKV_ADDR says
// otherwise; "quorumkv dev" puts node 1's HTTP API there.
const defaultAddr = "127.0.0.1:8080"

// addrEnv overrides defaultAddr.
const addrEnv = "QUORUMKV_ADDR"

// requestTimeout bounds one client command's HTTP requests.
const requestTimeout = 30 * time.Second

func init() {
	register(&command{name: "get", group: "Data", args: "BUCKET KEY [--r R] [--pr PR] [--json]",
		summary: "read a key", run: runGet})
	register(&command{name: "put", group: "Data", args: "BUCKET KEY VALUE|- [--context C] [--ttl D] [--if-absent|--if-present] [--w W] [--pw PW] [--dw DW]",
		summary: "write a key", run: runPut})
	register(&command{name: "delete", group: "Data", args: "BUCKET KEY [--context C] [--w W] [--pw PW] [--dw DW]",
		summary: "delete a key", run: runDelete})
	register(&command{name: "bucket", group: "Data", args: "BUCKET [--set JSON]",
		summary: "show or change a bucket's properties", run: runBucket})
	register(&command{name: "status", group: "Cluster", args: "[--json]",
		summary: "list the cluster's nodes", run: runStatus})
	register(&command{name: "ring", group: "Cluster", args: "[--key BUCKET/KEY] [--json]",
		summary: "show partition ownership, or one key's preference list", run: runRing})
}

const quorumHelp = `Quorum values are 1..N, one, quorum or all (pr, pw and dw may also be 0); an unset
value takes the bucket's default.`

// clientFlags are the flags every client command has.
type clientFlags struct {
	addr    *string
	timeout *time.Duration
	user    *string
	tlsCA   *string
	getenv  func(string) string
}

func (e *env) addClientFlags(fs *flag.FlagSet, withTimeout bool) clientFlags {
	def := defaultAddr
	if v := e.getenv(addrEnv); v != "" {
		def = v
	}
	cf := clientFlags{addr: fs.String("addr", def, "`host:port`, bare port (on 127.0.0.1) or URL of any node's HTTP API; several, comma-separated, to fail over ($"+addrEnv+" sets the default)"),
		user:   fs.String("user", e.getenv(userEnv), "user `name` for nodes started with --auth; the password comes from $"+passwordEnv+" ($"+userEnv+" sets the default)"),
		tlsCA:  fs.String("tls-ca", e.getenv(tlsCAEnv), "PEM `file` of the CA that signed the nodes' certificates: talk HTTPS ($"+tlsCAEnv+" sets the default)"),
		getenv: e.getenv,
	}
	if withTimeout {
		cf.timeout = new(time.Duration)
		fs.Var(timeoutFlag{cf.timeout}, "timeout", "server-side request `timeout`: a duration (2s, 1500ms) or milliseconds as in the API's timeout= (1500); 0: the server default, 5s")
	}
	return cf
}

func (cf clientFlags) client() *client.Client { return cf.clientAt(normalizeAddr(*cf.addr)) }

// clientAt is a client of the node(s) at addr with the credentials and TLS of the flags.
func (cf clientFlags) clientAt(addr string) *client.Client {
	opts, err := cf.securityOptions()
	if err != nil {
		// Every call of this client reports err: the callers print a call's error already.
		return client.New(addr, client.WithTimeout(requestTimeout), client.WithHTTPClient(failingClient(err)))
	}
	return client.New(addr, append(opts, client.WithTimeout(requestTimeout))...)
}

// quorumFlags registers the named quorum flags (r, pr, w, pw, dw).
type quorumFlags map[string]*string

func addQuorumFlags(fs *flag.FlagSet, names ...string) quorumFlags {
	desc := map[string]string{
		"r":  "read quorum: replies needed",
		"pr": "primary read quorum: replies needed from primaries",
		"w":  "write quorum: acks needed",
		"pw": "primary write quorum: acks needed from primaries (not fallbacks)",
		"dw": "durable write quorum: acks needed after a sync to disk",
	}
	q := quorumFlags{}
	for _, n := range names {
		q[n] = fs.String(n, "", desc[n])
	}
	return q
}

func (q quorumFlags) get(name string) string {
	if p := q[name]; p != nil {
		return *p
	}
	return ""
}

func (q quorumFlags) quorum(cf clientFlags) client.Quorum {
	out := client.Quorum{R: q.get("r"), W: q.get("w"), PR: q.get("pr"), PW: q.get("pw"), DW: q.get("dw")}
	if cf.timeout != nil {
		out.Timeout = *cf.timeout
	}
	return out
}

// failed names, for a quorum error, the parameter that was most likely not met: the
// only one the user set, else r (reads) or w (writes).
func (q quorumFlags) failed(write bool) string {
	names := []string{"r", "pr"}
	if write {
		names = []string{"w", "pw", "dw"}
	}
	var set []string
	for _, n := range names {
		if q.get(n) != "" {
			set = append(set, n)
		}
	}
	if len(set) == 1 {
		return set[0]
	}
	return names[0]
}

// apiFail reports err as one line and returns exit code 1. param names the quorum
// parameter for quorum failures ("" if none applies).
func (e *env) apiFail(err error, param string) int {
	var ae *client.APIError
	switch {
	case errors.As(err, &ae) && ae.Code == client.CodeQuorumFailed:
		msg := fmt.Sprintf("quorum not reached: %d of %d acks", ae.Acks, ae.Required)
		if param != "" {
			msg += fmt.Sprintf(" (%s=%d)", param, ae.Required)
		}
		return e.fail("%s", msg)
	case client.IsNotFound(err):
		return e.fail("not found")
	case client.IsPreconditionFailed(err):
		return e.fail("%s", ae.Message)
	default:
		if why := notHTTP(err); why != "" {
			return e.fail("%s", why)
		}
		if why := tlsHint(err); why != "" {
			return e.fail("%s", why)
		}
		msg := strings.TrimPrefix(err.Error(), "client: ")
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			msg += " (is a node running there? 'quorumkv dev' starts a local cluster)"
		}
		return e.fail("%s", msg)
	}
}

func runGet(e *env, args []string) int {
	c := lookup("get")
	fs := e.flags(c, `
Reads BUCKET/KEY and prints its value to stdout, byte for byte.

When concurrent writes left several values (siblings), prints each one numbered and,
on stderr, the context to write back with: 'quorumkv put BUCKET KEY VALUE --context C'
replaces them all. --json prints the API's JSON form instead:
{"found":true,"values":["<base64>",...],"context":"..."}.

In a CRDT bucket (and the bucket redis) it prints the value, not its stored encoding:
a counter's number, a set's members or a map's fields as JSON, a Redis string as its text
('quorumkv crdt' prints them one per line).

Exits 1 with "not found" when the key is absent or deleted.

`+quorumHelp)
	cf := e.addClientFlags(fs, true)
	q := addQuorumFlags(fs, "r", "pr")
	asJSON := fs.Bool("json", false, "print the JSON form (values base64-encoded, and the context)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return usageErr(fs, "want BUCKET KEY, got %d argument(s)", len(pos))
	}
	obj, err := cf.client().Get(context.Background(), pos[0], pos[1], q.quorum(cf))
	if err != nil {
		return e.apiFail(err, q.failed(false))
	}
	if *asJSON {
		out := struct {
			Found   bool     `json:"found"`
			Values  [][]byte `json:"values"`
			Context string   `json:"context"`
		}{obj.Found, obj.Values, obj.Context}
		if out.Values == nil {
			out.Values = [][]byte{}
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(e.stdout, "%s\n", b)
		if !obj.Found {
			return e.fail("not found")
		}
		return exitOK
	}
	if !obj.Found {
		return e.fail("not found")
	}
	if len(obj.Values) == 1 {
		v := obj.Values[0]
		_, _ = e.stdout.Write(v)
		if isTerminal(e.stdout) && len(v) > 0 && v[len(v)-1] != '\n' {
			fmt.Fprintln(e.stdout)
		}
		return exitOK
	}
	for i, v := range obj.Values {
		fmt.Fprintf(e.stdout, "%d) %s\n", i+1, printable(v))
	}
	fmt.Fprintf(e.stderr, "quorumkv: %d siblings; resolve with --context %s\n", len(obj.Values), obj.Context)
	return exitOK
}

// printable shows v as text when it is printable UTF-8, else as a quoted Go string.
func printable(v []byte) string {
	if utf8.Valid(v) && !bytes.ContainsFunc(v, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' && r != '\t' }) {
		return string(v)
	}
	return strconv.Quote(string(v))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runPut(e *env, args []string) int {
	c := lookup("put")
	fs := e.flags(c, `
Writes VALUE (or stdin, when VALUE is "-") to BUCKET/KEY and prints the new context
("context: C"). VALUE may start with '-' ("quorumkv put b k -5"); put "--" before a value
that starts with "--" or names a flag of put ("quorumkv put b k -- --w").

Pass the context of the read this write replaces with --context (see 'quorumkv get
--json'). Without it the write is blind: it becomes a sibling of any value already
there, so nothing concurrent is lost.

--ttl gives the value a lifetime (a duration such as 30s or 2h, or whole seconds); after
it every node reads the key as absent. --ttl never writes a value that never expires, even
in a bucket with a ttl_s; without --ttl the bucket's ttl_s applies.

--if-absent writes only if the key holds no live value (If-None-Match: *), --if-present
only if it holds one (If-Match: *); otherwise put exits 1 with "precondition failed" and
writes nothing. The check reads at the bucket's R: two --if-absent writes racing can both
succeed, and the key then holds both as siblings.

`+quorumHelp)
	cf := e.addClientFlags(fs, true)
	cctx := fs.String("context", "", "causal `context` of the read this write supersedes")
	ttlFlag := fs.String("ttl", "", "the value's lifetime: a `duration` (30s), whole seconds, or never")
	ifAbsent := fs.Bool("if-absent", false, "write only if the key holds no live value")
	ifPresent := fs.Bool("if-present", false, "write only if the key holds a live value")
	q := addQuorumFlags(fs, "w", "pw", "dw")
	pos, code, ok := parseLiteral(fs, args, func(i int) bool { return i == 2 })
	if !ok {
		return code
	}
	if len(pos) != 3 {
		return usageErr(fs, "want BUCKET KEY VALUE (or - for stdin), got %d argument(s)", len(pos))
	}
	ttl, err := parseTTLFlag(*ttlFlag)
	if err != nil {
		return usageErr(fs, "%v", err)
	}
	if *ifAbsent && *ifPresent {
		return usageErr(fs, "--if-absent and --if-present together")
	}
	value := []byte(pos[2])
	if pos[2] == "-" {
		var err error
		if value, err = io.ReadAll(e.stdin); err != nil {
			return e.fail("reading stdin: %v", err)
		}
	}
	nc, err := cf.client().PutWith(context.Background(), pos[0], pos[1], value,
		client.PutOptions{Context: *cctx, Quorum: q.quorum(cf), TTL: ttl, IfAbsent: *ifAbsent, IfPresent: *ifPresent})
	if err != nil {
		return e.apiFail(err, q.failed(true))
	}
	fmt.Fprintf(e.stdout, "context: %s\n", nc)
	return exitOK
}

// parseTTLFlag reads --ttl: "" (the bucket's), "never", whole seconds or a duration of
// at least a second.
func parseTTLFlag(s string) (time.Duration, error) {
	switch s {
	case "":
		return 0, nil
	case "never":
		return client.NoExpiry, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("--ttl %s: want a positive number of seconds, a duration or never", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Second {
		return 0, fmt.Errorf("--ttl %s: want a duration of at least 1s (30s, 2h), whole seconds or never", s)
	}
	return d, nil
}

func runDelete(e *env, args []string) int {
	c := lookup("delete")
	fs := e.flags(c, `
Deletes BUCKET/KEY (writes a tombstone) and prints the tombstone's context
("context: C").

Without --context, delete first reads the key (with the bucket's default R) and
deletes what that read saw. Deleting is idempotent, as DELETE /v1/kv is (204 whether or
not the key existed): a key that is already absent prints "not found: nothing to delete"
and exits 0, writing nothing.

`+quorumHelp)
	cf := e.addClientFlags(fs, true)
	cctx := fs.String("context", "", "causal `context` of what to delete (default: read it first)")
	q := addQuorumFlags(fs, "w", "pw", "dw")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 2 {
		return usageErr(fs, "want BUCKET KEY, got %d argument(s)", len(pos))
	}
	cl := cf.client()
	ctx := context.Background()
	seen := *cctx
	if seen == "" {
		obj, err := cl.Get(ctx, pos[0], pos[1], client.Quorum{Timeout: q.quorum(cf).Timeout})
		if err != nil {
			return e.apiFail(err, "r")
		}
		if !obj.Found {
			fmt.Fprintf(e.stdout, "not found: nothing to delete\n")
			return exitOK
		}
		seen = obj.Context
	}
	nc, err := cl.Delete(ctx, pos[0], pos[1], seen, q.quorum(cf))
	if err != nil {
		return e.apiFail(err, q.failed(true))
	}
	fmt.Fprintf(e.stdout, "context: %s\n", nc)
	return exitOK
}

func runBucket(e *env, args []string) int {
	c := lookup("bucket")
	fs := e.flags(c, `
Prints BUCKET's properties as JSON; with --set, first changes the given ones (the
others keep their value) and prints the result. Properties:

  n            replicas per key
  r, w         default read and write quorums
  pr, pw, dw   default primary read, primary write and durable write quorums
  conflict     "siblings" (keep concurrent values) or "lww" (last write wins)
  read_repair  "blocking", "async" or "none"
  type         "kv", "counter", "set" or "map"
  gc_grace_s   seconds before a tombstone (or an expired value) may be reaped
  ttl_s        seconds a value lives when written without its own TTL (0: forever)

Example: quorumkv bucket users --set '{"n":5,"w":"all"}'`)
	cf := e.addClientFlags(fs, false)
	set := fs.String("set", "", "JSON object of the properties to change")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageErr(fs, "want BUCKET, got %d argument(s)", len(pos))
	}
	cl := cf.client()
	var (
		props client.BucketProps
		err   error
	)
	if *set != "" {
		p, perr := parseProps(*set)
		if perr != nil {
			return usageErr(fs, "bad --set JSON: %v", perr)
		}
		props, err = cl.SetBucket(context.Background(), pos[0], p)
	} else {
		props, err = cl.GetBucket(context.Background(), pos[0])
	}
	if err != nil {
		return e.apiFail(err, "")
	}
	b, _ := json.MarshalIndent(props, "", "  ")
	fmt.Fprintf(e.stdout, "%s\n", b)
	return exitOK
}

func runStatus(e *env, args []string) int {
	c := lookup("status")
	fs := e.flags(c, `
Lists the cluster's nodes as the node at --addr sees them: id, state (alive, suspect,
down, leaving), zone, partitions owned and addresses. The answering node is marked *.`)
	cf := e.addClientFlags(fs, false)
	asJSON := fs.Bool("json", false, "print the raw JSON of GET /v1/cluster")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	cl, err := cf.client().Cluster(context.Background())
	if err != nil {
		return e.apiFail(err, "")
	}
	if *asJSON {
		b, _ := json.MarshalIndent(cl, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	fmt.Fprintf(e.stdout, "cluster as seen by %s: %d nodes, %d partitions\n\n", cl.Node, len(cl.Nodes), cl.Partitions)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tSTATE\tZONE\tPARTITIONS\tHTTP\tRESP\tRPC\tGOSSIP")
	for _, n := range sortedNodes(cl.Nodes) {
		mark := " "
		if n.ID == cl.Node {
			mark = "*"
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", mark, n.ID, n.State, dash(n.Zone), n.Partitions,
			dash(n.HTTP), dash(n.RESP), dash(n.RPC), dash(n.Gossip))
	}
	tw.Flush()
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseProps decodes a --set JSON object, refusing fields BucketProps does not have
// (the server would too, with a less local message).
func parseProps(s string) (client.BucketProps, error) {
	var p client.BucketProps
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return p, err
	}
	known := map[string]bool{}
	t := reflect.TypeFor[client.BucketProps]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		known[name] = true
	}
	for _, k := range sortedKeys(raw) {
		if !known[k] {
			return p, fmt.Errorf("unknown property %q", k)
		}
	}
	err := json.Unmarshal([]byte(s), &p)
	return p, err
}
