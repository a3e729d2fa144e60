package core

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// CRDTOp is a CRDT operation; ReplaceType lets it replace a key of another type (Redis
// SET) instead of failing with ErrWrongType.
type CRDTOp struct {
	Type        crdt.Type
	Op          crdt.Op
	ReplaceType bool
	// Touch applies no operation: it rewrites the key's state with the write's expiry
	// (Redis EXPIRE, PERSIST), and fails with ErrNotFound when the coordinator's copy holds
	// no live state. Op must be empty.
	Touch bool
	// Blind: the caller needs neither the states before and after (Reply.Before is nil)
	// nor the new causal context (Reply.Context is ""), as Redis SET does not; the
	// coordinator spares encoding them. Not forwarded: a forwarded operation's reply has
	// them all.
	Blind bool
}

// mutation is what a write changes: a value or tombstone superseding what the client's
// context has seen, or a CRDT operation applied to the coordinator's current state.
type mutation struct {
	value []byte
	tomb  bool
	ctx   string
	crdt  *CRDTOp
	ctype string
	meta  []version.MetaEntry
	exp   Expiry
}

// Limits on what a writer may say of a value.
const (
	maxContentType = 255
	maxMetaEntries = 64
	maxMetaBytes   = 8 << 10
)

// checkMeta validates a value's content type and metadata (keys sorted and unique, as the
// front ends pass them).
func checkMeta(m mutation) error {
	if len(m.ctype) > maxContentType {
		return fmt.Errorf("%w: content type is %d bytes, the limit is %d", ErrTooLarge, len(m.ctype), maxContentType)
	}
	for i := 0; i < len(m.ctype); i++ {
		if b := m.ctype[i]; b < 0x20 || b > 0x7e {
			return fmt.Errorf("%w: content type holds a byte outside printable ASCII", ErrBadRequest)
		}
	}
	if len(m.meta) > maxMetaEntries {
		return fmt.Errorf("%w: %d metadata items, the limit is %d", ErrTooLarge, len(m.meta), maxMetaEntries)
	}
	size := 0
	for i, e := range m.meta {
		size += len(e.Key) + len(e.Value)
		if e.Key == "" || (i > 0 && e.Key <= m.meta[i-1].Key) {
			return fmt.Errorf("%w: metadata keys must be non-empty, sorted and unique", ErrBadRequest)
		}
		if strings.HasPrefix(e.Key, legacyMetaPrefix) {
			// Reserved while forwarded writes of the previous release are read (expiry.go).
			return fmt.Errorf("%w: metadata keys may not start with a NUL byte", ErrBadRequest)
		}
	}
	if size > maxMetaBytes {
		return fmt.Errorf("%w: metadata is %d bytes, the limit is %d", ErrTooLarge, size, maxMetaBytes)
	}
	return nil
}

// origin is who waits for a coordinator's outcome: a client, or a peer that forwarded.
type origin struct {
	client bool
	peer   string
	id     uint64
}

// putCoord coordinates one write at this node.
type putCoord struct {
	id       uint64
	from     origin
	bucket   string
	key      string
	rs       *replicaSet
	fsm      *quorum.Put
	enc      []byte
	sync     bool
	hlc      version.HLC
	stoodIn  map[string]bool
	newCtx   string
	before   []byte
	after    []byte
	deadline time.Duration
	failed   error // the quorum error, while late replies settle
	// While a change is pending, a write that met its quorum also waits, within its
	// deadline, until w replicas of the other ring (rs.other) hold it or no pending
	// owner's answer is due any more (pendingOut): a coordinator with the other view of
	// the partition reads those replicas (pendingOwners).
	w          int
	otherAcked map[string]bool
	pendingOut int
}

// forward hands a write to a primary of the key.
type forward struct {
	id       uint64
	from     origin
	bucket   string
	key      string
	m        mutation
	o        WriteOptions
	spec     quorum.PutSpec
	props    BucketProps
	rs       *replicaSet
	order    []string
	next     int
	deadline time.Duration
	sent     uint64 // the message in flight
	lastErr  error
}

