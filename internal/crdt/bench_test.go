package crdt

import (
	"strconv"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/version"
)

func BenchmarkCounterIncrement(b *testing.B) {
	s := New(Counter)
	for _, a := range []string{"n1.aa", "n2.bb", "n3.cc", "n4.dd", "n5.ee"} {
		s = mustApply(b, s, Op{Increment: i64(1)}, a, 1)
	}
	op := Op{Increment: i64(1)}
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if s, err = Apply(s, op, "n3.cc", version.HLC{}); err != nil {
			b.Fatal(err)
		}
	}
}

func bigSet(b *testing.B, n int, actor string) State {
	add := make([]string, n)
	for i := range add {
		add[i] = "element-" + strconv.Itoa(i)
	}
	return mustApply(b, New(Set), Op{Add: add}, actor, 1)
}

// BenchmarkSetAdd adds one element to a set of 1k elements (the cost is the
// copy of the immutable element slice) and encodes it, as a coordinator does.
func BenchmarkSetAdd(b *testing.B) {
	s := bigSet(b, 1000, "n1.aa")
	op := Op{Add: []string{"element-500x"}}
	b.ReportAllocs()
	for b.Loop() {
		out, err := Apply(s, op, "n2.bb", version.HLC{})
		if err != nil {
			b.Fatal(err)
		}
		_ = out.Encode()
	}
}

// BenchmarkMergeSet merges two replicas of a 1k-element set that diverged:
// each added 100 elements and removed 100 the other still holds.
func BenchmarkMergeSet(b *testing.B) {
	base := bigSet(b, 1000, "n1.aa")
	x, y := base, base
	for i := range 100 {
		x = mustApply(b, x, Op{Add: []string{"x-" + strconv.Itoa(i)}, Remove: []string{"element-" + strconv.Itoa(i)}}, "n2.bb", 1)
		y = mustApply(b, y, Op{Add: []string{"y-" + strconv.Itoa(i)}, Remove: []string{"element-" + strconv.Itoa(999-i)}}, "n3.cc", 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Merge(x, y); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSet(b *testing.B) {
	enc := bigSet(b, 1000, "n1.aa").Encode()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFoldRegister: a Redis string read (GET) folds one register sibling.
func BenchmarkFoldRegister(b *testing.B) {
	s, err := Apply(New(Register), Op{Assign: new(string(strings.Repeat("x", 100)))}, "n1.ab", version.HLC{Wall: 1})
	if err != nil {
		b.Fatal(err)
	}
	obj := version.Object{Siblings: []version.Sibling{{Dot: version.Dot{Actor: "n1.ab", Counter: 1}, Value: s.Encode()}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Fold(obj); err != nil {
			b.Fatal(err)
		}
	}
}
