package crdt

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/quorumkv/quorumkv/internal/version"
)

func i64(v int64) *int64   { return &v }
func str(v string) *string { return &v }
func boolp(v bool) *bool   { return &v }

func ts(w int64) version.HLC { return version.HLC{Wall: w} }

func mustApply(t testing.TB, s State, op Op, actor string, w int64) State {
	t.Helper()
	out, err := Apply(s, op, actor, ts(w))
	if err != nil {
		t.Fatalf("Apply(%v, %+v, %s): %v", s, op, actor, err)
	}
	if !out.Equal(mustMerge(t, s, out)) {
		t.Fatalf("Apply lost information: Merge(s, Apply(s)) != Apply(s) for %+v", op)
	}
	return out
}

func mustMerge(t testing.TB, a, b State) State {
	t.Helper()
	m, err := Merge(a, b)
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	return m
}

func TestCounter(t *testing.T) {
	a := mustApply(t, New(Counter), Op{Increment: i64(5)}, "a", 1)
	a = mustApply(t, a, Op{Increment: i64(-2)}, "a", 2)
	b := mustApply(t, New(Counter), Op{Increment: i64(10)}, "b", 1)
	b2 := mustApply(t, b, Op{Increment: i64(1)}, "b", 2)
	m := mustMerge(t, mustMerge(t, a, b), b2)
	if got := m.Value(); got != int64(14) {
		t.Fatalf("value %v, want 14", got)
	}
	if mustApply(t, a, Op{Increment: i64(0)}, "z", 3).Value() != int64(3) {
		t.Fatal("zero increment changed the value")
	}
	min := mustApply(t, New(Counter), Op{Increment: i64(math.MinInt64)}, "a", 1)
	if min.Value() != int64(math.MinInt64) {
		t.Fatalf("MinInt64 increment: %v", min.Value())
	}
	big := mustApply(t, New(Counter), Op{Increment: i64(math.MaxInt64)}, "a", 1)
	big = mustApply(t, big, Op{Increment: i64(math.MaxInt64)}, "a", 1)
	big = mustApply(t, big, Op{Increment: i64(1)}, "a", 1)
	if _, err := Apply(big, Op{Increment: i64(1)}, "a", ts(1)); !errors.Is(err, ErrOverflow) {
		t.Fatalf("overflow: %v", err)
	}
	if New(Counter).Context() != "" {
		t.Fatal("counter has a context")
	}
}

func TestSet(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T) State
		want []string
	}{
		{"add", func(t *testing.T) State {
			return mustApply(t, New(Set), Op{Add: []string{"b", "a", "b"}}, "n1", 1)
		}, []string{"a", "b"}},
		{"remove observed", func(t *testing.T) State {
			s := mustApply(t, New(Set), Op{Add: []string{"a", "b"}}, "n1", 1)
			return mustApply(t, s, Op{Remove: []string{"a", "zz"}}, "n1", 2)
		}, []string{"b"}},
		{"concurrent add wins over remove", func(t *testing.T) State {
			s := mustApply(t, New(Set), Op{Add: []string{"x"}}, "n1", 1)
			r := mustApply(t, s, Op{Remove: []string{"x"}, Context: s.Context()}, "n1", 2)
			a := mustApply(t, s, Op{Add: []string{"x"}}, "n2", 2)
			return mustMerge(t, r, a)
		}, []string{"x"}},
		{"remove with stale context keeps later add", func(t *testing.T) State {
			s := mustApply(t, New(Set), Op{Add: []string{"x"}}, "n1", 1)
			ctx := s.Context()
			s = mustApply(t, s, Op{Add: []string{"x"}}, "n2", 2)
			return mustApply(t, s, Op{Remove: []string{"x"}, Context: ctx}, "n1", 3)
		}, []string{"x"}},
		{"remove propagates", func(t *testing.T) State {
			s := mustApply(t, New(Set), Op{Add: []string{"x", "y"}}, "n1", 1)
			r := mustApply(t, s, Op{Remove: []string{"x"}}, "n2", 2)
			return mustMerge(t, s, r)
		}, []string{"y"}},
		{"re-add after remove", func(t *testing.T) State {
			s := mustApply(t, New(Set), Op{Add: []string{"x"}}, "n1", 1)
			s = mustApply(t, s, Op{Remove: []string{"x"}}, "n1", 2)
			return mustApply(t, s, Op{Add: []string{"x"}}, "n1", 3)
		}, []string{"x"}},
		{"empty", func(t *testing.T) State { return New(Set) }, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.run(t)
			if got := s.Value(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("value %#v, want %#v (state %v)", got, tt.want, s)
			}
		})
	}
}

