package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Errors returned by the client-facing operations; the HTTP layer maps them to statuses.
var (
	ErrTooLarge        = errors.New("too large")
	ErrTooManySiblings = errors.New("too many siblings")
	ErrUnavailable     = errors.New("no replica reachable")
)

// WriteOptions are a put's or delete's per-request settings; empty strings take the
// bucket's defaults.
type WriteOptions struct {
	W, PW, DW string
	Timeout   time.Duration
	Context   string // causal context of the read this write supersedes
}

// ReadOptions are a get's per-request settings.
type ReadOptions struct {
	R, PR   string
	Timeout time.Duration
}

// ReadResult is a read's answer.
type ReadResult struct {
	Values  [][]byte // live sibling values (more than one: concurrent writes)
	Context string   // causal context to pass to the next write
	Found   bool     // at least one live value
	Deleted bool     // only tombstones were found
}

func validBucket(b string) error {
	switch {
	case b == "" || len(b) > 255:
		return fmt.Errorf("%w: bucket name must be 1..255 bytes", ErrBadRequest)
	case !utf8.ValidString(b):
		return fmt.Errorf("%w: bucket name is not valid UTF-8", ErrBadRequest)
	}
	for i := 0; i < len(b); i++ {
		if b[i] == 0 || b[i] == '/' {
			return fmt.Errorf("%w: bucket name may not contain NUL or '/'", ErrBadRequest)
		}
	}
	return nil
}

func (n *Node) validKey(bucket, key string) error {
	if err := validBucket(bucket); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrBadRequest)
	}
	if len(key) > n.cfg.MaxKeyBytes {
		return fmt.Errorf("%w: key is %d bytes, the limit is %d", ErrTooLarge, len(key), n.cfg.MaxKeyBytes)
	}
	return nil
}

// dataKey is the store key of (bucket, key): "d", the top 32 bits of the key's ring hash
// (big-endian), the bucket, a NUL and the key. Leading with the hash sorts the store by
// partition and then by hash-tree segment (both are leading bits of that hash, whatever
// the number of partitions), so one partition, or one segment of its tree, is one range
// scan. Bucket names hold no NUL, so the key is unambiguous.
func dataKey(bucket, key string) []byte {
	b := make([]byte, 0, len(prefixData)+4+len(bucket)+1+len(key))
	b = append(b, prefixData...)
	b = binary.BigEndian.AppendUint32(b, uint32(ring.KeyHash(bucket, key)>>32))
	b = append(b, bucket...)
	b = append(b, 0)
	return append(b, key...)
}

// parseDataKey splits a store key made by dataKey.
func parseDataKey(k []byte) (bucket, key string, ok bool) {
	if len(k) < len(prefixData)+4+2 || string(k[:len(prefixData)]) != prefixData {
		return "", "", false
	}
	rest := k[len(prefixData)+4:]
	i := bytes.IndexByte(rest, 0)
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return string(rest[:i]), string(rest[i+1:]), true
}

var lockSeed = maphash.MakeSeed()

func (n *Node) lockFor(k []byte) *sync.Mutex {
	return &n.locks[maphash.Bytes(lockSeed, k)%uint64(len(n.locks))]
}

// loadObject reads this node's copy of a key; Empty when it has none.
func (n *Node) loadObject(k []byte) (version.Object, error) {
	obj, _, err := n.loadObjectRaw(k)
	return obj, err
}

// loadObjectRaw reads this node's copy of a key and its stored bytes (nil when absent).
func (n *Node) loadObjectRaw(k []byte) (version.Object, []byte, error) {
	raw, err := n.store.Get(k)
	if errors.Is(err, storage.ErrNotFound) {
		return version.Object{}, nil, nil
	}
	if err != nil {
		return version.Object{}, nil, fmt.Errorf("read %q: %w", k, err)
	}
	obj, err := version.Decode(raw)
	if err != nil {
		return version.Object{}, nil, fmt.Errorf("stored object %q: %w", k, err)
	}
	return obj, raw, nil
}

