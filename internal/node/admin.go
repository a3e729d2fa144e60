package node

import (
	"context"
	"fmt"
	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/membership"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/version"
)

// NodeInfo describes one ring member for GET /v1/cluster.
type NodeInfo struct {
	ID         string `json:"id"`
	Zone       string `json:"zone"`
	HTTP       string `json:"http"`
	RESP       string `json:"resp"`
	RPC        string `json:"rpc"`
	Gossip     string `json:"gossip"`
	State      string `json:"state"`
	Partitions int    `json:"partitions"`
}

// ClusterInfo is GET /v1/cluster.
type ClusterInfo struct {
	Node       string     `json:"node"`
	Partitions int        `json:"partitions"`
	Nodes      []NodeInfo `json:"nodes"`
}

// Cluster describes the ring members as this node sees them.
func (n *Node) Cluster() ClusterInfo {
	ci := ClusterInfo{Node: n.cfg.ID, Partitions: n.cfg.Partitions, Nodes: []NodeInfo{}}
	r := n.Ring()
	for _, m := range n.Members() {
		ni := NodeInfo{ID: m.ID, Zone: m.Zone, HTTP: m.HTTP, RESP: m.RESP, RPC: m.RPC, Gossip: m.Gossip, State: string(m.State)}
		if st := n.stateOf(m.ID); st != StateActive && m.State != membership.Down {
			ni.State = string(st) // joining, leaving or left: not yet, or no longer, serving its share
		}
		if r != nil {
			ni.Partitions = len(r.PartitionsOf(ringID(m.ID)))
		}
		ci.Nodes = append(ci.Nodes, ni)
	}
	return ci
}

// EndpointNode is a replica and its state.
type EndpointNode struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	HintFor string `json:"hint_for,omitempty"` // a fallback: the primary it stands in for
}

// EndpointsInfo is GET /v1/admin/endpoints/{bucket}/{key}.
type EndpointsInfo struct {
	Bucket    string         `json:"bucket"`
	Key       string         `json:"key"`
	Partition int            `json:"partition"`
	N         int            `json:"n"`
	Primaries []EndpointNode `json:"primaries"`
	Fallbacks []EndpointNode `json:"fallbacks"`
}

// Endpoints gives a key's partition and preference list.
func (n *Node) Endpoints(bucket, key string) (EndpointsInfo, error) {
	if err := n.validKey(bucket, key); err != nil {
		return EndpointsInfo{}, err
	}
	props := n.Bucket(bucket)
	var rs core.ReplicaSet
	var err error
	if derr := n.loopFor(bucket, key).do(context.Background(), func(c *core.Core) { rs, err = c.Replicas(bucket, key) }); derr != nil {
		return EndpointsInfo{}, derr
	}
	if err != nil {
		return EndpointsInfo{}, err
	}
	state := func(id string) string {
		if m, ok := n.member(id); ok {
			return string(m.State)
		}
		return "down"
	}
	ei := EndpointsInfo{Bucket: bucket, Key: key, Partition: rs.Partition, N: props.N, Primaries: []EndpointNode{}, Fallbacks: []EndpointNode{}}
	for _, id := range rs.Primaries {
		ei.Primaries = append(ei.Primaries, EndpointNode{ID: id, State: state(id)})
	}
	for i, fb := range rs.Fallbacks {
		ei.Fallbacks = append(ei.Fallbacks, EndpointNode{ID: fb, State: state(fb), HintFor: rs.HintFor[i]})
	}
	return ei, nil
}