func TestSetNoTombstones(t *testing.T) {
	s := New(Set)
	for i := range 100 {
		s = mustApply(t, s, Op{Add: []string{"x"}}, "n1", int64(i))
		s = mustApply(t, s, Op{Remove: []string{"x"}}, "n1", int64(i))
	}
	if n := len(s.Encode()); n > 16 {
		t.Fatalf("100 add/remove cycles left %d bytes: %x", n, s.Encode())
	}
}

func TestRegister(t *testing.T) {
	a := mustApply(t, New(Register), Op{Assign: str("one")}, "n1", 10)
	b := mustApply(t, New(Register), Op{Assign: str("two")}, "n2", 20)
	if v := mustMerge(t, a, b).Value(); v != "two" {
		t.Fatalf("later write lost: %v", v)
	}
	c := mustApply(t, New(Register), Op{Assign: str("tie")}, "n3", 20)
	if v := mustMerge(t, b, c).Value(); v != "tie" {
		t.Fatalf("actor tie-break: %v", v)
	}
	// A write with a lagging clock still supersedes what it was applied to.
	d := mustApply(t, b, Op{Assign: str("late")}, "n1", 5)
	if v := mustMerge(t, b, d).Value(); v != "late" {
		t.Fatalf("lagging write: %v", v)
	}
	if New(Register).Value() != nil {
		t.Fatal("unset register has a value")
	}
}

func TestFlag(t *testing.T) {
	on := mustApply(t, New(Flag), Op{Enable: boolp(true)}, "n1", 1)
	off := mustApply(t, on, Op{Enable: boolp(false)}, "n1", 2)
	on2 := mustApply(t, on, Op{Enable: boolp(true)}, "n2", 2)
	if mustMerge(t, on, off).Value() != false {
		t.Fatal("disable lost")
	}
	if mustMerge(t, off, on2).Value() != true {
		t.Fatal("concurrent enable must win")
	}
	if New(Flag).Value() != false {
		t.Fatal("new flag enabled")
	}
}

func upd(name string, typ Type, op Op) Op {
	return Op{Update: map[string]FieldOp{name: {Type: typ, Op: op}}}
}