func (n *Node) checkCaps(obj version.Object) error {
	if len(obj.Siblings) > n.cfg.MaxSiblings {
		return fmt.Errorf("%w: the object would have %d siblings, the limit is %d; read it and write with its context to resolve",
			ErrTooManySiblings, len(obj.Siblings), n.cfg.MaxSiblings)
	}
	if s := obj.Size(); s > n.cfg.MaxObjectBytes {
		return fmt.Errorf("%w: the object would be %d bytes, the limit is %d", ErrTooLarge, s, n.cfg.MaxObjectBytes)
	}
	return nil
}

// applyMerge merges an incoming object into this node's copy of a key (a replica write, a
// read repair, a handoff or an anti-entropy repair). It reports whether the write was
// synced.
func (n *Node) applyMerge(bucket, key string, in version.Object, lww, sync bool) (bool, error) {
	k := dataKey(bucket, key)
	mu := n.lockFor(k)
	mu.Lock()
	defer mu.Unlock()
	local, raw, err := n.loadObjectRaw(k)
	if err != nil {
		return false, err
	}
	merged := version.Merge(local, in)
	if lww && len(merged.Siblings) > 1 {
		merged = merged.LWW()
	}
	if merged.Equal(local) && !sync {
		return false, nil
	}
	// No cap check here: the coordinator admits writes against the caps. A replica that
	// refused a merge would diverge from its peers for good, and a refused repair would
	// keep a replica stale; under concurrent blind writes an object can so end a few
	// siblings over the cap (the writes that were in flight), but never trimmed.
	if err := n.writeData(bucket, key, k, raw, merged.AppendBinary(nil), sync); err != nil {
		return false, err
	}
	return sync, nil
}

// hedgeDelay is how long a write waits for a primary before also sending to a stand-in:
// Config.HedgeDelay, but at most half of what is left of the request's deadline.
func (n *Node) hedgeDelay(ctx context.Context) time.Duration {
	d := n.cfg.HedgeDelay
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return d
}

func (n *Node) timeout(d time.Duration) time.Duration {
	if d <= 0 {
		return n.cfg.RequestTimeout
	}
	return d
}

func (n *Node) putSpec(props BucketProps, o WriteOptions) (quorum.PutSpec, error) {
	var s quorum.PutSpec
	var err error
	def := DefaultBucketProps()
	parse := func(name, v, bucketV, fallback string, min int) int {
		if err != nil {
			return 0
		}
		if v == "" {
			v = bucketV
		}
		if v == "" {
			v = fallback
		}
		var x int
		x, err = quorum.Parse(v, props.N, min, 0)
		if err != nil {
			err = fmt.Errorf("%w: %s: %v", ErrBadRequest, name, err)
		}
		return x
	}
	s.W = parse("w", o.W, string(props.W), string(def.W), 1)
	s.PW = parse("pw", o.PW, string(props.PW), string(def.PW), 0)
	s.DW = parse("dw", o.DW, string(props.DW), string(def.DW), 0)
	return s, err
}