func (c *Core) clientRequest(r ClientRequest) {
	switch r.Op {
	case OpGet:
		c.startGet(r)
	case OpList:
		c.startList(r)
	case OpPut:
		m := mutation{value: r.Value, ctx: r.Write.Context, ctype: r.Write.ContentType, meta: r.Write.Meta, exp: r.Write.Expiry}
		if r.Write.Cond != CondNone {
			c.startCondWrite(r, m)
			return
		}
		c.write(origin{client: true, id: r.ID}, r.Bucket, r.Key, m, r.Write, false)
	case OpDelete:
		if r.Write.Cond != CondNone {
			c.reply(origin{client: true, id: r.ID}, Reply{Err: fmt.Errorf("%w: a delete takes no condition", ErrBadRequest)})
			return
		}
		c.write(origin{client: true, id: r.ID}, r.Bucket, r.Key, mutation{tomb: true, ctx: r.Write.Context, exp: r.Write.Expiry}, r.Write, false)
	case OpCRDT:
		if r.CRDT == nil {
			c.reply(origin{client: true, id: r.ID}, Reply{Err: fmt.Errorf("%w: CRDT request without an operation", ErrBadRequest)})
			return
		}
		m := mutation{crdt: r.CRDT, exp: r.Write.Expiry}
		if r.Write.Cond != CondNone {
			c.startCondWrite(r, m)
			return
		}
		c.write(origin{client: true, id: r.ID}, r.Bucket, r.Key, m, r.Write, false)
	default:
		c.reply(origin{client: true, id: r.ID}, Reply{Err: fmt.Errorf("%w: unknown operation %d", ErrBadRequest, r.Op)})
	}
}

// reply answers a client, or the peer that forwarded the write.
func (c *Core) reply(o origin, r Reply) {
	if o.client {
		r.ID = o.id
		c.ready.Replies = append(c.ready.Replies, r)
		return
	}
	var qe *quorum.QuorumError
	var env *pb.Envelope
	switch {
	case errors.As(r.Err, &qe):
		env = &pb.Envelope{Body: &pb.Envelope_CoordPutResp{CoordPutResp: &pb.CoordPutResponse{
			Failed: true, Acks: int32(qe.Acks), Required: int32(qe.Required), Code: qe.Kind, Error: qe.Error()}}}
	case r.Err != nil:
		env = ErrorEnvelope(r.Err)
	default:
		env = &pb.Envelope{Body: &pb.Envelope_CoordPutResp{CoordPutResp: &pb.CoordPutResponse{
			Context: r.Context, CrdtState: r.After, CrdtBefore: r.Before}}}
	}
	c.answer(o.peer, o.id, env)
}

// write starts a write: coordinated here when this node is a primary of the key (or was
// asked to coordinate by a peer), forwarded to a primary otherwise.
func (c *Core) write(from origin, bucket, key string, m mutation, o WriteOptions, coordinate bool) {
	props := c.deps.Buckets.Bucket(bucket)
	fail := func(err error) { c.reply(from, Reply{Err: err}) }
	spec, err := c.checkWrite(props, bucket, key, m, o)
	if err != nil {
		fail(err)
		return
	}
	rs, err := c.replicas(bucket, key, props.N)
	if err != nil {
		fail(err)
		return
	}
	if have := len(rs.primaries); spec.W > have || spec.PW > have || spec.DW > have {
		fail(ringTooSmall(bucket, props.N, have, "w", max(spec.W, spec.PW, spec.DW)))
		return
	}
	deadline := c.now.Mono + c.timeout(o.Timeout)
	if coordinate || rs.isPrimary(c.cfg.ID) {
		if coordinate && !rs.isPrimary(c.cfg.ID) {
			// The rings disagree (a membership change in flight): coordinate anyway, as the
			// sender believes this node is a primary; its dot is still unique.
			c.log(LevelWarn, "coordinating a write for a key this node is not a primary of", "bucket", bucket, "key", key)
		}
		c.coordinate(from, bucket, key, m, spec, props, rs, deadline)
		return
	}
	c.count(CountForward, 1)
	f := &forward{id: c.newID(), from: from, bucket: bucket, key: key, m: m, o: o, spec: spec, props: props, rs: rs, deadline: deadline}
	// Forward only to primaries the failure detector sees up: a down one would cost the
	// write its whole deadline under a partition (the message is lost, not refused). With
	// none up, the write is coordinated here, sloppily (forwardNext).
	for _, r := range rs.reps {
		if r.primary() && c.alive(r.node) {
			f.order = append(f.order, r.node)
		}
	}
	c.fwds[f.id] = f
	c.at(deadline, timerFwdDeadline, f.id)
	c.forwardNext(f)
}

