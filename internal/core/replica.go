package core

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// PrefixData starts every data key in the store.
const PrefixData = "d"

// DataKey is the store key of (bucket, key): "d", the top 32 bits of the key's ring hash
// (big-endian), the bucket, a NUL and the key. Leading with the hash sorts the store by
// partition and then by hash-tree segment (both are leading bits of that hash, whatever
// the number of partitions), so one partition, or one segment of its tree, is one range
// scan. Bucket names hold no NUL, so the key is unambiguous.
func DataKey(bucket, key string) []byte {
	b := make([]byte, 0, len(PrefixData)+4+len(bucket)+1+len(key))
	b = append(b, PrefixData...)
	b = binary.BigEndian.AppendUint32(b, uint32(ring.KeyHash(bucket, key)>>32))
	b = append(b, bucket...)
	b = append(b, 0)
	return append(b, key...)
}

// scratchKey is DataKey in the core's own buffer, for a write's read and store: valid
// until the next call, which the caller must not make while it still uses the key.
func (c *Core) scratchKey(bucket, key string) []byte {
	b := append(c.keyBuf[:0], PrefixData...)
	b = binary.BigEndian.AppendUint32(b, uint32(ring.KeyHash(bucket, key)>>32))
	b = append(b, bucket...)
	b = append(b, 0)
	c.keyBuf = append(b, key...)
	return c.keyBuf
}

// ParseDataKey splits a store key made by DataKey.
func ParseDataKey(k []byte) (bucket, key string, ok bool) {
	if len(k) < len(PrefixData)+4+2 || string(k[:len(PrefixData)]) != PrefixData {
		return "", "", false
	}
	rest := k[len(PrefixData)+4:]
	i := bytes.IndexByte(rest, 0)
	if i <= 0 || i == len(rest)-1 {
		return "", "", false
	}
	return string(rest[:i]), string(rest[i+1:]), true
}

// ValidBucket checks a bucket name.
func ValidBucket(b string) error {
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

// ValidKey checks a bucket and key against the limits of cfg.
func (cfg Config) ValidKey(bucket, key string) error {
	if err := ValidBucket(bucket); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrBadRequest)
	}
	if len(key) > cfg.MaxKeyBytes {
		return fmt.Errorf("%w: key is %d bytes, the limit is %d", ErrTooLarge, len(key), cfg.MaxKeyBytes)
	}
	if !utf8.ValidString(key) {
		// Internode messages carry keys as protobuf strings, which must be UTF-8: such a
		// key could be stored on this node and then fail on the way to every other.
		return fmt.Errorf("%w: key is not valid UTF-8", ErrBadRequest)
	}
	return nil
}

func (c *Core) validKey(bucket, key string) error { return c.cfg.ValidKey(bucket, key) }

// loadRaw reads this node's copy of a key and its stored bytes (nil when absent).
func (c *Core) loadRaw(k []byte) (version.Object, []byte, error) {
	raw, err := c.deps.Store.Get(k)
	if errors.Is(err, storage.ErrNotFound) {
		return version.Object{}, nil, nil
	}
	if err != nil {
		return version.Object{}, nil, fmt.Errorf("read %q: %w", k, err)
	}
	obj, err := version.DecodeInterned(raw, &c.intern)
	if err != nil {
		return version.Object{}, nil, fmt.Errorf("stored object %q: %w", k, err)
	}
	return obj, raw, nil
}

// writeData is the one way data keys are written: the store write and the tree update
// together. newRaw nil deletes. oldRaw is what the key held (nil: nothing). durable asks
// for the write to be synced before this turn's Ready leaves.
func (c *Core) writeData(bucket, key string, k, oldRaw, newRaw []byte, durable bool) error {
	return c.storeData(bucket, key, k, oldRaw, newRaw, durable, false)
}

// storeData is writeData; drop says the write deletes a copy this node no longer
// replicates (ownership cleanup), which is not a reaped tombstone (Deps.OnDrop).
func (c *Core) storeData(bucket, key string, k, oldRaw, newRaw []byte, durable, drop bool) error {
	if c.cfg.Shards > 1 {
		if lo, hi := c.dataRange(); bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
			// The driver routed a key to the wrong shard: two shards writing one key would
			// race. A bug, refused rather than risked.
			return fmt.Errorf("core: key %s/%s is not shard %d's", bucket, key, c.cfg.Shard)
		}
	}
	var err error
	if newRaw == nil {
		err = c.deps.Store.Delete(k, storage.WriteOptions{})
	} else {
		err = c.deps.Store.Put(k, newRaw, storage.WriteOptions{})
	}
	if err != nil {
		return fmt.Errorf("write %q: %w", k, err)
	}
	if c.trees != nil {
		c.trees.update(bucket, key, c.deps.Buckets.Bucket(bucket).N, oldRaw, newRaw)
	}
	switch {
	case drop:
		if c.deps.OnDrop != nil {
			c.deps.OnDrop(bucket, key)
		}
	case c.deps.OnWrite != nil:
		c.deps.OnWrite(bucket, key, newRaw)
	}
	if durable {
		c.ready.Sync = true
	}
	return nil
}