func (n *Node) getSpec(props BucketProps, o ReadOptions) (quorum.GetSpec, error) {
	s := quorum.GetSpec{LWW: props.Conflict == "lww"}
	var err error
	def := DefaultBucketProps()
	pick := func(v, b, d string) string {
		if v != "" {
			return v
		}
		if b != "" {
			return b
		}
		return d
	}
	if s.R, err = quorum.Parse(pick(o.R, string(props.R), string(def.R)), props.N, 1, 0); err != nil {
		return s, fmt.Errorf("%w: r: %v", ErrBadRequest, err)
	}
	if s.PR, err = quorum.Parse(pick(o.PR, string(props.PR), string(def.PR)), props.N, 0, 0); err != nil {
		return s, fmt.Errorf("%w: pr: %v", ErrBadRequest, err)
	}
	if s.Repair, err = quorum.ParseRepairMode(props.ReadRepair); err != nil {
		return s, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return s, nil
}

func consistency(v, n int) string { return strconv.Itoa(v) + "of" + strconv.Itoa(n) }

// mutation is what a write changes: a value or tombstone superseding what the client's
// context has seen, or a CRDT operation applied to the coordinator's current state.
type mutation struct {
	value []byte
	tomb  bool
	ctx   string // the client's causal context (values and tombstones)
	crdt  *crdtMutation
}

// crdtMutation is a CRDT operation; replaceType lets it replace a key of another type
// (Redis SET) instead of failing with ErrWrongType.
type crdtMutation struct {
	typ         crdt.Type
	op          crdt.Op
	replaceType bool
	result      crdt.State // the coordinator's state after the operation, once applied
	before      crdt.State // and before it
}

// Put writes value under (bucket, key) superseding what o.Context has seen.
func (n *Node) Put(ctx context.Context, bucket, key string, value []byte, o WriteOptions) (string, error) {
	return n.write(ctx, bucket, key, mutation{value: value, ctx: o.Context}, o)
}

// Delete writes a tombstone under (bucket, key) superseding what o.Context has seen.
func (n *Node) Delete(ctx context.Context, bucket, key string, o WriteOptions) (string, error) {
	return n.write(ctx, bucket, key, mutation{tomb: true, ctx: o.Context}, o)
}

func (n *Node) write(ctx context.Context, bucket, key string, m mutation, o WriteOptions) (newCtx string, err error) {
	start := time.Now()
	op := "put"
	switch {
	case m.tomb:
		op = "delete"
	case m.crdt != nil:
		op = "update"
	}
	props := n.Bucket(bucket)
	spec, err := n.putSpec(props, o)
	defer func() {
		n.metrics.latency.WithLabelValues(op, consistency(spec.W, props.N)).Observe(time.Since(start).Seconds())
		n.metrics.writes.WithLabelValues(resultLabel(err)).Inc()
	}()
	if err != nil {
		return "", err
	}
	if err := n.validKey(bucket, key); err != nil {
		return "", err
	}
	if len(m.value) > n.cfg.MaxValueBytes {
		return "", fmt.Errorf("%w: value is %d bytes, the limit is %d", ErrTooLarge, len(m.value), n.cfg.MaxValueBytes)
	}
	if _, _, err := version.DecodeContext(m.ctx); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout(o.Timeout))
	defer cancel()
	rs, err := n.replicas(bucket, key, props.N)
	if err != nil {
		return "", err
	}
	if rs.isPrimary(n.cfg.ID) {
		return n.coordinatePut(ctx, bucket, key, m, spec, props, rs)
	}
	n.metrics.forwards.Inc()
	newCtx, err = n.forwardPut(ctx, bucket, key, m, o, spec, rs)
	if errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
		// No primary could be reached to coordinate: coordinate here, writing to the
		// fallbacks that stand in for the primaries (sloppy quorum). The dot is this
		// node's own, so it is as unique as any.
		return n.coordinatePut(ctx, bucket, key, m, spec, props, rs)
	}
	return newCtx, err
}

func resultLabel(err error) string {
	var qe *quorum.QuorumError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &qe):
		return "quorum_failed"
	default:
		return "error"
	}
}

