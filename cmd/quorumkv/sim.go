package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/sim"
)

func init() {
	register(&command{name: "sim", group: "Tools",
		args: "[--nodes 5] [--n 3] [--r 2] [--w 2] [--duration 60s] [--seed 1] [--latency MODEL] " +
			"[--faults SCHEDULE] [--json] [--plot FILE.png|FILE.svg]",
		summary: "deterministic simulator: staleness, write success and latency for N/R/W and faults",
		run:     runSim})
}

// simRun is sim.Run; tests substitute it.
var simRun = sim.Run

const simHelp = `
Runs a simulated cluster whose every node runs the server's own protocol core
(internal/core: coordinators, replicas, forwarding, sloppy quorum with hedged stand-ins,
dots and actors, read repair, hints and handoff, anti-entropy and tombstone reaping) over
the real in-memory storage engine, on a simulated network and clock, with a client
workload and a fault schedule; the simulator itself only carries messages, keeps time,
injects faults and checks. It reports how stale reads were (reads that returned
something older than the newest write acknowledged before they began), how many writes
succeeded, read/write latency, t-visibility (the probability that a read started t ms
after a write's acknowledgement sees it), k-staleness, hints, repairs, tombstones reaped,
and whether the replicas converged after healing. The same seed gives the same run (and trace hash). On an invariant
violation it prints the violations, the seed and the command that replays the run, and
exits 1.

--read-after-write T is PBS's experiment: every write goes to a fresh key (whatever --keys
says) and the key is read T after the write's acknowledgement, through a random node.

--latency is a PBS latency model (Bailis et al., VLDB 2012, fitted to production traces:
lnkd-ssd, lnkd-disk, ymmr, and wan: LNKD-DISK with every node its own datacenter, 75 ms
apart) or a distribution used for every message:
const:1ms, exp:2ms, pareto:1ms:1.5, mix:0.9:(exp:1ms):(const:50ms).

--faults is a schedule of faults separated by ";":
  partition n1,n2|n3,n4,n5 10s@20s   both ways, for 10 s from 20 s (no duration: to the end)
  partition n1>n2 5s@3s             one way: n1's messages to n2 are lost
  crash n3@30s  /  crash n3 10s@30s  kill -9 at 30 s; restart at the end, or after 10 s
  pause n2 5s@12s                    SIGSTOP for 5 s
  skew n2 500ms  /  skew n2 -500ms@10s
  join n6@20s                        n6 starts and joins the ring, streaming its partitions
  leave n2@40s                       n2 hands its partitions away, then leaves the ring

Progress goes to stderr: the workload (--duration), then up to --heal-budget of
healing, both in virtual time (a bar on a terminal, a line every few seconds elsewhere). --json prints the report as JSON; --plot draws the
t-visibility curve and the read/write latency distributions to a PNG or SVG file, and under
them a timeline: per second of virtual time, the stale-read share, the write success rate
and the write latency (p50, p99), with the fault windows shaded.`

// simOptions is what the sim command's flags asked for besides the configuration.
type simOptions struct {
	json    bool
	plot    string
	command string // the command line that replays the run
}

// simFlagOrder is the order of the flags in a replay command; the first ones are always
// written, the others when they were given.
var simFlagOrder = []string{"nodes", "n", "r", "w", "duration", "seed", "shards",
	"rate", "keys", "key-dist", "read-ratio", "delete-ratio", "counter-ratio", "ttl-ratio", "ttl", "blind-writes", "read-after-write", "latency", "loss", "read-repair", "conflict",
	"handoff", "aae", "aae-interval", "detect-delay", "request-timeout", "handoff-timeout", "gossip-lag", "client-failover", "gc-grace", "heal-budget", "faults"}

const simAlwaysFlags = 6

