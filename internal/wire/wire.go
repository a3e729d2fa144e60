// Package wire holds the strict binary primitives that quorumkv's encodings (versions,
// CRDT states) share: minimal unsigned varints, zigzag integers, and a Decoder that records
// its first error and refuses every read after it, so a decoding function checks the error
// once per step and no input can make it read out of bounds, accept a non-minimal varint,
// or allocate more than the input justifies.
//
// The package is pure: no goroutines, clocks or I/O.
package wire

import "fmt"

// UvarintLen is the encoded length of x.
func UvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// AppendUvarint appends the minimal varint encoding of x.
func AppendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

// Zigzag maps a signed integer to an unsigned one that encodes small magnitudes briefly.
func Zigzag(x int64) uint64 { return uint64(x<<1) ^ uint64(x>>63) }

// Unzigzag inverts Zigzag.
func Unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// Decoder reads B from Off. After the first error (Err) every read returns zero values.
type Decoder struct {
	B   []byte
	Off int
	Err error
}

// Fail records an error at the current offset, unless one is recorded already.
func (d *Decoder) Fail(format string, args ...any) {
	if d.Err == nil {
		d.Err = fmt.Errorf("offset %d: %s", d.Off, fmt.Sprintf(format, args...))
	}
}

// Remaining is the number of unread bytes.
func (d *Decoder) Remaining() int { return len(d.B) - d.Off }

// Byte reads one byte.
func (d *Decoder) Byte(what string) byte {
	if d.Err != nil {
		return 0
	}
	if d.Off >= len(d.B) {
		d.Fail("truncated %s", what)
		return 0
	}
	c := d.B[d.Off]
	d.Off++
	return c
}

// Uvarint reads a minimal unsigned varint.
func (d *Decoder) Uvarint(what string) uint64 {
	if d.Err != nil {
		return 0
	}
	var x uint64
	for i := 0; i < 10; i++ {
		if d.Off+i >= len(d.B) {
			d.Fail("truncated %s", what)
			return 0
		}
		c := d.B[d.Off+i]
		if i == 9 && c > 1 {
			d.Fail("%s overflows 64 bits", what)
			return 0
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				d.Fail("non-minimal varint for %s", what)
				return 0
			}
			d.Off += i + 1
			return x
		}
	}
	d.Fail("%s overflows 64 bits", what)
	return 0
}

// Count reads an element count and checks that the remaining input can hold that many
// elements of at least minLen bytes each, so that no allocation is larger than the input
// justifies.
func (d *Decoder) Count(what string, minLen int) int {
	n := d.Uvarint(what)
	if d.Err != nil {
		return 0
	}
	if n > uint64(d.Remaining()/minLen) {
		d.Fail("%s %d too large for %d remaining bytes", what, n, d.Remaining())
		return 0
	}
	return int(n)
}
