package version

import (
	"encoding/base64"
	"fmt"
	"github.com/quorumkv/quorumkv/internal/wire"
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
//	sibling = actoridx counter flags wall logical vlen value [meta] [expires]
//	meta    = ctlen contenttype n (klen key vlen val)*n   ; only with flag bit 1
//	expires = zigzag wall ms, non-zero                    ; only with flag bit 2
//	context = 0x01 clock wall logical              ; base64url, no padding
//
// actoridx indexes the clock's entries (so a sibling's actor is always in the
// clock); flags is one byte, bit 0 = tombstone, bit 1 = a content type or
// metadata follows the value (set exactly when there is either: canonical),
// bit 2 = an expiry follows (set exactly when Expires != 0), other bits zero; wall is the zigzag HLC wall time, logical the HLC logical
// counter (< 2^32). Metadata keys are non-empty, sorted and unique. (Nodes
// from before metadata, or before expiry, refuse objects that carry some.)
const (
	minEntryLen   = 3 // actorlen, counter, >= 1 actor byte
	minSiblingLen = 6 // actoridx, counter, flags, wall, logical, vlen
	flagTombstone = 1
	flagMeta      = 2
	flagExpires   = 4
)

func metaEncodedLen(s Sibling) int {
	if !s.hasMeta() {
		return 0
	}
	n := wire.UvarintLen(uint64(len(s.ContentType))) + len(s.ContentType) + wire.UvarintLen(uint64(len(s.Meta)))
	for _, m := range s.Meta {
		n += wire.UvarintLen(uint64(len(m.Key))) + len(m.Key) + wire.UvarintLen(uint64(len(m.Value))) + len(m.Value)
	}
	return n
}

func appendMeta(b []byte, s Sibling) []byte {
	b = wire.AppendUvarint(b, uint64(len(s.ContentType)))
	b = append(b, s.ContentType...)
	b = wire.AppendUvarint(b, uint64(len(s.Meta)))
	for _, m := range s.Meta {
		b = wire.AppendUvarint(b, uint64(len(m.Key)))
		b = append(b, m.Key...)
		b = wire.AppendUvarint(b, uint64(len(m.Value)))
		b = append(b, m.Value...)
	}
	return b
}

// str reads a length-prefixed string.
func (d *decoder) str(what string) string {
	n := d.Uvarint(what + " length")
	if d.Err != nil {
		return ""
	}
	if n > uint64(d.Remaining()) {
		d.Fail("%s length %d exceeds input", what, n)
		return ""
	}
	v := string(d.B[d.Off : d.Off+int(n)])
	d.Off += int(n)
	return v
}

// meta reads a sibling's content type and metadata.
func (d *decoder) meta(s *Sibling, i int) {
	s.ContentType = d.str("content type")
	n := d.Count("metadata count", 2)
	if d.Err != nil {
		return
	}
	if n > 0 {
		s.Meta = make([]MetaEntry, n)
	}
	for j := range s.Meta {
		k := d.str("metadata key")
		v := d.str("metadata value")
		if d.Err != nil {
			return
		}
		if k == "" || (j > 0 && k <= s.Meta[j-1].Key) {
			d.Fail("sibling %d metadata keys empty, unsorted or repeated at %d", i, j)
			return
		}
		s.Meta[j] = MetaEntry{Key: k, Value: v}
	}
	if !s.hasMeta() {
		d.Fail("sibling %d has the metadata flag but no metadata", i)
	}
}

func clockEncodedLen(c Clock) int {
	n := wire.UvarintLen(uint64(len(c)))
	for _, e := range c {
		n += wire.UvarintLen(uint64(len(e.Actor))) + wire.UvarintLen(e.Counter) + len(e.Actor)
	}
	return n
}

func appendClock(b []byte, c Clock) []byte {
	b = wire.AppendUvarint(b, uint64(len(c)))
	for _, e := range c {
		b = wire.AppendUvarint(b, uint64(len(e.Actor)))
		b = wire.AppendUvarint(b, e.Counter)
	}
	for _, e := range c {
		b = append(b, e.Actor...)
	}
	return b
}

func (o Object) encodedLen() int {
	n := 1 + clockEncodedLen(o.Clock) + wire.UvarintLen(uint64(len(o.Siblings)))
	idx := 0
	for _, s := range o.Siblings {
		for idx < len(o.Clock) && o.Clock[idx].Actor < s.Dot.Actor {
			idx++
		}
		n += wire.UvarintLen(uint64(idx)) + wire.UvarintLen(s.Dot.Counter) + 1 +
			wire.UvarintLen(wire.Zigzag(s.Timestamp.Wall)) + wire.UvarintLen(uint64(s.Timestamp.Logical)) +
			wire.UvarintLen(uint64(len(s.Value))) + len(s.Value) + metaEncodedLen(s)
		if s.Expires != 0 {
			n += wire.UvarintLen(wire.Zigzag(s.Expires))
		}
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
	dst = wire.AppendUvarint(dst, uint64(len(o.Siblings)))
	idx := 0
	for _, s := range o.Siblings {
		for idx < len(o.Clock) && o.Clock[idx].Actor < s.Dot.Actor {
			idx++
		}
		if idx == len(o.Clock) || o.Clock[idx].Actor != s.Dot.Actor {
			panic(fmt.Sprintf("version: AppendBinary: sibling %v not in clock %v or siblings unsorted", s.Dot, o.Clock))
		}
		dst = wire.AppendUvarint(dst, uint64(idx))
		dst = wire.AppendUvarint(dst, s.Dot.Counter)
		var flags byte
		if s.Tombstone {
			flags |= flagTombstone
		}
		if s.hasMeta() {
			flags |= flagMeta
		}
		if s.Expires != 0 {
			flags |= flagExpires
		}
		dst = append(dst, flags)
		dst = wire.AppendUvarint(dst, wire.Zigzag(s.Timestamp.Wall))
		dst = wire.AppendUvarint(dst, uint64(s.Timestamp.Logical))
		dst = wire.AppendUvarint(dst, uint64(len(s.Value)))
		dst = append(dst, s.Value...)
		if flags&flagMeta != 0 {
			dst = appendMeta(dst, s)
		}
		if flags&flagExpires != 0 {
			dst = wire.AppendUvarint(dst, wire.Zigzag(s.Expires))
		}
	}
	return dst
}

// decoder reads the binary format. On the first error it records it and
// every later read fails, so callers check err once per step.
type decoder struct {
	wire.Decoder
	in *Interner // nil: every clock's actors are a new string
}

// Interner keeps the actor strings of the clocks decoded through it, so that decoding the
// clock of a key written before (whose actors are the same nodes') reuses them rather than
// allocating them again: a replica decodes two objects per write. Not safe for concurrent
// use: a core owns one. It holds at most internMax strings, then starts over.
type Interner struct{ m map[string]string }

// internMax bounds an Interner: a cluster's actors are its nodes (each key's clock lists
// the few that wrote it, in one string), plus one-off actors of sloppy coordination.
const internMax = 4096

// actors returns b as a string, the one kept for equal bytes if there is one (a new one
// from a nil Interner).
func (in *Interner) actors(b []byte) string {
	if in == nil {
		return string(b)
	}
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil || len(in.m) >= internMax {
		in.m = make(map[string]string, 64)
	}
	s := string(b)
	in.m[s] = s
	return s
}

func (d *decoder) hlc() HLC {
	w := d.Uvarint("timestamp wall")
	l := d.Uvarint("timestamp logical")
	if d.Err != nil {
		return HLC{}
	}
	if l > math.MaxUint32 {
		d.Fail("timestamp logical %d overflows 32 bits", l)
		return HLC{}
	}
	return HLC{Wall: wire.Unzigzag(w), Logical: uint32(l)}
}

// clock reads a clock section: valid, sorted, unique, non-empty actors and
// positive counters. All actor strings share one allocation.
func (d *decoder) clock() Clock {
	n := d.Count("clock length", minEntryLen)
	if d.Err != nil || n == 0 {
		return nil
	}
	// First pass: validate the (actorlen, counter) pairs and size the actors.
	start := d.Off
	total := 0
	for i := 0; i < n; i++ {
		l := d.Uvarint("actor length")
		d.Uvarint("clock counter")
		if d.Err != nil {
			return nil
		}
		if l == 0 {
			d.Fail("clock entry %d has an empty actor", i)
			return nil
		}
		if l > uint64(d.Remaining()-total) {
			d.Fail("clock actor length %d exceeds input", l)
			return nil
		}
		total += int(l)
	}
	if total > d.Remaining() {
		d.Fail("clock actors (%d bytes) exceed input", total)
		return nil
	}
	actors := d.in.actors(d.B[d.Off : d.Off+total])
	actorsStart := d.Off
	// Second pass: build the entries.
	c := make(Clock, n)
	d.Off = start
	pos := 0
	for i := range c {
		l := int(d.Uvarint("actor length"))
		ctr := d.Uvarint("clock counter")
		if ctr == 0 {
			d.Fail("clock entry %d has a zero counter", i)
			return nil
		}
		c[i] = Entry{Actor: actors[pos : pos+l], Counter: ctr}
		pos += l
		if i > 0 && c[i-1].Actor >= c[i].Actor {
			d.Fail("clock actors not strictly sorted at entry %d", i)
			return nil
		}
	}
	if d.Off != actorsStart {
		// Cannot happen: the second pass re-reads the first pass's bytes.
		d.Fail("clock section inconsistent")
		return nil
	}
	d.Off += total
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
func Decode(b []byte) (Object, error) { return DecodeInterned(b, nil) }

// DecodeInterned is Decode with the clock's actors taken from in (nil: none), which
// remembers new ones.
func DecodeInterned(b []byte, in *Interner) (Object, error) {
	o, err := decodeObject(b, in)
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

func decodeObject(b []byte, in *Interner) (Object, error) {
	d := decoder{Decoder: wire.Decoder{B: b}, in: in}
	if v := d.Byte("format version"); d.Err == nil && v != formatV1 {
		return Object{}, fmt.Errorf("unknown format version %d", v)
	}
	c := d.clock()
	n := d.Count("sibling count", minSiblingLen)
	if d.Err != nil {
		return Object{}, d.Err
	}
	var sibs []Sibling
	if n > 0 {
		sibs = make([]Sibling, n)
	}
	prevIdx, prevCtr := uint64(0), uint64(0)
	for i := range sibs {
		idx := d.Uvarint("sibling actor index")
		ctr := d.Uvarint("sibling counter")
		flags := d.Byte("sibling flags")
		ts := d.hlc()
		vlen := d.Uvarint("value length")
		if d.Err != nil {
			return Object{}, d.Err
		}
		switch {
		case idx >= uint64(len(c)):
			d.Fail("sibling %d actor index %d out of range (clock has %d actors)", i, idx, len(c))
		case ctr == 0:
			d.Fail("sibling %d has a zero counter", i)
		case ctr > c[idx].Counter:
			d.Fail("sibling %d dot %s:%d not in clock", i, c[idx].Actor, ctr)
		case i > 0 && (idx < prevIdx || (idx == prevIdx && ctr <= prevCtr)):
			d.Fail("sibling dots not strictly sorted at %d", i)
		case flags&^(flagTombstone|flagMeta|flagExpires) != 0:
			d.Fail("sibling %d has unknown flags %#x", i, flags)
		case vlen > uint64(d.Remaining()):
			d.Fail("sibling %d value length %d exceeds input", i, vlen)
		}
		if d.Err != nil {
			return Object{}, d.Err
		}
		prevIdx, prevCtr = idx, ctr
		s := &sibs[i]
		s.Dot = Dot{Actor: c[idx].Actor, Counter: ctr}
		s.Tombstone = flags&flagTombstone != 0
		s.Timestamp = ts
		if vlen > 0 {
			end := d.Off + int(vlen)
			s.Value = d.B[d.Off:end:end]
			d.Off = end
		}
		if flags&flagMeta != 0 {
			if d.meta(s, i); d.Err != nil {
				return Object{}, d.Err
			}
		}
		if flags&flagExpires != 0 {
			if s.Expires = wire.Unzigzag(d.Uvarint("expiry")); d.Err != nil {
				return Object{}, d.Err
			}
			if s.Expires == 0 {
				return Object{}, fmt.Errorf("sibling %d has the expiry flag but no expiry", i)
			}
		}
	}
	if d.Remaining() != 0 {
		return Object{}, fmt.Errorf("%d trailing bytes after object", d.Remaining())
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
	b = wire.AppendUvarint(b, wire.Zigzag(ts.Wall))
	b = wire.AppendUvarint(b, uint64(ts.Logical))
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
	d := decoder{Decoder: wire.Decoder{B: b}}
	if v := d.Byte("format version"); d.Err == nil && v != formatV1 {
		return nil, HLC{}, fmt.Errorf("%w: unknown format version %d", ErrBadContext, v)
	}
	c := d.clock()
	ts := d.hlc()
	if d.Err == nil && d.Remaining() != 0 {
		d.Fail("%d trailing bytes after context", d.Remaining())
	}
	if d.Err == nil && len(c) == 0 && ts.IsZero() {
		d.Fail("empty context must be encoded as the empty string")
	}
	if d.Err != nil {
		return nil, HLC{}, fmt.Errorf("%w: %w", ErrBadContext, d.Err)
	}
	return c, ts, nil
}
