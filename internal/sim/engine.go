package sim

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/quorumkv/quorumkv/internal/ring"
)

// event is one scheduled action. node >= 0 ties it to a node's incarnation: it is dropped
// if the node crashed since, and deferred while the node is paused.
type event struct {
	at   time.Duration
	seq  uint64
	node int
	inc  int
	fn   func()
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(*event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// msgKind is a message's kind for the latency model.
type msgKind int

const (
	kindW msgKind = iota // a write (or repair, handoff batch) reaching a replica
	kindA                // its acknowledgement
	kindR                // a read request reaching a replica
	kindS                // its response
)

// world is one simulation.
type world struct {
	cfg   Config
	rng   *rand.Rand
	now   time.Duration
	seq   uint64
	q     eventHeap
	nodes []*snode
	ring  *ring.Ring
	walks [][]ring.NodeID // every partition's preference order
	pbits int             // log2(Partitions)
	trace *xxhash.Digest

	// cut[i][j]: messages from i to j are lost (a partition).
	cut [][]bool
	// unreachableSince[i][j]: since when j has been unreachable from i (crashed, paused, or
	// the link cut either way); -1 when reachable. The failure detector reads it.
	unreachableSince [][]time.Duration

	hist    *history
	rep     *Report
	events  int
	healing bool
	active  []*activeFault

	failedWrites int
	valueSeq     int
}

func newWorld(cfg Config) (*world, error) {
	w := &world{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), trace: xxhash.New()}
	members := make([]ring.Member, cfg.Nodes)
	for i := range members {
		members[i] = ring.Member{ID: ring.NodeID(nodeName(i))}
	}
	r, err := ring.New(ring.Config{Partitions: cfg.Partitions}, members)
	if err != nil {
		return nil, err
	}
	w.ring = r
	for 1<<w.pbits < cfg.Partitions {
		w.pbits++
	}
	w.walks = make([][]ring.NodeID, cfg.Partitions)
	for p := range w.walks {
		w.walks[p] = r.Walk(p)
	}
	w.cut = make([][]bool, cfg.Nodes)
	w.unreachableSince = make([][]time.Duration, cfg.Nodes)
	for i := range w.cut {
		w.cut[i] = make([]bool, cfg.Nodes)
		w.unreachableSince[i] = make([]time.Duration, cfg.Nodes)
		for j := range w.unreachableSince[i] {
			w.unreachableSince[i][j] = -1
		}
	}
	w.hist = newHistory()
	w.rep = &Report{Seed: cfg.Seed}
	for i := 0; i < cfg.Nodes; i++ {
		n, err := newSNode(w, i)
		if err != nil {
			return nil, err
		}
		w.nodes = append(w.nodes, n)
	}
	return w, nil
}

func nodeName(i int) string { return fmt.Sprintf("n%d", i+1) }

// at schedules fn at time t (global: tied to no node).
func (w *world) at(t time.Duration, fn func()) { w.atNode(t, -1, fn) }

// atNode schedules fn at time t on node: dropped if the node crashes before, deferred
// while it is paused.
func (w *world) atNode(t time.Duration, node int, fn func()) {
	if t < w.now {
		t = w.now
	}
	w.seq++
	inc := 0
	if node >= 0 {
		inc = w.nodes[node].inc
	}
	heap.Push(&w.q, &event{at: t, seq: w.seq, node: node, inc: inc, fn: fn})
}

// step runs the next event; false when none is left before until.
func (w *world) step(until time.Duration) bool {
	if len(w.q) == 0 || w.q[0].at > until {
		return false
	}
	e := heap.Pop(&w.q).(*event)
	w.now = e.at
	if e.node >= 0 {
		n := w.nodes[e.node]
		if n.inc != e.inc || !n.up {
			return true // the node crashed since: the event is lost with it
		}
		if n.paused {
			n.deferred = append(n.deferred, e)
			return true
		}
	}
	w.events++
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(e.at))
	binary.LittleEndian.PutUint64(b[8:], uint64(e.node+1))
	_, _ = w.trace.Write(b[:])
	e.fn()
	return true
}

func (w *world) latency(k msgKind) time.Duration {
	m := w.cfg.Latency
	switch k {
	case kindW:
		return m.W.Sample(w.rng)
	case kindA:
		return m.A.Sample(w.rng)
	case kindR:
		return m.R.Sample(w.rng)
	default:
		return m.S.Sample(w.rng)
	}
}

// send delivers fn on node to after a latency of kind k, unless the message is lost (the
// link is cut, or by chance). A message to a node that is down fails: onDown, when set,
// runs on the sender after one latency (a refused connection).
func (w *world) send(from, to int, k msgKind, fn func(), onDown func()) {
	w.rep.Messages++
	d := w.latency(k)
	if from != to {
		if w.cut[from][to] || (w.cfg.Loss > 0 && w.rng.Float64() < w.cfg.Loss) {
			w.rep.MessagesLost++
			return
		}
		if !w.nodes[to].up {
			if onDown != nil {
				w.atNode(w.now+d, from, onDown)
			}
			return
		}
	}
	w.atNode(w.now+d, to, fn)
}

// alive reports whether node i's failure detector sees j up.
func (w *world) alive(i, j int) bool {
	if i == j {
		return true
	}
	s := w.unreachableSince[i][j]
	return s < 0 || w.now-s < w.cfg.DetectDelay
}

// reachable reports whether j can be reached from i right now, both ways.
func (w *world) reachable(i, j int) bool {
	if i == j {
		return true
	}
	return w.nodes[j].up && !w.nodes[j].paused && w.nodes[i].up && !w.cut[i][j] && !w.cut[j][i]
}

// refreshReachability updates unreachableSince after a fault changed something.
func (w *world) refreshReachability() {
	for i := range w.nodes {
		for j := range w.nodes {
			if i == j {
				continue
			}
			r := w.reachable(i, j)
			switch {
			case r:
				w.unreachableSince[i][j] = -1
			case w.unreachableSince[i][j] < 0:
				w.unreachableSince[i][j] = w.now
			}
		}
	}
}