// parseSimFlags reads the sim command's arguments into a validated configuration. ok is
// false when parsing ended (help, or a usage error already reported), with the exit code.
func parseSimFlags(e *env, args []string) (cfg sim.Config, opts simOptions, code int, ok bool) {
	c := lookup("sim")
	fs := e.flags(c, simHelp)
	def := sim.DefaultConfig()
	nodes := fs.Int("nodes", def.Nodes, "cluster size")
	n := fs.Int("n", def.N, "replicas per key (`N`)")
	r := fs.Int("r", def.R, "read quorum (`R`)")
	w := fs.Int("w", def.W, "write quorum (`W`)")
	shards := fs.Int("shards", def.Shards, "protocol cores per node, each owning a range of partitions (the server runs one per CPU)")
	duration := fs.Duration("duration", def.Duration, "how long the workload runs, in virtual time")
	seed := fs.Uint64("seed", def.Seed, "random `seed`; the same seed replays the same run")
	rate := fs.Float64("rate", def.Rate, "client operations per virtual second, over the cluster")
	keys := fs.Int("keys", def.Keys, "key space")
	keyDist := fs.String("key-dist", def.KeyDist, "key distribution: `uniform|zipfian`")
	readRatio := fs.Float64("read-ratio", def.ReadRatio, "share of operations that are reads")
	deleteRatio := fs.Float64("delete-ratio", def.DeleteRatio, "share of writes that are deletes")
	counterRatio := fs.Float64("counter-ratio", def.CounterRatio, "share of writes that increment a counter (CRDT) key")
	ttlRatio := fs.Float64("ttl-ratio", def.TTLRatio, "share of value writes given a TTL of --ttl (expiry)")
	blindRatio := fs.Float64("blind-writes", def.BlindRatio, "share of value writes sent with no context (as a Redis SET): they supersede only what their coordinator holds")
	ttl := fs.Duration("ttl", def.TTL, "the TTL of --ttl-ratio's writes")
	readAfter := fs.Duration("read-after-write", def.ReadAfterWrite, "PBS's experiment: every operation writes a fresh key (--keys is ignored) and reads it this long after its ack (-1ns: off)")
	latency := fs.String("latency", "exp:1ms", "latency `model`: lnkd-ssd, lnkd-disk, ymmr, wan, or a distribution")
	loss := fs.Float64("loss", def.Loss, "probability that a message is lost")
	repair := fs.String("read-repair", def.ReadRepair.String(), "read repair: `blocking|async|none`")
	conflict := fs.String("conflict", def.Conflict, "the bucket's conflict mode: `siblings|lww` (counters keep their own bucket)")
	handoff := fs.Bool("handoff", def.HintedHandoff, "hinted handoff (false: every handoff batch fails; sloppy quorum stays on, as in the node)")
	aae := fs.Bool("aae", def.AAE, "active anti-entropy (Merkle tree exchange)")
	aaeInterval := fs.Duration("aae-interval", def.AAEInterval, "anti-entropy exchange interval per node")
	detect := fs.Duration("detect-delay", def.DetectDelay, "failure detector: a node is down after being unreachable this long")
	timeout := fs.Duration("request-timeout", def.RequestTimeout, "the nodes' request timeout")
	handoffTimeout := fs.Duration("handoff-timeout", def.HandoffTimeout, "how long a node waits for a handoff batch's answer (the server's: 30s)")
	gossipLag := fs.Duration("gossip-lag", def.GossipLag, "each node hears of a membership change (join, leave, a partition moved) within this, at random (0: all at once)")
	failover := fs.Bool("client-failover", def.ClientFailover, "a client whose node is down sends to the next node up, as the Go client given several addresses does (false: the request fails)")
	gcGrace := fs.Duration("gc-grace", def.GCGrace, "the bucket's gc_grace (whole seconds): tombstones older than this, held by every primary, are reaped")
	heal := fs.Duration("heal-budget", def.HealBudget, "virtual time the cluster gets to converge after the workload and faults end")
	faults := fs.String("faults", "", "fault `schedule` (see above)")
	fs.BoolVar(&opts.json, "json", false, "print the report as JSON")
	fs.StringVar(&opts.plot, "plot", "", "draw t-visibility, latency distributions and a per-second timeline to `FILE.png|FILE.svg`")
	pos, code, ok := parse(fs, args)
	if !ok {
		return cfg, opts, code, false
	}
	if len(pos) != 0 {
		return cfg, opts, usageErr(fs, "unexpected argument %q", pos[0]), false
	}
	cfg = def
	cfg.Seed, cfg.Nodes, cfg.N, cfg.R, cfg.W = *seed, *nodes, *n, *r, *w
	cfg.Shards = *shards
	cfg.Duration, cfg.Rate, cfg.Keys, cfg.KeyDist = *duration, *rate, *keys, *keyDist
	cfg.ReadRatio, cfg.DeleteRatio, cfg.Loss = *readRatio, *deleteRatio, *loss
	cfg.CounterRatio, cfg.ReadAfterWrite = *counterRatio, *readAfter
	cfg.TTLRatio, cfg.TTL = *ttlRatio, *ttl
	cfg.BlindRatio = *blindRatio
	cfg.HintedHandoff, cfg.AAE, cfg.AAEInterval = *handoff, *aae, *aaeInterval
	cfg.DetectDelay, cfg.RequestTimeout, cfg.HealBudget = *detect, *timeout, *heal
	cfg.HandoffTimeout, cfg.GCGrace, cfg.Conflict = *handoffTimeout, *gcGrace, *conflict
	cfg.GossipLag, cfg.ClientFailover = *gossipLag, *failover
	var err error
	if cfg.Latency, err = sim.ParseModel(*latency); err != nil {
		return cfg, opts, usageErr(fs, "--latency: %v", err), false
	}
	if cfg.ReadRepair, err = quorum.ParseRepairMode(*repair); err != nil {
		return cfg, opts, usageErr(fs, "--read-repair: %v", err), false
	}
	if cfg.Faults, err = sim.ParseFaults(*faults); err != nil {
		return cfg, opts, usageErr(fs, "--faults: %v", err), false
	}
	if opts.plot != "" {
		if ext := strings.ToLower(filepath.Ext(opts.plot)); ext != ".png" && ext != ".svg" {
			return cfg, opts, usageErr(fs, "--plot %q: want a .png or .svg file", opts.plot), false
		}
		if err := checkCreatable(opts.plot); err != nil {
			return cfg, opts, usageErr(fs, "--plot: %v", err), false
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, opts, usageErr(fs, "%s", strings.ReplaceAll(err.Error(), "\n", "; ")), false
	}
	opts.command = simReplayCommand(fs)
	return cfg, opts, 0, true
}

// checkCreatable reports whether path can be written, before a run that would write it at
// the end: it opens it for writing (creating it, and removing it again if it was not there)
// without truncating what is there.
func checkCreatable(path string) error {
	_, statErr := os.Lstat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o666)
	if err != nil {
		return err
	}
	f.Close()
	if os.IsNotExist(statErr) {
		return os.Remove(path)
	}
	return nil
}

