package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/hints"
	"github.com/quorumkv/quorumkv/internal/merkle"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// The workload's buckets: plain values in simBucket (conflict mode from the scenario),
// counters in counterBucket (type counter), as a client of the server would keep them.
const (
	simBucket     = "sim"
	counterBucket = "simc"
)

// bucketOf is the bucket of a workload key: counters are named c…, plain keys k… or f….
func bucketOf(key string) string {
	if key != "" && key[0] == 'c' {
		return counterBucket
	}
	return simBucket
}

// baseWall is the virtual wall clock's origin (Unix ms), so HLC timestamps look real.
const baseWall = int64(1_800_000_000_000)

// snode is one simulated node: its store (the real in-memory engine, with its crash
// model), the real hint store over it, and the node's own protocol core (package core),
// which makes every protocol decision. The simulator only carries the core's Ready out —
// syncs, messages through the simulated network, replies to the workload.
type snode struct {
	w        *world
	id       int
	name     string
	up       bool
	paused   bool
	deferred []*event
	inc      int // incarnation: bumps on every crash

	store *storage.Memory
	hints *hints.Store
	cores []*core.Core // one per shard (Config.Shards), sharing the node's identity
	skew  time.Duration

	seen    uint64 // the failure detector's view last given to the cores (alive bits)
	seenSeq uint64 // the membership's viewSeq last given to the cores
	// tickAt is, per shard, the time of the Tick scheduled for its core's next timer
	// (-1: none).
	tickAt []time.Duration

	// lastClock is the clock of each key this incarnation stored, for the "never goes
	// backwards" checker.
	lastClock map[string]version.Clock
}

// simBuckets gives the workload's buckets the scenario's properties.
type simBuckets struct{ props, counters core.BucketProps }

func newSimBuckets(cfg Config) simBuckets {
	p := core.DefaultBucketProps()
	p.N = cfg.N
	p.R, p.W = core.Quorum(fmt.Sprint(cfg.R)), core.Quorum(fmt.Sprint(cfg.W))
	p.ReadRepair = cfg.ReadRepair.String()
	p.GCGraceS = int64(cfg.GCGrace / time.Second)
	c := p
	p.Conflict = cfg.Conflict
	c.Type = "counter"
	return simBuckets{props: p, counters: c}
}

func (b simBuckets) Bucket(name string) core.BucketProps {
	if name == counterBucket {
		return b.counters
	}
	return b.props
}

func (b simBuckets) Ns() []int {
	if d := core.DefaultBucketProps().N; d != b.props.N {
		return []int{min(d, b.props.N), max(d, b.props.N)}
	}
	return []int{b.props.N}
}

// time is the node's clock as its core sees it: the virtual time, skewed for the wall
// clock.
func (n *snode) time() core.Time {
	return core.Time{Wall: baseWall + int64((n.w.now+n.skew)/time.Millisecond), Mono: n.w.now}
}

// start opens the node on its store (a fresh one, or what a crash left), as a process
// start does: hints, a new core, the failure detector's view, then the core's schedules
// (handoff, and anti-entropy: tree rebuild, exchanges, reaping).
func (n *snode) start() error {
	w := n.w
	if n.store == nil {
		n.store = storage.NewMemory()
	}
	// A fresh store gets its epoch, and so does one a crash left (the sim never stops a
	// node cleanly): deterministic, one per incarnation.
	fresh := "s" + n.name[1:]
	if n.inc > 0 {
		fresh += fmt.Sprintf("c%d", n.inc)
	}
	if err := core.InitEpoch(n.store, fresh); err != nil {
		return fmt.Errorf("sim: %s: %w", n.name, err)
	}
	h, err := hints.Open(n.store, hints.Config{Window: w.cfg.HintWindow, MaxBytesPerTarget: 1 << 40}, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("sim: %s: hints: %w", n.name, err)
	}
	n.hints = h
	if err := n.loadClocks(); err != nil {
		return fmt.Errorf("sim: %s: %w", n.name, err)
	}
	id, err := core.LoadIdentity(n.name, n.store)
	if err != nil {
		return fmt.Errorf("sim: %s: %w", n.name, err)
	}
	k := w.cfg.Shards
	n.cores, n.tickAt = make([]*core.Core, k), make([]time.Duration, k)
	for s := range k {
		c, err := core.New(core.ShardConfig(w.coreConfig(n.name), s, k), core.Deps{Store: n.store, Hints: h, Buckets: w.buckets,
			Count: w.count, OnMint: w.hist.wrote, OnWrite: n.onWrite, OnDrop: n.onDrop, Minter: id}, n.time())
		if err != nil {
			return fmt.Errorf("sim: %s: core: %w", n.name, err)
		}
		n.cores[s], n.tickAt[s] = c, -1
	}
	n.up = true
	n.seen, n.seenSeq = w.aliveMask(n.id), w.viewSeq
	n.broadcast(core.SetView{View: n.view(n.seen)})
	for s, c := range n.cores {
		c.Start()
		n.drain(s)
	}
	n.syncPeriodically()
	return nil
}

