package sim

import (
	"math"
	"testing"
)

func TestClosedFormStale(t *testing.T) {
	cases := []struct {
		n, r, w int
		want    float64
	}{
		{3, 1, 1, 2.0 / 3},
		{3, 1, 2, 1.0 / 3},
		{3, 2, 1, 1.0 / 3},
		{3, 2, 2, 0},
		{3, 1, 3, 0},
		{3, 3, 1, 0},
		{5, 1, 1, 4.0 / 5},
		{5, 2, 2, 3.0 / 10},
		{5, 2, 3, 1.0 / 10}, // r+w = n: still a partial quorum
		{5, 3, 3, 0},
		{10, 3, 3, 35.0 / 120},
		{100, 30, 30, 1.88e-6}, // the PBS paper's example
		{1, 1, 1, 0},
		{3, 0, 1, 1},  // reading nobody never sees the write
		{3, 4, 1, 0},  // out of range
		{0, 0, 0, 0},  // out of range
		{3, 1, -1, 0}, // out of range
	}
	for _, c := range cases {
		got := ClosedFormStale(c.n, c.r, c.w)
		tol := 1e-12
		if c.want != 0 && c.want < 1e-3 {
			tol = c.want * 0.01
		}
		if math.Abs(got-c.want) > tol {
			t.Errorf("ClosedFormStale(%d, %d, %d) = %g, want %g", c.n, c.r, c.w, got, c.want)
		}
	}
}

func TestClosedFormStaleStoring(t *testing.T) {
	cases := []struct {
		n, r, w int
		want    float64
	}{
		{3, 1, 1, 1.0 / 3}, // 1/3 · (2/3 + 1/3 + 0)
		{3, 1, 2, 2.0 / 9}, // 1/3 · (1/3 + 1/3 + 0)
		{3, 2, 1, 1.0 / 9}, // 1/3 · (1/3 + 0 + 0)
		{5, 1, 1, 0.4},     // 1/5 · (4/5 + 3/5 + 2/5 + 1/5 + 0)
		{5, 2, 2, 0.14},    // 1/5 · (3/10 + 3/10 + 1/10 + 0 + 0)
		{5, 1, 3, 0.28},    // 1/5 · (2/5 + 2/5 + 2/5 + 1/5 + 0)
		{3, 2, 2, 0},       // strict quorum
		{1, 1, 1, 0},       // the coordinator is the only replica
		{3, 4, 1, 0},       // out of range
		{0, 0, 0, 0},       // out of range
		{10, 3, 3, (3*35 + 20 + 10 + 4 + 1) / 120.0 / 10}, // C(7,3) thrice, then C(6..3, 3)
	}
	for _, c := range cases {
		if got := ClosedFormStaleStoring(c.n, c.r, c.w); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("ClosedFormStaleStoring(%d, %d, %d) = %g, want %g", c.n, c.r, c.w, got, c.want)
		}
		if c.n >= 1 && c.r <= c.n && c.w <= c.n && ClosedFormStaleStoring(c.n, c.r, c.w) > ClosedFormStale(c.n, c.r, c.w) {
			t.Errorf("(%d, %d, %d): a storing coordinator can only be fresher than a proxy", c.n, c.r, c.w)
		}
	}
}