func (c *Core) newID() uint64 {
	c.nextMsg++
	return c.nextMsg
}

// forwardNext sends the write to the next primary to try; with none left it coordinates
// here, writing to the fallbacks that stand in for the primaries (sloppy quorum). The dot
// is this node's own, so it is as unique as any.
func (c *Core) forwardNext(f *forward) {
	if f.next >= len(f.order) {
		delete(c.fwds, f.id)
		c.coordinate(f.from, f.bucket, f.key, f.m, f.spec, f.props, f.rs, f.deadline)
		return
	}
	to := f.order[f.next]
	f.next++
	req := &pb.CoordPutRequest{
		Bucket: f.bucket, Key: f.key, Value: f.m.value, Tombstone: f.m.tomb, Context: f.m.ctx,
		W: f.o.W, Pw: f.o.PW, Dw: f.o.DW, TimeoutMs: (f.deadline - c.now.Mono).Milliseconds(),
		ContentType: f.m.ctype,
	}
	putExpiry(req, f.m.exp)
	for _, e := range f.m.meta {
		req.Meta = append(req.Meta, &pb.MetaEntry{Key: e.Key, Value: e.Value})
	}
	if f.m.crdt != nil {
		req.CrdtType, req.ReplaceType, req.Touch = string(f.m.crdt.Type), f.m.crdt.ReplaceType, f.m.crdt.Touch
		if !f.m.crdt.Touch {
			req.Crdt = EncodeCRDTOp(f.m.crdt.Op)
		}
	}
	f.sent = c.send(to, &pb.Envelope{Body: &pb.Envelope_CoordPut{CoordPut: req}}, f.deadline, pending{owner: f.id, kind: callForward})
}

func (c *Core) forwardResponse(f *forward, from string, r Response) {
	if r.Err != nil {
		f.lastErr = r.Err
		if errors.Is(r.Err, ErrUnreachable) {
			c.forwardNext(f) // not sent: the write did not happen there, try the next primary
			return
		}
		// It may have been coordinated there: another attempt could apply it twice (a
		// counter would count it twice), so the outcome is unknown.
		c.forwardTimeout(f)
		return
	}
	delete(c.fwds, f.id)
	if e := r.Env.GetError(); e != nil {
		c.reply(f.from, Reply{Err: RemoteErrorOf(e)})
		return
	}
	cp := r.Env.GetCoordPutResp()
	if cp == nil {
		c.reply(f.from, Reply{Err: fmt.Errorf("coordinator %s: unexpected response %T", from, r.Env.Body)})
		return
	}
	if cp.Failed {
		c.reply(f.from, Reply{Err: &quorum.QuorumError{Kind: cp.Code, Required: int(cp.Required), Acks: int(cp.Acks)}})
		return
	}
	c.reply(f.from, Reply{Context: cp.Context, Before: cp.CrdtBefore, After: cp.CrdtState, Partition: f.rs.partition})
}

// forwardTimeout ends a forward whose coordinator did not answer (in time): how many
// replicas it reached is unknown here, so it reports none.
func (c *Core) forwardTimeout(f *forward) {
	delete(c.fwds, f.id)
	delete(c.calls, f.sent)
	c.reply(f.from, Reply{Err: &quorum.QuorumError{Kind: "w", Required: f.spec.W, Acks: 0, Timeout: true}})
}

