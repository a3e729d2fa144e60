package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/version"
)

// CRDT keys: the value of each DVV sibling is an encoded CRDT state. A coordinator folds its
// local siblings into one state (Merge), applies the operation with its actor, and writes
// the result superseding every sibling it folded; concurrent updates on other coordinators
// stay siblings until a reader or the next coordinator folds them. Merging is a join, so no
// acknowledged operation is ever lost, whichever replicas it reached.

// ErrWrongType reports an operation on a key holding another data type (Redis WRONGTYPE).
var ErrWrongType = errors.New("wrong type")

// FoldCRDT merges the live siblings of a CRDT object into one state (crdt.Fold).
func FoldCRDT(obj version.Object) (crdt.State, bool, error) { return crdt.Fold(obj) }

// applyCRDT computes the new encoded state of a key from the coordinator's local copy, and
// keeps the new state in m.result.
func applyCRDT(local version.Object, m *crdtMutation, actor string, now version.HLC) ([]byte, error) {
	cur, found, err := FoldCRDT(local)
	if err != nil {
		return nil, err
	}
	switch {
	case !found:
		cur = crdt.New(m.typ)
	case cur.Type() != m.typ && m.replaceType:
		cur = crdt.New(m.typ)
	case cur.Type() != m.typ:
		return nil, fmt.Errorf("%w: the key holds a %s, not a %s", ErrWrongType, cur.Type(), m.typ)
	}
	next, err := crdt.Apply(cur, m.op, actor, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	m.before, m.result = cur, next
	return next.Encode(), nil
}

// parseCRDTMutation rebuilds a forwarded operation (see encodeCRDTOp).
func parseCRDTMutation(typ string, js, assign []byte, replace bool) (*crdtMutation, error) {
	t, err := crdt.ParseType(typ)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	op, err := crdt.ParseOp(t, js)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if op.Assign != nil {
		v := string(assign)
		op.Assign = &v
	}
	return &crdtMutation{typ: t, op: op, replaceType: replace}, nil
}

// UpdateCRDT applies a CRDT operation of data type typ to (bucket, key), coordinated like a
// write: W acks, sloppy quorum, hints. replaceType lets it replace a key of another type
// (Redis SET) instead of failing with ErrWrongType. It returns the coordinator's state
// before and after the operation: its own view, which concurrent operations elsewhere may
// not have reached yet (before is a fresh state when the key held nothing, or another type
// that was replaced).
func (n *Node) UpdateCRDT(ctx context.Context, bucket, key string, typ crdt.Type, op crdt.Op, replaceType bool, o WriteOptions) (before, after crdt.State, err error) {
	m := &crdtMutation{typ: typ, op: op, replaceType: replaceType}
	if _, err := n.write(ctx, bucket, key, mutation{crdt: m}, o); err != nil {
		return crdt.State{}, crdt.State{}, err
	}
	return m.before, m.result, nil
}

// encodeCRDTOp is the forwarded form of an operation: JSON, except that a register's value
// travels as raw bytes beside it (JSON strings must be UTF-8; values are any bytes).
func encodeCRDTOp(op crdt.Op) (js, assign []byte, err error) {
	if op.Assign != nil {
		assign = []byte(*op.Assign)
		empty := ""
		op.Assign = &empty
	}
	js, err = json.Marshal(op)
	return js, assign, err
}

// CRDTResult is a CRDT read's answer.
type CRDTResult struct {
	State   crdt.State
	Found   bool
	Context string // the DVV context of what was read (for deleting the key)
}

// GetCRDT reads (bucket, key) as a CRDT: a quorum read whose siblings are folded together.
func (n *Node) GetCRDT(ctx context.Context, bucket, key string, o ReadOptions) (CRDTResult, error) {
	obj, err := n.getObject(ctx, bucket, key, o)
	if err != nil {
		return CRDTResult{}, err
	}
	s, found, err := FoldCRDT(obj)
	if err != nil {
		return CRDTResult{}, err
	}
	res := CRDTResult{State: s, Found: found}
	if !obj.Empty() {
		res.Context = version.EncodeContext(obj.Clock, obj.MaxTimestamp())
	}
	return res, nil
}
