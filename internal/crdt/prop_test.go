package crdt

import (
	"bytes"
	"reflect"
	"slices"
	"testing"

	"github.com/quorumkv/quorumkv/internal/version"
	"pgregory.net/rapid"
)

var (
	actors   = []string{"n1.aa", "n2.bb", "n3.cc"}
	elements = []string{"a", "b", "c", "d"}
	names    = []string{"f", "g", "h"}
)

// genOp draws an op for type t; depth bounds map nesting. ctxs are contexts
// the op may base a remove on (states some replica read at some point).
func genOp(t *rapid.T, typ Type, depth int, ctxs []string) Op {
	var op Op
	switch typ {
	case Counter:
		op.Increment = i64(rapid.Int64Range(-5, 5).Draw(t, "inc"))
	case Register:
		op.Assign = str(rapid.SampledFrom(elements).Draw(t, "assign"))
	case Flag:
		op.Enable = boolp(rapid.Bool().Draw(t, "enable"))
	case Set:
		for _, e := range elements {
			switch rapid.IntRange(0, 3).Draw(t, "elem."+e) {
			case 1:
				op.Add = append(op.Add, e)
			case 2:
				op.Remove = append(op.Remove, e)
			}
		}
		if len(op.Add)+len(op.Remove) == 0 {
			op.Add = []string{rapid.SampledFrom(elements).Draw(t, "add")}
		}
	case Map:
		for _, n := range names {
			switch rapid.IntRange(0, 3).Draw(t, "field."+n) {
			case 1:
				ft := rapid.SampledFrom([]Type{Counter, Set, Register, Flag, Map}).Draw(t, "ftype")
				if ft == Map && depth >= 2 {
					ft = Set
				}
				if n == "f" { // a name with a fixed type, so that nested ops take effect often
					ft = Set
				}
				if op.Update == nil {
					op.Update = map[string]FieldOp{}
				}
				fop := FieldOp{Type: ft, Op: genOp(t, ft, depth+1, ctxs)}
				fop.Context = ""
				fop.Replace = rapid.IntRange(0, 3).Draw(t, "replace."+n) == 0
				op.Update[n] = fop
			case 2:
				op.Remove = append(op.Remove, n)
			}
		}
		if len(op.Update)+len(op.Remove) == 0 {
			op.Remove = []string{"g"}
		}
	}
	if (len(op.Remove) > 0 || (op.Enable != nil && !*op.Enable)) && len(ctxs) > 0 && rapid.Bool().Draw(t, "usectx") {
		op.Context = rapid.SampledFrom(ctxs).Draw(t, "ctx")
	}
	return op
}

// history runs a random sequence of updates and merges on replicas of one
// key, one replica per actor, and returns every State it produced.
type history struct {
	typ      Type
	replicas []State
	pool     []State
	ctxs     []string
	step     int64
}

func newHistory(typ Type) *history {
	h := &history{typ: typ, replicas: make([]State, len(actors))}
	for i := range h.replicas {
		h.replicas[i] = New(typ)
	}
	h.pool = []State{New(typ)}
	return h
}

func (h *history) run(t *rapid.T, steps int) {
	for range steps {
		i := rapid.IntRange(0, len(actors)-1).Draw(t, "replica")
		h.step++
		if rapid.IntRange(0, 2).Draw(t, "kind") == 0 {
			j := rapid.IntRange(0, len(actors)-1).Draw(t, "from")
			h.replicas[i] = mergeT(t, h.replicas[i], h.replicas[j])
		} else {
			s := h.replicas[i]
			op := genOp(t, h.typ, 1, h.ctxs)
			w := h.step
			if rapid.IntRange(0, 4).Draw(t, "lag") == 0 {
				w = 0 // a lagging clock
			}
			out, err := Apply(s, op, actors[i], version.HLC{Wall: w})
			if err != nil {
				if h.typ == Map { // a field of another type under that name
					continue
				}
				t.Fatalf("Apply(%v, %+v): %v", s, op, err)
			}
			checkEqual(t, "Apply keeps what it merged: Merge(s, Apply(s))", mergeT(t, s, out), out)
			h.replicas[i] = out
		}
		h.pool = append(h.pool, h.replicas[i])
		if c := h.replicas[i].Context(); c != "" {
			h.ctxs = append(h.ctxs, c)
		}
	}
}

