package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/hints"
	"github.com/quorumkv/quorumkv/internal/merkle"
	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/version"
)

const simBucket = "sim"

// treeSegments keeps simulated trees small; the exchange logic is the same at any size.
const treeSegments = merkle.MinSegments

// snode is one simulated node: the real store engine (in memory, with its crash model),
// the real hint store on top of it, the real hash trees, and the coordinator logic of
// internal/node expressed as events.
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
	trees []*merkle.Tree

	epoch   int    // store incarnation for the actor; bumps if data is lost entirely (never here)
	counter uint64 // dot counter, persisted with every write (the lease model)
	hlc     version.HLClock
	skew    time.Duration

	// lastClock is the clock of each key this incarnation stored, for the "never goes
	// backwards" checker.
	lastClock map[string]version.Clock

	handoffBusy map[string]bool
	aaeNext     int
	pairs       []exchangePair // (partition, peer) pairs this node exchanges, in rotation
}

type exchangePair struct{ p, peer int }

func newSNode(w *world, id int) (*snode, error) {
	n := &snode{w: w, id: id, name: nodeName(id), up: true, store: storage.NewMemory()}
	if err := n.open(); err != nil {
		return nil, err
	}
	return n, nil
}

// open (re)builds the node's in-memory state from its store.
func (n *snode) open() error {
	h, err := hints.Open(n.store, hints.Config{Window: n.w.cfg.HintWindow, MaxBytesPerTarget: 1 << 40}, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("sim: %s: hints: %w", n.name, err)
	}
	n.hints = h
	n.lastClock = map[string]version.Clock{}
	n.handoffBusy = map[string]bool{}
	n.trees = make([]*merkle.Tree, n.w.cfg.Partitions)
	for p := range n.trees {
		n.trees[p], _ = merkle.New(treeSegments)
	}
	return n.store.Scan([]byte("d"), []byte("e"), func(k, v []byte) bool {
		key := string(k[1:])
		p, seg := n.w.locate(key)
		n.trees[p].Update(seg, 0, merkle.ItemHash(simBucket, key, merkle.Digest(v)))
		return true
	})
}

// actor is this incarnation's actor, as the server has one per process run.
func (n *snode) actor() string { return fmt.Sprintf("%s.%d~%d", n.name, n.epoch, n.inc) }

func (n *snode) physMs() int64 { return int64((n.w.now + n.skew) / time.Millisecond) }

func dataKey(key string) []byte { return append([]byte("d"), key...) }

func (w *world) locate(key string) (partition, segment int) {
	h := ring.KeyHash(simBucket, key)
	return int(h>>(64-uint(w.pbits))) & (w.cfg.Partitions - 1), merkle.SegmentOf(h, w.pbits, treeSegments)
}

