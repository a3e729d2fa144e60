package node

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/quorum"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Errors returned by the client-facing operations; the HTTP layer maps them to statuses.
var (
	ErrBadRequest         = core.ErrBadRequest
	ErrTooLarge           = core.ErrTooLarge
	ErrTooManySiblings    = core.ErrTooManySiblings
	ErrUnavailable        = core.ErrUnavailable
	ErrWrongType          = core.ErrWrongType
	ErrNotFound           = core.ErrNotFound
	ErrPreconditionFailed = core.ErrPreconditionFailed
)

// WriteOptions are a put's or delete's per-request settings; empty strings take the
// bucket's defaults.
type WriteOptions = core.WriteOptions

// ReadOptions are a get's per-request settings.
type ReadOptions = core.ReadOptions

// ReadResult is a read's answer.
type ReadResult struct {
	Values  [][]byte // live sibling values (more than one: concurrent writes)
	Context string   // causal context to pass to the next write
	Found   bool     // at least one live value
	Deleted bool     // only tombstones were found
	// ContentTypes and Metas describe Values, index by index ("" and nil: none given).
	ContentTypes []string
	Metas        [][]version.MetaEntry
	// Expires gives each value's expiry (Unix ms, 0: none); At is the time the read judged
	// expiry at, so Expires[i]-At is what is left of value i's life.
	Expires []int64
	At      int64
}

// ErrorCode is the contract's machine code for err.
func ErrorCode(err error) string { return string(core.ErrorCode(err)) }

func consistency(v, n int) string {
	if v >= 0 && n >= 0 && v < len(consistencyLabels) && n < len(consistencyLabels) {
		return consistencyLabels[v][n]
	}
	return strconv.Itoa(v) + "of" + strconv.Itoa(n)
}

// consistencyLabels are the labels of every v and n up to the largest N (16), made once
// rather than on every request.
var consistencyLabels = func() (l [17][17]string) {
	for v := range l {
		for n := range l[v] {
			l[v][n] = strconv.Itoa(v) + "of" + strconv.Itoa(n)
		}
	}
	return l
}()

// quorumOf is the label of a request's consistency for the latency histogram.
func quorumOf(v string, def core.Quorum, n int) string {
	if v == "" {
		v = string(def)
	}
	x, err := quorum.Parse(v, n, 0, 0)
	if err != nil {
		return "invalid"
	}
	return consistency(x, n)
}

func resultLabel(err error) string {
	switch {
	case err == nil: // first, and without errors.As, whose target would escape on every call
		return "ok"
	case isQuorumError(err):
		return "quorum_failed"
	default:
		return "error"
	}
}

func isQuorumError(err error) bool {
	var qe *quorum.QuorumError
	return errors.As(err, &qe)
}

// write runs a put, delete or CRDT operation through the core.
func (n *Node) write(ctx context.Context, req core.ClientRequest) (core.Reply, error) {
	start := time.Now()
	props := n.Bucket(req.Bucket)
	r, err := n.loopFor(req.Bucket, req.Key).request(ctx, req)
	n.metrics.latency.WithLabelValues(req.Op.String(), quorumOf(req.Write.W, props.W, props.N)).Observe(time.Since(start).Seconds())
	n.metrics.writes.WithLabelValues(resultLabel(err)).Inc()
	return r, err
}

// Put writes value under (bucket, key) superseding what o.Context has seen.
func (n *Node) Put(ctx context.Context, bucket, key string, value []byte, o WriteOptions) (string, error) {
	r, err := n.write(ctx, core.ClientRequest{Op: core.OpPut, Bucket: bucket, Key: key, Value: value, Write: o})
	return r.Context, err
}

// Delete writes a tombstone under (bucket, key) superseding what o.Context has seen.
func (n *Node) Delete(ctx context.Context, bucket, key string, o WriteOptions) (string, error) {
	r, err := n.write(ctx, core.ClientRequest{Op: core.OpDelete, Bucket: bucket, Key: key, Write: o})
	return r.Context, err
}