// Reap removes a tombstone if the key still holds exactly raw (the driver checked that
// every primary holds it and its grace has passed). It reports whether it did.
func (c *Core) Reap(bucket, key string, raw []byte) (bool, error) {
	k := DataKey(bucket, key)
	_, now, err := c.loadRaw(k)
	if err != nil || !bytes.Equal(now, raw) {
		return false, err
	}
	return true, c.writeData(bucket, key, k, raw, nil, false)
}

func (c *Core) checkCaps(obj version.Object) error {
	if len(obj.Siblings) > c.cfg.MaxSiblings {
		return fmt.Errorf("%w: the object would have %d siblings, the limit is %d; read it and write with its context to resolve",
			ErrTooManySiblings, len(obj.Siblings), c.cfg.MaxSiblings)
	}
	if s := obj.Size(); s > c.cfg.MaxObjectBytes {
		return fmt.Errorf("%w: the object would be %d bytes, the limit is %d", ErrTooLarge, s, c.cfg.MaxObjectBytes)
	}
	return nil
}

// applyMerge merges an incoming object into this node's copy of a key (a replica write, a
// read repair, a handoff or an anti-entropy repair). It reports whether the write must be
// synced.
func (c *Core) applyMerge(bucket, key string, in version.Object, lww, durable bool) (bool, error) {
	return c.mergeRaw(bucket, key, in, nil, lww, durable)
}

// mergeRaw is applyMerge given in's encoding too (nil if the caller has none): when the
// merge is in itself (a write that saw this copy, the common case of a replica write),
// those bytes are stored as they are rather than encoded anew.
func (c *Core) mergeRaw(bucket, key string, in version.Object, inRaw []byte, lww, durable bool) (bool, error) {
	k := c.scratchKey(bucket, key)
	local, raw, err := c.loadRaw(k)
	if err != nil {
		return false, err
	}
	merged := version.Merge(local, in)
	if lww && len(merged.Siblings) > 1 {
		merged = merged.LWW()
	}
	if raw != nil && (version.Shares(merged, local) || merged.Equal(local)) {
		if durable {
			c.ready.Sync = true // what it holds may not be synced yet
		}
		return durable, nil
	}
	enc := inRaw
	if enc == nil || !version.Shares(merged, in) {
		enc = merged.AppendBinary(nil)
	}
	// No cap check here: the coordinator admits writes against the caps. A replica that
	// refused a merge would diverge from its peers for good, and a refused repair would
	// keep a replica stale; under concurrent blind writes an object can so end a few
	// siblings over the cap (the writes that were in flight), but never trimmed.
	if err := c.writeData(bucket, key, k, raw, enc, durable); err != nil {
		return false, err
	}
	return durable, nil
}

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
	other     []string // the other ring's replicas while a change is pending (otherReplicas)
	pending   []string // those of them not among primaries (pendingOwners): written to, never counted

	// Room for the usual N (3) and the walk of a small ring, so that a request's replica
	// set is one allocation.
	primBuf [3]string
	repBuf  [3]replica
	tgtBuf  [3]quorum.Target
	walkBuf [8]ring.NodeID
}

// ReplicaSet describes a key's replicas as this node sees them now.
type ReplicaSet struct {
	Partition int
	Primaries []string
	// Fallbacks stand in for down primaries: Fallbacks[i] keeps hints for HintFor[i].
	Fallbacks, HintFor []string
}

// Replicas computes a key's replica set now (GET /v1/admin/endpoints).
func (c *Core) Replicas(bucket, key string) (ReplicaSet, error) {
	rs, err := c.replicas(bucket, key, c.deps.Buckets.Bucket(bucket).N)
	if err != nil {
		return ReplicaSet{}, err
	}
	out := ReplicaSet{Partition: rs.partition, Primaries: rs.primaries}
	for _, r := range rs.reps {
		if !r.primary() {
			out.Fallbacks = append(out.Fallbacks, r.node)
			out.HintFor = append(out.HintFor, r.hintFor)
		}
	}
	return out, nil
}

