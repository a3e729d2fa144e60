package crdt

import (
	"fmt"
	"github.com/quorumkv/quorumkv/internal/wire"
	"math"
	"slices"

	"github.com/quorumkv/quorumkv/internal/version"
)

// formatV1 is the first byte of every encoding this version writes.
const formatV1 = 1

// Binary format, version 1. Integers are unsigned LEB128 varints in minimal
// form (non-minimal ones are rejected, so each State has exactly one
// encoding); the HLC wall time is zigzag-encoded first; str is a length and
// bytes.
//
//	state    = 0x01 body
//	body     = 0x01 counter | 0x02 set | 0x03 register | 0x04 flag | 0x05 map
//	counter  = n (str:actor p n)*n                  ; actors strictly sorted
//	set      = clock n (str:element dots)*n         ; elements strictly sorted
//	register = 0x00 | 0x01 wall logical str:actor str:value
//	flag     = clock dots
//	map      = clock n (str:name typebyte m (dot body)*m)*n  ; (name, type) sorted
//	clock    = n (str:actor counter)*n              ; actors strictly sorted
//	dots     = n dot*n      ; n >= 1 except in a flag, strictly sorted
//	dot      = actoridx counter                     ; index into the enclosing clock
//
// A map field's dots and bodies are its snapshots; each body's type byte
// must equal the field's.
const (
	tagCounter  = 1
	tagSet      = 2
	tagRegister = 3
	tagFlag     = 4
	tagMap      = 5
)

var typeTags = map[Type]byte{Counter: tagCounter, Set: tagSet, Register: tagRegister, Flag: tagFlag, Map: tagMap}
var tagTypes = [...]Type{tagCounter: Counter, tagSet: Set, tagRegister: Register, tagFlag: Flag, tagMap: Map}

// Encode returns the canonical binary encoding of s: equal States encode to
// equal bytes. It panics on the zero State (a caller bug).
func (s State) Encode() []byte { return s.AppendBinary(nil) }

// AppendBinary appends Encode's bytes to dst.
func (s State) AppendBinary(dst []byte) []byte {
	if !s.typ.valid() {
		panic("crdt: Encode of the zero State")
	}
	dst = slices.Grow(dst, 1+s.sizeHint())
	return appendBody(append(dst, formatV1), s)
}

// sizeHint is the encoded size of s's body (exact but for the clock index
// of dots, counted as one byte), so that Encode allocates once.
func (s State) sizeHint() int {
	n := 1
	switch s.typ {
	case Counter:
		n += wire.UvarintLen(uint64(len(s.pn)))
		for _, e := range s.pn {
			n += strLen(e.actor) + wire.UvarintLen(e.p) + wire.UvarintLen(e.n)
		}
	case Set:
		n += clockLen(s.clock) + wire.UvarintLen(uint64(len(s.elems)))
		for _, e := range s.elems {
			n += strLen(e.v) + dotsLen(e.dots)
		}
	case Register:
		n += 1 + 2*10 + strLen(s.reg.actor) + strLen(s.reg.v)
	case Flag:
		n += clockLen(s.clock) + dotsLen(s.dots)
	case Map:
		n += clockLen(s.clock) + wire.UvarintLen(uint64(len(s.fields)))
		for _, f := range s.fields {
			n += strLen(f.name) + 1 + wire.UvarintLen(uint64(len(f.snaps)))
			for _, sn := range f.snaps {
				n += 1 + wire.UvarintLen(sn.dot.Counter) + sn.v.sizeHint()
			}
		}
	}
	return n
}

func strLen(s string) int { return wire.UvarintLen(uint64(len(s))) + len(s) }

func clockLen(c version.Clock) int {
	n := wire.UvarintLen(uint64(len(c)))
	for _, e := range c {
		n += strLen(e.Actor) + wire.UvarintLen(e.Counter)
	}
	return n
}

func dotsLen(ds []version.Dot) int {
	n := wire.UvarintLen(uint64(len(ds)))
	for _, d := range ds {
		n += 1 + wire.UvarintLen(d.Counter)
	}
	return n
}

func appendStr(b []byte, s string) []byte { return append(wire.AppendUvarint(b, uint64(len(s))), s...) }

func appendClock(b []byte, c version.Clock) []byte {
	b = wire.AppendUvarint(b, uint64(len(c)))
	for _, e := range c {
		b = appendStr(b, e.Actor)
		b = wire.AppendUvarint(b, e.Counter)
	}
	return b
}

func appendDot(b []byte, d version.Dot, c version.Clock) []byte {
	idx := -1
	for i, e := range c {
		if e.Actor == d.Actor {
			idx = i
			break
		}
	}
	if idx < 0 || c[idx].Counter < d.Counter {
		panic(fmt.Sprintf("crdt: dot %v not in clock %v", d, c))
	}
	return wire.AppendUvarint(wire.AppendUvarint(b, uint64(idx)), d.Counter)
}