// coordinate mints a dot, stores the new object locally (when this node is one of the
// key's replicas) and replicates it to the others, answering when the write quorum is met
// or cannot be. A primary that turns out unreachable is replaced by the next healthy node
// past the primaries, which keeps the object as a hint.
func (c *Core) coordinate(from origin, bucket, key string, m mutation, spec quorum.PutSpec, props BucketProps, rs *replicaSet, deadline time.Duration) {
	fail := func(err error) { c.reply(from, Reply{Err: err}) }
	clk, ts, err := version.DecodeContext(m.ctx)
	if err != nil {
		fail(fmt.Errorf("%w: %w", ErrBadRequest, err))
		return
	}
	if err := c.checkContext(clk); err != nil {
		fail(err)
		return
	}
	self, selfIn := rs.find(c.cfg.ID)
	// A coordinator that is a primary of the key answers "ok" only with its own ack among
	// the W (spec.Own): with W=1 its copy is the one the client heard "ok" from, and the
	// client reads its write back from it. Like every other ack, the own ack waits for no
	// fsync unless DW asks each counted ack to be synced (or W=1, below): a crash of the
	// coordinator may lose its unsynced copy of a write the other replicas acknowledged,
	// and it then restarts under a new actor, so that its later dots never cover the lost
	// write (Riak's kv679; see Identity.load). (Waiting for the coordinator's fsync instead
	// cost unpipelined SET 30% of its throughput on a 2-core VM: docs/benchmarks.md.)
	if selfIn && self.primary() {
		spec.Own = c.cfg.ID
	}
	sync := spec.DW > 0
	// With W=1 the own ack is the only one: it is durable then, so that no single crash
	// loses an acknowledged write (with W ≥ 2 another replica holds it, and every store
	// syncs within 100 ms).
	localSync := sync || spec.W <= 1

	var local version.Object
	var localRaw, k []byte
	if selfIn {
		k = c.scratchKey(bucket, key) // used up by storeReplica below; nothing between takes another
		if local, localRaw, err = c.loadReplica(self, bucket, key, k); err != nil {
			fail(err)
			return
		}
	}
	now := c.hlcNow(local.MaxTimestamp(), ts)
	// Siblings expired by this write's time are dead: the write supersedes them (they stay
	// in the clock), and a CRDT operation does not fold them.
	live := local.Unexpired(now.Wall)
	actor := c.id.Actor()
	n, err := c.id.Mint(local.Clock.Get(actor))
	if err != nil {
		fail(err)
		return
	}
	// The actor's entry in a key's version vector says "every dot of this actor up to here
	// is seen", which holds only if this node's copy has all the dots it minted for the
	// key: its own primary copy does. Coordinating from a hint copy or from none (sloppy
	// coordination), a dot of the node's actor could cover earlier ones the copy lacks,
	// and replicas would drop those writes as seen; a one-off actor cannot cover anything.
	// The same holds for a CRDT actor's counters.
	if !selfIn || !self.primary() {
		actor = fmt.Sprintf("%s#%d", actor, n)
	}
	dot := version.Dot{Actor: actor, Counter: n}
	value, tomb := m.value, m.tomb
	var before, after []byte
	if m.crdt != nil {
		// The new state folds in every local sibling, so it supersedes them all.
		b, a, err := applyCRDT(live, m.crdt, actor, now, !m.crdt.Blind)
		if err != nil {
			fail(err)
			return
		}
		value, before, after, clk = a, b, a, local.Clock
	}
	sib := version.Sibling{Dot: dot, Value: value, Tombstone: tomb, Timestamp: now}
	if m.crdt == nil && !tomb {
		sib.ContentType, sib.Meta = m.ctype, m.meta
	}
	if !tomb {
		sib.Expires = expiresAt(m.exp, props, m.crdt != nil, live, now.Wall)
	}
	obj := live.Update(clk, sib)
	if props.LWW() && len(obj.Siblings) > 1 && m.crdt == nil {
		obj = obj.LWW()
	}
	if err := c.checkCaps(obj); err != nil {
		fail(err)
		return
	}
	enc := obj.AppendBinary(nil)
	if c.deps.OnMint != nil {
		c.deps.OnMint(bucket, key, sib, max(local.Clock.Get(actor), clk.Get(actor)))
	}
	if selfIn {
		// Stored at once, not synced (unless DW: the message to itself below then syncs it,
		// its answer waiting for the sync), while the other replicas get the object in
		// parallel. Should the node crash before the periodic sync, the write is lost here
		// and lives at the other replicas; the node restarts under a new actor, whose dots
		// cannot supersede it (Identity.load). The same holds for a counter, set, flag or
		// map, whose per-actor counters and dots come from this copy: a copy that lost an
		// increment others hold would count a later one with the same counter under the same
		// actor, which merges (max per actor) would swallow; under the new actor the later
		// increment has its own entry. (They used to be synced before anything of the turn
		// left, for that reason.)
		if err := c.storeReplica(self, bucket, key, k, localRaw, obj, enc, false); err != nil {
			fail(fmt.Errorf("local write: %w", err))
			return
		}
	}
	pc := &putCoord{id: c.newID(), from: from, bucket: bucket, key: key, rs: rs, fsm: quorum.NewPut(spec, rs.targets()),
		enc: enc, sync: sync, hlc: c.hlc.Last(), before: before, after: after, deadline: deadline}
	if m.crdt == nil || !m.crdt.Blind {
		// The new context covers what the client's context saw plus this write, and not
		// concurrent siblings the client has never read.
		pc.newCtx = version.EncodeContext(clk.With(dot), now)
	}
	c.puts[pc.id] = pc
	// Every replica acks through a message, this node's own too: its copy is stored above,
	// at once (the actor rules need the coordinator's copy to hold every dot it minted), and
	// the message to itself merges as a no-op and acks — at once in the server (after the
	// syncer's group-committed fsync with DW), after a write latency in the simulator,
	// whose model (PBS's WARS) treats every replica alike.
	for _, r := range rs.reps {
		sync := pc.sync
		if r.node == c.cfg.ID {
			sync = localSync
		}
		c.replicate(pc, r, sync)
	}
	// A change pending: the other ring's replicas get the write too (pendingOwners).
	if rs.other != nil {
		pc.w, pc.otherAcked = spec.W, map[string]bool{}
	}
	for _, node := range rs.pending {
		req := &pb.ReplicateRequest{Bucket: bucket, Key: key, Object: enc, HlcWall: pc.hlc.Wall, HlcLogical: pc.hlc.Logical}
		c.send(node, &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: req}}, deadline, pending{owner: pc.id, kind: callPendingWrite})
		c.count(CountPendingWrite, 1)
		pc.pendingOut++
	}
	c.at(deadline, timerPutDeadline, pc.id)
	// A primary that has not answered by the hedge delay (paused, overloaded, partitioned
	// one way) also gets a stand-in, while its own answer may still come: the write then
	// does not wait for the failure detector, and a hint for a primary that did get the
	// write merges into it as a no-op later.
	c.after(min(c.cfg.HedgeDelay, (deadline-c.now.Mono)/2), timerPutHedge, pc.id)
	c.putProgress(pc, false)
}

