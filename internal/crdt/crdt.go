package crdt

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/quorumkv/quorumkv/internal/version"
)

// Type names a CRDT. A bucket's type chooses the data type of its keys.
type Type string

// The data types.
const (
	Counter  Type = "counter"
	Set      Type = "set"
	Map      Type = "map"
	Register Type = "register"
	Flag     Type = "flag"
)

// Types lists every Type, in a fixed order.
var Types = []Type{Counter, Set, Map, Register, Flag}

// MaxDepth bounds the nesting of maps (a top-level map is depth 1), in States,
// encodings and ops, so that recursion stays shallow whatever the input.
const MaxDepth = 16

var (
	// ErrCorrupt reports a malformed encoded State: truncated, trailing
	// bytes, unknown version or type, non-canonical, or violating an
	// invariant (see the package documentation). A storage fault.
	ErrCorrupt = errors.New("crdt: corrupt encoding")
	// ErrWrongOp reports an operation of the wrong kind for the type
	// (add on a counter, increment on a set). A client error: nothing changes.
	ErrWrongOp = errors.New("crdt: wrong operation for type")
	// ErrBadOp reports a malformed operation: empty, invalid JSON, unknown
	// fields, a field type that is not a Type, an element both added and
	// removed, nesting deeper than MaxDepth. A client error.
	ErrBadOp = errors.New("crdt: bad operation")
	// ErrBadContext reports a causal context string that does not decode.
	// A client error.
	ErrBadContext = errors.New("crdt: bad context")
	// ErrTypeMismatch reports States of different types given to Merge, a
	// zero State, or a map update of a name held by a field of another type.
	ErrTypeMismatch = errors.New("crdt: type mismatch")
	// ErrUnknownType reports a string that names no Type.
	ErrUnknownType = errors.New("crdt: unknown type")
	// ErrStaleDot reports an ApplyDot dot whose counter the state's clock
	// already contains (a reused dot would merge two events into one).
	ErrStaleDot = errors.New("crdt: dot already seen")
	// ErrOverflow reports a counter increment that would overflow an
	// actor's 64-bit total.
	ErrOverflow = errors.New("crdt: counter overflow")
)

// ParseType returns the Type named s, or an error wrapping ErrUnknownType.
func ParseType(s string) (Type, error) {
	t := Type(s)
	if t.valid() {
		return t, nil
	}
	return "", fmt.Errorf("%w %q (want counter, set, map, register or flag)", ErrUnknownType, s)
}

func (t Type) valid() bool {
	switch t {
	case Counter, Set, Map, Register, Flag:
		return true
	}
	return false
}

// causal reports whether t carries a clock (and takes a removal context).
func (t Type) causal() bool { return t == Set || t == Flag || t == Map }

// State is one CRDT of a given Type. The zero State is invalid: use New or
// Decode. States are immutable values; see the package documentation.
type State struct {
	typ    Type
	clock  version.Clock // set, flag, map
	pn     []pnEntry     // counter
	elems  []elem        // set
	dots   []version.Dot // flag
	reg    lww           // register
	fields []field       // map
}

type pnEntry struct {
	actor string
	p, n  uint64
}

type elem struct {
	v    string
	dots []version.Dot
}

type lww struct {
	set   bool
	ts    version.HLC
	actor string
	v     string
}

type field struct {
	name  string
	typ   Type
	snaps []snap
}

// snap is one presence dot of a map field with the field's State as the
// update that minted the dot left it.
type snap struct {
	dot version.Dot
	v   State
}

// New returns the empty State of type t (zero counter, empty set or map,
// unset register, disabled flag). It panics if t is not a Type.
func New(t Type) State {
	if !t.valid() {
		panic(fmt.Sprintf("crdt: New(%q): not a type", t))
	}
	return State{typ: t}
}

// Type returns s's type; "" for the zero State.
func (s State) Type() Type { return s.typ }

// Equal reports whether s and o are the same State (equal encodings).
func (s State) Equal(o State) bool {
	if s.typ == "" || o.typ == "" {
		return s.typ == o.typ
	}
	return bytes.Equal(s.Encode(), o.Encode())
}

// String formats s for logs and test output.
func (s State) String() string {
	if s.typ == "" {
		return "crdt.State{}"
	}
	if s.typ.causal() {
		return fmt.Sprintf("%s%v %v", s.typ, s.clock, s.Value())
	}
	return fmt.Sprintf("%s %v", s.typ, s.Value())
}

