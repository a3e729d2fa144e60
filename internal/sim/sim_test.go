package sim

import (
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/version"
)

var (
	sweep     = flag.Int("sim.sweep", 0, "run this many randomized seeds with random fault schedules (long)")
	sweepFrom = flag.Uint64("sim.sweep.from", 1000, "the first seed of TestRandomSweep")
)

// faultyConfig is a small run with every kind of fault.
func faultyConfig(seed uint64) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Duration, cfg.Rate, cfg.Keys = 8*time.Second, 400, 300
	cfg.HealBudget = 30 * time.Second
	f, err := ParseFaults("partition n1,n2|n3,n4,n5 2s@1s; crash n3 2s@3500ms; pause n4 1s@5s; skew n2 -500ms@500ms; partition n5>n1 1s@6s")
	if err != nil {
		panic(err)
	}
	cfg.Faults = f
	return cfg
}

// TestSameSeedSameTrace: a seed decides everything.
func TestSameSeedSameTrace(t *testing.T) {
	a, err := Run(faultyConfig(7), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(faultyConfig(7), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.TraceHash != b.TraceHash || a.Events != b.Events || a.StaleReads != b.StaleReads {
		t.Fatalf("seed 7 twice: traces %s/%s, events %d/%d", a.TraceHash, b.TraceHash, a.Events, b.Events)
	}
	c, err := Run(faultyConfig(8), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.TraceHash == a.TraceHash {
		t.Fatal("seeds 7 and 8 gave the same trace: the seed decides nothing")
	}
}

// TestFixedSeedsWithFaults: partitions (both ways and one way), a crash with restart, a
// pause and a skewed clock; every invariant holds, and the cluster converges after healing.
// Seeds 6 and 7 run three cores per node, as a server on a 3-CPU machine does.
func TestFixedSeedsWithFaults(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6, 7} {
		cfg := faultyConfig(seed)
		if seed >= 6 {
			cfg.Shards = 3
		}
		rep, err := Run(cfg, nil)
		if err != nil {
			t.Fatalf("seed %d: %v\nreplay: quorumkv sim --seed %d --shards %d --duration 8s --rate 400 --keys 300 --faults %q", seed, err, seed, cfg.Shards, rep.Faults)
		}
		if !rep.Converged || rep.Reads == 0 || rep.Writes == 0 || rep.HintsStored == 0 {
			t.Fatalf("seed %d: %+v", seed, rep)
		}
		t.Logf("seed %d: %d reads (%.2f%% stale), %d writes (%.1f%% ok), hints %d/%d, aae %d exchanges %d repairs, converged after %.0f ms",
			seed, rep.Reads, rep.StaleReadPct, rep.Writes, 100*rep.WriteSuccessRate, rep.HintsStored, rep.HintsDelivered,
			rep.AAEExchanges, rep.AAERepairs, rep.ConvergedAfterMs)
	}
}

// TestRandomSweep runs -sim.sweep random configurations (off by default).
func TestRandomSweep(t *testing.T) {
	if *sweep == 0 {
		t.Skip("run with -sim.sweep=N")
	}
	for i := 0; i < *sweep; i++ {
		seed := *sweepFrom + uint64(i)
		cfg := faultyConfig(seed)
		r := seed
		cfg.R, cfg.W = 1+int(r%3), 1+int((r/3)%3)
		cfg.Loss = float64(r%4) / 100
		if r%2 == 0 {
			cfg.KeyDist = "zipfian"
		}
		if r%3 == 0 {
			cfg.Conflict = core.ConflictLWW
		}
		if r%5 < 2 {
			cfg.DeleteRatio, cfg.GCGrace = 0.3, time.Second
		}
		cfg.Shards = 1 + int(r/7%4)
		cfg.BlindRatio = float64(r/11%3) / 2 // none, half, all
		if _, err := Run(cfg, nil); err != nil {
			t.Fatalf("seed %d (r=%d w=%d loss=%g conflict=%s gc_grace=%s shards=%d blind=%g): %v", seed, cfg.R, cfg.W, cfg.Loss, cfg.Conflict, cfg.GCGrace, cfg.Shards, cfg.BlindRatio, err)
		}
	}
	fmt.Println("sweep:", *sweep, "seeds passed")
}

// TestReapingUnderFaults: with half the writes deletes and a one-second gc_grace, the
// cores reap tombstones during and after the faults, and no deleted value comes back (a
// read or the final copies holding a write a reaped tombstone covered is a violation).
func TestReapingUnderFaults(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		cfg := faultyConfig(seed)
		cfg.Keys, cfg.DeleteRatio, cfg.GCGrace = 100, 0.5, time.Second
		cfg.Shards = int(seed) // each shard reaps its own range
		rep, err := Run(cfg, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if rep.TombstonesReaped == 0 || !rep.Converged {
			t.Fatalf("seed %d: %d tombstones reaped, converged %v", seed, rep.TombstonesReaped, rep.Converged)
		}
		t.Logf("seed %d: %d writes, %d tombstones reaped, %d reads (%.2f%% stale)", seed, rep.Writes, rep.TombstonesReaped, rep.Reads, rep.StaleReadPct)
	}
}

// TestResurrectionIsCaught: the checker flags a value a reaped delete had covered.
func TestResurrectionIsCaught(t *testing.T) {
	h := newHistory()
	v := version.Sibling{Dot: version.Dot{Actor: "n1.s1", Counter: 1}, Value: []byte("v")}
	h.wrote(simBucket, "k", v, 0)
	tomb := version.Sibling{Dot: version.Dot{Actor: "n1.s1", Counter: 2}, Tombstone: true}
	h.wrote(simBucket, "k", tomb, 1)
	h.reaped("k", version.Clock{{Actor: "n1.s1", Counter: 2}})
	h.read("k", 0, version.Object{}, nil, nil)
	if len(h.violations) != 0 {
		t.Fatalf("an absent reaped key: %v", h.violations)
	}
	h.read("k", 0, version.Object{Clock: version.Clock{{Actor: "n1.s1", Counter: 1}}, Siblings: []version.Sibling{v}}, nil, nil)
	if len(h.violations) != 1 || !strings.Contains(h.violations[0], "came back") {
		t.Fatalf("violations %v, want the resurrection", h.violations)
	}
}

// TestUnseenCoverIsCaught: the checker flags a write whose clock claims an acknowledged
// write of its own actor that its coordinator never saw (kv679), and nothing else: not an
// unacknowledged one, not one it saw, not another key's or actor's.
func TestUnseenCoverIsCaught(t *testing.T) {
	h := newHistory()
	ts := func(n int64) version.HLC { return version.HLC{Wall: baseWall + n} }
	sib := func(actor string, n uint64) version.Sibling {
		return version.Sibling{Dot: version.Dot{Actor: actor, Counter: n}, Value: []byte("v"), Timestamp: ts(int64(n))}
	}
	ack := func(key string, s version.Sibling) {
		t.Helper()
		if err := h.ack(key, version.EncodeContext(version.Clock{}.With(s.Dot), s.Timestamp), 0); err != nil {
			t.Fatal(err)
		}
	}
	h.wrote(simBucket, "k", sib("n1.s1", 1), 0)
	ack("k", sib("n1.s1", 1))
	h.wrote(simBucket, "k", sib("n1.s1", 5), 1)  // saw 1
	h.wrote(simBucket, "k", sib("n2.s2", 9), 0)  // another actor
	h.wrote(simBucket, "j", sib("n1.s1", 7), 0)  // another key
	h.wrote(simBucket, "k", sib("n1.s1", 12), 1) // saw 1, not 5 (unacknowledged yet)
	h.checkUnseen()
	if len(h.violations) != 0 {
		t.Fatalf("violations %v, want none", h.violations)
	}
	ack("k", sib("n1.s1", 5)) // now 12 claims an acknowledged write it never saw
	h.checkUnseen()
	if len(h.violations) != 1 || !strings.Contains(h.violations[0], "kv679") || !strings.Contains(h.violations[0], "n1.s1:5") {
		t.Fatalf("violations %v, want write 12 covering acknowledged 5", h.violations)
	}
}

// TestLWWUnderSkew: on a last-write-wins bucket, with the faults above and clocks skewed
// by seconds both ways, a write that saw another always carries a later timestamp, every
// replica keeps one sibling, and the latest acknowledged write is the one that survives.
func TestLWWUnderSkew(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		cfg := faultyConfig(seed)
		cfg.Conflict = core.ConflictLWW
		more, err := ParseFaults("skew n1 3s@2s; skew n4 -2s@4s")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Faults = append(cfg.Faults, more...)
		rep, err := Run(cfg, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !rep.Converged {
			t.Fatalf("seed %d: did not converge", seed)
		}
		t.Logf("seed %d: %d writes (%.1f%% ok), %d reads (%.2f%% stale)", seed, rep.Writes, 100*rep.WriteSuccessRate, rep.Reads, rep.StaleReadPct)
	}
}

// TestIncrementsInFlightAtTheEnd: counters are checked only once every request has been
// answered. With acknowledgements much slower than replica writes, increments are on every
// replica but not yet acknowledged when the workload ends; the replicas already agree, and
// the final check used to run at once and find each counter above its acknowledged sum.
func TestIncrementsInFlightAtTheEnd(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		cfg := DefaultConfig()
		cfg.Seed = seed
		cfg.Duration, cfg.Rate, cfg.Keys = time.Second, 300, 50
		cfg.ReadRatio, cfg.CounterRatio = 0, 1
		fast, slow := Constant(time.Millisecond), Constant(50*time.Millisecond)
		cfg.Latency = Model{Name: "slow-acks", W: fast, A: slow, R: fast, S: fast}
		cfg.HealBudget = 5 * time.Second
		rep, err := Run(cfg, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if rep.Writes < 200 || rep.WriteSuccessRate != 1 {
			t.Fatalf("seed %d: %d increments, %.3f acknowledged", seed, rep.Writes, rep.WriteSuccessRate)
		}
	}
}

// TestClusterChanges: the cluster grows from 3 to 5 nodes and shrinks back to 3 under a
// steady load of quorum reads and writes, with a gainer killed in the middle of its
// transfers and a partition during a leave; no acknowledged write is lost or read stale
// past the checkers' rules, every change completes, and once converged no node holds a
// copy of a key it does not replicate.
func TestClusterChanges(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		cfg := DefaultConfig()
		cfg.Seed, cfg.Nodes, cfg.Duration, cfg.Rate, cfg.Keys = seed, 5, 30*time.Second, 400, 500
		cfg.Shards = int(seed%2) + 1
		if seed == 4 {
			// Tombstones move with their partitions and are reaped meanwhile: none of the
			// deleted values comes back (the reaping checker).
			cfg.DeleteRatio, cfg.GCGrace = 0.3, 5*time.Second
		}
		cfg.HealBudget = 90 * time.Second
		f, err := ParseFaults("join n4@2s; crash n4 1s@2500ms; join n5@6s; leave n1@14s; partition n2|n3,n4,n5 2s@15s; leave n2@20s")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Faults = f
		rep, err := Run(cfg, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !rep.Converged || rep.ClusterChanges < 2 || rep.TransferKeys == 0 || rep.StrayCopies != 0 || seed == 4 && rep.TombstonesReaped == 0 {
			t.Fatalf("seed %d: converged %v, %d changes, %d keys streamed, %d stray copies", seed, rep.Converged,
				rep.ClusterChanges, rep.TransferKeys, rep.StrayCopies)
		}
		t.Logf("seed %d (shards %d): %d reads (%.2f%% stale), %d writes (%.1f%% ok), %d changes, %d keys streamed, %d tombstones reaped, converged after %.0f ms",
			seed, cfg.Shards, rep.Reads, rep.StaleReadPct, rep.Writes, 100*rep.WriteSuccessRate, rep.ClusterChanges, rep.TransferKeys, rep.TombstonesReaped, rep.ConvergedAfterMs)
	}
}

// TestClusterChangesFailNothing: growing 3 → 5 nodes and shrinking back to 3 under a
// steady load of quorum reads and writes, with no other fault, fails no request and
// reads nothing stale. The hot cases put 20 keys under 2,000 ops/s with each node hearing
// of a membership change up to 2 s late, so that coordinators with different views of a
// change serve the same keys at once. Each of them read a value older than acknowledged
// before one of the rules that now hold: writes go to both rings' replicas while a change
// is pending (seed 1); nothing moves before every member has heard of the change, and the
// change ends only once every member has seen every partition moved (seeds 3 and 6).
func TestClusterChangesFailNothing(t *testing.T) {
	for _, c := range []changeCase{
		{"steady", 1, 1, 400, 500, 200 * time.Millisecond, changeSteady, 3, 0},
		{"steady", 2, 2, 400, 500, 200 * time.Millisecond, changeSteady, 3, 0},
		{"hot keys, gossip lag", 1, 1, 2000, 20, 2 * time.Second, changeHot, 3, 0},
		{"hot keys, gossip lag", 3, 2, 2000, 20, 2 * time.Second, changeHot, 3, 0},
		{"hot keys, gossip lag", 6, 2, 2000, 20, 2 * time.Second, changeHot, 3, 0},
		// Seeds that read stale values when transfers could complete before every member
		// had heard of the change (a member's writes to the old replicas only were then
		// missing from the new ones).
		{"grow and shrink back, gossip lag", 34, 1, 2000, 20, 2 * time.Second, changeBack, 2, 0},
		{"grow and shrink back, gossip lag", 36, 1, 2000, 20, 2 * time.Second, changeBack, 2, 0},
	} {
		c.check(t)
	}
}

// TestClusterChangesSweep runs the cluster-change schedules on -sim.sweep seeds each, with
// 1 and 2 shards and 200 ms and 2 s of gossip lag, on 20 hot keys (off by default: 4
// minutes for -sim.sweep=10 on 2 cores).
func TestClusterChangesSweep(t *testing.T) {
	if *sweep == 0 {
		t.Skip("run with -sim.sweep=N")
	}
	for _, faults := range []string{changeSteady, changeHot, changeBack} {
		for _, shards := range []int{1, 2} {
			for _, lag := range []time.Duration{200 * time.Millisecond, 2 * time.Second} {
				for i := range *sweep {
					changes := 3
					if faults == changeBack {
						changes = 2
					}
					blind := float64(i%2) / 2 // every other seed: half the writes blind (Redis SETs)
					changeCase{"sweep " + faults, uint64(100 + i), shards, 2000, 20, lag, faults, changes, blind}.check(t)
				}
			}
		}
	}
}

// The schedules of the cluster-change tests: joins and leaves of other nodes, spaced or
// under load, and a grow from 3 to 5 nodes and back to the ring it started from (what was
// taken over for the first change to a ring must not count for a later one to it).
const (
	changeSteady = "join n4@2s; join n5@6s; leave n1@14s; leave n2@20s"
	changeHot    = "join n4@2s; join n5@10s; leave n1@20s; leave n2@28s"
	changeBack   = "join n4@2s; join n5@2s; leave n4@15s; leave n5@15s"
)

// changeCase is a run of 5 nodes through cluster changes, which must fail no request,
// read nothing stale, complete the changes and converge with no stray copy.
type changeCase struct {
	name               string
	seed               uint64
	shards, rate, keys int
	gossipLag          time.Duration
	faults             string
	changes            int     // completed at least
	blind              float64 // Config.BlindRatio
}

func (c changeCase) check(t *testing.T) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Seed, cfg.Nodes, cfg.Rate, cfg.Keys, cfg.GossipLag = c.seed, 5, float64(c.rate), c.keys, c.gossipLag
	cfg.Duration, cfg.Shards, cfg.BlindRatio = 40*time.Second, c.shards, c.blind
	f, err := ParseFaults(c.faults)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Faults = f
	rep, err := Run(cfg, nil)
	if err != nil {
		t.Fatalf("%s, seed %d: %v", c.name, c.seed, err)
	}
	if rep.WriteSuccessRate != 1 || rep.FailedReads != 0 || rep.StaleReads != 0 || rep.ClusterChanges < c.changes || !rep.Converged || rep.StrayCopies != 0 {
		t.Fatalf("%s, seed %d, %d shards, lag %s, blind %g: writes %.4f ok, %d failed reads, %d stale, %d changes, converged %v, %d stray copies",
			c.name, c.seed, c.shards, c.gossipLag, c.blind, rep.WriteSuccessRate, rep.FailedReads, rep.StaleReads, rep.ClusterChanges, rep.Converged, rep.StrayCopies)
	}
	t.Logf("%s, seed %d: %d reads, %d writes, %d changes, %d keys streamed", c.name, c.seed, rep.Reads, rep.Writes, rep.ClusterChanges, rep.TransferKeys)
}

// TestClusterChangesPastNineNodes: with n10 and n11 in the cluster, the world names a ring
// as the cores do (sorted member names, "n10" before "n2"), so a change still completes.
func TestClusterChangesPastNineNodes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Duration, cfg.Rate = 11, 20*time.Second, 200
	f, err := ParseFaults("join n11@5s; leave n2@10s")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Faults = f
	rep, err := Run(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ClusterChanges < 2 || !rep.Converged {
		t.Fatalf("%d changes completed, converged %v", rep.ClusterChanges, rep.Converged)
	}
}

// TestExpiryUnderFaults: a third of the writes carry a 1 s TTL, under every kind of fault
// and clocks skewed both ways, with a one-second gc_grace. No read returns a value past its
// expiry (beyond the run's largest clock skew), expired values are reaped, nothing a
// reaped value superseded comes back, and the replicas converge.
func TestExpiryUnderFaults(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		cfg := faultyConfig(seed)
		cfg.Keys, cfg.TTLRatio, cfg.TTL, cfg.GCGrace = 100, 0.3, time.Second, time.Second
		more, err := ParseFaults("skew n1 300ms@2s; skew n4 -200ms@4s")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Faults = append(cfg.Faults, more...)
		rep, err := Run(cfg, nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if rep.TTLWrites == 0 || rep.TombstonesReaped == 0 || !rep.Converged {
			t.Fatalf("seed %d: %d TTL writes, %d reaped, converged %v", seed, rep.TTLWrites, rep.TombstonesReaped, rep.Converged)
		}
		t.Logf("seed %d: %d writes (%d with a TTL), %d reaped, %d reads (%.2f%% stale)", seed, rep.Writes, rep.TTLWrites, rep.TombstonesReaped, rep.Reads, rep.StaleReadPct)
	}
}

// TestExpiredReadIsCaught: the checker flags a read that returns a value past its expiry,
// and allows one within the run's clock skew.
func TestExpiredReadIsCaught(t *testing.T) {
	h := newHistory()
	v := version.Sibling{Dot: version.Dot{Actor: "n1.s1", Counter: 1}, Value: []byte("v"), Expires: baseWall + 1000}
	h.wrote(simBucket, "k", v, 0)
	obj := version.Object{Clock: version.Clock{{Actor: "n1.s1", Counter: 1}}, Siblings: []version.Sibling{v}}
	h.unexpired("k", 999*time.Millisecond, obj)
	h.maxSkew = 100 * time.Millisecond
	h.unexpired("k", 1050*time.Millisecond, obj)
	if len(h.violations) != 0 {
		t.Fatalf("reads before the expiry, or within the skew: %v", h.violations)
	}
	h.unexpired("k", 1100*time.Millisecond, obj)
	if len(h.violations) != 1 || !strings.Contains(h.violations[0], "expired at") {
		t.Fatalf("violations %v, want the expired read", h.violations)
	}
}

// kv679Config: blind writes (as Redis SETs) to a few keys through every node, with
// writes slow to reach the replicas (5 ms on average, acks and reads 0.5 ms) and n1
// killed every 200 ms, so that n1 often loses its copies of writes other replicas
// acknowledged. Had it kept its actor across the crash, it would mint, for its next write
// of such a key, a dot covering the acknowledged write it lost.
func kv679Config(seed uint64) Config {
	cfg := DefaultConfig()
	cfg.Seed = seed
	cfg.Nodes, cfg.N, cfg.R, cfg.W = 3, 3, 2, 2
	cfg.Duration, cfg.Rate, cfg.Keys = 20*time.Second, 2000, 20
	cfg.ReadRatio, cfg.BlindRatio = 0.2, 1 // few reads: few read repairs of n1's copies
	fast := Exponential{Mean: 500 * time.Microsecond}
	cfg.Latency = Model{Name: "slow-disk", W: Exponential{Mean: 5 * time.Millisecond}, A: fast, R: fast, S: fast}
	var sched []string
	for at := 200 * time.Millisecond; at < cfg.Duration; at += 200 * time.Millisecond {
		sched = append(sched, fmt.Sprintf("crash n1 50ms@%s", at))
	}
	f, err := ParseFaults(strings.Join(sched, "; "))
	if err != nil {
		panic(err)
	}
	cfg.Faults = f
	return cfg
}

// TestKV679UnderCrashes: under kv679Config no write claims an acknowledged write its
// coordinator never saw, and every acknowledged write survives. With "ok" on any W acks
// (before the coordinator's own ack was required), each of these seeds broke it.
func TestKV679UnderCrashes(t *testing.T) {
	for _, seed := range []uint64{1, 3, 5} {
		rep, err := Run(kv679Config(seed), nil)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if rep.Writes < 5000 || !rep.Converged {
			t.Fatalf("seed %d: %d writes, converged %v", seed, rep.Writes, rep.Converged)
		}
		t.Logf("seed %d: %d writes, %d reads, %.2f%% of writes failed", seed, rep.Writes, rep.Reads, 100*(1-rep.WriteSuccessRate))
	}
}
