package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Handle serves internode requests (transport.Handler).
func (n *Node) Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope {
	if !n.ready.Load() {
		return errorEnvelope(fmt.Errorf("%w: node %s is starting", ErrUnavailable, n.cfg.ID))
	}
	switch b := req.Body.(type) {
	case *pb.Envelope_Get:
		return n.handleGet(b.Get)
	case *pb.Envelope_Replicate:
		return n.handleReplicate(b.Replicate)
	case *pb.Envelope_CoordPut:
		return n.handleCoordPut(ctx, b.CoordPut)
	case *pb.Envelope_Handoff:
		return n.handleHandoff(b.Handoff)
	case *pb.Envelope_Tree:
		return n.handleTree(b.Tree)
	case *pb.Envelope_TreeKeys:
		return n.handleTreeKeys(b.TreeKeys)
	}
	return errorEnvelope(fmt.Errorf("%w: unknown internode request %T from %s", ErrBadRequest, req.Body, from))
}

// inlineRequest picks the requests cheap enough to serve on the receiving stream's
// goroutine: reads and unsynced replica writes touch only the local store for a few
// microseconds. Synced writes go to workers so that many of them share one fsync, and
// forwarded writes wait on the network.
func inlineRequest(req *pb.Envelope) bool {
	switch b := req.Body.(type) {
	case *pb.Envelope_Get:
		return true
	case *pb.Envelope_Replicate:
		return !b.Replicate.Sync
	}
	return false
}

func errorEnvelope(err error) *pb.Envelope {
	return &pb.Envelope{Body: &pb.Envelope_Error{Error: &pb.Error{Message: err.Error(), Code: ErrorCode(err)}}}
}

func (n *Node) handleGet(r *pb.GetRequest) *pb.Envelope {
	if err := n.validKey(r.Bucket, r.Key); err != nil {
		return errorEnvelope(err)
	}
	hl := n.hlcLast()
	resp := &pb.GetResponse{HlcWall: hl.Wall, HlcLogical: hl.Logical}
	if r.HintFor != "" && r.HintFor != n.cfg.ID {
		obj, found, err := n.hints.Get(r.HintFor, r.Bucket, r.Key)
		if err != nil {
			return errorEnvelope(fmt.Errorf("read hint: %w", err))
		}
		if found {
			resp.Found, resp.Object = true, obj.AppendBinary(nil)
		}
		return &pb.Envelope{Body: &pb.Envelope_GetResp{GetResp: resp}}
	}
	raw, err := n.store.Get(dataKey(r.Bucket, r.Key))
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return errorEnvelope(fmt.Errorf("read: %w", err))
	default:
		resp.Found, resp.Object = true, raw
	}
	return &pb.Envelope{Body: &pb.Envelope_GetResp{GetResp: resp}}
}

func (n *Node) handleReplicate(r *pb.ReplicateRequest) *pb.Envelope {
	if err := n.validKey(r.Bucket, r.Key); err != nil {
		return errorEnvelope(err)
	}
	n.hlcObserve(version.HLC{Wall: r.HlcWall, Logical: r.HlcLogical})
	obj, err := version.Decode(r.Object)
	if err != nil {
		return errorEnvelope(fmt.Errorf("%w: replicate %s/%s: %v", ErrBadRequest, r.Bucket, r.Key, err))
	}
	if r.HintFor != "" && r.HintFor != n.cfg.ID {
		// Always synced: a hint may be the only copy its primary will ever get, and it
		// must survive a kill -9 of this node (an unsynced Pebble write sits in the
		// process's WAL buffer until a later sync).
		if err := n.hints.Add(r.HintFor, r.Bucket, r.Key, obj, n.physMs(), true); err != nil {
			return errorEnvelope(fmt.Errorf("keep hint for %s: %w", r.HintFor, err))
		}
		n.metrics.hintsStored.Inc()
		return &pb.Envelope{Body: &pb.Envelope_ReplicateResp{ReplicateResp: &pb.ReplicateResponse{Durable: true}}}
	}
	lww := n.Bucket(r.Bucket).Conflict == "lww"
	durable, err := n.applyMerge(r.Bucket, r.Key, obj, lww, r.Sync)
	if err != nil {
		return errorEnvelope(err)
	}
	return &pb.Envelope{Body: &pb.Envelope_ReplicateResp{ReplicateResp: &pb.ReplicateResponse{Durable: durable || r.Sync}}}
}

func (n *Node) handleCoordPut(ctx context.Context, r *pb.CoordPutRequest) *pb.Envelope {
	timeout := time.Duration(r.TimeoutMs) * time.Millisecond
	if timeout <= 0 || timeout > n.cfg.RequestTimeout*4 {
		timeout = n.cfg.RequestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	props := n.Bucket(r.Bucket)
	spec, err := n.putSpec(props, WriteOptions{W: r.W, PW: r.Pw, DW: r.Dw})
	if err != nil {
		return errorEnvelope(err)
	}
	if err := n.validKey(r.Bucket, r.Key); err != nil {
		return errorEnvelope(err)
	}
	rs, err := n.replicas(r.Bucket, r.Key, props.N)
	if err != nil {
		return errorEnvelope(err)
	}
	if !rs.isPrimary(n.cfg.ID) {
		// The rings disagree (a membership change in flight): coordinate anyway, as the
		// sender believes this node is a primary; its dot is still unique.
		n.log.Warn("coordinating a write for a key this node is not a primary of", "bucket", r.Bucket, "key", r.Key)
	}
	m := mutation{value: r.Value, tomb: r.Tombstone, ctx: r.Context}
	if r.CrdtType != "" {
		cm, err := parseCRDTMutation(r.CrdtType, r.CrdtOp, r.Value, r.ReplaceType)
		if err != nil {
			return errorEnvelope(err)
		}
		m = mutation{crdt: cm}
	}
	newCtx, err := n.coordinatePut(ctx, r.Bucket, r.Key, m, spec, props, rs)
	var qe *quorum.QuorumError
	switch {
	case errors.As(err, &qe):
		return &pb.Envelope{Body: &pb.Envelope_CoordPutResp{CoordPutResp: &pb.CoordPutResponse{
			Failed: true, Acks: int32(qe.Acks), Required: int32(qe.Required), Code: qe.Kind, Error: qe.Error()}}}
	case err != nil:
		return errorEnvelope(err)
	}
	resp := &pb.CoordPutResponse{Context: newCtx}
	if m.crdt != nil {
		resp.CrdtState, resp.CrdtBefore = m.crdt.result.Encode(), m.crdt.before.Encode()
	}
	return &pb.Envelope{Body: &pb.Envelope_CoordPutResp{CoordPutResp: resp}}
}