func (h *history) draw(t *rapid.T, label string) State {
	return h.pool[rapid.IntRange(0, len(h.pool)-1).Draw(t, label)]
}

func mergeT(t *rapid.T, a, b State) State {
	t.Helper()
	m, err := Merge(a, b)
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	return m
}

func checkEqual(t *rapid.T, what string, got, want State) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func forEachType(t *testing.T, f func(t *rapid.T, typ Type)) {
	for _, typ := range Types {
		t.Run(string(typ), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) { f(rt, typ) })
		})
	}
}

func TestPropMergeLaws(t *testing.T) {
	forEachType(t, func(t *rapid.T, typ Type) {
		h := newHistory(typ)
		h.run(t, rapid.IntRange(0, 30).Draw(t, "steps"))
		a, b, c := h.draw(t, "a"), h.draw(t, "b"), h.draw(t, "c")
		ab := mergeT(t, a, b)
		checkEqual(t, "commutative", ab, mergeT(t, b, a))
		checkEqual(t, "idempotent", mergeT(t, a, a), a)
		checkEqual(t, "associative", mergeT(t, ab, c), mergeT(t, a, mergeT(t, b, c)))
		checkEqual(t, "absorbs", mergeT(t, ab, a), ab)
		if !reflect.DeepEqual(ab.Value(), mergeT(t, b, a).Value()) {
			t.Fatalf("values differ")
		}
		// Every replica converges once all have merged.
		all := New(typ)
		for _, r := range h.replicas {
			all = mergeT(t, all, r)
		}
		for _, r := range slices.Backward(h.replicas) {
			all2 := mergeT(t, r, all)
			checkEqual(t, "convergence", all2, all)
		}
	})
}

func TestPropEncodeRoundTrip(t *testing.T) {
	forEachType(t, func(t *rapid.T, typ Type) {
		h := newHistory(typ)
		h.run(t, rapid.IntRange(0, 30).Draw(t, "steps"))
		for _, s := range h.replicas {
			b := s.Encode()
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(Encode(%v)): %v", s, err)
			}
			if !bytes.Equal(got.Encode(), b) || !reflect.DeepEqual(got.Value(), s.Value()) || !reflect.DeepEqual(got, s) {
				t.Fatalf("round trip: %v != %v", got, s)
			}
		}
	})
}

func TestPropCounterSum(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		replicas := make([]State, len(actors))
		for i := range replicas {
			replicas[i] = New(Counter)
		}
		var sum int64
		for range rapid.IntRange(0, 50).Draw(t, "steps") {
			i := rapid.IntRange(0, len(actors)-1).Draw(t, "replica")
			if rapid.Bool().Draw(t, "merge") {
				replicas[i] = mergeT(t, replicas[i], replicas[rapid.IntRange(0, len(actors)-1).Draw(t, "from")])
				continue
			}
			inc := rapid.Int64Range(-1000, 1000).Draw(t, "inc")
			sum += inc
			s, err := Apply(replicas[i], Op{Increment: &inc}, actors[i], version.HLC{})
			if err != nil {
				t.Fatal(err)
			}
			replicas[i] = s
		}
		all := New(Counter)
		for _, r := range replicas {
			all = mergeT(t, all, r)
		}
		if all.Value() != sum {
			t.Fatalf("value %v, want %d", all.Value(), sum)
		}
	})
}

