package version

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strings"
)

// formatV1 is the first byte of every encoding this version writes.
const formatV1 = 1

// Binary format, version 1. All integers are unsigned LEB128 varints in
// their minimal form (a non-minimal varint is rejected, so that every valid
// encoding is the unique encoding of its Object and equal objects have equal
// bytes, which the anti-entropy hash trees rely on). Signed integers are
// zigzag-encoded first.
//
//	object  = 0x01 clock nsib sibling*
//	clock   = n (actorlen counter)*n actorbytes    ; actors concatenated
//	sibling = actoridx counter flags wall logical vlen value
//	context = 0x01 clock wall logical              ; base64url, no padding
//
// actoridx indexes the clock's entries (so a sibling's actor is always in the
// clock); flags is one byte, bit 0 = tombstone, other bits zero; wall is the
// zigzag HLC wall time, logical the HLC logical counter (< 2^32).
const (
	minEntryLen   = 3 // actorlen, counter, >= 1 actor byte
	minSiblingLen = 6 // actoridx, counter, flags, wall, logical, vlen
	flagTombstone = 1
)

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func zigzag(x int64) uint64   { return uint64(x<<1) ^ uint64(x>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

func clockEncodedLen(c Clock) int {
	n := uvarintLen(uint64(len(c)))
	for _, e := range c {
		n += uvarintLen(uint64(len(e.Actor))) + uvarintLen(e.Counter) + len(e.Actor)
	}
	return n
}

func appendClock(b []byte, c Clock) []byte {
	b = appendUvarint(b, uint64(len(c)))
	for _, e := range c {
		b = appendUvarint(b, uint64(len(e.Actor)))
		b = appendUvarint(b, e.Counter)
	}
	for _, e := range c {
		b = append(b, e.Actor...)
	}
	return b
}

func (o Object) encodedLen() int {
	n := 1 + clockEncodedLen(o.Clock) + uvarintLen(uint64(len(o.Siblings)))
	idx := 0
	for _, s := range o.Siblings {
		for idx < len(o.Clock) && o.Clock[idx].Actor < s.Dot.Actor {
			idx++
		}
		n += uvarintLen(uint64(idx)) + uvarintLen(s.Dot.Counter) + 1 +
			uvarintLen(zigzag(s.Timestamp.Wall)) + uvarintLen(uint64(s.Timestamp.Logical)) +
			uvarintLen(uint64(len(s.Value))) + len(s.Value)
	}
	return n
}

// AppendBinary appends the binary encoding of o (format version 1) to dst and
// returns the extended slice. It grows dst at most once, so with a reused
// buffer of sufficient capacity it does not allocate. The encoding is
// canonical: equal objects encode to equal bytes.
//
// o must be valid (see Validate); AppendBinary panics if a sibling's actor is
// missing from the clock, and other violations yield bytes Decode rejects.
func (o Object) AppendBinary(dst []byte) []byte {
	dst = slices.Grow(dst, o.encodedLen())
	dst = append(dst, formatV1)
	dst = appendClock(dst, o.Clock)
	dst = appendUvarint(dst, uint64(len(o.Siblings)))
	idx := 0
	for _, s := range o.Siblings {
		for idx < len(o.Clock) && o.Clock[idx].Actor < s.Dot.Actor {
			idx++
		}
		if idx == len(o.Clock) || o.Clock[idx].Actor != s.Dot.Actor {
			panic(fmt.Sprintf("version: AppendBinary: sibling %v not in clock %v or siblings unsorted", s.Dot, o.Clock))
		}
		dst = appendUvarint(dst, uint64(idx))
		dst = appendUvarint(dst, s.Dot.Counter)
		var flags byte
		if s.Tombstone {
			flags |= flagTombstone
		}
		dst = append(dst, flags)
		dst = appendUvarint(dst, zigzag(s.Timestamp.Wall))
		dst = appendUvarint(dst, uint64(s.Timestamp.Logical))
		dst = appendUvarint(dst, uint64(len(s.Value)))
		dst = append(dst, s.Value...)
	}
	return dst
}

// decoder reads the binary format. On the first error it records it and
// every later read fails, so callers check err once per step.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("offset %d: %s", d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

// uvarint reads a minimal unsigned varint.
func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	for i := 0; i < 10; i++ {
		if d.off+i >= len(d.b) {
			d.fail("truncated %s", what)
			return 0
		}
		c := d.b[d.off+i]
		if i == 9 && c > 1 {
			d.fail("%s overflows 64 bits", what)
			return 0
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				d.fail("non-minimal varint for %s", what)
				return 0
			}
			d.off += i + 1
			return x
		}
	}
	d.fail("%s overflows 64 bits", what)
	return 0
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated %s", what)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

// count reads an element count and checks that the remaining input can hold
// that many elements of at least minLen bytes each, so that no allocation is
// larger than the input justifies.
func (d *decoder) count(what string, minLen int) int {
	n := d.uvarint(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()/minLen) {
		d.fail("%s %d too large for %d remaining bytes", what, n, d.remaining())
		return 0
	}
	return int(n)
}

func (d *decoder) hlc() HLC {
	w := d.uvarint("timestamp wall")
	l := d.uvarint("timestamp logical")
	if d.err != nil {
		return HLC{}
	}
	if l > math.MaxUint32 {
		d.fail("timestamp logical %d overflows 32 bits", l)
		return HLC{}
	}
	return HLC{Wall: unzigzag(w), Logical: uint32(l)}
}

// clock reads a clock section: valid, sorted, unique, non-empty actors and
// positive counters. All actor strings share one allocation.
func (d *decoder) clock() Clock {
	n := d.count("clock length", minEntryLen)
	if d.err != nil || n == 0 {
		return nil
	}
	// First pass: validate the (actorlen, counter) pairs and size the actors.
	start := d.off
	total := 0
	for i := 0; i < n; i++ {
		l := d.uvarint("actor length")
		d.uvarint("clock counter")
		if d.err != nil {
			return nil
		}
		if l == 0 {
			d.fail("clock entry %d has an empty actor", i)
			return nil
		}
		if l > uint64(d.remaining()-total) {
			d.fail("clock actor length %d exceeds input", l)
			return nil
		}
		total += int(l)
	}
	if total > d.remaining() {
		d.fail("clock actors (%d bytes) exceed input", total)
		return nil
	}
	actors := string(d.b[d.off : d.off+total])
	actorsStart := d.off
	// Second pass: build the entries.
	c := make(Clock, n)
	d.off = start
	pos := 0
	for i := range c {
		l := int(d.uvarint("actor length"))
		ctr := d.uvarint("clock counter")
		if ctr == 0 {
			d.fail("clock entry %d has a zero counter", i)
			return nil
		}
		c[i] = Entry{Actor: actors[pos : pos+l], Counter: ctr}
		pos += l
		if i > 0 && c[i-1].Actor >= c[i].Actor {
			d.fail("clock actors not strictly sorted at entry %d", i)
			return nil
		}
	}
	if d.off != actorsStart {
		// Cannot happen: the second pass re-reads the first pass's bytes.
		d.fail("clock section inconsistent")
		return nil
	}
	d.off += total
	return c
}

// Decode parses an Object written by AppendBinary. It is strict: it rejects,
// with an error wrapping ErrCorrupt, truncated input, trailing bytes, unknown
// format versions, non-minimal varints and any violation of the Object
// invariants. It never panics and allocates in proportion to len(b).
//
// The returned siblings' Values alias b (without spare capacity): the caller
// must not modify b while the Object is in use, or must use DecodeCopy.
// Actor strings never alias b.
func Decode(b []byte) (Object, error) {
	o, err := decodeObject(b)
	if err != nil {
		return Object{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return o, nil
}

// DecodeCopy is Decode with the values copied into one fresh allocation, so
// the result does not alias b.
func DecodeCopy(b []byte) (Object, error) {
	o, err := Decode(b)
	if err != nil {
		return Object{}, err
	}
	total := 0
	for _, s := range o.Siblings {
		total += len(s.Value)
	}
	if total == 0 {
		return o, nil
	}
	buf := make([]byte, 0, total)
	for i := range o.Siblings {
		v := o.Siblings[i].Value
		if len(v) == 0 {
			continue
		}
		start := len(buf)
		buf = append(buf, v...)
		o.Siblings[i].Value = buf[start:len(buf):len(buf)]
	}
	return o, nil
}

func decodeObject(b []byte) (Object, error) {
	d := decoder{b: b}
	if v := d.byte("format version"); d.err == nil && v != formatV1 {
		return Object{}, fmt.Errorf("unknown format version %d", v)
	}
	c := d.clock()
	n := d.count("sibling count", minSiblingLen)
	if d.err != nil {
		return Object{}, d.err
	}
	var sibs []Sibling
	if n > 0 {
		sibs = make([]Sibling, n)
	}
	prevIdx, prevCtr := uint64(0), uint64(0)
	for i := range sibs {
		idx := d.uvarint("sibling actor index")
		ctr := d.uvarint("sibling counter")
		flags := d.byte("sibling flags")
		ts := d.hlc()
		vlen := d.uvarint("value length")
		if d.err != nil {
			return Object{}, d.err
		}
		switch {
		case idx >= uint64(len(c)):
			d.fail("sibling %d actor index %d out of range (clock has %d actors)", i, idx, len(c))
		case ctr == 0:
			d.fail("sibling %d has a zero counter", i)
		case ctr > c[idx].Counter:
			d.fail("sibling %d dot %s:%d not in clock", i, c[idx].Actor, ctr)
		case i > 0 && (idx < prevIdx || (idx == prevIdx && ctr <= prevCtr)):
			d.fail("sibling dots not strictly sorted at %d", i)
		case flags&^flagTombstone != 0:
			d.fail("sibling %d has unknown flags %#x", i, flags)
		case vlen > uint64(d.remaining()):
			d.fail("sibling %d value length %d exceeds input", i, vlen)
		}
		if d.err != nil {
			return Object{}, d.err
		}
		prevIdx, prevCtr = idx, ctr
		s := &sibs[i]
		s.Dot = Dot{Actor: c[idx].Actor, Counter: ctr}
		s.Tombstone = flags&flagTombstone != 0
		s.Timestamp = ts
		if vlen > 0 {
			end := d.off + int(vlen)
			s.Value = d.b[d.off:end:end]
			d.off = end
		}
	}
	if d.remaining() != 0 {
		return Object{}, fmt.Errorf("%d trailing bytes after object", d.remaining())
	}
	return Object{Clock: c, Siblings: sibs}, nil
}

// contextEncoding is strict: it rejects non-zero padding bits, so that each
// context has exactly one string form.
var contextEncoding = base64.RawURLEncoding.Strict()

// EncodeContext encodes the causal context given to HTTP clients (header
// X-Quorumkv-Context): the clock of what the client read and the greatest
// timestamp it saw, so that an lww write carrying the context is ordered
// after the values it read. The result is URL-safe base64 without padding;
// the empty clock with the zero timestamp encodes as "".
func EncodeContext(c Clock, ts HLC) string {
	if len(c) == 0 && ts.IsZero() {
		return ""
	}
	var stack [128]byte
	b := append(stack[:0], formatV1)
	b = appendClock(b, c)
	b = appendUvarint(b, zigzag(ts.Wall))
	b = appendUvarint(b, uint64(ts.Logical))
	return contextEncoding.EncodeToString(b)
}

// DecodeContext parses a context produced by EncodeContext. "" yields the
// empty clock and zero timestamp. Malformed input (bad base64, any byte
// outside the URL-safe alphabet, or a binary form Decode would reject for the
// same reasons, including the non-canonical encoding of the empty context)
// yields an error wrapping ErrBadContext. It never panics.
func DecodeContext(s string) (Clock, HLC, error) {
	if s == "" {
		return nil, HLC{}, nil
	}
	// The base64 decoder skips '\r' and '\n'; reject them so that each
	// context has one spelling.
	if strings.ContainsAny(s, "\r\n") {
		return nil, HLC{}, fmt.Errorf("%w: line break in context", ErrBadContext)
	}
	b, err := contextEncoding.DecodeString(s)
	if err != nil {
		return nil, HLC{}, fmt.Errorf("%w: %w", ErrBadContext, err)
	}
	d := decoder{b: b}
	if v := d.byte("format version"); d.err == nil && v != formatV1 {
		return nil, HLC{}, fmt.Errorf("%w: unknown format version %d", ErrBadContext, v)
	}
	c := d.clock()
	ts := d.hlc()
	if d.err == nil && d.remaining() != 0 {
		d.fail("%d trailing bytes after context", d.remaining())
	}
	if d.err == nil && len(c) == 0 && ts.IsZero() {
		d.fail("empty context must be encoded as the empty string")
	}
	if d.err != nil {
		return nil, HLC{}, fmt.Errorf("%w: %w", ErrBadContext, d.err)
	}
	return c, ts, nil
}