func appendDots(b []byte, ds []version.Dot, c version.Clock) []byte {
	b = wire.AppendUvarint(b, uint64(len(ds)))
	for _, d := range ds {
		b = appendDot(b, d, c)
	}
	return b
}

func appendBody(b []byte, s State) []byte {
	b = append(b, typeTags[s.typ])
	switch s.typ {
	case Counter:
		b = wire.AppendUvarint(b, uint64(len(s.pn)))
		for _, e := range s.pn {
			b = appendStr(b, e.actor)
			b = wire.AppendUvarint(b, e.p)
			b = wire.AppendUvarint(b, e.n)
		}
	case Set:
		b = appendClock(b, s.clock)
		b = wire.AppendUvarint(b, uint64(len(s.elems)))
		for _, e := range s.elems {
			b = appendStr(b, e.v)
			b = appendDots(b, e.dots, s.clock)
		}
	case Register:
		if !s.reg.set {
			return append(b, 0)
		}
		b = append(b, 1)
		w := s.reg.ts.Wall
		b = wire.AppendUvarint(b, uint64(w<<1)^uint64(w>>63))
		b = wire.AppendUvarint(b, uint64(s.reg.ts.Logical))
		b = appendStr(b, s.reg.actor)
		b = appendStr(b, s.reg.v)
	case Flag:
		b = appendClock(b, s.clock)
		b = appendDots(b, s.dots, s.clock)
	case Map:
		b = appendClock(b, s.clock)
		b = wire.AppendUvarint(b, uint64(len(s.fields)))
		for _, f := range s.fields {
			b = appendStr(b, f.name)
			b = append(b, typeTags[f.typ])
			b = wire.AppendUvarint(b, uint64(len(f.snaps)))
			for _, sn := range f.snaps {
				b = appendDot(b, sn.dot, s.clock)
				b = appendBody(b, sn.v)
			}
		}
	}
	return b
}

// Decode parses an encoding written by Encode. It is strict: truncated
// input, trailing bytes, an unknown version or type, non-minimal varints,
// lengths and counts larger than the input, nesting deeper than MaxDepth and
// any violation of the invariants in the package documentation yield an
// error wrapping ErrCorrupt. It never panics, allocates in proportion to
// len(b), and the result does not alias b.
func Decode(b []byte) (State, error) {
	d := decoder{wire.Decoder{B: b}}
	if v := d.Byte("format version"); d.Err == nil && v != formatV1 {
		d.Fail("unknown format version %d", v)
	}
	s := d.body(1)
	if d.Err == nil && d.Off != len(d.B) {
		d.Fail("%d trailing bytes", len(d.B)-d.Off)
	}
	if d.Err != nil {
		return State{}, fmt.Errorf("%w: %w", ErrCorrupt, d.Err)
	}
	return s, nil
}

// decoder reads the binary format; after the first error every read fails.
type decoder struct{ wire.Decoder }

func (d *decoder) str(what string) string {
	off, n := d.span(what)
	if d.Err != nil {
		return ""
	}
	return string(d.B[off : off+n])
}

// span reads a string's length and steps over its bytes, returning where they lie.
func (d *decoder) span(what string) (off, n int) {
	l := d.Uvarint(what + " length")
	if d.Err == nil && l > uint64(d.Remaining()) {
		d.Fail("%s length %d exceeds input", what, l)
	}
	if d.Err != nil {
		return 0, 0
	}
	off = d.Off
	d.Off += int(l)
	return off, int(l)
}

// strPair reads two strings that follow each other, in one allocation: a register's actor
// and value, read on every write of a Redis string.
func (d *decoder) strPair(what1, what2 string) (string, string) {
	off1, n1 := d.span(what1)
	off2, n2 := d.span(what2)
	if d.Err != nil {
		return "", ""
	}
	both := string(d.B[off1 : off2+n2]) // the second string's length lies between: a few bytes
	return both[:n1], both[off2-off1:]
}

func (d *decoder) clock() version.Clock {
	n := d.Count("clock length", 3)
	if n == 0 {
		return nil
	}
	c := make(version.Clock, n)
	for i := range c {
		a := d.str("clock actor")
		ctr := d.Uvarint("clock counter")
		if d.Err != nil {
			return nil
		}
		switch {
		case a == "":
			d.Fail("clock entry %d has an empty actor", i)
		case ctr == 0:
			d.Fail("clock entry %d has a zero counter", i)
		case i > 0 && c[i-1].Actor >= a:
			d.Fail("clock actors not strictly sorted at entry %d", i)
		}
		c[i] = version.Entry{Actor: a, Counter: ctr}
	}
	return c
}