// syncInterval is the server's node.Config.SyncInterval default.
const syncInterval = 100 * time.Millisecond

// syncPeriodically syncs the store every syncInterval, as the server's syncer does for the
// writes that claimed no durability (a replica's ack, a coordinator's own without dw): a
// crash loses at most the writes of the last interval. The events die with the node's
// incarnation, and wait while it is paused.
func (n *snode) syncPeriodically() {
	w := n.w
	w.atInc(w.now+syncInterval, n.id, n.inc, func() {
		if err := n.store.Put([]byte(core.KeySyncMarker), []byte{1}, storage.WriteOptions{Sync: true}); err != nil {
			panic(fmt.Sprintf("sim: %s: sync: %v", n.name, err))
		}
		n.syncPeriodically()
	})
}

// coreConfig is a simulated node's core configuration: the server's defaults, with the
// scenario's timeouts and intervals.
func (w *world) coreConfig(id string) core.Config {
	cfg := core.DefaultConfig()
	cfg.ID = id
	cfg.Partitions = w.cfg.Partitions
	cfg.RequestTimeout = w.cfg.RequestTimeout
	cfg.HandoffInterval = w.cfg.HandoffInterval
	cfg.HandoffTimeout = w.cfg.HandoffTimeout
	cfg.AAE = w.cfg.AAE
	cfg.AAEInterval = w.cfg.AAEInterval
	// Small trees keep a simulated node's memory small; the exchange works alike at any
	// size (a segment then holds more keys).
	cfg.AAESegments = merkle.MinSegments
	// Old owners delete what they gave away 2 s after a change settles (the server waits
	// 30 s for coordinators still on the old ring; here every node sees a change at once).
	cfg.CleanupDelay = 2 * time.Second
	cfg.ReapInterval = w.cfg.ReapInterval
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = min(max(w.cfg.GCGrace, time.Second), 10*time.Minute)
	}
	return cfg
}

// view is the failure detector's view as the core takes it.
func (n *snode) view(mask uint64) core.View {
	alive := make(map[string]bool, bits.OnesCount64(mask))
	for j := range n.w.nodes {
		if mask&(1<<j) != 0 {
			alive[nodeName(j)] = true
		}
	}
	return core.View{Ring: n.w.ring, Next: n.w.next, Moved: slices.Clone(n.w.moved), Alive: alive, Change: n.w.change, Heard: n.w.heard}
}

// pushView gives the core the failure detector's view if it changed.
func (n *snode) pushView() {
	if m := n.w.aliveMask(n.id); m != n.seen || n.seenSeq != n.w.viewSeq {
		n.seen, n.seenSeq = m, n.w.viewSeq
		n.broadcast(core.SetView{View: n.view(m)})
		if n.w.allMovedSeq != 0 && n.seenSeq >= n.w.allMovedSeq {
			n.w.membershipChanged() // the change may end once every node has seen it all moved
		}
	}
}

// step feeds one event to shard s's core and carries out what it asks.
func (n *snode) step(s int, ev core.Event) {
	n.cores[s].Step(n.time(), ev)
	n.drain(s)
}

// broadcast feeds an event to every shard's core.
func (n *snode) broadcast(ev core.Event) {
	for s := range n.cores {
		n.step(s, ev)
	}
}

// shardOfKey is the shard serving a workload key.
func (n *snode) shardOfKey(key string) int {
	q := n.w.cfg.Partitions
	return core.ShardOf(core.PartitionOf(bucketOf(key), key, q), q, len(n.cores))
}

