package core

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/quorumkv/quorumkv/internal/hints"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Hinted handoff: a fallback keeps what it received for a down primary as hints (package
// hints). A session hands them to their primary once the failure detector sees it up
// again — at once when the view says so, and every HandoffInterval as a retry — in
// batches, throttled to HintRate bytes/s. The primary merges each hinted object with the
// normal version rules (a hint never overwrites a newer write: it merges) and answers only
// once the batch is synced; the fallback then deletes each hint it delivered, unless a
// write was merged into it meanwhile. A crash anywhere in between resends, never loses:
// merging the same object twice changes nothing.

type handoffState struct {
	next     time.Duration // when the next round is due
	sessions map[string]*handoffSession
}

// handoffSession is one target's handoff in progress: one batch in flight at a time.
type handoffSession struct {
	target    string
	cursor    []byte
	batch     []hints.Hint
	size      int
	delivered int
	bytes     int
	started   time.Duration
	resumeAt  time.Duration // throttled: the next batch leaves no earlier
	inFlight  bool
	// redirect: the target has left the ring; its hints go to their keys' replicas now,
	// waiting answers at a time, the first failure in failed.
	redirect bool
	waiting  int
	failed   error
}

func (h *handoffState) init(now Time) {
	h.sessions = map[string]*handoffSession{}
	h.next = now.Mono
}

// kickHandoff asks for a round now (on shard 0: the one that hands hints off).
func (c *Core) kickHandoff() {
	if c.cfg.Shard != 0 {
		return
	}
	c.handoff.next = c.now.Mono
	c.at(c.now.Mono, timerHandoff, 0)
}

// Start arms the core's schedules — handoff rounds, and with anti-entropy on the first
// tree rebuild, exchanges and reaping; the driver calls it once it is ready to send.
func (c *Core) Start() {
	c.kickHandoff()
	if c.trees != nil {
		c.startRebuild()
		c.at(c.now.Mono+c.cfg.AAEInterval, timerAAE, 0)
		c.reap.next = c.now.Mono + c.cfg.ReapInterval
		c.at(c.reap.next, timerReap, 0)
	}
}

// handoffRound expires old hints and starts a session for every target seen up that has
// none, and moves throttled sessions on.
func (c *Core) handoffRound() {
	now := c.now.Mono
	for _, s := range c.sessionsSorted() {
		if !s.inFlight && s.resumeAt <= now {
			c.handoffNextBatch(s)
		}
	}
	if now < c.handoff.next {
		return
	}
	c.handoff.next = now + c.cfg.HandoffInterval
	c.at(c.handoff.next, timerHandoff, 0)
	if n, b, err := c.deps.Hints.Expire(c.now.Wall); err != nil {
		c.log(LevelError, "hint expiry failed", "err", err)
	} else if n > 0 {
		c.log(LevelWarn, "hints expired: older than the hint window; those keys heal by read repair and anti-entropy", "hints", n, "bytes", b)
	}
	for _, target := range c.deps.Hints.Targets() {
		gone := c.gone(target)
		if target == c.cfg.ID || !gone && !c.alive(target) || c.handoff.sessions[target] != nil {
			continue
		}
		s := &handoffSession{target: target, started: now, redirect: gone}
		c.handoff.sessions[target] = s
		if gone {
			c.log(LevelInfo, "handoff started: the target has left the ring, its hints go to their keys' replicas", "target", target)
		} else {
			c.log(LevelInfo, "handoff started", "target", target)
		}
		c.handoffNextBatch(s)
	}
}

func (c *Core) sessionsSorted() []*handoffSession {
	out := make([]*handoffSession, 0, len(c.handoff.sessions))
	for _, s := range c.handoff.sessions {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *handoffSession) int { return cmp.Compare(a.target, b.target) })
	return out
}

// HandoffRunning reports the targets with a handoff in progress.
func (c *Core) HandoffRunning() map[string]bool {
	out := make(map[string]bool, len(c.handoff.sessions))
	for t := range c.handoff.sessions {
		out[t] = true
	}
	return out
}

