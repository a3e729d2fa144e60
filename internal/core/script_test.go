package core_test

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/version"
)

// TestScripts runs the protocol scenarios under testdata/: each is a story over a small
// virtual-time cluster, read as the specification of what a node does. Rewrite the
// expected output with -rewrite after a deliberate change, and read the diff.
//
// Commands:
//
//	cluster nodes=N [bucket=B n=N lww]  a fresh cluster (Q=64, default bucket props)
//	put name=X k=K v=V via=N [w= pw= dw= ctx=NAME]   a client write (ctx: the context of reply NAME)
//	delete name=X k=K via=N [ctx=NAME]
//	incr name=X k=K via=N by=D            a counter increment (bucket must be type counter)
//	setreg name=X k=K v=V via=N           Redis SET: assign a register, replacing any type
//	  (put, setreg, incr: ttl=D sets a TTL; no-ttl none; bucket-ttl the bucket's ttl_s)
//	  (put, setreg: if-absent / if-present make the write conditional, read at r= pr=)
//	sadd name=X k=K via=N members=(A,B)   Redis SADD: add members to a set
//	hset name=X k=K via=N field=F v=V     Redis HSET: assign a hash field (a map register)
//	  (sadd, hset: members, field and v take Go escapes, \xff; the reply quotes them)
//	expire name=X k=K via=N ttl=D         Redis EXPIRE: a touch setting the TTL
//	persist name=X k=K via=N              Redis PERSIST: a touch removing it
//	get name=X k=K via=N [r= pr=] [crdt [quoted]]   (crdt: the folded state; quoted: strings Go-quoted)
//	list name=X via=N [bucket= prefix= limit= r= cursor=NAME aligned]   a page of keys (cursor: reply NAME's next)
//	run [for=D]                           move time on (default 100ms), delivering messages
//	reply name=X                          a reply: ok/err, values, context's clock
//	local k=K                             every node's stored copy (and hints)
//	cut from=A to=B / partition A,B|C,D / heal   network faults: sends fail at once
//	blackhole from=A to=B                 sends from A to B are lost silently (A hears at the deadline)
//	down N / up N                         the failure detector's view of N, on every node
//	crash N / restart N                   kill -9 (unsynced writes lost) and start again
//	stop N                                a clean stop (Core.Stop: the epoch is kept); restart N starts it
//	skew N ms=D                           N's wall clock is D ms off
//	counts                                the counters the cores reported
//	cluster ... ring=A,B                  only A and B are ring members at first
//	change next=A,B,C                     a membership change to that ring, nothing moved
//	transfers N                           the partitions N is taking over, with their phase
//	commit                                move every partition whose gainers all finished
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var w *world
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			args := map[string]string{}
			var pos []string
			for _, a := range d.CmdArgs {
				if len(a.Vals) == 0 {
					pos = append(pos, a.Key)
					continue
				}
				args[a.Key] = strings.Join(a.Vals, ",")
			}
			dur := func(k, def string) time.Duration {
				s := args[k]
				if s == "" {
					s = def
				}
				v, err := time.ParseDuration(s)
				if err != nil {
					d.Fatalf(t, "bad duration %q", s)
				}
				return v
			}
			if d.Cmd != "cluster" && w == nil {
				d.Fatalf(t, "no cluster yet")
			}
			switch d.Cmd {
			case "cluster":
				n, _ := strconv.Atoi(args["nodes"])
				b := fixedBuckets{}
				if name := args["bucket"]; name != "" {
					p := core.DefaultBucketProps()
					if v := args["n"]; v != "" {
						p.N, _ = strconv.Atoi(v)
					}
					for _, x := range pos {
						if x == "lww" {
							p.Conflict = core.ConflictLWW
						}
					}
					if v := args["type"]; v != "" {
						p.Type = v
					}
					if v := args["read_repair"]; v != "" {
						p.ReadRepair = v
					}
					if v := args["gc_grace_s"]; v != "" {
						p.GCGraceS, _ = strconv.ParseInt(v, 10, 64)
					}
					if v := args["ttl_s"]; v != "" {
						p.TTLS, _ = strconv.ParseInt(v, 10, 64)
					}
					b[name] = p
				}
				var members []string
				if v := args["ring"]; v != "" {
					members = strings.Split(v, ",")
				}
				w = newWorld(t, n, b, members)
				return ""
			case "change":
				// A membership change: next= names the ring after it; nothing has moved yet.
				// Every change gets a name of its own (c1, c2, ...). With unheard, not every
				// member has heard of it yet (until "heard"): no transfer starts.
				w.next = w.newRing(strings.Split(args["next"], ","))
				w.moved = make([]bool, 64)
				w.changes++
				w.change, w.unheard = fmt.Sprintf("c%d", w.changes), slices.Contains(pos, "unheard")
				w.pushViews()
				return ""
			case "heard":
				w.unheard = false
				w.pushViews()
				return ""
			case "transfers":
				return describeTransfers(w.node(pos[0]).core.Transfers())
			case "commit":
				// Every partition whose gaining nodes all report it complete moves to next;
				// once all have, next becomes the ring.
				return w.commitTransfers()
			case "sadd", "hset":
				unescape := func(v string) string {
					u, err := strconv.Unquote(`"` + v + `"`)
					if err != nil {
						d.Fatalf(t, "bad escapes in %q: %v", v, err)
					}
					return u
				}
				req := core.ClientRequest{Op: core.OpCRDT, Bucket: bucketOf(args), Key: args["k"],
					Write: core.WriteOptions{W: args["w"], PW: args["pw"], DW: args["dw"]}}
				if d.Cmd == "sadd" {
					var ms []string
					for _, a := range d.CmdArgs {
						if a.Key == "members" {
							for _, v := range a.Vals {
								ms = append(ms, unescape(v))
							}
						}
					}
					req.CRDT = &core.CRDTOp{Type: crdt.Set, Op: crdt.Op{Add: ms}}
				} else {
					v := unescape(args["v"])
					req.CRDT = &core.CRDTOp{Type: crdt.Map, Op: crdt.Op{Update: map[string]crdt.FieldOp{
						unescape(args["field"]): {Type: crdt.Register, Replace: true, Op: crdt.Op{Assign: &v}}}}}
				}
				w.request(args["name"], args["via"], req)
				w.run(dur("for", "100ms"))
				r := w.replies[args["name"]]
				if r == nil || r.Err != nil {
					return w.describeReply(args["name"])
				}
				s, err := crdt.Decode(r.After)
				if err != nil {
					return "bad state: " + err.Error()
				}
				return "ok value=" + quoted(s.Value())
			case "put", "delete", "incr", "setreg", "expire", "persist":
				req := core.ClientRequest{Op: core.OpPut, Bucket: bucketOf(args), Key: args["k"], Value: []byte(args["v"]),
					Write: core.WriteOptions{W: args["w"], PW: args["pw"], DW: args["dw"]}}
				if args["ttl"] != "" {
					req.Write.Expiry = core.Expiry{Mode: core.ExpiryTTL, TTL: dur("ttl", "")}
				}
				if slices.Contains(pos, "no-ttl") {
					req.Write.Expiry = core.Expiry{Mode: core.ExpiryNever}
				}
				if slices.Contains(pos, "bucket-ttl") {
					req.Write.Expiry = core.Expiry{Mode: core.ExpiryBucket}
				}
				if slices.Contains(pos, "if-absent") {
					req.Write.Cond = core.CondAbsent
				}
				if slices.Contains(pos, "if-present") {
					req.Write.Cond = core.CondPresent
				}
				req.Read = core.ReadOptions{R: args["r"], PR: args["pr"]}
				req.Write.ContentType = args["ct"]
				if m := args["meta"]; m != "" {
					for _, kv := range strings.Split(m, ",") {
						k, v, _ := strings.Cut(kv, ":")
						req.Write.Meta = append(req.Write.Meta, version.MetaEntry{Key: k, Value: v})
					}
				}
				if c := args["ctx"]; c != "" {
					r := w.replies[c]
					if r == nil {
						d.Fatalf(t, "no reply %q", c)
					}
					req.Write.Context = contextOf(r)
				}
				switch d.Cmd {
				case "delete":
					req.Op = core.OpDelete
				case "incr":
					by, _ := strconv.ParseInt(args["by"], 10, 64)
					req.Op = core.OpCRDT
					req.CRDT = &core.CRDTOp{Type: crdt.Counter, Op: crdt.Op{Increment: &by}}
				case "setreg": // Redis SET: assign a register, replacing any other type
					v := args["v"]
					req.Op, req.Value = core.OpCRDT, nil
					req.CRDT = &core.CRDTOp{Type: crdt.Register, Op: crdt.Op{Assign: &v}, ReplaceType: true}
				case "expire", "persist": // Redis EXPIRE / PERSIST: a touch
					req.Op, req.Value = core.OpCRDT, nil
					req.CRDT = &core.CRDTOp{Type: crdt.Register, Touch: true}
					if d.Cmd == "persist" {
						req.Write.Expiry = core.Expiry{Mode: core.ExpiryNever}
					}
				}
				w.request(args["name"], args["via"], req)
				w.run(dur("for", "100ms"))
				return w.describeReply(args["name"])
			case "get":
				w.request(args["name"], args["via"], core.ClientRequest{Op: core.OpGet, Bucket: bucketOf(args), Key: args["k"],
					Read: core.ReadOptions{R: args["r"], PR: args["pr"]}})
				w.run(dur("for", "100ms"))
				if slices.Contains(pos, "crdt") {
					return w.describeCRDT(args["name"], slices.Contains(pos, "quoted"))
				}
				return w.describeReply(args["name"])
			case "list":
				o := &core.ListOptions{Prefix: args["prefix"], R: args["r"], Limit: 1000, HashAligned: slices.Contains(pos, "aligned")}
				if v := args["limit"]; v != "" {
					o.Limit, _ = strconv.Atoi(v)
				}
				if c := args["cursor"]; c != "" {
					r := w.replies[c]
					if r == nil || r.Next == nil {
						d.Fatalf(t, "no reply %q with a next cursor", c)
					}
					o.Cursor = r.Next
				}
				w.request(args["name"], args["via"], core.ClientRequest{Op: core.OpList, Bucket: bucketOf(args), List: o})
				w.run(dur("for", "1s"))
				r := w.replies[args["name"]]
				switch {
				case r == nil:
					return "pending"
				case r.Err != nil:
					return w.describeReply(args["name"])
				}
				var b strings.Builder
				for _, k := range r.Keys {
					b.WriteString(k.Key + " ")
				}
				if r.Next != nil {
					fmt.Fprintf(&b, "(more)")
				} else {
					fmt.Fprintf(&b, "(done)")
				}
				return b.String()
			case "run":
				w.run(dur("for", "100ms"))
				return ""
			case "repair":
				part := -1
				if v := args["partition"]; v != "" {
					part, _ = strconv.Atoi(v)
				}
				w.repairs = nil
				w.nextReq++
				w.step(w.node(args["via"]), core.StartRepair{ID: w.nextReq, Partition: part, Peer: args["peer"]})
				w.run(dur("for", "1s"))
				return describeRepair(w.repairs)
			case "reap":
				w.reaped = nil
				w.nextReq++
				w.step(w.node(args["via"]), core.StartReap{ID: w.nextReq})
				w.run(dur("for", "1s"))
				if len(w.reaped) == 0 {
					return "pending"
				}
				return fmt.Sprintf("reaped=%d", w.reaped[0].Reaped)
			case "reply":
				return w.describeReply(args["name"])
			case "local":
				return w.describeLocal(bucketOf(args), args["k"])
			case "cut":
				w.cut[[2]string{args["from"], args["to"]}] = true
				return ""
			case "partition":
				sides := strings.Split(strings.Join(pos, ","), "|")
				if len(sides) != 2 {
					d.Fatalf(t, "partition A,B|C,D")
				}
				for _, a := range strings.Split(sides[0], ",") {
					for _, b := range strings.Split(sides[1], ",") {
						w.cut[[2]string{a, b}] = true
						w.cut[[2]string{b, a}] = true
					}
				}
				return ""
			case "blackhole":
				// Messages from→to are silently lost; the answers of to are lost too with both.
				w.hole[[2]string{args["from"], args["to"]}] = true
				return ""
			case "heal":
				w.cut = map[[2]string]bool{}
				w.hole = map[[2]string]bool{}
				return ""
			case "down", "up":
				for _, id := range pos {
					w.node(id).down = d.Cmd == "down"
				}
				w.pushViews()
				return ""
			case "syncdelay": // syncdelay n1 ms=50: n1's syncs take that long (0: at once)
				ms, _ := strconv.Atoi(args["ms"])
				w.node(pos[0]).syncDelay = time.Duration(ms) * time.Millisecond
				return ""
			case "crash":
				for _, id := range pos {
					w.crash(id)
				}
				return ""
			case "wipe":
				for _, id := range pos {
					w.wipe(id)
				}
				return ""
			case "stop":
				for _, id := range pos {
					nd := w.node(id)
					if err := nd.core.Stop(); err != nil {
						return "error: " + err.Error()
					}
					nd.up = false
				}
				return ""
			case "restart":
				for _, id := range pos {
					w.restart(id)
				}
				return ""
			case "skew":
				ms, _ := strconv.Atoi(args["ms"])
				w.wallOff[pos[0]] = time.Duration(ms) * time.Millisecond
				return ""
			case "counts":
				names := map[core.Counter]string{core.CountForward: "forward", core.CountFallbackWrite: "fallback_write",
					core.CountHintStored: "hint_stored", core.CountReadRepair: "read_repair", core.CountStaleRead: "stale_read",
					core.CountHintsDelivered: "hints_delivered", core.CountHintsStale: "hints_stale", core.CountHandoffReceived: "handoff_received",
					core.CountTransferKeys: "transfer_keys", core.CountPendingWrite: "pending_write"}
				var out []string
				for k, name := range names {
					if v := w.counts[k]; v > 0 {
						out = append(out, fmt.Sprintf("%s=%d", name, v))
					}
				}
				sort.Strings(out)
				return strings.Join(out, " ")
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

func bucketOf(args map[string]string) string {
	if b := args["bucket"]; b != "" {
		return b
	}
	return "b"
}

func contextOf(r *core.Reply) string {
	if r.Context != "" {
		return r.Context
	}
	if !r.Object.Empty() {
		return version.EncodeContext(r.Object.Clock, r.Object.MaxTimestamp())
	}
	return ""
}

func (w *world) describeReply(name string) string {
	r := w.replies[name]
	if r == nil {
		return "pending"
	}
	if r.Err != nil {
		return fmt.Sprintf("error: %v (%s)", r.Err, core.ErrorCode(r.Err))
	}
	if r.After != nil {
		s, err := crdt.Decode(r.After)
		if err != nil {
			return "bad state: " + err.Error()
		}
		return fmt.Sprintf("ok value=%v", crdtValue(s))
	}
	if r.Context != "" {
		clk, _, _ := version.DecodeContext(r.Context)
		return fmt.Sprintf("ok clock=%v", clk)
	}
	return describeObject(r.Object)
}

func crdtValue(s crdt.State) any { return s.Value() }

// quoted prints a CRDT value with its strings Go-quoted: members, field names and values
// that are not printable show as escapes.
func quoted(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, " ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		q := make([]string, len(keys))
		for i, k := range keys {
			q[i] = strconv.Quote(k) + ":" + quoted(v[k])
		}
		return "map[" + strings.Join(q, " ") + "]"
	}
	return fmt.Sprint(v)
}

