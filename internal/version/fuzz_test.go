package version

import (
	"bytes"
	"testing"
)

func FuzzDecode(f *testing.F) {
	f.Add(sampleObject().AppendBinary(nil))
	f.Add((Object{}).AppendBinary(nil))
	o := Object{}.Update(nil, val("n1", 1, "v1")).Update(nil, val("n2", 4, "v2")).Update(nil, tomb("n1", 9))
	f.Add(o.AppendBinary(nil))
	f.Add([]byte{1, 0x80, 0x00, 0})
	m := val("n3", 2, "{}")
	m.ContentType, m.Meta = "application/json", []MetaEntry{{"author", "ann"}, {"rev", "7"}}
	f.Add(o.Update(nil, m).AppendBinary(nil))
	e := val("n4", 3, "session")
	e.Expires = 1_800_000_060_000
	f.Add(o.Update(nil, e).AppendBinary(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := Decode(b)
		if err != nil {
			return
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("Decode accepted an invalid object %v: %v", o, err)
		}
		enc := o.AppendBinary(nil)
		// The encoding is canonical: what decodes re-encodes to itself.
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", b, enc)
		}
		if o.Size() != len(enc) {
			t.Fatalf("Size = %d, encoding has %d bytes", o.Size(), len(enc))
		}
		p, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !p.Equal(o) {
			t.Fatalf("re-decode = %v, want %v", p, o)
		}
		c, err := DecodeCopy(b)
		if err != nil || !c.Equal(o) {
			t.Fatalf("DecodeCopy = %v, %v", c, err)
		}
	})
}

func FuzzDecodeContext(f *testing.F) {
	f.Add("")
	f.Add(EncodeContext(sampleObject().Clock, HLC{Wall: 1_700_000_000_000, Logical: 3}))
	f.Add(EncodeContext(nil, HLC{Wall: 1}))
	f.Add("AQIJDAmAgICAgCBuMS43ZjNhOWNuMi4wMDAwMDH2oav--WIF")
	f.Add("AQ\nEB")
	f.Fuzz(func(t *testing.T, s string) {
		c, ts, err := DecodeContext(s)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("DecodeContext accepted an invalid clock %v: %v", c, err)
		}
		// Canonical: what decodes re-encodes to the same string.
		if got := EncodeContext(c, ts); got != s {
			t.Fatalf("EncodeContext(DecodeContext(%q)) = %q", s, got)
		}
	})
}
