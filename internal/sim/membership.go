package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/ring"
)

// Cluster changes in the simulator: "join n6@20s" starts node n6 as a joining member,
// "leave n2@40s" marks n2 leaving. The world plays the part of the membership (which the
// server keeps in its gossiped metadata): every member's state, the ring in force (active
// and leaving members) and the next ring (active and joining); each node hears of a change
// after its own delay (Config.GossipLag), as gossip spreads it. Which
// partitions have moved is core.MovedPartitions over what each core reports
// (TransferPlan), as the server decides it; every transfer, check and cleanup is the
// cores' own.

type memberState uint8

const (
	stateActive memberState = iota
	stateJoining
	stateLeaving
	stateLeft
)

// joinsLater reports whether node i is named in a join fault (not a member before it).
func (w *world) joinsLater(i int) bool {
	for _, f := range w.cfg.Faults {
		if f.Kind == Join && slices.Contains(f.Groups[0], i) {
			return true
		}
	}
	return false
}

// buildRing is the ring of the members in the given states.
func (w *world) buildRing(states ...memberState) (*ring.Ring, string) {
	var ms []ring.Member
	var ids []string
	for i, st := range w.states {
		if slices.Contains(states, st) {
			ms = append(ms, ring.Member{ID: ring.NodeID(nodeName(i))})
			ids = append(ids, nodeName(i))
		}
	}
	key := strings.Join(ids, ",")
	if r := w.ringCache[key]; r != nil {
		return r, key
	}
	r, err := ring.New(ring.Config{Partitions: w.cfg.Partitions}, ms)
	if err != nil {
		panic("sim: ring: " + err.Error())
	}
	w.ringCache[key] = r
	return r, key
}

// setRing makes r the ring in force.
func (w *world) setRing(r *ring.Ring) {
	if w.ring == r {
		return
	}
	w.ring = r
	w.walks = make([][]ring.NodeID, w.cfg.Partitions)
	for p := range w.walks {
		w.walks[p] = r.Walk(p)
	}
}

// recomputeMembership derives the rings and the moved partitions, finishes a change whose
// partitions have all moved once every running node has seen them so (as the server waits
// for every member's report), and gives every running core the new view.
func (w *world) recomputeMembership() {
	w.membershipDue = false
	cur, _ := w.buildRing(stateActive, stateLeaving)
	next, _ := w.buildRing(stateActive, stateJoining)
	// The change's name: a ring can come back (3 nodes, 5, the same 3), and what was
	// taken over for the earlier change to it must not count for the later one.
	name := fmt.Sprintf("%s#%d", core.MembersKey(next), w.changeSeq)
	w.setRing(cur)
	var moved []bool
	var nextRing *ring.Ring
	heardAll := false
	if !slices.Equal(cur.Members(), next.Members()) {
		done := map[string]map[int]bool{}
		heard := map[string]bool{} // down, or every core has the plan for next
		for _, n := range w.nodes {
			done[n.name] = map[int]bool{}
			heard[n.name] = true
			if !n.up {
				continue
			}
			for _, c := range n.cores {
				key, ts := c.TransferPlan()
				if key != name {
					heard[n.name] = false
					continue
				}
				for _, t := range ts {
					if t.Phase == "done" {
						done[n.name][t.Partition] = true
					}
				}
			}
		}
		nextRing = next
		heardAll = core.EveryMemberHeard(cur, next, func(node string) bool { return heard[node] })
		moved = core.MovedPartitions(cur, next, w.buckets.Ns(), nil, func(node string) bool { return heard[node] },
			func(node string, p int) bool { return done[node][p] })
		if !slices.Contains(moved, false) {
			switch {
			case w.allMovedSeq == 0 || w.allMovedName != name:
				w.allMovedSeq, w.allMovedName = w.viewSeq+1, name // the view pushed below
			case w.everyNodeSaw(w.allMovedSeq):
				for i, st := range w.states {
					switch st {
					case stateJoining:
						w.states[i] = stateActive
					case stateLeaving:
						w.states[i] = stateLeft
					}
				}
				w.rep.ClusterChanges++
				w.setRing(next)
				nextRing, moved, w.allMovedSeq = nil, nil, 0
			}
		}
	}
	if nextRing == nil {
		name = ""
	}
	if w.pushedRing != w.ring || w.next != nextRing || w.change != name || w.heard != heardAll || !slices.Equal(w.moved, moved) {
		w.next, w.moved, w.change, w.heard = nextRing, moved, name, heardAll
		w.pushedRing = w.ring
		w.viewSeq++
	}
	for _, n := range w.nodes {
		if n.up {
			w.atNode(w.now+w.gossipLag(), n.id, n.pushView) // a no-op for a node that has it
		}
	}
}

// everyNodeSaw reports whether every running node has been given view seq or a later one.
func (w *world) everyNodeSaw(seq uint64) bool {
	for _, n := range w.nodes {
		if n.up && n.seenSeq < seq {
			return false
		}
	}
	return true
}

// gossipLag is how long one node takes to hear of a membership change (Config.GossipLag),
// drawn from a stream of its own so that the lags do not shift the workload's randomness.
func (w *world) gossipLag() time.Duration {
	if w.cfg.GossipLag <= 0 {
		return 0
	}
	if w.lagRng == nil {
		w.lagRng = rand.New(rand.NewPCG(w.cfg.Seed, 0x6c6167))
	}
	return time.Duration(w.lagRng.Int64N(int64(w.cfg.GossipLag) + 1))
}

// membershipChanged asks for the membership to be recomputed now (once per instant).
func (w *world) membershipChanged() {
	if !w.membershipDue {
		w.membershipDue = true
		w.at(w.now, w.recomputeMembership)
	}
}

// strayCopies counts the copies of written keys held by running nodes that are not among
// their replicas.
func (w *world) strayCopies() int {
	stray := 0
	for _, key := range w.hist.keys {
		prim := w.primaries(key)
		for _, n := range w.nodes {
			if !n.up || slices.Contains(prim, n.id) {
				continue
			}
			if _, raw := n.load(key); raw != nil {
				stray++
			}
		}
	}
	return stray
}