// describeCRDT prints a read's siblings folded into one CRDT state (q: strings quoted).
func (w *world) describeCRDT(name string, q bool) string {
	r := w.replies[name]
	if r == nil || r.Err != nil {
		return w.describeReply(name)
	}
	s, found, err := crdt.Fold(r.Object)
	switch {
	case err != nil:
		return "bad state: " + err.Error()
	case !found:
		return "not found"
	}
	val := fmt.Sprint(s.Value())
	if q {
		val = quoted(s.Value())
	}
	out := fmt.Sprintf("value=%s siblings=%d clock=%v", val, len(r.Object.Siblings), r.Object.Clock)
	if e := core.KeyExpiry(r.Object); e != 0 {
		out += fmt.Sprintf(" ttl=%v", time.Duration(e-r.At)*time.Millisecond)
	}
	return out
}

func describeObject(o version.Object) string {
	if o.Empty() {
		return "not found"
	}
	var vals []string
	for _, s := range o.Siblings {
		v := string(s.Value)
		if s.Tombstone {
			v = "<tombstone>"
		}
		if s.ContentType != "" || len(s.Meta) > 0 {
			v += fmt.Sprintf("[%s %v]", s.ContentType, s.Meta)
		}
		if s.Expires != 0 {
			// Relative to the virtual wall clock's origin: the run's time of expiry.
			v += fmt.Sprintf("(expires %v)", time.Duration(s.Expires-baseWall)*time.Millisecond)
		}
		vals = append(vals, fmt.Sprintf("%s@%s", v, s.Dot))
	}
	return fmt.Sprintf("%s clock=%v", strings.Join(vals, " "), o.Clock)
}

