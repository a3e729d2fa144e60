package wire

import (
	"math"
	"testing"
)

func TestUvarintRoundTripAndStrictness(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 300, 1 << 32, math.MaxUint64} {
		b := AppendUvarint(nil, x)
		if len(b) != UvarintLen(x) {
			t.Fatalf("%d: %d bytes, UvarintLen says %d", x, len(b), UvarintLen(x))
		}
		d := Decoder{B: b}
		if got := d.Uvarint("x"); got != x || d.Err != nil || d.Remaining() != 0 {
			t.Fatalf("%d: decoded %d, err %v, %d left", x, got, d.Err, d.Remaining())
		}
	}
	for name, b := range map[string][]byte{
		"truncated":   {0x80},
		"non-minimal": {0x80, 0x00},
		"overflow":    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
		"empty":       {},
	} {
		d := Decoder{B: b}
		if d.Uvarint("x"); d.Err == nil {
			t.Errorf("%s: accepted", name)
		}
		if d.Byte("y"); d.Off > len(b) {
			t.Errorf("%s: read past the end after an error", name)
		}
	}
}

func TestCountRefusesWhatTheInputCannotHold(t *testing.T) {
	d := Decoder{B: append(AppendUvarint(nil, 1000), make([]byte, 10)...)}
	if n := d.Count("things", 1); n != 0 || d.Err == nil {
		t.Fatalf("count 1000 over 10 bytes: %d, %v", n, d.Err)
	}
	d = Decoder{B: append(AppendUvarint(nil, 5), make([]byte, 10)...)}
	if n := d.Count("things", 2); n != 5 || d.Err != nil {
		t.Fatalf("count 5 of 2 bytes over 10: %d, %v", n, d.Err)
	}
}

func TestZigzag(t *testing.T) {
	for _, x := range []int64{0, -1, 1, math.MinInt64, math.MaxInt64, -1700000000000} {
		if Unzigzag(Zigzag(x)) != x {
			t.Fatalf("%d does not round-trip", x)
		}
	}
	if Zigzag(-1) != 1 || Zigzag(1) != 2 {
		t.Fatal("small magnitudes must stay small")
	}
}