// replicas computes a key's replica set now: each primary the failure detector sees up,
// and for each one it sees down, the next healthy node past the primaries on the ring
// (Dynamo's sloppy quorum; with no healthy node left the down primary is tried anyway).
func (c *Core) replicas(bucket, key string, nrep int) (*replicaSet, error) {
	if c.view.Ring == nil {
		return nil, fmt.Errorf("%w: the ring has no members yet", ErrUnavailable)
	}
	p := PartitionOf(bucket, key, c.cfg.Partitions)
	rs := &replicaSet{partition: p}
	r := c.ringFor(p)
	walk := r.AppendPreference(rs.walkBuf[:0], p, r.Size())
	k := min(nrep, len(walk))
	if k <= len(rs.primBuf) {
		rs.primaries, rs.reps = rs.primBuf[:k], rs.repBuf[:0:k]
	} else {
		rs.primaries, rs.reps = make([]string, k), make([]replica, 0, k)
	}
	for _, id := range walk[k:] {
		if c.alive(string(id)) {
			rs.spares = append(rs.spares, string(id))
		}
	}
	for i, id := range walk[:k] {
		rs.primaries[i] = string(id)
		if c.alive(string(id)) {
			rs.reps = append(rs.reps, replica{node: string(id)})
			continue
		}
		if fb, ok := rs.nextSpare(); ok {
			rs.reps = append(rs.reps, replica{node: fb, hintFor: string(id)})
			continue
		}
		rs.reps = append(rs.reps, replica{node: string(id)})
	}
	rs.other = c.otherReplicas(p, k)
	rs.pending = c.pendingOwners(rs.other, rs.primaries)
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
	var ts []quorum.Target
	if n := len(rs.reps); n <= len(rs.tgtBuf) {
		ts = rs.tgtBuf[:n:n] // capped: an append (a stand-in added later) copies
	} else {
		ts = make([]quorum.Target, n)
	}
	for i, r := range rs.reps {
		ts[i] = quorum.Target{Node: r.node, Primary: r.primary()}
	}
	return ts
}

// loadReplica reads this node's copy of a key as replica r: its own replica (with its
// stored bytes), or the hint it keeps for the primary r stands in for.
func (c *Core) loadReplica(r replica, bucket, key string, k []byte) (version.Object, []byte, error) {
	if r.primary() || r.hintFor == c.cfg.ID {
		return c.loadRaw(k)
	}
	obj, _, err := c.deps.Hints.Get(r.hintFor, bucket, key)
	if err != nil {
		return version.Object{}, nil, fmt.Errorf("read hint for %s: %w", r.hintFor, err)
	}
	return obj, nil, nil
}

// storeReplica writes obj (encoded as enc) as this node's copy for replica r (under data
// key k when it is not a hint). obj already includes what was stored.
func (c *Core) storeReplica(r replica, bucket, key string, k, oldRaw []byte, obj version.Object, enc []byte, durable bool) error {
	if r.primary() || r.hintFor == c.cfg.ID {
		return c.writeData(bucket, key, k, oldRaw, enc, durable)
	}
	return c.keepHint(r.hintFor, bucket, key, obj)
}

// keepHint keeps obj as a hint for primary. Always synced, whatever dw asked: a hint may
// be the only copy its primary will ever get, and it must survive a kill -9 of this node.
func (c *Core) keepHint(primary, bucket, key string, obj version.Object) error {
	if err := c.deps.Hints.Add(primary, bucket, key, obj, c.now.Wall, false); err != nil {
		return fmt.Errorf("keep hint for %s: %w", primary, err)
	}
	c.ready.Sync = true
	c.count(CountHintStored, 1)
	return nil
}

// Local reads this node's own copy of a key, or when it has none, a hint it keeps for one
// of the key's primaries (whose name it returns).
func (c *Core) Local(bucket, key string) (obj version.Object, hintedFor string, err error) {
	if err := c.validKey(bucket, key); err != nil {
		return obj, "", err
	}
	obj, _, err = c.loadRaw(DataKey(bucket, key))
	if err != nil || !obj.Empty() {
		return obj, "", err
	}
	rs, err := c.replicas(bucket, key, c.deps.Buckets.Bucket(bucket).N)
	if err != nil {
		return obj, "", err
	}
	for _, p := range rs.primaries {
		if p == c.cfg.ID {
			continue
		}
		h, found, err := c.deps.Hints.Get(p, bucket, key)
		if err != nil {
			return obj, "", fmt.Errorf("read hint for %s: %w", p, err)
		}
		if found {
			return h, p, nil
		}
	}
	return obj, "", nil
}

// PastGCGrace reports whether every sibling of obj died (was written as a tombstone, or
// expired) more than the bucket's gc_grace before wallMs.
func PastGCGrace(obj version.Object, props BucketProps, wallMs int64) bool {
	return obj.DiedAt() < wallMs-props.GCGraceS*1000
}

// ErrorEnvelope carries err over the wire.
func ErrorEnvelope(err error) *pb.Envelope {
	return &pb.Envelope{Body: &pb.Envelope_Error{Error: &pb.Error{Message: err.Error(), Code: string(ErrorCode(err)), Cause: string(ErrorCause(err))}}}
}

