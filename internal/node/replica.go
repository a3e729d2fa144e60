package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// Handle serves internode requests (transport.Handler): they go to the core through the
// loop of the shard that owns them.
func (n *Node) Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope {
	ch := make(chan *pb.Envelope, 1)
	n.HandleAsync(ctx, from, req, transport.ResponderFunc(func(e *pb.Envelope) { ch <- e }))
	select {
	case a := <-ch:
		return a
	case <-ctx.Done():
		return core.ErrorEnvelope(fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err()))
	}
}

// HandleAsync takes an internode request without holding a goroutine
// (transport.AsyncHandler): the owning shard's loop answers it through respond.
func (n *Node) HandleAsync(ctx context.Context, from string, req *pb.Envelope, respond transport.Responder) {
	if !n.ready.Load() {
		respond.Respond(core.ErrorEnvelope(fmt.Errorf("%w: node %s is starting", ErrUnavailable, n.cfg.ID)))
		return
	}
	n.serve(from, req, respond)
}

// serve hands a peer's request to the loop of the shard that owns it; a handoff batch,
// which spans shards, is checked whole, split, and answered once every shard has merged
// its part.
func (n *Node) serve(from string, req *pb.Envelope, respond transport.Responder) {
	if ho := req.GetHandoff(); ho != nil && len(n.loops) > 1 {
		n.serveHandoff(from, ho, respond)
		return
	}
	n.loops[n.shardOf(req)].peerRequestAsync(from, req, respond)
}

func (n *Node) serveHandoff(from string, ho *pb.HandoffRequest, respond transport.Responder) {
	parts, err := core.SplitHandoff(n.coreCfg, ho, len(n.loops))
	if err != nil {
		respond.Respond(core.ErrorEnvelope(err))
		return
	}
	var mu sync.Mutex
	g := core.NewHandoffGather(parts)
	if !g.Waiting() {
		respond.Respond(g.Answer())
		return
	}
	for s, p := range parts {
		if p == nil {
			continue
		}
		n.loops[s].peerRequestAsync(from, &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: p}}, transport.ResponderFunc(func(e *pb.Envelope) {
			mu.Lock()
			ans, done := g.Add(e)
			mu.Unlock()
			if done {
				respond.Respond(ans)
			}
		}))
	}
}

// servedID marks the ids of requests served through peerRequestAsync, apart from the
// core's own message ids (small counters) that a loop's requests to itself carry: an answer
// addressed to this node is then either for a request another of its shards sent it (served
// here: answered through l.peers) or one this loop sent itself (stepped back as a Response).
const servedID = uint64(1) << 63

// peerRequestAsync steps a peer's request on the loop; respond gets the core's answer.
func (l *loop) peerRequestAsync(from string, req *pb.Envelope, respond transport.Responder) {
	l.mu.Lock()
	l.served = append(l.served, servedRequest{from, req, respond})
	l.mu.Unlock()
	l.signal()
}

// servedRequest is a peer's request waiting for the loop.
type servedRequest struct {
	from    string
	req     *pb.Envelope
	respond transport.Responder
}

// stepServed steps a peer's request, keeping how to answer it.
func (l *loop) stepServed(r servedRequest) {
	l.nextID++
	id := l.nextID | servedID
	l.peers[id] = r.respond
	l.step(core.PeerRequest{From: r.from, ID: id, Env: r.req})
}

func errorEnvelope(err error) *pb.Envelope { return core.ErrorEnvelope(err) }

func remoteError(code, msg string) error { return core.RemoteError(code, msg) }