// Merge returns the least upper bound of a and b. It is commutative,
// associative and idempotent. It fails, wrapping ErrTypeMismatch, if the
// types differ or either State is the zero State.
func Merge(a, b State) (State, error) {
	if a.typ != b.typ || a.typ == "" {
		return State{}, fmt.Errorf("%w: merge %q with %q", ErrTypeMismatch, a.typ, b.typ)
	}
	return merge(a, b), nil
}

// merge merges two States of the same valid type.
func merge(a, b State) State {
	switch a.typ {
	case Counter:
		return State{typ: Counter, pn: mergePN(a.pn, b.pn)}
	case Register:
		if lwwLess(a.reg, b.reg) {
			return b
		}
		return a
	case Flag:
		return State{typ: Flag, clock: version.Join(a.clock, b.clock),
			dots: mergeDots(a.dots, a.clock, b.dots, b.clock)}
	case Set:
		return State{typ: Set, clock: version.Join(a.clock, b.clock),
			elems: mergeElems(a.elems, a.clock, b.elems, b.clock)}
	case Map:
		return State{typ: Map, clock: version.Join(a.clock, b.clock),
			fields: mergeFields(a.fields, a.clock, b.fields, b.clock)}
	}
	panic(fmt.Sprintf("crdt: merge of invalid type %q", a.typ))
}

func mergePN(a, b []pnEntry) []pnEntry {
	out := make([]pnEntry, 0, max(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := strings.Compare(a[i].actor, b[j].actor); {
		case c < 0:
			out = append(out, a[i])
			i++
		case c > 0:
			out = append(out, b[j])
			j++
		default:
			out = append(out, pnEntry{a[i].actor, max(a[i].p, b[j].p), max(a[i].n, b[j].n)})
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	out = append(out, b[j:]...)
	if len(out) == 0 {
		return nil
	}
	return out
}

// lwwLess orders registers: unset first, then by (timestamp, actor, value).
func lwwLess(a, b lww) bool {
	if a.set != b.set {
		return b.set
	}
	if c := a.ts.Compare(b.ts); c != 0 {
		return c < 0
	}
	if a.actor != b.actor {
		return a.actor < b.actor
	}
	return a.v < b.v
}

// mergeDotted merges two dot-sorted lists as an ORSWOT merges one element's
// dots: a dot both sides hold stays (its payloads combined by both), a dot
// one side holds stays if the other side's clock has not seen it.
func mergeDotted[T any](a []T, ca version.Clock, b []T, cb version.Clock,
	dot func(T) version.Dot, both func(x, y T) T) []T {
	var out []T
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var c int
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = dot(a[i]).Compare(dot(b[j]))
		}
		switch {
		case c < 0:
			if !cb.Contains(dot(a[i])) {
				out = append(out, a[i])
			}
			i++
		case c > 0:
			if !ca.Contains(dot(b[j])) {
				out = append(out, b[j])
			}
			j++
		default:
			out = append(out, both(a[i], b[j]))
			i++
			j++
		}
	}
	return out
}

func idDot(d version.Dot) version.Dot       { return d }
func firstDot(x, _ version.Dot) version.Dot { return x }
func snapDot(s snap) version.Dot            { return s.dot }
func mergeSnap(x, y snap) snap              { return snap{x.dot, merge(x.v, y.v)} }
func mergeDots(a []version.Dot, ca version.Clock, b []version.Dot, cb version.Clock) []version.Dot {
	// Fast paths, without allocating: the same dots on both sides (the
	// common case between replicas), or one side's dots all unseen.
	if slices.Equal(a, b) {
		return a
	}
	if len(b) == 0 && !slices.ContainsFunc(a, cb.Contains) {
		return a
	}
	if len(a) == 0 && !slices.ContainsFunc(b, ca.Contains) {
		return b
	}
	return mergeDotted(a, ca, b, cb, idDot, firstDot)
}

func mergeElems(a []elem, ca version.Clock, b []elem, cb version.Clock) []elem {
	return mergeKeyed(a, b, func(x, y elem) int { return strings.Compare(x.v, y.v) },
		func(e elem) []version.Dot { return e.dots },
		func(e elem, d []version.Dot) elem { e.dots = d; return e },
		func(x, y []version.Dot) []version.Dot { return mergeDots(x, ca, y, cb) })
}

func compareField(a, b field) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	return strings.Compare(string(a.typ), string(b.typ))
}