func (c *Core) replicate(pc *putCoord, to replica, sync bool) {
	enc := pc.enc
	if to.node == c.cfg.ID && to.primary() {
		enc = nil // this node stored it already: the message only acks (see handleReplicate)
	}
	env, req := newReplicate()
	req.Bucket, req.Key, req.Object, req.Sync = pc.bucket, pc.key, enc, sync
	req.HlcWall, req.HlcLogical, req.HintFor = pc.hlc.Wall, pc.hlc.Logical, to.hintFor
	c.send(to.node, env, pc.deadline, pending{owner: pc.id, kind: callReplicate})
}

// standIn adds a fallback for primary, if one is left.
func (c *Core) standIn(pc *putCoord, primary string) {
	if !pc.rs.isPrimary(primary) || pc.stoodIn[primary] {
		return
	}
	if fb, ok := pc.rs.nextSpare(); ok {
		if pc.stoodIn == nil {
			pc.stoodIn = map[string]bool{} // made on first use: most writes never stand in
		}
		pc.stoodIn[primary] = true
		pc.fsm.AddTarget(quorum.Target{Node: fb})
		c.count(CountFallbackWrite, 1)
		c.replicate(pc, replica{node: fb, hintFor: primary}, pc.sync)
	}
}

func (c *Core) putHedge(pc *putCoord) {
	if pc.failed != nil {
		return
	}
	if pc.fsm.Outcome() == quorum.Succeeded {
		return // waiting for the other ring's replicas: no stand-in needed
	}
	for _, r := range pc.rs.reps {
		// Not for this node's own copy: the write needs that ack itself (spec.Own), and a
		// slow sync is not a slow replica.
		if r.primary() && r.node != c.cfg.ID && pc.fsm.Waiting(r.node) {
			c.standIn(pc, r.node)
		}
	}
}