func (d *decoder) dot(c version.Clock, prev *version.Dot, first bool) version.Dot {
	idx := d.Uvarint("dot actor index")
	ctr := d.Uvarint("dot counter")
	if d.Err != nil {
		return version.Dot{}
	}
	if idx >= uint64(len(c)) {
		d.Fail("dot actor index %d out of range (clock has %d actors)", idx, len(c))
		return version.Dot{}
	}
	dt := version.Dot{Actor: c[idx].Actor, Counter: ctr}
	switch {
	case ctr == 0:
		d.Fail("dot with a zero counter")
	case ctr > c[idx].Counter:
		d.Fail("dot %v not in clock", dt)
	case !first && prev.Compare(dt) >= 0:
		d.Fail("dots not strictly sorted at %v", dt)
	}
	*prev = dt
	return dt
}

func (d *decoder) dots(c version.Clock, allowEmpty bool) []version.Dot {
	n := d.Count("dot count", 2)
	if d.Err != nil {
		return nil
	}
	if n == 0 {
		if !allowEmpty {
			d.Fail("empty dot list")
		}
		return nil
	}
	out := make([]version.Dot, n)
	var prev version.Dot
	for i := range out {
		out[i] = d.dot(c, &prev, i == 0)
	}
	return out
}

func (d *decoder) body(depth int) State {
	tag := d.Byte("type")
	if d.Err != nil {
		return State{}
	}
	if tag == 0 || int(tag) >= len(tagTypes) {
		d.Fail("unknown type tag %d", tag)
		return State{}
	}
	s := State{typ: tagTypes[tag]}
	switch s.typ {
	case Counter:
		n := d.Count("counter length", 3)
		if n > 0 {
			s.pn = make([]pnEntry, n)
		}
		for i := range s.pn {
			e := pnEntry{actor: d.str("counter actor"), p: d.Uvarint("counter P"), n: d.Uvarint("counter N")}
			if d.Err != nil {
				return State{}
			}
			switch {
			case e.actor == "":
				d.Fail("counter entry %d has an empty actor", i)
			case e.p == 0 && e.n == 0:
				d.Fail("counter entry %d is zero", i)
			case i > 0 && s.pn[i-1].actor >= e.actor:
				d.Fail("counter actors not strictly sorted at entry %d", i)
			}
			s.pn[i] = e
		}
	case Set:
		s.clock = d.clock()
		n := d.Count("set length", 3)
		if n > 0 {
			s.elems = make([]elem, n)
		}
		for i := range s.elems {
			e := elem{v: d.str("element")}
			if d.Err == nil && i > 0 && s.elems[i-1].v >= e.v {
				d.Fail("set elements not strictly sorted at %d", i)
			}
			e.dots = d.dots(s.clock, false)
			if d.Err != nil {
				return State{}
			}
			s.elems[i] = e
		}
	case Register:
		switch d.Byte("register flag") {
		case 0:
		case 1:
			w := d.Uvarint("register wall")
			l := d.Uvarint("register logical")
			s.reg = lww{set: true, ts: version.HLC{Wall: int64(w>>1) ^ -int64(w&1), Logical: uint32(l)}}
			s.reg.actor, s.reg.v = d.strPair("register actor", "register value")
			switch {
			case d.Err != nil:
			case l > math.MaxUint32:
				d.Fail("register logical %d overflows 32 bits", l)
			case s.reg.actor == "":
				d.Fail("register with an empty actor")
			}
		default:
			d.Fail("bad register flag")
		}
	case Flag:
		s.clock = d.clock()
		s.dots = d.dots(s.clock, true)
	case Map:
		if depth > MaxDepth {
			d.Fail("maps nested deeper than %d", MaxDepth)
			return State{}
		}
		s.clock = d.clock()
		n := d.Count("map length", 6)
		if n > 0 {
			s.fields = make([]field, n)
		}
		for i := range s.fields {
			f := field{name: d.str("field name")}
			tag := d.Byte("field type")
			if d.Err != nil {
				return State{}
			}
			if tag == 0 || int(tag) >= len(tagTypes) {
				d.Fail("field %q: unknown type tag %d", f.name, tag)
				return State{}
			}
			f.typ = tagTypes[tag]
			if i > 0 && compareField(s.fields[i-1], f) >= 0 {
				d.Fail("map fields not strictly sorted at %q", f.name)
				return State{}
			}
			m := d.Count("field snapshot count", 4)
			if d.Err == nil && m == 0 {
				d.Fail("field %q without snapshots", f.name)
			}
			if d.Err != nil {
				return State{}
			}
			f.snaps = make([]snap, m)
			var prev version.Dot
			for j := range f.snaps {
				dt := d.dot(s.clock, &prev, j == 0)
				v := d.body(depth + 1)
				if d.Err != nil {
					return State{}
				}
				if v.typ != f.typ {
					d.Fail("field %q (%s) holds a %s", f.name, f.typ, v.typ)
					return State{}
				}
				f.snaps[j] = snap{dot: dt, v: v}
			}
			s.fields[i] = f
		}
	}
	if d.Err != nil {
		return State{}
	}
	return s
}
