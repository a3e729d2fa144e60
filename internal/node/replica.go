package node

import (
	"context"
	"fmt"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// Handle serves internode requests (transport.Handler): they go to the core through the
// loop.
func (n *Node) Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope {
	if !n.ready.Load() {
		return core.ErrorEnvelope(fmt.Errorf("%w: node %s is starting", ErrUnavailable, n.cfg.ID))
	}
	return n.loop.peerRequest(ctx, from, req)
}

// HandleAsync takes an internode request without holding a goroutine
// (transport.AsyncHandler): the loop answers it through respond.
func (n *Node) HandleAsync(ctx context.Context, from string, req *pb.Envelope, respond func(*pb.Envelope)) {
	if !n.ready.Load() {
		respond(core.ErrorEnvelope(fmt.Errorf("%w: node %s is starting", ErrUnavailable, n.cfg.ID)))
		return
	}
	n.loop.submit(func() {
		n.loop.nextID++
		id := n.loop.nextID
		n.loop.peers[id] = respond
		n.loop.step(core.PeerRequest{From: from, ID: id, Env: req})
	})
}

func errorEnvelope(err error) *pb.Envelope { return core.ErrorEnvelope(err) }

func remoteError(code, msg string) error { return core.RemoteError(code, msg) }
