package core

import (
	"fmt"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// The forwarded form of a CRDT operation: a write forwarded to a primary
// (pb.CoordPutRequest) carries its crdt.Op as a pb.CrdtOp, whose members, field names,
// register values and context are bytes, so a Redis set member or hash field or value that
// is not UTF-8 arrives exactly as it left. Map field operations travel sorted by name:
// map iteration order never reaches the wire.

// EncodeCRDTOp is the forwarded form of op. It is total: any op encodes, and the
// coordinator validates what it decodes.
func EncodeCRDTOp(op crdt.Op) *pb.CrdtOp {
	out := &pb.CrdtOp{Increment: op.Increment, Enable: op.Enable}
	if op.Assign != nil {
		out.Assign = append(make([]byte, 0, len(*op.Assign)), *op.Assign...) // non-nil: present, even when empty
	}
	out.Add = stringsToBytes(op.Add)
	out.Remove = stringsToBytes(op.Remove)
	if op.Context != "" {
		out.Context = []byte(op.Context)
	}
	if len(op.Update) > 0 {
		names := make([]string, 0, len(op.Update))
		for name := range op.Update {
			names = append(names, name)
		}
		slices.Sort(names)
		out.Update = make([]*pb.CrdtFieldOp, len(names))
		for i, name := range names {
			f := op.Update[name]
			out.Update[i] = &pb.CrdtFieldOp{Name: []byte(name), Type: string(f.Type), Replace: f.Replace, Op: EncodeCRDTOp(f.Op)}
		}
	}
	return out
}

// DecodeCRDTOp rebuilds a forwarded operation on a key of type typ: the inverse of
// EncodeCRDTOp, refusing (ErrBadRequest) a type it does not know, map fields named twice or
// out of order, a field without an operation, nesting deeper than crdt.MaxDepth, and any op
// that crdt.Op.Validate refuses for typ.
func DecodeCRDTOp(typ string, m *pb.CrdtOp, replace bool) (*CRDTOp, error) {
	t, err := crdt.ParseType(typ)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if m == nil {
		return nil, fmt.Errorf("%w: a %s update without an operation", ErrBadRequest, t)
	}
	op, err := decodeOp(m, 1)
	if err != nil {
		return nil, fmt.Errorf("%w: forwarded operation: %w", ErrBadRequest, err)
	}
	if err := op.Validate(t); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return &CRDTOp{Type: t, Op: op, ReplaceType: replace}, nil
}

func decodeOp(m *pb.CrdtOp, depth int) (crdt.Op, error) {
	if depth > crdt.MaxDepth+1 {
		return crdt.Op{}, fmt.Errorf("operations nested deeper than %d", crdt.MaxDepth)
	}
	op := crdt.Op{Increment: m.Increment, Enable: m.Enable, Add: bytesToStrings(m.Add), Remove: bytesToStrings(m.Remove),
		Context: string(m.Context)}
	if m.Assign != nil {
		v := string(m.Assign)
		op.Assign = &v
	}
	if len(m.Update) > 0 {
		op.Update = make(map[string]crdt.FieldOp, len(m.Update))
		for i, f := range m.Update {
			if i > 0 && strings.Compare(string(m.Update[i-1].Name), string(f.Name)) >= 0 {
				return crdt.Op{}, fmt.Errorf("map fields not sorted and unique at %q", f.Name)
			}
			if f.Op == nil {
				return crdt.Op{}, fmt.Errorf("map field %q without an operation", f.Name)
			}
			nested, err := decodeOp(f.Op, depth+1)
			if err != nil {
				return crdt.Op{}, fmt.Errorf("field %q: %w", f.Name, err)
			}
			op.Update[string(f.Name)] = crdt.FieldOp{Type: crdt.Type(f.Type), Replace: f.Replace, Op: nested}
		}
	}
	return op, nil
}

func stringsToBytes(ss []string) [][]byte {
	if len(ss) == 0 {
		return nil
	}
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func bytesToStrings(bs [][]byte) []string {
	if len(bs) == 0 {
		return nil
	}
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}