func TestMap(t *testing.T) {
	s := mustApply(t, New(Map), Op{Update: map[string]FieldOp{
		"hits":  {Type: Counter, Op: Op{Increment: i64(3)}},
		"tags":  {Type: Set, Op: Op{Add: []string{"a", "b"}}},
		"name":  {Type: Register, Op: Op{Assign: str("bob")}},
		"admin": {Type: Flag, Op: Op{Enable: boolp(true)}},
		"inner": {Type: Map, Op: upd("deep", Set, Op{Add: []string{"z"}})},
	}}, "n1", 1)
	want := map[string]any{
		"hits": int64(3), "tags": []string{"a", "b"}, "name": "bob", "admin": true,
		"inner": map[string]any{"deep": []string{"z"}},
	}
	if got := s.Value(); !reflect.DeepEqual(got, want) {
		t.Fatalf("value %#v", got)
	}

	// Concurrent field remove and update: the update keeps the field.
	ctx := s.Context()
	r := mustApply(t, s, Op{Remove: []string{"hits", "tags"}, Context: ctx}, "n1", 2)
	u := mustApply(t, s, upd("tags", Set, Op{Add: []string{"c"}}), "n2", 2)
	m := mustMerge(t, r, u).Value().(map[string]any)
	if _, ok := m["hits"]; ok {
		t.Fatalf("removed field present: %v", m)
	}
	if !reflect.DeepEqual(m["tags"], []string{"a", "b", "c"}) {
		t.Fatalf("tags = %v", m["tags"])
	}

	// Nested remove with the top-level context; a concurrent nested add wins.
	r = mustApply(t, s, Op{Update: map[string]FieldOp{"tags": {Type: Set, Op: Op{Remove: []string{"a"}}}}, Context: ctx}, "n1", 3)
	u = mustApply(t, s, upd("tags", Set, Op{Add: []string{"a"}}), "n2", 3)
	if got := mustMerge(t, r, u).Value().(map[string]any)["tags"]; !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("nested add-wins: %v", got)
	}
	if got := mustMerge(t, r, s).Value().(map[string]any)["tags"]; !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("nested remove: %v", got)
	}

	// Remove then re-create: old elements do not come back, even merged with
	// a replica that still has them.
	rc := mustApply(t, s, Op{Remove: []string{"tags"}}, "n1", 4)
	rc = mustApply(t, rc, upd("tags", Set, Op{Add: []string{"new"}}), "n1", 5)
	if got := mustMerge(t, rc, s).Value().(map[string]any)["tags"]; !reflect.DeepEqual(got, []string{"new"}) {
		t.Fatalf("re-created field: %v", got)
	}

	// Another type for an existing name is refused.
	if _, err := Apply(s, upd("hits", Set, Op{Add: []string{"x"}}), "n1", ts(6)); !errors.Is(err, ErrTypeMismatch) {
		t.Fatalf("type change: %v", err)
	}
	// Replace changes a field's type in one op; an update the replacer had not seen
	// survives beside it.
	rp := mustApply(t, s, Op{Update: map[string]FieldOp{"hits": {Type: Register, Replace: true, Op: Op{Assign: str("x")}}}}, "n1", 7)
	if got := rp.Value().(map[string]any)["hits"]; got != "x" {
		t.Fatalf("replaced field: %v", got)
	}
	inc := mustApply(t, s, upd("hits", Counter, Op{Increment: i64(2)}), "n2", 7)
	fs := mustMerge(t, rp, inc).Fields()
	var kinds []string
	for _, f := range fs {
		if f.Name == "hits" {
			kinds = append(kinds, fmt.Sprint(f.Type, "=", f.State.Value()))
		}
	}
	if fmt.Sprint(kinds) != "[counter=5 register=x]" {
		t.Fatalf("replace and a concurrent increment: %v", kinds)
	}
	// Replace of a field of the same type starts it afresh.
	rp = mustApply(t, s, Op{Update: map[string]FieldOp{"hits": {Type: Counter, Replace: true, Op: Op{Increment: i64(1)}}}}, "n1", 8)
	if got := rp.Value().(map[string]any)["hits"]; got != int64(1) {
		t.Fatalf("replaced counter: %v", got)
	}
	// Concurrent updates with two types show both.
	x := mustApply(t, New(Map), upd("f", Counter, Op{Increment: i64(1)}), "n1", 1)
	y := mustApply(t, New(Map), upd("f", Flag, Op{Enable: boolp(true)}), "n2", 1)
	if got := mustMerge(t, x, y).Value(); !reflect.DeepEqual(got, map[string]any{"f:counter": int64(1), "f:flag": true}) {
		t.Fatalf("two types: %v", got)
	}
}

func TestMergeErrors(t *testing.T) {
	if _, err := Merge(New(Set), New(Counter)); !errors.Is(err, ErrTypeMismatch) {
		t.Fatalf("merge set with counter: %v", err)
	}
	if _, err := Merge(State{}, State{}); !errors.Is(err, ErrTypeMismatch) {
		t.Fatalf("merge zero states: %v", err)
	}
	if _, err := Apply(State{}, Op{Increment: i64(1)}, "a", ts(1)); !errors.Is(err, ErrTypeMismatch) {
		t.Fatalf("apply to zero: %v", err)
	}
	s := mustApply(t, New(Set), Op{Add: []string{"a"}}, "n1", 1)
	if _, err := ApplyDot(s, Op{Add: []string{"b"}}, version.Dot{Actor: "n1", Counter: 1}, ts(1)); !errors.Is(err, ErrStaleDot) {
		t.Fatalf("stale dot: %v", err)
	}
	if _, err := Apply(s, Op{Add: []string{"b"}}, "", ts(1)); !errors.Is(err, ErrBadOp) {
		t.Fatalf("empty actor: %v", err)
	}
}

func TestParseType(t *testing.T) {
	for _, ty := range Types {
		if got, err := ParseType(string(ty)); err != nil || got != ty {
			t.Fatalf("ParseType(%q) = %q, %v", ty, got, err)
		}
	}
	if _, err := ParseType("lww"); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("ParseType(lww): %v", err)
	}
}

