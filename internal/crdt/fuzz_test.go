package crdt

import (
	"bytes"
	"errors"
	"testing"
)

func seedStates(f *testing.F) []State {
	f.Helper()
	m := mustApply(f, New(Map), Op{Update: map[string]FieldOp{
		"c": {Type: Counter, Op: Op{Increment: i64(-3)}},
		"s": {Type: Set, Op: Op{Add: []string{"x", "y"}}},
		"r": {Type: Register, Op: Op{Assign: str("v")}},
		"f": {Type: Flag, Op: Op{Enable: boolp(true)}},
		"m": {Type: Map, Op: upd("d", Set, Op{Add: []string{"z"}})},
	}}, "n1.ab", 7)
	m2 := mustApply(f, m, upd("s", Set, Op{Add: []string{"w"}}), "n2.cd", 8)
	return []State{
		New(Counter), New(Set), New(Register), New(Flag), New(Map), m,
		mustMerge(f, m2, mustApply(f, m, Op{Remove: []string{"s"}}, "n1.ab", 9)),
		mustApply(f, New(Counter), Op{Increment: i64(12)}, "n1", 1),
		mustApply(f, New(Set), Op{Add: []string{"a", "b"}}, "n1", 1),
		mustApply(f, New(Flag), Op{Enable: boolp(true)}, "n1", 1),
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range seedStates(f) {
		f.Add(s.Encode())
	}
	f.Add([]byte{1, 1, 0x80, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		enc := s.Encode()
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		// Whatever decodes is usable: merge, value, context, apply.
		m, err := Merge(s, s)
		if err != nil || !m.Equal(s) {
			t.Fatalf("Merge(s, s) = %v, %v; want %v", m, err, s)
		}
		_ = s.Value()
		if c := s.Context(); c != "" {
			if _, err := DecodeContext(c); err != nil {
				t.Fatalf("context %q: %v", c, err)
			}
		}
		var op Op
		switch s.Type() {
		case Counter:
			op.Increment = i64(1)
		case Set:
			op.Add = []string{"fuzz"}
		case Register:
			op.Assign = str("fuzz")
		case Flag:
			op.Enable = boolp(true)
		case Map:
			op.Update = map[string]FieldOp{"fuzz": {Type: Flag, Op: Op{Enable: boolp(true)}}}
		}
		if out, err := Apply(s, op, "fuzz.actor", ts(1)); err == nil {
			if _, err := Decode(out.Encode()); err != nil {
				t.Fatalf("Apply produced an undecodable state: %v", err)
			}
		}
	})
}

func FuzzParseOp(f *testing.F) {
	for _, in := range []string{
		`{"increment": 5}`, `{"add": ["a"], "remove": ["b"], "context": "AQEFbjEuYWIBAAA"}`,
		`{"assign": "v"}`, `{"enable": true}`, `{"remove": ["x"]}`,
		`{"update": {"a": {"type": "map", "update": {"b": {"type": "set", "add": ["x"]}}}}}`,
		`{"update": {"a": {"type": "counter", "increment": -1}}, "remove": ["b"]}`,
	} {
		for tag := range len(Types) {
			f.Add(uint8(tag), []byte(in))
		}
	}
	states := seedStates(f)
	f.Fuzz(func(t *testing.T, tag uint8, b []byte) {
		typ := Types[int(tag)%len(Types)]
		op, err := ParseOp(typ, b)
		if err != nil {
			if !errors.Is(err, ErrBadOp) && !errors.Is(err, ErrWrongOp) && !errors.Is(err, ErrBadContext) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if err := op.Validate(typ); err != nil {
			t.Fatalf("parsed op does not validate: %v", err)
		}
		for _, s := range states {
			if s.Type() != typ {
				continue
			}
			out, err := Apply(s, op, "n9.zz", ts(3))
			if err != nil {
				continue // e.g. a map field of another type
			}
			if m, err := Merge(s, out); err != nil || !m.Equal(out) {
				t.Fatalf("Merge(s, Apply(s)) != Apply(s)")
			}
			if _, err := Decode(out.Encode()); err != nil {
				t.Fatalf("Apply produced an undecodable state: %v", err)
			}
		}
	})
}
