package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/quorum"
)

// Config describes one simulated run.
type Config struct {
	Seed uint64

	Nodes      int // cluster size
	N, R, W    int // replicas per key, read and write quorums
	Partitions int // ring partitions (Q); 64 keeps small runs fast
	// Shards is how many cores each node runs, each owning a range of partitions, as the
	// server runs one per CPU (core.ShardConfig); 1 by default.
	Shards int

	Duration     time.Duration // how long the workload runs (virtual time)
	Rate         float64       // client operations per second (virtual), over the cluster
	ReadRatio    float64       // share of operations that are reads; the rest are writes
	DeleteRatio  float64       // share of writes that are deletes
	CounterRatio float64       // share of writes that increment a counter (CRDT) key
	// TTLRatio is the share of value writes given a TTL of TTL (expiry): 0 by default, so
	// the staleness measurements stay those of plain writes.
	TTLRatio float64
	TTL      time.Duration
	// BlindRatio is the share of value writes sent with no context, as a Redis SET or a
	// client that writes without reading first: such a write supersedes only what its
	// coordinator holds, which is where a coordinator that lost an acknowledged write in a
	// crash would lose it for good, did it keep its actor (kv679). 0 by default: clients write with the context
	// of the key's latest read.
	BlindRatio float64
	Keys       int // key space
	// ReadAfterWrite, when >= 0, switches the workload to PBS's experiment: every
	// operation writes a fresh key, and once the write is acknowledged the same key is read
	// this long after (through a random node). Staleness then measures t-visibility at
	// exactly that t; with t = 0 it is PBS's "immediate read".
	ReadAfterWrite time.Duration
	KeyDist        string  // "uniform" or "zipfian"
	ZipfS          float64 // zipfian exponent (> 1)

	Latency Model   // per-message-kind latencies
	Loss    float64 // probability that a message is lost

	ReadRepair quorum.RepairMode // the bucket's read_repair mode
	// Conflict is the plain-value bucket's conflict mode: core.ConflictSiblings or
	// core.ConflictLWW (counters keep their own bucket, whose states always merge).
	Conflict string
	// HintedHandoff: the cores hand hints to their primaries. Sloppy quorum is the core's
	// and always on; false makes every handoff batch fail as unreachable (the core has no
	// switch for handoff), so fallbacks keep their hints to the end.
	HintedHandoff bool
	AAE           bool
	AAEInterval   time.Duration // per node

	RequestTimeout  time.Duration // the cores' request deadline (core.Config.RequestTimeout)
	DetectDelay     time.Duration // failure detector: down after being unreachable this long
	HandoffInterval time.Duration // the cores' handoff rounds (core.Config.HandoffInterval)
	// HandoffTimeout is how long a core waits for a handoff batch's answer
	// (core.Config.HandoffTimeout); a lost batch holds its target's handoff back this long.
	HandoffTimeout time.Duration
	HintWindow     time.Duration // how long a hint is kept (hints.Config.Window)
	// GossipLag: each node hears of a membership change (a member's new state, a partition
	// moved) after its own uniform random delay up to this, as gossip spreads it in the
	// server (0: every node at once). Coordinators with different views of a change are
	// what the cores' rules for pending owners must survive.
	GossipLag time.Duration
	// ClientFailover: a client whose node is down (crashed: its connection is refused)
	// sends the request to the next node up instead, as the Go client given several
	// addresses does, so write and read success measure the cluster, not one node's
	// clients. False: the request fails (a client that knows one node). A paused node's
	// clients wait for it either way.
	ClientFailover bool

	// GCGrace is the bucket's gc_grace (whole seconds): a tombstone is reaped once it is
	// this old and every primary holds it. ReapInterval is how often the cores look for
	// tombstones to reap (core.Config.ReapInterval; a pass scans the whole store); 0 picks
	// the grace itself, between 1 s and the server's 10 minutes.
	GCGrace      time.Duration
	ReapInterval time.Duration

	Faults []Fault

	// HealBudget is how long, after the workload and every fault end, the cluster gets to
	// converge (handoff, anti-entropy) before the final checks.
	HealBudget time.Duration

	// VisibilityBins are the t of the t-visibility curve.
	VisibilityBins []time.Duration
}