// simReplayCommand is the quorumkv sim command line that replays what fs parsed: the
// core flags always, the others when given (not --json nor --plot).
func simReplayCommand(fs *flag.FlagSet) string {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	parts := []string{"quorumkv", "sim"}
	for i, name := range simFlagOrder {
		if i >= simAlwaysFlags && !set[name] {
			continue
		}
		f := fs.Lookup(name)
		v := f.Value.String()
		if _, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool {
			parts = append(parts, "--"+name+"="+v)
			continue
		}
		parts = append(parts, "--"+name, shellQuote(v))
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:,=@+-%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func runSim(e *env, args []string) int {
	cfg, opts, code, ok := parseSimFlags(e, args)
	if !ok {
		return code
	}
	if os.Getenv("GOGC") == "" {
		// The simulator makes many small, short-lived objects (events, messages, decoded
		// versions) and keeps little (its history): collecting an eighth as often saves about
		// a quarter of the CPU. The soft limit keeps a long run's memory within 1 GiB while
		// it can (the history grows with the run).
		debug.SetGCPercent(800)
		if os.Getenv("GOMEMLIMIT") == "" {
			debug.SetMemoryLimit(1 << 30)
		}
	}
	bar := newMeter(e.stderr, "sim")
	rep, err := simRun(cfg, func(done, total time.Duration) {
		bar.update(float64(done)/float64(max(total, 1)), simProgress(done, total, cfg.Duration))
	})
	bar.finish()
	violated := errors.Is(err, sim.ErrViolation)
	if err != nil && !violated {
		return e.fail("sim: %v", err)
	}
	if rep == nil {
		rep = &sim.Report{Seed: cfg.Seed}
	}
	if rep.Command == "" {
		rep.Command = opts.command
	}
	if opts.json {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return e.fail("sim: %v", err)
		}
		fmt.Fprintf(e.stdout, "%s\n", b)
	} else {
		writeSimReport(e.stdout, rep)
	}
	if opts.plot != "" {
		if err := writeSimPlot(opts.plot, rep); err != nil {
			return e.fail("sim: --plot: %v", err)
		}
		fmt.Fprintf(e.stderr, "sim: wrote %s\n", opts.plot)
	}
	if violated {
		writeSimViolation(e.stderr, rep, err)
		return exitFail
	}
	return exitOK
}

// writeSimViolation tells how a run broke an invariant and how to replay it.
func writeSimViolation(w io.Writer, rep *sim.Report, err error) {
	fmt.Fprintf(w, "quorumkv sim: %v\n", err)
	for _, v := range rep.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
	fmt.Fprintf(w, "seed: %d\nreplay: %s\n", rep.Seed, rep.Command)
}

// writeSimReport prints a report for people.
func writeSimReport(w io.Writer, rep *sim.Report) {
	fmt.Fprintf(w, "seed %d", rep.Seed)
	if rep.Config != "" {
		fmt.Fprintf(w, ": %s", rep.Config)
	}
	fmt.Fprintln(w)
	if rep.Faults != "" {
		fmt.Fprintf(w, "faults: %s\n", rep.Faults)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "stale reads\t%s\t(%d of %d reads; %d failed, read success %s)\n",
		pct(rep.StaleReadPct/100), rep.StaleReads, rep.Reads, rep.FailedReads, pct(rep.ReadSuccessRate))
	fmt.Fprintf(tw, "write success\t%s\t(of %d writes)\n", pct(rep.WriteSuccessRate), rep.Writes)
	fmt.Fprintf(tw, "read latency\t%s\n", percentiles(rep.ReadLatencyMs, rep.RequestTimeoutMs))
	fmt.Fprintf(tw, "write latency\t%s\n", percentiles(rep.WriteLatencyMs, rep.RequestTimeoutMs))
	tw.Flush()

	if len(rep.TVisibility) > 0 {
		fmt.Fprintln(w, "\nt-visibility (P[a read started t after a write's ack sees it]; a row: t up to the next row's t):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  t (ms)\tp_consistent\tsamples\t\n")
		for _, p := range rep.TVisibility {
			t := strconv.FormatFloat(p.TMs, 'f', -1, 64)
			if p.OpenEnded {
				t = "≥ " + t
			}
			fmt.Fprintf(tw, "  %s\t%.4f\t%d\t\n", t, p.PConsistent, p.Samples)
		}
		tw.Flush()
	}
	if len(rep.KStaleness) > 0 {
		fmt.Fprintln(w, "\nk-staleness (share of reads k versions behind):")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		for _, k := range rep.KStaleness {
			fmt.Fprintf(tw, "  k=%d\t%s\t\n", k.K, pct(k.Fraction))
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "hints\tstored %d, delivered %d, pending %d\n", rep.HintsStored, rep.HintsDelivered, rep.HintsPending)
	fmt.Fprintf(tw, "read repairs\t%d\n", rep.ReadRepairs)
	fmt.Fprintf(tw, "anti-entropy\t%d exchanges, %d keys repaired\n", rep.AAEExchanges, rep.AAERepairs)
	fmt.Fprintf(tw, "tombstones\t%d reaped\n", rep.TombstonesReaped)
	if rep.ClusterChanges > 0 || rep.TransferKeys > 0 {
		fmt.Fprintf(tw, "cluster changes\t%d completed, %d keys streamed\n", rep.ClusterChanges, rep.TransferKeys)
	}
	fmt.Fprintf(tw, "messages\t%d (%d lost)\n", rep.Messages, rep.MessagesLost)
	if rep.Converged {
		fmt.Fprintf(tw, "converged after\t%s ms\n", strconv.FormatFloat(rep.ConvergedAfterMs, 'f', -1, 64))
	} else {
		fmt.Fprintf(tw, "converged after\tnot converged within the heal budget\n")
	}
	if len(rep.Violations) == 0 {
		fmt.Fprintf(tw, "violations\tnone\n")
	} else {
		fmt.Fprintf(tw, "violations\t%d\n", len(rep.Violations))
	}
	fmt.Fprintf(tw, "trace hash\t%s\n", rep.TraceHash)
	speed := "-"
	if rep.WallSeconds > 0 {
		speed = fmt.Sprintf("%.1f", rep.SimulatedSeconds/rep.WallSeconds)
	}
	fmt.Fprintf(tw, "speed\t%s simulated s per wall s (%.1f s simulated in %.2f s, %d events)\n",
		speed, rep.SimulatedSeconds, rep.WallSeconds, rep.Events)
	tw.Flush()
	for _, v := range rep.Violations {
		fmt.Fprintf(w, "  - %s\n", v)
	}
	if rep.Command != "" {
		fmt.Fprintf(w, "replay: %s\n", rep.Command)
	}
}

// pct formats a fraction as a percentage.
func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', 2, 64) + "%" }

// percentiles formats p; a percentile at the request timeout (timeoutMs, when positive) is
// a request that timed out, and says so: its latency was at least that.
func percentiles(p sim.Percentiles, timeoutMs float64) string {
	f := func(v float64) string {
		if timeoutMs > 0 && v >= timeoutMs {
			return fmt.Sprintf("≥ %s ms (timeout)", strconv.FormatFloat(timeoutMs, 'f', -1, 64))
		}
		return fmt.Sprintf("%.3f ms", v)
	}
	return fmt.Sprintf("p50 %s  p99 %s  p99.9 %s", f(p.P50), f(p.P99), f(p.P999))
}

// simProgress describes a run's progress in virtual time: the workload (--duration), then
// up to the heal budget (--heal-budget) for the cluster to converge, which ends early
// when it does.
func simProgress(done, total, workload time.Duration) string {
	heal := total - workload
	switch {
	case done >= total:
		return fmt.Sprintf("done: workload %s + healing (of a %s heal budget), virtual", workload, heal)
	case done <= workload:
		return fmt.Sprintf("workload %s of %s, virtual (then up to %s heal budget)", done.Truncate(time.Second), workload, heal)
	default:
		return fmt.Sprintf("workload %s done; healing %s of at most %s (heal budget), virtual", workload, (done - workload).Truncate(time.Second), heal)
	}
}