func (c *Core) answer(to string, id uint64, env *pb.Envelope) {
	c.ready.Answers = append(c.ready.Answers, Answer{To: to, ID: id, Env: env})
}

// peerRequest serves a request from another node.
func (c *Core) peerRequest(r PeerRequest) {
	switch b := r.Env.Body.(type) {
	case *pb.Envelope_Get:
		c.answer(r.From, r.ID, c.handleGet(b.Get))
	case *pb.Envelope_Replicate:
		c.answer(r.From, r.ID, c.handleReplicate(r.From, b.Replicate))
	case *pb.Envelope_CoordPut:
		c.handleCoordPut(r.From, r.ID, b.CoordPut)
	case *pb.Envelope_Handoff:
		c.answer(r.From, r.ID, c.handleHandoff(b.Handoff))
	case *pb.Envelope_Tree:
		c.answer(r.From, r.ID, c.handleTree(b.Tree))
	case *pb.Envelope_TreeKeys:
		c.answer(r.From, r.ID, c.handleTreeKeys(b.TreeKeys))
	case *pb.Envelope_Transfer:
		c.answer(r.From, r.ID, c.handleTransfer(b.Transfer))
	case *pb.Envelope_ListKeys:
		c.answer(r.From, r.ID, c.handleListKeys(b.ListKeys))
	default:
		c.answer(r.From, r.ID, ErrorEnvelope(fmt.Errorf("%w: unknown internode request %T from %s", ErrBadRequest, r.Env.Body, r.From)))
	}
}

func (c *Core) handleGet(r *pb.GetRequest) *pb.Envelope {
	if err := c.validKey(r.Bucket, r.Key); err != nil {
		return ErrorEnvelope(err)
	}
	hl := c.hlc.Last()
	env, resp := newGetResp()
	resp.HlcWall, resp.HlcLogical = hl.Wall, hl.Logical
	if r.HintFor != "" && r.HintFor != c.cfg.ID {
		obj, found, err := c.deps.Hints.Get(r.HintFor, r.Bucket, r.Key)
		if err != nil {
			return ErrorEnvelope(fmt.Errorf("read hint: %w", err))
		}
		if found {
			resp.Found, resp.Object = true, obj.AppendBinary(nil)
		}
		return env
	}
	raw, err := c.deps.Store.Get(DataKey(r.Bucket, r.Key))
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return ErrorEnvelope(fmt.Errorf("read: %w", err))
	default:
		resp.Found, resp.Object = true, raw
	}
	return env
}

func (c *Core) handleReplicate(from string, r *pb.ReplicateRequest) *pb.Envelope {
	if err := c.validKey(r.Bucket, r.Key); err != nil {
		return ErrorEnvelope(err)
	}
	if from == c.cfg.ID && len(r.Object) == 0 && r.HintFor == "" {
		// The coordinator's message to itself: its copy is stored already (coordinate);
		// what remains is the ack, durable once this turn's sync is done.
		if r.Sync {
			c.ready.Sync = true
		}
		return replicateAck(r.Sync)
	}
	c.hlcObserve(version.HLC{Wall: r.HlcWall, Logical: r.HlcLogical})
	obj, err := version.DecodeInterned(r.Object, &c.intern)
	if err != nil {
		return ErrorEnvelope(fmt.Errorf("%w: replicate %s/%s: %w", ErrBadRequest, r.Bucket, r.Key, err))
	}
	if r.HintFor != "" && r.HintFor != c.cfg.ID {
		if err := c.keepHint(r.HintFor, r.Bucket, r.Key, obj); err != nil {
			return ErrorEnvelope(err)
		}
		return replicateAck(true)
	}
	durable, err := c.mergeRaw(r.Bucket, r.Key, obj, r.Object, c.deps.Buckets.Bucket(r.Bucket).LWW(), r.Sync)
	if err != nil {
		return ErrorEnvelope(err)
	}
	return replicateAck(durable)
}

// WriteRaw replaces this node's copy of a key with raw (an encoded object; nil deletes),
// keeping the hash trees in step, whatever was there: for tests and tools that need a
// replica in a given state, never for the protocol (which only merges).
func (c *Core) WriteRaw(bucket, key string, raw []byte) error {
	k := DataKey(bucket, key)
	_, old, err := c.loadRaw(k)
	if err != nil {
		return err
	}
	return c.writeData(bucket, key, k, old, raw, false)
}

// ringTooSmall explains a quorum that fewer nodes than n can never meet.
func ringTooSmall(bucket string, n, replicas int, kind string, need int) error {
	return fmt.Errorf("%w: %s=%d can never be met: bucket %q has n=%d but the ring has %d node(s); lower the bucket's n or the request's %s, or add nodes",
		ErrUnavailable, kind, need, bucket, n, replicas, kind)
}
