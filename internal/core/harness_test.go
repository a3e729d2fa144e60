package core_test

import (
	"container/heap"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/hints"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// world is a small virtual-time cluster of cores for protocol scripts: messages take one
// millisecond each way, a partition or a crashed node makes a send fail as unreachable,
// and time moves only when the script says so.
type world struct {
	t       testing.TB
	now     time.Duration
	seq     uint64
	q       evq
	nodes   []*wnode
	ring    *ring.Ring
	next    *ring.Ring         // the ring after a pending change (nil: none)
	moved   []bool             // by partition: taken over (follows next)
	change  string             // the pending change's name: c1, c2, ... (core.View.Change)
	changes int                // changes made so far
	unheard bool               // not every member has heard of the change (core.View.Heard)
	cut     map[[2]string]bool // one-way: from→to fails at once (unreachable)
	hole    map[[2]string]bool // one-way: from→to silently lost
	buckets fixedBuckets
	replies map[string]*core.Reply // by request name
	names   map[uint64]string
	nextReq uint64
	counts  map[core.Counter]int
	wallOff map[string]time.Duration
	epochs  int
	repairs []core.RepairUpdate
	reaped  []core.ReapDone
}

type wnode struct {
	id    string
	store *storage.Memory
	core  *core.Core
	up    bool
	down  bool // seen down by the others' failure detectors
	timer time.Duration
	// syncDelay, when set, is how long a sync takes: a turn that asks for one (Ready.Sync)
	// sends nothing until then, and a crash before then loses its writes and its output,
	// as the server's syncer would (script command syncdelay).
	syncDelay time.Duration
	life      int // bumped by a crash: output held for a sync of an earlier life is dropped
	// fresh is the epoch InitEpoch gives the store at the next open, if it needs one (a
	// fresh store, or a crash since the last open): e1 for n1's first, e1c2 after its
	// second crash, w3 after the third wipe of the world.
	fresh string
}

type fixedBuckets map[string]core.BucketProps

func (b fixedBuckets) Ns() []int {
	ns := []int{core.DefaultBucketProps().N}
	for _, p := range b {
		if !slices.Contains(ns, p.N) {
			ns = append(ns, p.N)
		}
	}
	slices.Sort(ns)
	return ns
}

func (b fixedBuckets) Bucket(name string) core.BucketProps {
	if p, ok := b[name]; ok {
		return p
	}
	return core.DefaultBucketProps()
}

type wevent struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type evq []wevent

func (h evq) Len() int { return len(h) }
func (h evq) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h evq) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *evq) Push(x any)   { *h = append(*h, x.(wevent)) }
func (h *evq) Pop() any     { o := *h; e := o[len(o)-1]; *h = o[:len(o)-1]; return e }
func (w *world) at(d time.Duration, fn func()) {
	w.seq++
	heap.Push(&w.q, wevent{at: d, seq: w.seq, fn: fn})
}

const hop = time.Millisecond

// baseWall is the virtual wall clock's origin (Unix ms), so HLC timestamps look real.
const baseWall = int64(1_800_000_000_000)

// newWorld starts n nodes; the ring holds those named in ringOf (all when empty).
func newWorld(t testing.TB, n int, buckets fixedBuckets, ringOf []string) *world {
	w := &world{t: t, cut: map[[2]string]bool{}, hole: map[[2]string]bool{}, buckets: buckets, replies: map[string]*core.Reply{},
		names: map[uint64]string{}, counts: map[core.Counter]int{}, wallOff: map[string]time.Duration{}}
	for i := 1; i <= n; i++ {
		w.nodes = append(w.nodes, &wnode{id: fmt.Sprintf("n%d", i), store: storage.NewMemory(), up: true})
	}
	if len(ringOf) == 0 {
		for _, nd := range w.nodes {
			ringOf = append(ringOf, nd.id)
		}
	}
	w.ring = w.newRing(ringOf)
	for _, nd := range w.nodes {
		nd.fresh = "e" + nd.id[1:]
		w.open(nd)
	}
	w.pushViews()
	return w
}