func (w *world) describeLocal(bucket, key string) string {
	var b strings.Builder
	for _, nd := range w.nodes {
		if !nd.up {
			fmt.Fprintf(&b, "%s: down\n", nd.id)
			continue
		}
		obj, hinted, err := nd.core.Local(bucket, key)
		switch {
		case err != nil:
			fmt.Fprintf(&b, "%s: error %v\n", nd.id, err)
		case hinted != "":
			fmt.Fprintf(&b, "%s: hint for %s: %s\n", nd.id, hinted, describeObject(obj))
		default:
			fmt.Fprintf(&b, "%s: %s\n", nd.id, describeObject(obj))
		}
	}
	return b.String()
}

// describeRepair sums an on-demand repair's exchanges.
func describeRepair(us []core.RepairUpdate) string {
	var exchanges, differed, repaired, errs int
	finished := false
	var failure error
	for _, u := range us {
		if u.Err != nil {
			failure = u.Err
		}
		if u.Total > 0 {
			exchanges++
			differed += u.Result.KeysDiffered
			repaired += u.Result.KeysRepaired
			if u.Result.Error != "" {
				errs++
			}
		}
		finished = finished || u.Finished
	}
	switch {
	case failure != nil:
		return "error: " + failure.Error()
	case !finished:
		return "pending"
	}
	return fmt.Sprintf("exchanges=%d keys_differed=%d keys_repaired=%d errors=%d", exchanges, differed, repaired, errs)
}