// forwardPut hands the write to a primary of the key, trying those the failure detector
// sees up, in preference order, until one is reached.
func (n *Node) forwardPut(ctx context.Context, bucket, key string, m mutation, o WriteOptions, spec quorum.PutSpec, rs *replicaSet) (string, error) {
	order := make([]string, 0, len(rs.reps))
	for _, r := range rs.reps {
		if r.primary() {
			order = append(order, r.node)
		}
	}
	deadline, _ := ctx.Deadline()
	var lastErr error
	for _, to := range order {
		req := &pb.Envelope{Body: &pb.Envelope_CoordPut{CoordPut: &pb.CoordPutRequest{
			Bucket: bucket, Key: key, Value: m.value, Tombstone: m.tomb, Context: m.ctx,
			W: o.W, Pw: o.PW, Dw: o.DW, TimeoutMs: time.Until(deadline).Milliseconds(),
		}}}
		if m.crdt != nil {
			js, assign, err := encodeCRDTOp(m.crdt.op)
			if err != nil {
				return "", fmt.Errorf("encode operation: %w", err)
			}
			cp := req.GetCoordPut()
			cp.CrdtType, cp.CrdtOp, cp.Value, cp.ReplaceType = string(m.crdt.typ), js, assign, m.crdt.replaceType
		}
		resp, err := n.call(ctx, to, req)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil || !errors.Is(err, transport.ErrUnreachable) {
				// It may have been coordinated there: another attempt could apply it
				// twice (a counter would count it twice), so the outcome is unknown.
				break
			}
			continue // not sent: the write did not happen there, try the next primary
		}
		if e := resp.GetError(); e != nil {
			return "", remoteError(e.Code, e.Message)
		}
		r := resp.GetCoordPutResp()
		if r == nil {
			return "", fmt.Errorf("coordinator %s: unexpected response %T", to, resp.Body)
		}
		if r.Failed {
			return "", &quorum.QuorumError{Kind: r.Code, Required: int(r.Required), Acks: int(r.Acks)}
		}
		if m.crdt != nil && len(r.CrdtState) > 0 {
			if m.crdt.result, err = crdt.Decode(r.CrdtState); err != nil {
				return "", fmt.Errorf("coordinator %s sent a bad state: %w", to, err)
			}
			if m.crdt.before, err = crdt.Decode(r.CrdtBefore); err != nil {
				return "", fmt.Errorf("coordinator %s sent a bad state: %w", to, err)
			}
		}
		return r.Context, nil
	}
	if ctx.Err() != nil || (lastErr != nil && !errors.Is(lastErr, transport.ErrUnreachable)) {
		// The coordinator did not answer (in time); how many replicas it reached is
		// unknown here, so report none.
		return "", &quorum.QuorumError{Kind: "w", Required: spec.W, Acks: 0, Timeout: true}
	}
	if lastErr == nil {
		lastErr = errors.New("no primary is up")
	}
	return "", fmt.Errorf("%w: forwarding the write: %v", ErrUnavailable, lastErr)
}

type callResult struct {
	from string
	env  *pb.Envelope
	err  error
	kind uint8 // for reads: 0 reply, 1 repair done
}