func mergeFields(a []field, ca version.Clock, b []field, cb version.Clock) []field {
	return mergeKeyed(a, b, compareField,
		func(f field) []snap { return f.snaps },
		func(f field, s []snap) field { f.snaps = s; return f },
		func(x, y []snap) []snap { return mergeDotted(x, ca, y, cb, snapDot, mergeSnap) })
}

// mergeKeyed merges two slices sorted by cmp into one: an element on either side (or both)
// is kept with the dots merge gives it (a missing side's dots are nil), and dropped when
// none are left. The result is nil when empty.
func mergeKeyed[T, D any](a, b []T, cmp func(x, y T) int, dots func(T) []D, with func(T, []D) T, merge func(x, y []D) []D) []T {
	out := make([]T, 0, max(len(a), len(b)))
	keep := func(e T, ds []D) {
		if len(ds) > 0 {
			out = append(out, with(e, ds))
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var c int
		switch {
		case i == len(a):
			c = 1
		case j == len(b):
			c = -1
		default:
			c = cmp(a[i], b[j])
		}
		switch {
		case c < 0:
			keep(a[i], merge(dots(a[i]), nil))
			i++
		case c > 0:
			keep(b[j], merge(nil, dots(b[j])))
			j++
		default:
			keep(a[i], merge(dots(a[i]), dots(b[j])))
			i++
			j++
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// value folds a field's snapshots into its current State.
func (f field) value() State {
	v := f.snaps[0].v
	for _, s := range f.snaps[1:] {
		v = merge(v, s.v)
	}
	return v
}

// Register returns a register's value without boxing it (Value's any): ok is false when
// the register is unset, or s is not a register.
func (s State) Register() (v string, ok bool) {
	if s.typ != Register || !s.reg.set {
		return "", false
	}
	return s.reg.v, true
}

// Value returns s's value in a JSON-friendly form: counter → int64; set →
// sorted []string (never nil); register → string, or nil when unset; flag →
// bool; map → map[string]any of the fields' values, keyed by name, or by
// "name:type" for a name that concurrent updates gave several types.
// The zero State yields nil.
func (s State) Value() any {
	switch s.typ {
	case Counter:
		var v uint64
		for _, e := range s.pn {
			v += e.p - e.n
		}
		return int64(v)
	case Set:
		out := make([]string, len(s.elems))
		for i, e := range s.elems {
			out[i] = e.v
		}
		return out
	case Register:
		if !s.reg.set {
			return nil
		}
		return s.reg.v
	case Flag:
		return len(s.dots) > 0
	case Map:
		out := make(map[string]any, len(s.fields))
		for i, f := range s.fields {
			key := f.name
			if (i > 0 && s.fields[i-1].name == f.name) || (i+1 < len(s.fields) && s.fields[i+1].name == f.name) {
				key = f.name + ":" + string(f.typ)
			}
			out[key] = f.value().Value()
		}
		return out
	}
	return nil
}

// Field is one field of a map: its name, its type and its value.
type Field struct {
	Name  string
	Type  Type
	State State
}

// Fields returns a map's fields sorted by name, then type (a name has
// several types when concurrent updates gave it different ones); nil for
// other types.
func (s State) Fields() []Field {
	if len(s.fields) == 0 {
		return nil
	}
	out := make([]Field, len(s.fields))
	for i, f := range s.fields {
		out[i] = Field{Name: f.name, Type: f.typ, State: f.value()}
	}
	return out
}

// Context returns s's causal context for clients to send back with removes:
// the clock of a set, flag or map in an opaque URL-safe base64 string. It is
// "" for counters, registers and empty clocks (and "" in a remove means
// "what the coordinator's state has observed").
func (s State) Context() string {
	if !s.typ.causal() || len(s.clock) == 0 {
		return ""
	}
	return version.EncodeContext(s.clock, version.HLC{})
}

// DecodeContext parses a string from Context. "" yields the empty clock.
// Malformed input yields an error wrapping ErrBadContext.
func DecodeContext(ctx string) (version.Clock, error) {
	c, _, err := version.DecodeContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadContext, err)
	}
	return c, nil
}

// Clock returns the causal history of a set, flag or map (nil otherwise).
func (s State) Clock() version.Clock { return s.clock }

// Contains reports whether s is a set holding element v.
func (s State) Contains(v string) bool {
	_, ok := slices.BinarySearchFunc(s.elems, v, func(e elem, v string) int { return strings.Compare(e.v, v) })
	return ok
}

// Len returns the number of elements of a set or fields of a map.
func (s State) Len() int { return len(s.elems) + len(s.fields) }