// drain carries out shard s's Ready: the sync first (nothing that claims durability
// leaves before it), then messages, answers and replies, and a Tick for its next timer.
func (n *snode) drain(s int) {
	w := n.w
	c := n.cores[s]
	for c.HasReady() {
		rd := c.Ready()
		c.Advance()
		if rd.Sync {
			if err := n.store.Put([]byte(core.KeySyncMarker), []byte{1}, storage.WriteOptions{Sync: true}); err != nil {
				panic(fmt.Sprintf("sim: %s: sync: %v", n.name, err))
			}
		}
		for _, m := range rd.Messages {
			if !w.cfg.HintedHandoff && isHandoff(m) {
				// --handoff=false: hand-off batches never get through (the core has no switch
				// for it); each fails at once as if its target could not be reached.
				id := m.ID
				w.atInc(w.now, n.id, n.inc, func() { n.step(s, core.Response{ID: id, Err: errUnreachable}) })
				continue
			}
			w.sendMessage(n, s, m)
		}
		for _, a := range rd.Answers {
			w.sendAnswer(n, a)
		}
		for _, r := range rd.Replies {
			w.reply(n, r)
		}
		if rd.TransfersChanged {
			w.membershipChanged()
		}
	}
	if t, ok := c.NextTimer(); ok && (n.tickAt[s] < 0 || t < n.tickAt[s]) {
		// A Tick scheduled for a later timer stays queued; it finds tickAt moved and does
		// nothing.
		n.tickAt[s] = t
		e := w.newEvent(t, n.id, n.inc, evTick)
		e.due, e.shard = t, s
		w.push(e)
	}
}

func isHandoff(m core.Message) bool {
	_, ok := m.Env.Body.(*pb.Envelope_Handoff)
	return ok
}

// loadClocks notes the clock of every key the store holds (at start: a crash may have
// lost unsynced writes, so what the store kept is where "never backwards" starts over).
func (n *snode) loadClocks() error {
	n.lastClock = map[string]version.Clock{}
	var bad error
	err := n.store.Scan([]byte(core.PrefixData), []byte{core.PrefixData[0] + 1}, func(k, v []byte) bool {
		_, key, ok := core.ParseDataKey(k)
		obj, err := version.Decode(v)
		if !ok || err != nil {
			bad = fmt.Errorf("stored object %q: %w", k, err)
			return false
		}
		n.lastClock[key] = obj.Clock
		return true
	})
	if err == nil {
		err = bad
	}
	return err
}

// onWrite checks that a replica's version vector for a key never goes backwards within
// one run of the node, and records what a reaped tombstone covered.
func (n *snode) onWrite(bucket, key string, raw []byte) {
	if raw == nil {
		// Reaped: the tombstone's clock (the last this replica stored) covers every write
		// the delete superseded; none of them may come back.
		n.w.hist.reaped(key, n.lastClock[key])
		delete(n.lastClock, key)
		return
	}
	obj, err := version.Decode(raw)
	if err != nil {
		n.w.hist.violate("%s stored a corrupt object for %s: %v", n.name, key, err)
		return
	}
	if prev, ok := n.lastClock[key]; ok && !obj.Clock.Descends(prev) {
		n.w.hist.violate("%s: the version vector of %s went backwards: %v after %v", n.name, key, obj.Clock, prev)
	}
	n.lastClock[key] = obj.Clock
	checkEntries(n.w.hist, n.name, key, obj.Clock, n.w.lives)
}

// onDrop forgets a key whose copy the node deleted because it no longer replicates it
// (not a reaped tombstone: what it held lives on at the key's replicas).
func (n *snode) onDrop(bucket, key string) { delete(n.lastClock, key) }

// checkEntries: a node keeps its actor across clean restarts and takes a new one after
// each crash (Identity.load), so a clock holds at most lives(node) entries per node (its
// incarnations so far) besides the one-off actors of sloppy coordination ("actor#n").
// Every process run used to add an entry.
func checkEntries(h *history, node, key string, clk version.Clock, lives func(node string) int) {
	seen := map[string][]string{}
	for _, e := range clk {
		if strings.Contains(e.Actor, "#") {
			continue
		}
		owner, _, _ := strings.Cut(e.Actor, ".")
		seen[owner] = append(seen[owner], e.Actor)
		if n := len(seen[owner]); n > lives(owner) {
			h.violate("%s: the clock of %s holds %d actors of node %s (%s), which has lived %d times: a restart added an entry",
				node, key, n, owner, strings.Join(seen[owner], " "), lives(owner))
			return
		}
	}
}

// load reads this node's own replica of key (never a hint), straight from its store: for
// the checkers, which only read.
func (n *snode) load(key string) (version.Object, []byte) {
	raw, err := n.store.Get(core.DataKey(bucketOf(key), key))
	if errors.Is(err, storage.ErrNotFound) {
		return version.Object{}, nil
	}
	if err != nil {
		panic(fmt.Sprintf("sim: %s: read %s: %v", n.name, key, err))
	}
	obj, err := version.Decode(raw) // raw is the store's copy: values may alias it
	if err != nil {
		panic(fmt.Sprintf("sim: %s: stored object %s: %v", n.name, key, err))
	}
	return obj, raw
}
