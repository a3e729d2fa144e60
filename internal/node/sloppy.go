package node

import (
	"fmt"

	"github.com/quorumkv/quorumkv/internal/quorum"
)

// replica is one node a request goes to: a primary of the key, or a fallback standing in
// for a primary that is down (sloppy quorum), which keeps what it receives as a hint for
// that primary.
type replica struct {
	node    string
	hintFor string // "" for a primary
}

func (r replica) primary() bool { return r.hintFor == "" }

// replicaSet is the replicas of one key for one request, and the healthy nodes past the
// primaries that may still stand in for a primary that fails during the request.
type replicaSet struct {
	partition int
	primaries []string
	reps      []replica
	spares    []string
}

// replicas computes a key's replica set now: each primary the failure detector sees up,
// and for each one it sees down, the next healthy node past the primaries on the ring
// (Dynamo's sloppy quorum; with no healthy node left the down primary is tried anyway).
func (n *Node) replicas(bucket, key string, nrep int) (*replicaSet, error) {
	r := n.Ring()
	if r == nil {
		return nil, fmt.Errorf("%w: the ring has no members yet", ErrUnavailable)
	}
	p := r.PartitionOf(bucket, key)
	walk := r.Walk(p)
	k := min(nrep, len(walk))
	rs := &replicaSet{partition: p, primaries: make([]string, k), reps: make([]replica, 0, k)}
	for _, id := range walk[k:] {
		if n.alive(string(id)) {
			rs.spares = append(rs.spares, string(id))
		}
	}
	for i, id := range walk[:k] {
		rs.primaries[i] = string(id)
		if n.alive(string(id)) {
			rs.reps = append(rs.reps, replica{node: string(id)})
			continue
		}
		if fb, ok := rs.nextSpare(); ok {
			rs.reps = append(rs.reps, replica{node: fb, hintFor: string(id)})
			continue
		}
		rs.reps = append(rs.reps, replica{node: string(id)})
	}
	return rs, nil
}

// nextSpare takes the next healthy node that may stand in for a primary.
func (rs *replicaSet) nextSpare() (string, bool) {
	if len(rs.spares) == 0 {
		return "", false
	}
	s := rs.spares[0]
	rs.spares = rs.spares[1:]
	return s, true
}

// find returns the replica entry of node.
func (rs *replicaSet) find(node string) (replica, bool) {
	for _, r := range rs.reps {
		if r.node == node {
			return r, true
		}
	}
	return replica{}, false
}

func (rs *replicaSet) isPrimary(node string) bool {
	for _, p := range rs.primaries {
		if p == node {
			return true
		}
	}
	return false
}

func (rs *replicaSet) targets() []quorum.Target {
	ts := make([]quorum.Target, len(rs.reps))
	for i, r := range rs.reps {
		ts[i] = quorum.Target{Node: r.node, Primary: r.primary()}
	}
	return ts
}