// call sends one request and waits for its answer.
func (n *Node) call(ctx context.Context, to string, req *pb.Envelope) (*pb.Envelope, error) {
	ch := make(chan callResult, 1)
	n.tr.Call(ctx, to, req, func(e *pb.Envelope, err error) { ch <- callResult{env: e, err: err} })
	select {
	case r := <-ch:
		return r.env, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// maxContextCounter bounds the counters a client context may carry: real counters grow by
// one per write, so 2^48 is centuries away, and a forged larger one could exhaust an actor's
// counter space.
const maxContextCounter = 1 << 48

// checkContext refuses a forged context: one claiming a write of this node's actor that it
// never made, or an absurd counter.
func (n *Node) checkContext(clk version.Clock) error {
	for _, e := range clk {
		if e.Counter > maxContextCounter {
			return fmt.Errorf("%w: context counter %d for %s is out of range", ErrBadRequest, e.Counter, e.Actor)
		}
	}
	n.counterMu.Lock()
	minted := n.counter
	n.counterMu.Unlock()
	if c := clk.Get(n.actor); c > minted {
		return fmt.Errorf("%w: context names write %d of %s, which was never made", ErrBadRequest, c, n.actor)
	}
	return nil
}

// coordinatePut mints a dot, stores the new object locally (when this node is one of the
// key's replicas) and replicates it to the others, answering when the write quorum is met
// or cannot be. A primary that turns out unreachable is replaced by the next healthy node
// past the primaries, which keeps the object as a hint.
func (n *Node) coordinatePut(ctx context.Context, bucket, key string, m mutation,
	spec quorum.PutSpec, props BucketProps, rs *replicaSet) (string, error) {
	clk, ts, err := version.DecodeContext(m.ctx)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if err := n.checkContext(clk); err != nil {
		return "", err
	}
	self, selfIn := rs.find(n.cfg.ID)
	// With W=1 the coordinator's own copy may be the only one when the client hears "ok":
	// an unsynced copy is one kill -9 away from an acknowledged write lost, so it is
	// synced (group-committed with the others in flight). DW asks every counted ack to be.
	sync := spec.DW > 0
	localSync := sync || spec.W == 1

	mu := n.lockFor(dataKey(bucket, key))
	mu.Lock()
	var local version.Object
	var localRaw []byte
	if selfIn {
		local, localRaw, err = n.loadReplica(self, bucket, key)
		if err != nil {
			mu.Unlock()
			return "", err
		}
	}
	now := n.hlcNow(local.MaxTimestamp(), ts)
	c, err := n.mintCounter(local.Clock.Get(n.actor))
	if err != nil {
		mu.Unlock()
		return "", err
	}
	// The actor's entry in a key's version vector says "every dot of this actor up to here
	// is seen", which holds only if this node's copy has all the dots it minted for the
	// key: its own primary copy does. Coordinating from a hint copy or from none (sloppy
	// coordination), a dot of the node's actor could cover earlier ones the copy lacks,
	// and replicas would drop those writes as seen; a one-off actor cannot cover anything.
	// The same holds for a CRDT actor's counters.
	actor := n.actor
	if !selfIn || !self.primary() {
		actor = fmt.Sprintf("%s#%d", n.actor, c)
	}
	dot := version.Dot{Actor: actor, Counter: c}
	value, tomb := m.value, m.tomb
	if m.crdt != nil {
		// The new state folds in every local sibling, so it supersedes them all.
		value, err = applyCRDT(local, m.crdt, actor, now)
		if err != nil {
			mu.Unlock()
			return "", err
		}
		clk = local.Clock
	}
	obj := local.Update(clk, version.Sibling{Dot: dot, Value: value, Tombstone: tomb, Timestamp: now})
	if props.Conflict == "lww" && len(obj.Siblings) > 1 && m.crdt == nil {
		obj = obj.LWW()
	}
	if err := n.checkCaps(obj); err != nil {
		mu.Unlock()
		return "", err
	}
	enc := obj.AppendBinary(nil)
	if selfIn {
		err = n.storeReplica(self, bucket, key, localRaw, obj, enc, localSync)
	}
	mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("local write: %w", err)
	}

	fsm := quorum.NewPut(spec, rs.targets())
	if selfIn {
		fsm.Ack(n.cfg.ID, localSync)
	}
	results := make(chan callResult, len(rs.reps)+len(rs.spares))
	hl := n.hlcLast()
	send := func(to replica) {
		req := &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{
			Bucket: bucket, Key: key, Object: enc, Sync: sync, HlcWall: hl.Wall, HlcLogical: hl.Logical, HintFor: to.hintFor,
		}}}
		n.tr.Call(ctx, to.node, req, func(e *pb.Envelope, err error) { results <- callResult{from: to.node, env: e, err: err} })
	}
	for _, r := range rs.reps {
		if r.node != n.cfg.ID {
			send(r)
		}
	}
	stoodIn := map[string]bool{}
	standIn := func(primary string) {
		if !rs.isPrimary(primary) || stoodIn[primary] {
			return
		}
		if fb, ok := rs.nextSpare(); ok {
			stoodIn[primary] = true
			fsm.AddTarget(quorum.Target{Node: fb})
			n.metrics.fallbackWrites.Inc()
			send(replica{node: fb, hintFor: primary})
		}
	}
	handle := func(r callResult) {
		if rr := r.env.GetReplicateResp(); r.err == nil && rr != nil {
			fsm.Ack(r.from, rr.Durable)
			return
		}
		if r.err == nil {
			r.err = remoteError(r.env.GetError().GetCode(), r.env.GetError().GetMessage())
		}
		n.log.Debug("replica write failed", "replica", r.from, "err", r.err)
		// A primary that could not be reached, or whose connection broke, gets a stand-in
		// if one is left (a hint for a primary that did get the write merges as a no-op).
		if errors.Is(r.err, transport.ErrUnreachable) || errors.Is(r.err, transport.ErrLost) {
			standIn(r.from)
		}
		fsm.Fail(r.from)
	}
	// A primary that has not answered by the hedge delay (paused, overloaded, partitioned
	// one way) also gets a stand-in, while its own answer may still come: the write then
	// does not wait for the failure detector, and a hint for a primary that did get the
	// write merges into it as a no-op later.
	hedge := time.NewTimer(n.hedgeDelay(ctx))
	defer hedge.Stop()
	for fsm.Outcome() == quorum.Pending {
		select {
		case r := <-results:
			handle(r)
		case <-hedge.C:
			for _, r := range rs.reps {
				if r.primary() && fsm.Waiting(r.node) {
					standIn(r.node)
				}
			}
		case <-ctx.Done():
			fsm.Timeout()
		}
	}
	if err := fsm.Err(); err != nil {
		return "", n.settledQuorumError(ctx, fsm, err, results, handle)
	}
	// The new context covers what the client's context saw plus this write, and not
	// concurrent siblings the client has never read.
	return version.EncodeContext(clk.With(dot), now), nil
}

