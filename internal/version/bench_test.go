package version

import (
	"bytes"
	"fmt"
	"testing"
)

// benchObject returns an object over three actors with nsib siblings of
// 100-byte values, as a replica typically holds.
func benchObject(nsib int, base uint64) Object {
	actors := []string{"n1.7f3a9c", "n2.0b11d4", "n3.c0ffee"}
	var o Object
	for i := range 3 {
		o.Clock = o.Clock.With(Dot{actors[i], base + uint64(i)*1000})
	}
	for i := range nsib {
		o = o.Update(nil, Sibling{
			Dot:       Dot{actors[i%3], base + uint64(i%3)*1000 + 1},
			Value:     bytes.Repeat([]byte{'a' + byte(i)}, 100),
			Timestamp: HLC{Wall: 1_700_000_000_000 + int64(i), Logical: 1},
		})
	}
	return o
}

func BenchmarkMerge(b *testing.B) {
	for _, nsib := range []int{1, 3} {
		b.Run(fmt.Sprintf("siblings=%d", nsib), func(b *testing.B) {
			x := benchObject(nsib, 10)
			// y is x after a write that saw only part of it, plus x's
			// history: a typical read-repair merge.
			y := x.Update(Clock{{"n1.7f3a9c", x.Clock.Get("n1.7f3a9c")}}, Sibling{
				Dot: Dot{"n2.0b11d4", x.Clock.Get("n2.0b11d4") + 5}, Value: bytes.Repeat([]byte{'z'}, 100),
			})
			b.ReportAllocs()
			for b.Loop() {
				_ = Merge(x, y)
			}
		})
	}
	// A replica's merge of a newer write into its copy: the write saw the copy.
	b.Run("superseding", func(b *testing.B) {
		x := benchObject(1, 10)
		y := x.Update(x.Clock, Sibling{Dot: Dot{"n2.0b11d4", x.Clock.Get("n2.0b11d4") + 1}, Value: bytes.Repeat([]byte{'z'}, 100)})
		b.ReportAllocs()
		for b.Loop() {
			_ = Merge(x, y)
		}
	})
	// A read's merges when its replicas agree: the first reply into nothing, then an
	// equal one (decoded apart).
	b.Run("in-step", func(b *testing.B) {
		x := benchObject(1, 10)
		y, err := Decode(x.AppendBinary(nil))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_ = Merge(Merge(Object{}, x), y)
		}
	})
}

func BenchmarkUpdate(b *testing.B) {
	for _, nsib := range []int{1, 3} {
		b.Run(fmt.Sprintf("siblings=%d", nsib), func(b *testing.B) {
			o := benchObject(nsib, 10)
			s := Sibling{Dot: Dot{"n1.7f3a9c", o.NextCounter("n1.7f3a9c", 0)}, Value: bytes.Repeat([]byte{'u'}, 100)}
			ctx := o.Clock
			b.ReportAllocs()
			for b.Loop() {
				_ = o.Update(ctx, s)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, nsib := range []int{1, 3} {
		b.Run(fmt.Sprintf("siblings=%d", nsib), func(b *testing.B) {
			o := benchObject(nsib, 1<<20)
			buf := make([]byte, 0, 1024)
			b.SetBytes(int64(o.Size()))
			b.ReportAllocs()
			for b.Loop() {
				buf = o.AppendBinary(buf[:0])
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, nsib := range []int{1, 3} {
		b.Run(fmt.Sprintf("siblings=%d", nsib), func(b *testing.B) {
			enc := benchObject(nsib, 1<<20).AppendBinary(nil)
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkContext(b *testing.B) {
	o := benchObject(3, 1<<20)
	s := EncodeContext(o.Clock, o.MaxTimestamp())
	b.ReportAllocs()
	for b.Loop() {
		_ = EncodeContext(o.Clock, o.MaxTimestamp())
		if _, _, err := DecodeContext(s); err != nil {
			b.Fatal(err)
		}
	}
}
