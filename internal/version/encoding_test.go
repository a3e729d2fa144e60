package version

import (
	"bytes"
	"encoding/base64"
	"errors"
	"github.com/quorumkv/quorumkv/internal/wire"
	"strings"
	"testing"
)

// raw builds encodings by hand, for malformed inputs.
type raw []byte

func (r raw) u(xs ...uint64) raw {
	for _, x := range xs {
		r = wire.AppendUvarint(r, x)
	}
	return r
}
func (r raw) s(s string) raw   { return append(r, s...) }
func (r raw) b(bs ...byte) raw { return append(r, bs...) }

func sampleObject() Object {
	return Object{
		Clock: Clock{{"n1.aa", 7}, {"n2.bb", 3}},
		Siblings: []Sibling{
			{Dot: Dot{"n1.aa", 7}, Value: []byte("hello"), Timestamp: HLC{Wall: 1_700_000_000_000, Logical: 2}},
			{Dot: Dot{"n2.bb", 3}, Tombstone: true, Timestamp: HLC{Wall: -5, Logical: 0}},
		},
	}
}

func TestEncodingGolden(t *testing.T) {
	o := Object{
		Clock:    Clock{{"a", 2}, {"bc", 300}},
		Siblings: []Sibling{{Dot: Dot{"bc", 5}, Value: []byte("v"), Tombstone: false, Timestamp: HLC{Wall: -1, Logical: 1}}},
	}
	want := raw{}.b(1).u(2, 1, 2, 2, 300).s("abc").u(1, 1, 5).b(0).u(1, 1, 1).s("v")
	got := o.AppendBinary(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding = %x, want %x", got, []byte(want))
	}
	if o.Size() != len(want) {
		t.Fatalf("Size = %d, want %d", o.Size(), len(want))
	}
	if (Object{}).Size() != 3 || !bytes.Equal((Object{}).AppendBinary(nil), []byte{1, 0, 0}) {
		t.Fatalf("empty object encoding = %x", (Object{}).AppendBinary(nil))
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	o := sampleObject()
	b := o.AppendBinary([]byte("prefix"))
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("AppendBinary lost the prefix")
	}
	got, err := Decode(b[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(o) {
		t.Fatalf("Decode = %v, want %v", got, o)
	}
	// Decode aliases; DecodeCopy does not.
	enc := o.AppendBinary(nil)
	aliased, _ := Decode(enc)
	copied, err := DecodeCopy(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 'X'
	}
	if !copied.Equal(o) {
		t.Fatalf("DecodeCopy result changed with its input: %v", copied)
	}
	if bytes.Equal(aliased.Siblings[0].Value, o.Siblings[0].Value) {
		t.Fatal("Decode was documented to alias its input but did not")
	}
	// Aliased values have no spare capacity, so appending cannot clobber b.
	if v := aliased.Siblings[0].Value; cap(v) != len(v) {
		t.Fatalf("aliased value has spare capacity %d > %d", cap(v), len(v))
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := raw{}.b(1).u(2, 1, 2, 1, 3).s("ab").u(1, 1, 3).b(1).u(0, 0, 0)
	if _, err := Decode(valid); err != nil {
		t.Fatalf("base case rejected: %v", err)
	}
	for _, tc := range []struct {
		name string
		b    raw
	}{
		{"empty input", raw{}},
		{"unknown version", raw{}.b(2).u(0, 0)},
		{"version zero", raw{}.b(0).u(0, 0)},
		{"truncated", valid[:len(valid)-1]},
		{"trailing byte", valid.b(0)},
		{"unsorted actors", raw{}.b(1).u(2, 1, 1, 1, 1).s("ba").u(0)},
		{"duplicate actors", raw{}.b(1).u(2, 1, 1, 1, 2).s("aa").u(0)},
		{"zero clock counter", raw{}.b(1).u(1, 1, 0).s("a").u(0)},
		{"empty actor", raw{}.b(1).u(1, 0, 1).u(0)},
		{"actor past end", raw{}.b(1).u(1, 9, 1).s("a")},
		{"actors past end", raw{}.b(1).u(2, 1, 1, 1, 1).s("a")},
		{"huge clock count", raw{}.b(1).u(1 << 40)},
		{"huge sibling count", raw{}.b(1).u(0, 1<<40)},
		{"huge value length", raw{}.b(1).u(1, 1, 1).s("a").u(1, 0, 1).b(0).u(0, 0, 1<<60)},
		{"sibling actor index out of range", raw{}.b(1).u(1, 1, 1).s("a").u(1, 1, 1).b(0).u(0, 0, 0)},
		{"sibling dot not in clock", raw{}.b(1).u(1, 1, 1).s("a").u(1, 0, 2).b(0).u(0, 0, 0)},
		{"zero sibling counter", raw{}.b(1).u(1, 1, 1).s("a").u(1, 0, 0).b(0).u(0, 0, 0)},
		{"duplicate sibling dots", raw{}.b(1).u(1, 1, 2).s("a").u(2, 0, 1).b(0).u(0, 0, 0).u(0, 1).b(0).u(0, 0, 0)},
		{"unsorted sibling dots", raw{}.b(1).u(1, 1, 2).s("a").u(2, 0, 2).b(0).u(0, 0, 0).u(0, 1).b(0).u(0, 0, 0)},
		{"unsorted sibling actors", raw{}.b(1).u(2, 1, 1, 1, 1).s("ab").u(2, 1, 1).b(0).u(0, 0, 0).u(0, 1).b(0).u(0, 0, 0)},
		{"unknown flag", raw{}.b(1).u(1, 1, 1).s("a").u(1, 0, 1).b(2).u(0, 0, 0)},
		{"logical overflows 32 bits", raw{}.b(1).u(1, 1, 1).s("a").u(1, 0, 1).b(0).u(0, 1<<32, 0)},
		{"non-minimal varint", raw{}.b(1, 0x80, 0x00).u(0)},
		{"varint overflow", raw{}.b(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02).u(0)},
		{"varint too long", raw{}.b(1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Decode(tc.b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode(%x) = %v, %v; want ErrCorrupt", []byte(tc.b), o, err)
			}
			if errors.Is(err, ErrBadContext) {
				t.Fatalf("object error matches ErrBadContext: %v", err)
			}
		})
	}
}

func TestContext(t *testing.T) {
	if s := EncodeContext(nil, HLC{}); s != "" {
		t.Fatalf("empty context = %q", s)
	}
	c, ts, err := DecodeContext("")
	if err != nil || c != nil || !ts.IsZero() {
		t.Fatalf("DecodeContext(\"\") = %v, %v, %v", c, ts, err)
	}
	clock := Clock{{"n1.7f3a9c", 12}, {"n2.000001", 1 << 40}}
	hlc := HLC{Wall: 1_700_000_000_123, Logical: 4}
	s := EncodeContext(clock, hlc)
	if strings.ContainsAny(s, "+/=") {
		t.Fatalf("context %q is not URL-safe unpadded base64", s)
	}
	c, ts, err = DecodeContext(s)
	if err != nil || !c.Equal(clock) || ts != hlc {
		t.Fatalf("round trip: %v %v %v", c, ts, err)
	}
	// A timestamp alone is a valid context.
	if c, ts, err := DecodeContext(EncodeContext(nil, hlc)); err != nil || c != nil || ts != hlc {
		t.Fatalf("ts-only round trip: %v %v %v", c, ts, err)
	}

	enc := func(r raw) string { return base64.RawURLEncoding.EncodeToString(r) }
	for _, tc := range []struct{ name, s string }{
		{"not base64", "!!!"},
		{"std alphabet", base64.RawStdEncoding.EncodeToString(raw{}.b(1).u(1, 2, 1).s("\xfb\xff").u(0, 0))},
		{"padded", s + "=="[:(4-len(s)%4)%4] + "="},
		{"line break", s[:2] + "\n" + s[2:]},
		{"non-zero padding bits", flipPadding(t, enc(raw{}.b(1).u(0, 2, 0)))},
		{"empty payload written out", enc(raw{}.b(1).u(0, 0, 0))},
		{"unknown version", enc(raw{}.b(9).u(0, 2, 0))},
		{"trailing", enc(raw{}.b(1).u(0, 2, 0, 0))},
		{"truncated", enc(raw{}.b(1).u(1, 1, 1).s("a").u(2))},
		{"unsorted", enc(raw{}.b(1).u(2, 1, 1, 1, 1).s("ba").u(0, 0))},
		{"zero counter", enc(raw{}.b(1).u(1, 1, 0).s("a").u(0, 0))},
		{"huge count", enc(raw{}.b(1).u(1<<50, 0, 0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ts, err := DecodeContext(tc.s)
			if !errors.Is(err, ErrBadContext) {
				t.Fatalf("DecodeContext(%q) = %v, %v, %v; want ErrBadContext", tc.s, c, ts, err)
			}
		})
	}
}

// flipPadding sets the lowest padding bit of an unpadded base64url string
// whose payload length is 1 mod 3 (so its last character carries 4 padding
// bits).
func flipPadding(t *testing.T, s string) string {
	t.Helper()
	if len(s)%4 != 2 {
		t.Fatalf("flipPadding: %q has no 4-bit padding", s)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i|1])
}