// newRing is the ring of the named members.
func (w *world) newRing(ids []string) *ring.Ring {
	var members []ring.Member
	for _, id := range ids {
		members = append(members, ring.Member{ID: ring.NodeID(id)})
	}
	r, err := ring.New(ring.Config{Partitions: 64}, members)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *world) time(nd *wnode) core.Time {
	return core.Time{Wall: baseWall + int64((w.now+w.wallOff[nd.id])/time.Millisecond), Mono: w.now}
}

func (w *world) open(nd *wnode) {
	if err := core.InitEpoch(nd.store, nd.fresh); err != nil {
		w.t.Fatal(err)
	}
	h, err := hints.Open(nd.store, hints.Config{Window: 3 * time.Hour, MaxBytesPerTarget: 1 << 30}, slog.New(slog.DiscardHandler))
	if err != nil {
		w.t.Fatal(err)
	}
	cfg := core.DefaultConfig()
	cfg.ID = nd.id
	cfg.Partitions = 64
	cfg.HintRate = 0
	deps := core.Deps{Store: nd.store, Hints: h, Buckets: w.buckets, Count: func(k core.Counter, n int) { w.counts[k] += n }}
	if os.Getenv("QKV_CORE_LOG") != "" { // the cores' log lines, to follow a script
		deps.Log = func(_ core.LogLevel, msg string, kv ...any) { w.t.Log(nd.id, msg, kv) }
	}
	c, err := core.New(cfg, deps, w.time(nd))
	if err != nil {
		w.t.Fatal(err)
	}
	nd.core = c
	nd.up = true
	nd.timer = -1
	c.Step(w.time(nd), core.Tick{})
	c.Start()
	w.drain(nd)
}

func (w *world) node(id string) *wnode {
	for _, nd := range w.nodes {
		if nd.id == id {
			return nd
		}
	}
	w.t.Fatalf("no node %q", id)
	return nil
}

// pushViews gives every running core the failure detector's view: nodes marked down are
// absent from it.
func (w *world) pushViews() {
	alive := map[string]bool{}
	for _, nd := range w.nodes {
		if !nd.down {
			alive[nd.id] = true
		}
	}
	for _, nd := range w.nodes {
		if nd.up {
			w.step(nd, core.SetView{View: core.View{Ring: w.ring, Next: w.next, Moved: slices.Clone(w.moved), Alive: alive, Change: w.change, Heard: w.next != nil && !w.unheard}})
		}
	}
}

// step feeds an event to a node's core and carries out its Ready.
func (w *world) step(nd *wnode, ev core.Event) {
	if !nd.up {
		return
	}
	nd.core.Step(w.time(nd), ev)
	w.drain(nd)
}

func (w *world) drain(nd *wnode) {
	rd := nd.core.Ready()
	nd.core.Advance()
	switch {
	case rd.Sync && nd.syncDelay > 0:
		life := nd.life
		w.at(w.now+nd.syncDelay, func() {
			if nd.up && nd.life == life {
				w.syncStore(nd)
				w.send(nd, rd)
			}
		})
	case rd.Sync:
		w.syncStore(nd)
		w.send(nd, rd)
	default:
		w.send(nd, rd)
	}
	if t, ok := nd.core.NextTimer(); ok && (nd.timer < 0 || t < nd.timer || nd.timer <= w.now) {
		nd.timer = t
		w.at(t, func() {
			if nd.up {
				nd.timer = -1
				w.step(nd, core.Tick{})
			}
		})
	}
}

func (w *world) syncStore(nd *wnode) {
	if err := nd.store.Put([]byte(core.KeySyncMarker), []byte{1}, storage.WriteOptions{Sync: true}); err != nil {
		w.t.Fatal(err)
	}
}