func TestParseOp(t *testing.T) {
	tests := []struct {
		typ     Type
		in      string
		wantErr error
	}{
		{Counter, `{"increment": 5}`, nil},
		{Counter, `{"increment": -5}`, nil},
		{Counter, `{"add": ["x"]}`, ErrWrongOp},
		{Counter, `{}`, ErrBadOp},
		{Counter, `null`, ErrBadOp},
		{Counter, `{"increment": 1.5}`, ErrBadOp},
		{Counter, `{"increment": 99999999999999999999}`, ErrBadOp},
		{Counter, `{"increment": 1} {}`, ErrBadOp},
		{Counter, `{"increment": 1, "bogus": 2}`, ErrBadOp},
		{Set, `{"add": ["a"], "remove": ["b"], "context": ""}`, nil},
		{Set, `{"add": ["a"], "remove": ["a"]}`, ErrBadOp},
		{Set, `{"add": []}`, ErrBadOp},
		{Set, `{"remove": ["a"], "context": "!!"}`, ErrBadContext},
		{Set, `{"increment": 1}`, ErrWrongOp},
		{Register, `{"assign": "v"}`, nil},
		{Register, `{"assign": 3}`, ErrBadOp},
		{Flag, `{"enable": false}`, nil},
		{Flag, `{"assign": "x"}`, ErrWrongOp},
		{Map, `{"update": {"a": {"type": "counter", "increment": 1}}, "remove": ["b"]}`, nil},
		{Map, `{"update": {"a": {"type": "map", "update": {"b": {"type": "set", "add": ["x"]}}}}}`, nil},
		{Map, `{"update": {"a": {"type": "counter", "add": ["x"]}}}`, ErrWrongOp},
		{Map, `{"update": {"a": {"type": "bogus", "increment": 1}}}`, ErrBadOp},
		{Map, `{"update": {"a": {"type": "counter"}}}`, ErrBadOp},
		{Map, `{"update": {"a": {"type": "counter", "increment": 1}}, "remove": ["a"]}`, ErrBadOp},
		{Map, `{"add": ["x"]}`, ErrWrongOp},
		{Map, `{"update": {"a": {"type": "register", "replace": true, "assign": "x"}}}`, nil},
		{Map, `{"update": {"a": {"type": "counter", "replace": true, "increment": 1}}, "remove": ["b"]}`, nil},
		{Map, `{"replace": true, "update": {"a": {"type": "counter", "increment": 1}}}`, ErrBadOp},
		{Map, `{"update": {"a": {"type": "register", "replace": "yes", "assign": "x"}}}`, ErrBadOp},
	}
	for _, tt := range tests {
		_, err := ParseOp(tt.typ, []byte(tt.in))
		if (tt.wantErr == nil) != (err == nil) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
			t.Errorf("ParseOp(%s, %s) = %v, want %v", tt.typ, tt.in, err, tt.wantErr)
		}
	}
	// Nesting deeper than MaxDepth is refused.
	deep := `{"type":"counter","increment":1}`
	for range MaxDepth {
		deep = `{"type":"map","update":{"f":` + deep + `}}`
	}
	if _, err := ParseOp(Map, []byte(`{"update":{"f":`+deep+`}}`)); !errors.Is(err, ErrBadOp) {
		t.Errorf("deep op: %v", err)
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	s := mustApply(t, New(Map), Op{Update: map[string]FieldOp{
		"c": {Type: Counter, Op: Op{Increment: i64(-3)}},
		"s": {Type: Set, Op: Op{Add: []string{"", "x"}}},
		"r": {Type: Register, Op: Op{Assign: str("")}},
		"f": {Type: Flag, Op: Op{Enable: boolp(false)}},
		"m": {Type: Map, Op: upd("d", Register, Op{Assign: str("v")})},
	}}, "n1.ab", -5)
	for _, st := range []State{s, New(Counter), New(Set), New(Register), New(Flag), New(Map)} {
		b := st.Encode()
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%x): %v", b, err)
		}
		if !got.Equal(st) || !reflect.DeepEqual(got.Value(), st.Value()) {
			t.Fatalf("round trip: %v != %v", got, st)
		}
		for i := range b {
			if _, err := Decode(b[:i]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated at %d: %v", i, err)
			}
		}
		if _, err := Decode(append(b, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("trailing byte accepted")
		}
	}
	bad := [][]byte{
		nil, {2, 1, 0}, {1, 9}, {1, 1, 0x80, 0}, // version, tag, non-minimal
		{1, 1, 1, 1, 'a', 0, 0},                  // zero counter entry
		{1, 1, 2, 1, 'b', 1, 0, 1, 'a', 1, 0},    // unsorted counter actors
		{1, 2, 1, 1, 'a', 1, 1, 1, 'x', 1, 0, 2}, // dot beyond clock
		{1, 2, 1, 1, 'a', 1, 1, 1, 'x', 0},       // element without dots
		{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},     // absurd count
		{1, 3, 1, 0, 0, 0, 0},                    // register with empty actor
	}
	for _, b := range bad {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%x) = %v, want ErrCorrupt", b, err)
		}
	}
	// Nesting deeper than MaxDepth is refused.
	deep := New(Map)
	op := Op{Increment: i64(1)}
	typ := Counter
	for range MaxDepth {
		op, typ = upd("f", typ, op), Map
	}
	deep = mustApply(t, deep, op, "a", 1)
	if _, err := Decode(deep.Encode()); err != nil {
		t.Fatalf("MaxDepth map: %v", err)
	}
	if _, err := Apply(New(Map), upd("f", Map, op), "a", ts(1)); !errors.Is(err, ErrBadOp) {
		t.Fatalf("too deep apply: %v", err)
	}
}