// pendingWriteResponse notes a pending owner's answer (it counts toward no quorum; a
// failure is repaired by the transfer's check or by anti-entropy).
func (c *Core) pendingWriteResponse(pc *putCoord, from string, r Response) {
	pc.pendingOut--
	if r.Err == nil && r.Env.GetReplicateResp() != nil {
		pc.otherAcked[from] = true
	} else {
		c.log(LevelDebug, "write to a replica of the other ring failed", "replica", from, "bucket", pc.bucket, "key", pc.key, "err", r.Err)
	}
	c.putProgress(pc, false)
}

func (c *Core) putResponse(pc *putCoord, from string, r Response) {
	if rr := r.Env.GetReplicateResp(); r.Err == nil && rr != nil {
		if pc.rs.isPrimary(from) && slices.Contains(pc.rs.other, from) {
			pc.otherAcked[from] = true // a replica of both rings
		}
		pc.fsm.Ack(from, rr.Durable)
	} else {
		err := r.Err
		if err == nil {
			err = RemoteErrorOf(r.Env.GetError())
		}
		c.log(LevelDebug, "replica write failed", "replica", from, "err", err)
		// A primary that could not be reached, or whose connection broke, gets a stand-in
		// if one is left (a hint for a primary that did get the write merges as a no-op).
		if pc.failed == nil && (errors.Is(err, ErrUnreachable) || errors.Is(err, ErrLost)) {
			c.standIn(pc, from)
		}
		pc.fsm.Fail(from)
	}
	c.putProgress(pc, false)
}

// putProgress answers once the outcome is known. A failed write is not rolled back (it may
// have reached replicas), so its error says how many replicas hold it: the state machine
// fails as soon as the quorum is out of reach — one replica failing fast while another is
// still answering — so the answer waits, within the deadline, for the replicas still in
// flight, and reports the acks they add.
func (c *Core) putProgress(pc *putCoord, deadline bool) {
	switch pc.fsm.Outcome() {
	case quorum.Pending:
		return
	case quorum.Succeeded:
		if pc.pendingOut > 0 && len(pc.otherAcked) < pc.w && !deadline {
			return // the other ring's replicas do not hold it yet (putCoord.w)
		}
		c.finishPut(pc)
		c.reply(pc.from, Reply{Context: pc.newCtx, Before: pc.before, After: pc.after, Partition: pc.rs.partition})
		return
	}
	if pc.failed == nil {
		pc.failed = pc.fsm.Err()
	}
	var qe *quorum.QuorumError
	if !errors.As(pc.failed, &qe) {
		c.finishPut(pc)
		c.reply(pc.from, Reply{Err: pc.failed})
		return
	}
	if !pc.fsm.Settled() && !deadline {
		return
	}
	acks, primary, durable := pc.fsm.Counts()
	out := *qe
	switch qe.Kind {
	case "w":
		out.Acks = acks
	case "pw":
		out.Acks = primary
	case "dw":
		out.Acks = durable
	}
	c.finishPut(pc)
	c.reply(pc.from, Reply{Err: &out, Partition: pc.rs.partition})
}

