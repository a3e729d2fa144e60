package crdt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/quorumkv/quorumkv/internal/version"
)

// Op is one update, as the HTTP API receives it in JSON (the json tags are
// the API). Exactly the kinds of its type may be set: counter increment;
// set add and/or remove; register assign; flag enable; map update and/or
// remove. Context is the Context of the read a remove (or disable) is based
// on: dots it has not seen survive, so a concurrent add wins; empty means
// "what the coordinator's state has observed".
type Op struct {
	Increment *int64             `json:"increment,omitempty"` // counter (negative decrements)
	Add       []string           `json:"add,omitempty"`       // set
	Remove    []string           `json:"remove,omitempty"`    // set elements, or map fields to remove
	Assign    *string            `json:"assign,omitempty"`    // register (string value)
	Enable    *bool              `json:"enable,omitempty"`    // flag: true enable, false disable
	Update    map[string]FieldOp `json:"update,omitempty"`    // map: field name → nested op
	Context   string             `json:"context,omitempty"`   // context of the read a remove is based on
}

// FieldOp is a map field's type and the op on it. Maps nest up to MaxDepth.
// A nested op's Context, when empty, defaults to the enclosing op's.
//
// Replace first removes the field, whatever its type, as a remove of the
// name in the enclosing op would (the presence dots the context has seen),
// then applies the op to a fresh State of Type: a field can change type in
// one update (Redis HSET over a field HINCRBY made a counter). An update the
// remover had not seen survives, as for any remove.
type FieldOp struct {
	Type    Type `json:"type"`
	Replace bool `json:"replace,omitempty"`
	Op
}