func TestContext(t *testing.T) {
	s := mustApply(t, New(Set), Op{Add: []string{"a"}}, "n1", 1)
	c, err := DecodeContext(s.Context())
	if err != nil || !c.Equal(s.Clock()) {
		t.Fatalf("DecodeContext = %v, %v", c, err)
	}
	if _, err := DecodeContext("%%%"); !errors.Is(err, ErrBadContext) {
		t.Fatalf("bad context: %v", err)
	}
	if New(Set).Context() != "" {
		t.Fatal("empty set has a context")
	}
}

// TestFold: one live sibling folds to its own state, several to their merge; a tombstone
// is no value; siblings of another type than the latest are left out.
func TestFold(t *testing.T) {
	sib := func(s State, w int64) version.Sibling {
		return version.Sibling{Dot: version.Dot{Actor: "n1.ab", Counter: uint64(w)}, Value: s.Encode(), Timestamp: ts(w)}
	}
	c1 := mustApply(t, New(Counter), Op{Increment: i64(2)}, "n1.ab", 1)
	c2 := mustApply(t, New(Counter), Op{Increment: i64(5)}, "n2.cd", 2)
	set := mustApply(t, New(Set), Op{Add: []string{"x", "y"}}, "n1.ab", 3)
	reg := mustApply(t, New(Register), Op{Assign: str("v")}, "n1.ab", 4)
	for _, tc := range []struct {
		name  string
		sibs  []version.Sibling
		want  State
		found bool
	}{
		{"none", nil, State{}, false},
		{"tombstone", []version.Sibling{{Dot: version.Dot{Actor: "n1.ab", Counter: 9}, Tombstone: true}}, State{}, false},
		{"one counter", []version.Sibling{sib(c1, 1)}, c1, true},
		{"one set", []version.Sibling{sib(set, 3)}, set, true},
		{"one register", []version.Sibling{sib(reg, 4)}, reg, true},
		{"one empty register", []version.Sibling{sib(New(Register), 4)}, New(Register), true},
		{"two counters", []version.Sibling{sib(c1, 1), sib(c2, 2)}, mustMerge(t, c1, c2), true},
		{"a counter and a tombstone", []version.Sibling{sib(c1, 1), {Dot: version.Dot{Actor: "n2.cd", Counter: 9}, Tombstone: true}}, c1, true},
		{"types differ: the latest's wins", []version.Sibling{sib(c1, 1), sib(reg, 4), sib(c2, 2)}, reg, true},
	} {
		got, found, err := Fold(version.Object{Siblings: tc.sibs})
		if err != nil || found != tc.found || (found && !got.Equal(tc.want)) {
			t.Errorf("%s: Fold = %v, %v, %v; want %v, %v", tc.name, got, found, err, tc.want, tc.found)
		}
	}
	if _, _, err := Fold(version.Object{Siblings: []version.Sibling{{Value: []byte{0xff}}}}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("one corrupt sibling: %v, want ErrCorrupt", err)
	}
}