// loadReplica reads this node's copy of a key as replica r: its own replica (with its
// stored bytes), or the hint it keeps for the primary r stands in for.
func (n *Node) loadReplica(r replica, bucket, key string) (version.Object, []byte, error) {
	if r.primary() || r.hintFor == n.cfg.ID {
		return n.loadObjectRaw(dataKey(bucket, key))
	}
	obj, _, err := n.hints.Get(r.hintFor, bucket, key)
	if err != nil {
		return version.Object{}, nil, fmt.Errorf("read hint for %s: %w", r.hintFor, err)
	}
	return obj, nil, nil
}

// storeReplica writes obj (encoded as enc) as this node's copy for replica r. The caller
// holds the key's lock and obj already includes what was stored.
func (n *Node) storeReplica(r replica, bucket, key string, oldRaw []byte, obj version.Object, enc []byte, sync bool) error {
	if r.primary() || r.hintFor == n.cfg.ID {
		return n.writeData(bucket, key, dataKey(bucket, key), oldRaw, enc, sync)
	}
	// Always synced, whatever dw asked: see handleReplicate.
	if err := n.hints.Add(r.hintFor, bucket, key, obj, n.physMs(), true); err != nil {
		return fmt.Errorf("keep hint for %s: %w", r.hintFor, err)
	}
	n.metrics.hintsStored.Inc()
	return nil
}

// settledQuorumError waits, within the request's deadline, for the replicas still in
// flight when a write failed, and reports the acks they add. The write is not rolled back
// (it may have reached replicas), so the error says how many replicas hold it: the state
// machine fails as soon as the quorum is out of reach — one replica failing fast while
// another is still answering — and its count at that moment is an undercount.
func (n *Node) settledQuorumError(ctx context.Context, fsm *quorum.Put, err error, results chan callResult, handle func(callResult)) error {
	var qe *quorum.QuorumError
	if !errors.As(err, &qe) {
		return err
	}
	for !fsm.Settled() {
		select {
		case r := <-results:
			handle(r)
			continue
		case <-ctx.Done():
		}
		break
	}
	acks, primary, durable := fsm.Counts()
	out := *qe
	switch qe.Kind {
	case "w":
		out.Acks = acks
	case "pw":
		out.Acks = primary
	case "dw":
		out.Acks = durable
	}
	return &out
}