// UpdateCRDT applies a CRDT operation of data type typ to (bucket, key), coordinated like a
// write: W acks, sloppy quorum, hints. replaceType lets it replace a key of another type
// (Redis SET) instead of failing with ErrWrongType. It returns the coordinator's state
// before and after the operation: its own view, which concurrent operations elsewhere may
// not have reached yet (before is a fresh state when the key held nothing, or another type
// that was replaced).
func (n *Node) UpdateCRDT(ctx context.Context, bucket, key string, typ crdt.Type, op crdt.Op, replaceType bool, o WriteOptions) (before, after crdt.State, err error) {
	r, err := n.crdtWrite(ctx, bucket, key, &core.CRDTOp{Type: typ, Op: op, ReplaceType: replaceType}, o)
	if err != nil {
		return crdt.State{}, crdt.State{}, err
	}
	if len(r.After) > 0 {
		if after, err = crdt.Decode(r.After); err != nil {
			return crdt.State{}, crdt.State{}, fmt.Errorf("coordinator sent a bad state: %w", err)
		}
		if before, err = crdt.Decode(r.Before); err != nil {
			return crdt.State{}, crdt.State{}, fmt.Errorf("coordinator sent a bad state: %w", err)
		}
	}
	return before, after, nil
}

// ApplyCRDT is UpdateCRDT for a caller that needs neither state nor the new context
// (Redis SET): the coordinator spares encoding them, and this node decoding them.
func (n *Node) ApplyCRDT(ctx context.Context, bucket, key string, typ crdt.Type, op crdt.Op, replaceType bool, o WriteOptions) error {
	_, err := n.crdtWrite(ctx, bucket, key, &core.CRDTOp{Type: typ, Op: op, ReplaceType: replaceType, Blind: true}, o)
	return err
}

func (n *Node) crdtWrite(ctx context.Context, bucket, key string, op *core.CRDTOp, o WriteOptions) (core.Reply, error) {
	return n.write(ctx, core.ClientRequest{Op: core.OpCRDT, Bucket: bucket, Key: key, Write: o, CRDT: op})
}

// TouchCRDT rewrites a CRDT key's state with a new expiry (o.Expiry: a TTL, or none),
// changing nothing else (Redis EXPIRE, PERSIST). It fails with ErrNotFound when the
// coordinator's copy holds no live state.
func (n *Node) TouchCRDT(ctx context.Context, bucket, key string, typ crdt.Type, o WriteOptions) error {
	_, err := n.write(ctx, core.ClientRequest{Op: core.OpCRDT, Bucket: bucket, Key: key, Write: o,
		CRDT: &core.CRDTOp{Type: typ, Touch: true, Blind: true}})
	return err
}

// Get reads (bucket, key) from the primaries, answering after R replies.
func (n *Node) Get(ctx context.Context, bucket, key string, o ReadOptions) (res ReadResult, err error) {
	obj, at, err := n.getObjectAt(ctx, bucket, key, o)
	if err != nil {
		return res, err
	}
	live := obj.Live()
	res.Values = make([][]byte, len(live))
	res.ContentTypes = make([]string, len(live))
	res.Metas = make([][]version.MetaEntry, len(live))
	res.Expires = make([]int64, len(live))
	res.At = at
	for i, s := range live {
		res.Values[i], res.ContentTypes[i], res.Metas[i], res.Expires[i] = s.Value, s.ContentType, s.Meta, s.Expires
	}
	res.Found = len(live) > 0
	res.Deleted = obj.Deleted()
	if !obj.Empty() {
		res.Context = version.EncodeContext(obj.Clock, obj.MaxTimestamp())
	}
	return res, nil
}

// getObject runs a quorum read and returns the merge of the replies (Empty when no replica
// had the key; expired values left out).
func (n *Node) getObject(ctx context.Context, bucket, key string, o ReadOptions) (version.Object, error) {
	obj, _, err := n.getObjectAt(ctx, bucket, key, o)
	return obj, err
}