func describeTransfers(ts []core.TransferStatus) string {
	phases := map[string]int{}
	keys := int64(0)
	sources := map[string]int{}
	for _, t := range ts {
		phases[t.Phase]++
		keys += t.Keys
		sources[t.Source]++
	}
	var ps, ss []string
	for p, n := range phases {
		ps = append(ps, fmt.Sprintf("%s=%d", p, n))
	}
	for s, n := range sources {
		ss = append(ss, fmt.Sprintf("%s=%d", s, n))
	}
	sort.Strings(ps)
	sort.Strings(ss)
	return fmt.Sprintf("partitions=%d %s keys=%d sources: %s", len(ts), strings.Join(ps, " "), keys, strings.Join(ss, " "))
}

// commitTransfers moves every partition whose gaining nodes all report it done (the rule
// the server's shell applies to what the nodes publish: core.MovedPartitions).
func (w *world) commitTransfers() string {
	if w.next == nil {
		return "no change pending"
	}
	done := map[string]map[int]bool{}
	heard := map[string]bool{} // down, or has the plan for next
	for _, nd := range w.nodes {
		done[nd.id] = map[int]bool{}
		key, _ := nd.core.TransferPlan()
		heard[nd.id] = !nd.up || key == w.change
		if !nd.up {
			continue
		}
		for _, t := range nd.core.Transfers() {
			if t.Phase == "done" {
				done[nd.id][t.Partition] = true
			}
		}
	}
	before := w.moved
	w.moved = core.MovedPartitions(w.ring, w.next, w.buckets.Ns(), before, func(node string) bool { return heard[node] },
		func(node string, p int) bool { return done[node][p] })
	moved, waiting := 0, 0
	for p, m := range w.moved {
		switch {
		case !m:
			waiting++
		case p >= len(before) || !before[p]:
			moved++
		}
	}
	if waiting == 0 {
		w.ring, w.next, w.moved, w.change = w.next, nil, nil, ""
	}
	w.pushViews()
	return fmt.Sprintf("moved=%d waiting=%d", moved, waiting)
}