// LocalSibling is one stored sibling.
type LocalSibling struct {
	Value       []byte            `json:"value"`
	Tombstone   bool              `json:"tombstone"`
	Dot         string            `json:"dot"`
	Timestamp   string            `json:"timestamp"`
	ContentType string            `json:"content_type,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	// ExpiresMs is the value's expiry (Unix ms; absent: none). An expired value stays
	// stored, and shown here, until it is reaped; reads leave it out.
	ExpiresMs int64 `json:"expires_ms,omitempty"`
}

// LocalCopy is GET /v1/admin/local/{bucket}/{key}: this node's own stored object.
type LocalCopy struct {
	Found     bool           `json:"found"`
	Values    [][]byte       `json:"values"`
	Context   string         `json:"context"`
	Tombstone bool           `json:"tombstone"`
	Siblings  []LocalSibling `json:"siblings"`
	HintedFor *string        `json:"hinted_for"`
}

// Local reads this node's own copy of a key, asking no other node.
func (n *Node) Local(bucket, key string) (LocalCopy, error) {
	if err := n.validKey(bucket, key); err != nil {
		return LocalCopy{}, err
	}
	var obj version.Object
	var hinted string
	var err error
	if derr := n.loopFor(bucket, key).do(context.Background(), func(c *core.Core) { obj, hinted, err = c.Local(bucket, key) }); derr != nil {
		return LocalCopy{}, derr
	}
	if err != nil {
		return LocalCopy{}, err
	}
	lc := LocalCopy{Values: [][]byte{}, Siblings: []LocalSibling{}}
	if hinted != "" {
		lc.HintedFor = &hinted
	}
	if obj.Empty() {
		return lc, nil
	}
	lc.Found = true
	lc.Context = version.EncodeContext(obj.Clock, obj.MaxTimestamp())
	lc.Tombstone = obj.Deleted()
	for _, s := range obj.Live() {
		lc.Values = append(lc.Values, s.Value)
	}
	for _, s := range obj.Siblings {
		ls := LocalSibling{Value: s.Value, Tombstone: s.Tombstone, Dot: s.Dot.String(), Timestamp: s.Timestamp.String(),
			ContentType: s.ContentType, ExpiresMs: s.Expires}
		if len(s.Meta) > 0 {
			ls.Meta = make(map[string]string, len(s.Meta))
			for _, m := range s.Meta {
				ls.Meta[m.Key] = m.Value
			}
		}
		lc.Siblings = append(lc.Siblings, ls)
	}
	return lc, nil
}

// Faults is the fault-injection state (POST /v1/debug/faults).
type Faults struct {
	Drop        []string `json:"drop"`
	DelayMs     int64    `json:"delay_ms"`
	ClockSkewMs int64    `json:"clock_skew_ms"`
	// SyncDelayMs makes the disk slow: every fsync of the syncer waits this long first,
	// and everything that waits for it (dw acks, hints) with it.
	SyncDelayMs int64 `json:"sync_delay_ms"`
}

// SetFaults replaces the fault-injection state.
func (n *Node) SetFaults(f Faults) error {
	if f.DelayMs < 0 || f.DelayMs > 60_000 {
		return fmt.Errorf("%w: delay_ms must be 0..60000", ErrBadRequest)
	}
	if f.ClockSkewMs < -86_400_000 || f.ClockSkewMs > 86_400_000 {
		return fmt.Errorf("%w: clock_skew_ms must be within a day", ErrBadRequest)
	}
	if f.SyncDelayMs < 0 || f.SyncDelayMs > 60_000 {
		return fmt.Errorf("%w: sync_delay_ms must be 0..60000", ErrBadRequest)
	}
	drop := map[string]bool{}
	for _, id := range f.Drop {
		if id == "" {
			return fmt.Errorf("%w: empty node id in drop", ErrBadRequest)
		}
		drop[id] = true
	}
	n.tr.SetFaults(transport.Faults{Drop: drop, Delay: time.Duration(f.DelayMs) * time.Millisecond})
	n.skew.Store(f.ClockSkewMs)
	n.syncDelay.Store(f.SyncDelayMs)
	select {
	case n.syncDelaySet <- struct{}{}:
	default:
	}
	n.log.Warn("fault injection changed", "drop", f.Drop, "delay_ms", f.DelayMs, "clock_skew_ms", f.ClockSkewMs, "sync_delay_ms", f.SyncDelayMs)
	return nil
}

// CurrentFaults returns the fault-injection state.
func (n *Node) CurrentFaults() Faults {
	tf := n.tr.CurrentFaults()
	f := Faults{Drop: []string{}, DelayMs: tf.Delay.Milliseconds(), ClockSkewMs: n.skew.Load(), SyncDelayMs: n.syncDelay.Load()}
	for id := range tf.Drop {
		f.Drop = append(f.Drop, id)
	}
	sortStrings(f.Drop)
	return f
}

// replicas computes a key's replica set on the loop.
func (n *Node) replicas(ctx context.Context, bucket, key string) (core.ReplicaSet, error) {
	var rs core.ReplicaSet
	var err error
	if derr := n.loopFor(bucket, key).do(ctx, func(c *core.Core) { rs, err = c.Replicas(bucket, key) }); derr != nil {
		return rs, derr
	}
	return rs, err
}

// call sends one request to a peer and waits for its answer.
func (n *Node) call(ctx context.Context, to string, req *pb.Envelope) (*pb.Envelope, error) {
	type result struct {
		env *pb.Envelope
		err error
	}
	ch := make(chan result, 1)
	n.tr.Call(ctx, to, req, func(e *pb.Envelope, err error) { ch <- result{e, err} })
	select {
	case r := <-ch:
		return r.env, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// writeRaw replaces this node's copy of a key (nil deletes), on the loop: for tests.
func (n *Node) writeRaw(bucket, key string, raw []byte) error {
	var err error
	if derr := n.loopFor(bucket, key).do(context.Background(), func(c *core.Core) { err = c.WriteRaw(bucket, key, raw) }); derr != nil {
		return derr
	}
	return err
}