// handoffNextBatch sends the target's next batch, or ends the session when none is left.
func (c *Core) handoffNextBatch(s *handoffSession) {
	for {
		hs, next, err := c.deps.Hints.Batch(s.target, s.cursor, c.cfg.HandoffBatchBytes)
		if err != nil {
			c.endHandoff(s, fmt.Errorf("read hints: %w", err))
			return
		}
		if len(hs) == 0 {
			c.endHandoff(s, nil)
			return
		}
		req := &pb.HandoffRequest{Items: make([]*pb.HandoffItem, 0, len(hs))}
		size, stale := 0, 0
		for _, h := range hs {
			if c.staleHint(h) {
				stale++
				continue
			}
			req.Items = append(req.Items, &pb.HandoffItem{Bucket: h.Bucket, Key: h.Key, Object: h.Object})
			size += len(h.Object)
		}
		if stale > 0 {
			c.count(CountHintsStale, stale)
			c.log(LevelWarn, "hints older than their bucket's gc_grace discarded, not delivered (they could resurrect a reaped delete)",
				"target", s.target, "hints", stale)
		}
		s.batch, s.size, s.cursor = hs, size, next
		if len(req.Items) > 0 && s.redirect {
			if err := c.redirectBatch(s, req.Items); err != nil {
				c.endHandoff(s, err)
			}
			return
		}
		if len(req.Items) > 0 {
			s.inFlight = true
			c.send(s.target, &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: req}}, c.now.Mono+c.cfg.HandoffTimeout,
				pending{kind: callHandoff, extra: s.target})
			return
		}
		// Every hint of the batch was stale: drop them and go on.
		if !c.batchDelivered(s) {
			return
		}
	}
}

// batchDelivered deletes the batch's hints; it reports whether the session goes on.
func (c *Core) batchDelivered(s *handoffSession) bool {
	d, err := c.deps.Hints.Delivered(s.batch, false)
	if err != nil {
		c.endHandoff(s, fmt.Errorf("delete delivered hints: %w", err))
		return false
	}
	s.delivered += d
	s.bytes += s.size
	c.count(CountHintsDelivered, d)
	c.count(CountHandoffBytes, s.size)
	s.batch = nil
	if s.cursor == nil {
		c.endHandoff(s, nil)
		return false
	}
	return true
}

func (c *Core) handoffResponse(target string, r Response) {
	s := c.handoff.sessions[target]
	if s == nil || !s.inFlight {
		return
	}
	var err error
	if s.redirect {
		if r.Err == nil && r.Env.GetHandoffResp() == nil {
			r.Err = remoteErr(r.Env)
		}
		if r.Err != nil && s.failed == nil {
			s.failed = fmt.Errorf("redirected hints of %s: %w", target, r.Err)
		}
		if s.waiting--; s.waiting > 0 {
			return
		}
		err, s.failed = s.failed, nil
		r = Response{Env: &pb.Envelope{Body: &pb.Envelope_HandoffResp{HandoffResp: &pb.HandoffResponse{}}}}
	}
	s.inFlight = false
	switch {
	case err != nil:
	case r.Err != nil:
		err = fmt.Errorf("send to %s: %w", target, r.Err)
	case r.Env.GetError() != nil:
		err = fmt.Errorf("%s refused the batch: %w", target, RemoteErrorOf(r.Env.GetError()))
	case r.Env.GetHandoffResp() == nil:
		err = fmt.Errorf("%s: unexpected answer %T", target, r.Env.Body)
	}
	if err != nil {
		c.endHandoff(s, err)
		return
	}
	size := s.size
	if !c.batchDelivered(s) {
		return
	}
	if c.cfg.HintRate > 0 {
		// Throttle: the next batch leaves once this one's bytes took their time at HintRate.
		s.resumeAt = c.now.Mono + time.Duration(float64(size)/float64(c.cfg.HintRate)*float64(time.Second))
		if s.resumeAt > c.now.Mono {
			c.at(s.resumeAt, timerHandoff, 0)
			return
		}
	}
	c.handoffNextBatch(s)
}

