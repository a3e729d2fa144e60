package core_test

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// binary is a member, field name and value that no JSON string carries: invalid UTF-8
// around a NUL.
const binary = "\xff\x00\xfe"

// sampleContext is a valid causal context.
func sampleContext() string {
	return version.EncodeContext(version.Clock{}.With(version.Dot{Actor: "n1", Counter: 2}), version.HLC{Wall: 5})
}

func ptr[T any](v T) *T { return &v }

// sampleOps are operations of every type, with binary members, fields and values.
func sampleOps() []core.CRDTOp {
	return []core.CRDTOp{
		{Type: crdt.Counter, Op: crdt.Op{Increment: ptr(int64(-7))}},
		{Type: crdt.Counter, Op: crdt.Op{Increment: ptr(int64(0))}},
		{Type: crdt.Set, Op: crdt.Op{Add: []string{binary, "a", ""}}},
		{Type: crdt.Set, Op: crdt.Op{Remove: []string{binary}, Context: sampleContext()}},
		{Type: crdt.Register, Op: crdt.Op{Assign: ptr(binary)}, ReplaceType: true},
		{Type: crdt.Register, Op: crdt.Op{Assign: ptr("")}},
		{Type: crdt.Flag, Op: crdt.Op{Enable: ptr(false)}},
		{Type: crdt.Map, Op: crdt.Op{Remove: []string{"gone" + binary}, Update: map[string]crdt.FieldOp{
			binary: {Type: crdt.Register, Replace: true, Op: crdt.Op{Assign: ptr(binary + binary)}},
			"n":    {Type: crdt.Counter, Op: crdt.Op{Increment: ptr(int64(3))}},
			"m": {Type: crdt.Map, Op: crdt.Op{Update: map[string]crdt.FieldOp{
				"s": {Type: crdt.Set, Op: crdt.Op{Add: []string{binary}}},
			}}},
		}}},
	}
}

// TestCRDTOpRoundTrip: every operation, binary members, field names and values included,
// comes back from its forwarded form exactly, through the wire encoding.
func TestCRDTOpRoundTrip(t *testing.T) {
	for _, want := range sampleOps() {
		b, err := proto.Marshal(core.EncodeCRDTOp(want.Op))
		if err != nil {
			t.Fatalf("%+v: marshal: %v", want, err)
		}
		var m pb.CrdtOp
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatalf("%+v: unmarshal: %v", want, err)
		}
		got, err := core.DecodeCRDTOp(string(want.Type), &m, want.ReplaceType)
		if err != nil {
			t.Fatalf("%+v: decode: %v", want, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("round trip: got %+v, want %+v", *got, want)
		}
	}
}

// TestCRDTOpEncodingIsDeterministic: map fields travel sorted, whatever the map's order.
func TestCRDTOpEncodingIsDeterministic(t *testing.T) {
	op := sampleOps()[7].Op
	first, _ := proto.MarshalOptions{Deterministic: true}.Marshal(core.EncodeCRDTOp(op))
	for range 20 {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(core.EncodeCRDTOp(op))
		if string(b) != string(first) {
			t.Fatal("two encodings of one operation differ")
		}
	}
}

// TestDecodeCRDTOpRefuses: a malformed forwarded operation is a bad request.
func TestDecodeCRDTOpRefuses(t *testing.T) {
	deep := &pb.CrdtOp{Increment: ptr(int64(1))}
	typ := "counter"
	for range crdt.MaxDepth + 2 {
		deep = &pb.CrdtOp{Update: []*pb.CrdtFieldOp{{Name: []byte("f"), Type: typ, Op: deep}}}
		typ = "map"
	}
	cases := map[string]struct {
		typ string
		m   *pb.CrdtOp
	}{
		"unknown type":      {"list", &pb.CrdtOp{Add: [][]byte{[]byte("x")}}},
		"no operation":      {"set", nil},
		"empty operation":   {"set", &pb.CrdtOp{}},
		"wrong kind":        {"counter", &pb.CrdtOp{Add: [][]byte{[]byte("x")}}},
		"bad context":       {"set", &pb.CrdtOp{Remove: [][]byte{[]byte("x")}, Context: []byte("\xff")}},
		"fields unsorted":   {"map", &pb.CrdtOp{Update: []*pb.CrdtFieldOp{{Name: []byte("b"), Type: "counter", Op: &pb.CrdtOp{Increment: ptr(int64(1))}}, {Name: []byte("a"), Type: "counter", Op: &pb.CrdtOp{Increment: ptr(int64(1))}}}}},
		"field twice":       {"map", &pb.CrdtOp{Update: []*pb.CrdtFieldOp{{Name: []byte("a"), Type: "counter", Op: &pb.CrdtOp{Increment: ptr(int64(1))}}, {Name: []byte("a"), Type: "counter", Op: &pb.CrdtOp{Increment: ptr(int64(1))}}}}},
		"field without op":  {"map", &pb.CrdtOp{Update: []*pb.CrdtFieldOp{{Name: []byte("a"), Type: "counter"}}}},
		"field type":        {"map", &pb.CrdtOp{Update: []*pb.CrdtFieldOp{{Name: []byte("a"), Type: "list", Op: &pb.CrdtOp{Increment: ptr(int64(1))}}}}},
		"nested too deeply": {"map", deep},
	}
	for name, c := range cases {
		if _, err := core.DecodeCRDTOp(c.typ, c.m, false); !errors.Is(err, core.ErrBadRequest) {
			t.Errorf("%s: got %v, want a bad request", name, err)
		}
	}
}

// FuzzDecodeCRDTOp: any bytes either fail to decode (as a bad request) or decode to an
// operation whose forwarded form is what was decoded, field for field.
func FuzzDecodeCRDTOp(f *testing.F) {
	types := []crdt.Type{crdt.Counter, crdt.Set, crdt.Register, crdt.Flag, crdt.Map}
	for _, op := range sampleOps() {
		b, err := proto.Marshal(core.EncodeCRDTOp(op.Op))
		if err != nil {
			f.Fatal(err)
		}
		for i, t := range types {
			if t == op.Type {
				f.Add(b, uint8(i))
			}
		}
	}
	f.Add([]byte{0x32, 0x00}, uint8(4))                  // a field with nothing in it
	f.Add([]byte("\x1a\x03000B\v00000000000"), uint8(1)) // an unknown field after a member
	f.Fuzz(func(t *testing.T, b []byte, ti uint8) {
		var m pb.CrdtOp
		// Unknown fields are skipped, as protobuf does (a later version may add some).
		if (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &m) != nil {
			return
		}
		typ := types[int(ti)%len(types)]
		op, err := core.DecodeCRDTOp(string(typ), &m, false)
		if err != nil {
			if !errors.Is(err, core.ErrBadRequest) {
				t.Fatalf("decode failed with %v, not a bad request", err)
			}
			return
		}
		if re := core.EncodeCRDTOp(op.Op); !proto.Equal(re, &m) {
			t.Fatalf("decoded %+v re-encodes as %v, not %v", op.Op, re, &m)
		}
		again, err := core.DecodeCRDTOp(string(typ), core.EncodeCRDTOp(op.Op), false)
		if err != nil || !reflect.DeepEqual(again, op) {
			t.Fatalf("re-decoding %+v: %+v, %v", op, again, err)
		}
	})
}