// TestPropAddWins: after any history, a remove of x at one replica and a
// concurrent add of x at another leave x present once merged, whatever
// context the remove used.
func TestPropAddWins(t *testing.T) {
	for _, typ := range []Type{Set, Map, Flag} {
		t.Run(string(typ), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				h := newHistory(typ)
				h.run(t, rapid.IntRange(0, 20).Draw(t, "steps"))
				i := rapid.IntRange(0, len(actors)-1).Draw(t, "remover")
				j := (i + 1 + rapid.IntRange(0, len(actors)-2).Draw(t, "adder")) % len(actors)
				var add, rm Op
				switch typ {
				case Set:
					add, rm = Op{Add: []string{"x"}}, Op{Remove: []string{"x"}}
				case Flag:
					add, rm = Op{Enable: boolp(true)}, Op{Enable: boolp(false)}
				case Map:
					add, rm = upd("x", Counter, Op{Increment: i64(1)}), Op{Remove: []string{"x"}}
				}
				if rapid.Bool().Draw(t, "ctx") {
					rm.Context = rapid.SampledFrom(append(h.ctxs, "")).Draw(t, "context")
				}
				r, err := Apply(h.replicas[i], rm, actors[i], version.HLC{Wall: 1000})
				if err != nil {
					t.Fatal(err)
				}
				a, err := Apply(h.replicas[j], add, actors[j], version.HLC{Wall: 1000})
				if err != nil {
					t.Skip("field x has another type")
				}
				m := mergeT(t, r, a)
				present := false
				switch typ {
				case Set:
					present = m.Contains("x")
				case Flag:
					present = m.Value() == true
				case Map:
					_, present = m.Value().(map[string]any)["x"]
				}
				if !present {
					t.Fatalf("concurrent add lost: remove %v, add %v, merged %v", r, a, m)
				}
			})
		})
	}
}

// naiveSet is an observed-remove set with tombstones: every add (element,
// dot) ever made and every removed dot. The ORSWOT must show the same
// elements on every replica.
type naiveSet struct {
	adds map[addKey]bool
	tomb map[addKey]bool
}

type addKey struct {
	dot version.Dot
	e   string
}

func (n naiveSet) value() []string {
	out := []string{}
	for k := range n.adds {
		if !n.tomb[k] && !slices.Contains(out, k.e) {
			out = append(out, k.e)
		}
	}
	slices.Sort(out)
	return out
}

func TestPropSetMatchesNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		real := make([]State, len(actors))
		naive := make([]naiveSet, len(actors))
		for i := range real {
			real[i] = New(Set)
			naive[i] = naiveSet{map[addKey]bool{}, map[addKey]bool{}}
		}
		var ctxs []string
		for range rapid.IntRange(0, 40).Draw(t, "steps") {
			i := rapid.IntRange(0, len(actors)-1).Draw(t, "replica")
			if rapid.Bool().Draw(t, "merge") {
				j := rapid.IntRange(0, len(actors)-1).Draw(t, "from")
				real[i] = mergeT(t, real[i], real[j])
				for k := range naive[j].adds {
					naive[i].adds[k] = true
				}
				for d := range naive[j].tomb {
					naive[i].tomb[d] = true
				}
			} else {
				op := genOp(t, Set, 1, ctxs)
				dot := NextDot(real[i], actors[i])
				ctx, _ := DecodeContext(op.Context)
				for k := range naive[i].adds {
					if naive[i].tomb[k] {
						continue
					}
					d, e := k.dot, k.e
					// An add supersedes the element's observed dots, a remove
					// drops those its context has seen.
					if slices.Contains(op.Add, e) || (slices.Contains(op.Remove, e) && (op.Context == "" || ctx.Contains(d))) {
						naive[i].tomb[k] = true
					}
				}
				for _, e := range op.Add {
					naive[i].adds[addKey{dot, e}] = true
				}
				s, err := Apply(real[i], op, actors[i], version.HLC{})
				if err != nil {
					t.Fatal(err)
				}
				real[i] = s
				if c := s.Context(); c != "" {
					ctxs = append(ctxs, c)
				}
			}
			if got, want := real[i].Value(), naive[i].value(); !reflect.DeepEqual(got, want) {
				t.Fatalf("replica %d: ORSWOT %v, naive %v", i, got, want)
			}
		}
	})
}