// finishPut forgets a write. Answers still in flight find no owner and are dropped (the
// driver answers every Message, at the latest at its deadline, so calls never leak).
func (c *Core) finishPut(pc *putCoord) { delete(c.puts, pc.id) }

// handleCoordPut coordinates a write a peer forwarded.
func (c *Core) handleCoordPut(from string, id uint64, r *pb.CoordPutRequest) {
	o := WriteOptions{W: r.W, PW: r.Pw, DW: r.Dw, Context: r.Context, Timeout: time.Duration(r.TimeoutMs) * time.Millisecond}
	if o.Timeout <= 0 || o.Timeout > c.cfg.RequestTimeout*4 {
		o.Timeout = c.cfg.RequestTimeout
	}
	m := mutation{value: r.Value, tomb: r.Tombstone, ctx: r.Context, ctype: r.ContentType}
	meta := make([]version.MetaEntry, 0, len(r.Meta))
	for _, e := range r.Meta {
		meta = append(meta, version.MetaEntry{Key: e.Key, Value: e.Value})
	}
	exp, err := forwardedExpiry(r)
	if err != nil {
		c.answer(from, id, ErrorEnvelope(err))
		return
	}
	touch := r.Touch
	// A node of the previous release sends the expiry and the touch as reserved metadata.
	meta, lexp, ltouch, legacy, err := takeLegacyReserved(meta)
	switch {
	case err != nil:
		c.answer(from, id, ErrorEnvelope(err))
		return
	case legacy && (exp != (Expiry{}) || touch):
		c.answer(from, id, ErrorEnvelope(fmt.Errorf("%w: a forwarded write with its expiry in both forms", ErrBadRequest)))
		return
	case legacy:
		exp, touch = lexp, ltouch
	}
	if len(meta) > 0 {
		m.meta = meta
	}
	m.exp = exp
	switch {
	case touch:
		t, err := crdt.ParseType(r.CrdtType)
		if err != nil {
			c.answer(from, id, ErrorEnvelope(fmt.Errorf("%w: %w", ErrBadRequest, err)))
			return
		}
		m = mutation{crdt: &CRDTOp{Type: t, Touch: true}, exp: exp}
	case r.CrdtType != "":
		var op *CRDTOp
		var err error
		if r.Crdt == nil && len(r.CrdtOpJson) > 0 {
			op, err = parseLegacyCRDTOp(r.CrdtType, r.CrdtOpJson, r.Value, r.ReplaceType)
		} else {
			op, err = DecodeCRDTOp(r.CrdtType, r.Crdt, r.ReplaceType)
		}
		if err != nil {
			c.answer(from, id, ErrorEnvelope(err))
			return
		}
		m = mutation{crdt: op, exp: exp}
	}
	c.write(origin{peer: from, id: id}, r.Bucket, r.Key, m, o, true)
}

// RedisBucket holds the keys of the Redis protocol: every value is a CRDT state (strings
// are LWW registers), whatever the bucket's type says.
const RedisBucket = "redis"

// checkType refuses a plain value written to a bucket of CRDTs (or to the Redis keys): it
// would leave a key whose siblings no longer fold into a state. Deletes are allowed
// everywhere (a tombstone folds as absent).
func checkType(props BucketProps, bucket string, m mutation) error {
	if m.crdt != nil || m.tomb {
		return nil
	}
	if bucket == RedisBucket {
		return fmt.Errorf("%w: bucket %q holds the Redis keys (CRDT states); write them with Redis commands", ErrWrongType, bucket)
	}
	if props.Type != "" && props.Type != "kv" {
		return fmt.Errorf("%w: bucket %q holds %ss (type %s): write them with the CRDT API (POST /v1/crdt/%s/{key})",
			ErrWrongType, bucket, props.Type, props.Type, bucket)
	}
	return nil
}