// Get reads (bucket, key) from the primaries, answering after R replies.
func (n *Node) Get(ctx context.Context, bucket, key string, o ReadOptions) (res ReadResult, err error) {
	obj, err := n.getObject(ctx, bucket, key, o)
	if err != nil {
		return res, err
	}
	live := obj.Live()
	res.Values = make([][]byte, len(live))
	for i, s := range live {
		res.Values[i] = s.Value
	}
	res.Found = len(live) > 0
	res.Deleted = obj.Deleted()
	if !obj.Empty() {
		res.Context = version.EncodeContext(obj.Clock, obj.MaxTimestamp())
	}
	return res, nil
}

// getObject runs a quorum read and returns the merge of the replies (Empty when no replica
// had the key).
func (n *Node) getObject(ctx context.Context, bucket, key string, o ReadOptions) (obj version.Object, err error) {
	start := time.Now()
	props := n.Bucket(bucket)
	spec, err := n.getSpec(props, o)
	defer func() {
		n.metrics.latency.WithLabelValues("get", consistency(spec.R, props.N)).Observe(time.Since(start).Seconds())
		label := resultLabel(err)
		if err == nil && len(obj.Live()) == 0 {
			label = "not_found"
		}
		n.metrics.reads.WithLabelValues(label).Inc()
	}()
	if err != nil {
		return obj, err
	}
	if err := n.validKey(bucket, key); err != nil {
		return obj, err
	}
	timeout := n.timeout(o.Timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rs, err := n.replicas(bucket, key, props.N)
	if err != nil {
		return obj, err
	}
	k := dataKey(bucket, key)
	fsm := quorum.NewGet(spec, rs.targets())
	// Room for a reply and a repair acknowledgement from every target.
	events := make(chan callResult, 2*len(rs.reps))
	for _, r := range rs.reps {
		to := r.node
		if to == n.cfg.ID {
			obj, _, err := n.loadReplica(r, bucket, key)
			if err != nil {
				n.log.Error("local read failed", "key", key, "err", err)
				fsm.Fail(to)
				continue
			}
			fsm.Reply(to, obj)
			continue
		}
		req := &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: bucket, Key: key, HintFor: r.hintFor}}}
		n.tr.Call(ctx, to, req, func(e *pb.Envelope, err error) { events <- callResult{from: to, env: e, err: err} })
	}
	d := &readDriver{n: n, fsm: fsm, events: events, bucket: bucket, key: key, k: k, lww: spec.LWW, rs: rs}
	ans := d.run(ctx, true)
	var qe *quorum.QuorumError
	if ans != nil && errors.As(ans.Err, &qe) && !qe.Timeout {
		// The quorum was ruled out before every replica answered: wait for the others
		// (within the deadline) so the error reports how many did answer, as writes do.
		if !d.done {
			d.run(ctx, false)
		}
		replies, primary := fsm.Counts()
		settled := *qe
		settled.Acks = replies
		if qe.Kind == "pr" {
			settled.Acks = primary
		}
		ans.Err = &settled
	}
	if !d.done {
		// Late replies and repairs go on without holding up the client, bounded.
		deadline := time.Now().Add(timeout)
		n.goBackground(func() {
			bctx, cancel := context.WithDeadline(n.ctx, deadline)
			defer cancel()
			d.run(bctx, false)
		})
	}
	if ans == nil {
		return obj, fmt.Errorf("read ended without an answer")
	}
	if ans.Err != nil {
		return obj, ans.Err
	}
	if ans.Stale {
		n.metrics.staleReads.Inc()
	}
	if live := len(ans.Object.Live()); live > 0 {
		n.metrics.siblings.Observe(float64(live))
	}
	return ans.Object, nil
}

