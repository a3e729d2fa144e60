package core

import (
	"bytes"
	"errors"

	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// getCoord coordinates one read: it asks every replica, answers after R, and goes on
// (without holding up the client) until every replica answered and every repair landed,
// or the deadline.
type getCoord struct {
	id       uint64
	client   uint64
	bucket   string
	key      string
	lww      bool
	rs       *replicaSet
	fsm      *quorum.Get
	answered bool
	// settle: the quorum was ruled out before every replica answered; the answer waits for
	// the others (within the deadline) so the error reports how many did answer.
	settle *quorum.QuorumError
	// cond: the read is a conditional write's (cond.go), which goes on from its answer.
	cond *condWrite
	// raw and obj are the last reply decoded, its bytes and its object.
	raw []byte
	obj version.Object
}

func (c *Core) startGet(r ClientRequest) { c.startRead(r, nil) }

func (c *Core) startRead(r ClientRequest, cond *condWrite) {
	fail := func(err error) { c.reply(origin{client: true, id: r.ID}, Reply{Err: err}) }
	props := c.deps.Buckets.Bucket(r.Bucket)
	spec, err := getSpec(props, r.Read)
	if err != nil {
		fail(err)
		return
	}
	if err := c.validKey(r.Bucket, r.Key); err != nil {
		fail(err)
		return
	}
	rs, err := c.replicas(r.Bucket, r.Key, props.N)
	if err != nil {
		fail(err)
		return
	}
	if have := len(rs.primaries); spec.R > have || spec.PR > have {
		fail(ringTooSmall(r.Bucket, props.N, have, "r", max(spec.R, spec.PR)))
		return
	}
	g := &getCoord{id: c.newID(), client: r.ID, bucket: r.Bucket, key: r.Key, lww: spec.LWW, rs: rs, fsm: quorum.NewGet(spec, rs.targets()), cond: cond}
	c.gets[g.id] = g
	deadline := c.now.Mono + c.timeout(r.Read.Timeout)
	// Every replica is asked by message, this node too (the server answers that one at
	// once, in the same turn; the simulator after its read latencies).
	for _, rep := range rs.reps {
		env, req := newGet()
		req.Bucket, req.Key, req.HintFor = r.Bucket, r.Key, rep.hintFor
		c.send(rep.node, env, deadline, pending{owner: g.id, kind: callRead})
	}
	c.at(deadline, timerGetDeadline, g.id)
	c.getProgress(g, false)
}

func (c *Core) getResponse(g *getCoord, p pending, r Response) {
	if p.kind == callRepair {
		g.fsm.RepairDone(p.node)
		c.getProgress(g, false)
		return
	}
	gr := r.Env.GetGetResp()
	if r.Err != nil || gr == nil {
		g.fsm.Fail(p.node)
		c.getProgress(g, false)
		return
	}
	c.hlcObserve(version.HLC{Wall: gr.HlcWall, Logical: gr.HlcLogical})
	var obj version.Object
	switch {
	case !gr.Found:
	case g.raw != nil && bytes.Equal(gr.Object, g.raw):
		// Replicas in step send the same bytes: decode them once. (The same bytes
		// decode to the same object, whatever the encoding.)
		obj = g.obj
	default:
		o, err := version.DecodeInterned(gr.Object, &c.intern)
		if err != nil {
			c.log(LevelError, "replica sent a corrupt object", "replica", p.node, "err", err)
			g.fsm.Fail(p.node)
			c.getProgress(g, false)
			return
		}
		obj, g.raw, g.obj = o, gr.Object, o
	}
	g.fsm.Reply(p.node, obj)
	c.getProgress(g, false)
}

// getProgress carries out what the read's state machine asks: repairs to send, the answer.
func (c *Core) getProgress(g *getCoord, deadline bool) {
	for {
		rd := g.fsm.Ready()
		c.sendRepairs(g, rd.Repairs)
		if rd.Answer != nil && !g.answered {
			g.answered = true
			c.getAnswer(g, rd.Answer)
		}
		if g.settle != nil && (rd.Done || deadline) {
			replies, primary := g.fsm.Counts()
			settled := *g.settle
			settled.Acks = replies
			if g.settle.Kind == "pr" {
				settled.Acks = primary
			}
			g.settle = nil
			c.reply(origin{client: true, id: g.client}, Reply{Err: &settled, Partition: g.rs.partition})
		}
		if rd.Done || deadline {
			delete(c.gets, g.id)
			return
		}
		if len(rd.Repairs) == 0 {
			return
		}
		// A local repair may have moved the machine on: look again.
	}
}

func (c *Core) getAnswer(g *getCoord, ans *quorum.Answer) {
	var qe *quorum.QuorumError
	if ans.Err != nil {
		if errors.As(ans.Err, &qe) && !qe.Timeout {
			g.settle = qe
			return
		}
		c.reply(origin{client: true, id: g.client}, Reply{Err: ans.Err, Partition: g.rs.partition})
		return
	}
	if ans.Stale {
		c.count(CountStaleRead, 1)
	}
	// Expired values read as absent (expiry.go). The repairs above carried them like
	// tombstones: they supersede older values wherever a replica still holds one.
	at := c.expiryNow()
	obj := ans.Object.Unexpired(at)
	if g.cond != nil {
		c.condRead(g, obj, ans.Object)
		return
	}
	if live := len(obj.Live()); live > 0 {
		c.count(CountSiblings, live)
	}
	c.reply(origin{client: true, id: g.client}, Reply{Object: obj, At: at, Partition: g.rs.partition})
}

func (c *Core) sendRepairs(g *getCoord, repairs []quorum.Repair) {
	for _, r := range repairs {
		if !g.rs.isPrimary(r.Node) {
			// A fallback keeps a hint only until its primary is back; repair primaries.
			g.fsm.RepairDone(r.Node)
			continue
		}
		c.count(CountReadRepair, 1)
		if r.Node == c.cfg.ID {
			if _, err := c.applyMerge(g.bucket, g.key, r.Object, g.lww, false); err != nil {
				c.log(LevelError, "local read repair failed", "key", g.key, "err", err)
			}
			g.fsm.RepairDone(r.Node)
			continue
		}
		hl := c.hlc.Last()
		req := &pb.ReplicateRequest{Bucket: g.bucket, Key: g.key, Object: r.Object.AppendBinary(nil), HlcWall: hl.Wall, HlcLogical: hl.Logical}
		c.send(r.Node, &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: req}}, c.now.Mono+c.cfg.RequestTimeout, pending{owner: g.id, kind: callRepair})
	}
}