// checkWrite validates a write before anything is read or written, and returns its quorum
// requirements.
func (c *Core) checkWrite(props BucketProps, bucket, key string, m mutation, o WriteOptions) (quorum.PutSpec, error) {
	spec, err := putSpec(props, o)
	if err != nil {
		return spec, err
	}
	if err := c.validKey(bucket, key); err != nil {
		return spec, err
	}
	if err := checkType(props, bucket, m); err != nil {
		return spec, err
	}
	if err := checkMeta(m); err != nil {
		return spec, err
	}
	if err := checkExpiry(m); err != nil {
		return spec, err
	}
	if len(m.value) > c.cfg.MaxValueBytes {
		return spec, fmt.Errorf("%w: value is %d bytes, the limit is %d", ErrTooLarge, len(m.value), c.cfg.MaxValueBytes)
	}
	if _, _, err := version.DecodeContext(m.ctx); err != nil {
		return spec, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return spec, nil
}

// checkExpiry validates a write's expiry request.
func checkExpiry(m mutation) error {
	if err := m.exp.Validate(); err != nil {
		return err
	}
	if m.tomb && m.exp != (Expiry{}) {
		return fmt.Errorf("%w: a delete takes no expiry", ErrBadRequest)
	}
	if m.crdt != nil && m.crdt.Touch {
		if m.exp.Mode != ExpiryTTL && m.exp.Mode != ExpiryNever {
			return fmt.Errorf("%w: a touch sets a TTL or removes it", ErrBadRequest)
		}
		if !m.crdt.Op.IsZero() {
			return fmt.Errorf("%w: a touch applies no operation", ErrBadRequest)
		}
	}
	return nil
}

// applyCRDT computes the new encoded state of a key from the coordinator's local copy.
// CRDT keys: the value of each DVV sibling is an encoded CRDT state. A coordinator folds
// its local siblings into one state, applies the operation with its actor, and writes the
// result superseding every sibling it folded; concurrent updates on other coordinators stay
// siblings until a reader or the next coordinator folds them. Merging is a join, so no
// acknowledged operation is ever lost, whichever replicas it reached.
func applyCRDT(local version.Object, m *CRDTOp, actor string, now version.HLC, wantBefore bool) (before, after []byte, err error) {
	cur, found, err := crdt.Fold(local)
	if m.Touch {
		switch {
		case err != nil:
			return nil, nil, fmt.Errorf("%w: the key holds plain values, not a CRDT state", ErrWrongType)
		case !found:
			return nil, nil, fmt.Errorf("%w: no live value to set the expiry of", ErrNotFound)
		}
		b := cur.Encode()
		return b, b, nil
	}
	switch {
	case err != nil && m.ReplaceType:
		// Plain values, replaced (Redis SET on a key written over HTTP before the bucket
		// refused plain values): start from a fresh state.
		cur, found = crdt.New(m.Type), false
	case err != nil:
		// Plain values (written before the bucket became a CRDT bucket): not a state. The
		// decoding error says nothing a user can act on.
		return nil, nil, fmt.Errorf("%w: the key holds plain values, not a %s; delete it first or use another key", ErrWrongType, m.Type)
	}
	switch {
	case !found:
		cur = crdt.New(m.Type)
	case cur.Type() != m.Type && m.ReplaceType:
		cur = crdt.New(m.Type)
	case cur.Type() != m.Type:
		return nil, nil, fmt.Errorf("%w: the key holds a %s, not a %s", ErrWrongType, cur.Type(), m.Type)
	}
	next, err := crdt.Apply(cur, m.Op, actor, now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if wantBefore {
		before = cur.Encode()
	}
	return before, next.Encode(), nil
}

// parseLegacyCRDTOp rebuilds an operation forwarded by a node of the previous release: JSON
// (the HTTP API's form), with a register's value as raw bytes beside it. Accepted on
// receipt for one release, so a rolling upgrade loses no forwarded operation; nothing
// sends it any more.
func parseLegacyCRDTOp(typ string, js, assign []byte, replace bool) (*CRDTOp, error) {
	t, err := crdt.ParseType(typ)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	op, err := crdt.ParseOp(t, js)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if op.Assign != nil {
		v := string(assign)
		op.Assign = &v
	}
	return &CRDTOp{Type: t, Op: op, ReplaceType: replace}, nil
}