// load reads this node's own replica of key.
func (n *snode) load(key string) (version.Object, []byte) {
	raw, err := n.store.Get(dataKey(key))
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

// storeData writes key's object (the one data-write path: store, tree, checkers).
func (n *snode) storeData(key string, oldRaw []byte, obj version.Object) {
	enc := obj.AppendBinary(nil)
	if err := n.store.Put(dataKey(key), enc, storage.WriteOptions{Sync: true}); err != nil {
		panic(fmt.Sprintf("sim: %s: write %s: %v", n.name, key, err))
	}
	p, seg := n.w.locate(key)
	var old uint64
	if oldRaw != nil {
		old = merkle.ItemHash(simBucket, key, merkle.Digest(oldRaw))
	}
	n.trees[p].Update(seg, old, merkle.ItemHash(simBucket, key, merkle.Digest(enc)))
	if prev, ok := n.lastClock[key]; ok && !obj.Clock.Descends(prev) {
		n.w.hist.violate("%s: the version vector of %s went backwards: %v after %v", n.name, key, obj.Clock, prev)
	}
	n.lastClock[key] = obj.Clock
}

// merge merges an incoming object into this node's copy (replica write, repair, handoff).
func (n *snode) merge(key string, in version.Object) {
	local, raw := n.load(key)
	merged := version.Merge(local, in)
	if merged.Equal(local) && raw != nil {
		return
	}
	n.storeData(key, raw, merged)
}

// loadAs reads this node's copy of key as replica r: its replica, or its hint for a primary.
func (n *snode) loadAs(r simReplica, key string) version.Object {
	if r.hintFor < 0 {
		obj, _ := n.load(key)
		return obj
	}
	obj, _, err := n.hints.Get(nodeName(r.hintFor), simBucket, key)
	if err != nil {
		panic(fmt.Sprintf("sim: %s: hint: %v", n.name, err))
	}
	return obj
}

// storeAs keeps obj as this node's copy for replica r.
func (n *snode) storeAs(r simReplica, key string, obj version.Object) {
	if r.hintFor < 0 {
		n.merge(key, obj)
		return
	}
	if err := n.hints.Add(nodeName(r.hintFor), simBucket, key, obj, n.physMs(), true); err != nil {
		panic(fmt.Sprintf("sim: %s: keep hint: %v", n.name, err))
	}
	n.w.rep.HintsStored++
}

// simReplica is one replica of a request: a primary (hintFor < 0) or a fallback.
type simReplica struct {
	node    int
	hintFor int
}

// replicas is the key's replica set as node n's failure detector sees it: each primary it
// sees up, or for one it sees down the next healthy node past the primaries (sloppy
// quorum, when hinted handoff is on).
func (n *snode) replicas(key string) ([]simReplica, []int) {
	p, _ := n.w.locate(key)
	walk := n.w.walks[p]
	k := min(n.w.cfg.N, len(walk))
	var spares []int
	if n.w.cfg.HintedHandoff {
		for _, id := range walk[k:] {
			if j := nodeIndex(id); n.w.alive(n.id, j) {
				spares = append(spares, j)
			}
		}
	}
	reps := make([]simReplica, 0, k)
	primaries := make([]int, 0, k)
	for _, id := range walk[:k] {
		j := nodeIndex(id)
		primaries = append(primaries, j)
		if !n.w.alive(n.id, j) && len(spares) > 0 {
			reps = append(reps, simReplica{node: spares[0], hintFor: j})
			spares = spares[1:]
			continue
		}
		reps = append(reps, simReplica{node: j, hintFor: -1})
	}
	return reps, primaries
}

// nodeIndex parses "n7" into 6.
func nodeIndex(id ring.NodeID) int {
	i := 0
	for _, c := range string(id)[1:] {
		i = 10*i + int(c-'0')
	}
	return i - 1
}

func targets(reps []simReplica) []quorum.Target {
	ts := make([]quorum.Target, len(reps))
	for i, r := range reps {
		ts[i] = quorum.Target{Node: nodeName(r.node), Primary: r.hintFor < 0}
	}
	return ts
}

// put coordinates a write at this node and calls done with its outcome.
// putOp is what a write does: store a value or tombstone, or add incr to a counter (a CRDT
// update, which the coordinator folds from its own copy, as the server does).
type putOp struct {
	value []byte
	tomb  bool
	incr  int64
}

func (n *snode) put(key string, op putOp, ctx version.Clock, ctxTS version.HLC, done func(ok bool, dot version.Dot)) {
	value, tomb := op.value, op.tomb
	w := n.w
	reps, primaries := n.replicas(key)
	if !slices.Contains(primaries, n.id) {
		// Forward to the first primary seen up; with none, coordinate here (sloppy).
		for _, p := range primaries {
			if w.alive(n.id, p) {
				replied := false
				w.send(n.id, p, kindW, func() {
					w.nodes[p].put(key, op, ctx, ctxTS, func(ok bool, dot version.Dot) {
						w.send(p, n.id, kindA, func() { replied = true; done(ok, dot) }, nil)
					})
				}, func() { replied = true; done(false, version.Dot{}) })
				w.atNode(w.now+2*w.cfg.RequestTimeout, n.id, func() {
					if !replied {
						replied = true
						done(false, version.Dot{})
					}
				})
				return
			}
		}
	}
	var local version.Object
	var self simReplica
	selfIn := false
	for _, r := range reps {
		if r.node == n.id {
			local, self, selfIn = n.loadAs(r, key), r, true
		}
	}
	if !ctxTS.IsZero() {
		n.hlc.Observe(ctxTS, n.physMs())
	}
	if ts := local.MaxTimestamp(); !ts.IsZero() {
		n.hlc.Observe(ts, n.physMs())
	}
	now := n.hlc.Now(n.physMs())
	n.counter = max(n.counter, local.Clock.Get(n.actor())) + 1
	// As the server: a dot minted from a hint copy or no copy gets a one-off actor, so it
	// cannot cover dots of this node that the copy lacks.
	dotActor := n.actor()
	if !selfIn || self.hintFor >= 0 {
		dotActor = fmt.Sprintf("%s#%d", n.actor(), n.counter)
	}
	dot := version.Dot{Actor: dotActor, Counter: n.counter}
	if op.incr != 0 {
		// As the server: fold the local siblings, apply with the dot's actor (this run's
		// when this node is a primary holding its own earlier operations, a one-off one
		// otherwise), and supersede every local sibling folded.
		cur, found, err := crdt.Fold(local)
		if err != nil {
			panic(fmt.Sprintf("sim: %s: fold %s: %v", n.name, key, err))
		}
		if !found {
			cur = crdt.New(crdt.Counter)
		}
		next, err := crdt.Apply(cur, crdt.Op{Increment: &op.incr}, dotActor, now)
		if err != nil {
			panic(fmt.Sprintf("sim: %s: increment %s: %v", n.name, key, err))
		}
		value, ctx = next.Encode(), local.Clock
	}
	obj := local.Update(ctx, version.Sibling{Dot: dot, Value: value, Tombstone: tomb, Timestamp: now})
	w.hist.wrote(key, dot, value, tomb)
	// Every replica, the coordinator's own included, stores the write after a W latency
	// (for the coordinator: its disk) and acks after an A latency, as in PBS's WARS model:
	// no replica is favoured, and a write is acknowledged only once W replicas hold it.
	fsm := quorum.NewPut(quorum.PutSpec{W: w.cfg.W}, targets(reps))
	finished := false
	finish := func() {
		if finished || fsm.Outcome() == quorum.Pending {
			return
		}
		finished = true
		done(fsm.Outcome() == quorum.Succeeded, dot)
	}
	sendTo := func(r simReplica) {
		w.send(n.id, r.node, kindW, func() {
			w.nodes[r.node].storeAs(r, key, obj)
			w.send(r.node, n.id, kindA, func() { fsm.Ack(nodeName(r.node), true); finish() }, nil)
		}, func() { fsm.Fail(nodeName(r.node)); finish() })
	}
	for _, r := range reps {
		if op.incr != 0 && r.node == n.id {
			// A CRDT update is stored locally before it is replicated: the next one
			// coordinated here must fold it.
			n.storeAs(r, key, obj)
			fsm.Ack(n.name, true)
			continue
		}
		sendTo(r)
	}
	w.atNode(w.now+w.cfg.RequestTimeout, n.id, func() { fsm.Timeout(); finish() })
	finish()
}

// get coordinates a read at this node and calls done with the answer.
func (n *snode) get(key string, done func(a *quorum.Answer)) {
	w := n.w
	reps, _ := n.replicas(key)
	fsm := quorum.NewGet(quorum.GetSpec{R: w.cfg.R, Repair: w.cfg.ReadRepair}, targets(reps))
	answered := false
	var process func()
	process = func() {
		rd := fsm.Ready()
		for _, rp := range rd.Repairs {
			j := nodeIndexOf(rp.Node)
			var r simReplica
			for _, x := range reps {
				if x.node == j {
					r = x
				}
			}
			if r.hintFor >= 0 {
				fsm.RepairDone(rp.Node)
				continue
			}
			w.rep.ReadRepairs++
			obj := rp.Object
			w.send(n.id, j, kindW, func() {
				w.nodes[j].merge(key, obj)
				w.send(j, n.id, kindA, func() { fsm.RepairDone(rp.Node); process() }, nil)
			}, func() { fsm.RepairDone(rp.Node); process() })
		}
		if rd.Answer != nil && !answered {
			answered = true
			done(rd.Answer)
		}
	}
	for _, r := range reps {
		r := r
		w.send(n.id, r.node, kindR, func() {
			obj := w.nodes[r.node].loadAs(r, key)
			w.send(r.node, n.id, kindS, func() { fsm.Reply(nodeName(r.node), obj); process() }, nil)
		}, func() { fsm.Fail(nodeName(r.node)); process() })
	}
	w.atNode(w.now+w.cfg.RequestTimeout, n.id, func() { fsm.Timeout(); process() })
}

func nodeIndexOf(name string) int { return nodeIndex(ring.NodeID(name)) }

// handoff hands this node's hints to the targets it sees up, one batch in flight per
// target; the target merges them and acknowledges, and only then are they deleted.
func (n *snode) handoff() {
	w := n.w
	if _, _, err := n.hints.Expire(n.physMs()); err != nil {
		panic(fmt.Sprintf("sim: %s: expire hints: %v", n.name, err))
	}
	for _, target := range n.hints.Targets() {
		j := nodeIndexOf(target)
		if n.handoffBusy[target] || !w.alive(n.id, j) {
			continue
		}
		hs, _, err := n.hints.Batch(target, nil, 1<<20)
		if err != nil || len(hs) == 0 {
			continue
		}
		n.handoffBusy[target] = true
		objs := make([]version.Object, len(hs))
		for i, h := range hs {
			if objs[i], err = version.DecodeCopy(h.Object); err != nil {
				panic(fmt.Sprintf("sim: %s: hint object: %v", n.name, err))
			}
		}
		inc := n.inc
		release := func() {
			if n.inc == inc {
				n.handoffBusy[target] = false
			}
		}
		w.send(n.id, j, kindW, func() {
			for i, h := range hs {
				w.nodes[j].merge(h.Key, objs[i])
			}
			w.send(j, n.id, kindA, func() {
				d, err := n.hints.Delivered(hs, true)
				if err != nil {
					panic(fmt.Sprintf("sim: %s: delivered: %v", n.name, err))
				}
				w.rep.HintsDelivered += d
				release()
			}, nil)
		}, release)
		// A lost batch frees the target for a retry after a while.
		w.atNode(w.now+w.cfg.RequestTimeout, n.id, release)
	}
}

// exchange runs one anti-entropy exchange of this node with the next (partition, peer)
// pair in rotation: the real tree comparison, then a repair of each differing key through
// replica writes. The comparison itself is instant (both trees are read directly); it
// happens only when the peer is reachable both ways.
func (n *snode) exchange() {
	w := n.w
	if n.pairs == nil {
		for p := 0; p < w.cfg.Partitions; p++ {
			prefs := w.ring.Preference(p, w.cfg.N)
			if !slices.Contains(prefs, ring.NodeID(n.name)) {
				continue
			}
			for _, id := range prefs {
				if j := nodeIndex(id); j != n.id {
					n.pairs = append(n.pairs, exchangePair{p, j})
				}
			}
		}
	}
	pairs := n.pairs
	if len(pairs) == 0 {
		return
	}
	pr := pairs[n.aaeNext%len(pairs)]
	n.aaeNext++
	peer := w.nodes[pr.peer]
	if !w.reachable(n.id, pr.peer) {
		return
	}
	w.rep.AAEExchanges++
	keys := diffKeys(n, peer, pr.p)
	for _, key := range keys {
		a, _ := n.load(key)
		b, _ := peer.load(key)
		merged := version.Merge(a, b)
		if !merged.Equal(a) {
			n.merge(key, merged)
			w.rep.AAERepairs++
		}
		if !merged.Equal(b) {
			w.rep.AAERepairs++
			w.send(n.id, pr.peer, kindW, func() { w.nodes[pr.peer].merge(key, merged) }, nil)
		}
	}
}