// getObjectAt is getObject, with the time the read judged expiry at.
func (n *Node) getObjectAt(ctx context.Context, bucket, key string, o ReadOptions) (version.Object, int64, error) {
	start := time.Now()
	props := n.Bucket(bucket)
	r, err := n.loopFor(bucket, key).request(ctx, core.ClientRequest{Op: core.OpGet, Bucket: bucket, Key: key, Read: o})
	n.metrics.latency.WithLabelValues("get", quorumOf(o.R, props.R, props.N)).Observe(time.Since(start).Seconds())
	label := resultLabel(err)
	if err == nil && len(r.Object.Live()) == 0 {
		label = "not_found"
	}
	n.metrics.reads.WithLabelValues(label).Inc()
	return r.Object, r.At, err
}

// FoldCRDT merges the live siblings of a CRDT object into one state (crdt.Fold).
func FoldCRDT(obj version.Object) (crdt.State, bool, error) { return crdt.Fold(obj) }

// CRDTResult is a CRDT read's answer.
type CRDTResult struct {
	State   crdt.State
	Found   bool
	Context string // the DVV context of what was read (for deleting the key)
	// Expires is the key's expiry (Unix ms, 0: none; core.KeyExpiry), At the time the read
	// judged expiry at: Expires-At is the key's time to live.
	Expires, At int64
}

// GetCRDT reads (bucket, key) as a CRDT: a quorum read whose siblings are folded together.
func (n *Node) GetCRDT(ctx context.Context, bucket, key string, o ReadOptions) (CRDTResult, error) {
	return n.getCRDT(ctx, bucket, key, o, true)
}

// GetCRDTState is GetCRDT without the causal context (Context is ""), for a reader that
// answers what it read and writes nothing back (a Redis GET): the context's encoding was
// about a tenth of a quorum read's allocations.
func (n *Node) GetCRDTState(ctx context.Context, bucket, key string, o ReadOptions) (CRDTResult, error) {
	return n.getCRDT(ctx, bucket, key, o, false)
}

func (n *Node) getCRDT(ctx context.Context, bucket, key string, o ReadOptions, withContext bool) (CRDTResult, error) {
	obj, at, err := n.getObjectAt(ctx, bucket, key, o)
	if err != nil {
		return CRDTResult{}, err
	}
	s, found, err := FoldCRDT(obj)
	if err != nil {
		// Plain values under a bucket whose type changed: the wrong type, not a fault.
		return CRDTResult{}, fmt.Errorf("%w: the key holds plain values, not a CRDT state (%w)", ErrWrongType, err)
	}
	res := CRDTResult{State: s, Found: found, At: at}
	if found {
		res.Expires = core.KeyExpiry(obj)
	}
	if withContext && !obj.Empty() {
		res.Context = version.EncodeContext(obj.Clock, obj.MaxTimestamp())
	}
	return res, nil
}

// validKey checks a bucket and key against this node's limits.
func (n *Node) validKey(bucket, key string) error { return n.coreCfg.ValidKey(bucket, key) }

// loadObjectRaw reads this node's copy of a key and its stored bytes (nil when absent).
// The store is safe to read from any goroutine; writes go through the loop.
func (n *Node) loadObjectRaw(k []byte) (version.Object, []byte, error) {
	raw, err := n.store.Get(k)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return version.Object{}, nil, nil
		}
		return version.Object{}, nil, fmt.Errorf("read %q: %w", k, err)
	}
	obj, err := version.Decode(raw)
	if err != nil {
		return version.Object{}, nil, fmt.Errorf("stored object %q: %w", k, err)
	}
	return obj, raw, nil
}

func (n *Node) loadObject(k []byte) (version.Object, error) {
	obj, _, err := n.loadObjectRaw(k)
	return obj, err
}

func dataKey(bucket, key string) []byte { return core.DataKey(bucket, key) }