func (c *Core) endHandoff(s *handoffSession, err error) {
	delete(c.handoff.sessions, s.target)
	elapsed := c.now.Mono - s.started
	if err != nil {
		c.log(LevelWarn, "handoff interrupted; will retry", "target", s.target, "delivered", s.delivered, "bytes", s.bytes, "elapsed", elapsed, "err", err)
		// Retry soon, not a whole interval later.
		if retry := c.now.Mono + c.cfg.HandoffRetry; retry < c.handoff.next {
			c.handoff.next = retry
			c.at(retry, timerHandoff, 0)
		}
		return
	}
	c.log(LevelInfo, "handoff finished", "target", s.target, "delivered", s.delivered, "bytes", s.bytes, "elapsed", elapsed)
}

// gone reports a node that is in neither the ring in force nor the next one: it has left
// (or was removed), and nothing it was kept hints for will reach it.
func (c *Core) gone(id string) bool {
	v := c.view
	if v.Ring == nil || v.Ring.Has(ring.NodeID(id)) {
		return false
	}
	return v.Next == nil || !v.Next.Has(ring.NodeID(id))
}

// redirectBatch sends a departed target's hints to their keys' replicas seen up, one
// batch per replica, all answered (each once synced) before the hints are deleted.
func (c *Core) redirectBatch(s *handoffSession, items []*pb.HandoffItem) error {
	per := map[string]*pb.HandoffRequest{}
	var order []string
	for _, it := range items {
		rs, err := c.replicas(it.Bucket, it.Key, c.deps.Buckets.Bucket(it.Bucket).N)
		if err != nil {
			return err
		}
		sent := false
		for _, p := range rs.primaries {
			if !c.alive(p) {
				continue
			}
			sent = true // this node too, by a message to itself: answered once synced
			if per[p] == nil {
				per[p] = &pb.HandoffRequest{}
				order = append(order, p)
			}
			per[p].Items = append(per[p].Items, it)
		}
		if !sent {
			return fmt.Errorf("no replica of %s/%s is up to take the hint of %s", it.Bucket, it.Key, s.target)
		}
	}
	s.inFlight, s.waiting = true, len(order)
	for _, p := range order {
		c.send(p, &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: per[p]}}, c.now.Mono+c.cfg.HandoffTimeout,
			pending{kind: callHandoff, extra: s.target})
	}
	return nil
}

// staleHint reports a hint whose every sibling is older than its bucket's gc_grace: a
// delete that superseded it may have been reaped everywhere since, and delivering it would
// bring the value back. (With the default 3 h hint window and 10 day gc_grace this never
// happens; it guards buckets whose gc_grace is shorter than the hint window.)
func (c *Core) staleHint(h hints.Hint) bool {
	obj, err := version.Decode(h.Object)
	if err != nil {
		return false // the receiver refuses it and says why
	}
	return PastGCGrace(obj, c.deps.Buckets.Bucket(h.Bucket), c.now.Wall)
}

// handleHandoff merges a batch of hinted objects into this node's replicas. It checks
// every item before applying any, so a corrupt batch changes nothing, and its answer
// leaves only once the batch is synced.
func (c *Core) handleHandoff(r *pb.HandoffRequest) *pb.Envelope {
	objs := make([]version.Object, len(r.Items))
	for i, it := range r.Items {
		if err := c.validKey(it.Bucket, it.Key); err != nil {
			return ErrorEnvelope(fmt.Errorf("handoff item %d: %w", i, err))
		}
		obj, err := version.Decode(it.Object)
		if err != nil {
			return ErrorEnvelope(fmt.Errorf("%w: handoff item %d (%s/%s): %w", ErrBadRequest, i, it.Bucket, it.Key, err))
		}
		objs[i] = obj
	}
	for i, it := range r.Items {
		if _, err := c.applyMerge(it.Bucket, it.Key, objs[i], c.deps.Buckets.Bucket(it.Bucket).LWW(), true); err != nil {
			return ErrorEnvelope(fmt.Errorf("handoff item %d: %w", i, err))
		}
	}
	c.count(CountHandoffReceived, len(r.Items))
	return &pb.Envelope{Body: &pb.Envelope_HandoffResp{HandoffResp: &pb.HandoffResponse{Applied: int32(len(r.Items))}}}
}