// readDriver feeds a read's events to its state machine and carries out what it asks.
type readDriver struct {
	n        *Node
	fsm      *quorum.Get
	events   chan callResult
	bucket   string
	key      string
	k        []byte
	lww      bool
	rs       *replicaSet
	done     bool
	answered bool
}

// run drives until the answer (untilAnswer) or until nothing is left to wait for.
func (d *readDriver) run(ctx context.Context, untilAnswer bool) *quorum.Answer {
	var ans *quorum.Answer
	for {
		rd := d.fsm.Ready()
		d.sendRepairs(ctx, rd.Repairs)
		if rd.Answer != nil {
			ans = rd.Answer
			d.answered = true
		}
		d.done = rd.Done
		if d.done || (untilAnswer && d.answered) {
			return ans
		}
		select {
		case ev := <-d.events:
			if ev.kind == 1 {
				d.fsm.RepairDone(ev.from)
				continue
			}
			gr := ev.env.GetGetResp()
			if ev.err != nil || gr == nil {
				d.fsm.Fail(ev.from)
				continue
			}
			d.n.hlcObserve(version.HLC{Wall: gr.HlcWall, Logical: gr.HlcLogical})
			var obj version.Object
			if gr.Found {
				o, err := version.Decode(gr.Object)
				if err != nil {
					d.n.log.Error("replica sent a corrupt object", "replica", ev.from, "err", err)
					d.fsm.Fail(ev.from)
					continue
				}
				obj = o
			}
			d.fsm.Reply(ev.from, obj)
		case <-ctx.Done():
			d.fsm.Timeout()
		}
	}
}

func (d *readDriver) sendRepairs(ctx context.Context, repairs []quorum.Repair) {
	if len(repairs) == 0 {
		return
	}
	n := d.n
	for _, r := range repairs {
		if !d.rs.isPrimary(r.Node) {
			// A fallback keeps a hint only until its primary is back; repair primaries.
			d.fsm.RepairDone(r.Node)
			continue
		}
		n.metrics.readRepairs.Inc()
		enc := r.Object.AppendBinary(nil)
		if r.Node == n.cfg.ID {
			if _, err := n.applyMerge(d.bucket, d.key, r.Object, d.lww, false); err != nil {
				n.log.Error("local read repair failed", "key", d.key, "err", err)
			}
			d.fsm.RepairDone(r.Node)
			continue
		}
		to := r.Node
		hl := n.hlcLast()
		req := &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{
			Bucket: d.bucket, Key: d.key, Object: enc, HlcWall: hl.Wall, HlcLogical: hl.Logical,
		}}}
		ev := d.events
		n.tr.Call(ctx, to, req, func(*pb.Envelope, error) {
			select {
			case ev <- callResult{from: to, kind: 1}:
			default: // the reader is gone; the repair is best effort
			}
		})
	}
}

// remoteError turns an error carried over the wire back into a typed error.
func remoteError(code, msg string) error {
	switch code {
	case "bad_request":
		return fmt.Errorf("%w: %s", ErrBadRequest, msg)
	case "too_large":
		return fmt.Errorf("%w: %s", ErrTooLarge, msg)
	case "too_many_siblings":
		return fmt.Errorf("%w: %s", ErrTooManySiblings, msg)
	case "unavailable":
		return fmt.Errorf("%w: %s", ErrUnavailable, msg)
	case "wrong_type":
		return fmt.Errorf("%w: %s", ErrWrongType, msg)
	}
	return errors.New(msg)
}

// ErrorCode is the contract's machine code for err.
func ErrorCode(err error) string {
	var qe *quorum.QuorumError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &qe):
		return "quorum_failed"
	case errors.Is(err, ErrBadRequest):
		return "bad_request"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrTooManySiblings):
		return "too_many_siblings"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrWrongType):
		return "wrong_type"
	}
	return "internal"
}