// ParseOp decodes a JSON op for type t. It is strict: unknown fields and
// trailing data are refused (ErrBadOp), an empty op is refused (ErrBadOp),
// and a kind of op t does not take fails with ErrWrongOp.
func ParseOp(t Type, b []byte) (Op, error) {
	if !t.valid() {
		return Op{}, fmt.Errorf("%w %q", ErrUnknownType, t)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var op Op
	if err := dec.Decode(&op); err != nil {
		return Op{}, fmt.Errorf("%w: %w", ErrBadOp, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Op{}, fmt.Errorf("%w: trailing data after the op", ErrBadOp)
	}
	if err := op.Validate(t); err != nil {
		return Op{}, err
	}
	return op, nil
}

// Validate checks op against type t, as ParseOp does.
func (op Op) Validate(t Type) error {
	if !t.valid() {
		return fmt.Errorf("%w %q", ErrUnknownType, t)
	}
	return op.validate(t, 1)
}

func (op Op) kinds() []string {
	k := make([]string, 0, 6) // on the stack: every write validates its op
	if op.Increment != nil {
		k = append(k, "increment")
	}
	if len(op.Add) > 0 {
		k = append(k, "add")
	}
	if len(op.Remove) > 0 {
		k = append(k, "remove")
	}
	if op.Assign != nil {
		k = append(k, "assign")
	}
	if op.Enable != nil {
		k = append(k, "enable")
	}
	if len(op.Update) > 0 {
		k = append(k, "update")
	}
	return k
}

var allowed = map[Type][]string{
	Counter:  {"increment"},
	Set:      {"add", "remove"},
	Register: {"assign"},
	Flag:     {"enable"},
	Map:      {"update", "remove"},
}

func (op Op) validate(t Type, depth int) error {
	if t == Map && depth > MaxDepth {
		return fmt.Errorf("%w: maps nested deeper than %d", ErrBadOp, MaxDepth)
	}
	kinds := op.kinds()
	if len(kinds) == 0 {
		return fmt.Errorf("%w: empty op for a %s (want %s)", ErrBadOp, t, strings.Join(allowed[t], " or "))
	}
	for _, k := range kinds {
		if !slices.Contains(allowed[t], k) {
			return fmt.Errorf("%w: %s on a %s (want %s)", ErrWrongOp, k, t, strings.Join(allowed[t], " or "))
		}
	}
	if op.Context != "" {
		if _, err := DecodeContext(op.Context); err != nil {
			return err
		}
	}
	switch t {
	case Set:
		for _, r := range op.Remove {
			if slices.Contains(op.Add, r) {
				return fmt.Errorf("%w: %q both added and removed", ErrBadOp, r)
			}
		}
	case Map:
		for _, r := range op.Remove {
			if _, ok := op.Update[r]; ok {
				return fmt.Errorf("%w: field %q both updated and removed", ErrBadOp, r)
			}
		}
		for _, name := range sortedKeys(op.Update) {
			f := op.Update[name]
			if !f.Type.valid() {
				return fmt.Errorf("%w: field %q: %w %q", ErrBadOp, name, ErrUnknownType, f.Type)
			}
			if err := f.Op.validate(f.Type, depth+1); err != nil {
				return fmt.Errorf("field %q: %w", name, err)
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]FieldOp) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// mints reports whether op creates a dot (adds, enables, field updates).
func (op Op) mints() bool {
	return len(op.Add) > 0 || (op.Enable != nil && *op.Enable) || len(op.Update) > 0
}

// NextDot returns the dot Apply would mint on s for actor.
func NextDot(s State, actor string) version.Dot {
	return version.Dot{Actor: actor, Counter: s.clock.Get(actor) + 1}
}

// Apply is the coordinator's update: it applies op, written by actor at
// time ts, to s (which should be the Merge of every sibling the coordinator
// read). It mints at most one dot, NextDot(s, actor). ts orders register
// assignments (see the package documentation). Errors: ErrWrongOp or
// ErrBadOp for an op that does not fit s's type, ErrBadContext,
// ErrTypeMismatch for the zero State or a map field of another type,
// ErrOverflow. On error s is unchanged (it always is: States are values).
func Apply(s State, op Op, actor string, ts version.HLC) (State, error) {
	return ApplyDot(s, op, NextDot(s, actor), ts)
}

// ApplyDot is Apply with a caller-minted dot; dot.Actor is the actor. For a
// set, flag or map, dot.Counter must exceed s's clock entry for the actor
// (ErrStaleDot otherwise); counters and registers ignore it.
func ApplyDot(s State, op Op, dot version.Dot, ts version.HLC) (State, error) {
	if !s.typ.valid() {
		return State{}, fmt.Errorf("%w: Apply on the zero State (use New)", ErrTypeMismatch)
	}
	if dot.Actor == "" {
		return State{}, fmt.Errorf("%w: empty actor", ErrBadOp)
	}
	if err := op.Validate(s.typ); err != nil {
		return State{}, err
	}
	if s.typ.causal() && dot.Counter <= s.clock.Get(dot.Actor) {
		return State{}, fmt.Errorf("%w: %v in clock %v", ErrStaleDot, dot, s.clock)
	}
	var ctx version.Clock
	if op.Context != "" {
		ctx, _ = DecodeContext(op.Context) // validated
	}
	return apply(s, op, dot, ts, ctx, op.Context != "")
}

// apply applies a validated op. hasCtx says whether ctx came from a context
// (otherwise removes drop everything s observed).
func apply(s State, op Op, dot version.Dot, ts version.HLC, ctx version.Clock, hasCtx bool) (State, error) {
	switch s.typ {
	case Counter:
		return applyCounter(s, *op.Increment, dot.Actor)
	case Register:
		return applyRegister(s, *op.Assign, dot.Actor, ts), nil
	case Flag:
		if *op.Enable {
			return State{typ: Flag, clock: s.clock.With(dot), dots: []version.Dot{dot}}, nil
		}
		return State{typ: Flag, clock: s.clock, dots: removeDots(s.dots, ctx, hasCtx)}, nil
	case Set:
		return applySet(s, op, dot, ctx, hasCtx), nil
	case Map:
		return applyMap(s, op, dot, ts, ctx, hasCtx)
	}
	panic(fmt.Sprintf("crdt: apply on invalid type %q", s.typ))
}

// removeDots drops the dots ctx has seen, or all of them without a context.
func removeDots(dots []version.Dot, ctx version.Clock, hasCtx bool) []version.Dot {
	if !hasCtx {
		return nil
	}
	var out []version.Dot
	for _, d := range dots {
		if !ctx.Contains(d) {
			out = append(out, d)
		}
	}
	return out
}

func applyCounter(s State, inc int64, actor string) (State, error) {
	if inc == 0 {
		return s, nil
	}
	out := State{typ: Counter, pn: make([]pnEntry, 0, len(s.pn)+1)}
	i, found := slices.BinarySearchFunc(s.pn, actor, func(e pnEntry, a string) int { return strings.Compare(e.actor, a) })
	out.pn = append(out.pn, s.pn[:i]...)
	e := pnEntry{actor: actor}
	if found {
		e = s.pn[i]
	}
	if inc > 0 {
		if e.p > math.MaxUint64-uint64(inc) {
			return State{}, fmt.Errorf("%w: actor %q", ErrOverflow, actor)
		}
		e.p += uint64(inc)
	} else {
		d := uint64(-inc) // correct for math.MinInt64 too: uint64(MinInt64) = 2^63
		if e.n > math.MaxUint64-d {
			return State{}, fmt.Errorf("%w: actor %q", ErrOverflow, actor)
		}
		e.n += d
	}
	out.pn = append(out.pn, e)
	if found {
		i++
	}
	out.pn = append(out.pn, s.pn[i:]...)
	return out, nil
}

// applyRegister assigns v; the timestamp written is ts, or the least one
// above the current timestamp if ts is not greater, so the write wins.
func applyRegister(s State, v, actor string, ts version.HLC) State {
	if s.reg.set && !s.reg.ts.Less(ts) {
		ts = s.reg.ts
		if ts.Logical == math.MaxUint32 {
			ts = version.HLC{Wall: ts.Wall + 1}
		} else {
			ts.Logical++
		}
	}
	return State{typ: Register, reg: lww{set: true, ts: ts, actor: actor, v: v}}
}

func applySet(s State, op Op, dot version.Dot, ctx version.Clock, hasCtx bool) State {
	out := State{typ: Set, clock: s.clock}
	var adds, removes []string
	if len(op.Add) > 0 {
		adds = slices.Clone(op.Add)
		slices.Sort(adds)
		adds = slices.Compact(adds)
		out.clock = s.clock.With(dot)
	}
	if len(op.Remove) > 0 {
		removes = slices.Clone(op.Remove)
		slices.Sort(removes)
		removes = slices.Compact(removes)
	}
	one := []version.Dot{dot}
	elems := make([]elem, 0, len(s.elems)+len(adds))
	i, a, r := 0, 0, 0
	for i < len(s.elems) || a < len(adds) {
		// Next key: the least of the current element and the next add.
		var e elem
		switch {
		case a == len(adds) || (i < len(s.elems) && s.elems[i].v < adds[a]):
			e = s.elems[i]
			i++
		case i < len(s.elems) && s.elems[i].v == adds[a]:
			e = elem{v: adds[a], dots: one}
			i++
			a++
			elems = append(elems, e)
			continue
		default:
			e = elem{v: adds[a], dots: one}
			a++
			elems = append(elems, e)
			continue
		}
		for r < len(removes) && removes[r] < e.v {
			r++
		}
		if r < len(removes) && removes[r] == e.v {
			if e.dots = removeDots(e.dots, ctx, hasCtx); len(e.dots) == 0 {
				continue
			}
		}
		elems = append(elems, e)
	}
	if len(elems) > 0 {
		out.elems = elems
	}
	return out
}

func applyMap(s State, op Op, dot version.Dot, ts version.HLC, ctx version.Clock, hasCtx bool) (State, error) {
	out := State{typ: Map, clock: s.clock}
	if op.mints() {
		out.clock = s.clock.With(dot)
	}
	fields := slices.Clone(s.fields)
	removed := func(name string) bool { return slices.Contains(op.Remove, name) || op.Update[name].Replace }
	// Removes: drop the presence dots ctx has seen.
	n := 0
	for _, f := range fields {
		if removed(f.name) {
			var keep []snap
			if hasCtx {
				for _, sn := range f.snaps {
					if !ctx.Contains(sn.dot) {
						keep = append(keep, sn)
					}
				}
			}
			if len(keep) == 0 {
				continue
			}
			f.snaps = keep
		}
		fields[n] = f
		n++
	}
	fields = fields[:n]
	// Updates, in name order.
	for _, name := range sortedKeys(op.Update) {
		fop := op.Update[name]
		key := field{name: name, typ: fop.Type}
		i, found := slices.BinarySearchFunc(fields, key, compareField)
		for _, f := range fields {
			if f.name == name && f.typ != fop.Type {
				return State{}, fmt.Errorf("%w: field %q is a %s, not a %s (remove it first)", ErrTypeMismatch, name, f.typ, fop.Type)
			}
		}
		base := New(fop.Type)
		if found {
			base = fields[i].value()
		}
		if base.typ.causal() {
			// The parent's clock: dots the parent has seen and this field no
			// longer holds were removed, even if this field's own State never
			// saw them (the field was removed and is being re-created).
			base.clock = version.Join(base.clock, s.clock)
		}
		nctx, nhas := ctx, hasCtx
		if fop.Context != "" {
			nctx, _ = DecodeContext(fop.Context) // validated
			nhas = true
		}
		v, err := apply(base, fop.Op, dot, ts, nctx, nhas)
		if err != nil {
			return State{}, fmt.Errorf("field %q: %w", name, err)
		}
		nf := field{name: name, typ: fop.Type, snaps: []snap{{dot: dot, v: v}}}
		if found {
			fields[i] = nf
		} else {
			fields = slices.Insert(fields, i, nf)
		}
	}
	if len(fields) > 0 {
		out.fields = fields
	}
	return out, nil
}

// IsZero reports whether op changes nothing and says nothing (no kind, no context).
func (op Op) IsZero() bool { return len(op.kinds()) == 0 && op.Context == "" }