// DefaultConfig: 5 nodes, N=3, R=W=2, 60 s at 1,000 ops/s over 1,000 keys, 80% reads,
// LAN-like latencies (exponential, 1 ms mean), every repair mechanism on; anti-entropy
// every 100 ms per node (the server's default is 2 s: a simulated minute would otherwise
// not see a full rotation); a 1 s request timeout, handoff rounds every second and a 5 s
// handoff batch timeout (the server's are 5 s, 10 s and 30 s), so that short runs see
// faults play out and heal; membership changes reach each node within 200 ms; clients
// fail over from a crashed node; the bucket's default gc_grace (10 days), so nothing is reaped
// unless GCGrace says otherwise.
func DefaultConfig() Config {
	return Config{
		Seed: 1, Nodes: 5, N: 3, R: 2, W: 2, Partitions: 64, Shards: 1,
		Duration: 60 * time.Second, Rate: 1000, ReadRatio: 0.8, DeleteRatio: 0.05, CounterRatio: 0.1,
		TTL:  2 * time.Second,
		Keys: 1000, KeyDist: "uniform", ZipfS: 1.1, ReadAfterWrite: -1,
		Latency:    Uniform(Exponential{Mean: time.Millisecond}),
		ReadRepair: quorum.RepairBlocking, Conflict: core.ConflictSiblings, HintedHandoff: true, AAE: true, AAEInterval: 100 * time.Millisecond,
		RequestTimeout: time.Second, DetectDelay: 2 * time.Second, HandoffInterval: time.Second, HandoffTimeout: 5 * time.Second,
		HintWindow: 3 * time.Hour, GossipLag: 200 * time.Millisecond, ClientFailover: true, HealBudget: 60 * time.Second,
		GCGrace: time.Duration(core.DefaultBucketProps().GCGraceS) * time.Second, ReapInterval: 0,
		VisibilityBins: []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
			10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
			200 * time.Millisecond, 500 * time.Millisecond, time.Second},
	}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	var errs []error
	if c.Nodes < 1 || c.Nodes > 64 {
		errs = append(errs, fmt.Errorf("sim: nodes %d: want 1..64", c.Nodes))
	}
	if c.N < 1 || c.N > c.Nodes {
		errs = append(errs, fmt.Errorf("sim: n %d: want 1..nodes (%d)", c.N, c.Nodes))
	}
	if c.R < 1 || c.R > c.N || c.W < 1 || c.W > c.N {
		errs = append(errs, fmt.Errorf("sim: r %d and w %d: want 1..n (%d)", c.R, c.W, c.N))
	}
	if c.Partitions < 1 || c.Partitions&(c.Partitions-1) != 0 {
		errs = append(errs, fmt.Errorf("sim: partitions %d: want a power of two", c.Partitions))
	}
	if c.Shards < 1 || c.Shards > c.Partitions {
		errs = append(errs, fmt.Errorf("sim: shards %d: want 1..partitions (%d)", c.Shards, c.Partitions))
	}
	if c.Duration <= 0 || c.Rate <= 0 || c.Keys <= 0 {
		errs = append(errs, errors.New("sim: duration, rate and keys must be positive"))
	}
	if c.ReadRatio < 0 || c.ReadRatio > 1 || c.DeleteRatio < 0 || c.DeleteRatio > 1 || c.CounterRatio < 0 || c.CounterRatio > 1 || c.Loss < 0 || c.Loss >= 1 {
		errs = append(errs, errors.New("sim: ratios must be in [0, 1] and loss in [0, 1)"))
	}
	if c.KeyDist != "uniform" && c.KeyDist != "zipfian" {
		errs = append(errs, fmt.Errorf("sim: key distribution %q: uniform or zipfian", c.KeyDist))
	}
	if c.KeyDist == "zipfian" && c.ZipfS <= 1 {
		errs = append(errs, errors.New("sim: zipfian exponent must be > 1"))
	}
	if c.Latency.W == nil || c.Latency.A == nil || c.Latency.R == nil || c.Latency.S == nil {
		errs = append(errs, errors.New("sim: latency model incomplete"))
	}
	if c.RequestTimeout <= 0 || c.DetectDelay <= 0 || c.HandoffInterval <= 0 || c.HandoffTimeout <= 0 || c.HintWindow <= 0 || c.HealBudget < 0 || c.GossipLag < 0 || (c.AAE && c.AAEInterval <= 0) {
		errs = append(errs, errors.New("sim: timeouts and intervals must be positive"))
	}
	if c.Conflict != core.ConflictSiblings && c.Conflict != core.ConflictLWW {
		errs = append(errs, fmt.Errorf("sim: conflict %q: siblings or lww", c.Conflict))
	}
	if c.TTLRatio < 0 || c.TTLRatio > 1 || (c.TTLRatio > 0 && (c.TTL < time.Millisecond || c.TTL%time.Millisecond != 0)) {
		errs = append(errs, errors.New("sim: ttl ratio must be in [0, 1], and the ttl whole milliseconds >= 1ms"))
	}
	if c.BlindRatio < 0 || c.BlindRatio > 1 {
		errs = append(errs, errors.New("sim: blind-write ratio must be in [0, 1]"))
	}
	if c.GCGrace < 0 || c.GCGrace%time.Second != 0 || c.ReapInterval < 0 {
		errs = append(errs, errors.New("sim: gc grace must be whole seconds >= 0 and the reap interval >= 0"))
	}
	for _, f := range c.Faults {
		if c.Duration > 0 && f.At >= c.Duration {
			errs = append(errs, fmt.Errorf("sim: fault %s starts at %s, when the workload (duration %s) is over: it would never happen", f, f.At, c.Duration))
		}
		for _, id := range f.allNodes() {
			if id < 0 || id >= c.Nodes {
				errs = append(errs, fmt.Errorf("sim: fault %s names node n%d of %d", f, id+1, c.Nodes))
			}
		}
	}
	return errors.Join(errs...)
}