// send carries out what a Ready sends: messages, answers, replies, repairs.
func (w *world) send(nd *wnode, rd core.Ready) {
	for _, m := range rd.Messages {
		w.deliver(nd, m)
	}
	for _, a := range rd.Answers {
		to, id, env, from := w.node(a.To), a.ID, w.wire(a.Env), nd.id
		w.at(w.now+hop, func() {
			if to.up && !w.cut[[2]string{from, to.id}] && !w.hole[[2]string{from, to.id}] {
				w.step(to, core.Response{ID: id, Env: env})
			}
		})
	}
	for _, r := range rd.Replies {
		r := r
		w.replies[w.names[r.ID]] = &r
	}
	w.repairs = append(w.repairs, rd.Repairs...)
	w.reaped = append(w.reaped, rd.Reaped...)
}

// deliver sends a message: after a hop it reaches its target, unless the link is cut or
// the target is down, when the sender hears "unreachable". A request whose answer is cut
// on the way back is answered at its deadline as lost.
func (w *world) deliver(from *wnode, m core.Message) {
	to := w.node(m.To)
	w.at(w.now+hop, func() {
		if !from.up {
			return
		}
		if w.cut[[2]string{from.id, to.id}] || !to.up {
			w.step(from, core.Response{ID: m.ID, Err: fmt.Errorf("%w: %s", core.ErrUnreachable, to.id)})
			return
		}
		if w.hole[[2]string{from.id, to.id}] {
			// Silently lost (a paused node, a one-way partition): the sender hears nothing
			// until the deadline.
			reqID := m.ID
			w.at(m.Deadline, func() {
				w.step(from, core.Response{ID: reqID, Err: fmt.Errorf("%w: deadline", core.ErrLost)})
			})
			return
		}
		reqID := m.ID
		w.step(to, core.PeerRequest{From: from.id, ID: reqID, Env: w.wire(m.Env)})
		w.at(m.Deadline, func() {
			// The answer travels as a Response stepped into from (drain above); if the core
			// still waits for it at the deadline, the driver says it was lost.
			w.step(from, core.Response{ID: reqID, Err: fmt.Errorf("%w: deadline", core.ErrLost)})
		})
	})
}

// wire is what the transport does to an envelope: marshalled by the sender, unmarshalled
// by the receiver, so a field that does not survive the encoding (a string that is not
// UTF-8) fails the script rather than passing by pointer.
func (w *world) wire(env *pb.Envelope) *pb.Envelope {
	b, err := proto.Marshal(env)
	if err != nil {
		w.t.Fatalf("marshal %T: %v", env.GetBody(), err)
	}
	out := new(pb.Envelope)
	if err := proto.Unmarshal(b, out); err != nil {
		w.t.Fatalf("unmarshal %T: %v", env.GetBody(), err)
	}
	return out
}

// run moves time forward by d, running every event due.
func (w *world) run(d time.Duration) {
	end := w.now + d
	for len(w.q) > 0 && w.q[0].at <= end {
		e := heap.Pop(&w.q).(wevent)
		if e.at > w.now {
			w.now = e.at
		}
		e.fn()
	}
	w.now = end
}

// settle runs until no message is in flight (timers aside), at most d.
func (w *world) settle(d time.Duration) { w.run(d) }

func (w *world) request(name, via string, req core.ClientRequest) {
	w.nextReq++
	req.ID = w.nextReq
	w.names[req.ID] = name
	delete(w.replies, name)
	w.step(w.node(via), req)
}

func (w *world) crash(id string) {
	nd := w.node(id)
	nd.up = false
	nd.life++
	nd.fresh = fmt.Sprintf("e%sc%d", nd.id[1:], nd.life)
	nd.store = nd.store.CrashClone()
}

// wipe replaces a node's store with an empty one (a lost disk) and restarts it.
func (w *world) wipe(id string) {
	nd := w.node(id)
	nd.up = false
	w.epochs++
	nd.store = storage.NewMemory()
	nd.fresh = fmt.Sprintf("w%d", w.epochs)
	w.restart(id)
}

func (w *world) restart(id string) {
	nd := w.node(id)
	w.open(nd)
	w.pushViews()
}
