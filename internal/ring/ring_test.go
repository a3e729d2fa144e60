package ring

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"pgregory.net/rapid"
)

func mustNew(t interface {
	Helper()
	Fatalf(string, ...any)
}, q int, ms []Member) *Ring {
	t.Helper()
	r, err := New(Config{Partitions: q}, ms)
	if err != nil {
		t.Fatalf("New(Q=%d, %v): %v", q, ms, err)
	}
	return r
}

func nodes(n int, zones ...string) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i].ID = NodeID(fmt.Sprintf("n%02d", i))
		if len(zones) > 0 {
			ms[i].Zone = zones[i%len(zones)]
		}
	}
	return ms
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		q  int
		ok bool
	}{
		{-1, false}, {0, false}, {1, true}, {2, true}, {3, false}, {64, true},
		{256, true}, {257, false}, {1 << 16, true}, {1 << 17, false},
	} {
		err := Config{Partitions: tc.q}.Validate()
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("Partitions=%d: Validate() = %v, want ok=%v", tc.q, err, tc.ok)
		}
	}
	if err := DefaultConfig().Validate(); err != nil || DefaultConfig().Partitions != 256 {
		t.Errorf("DefaultConfig() = %+v, Validate() = %v", DefaultConfig(), err)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    int
		ms   []Member
		want error
	}{
		{"bad config", 3, nodes(2), ErrInvalidConfig},
		{"no members", 8, nil, ErrNoMembers},
		{"empty ID", 8, []Member{{ID: "a"}, {ID: ""}}, ErrEmptyID},
		{"duplicate", 8, []Member{{ID: "a"}, {ID: "b"}, {ID: "a", Zone: "z"}}, ErrDuplicateMember},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(Config{Partitions: tc.q}, tc.ms); !errors.Is(err, tc.want) {
				t.Fatalf("New() error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBasics(t *testing.T) {
	in := []Member{{ID: "c", Zone: "z2"}, {ID: "a", Zone: "z1"}, {ID: "b", Zone: "z1"}}
	r := mustNew(t, 16, in)
	in[0].ID = "mutated" // New must copy
	want := []Member{{ID: "a", Zone: "z1"}, {ID: "b", Zone: "z1"}, {ID: "c", Zone: "z2"}}
	if got := r.Members(); !slices.Equal(got, want) {
		t.Fatalf("Members() = %v, want %v", got, want)
	}
	if r.Partitions() != 16 || !r.Has("a") || r.Has("mutated") {
		t.Fatalf("Partitions/Has wrong")
	}
	total := 0
	for _, m := range want {
		ps := r.PartitionsOf(m.ID)
		if !slices.IsSorted(ps) {
			t.Errorf("PartitionsOf(%s) = %v, not ascending", m.ID, ps)
		}
		for _, p := range ps {
			if r.Owner(p) != m.ID {
				t.Errorf("PartitionsOf(%s) has %d owned by %s", m.ID, p, r.Owner(p))
			}
		}
		total += len(ps)
	}
	if total != 16 || r.PartitionsOf("nope") != nil {
		t.Fatalf("PartitionsOf: total %d, unknown %v", total, r.PartitionsOf("nope"))
	}
	if r.Preference(0, 0) != nil || r.Preference(0, -1) != nil {
		t.Fatalf("Preference with n <= 0 should be nil")
	}
	if got := r.Preference(5, 10); len(got) != 3 {
		t.Fatalf("Preference(5, 10) = %v, want 3 members", got)
	}
	for _, p := range []int{-1, 16} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Preference(%d, 1) did not panic", p)
				}
			}()
			r.Preference(p, 1)
		}()
	}
}

func TestKeyHash(t *testing.T) {
	long := strings.Repeat("k", 300)
	for _, tc := range []struct{ b, k string }{
		{"", ""}, {"b", "k"}, {"users", "alice"}, {"b", long}, {long, ""},
		{strings.Repeat("b", 63), strings.Repeat("k", 64)}, // exactly 128 bytes
	} {
		if got, want := KeyHash(tc.b, tc.k), xxhash.Sum64String(tc.b+"\x00"+tc.k); got != want {
			t.Errorf("KeyHash(%.10q, %.10q) = %x, want %x", tc.b, tc.k, got, want)
		}
	}
	// Pinned: the hash is part of the on-disk and on-wire contract.
	if got := KeyHash("b", "k"); got != 0x41cd9702e90c3104 {
		t.Errorf("KeyHash(b, k) = %#x changed", got)
	}
	if KeyHash("a", "bc") == KeyHash("ab", "c") {
		t.Errorf("bucket/key boundary is not separated")
	}
}

func TestPartitionForHash(t *testing.T) {
	for _, tc := range []struct {
		q    int
		h    uint64
		want int
	}{
		{1, math.MaxUint64, 0},
		{2, 1 << 63, 1},
		{2, 1<<63 - 1, 0},
		{256, 0xab00000000000000, 0xab},
		{256, 0xabffffffffffffff, 0xab},
		{1 << 16, 0x1234ffffffffffff, 0x1234},
	} {
		r := mustNew(t, tc.q, nodes(1))
		if got := r.PartitionForHash(tc.h); got != tc.want {
			t.Errorf("Q=%d PartitionForHash(%#x) = %d, want %d", tc.q, tc.h, got, tc.want)
		}
	}
	r := mustNew(t, 256, nodes(3))
	if got, want := r.PartitionOf("b", "k"), int(KeyHash("b", "k")>>56); got != want {
		t.Errorf("PartitionOf = %d, want %d", got, want)
	}
}

// TestGolden pins the owner map: every node of a cluster, whatever its
// release, must compute the same map from the same member set.
func TestGolden(t *testing.T) {
	r := mustNew(t, 16, nodes(3))
	var b strings.Builder
	for p := range 16 {
		b.WriteString(string(r.Owner(p))[2:])
	}
	const want = "0220200121201121"
	if got := b.String(); got != want {
		t.Errorf("owner map = %s, want %s", got, want)
	}
}

// TestEmptyZone documents the zone model: "" is one zone like any other.
func TestEmptyZone(t *testing.T) {
	// All members zone-less: a single zone, so Walk is the plain ring walk.
	plain := mustNew(t, 64, nodes(5))
	for p := range 64 {
		if got, want := plain.Walk(p), ringOrder(plain, p); !slices.Equal(got, want) {
			t.Fatalf("p=%d Walk = %v, want plain ring order %v", p, got, want)
		}
	}
	// Mixed: the zone-less members together are zone "", so with zones
	// {"", "z"} the first two primaries are one zone-less member and c.
	r := mustNew(t, 64, []Member{{ID: "a"}, {ID: "b"}, {ID: "c", Zone: "z"}})
	for p := range 64 {
		pl := r.Preference(p, 2)
		if !slices.Contains(pl, "c") {
			t.Fatalf("p=%d Preference(2) = %v, want c (the only member of zone z)", p, pl)
		}
	}
}

// ringOrder is the owners of p, p+1, ... without duplicates, then the
// non-owners in ID order: the candidate sequence.
func ringOrder(r *Ring, p int) []NodeID {
	var out []NodeID
	q := r.Partitions()
	for i := range q {
		if o := r.Owner((p + i) % q); !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	for _, m := range r.Members() {
		if !slices.Contains(out, m.ID) {
			out = append(out, m.ID)
		}
	}
	return out
}

// naiveWalk is the definition of Walk written as plainly as possible.
func naiveWalk(r *Ring, p int) []NodeID {
	zone := map[NodeID]string{}
	for _, m := range r.Members() {
		zone[m.ID] = m.Zone
	}
	cand := ringOrder(r, p)
	var out []NodeID
	used := map[string]bool{}
	for _, id := range cand {
		if !used[zone[id]] {
			used[zone[id]] = true
			out = append(out, id)
		}
	}
	for _, id := range cand {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// naiveAssign is the specification of ownership: all pairs sorted by score
// descending, partition ascending, member ID ascending; take a pair when the
// partition is free and the member under capacity.
func naiveAssign(q int, ms []Member) []NodeID {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	hashes := make([]uint64, len(ms))
	for i, m := range ms {
		hashes[i] = xxhash.Sum64String(string(m.ID))
	}
	caps := capacities(q, hashes)
	type pair struct {
		s    uint64
		p, m int
	}
	var pairs []pair
	for p := range q {
		for m := range ms {
			pairs = append(pairs, pair{score(hashes[m], p), p, m})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if a.s != b.s {
			if a.s > b.s {
				return -1
			}
			return 1
		}
		if a.p != b.p {
			return a.p - b.p
		}
		return a.m - b.m
	})
	owner := make([]NodeID, q)
	for _, pr := range pairs {
		if owner[pr.p] == "" && caps[pr.m] > 0 {
			owner[pr.p] = ms[pr.m].ID
			caps[pr.m]--
		}
	}
	return owner
}

var zoneNames = []string{"", "za", "zb", "zc", "zd"}

func genMembers(t *rapid.T, maxN int) []Member {
	ids := rapid.SliceOfNDistinct(rapid.IntRange(0, 10000), 1, maxN, rapid.ID[int]).Draw(t, "ids")
	nz := rapid.IntRange(1, len(zoneNames)).Draw(t, "zones")
	ms := make([]Member, len(ids))
	for i, id := range ids {
		ms[i] = Member{ID: NodeID(fmt.Sprintf("node-%d", id)), Zone: rapid.SampledFrom(zoneNames[:nz]).Draw(t, "zone")}
	}
	return ms
}

func genQ(t *rapid.T) int { return 1 << rapid.IntRange(0, 9).Draw(t, "log2Q") }

func TestPropDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		q, ms := genQ(t), genMembers(t, 24)
		a := mustNew(t, q, ms)
		b := mustNew(t, q, rapid.Permutation(ms).Draw(t, "perm"))
		for p := range q {
			if a.Owner(p) != b.Owner(p) || !slices.Equal(a.Walk(p), b.Walk(p)) {
				t.Fatalf("p=%d differs under permutation", p)
			}
		}
	})
}

func TestPropBalanced(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		q, ms := genQ(t), genMembers(t, 40)
		r := mustNew(t, q, ms)
		lo, hi := q, 0
		for _, m := range ms {
			c := len(r.PartitionsOf(m.ID))
			lo, hi = min(lo, c), max(hi, c)
		}
		if hi-lo > 1 {
			t.Fatalf("partition counts range [%d, %d]", lo, hi)
		}
	})
}

func TestPropAssignMatchesNaive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		q, ms := genQ(t), genMembers(t, 24)
		r := mustNew(t, q, ms)
		want := naiveAssign(q, ms)
		for p := range q {
			if r.Owner(p) != want[p] {
				t.Fatalf("Owner(%d) = %s, naive %s", p, r.Owner(p), want[p])
			}
		}
	})
}

func TestPropPreference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		q, ms := genQ(t), genMembers(t, 24)
		r := mustNew(t, q, ms)
		p := rapid.IntRange(0, q-1).Draw(t, "p")
		walk := r.Walk(p)
		if got := naiveWalk(r, p); !slices.Equal(walk, got) {
			t.Fatalf("Walk(%d) = %v, naive %v", p, walk, got)
		}
		if walk[0] != r.Owner(p) {
			t.Fatalf("Walk(%d) starts with %s, owner is %s", p, walk[0], r.Owner(p))
		}
		seen := map[NodeID]bool{}
		for _, id := range walk {
			if seen[id] || !r.Has(id) {
				t.Fatalf("Walk(%d) = %v: duplicate or unknown %s", p, walk, id)
			}
			seen[id] = true
		}
		if len(walk) != len(ms) {
			t.Fatalf("Walk(%d) has %d members, want %d", p, len(walk), len(ms))
		}
		zones := map[string]bool{}
		zoneOf := map[NodeID]string{}
		for _, m := range ms {
			zones[m.Zone] = true
			zoneOf[m.ID] = m.Zone
		}
		for n := 0; n <= len(ms)+2; n++ {
			pl := r.Preference(p, n)
			if len(pl) != min(n, len(ms)) || !slices.Equal(pl, walk[:len(pl)]) {
				t.Fatalf("Preference(%d, %d) = %v, not a prefix of Walk %v", p, n, pl, walk)
			}
			used := map[string]bool{}
			for _, id := range pl[:min(n, len(zones))] {
				if used[zoneOf[id]] {
					t.Fatalf("Preference(%d, %d) = %v repeats zone %q with %d zones", p, n, pl, zoneOf[id], len(zones))
				}
				used[zoneOf[id]] = true
			}
		}
	})
}

// TestWideClusters covers walks longer than the precomputed table and
// clusters with more members than partitions.
func TestWideClusters(t *testing.T) {
	for _, tc := range []struct{ q, n int }{{4, 10}, {16, 70}, {256, 70}, {64, 64}, {64, 65}} {
		r := mustNew(t, tc.q, nodes(tc.n, "a", "b", "c"))
		for p := range tc.q {
			want := naiveWalk(r, p)
			if got := r.Walk(p); !slices.Equal(got, want) {
				t.Fatalf("Q=%d n=%d Walk(%d) = %v, want %v", tc.q, tc.n, p, got, want)
			}
			for _, n := range []int{1, 3, 63, 64, 65, tc.n} {
				if got := r.Preference(p, n); !slices.Equal(got, want[:min(n, tc.n)]) {
					t.Fatalf("Q=%d n=%d Preference(%d, %d) = %v", tc.q, tc.n, p, n, got)
				}
			}
		}
	}
}

// moves counts partitions whose owner differs, and the least any balanced
// assignment could move: the partitions the gaining members must receive.
func moves(a, b *Ring) (moved, ideal int) {
	ca, cb := map[NodeID]int{}, map[NodeID]int{}
	for p := range a.Partitions() {
		if a.Owner(p) != b.Owner(p) {
			moved++
		}
		ca[a.Owner(p)]++
		cb[b.Owner(p)]++
	}
	for id, c := range cb {
		ideal += max(0, c-ca[id])
	}
	return moved, ideal
}

// moveBound is the measured worst case of one join or leave (see
// TestMovement): balance forces an old member that lost more than its share
// to the newcomer to take partitions back from one that lost fewer, so the
// excess grows like sqrt(Q) rather than being a fraction of Q/n.
func moveBound(q, ideal int) int {
	return int(1.3*float64(ideal) + 2*math.Sqrt(float64(q)) + 2)
}

func TestMovement(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	trials := 40
	if testing.Short() {
		trials = 5
	}
	for _, q := range []int{16, 64, 256, 1024} {
		for _, n := range []int{1, 2, 3, 4, 5, 8, 12, 16, 32, 64} {
			worst, sumMoved, sumIdeal := 0.0, 0, 0
			for range trials {
				ms := make([]Member, n+1)
				for i := range ms {
					ms[i] = Member{ID: NodeID(fmt.Sprintf("n%d-%x", i, rng.Uint64()))}
				}
				small, big := mustNew(t, q, ms[:n]), mustNew(t, q, ms)
				drop := rng.IntN(n + 1) // remove a random member of big
				rest := slices.Delete(slices.Clone(ms), drop, drop+1)
				for _, c := range []struct {
					name     string
					from, to *Ring
				}{
					{"add", small, big},
					{"remove", big, mustNew(t, q, rest)},
				} {
					moved, ideal := moves(c.from, c.to)
					if moved > moveBound(q, ideal) {
						t.Errorf("Q=%d %s at n=%d: moved %d, ideal %d, bound %d", q, c.name, n, moved, ideal, moveBound(q, ideal))
					}
					sumMoved += moved
					sumIdeal += ideal
					worst = max(worst, float64(moved)/float64(max(ideal, 1)))
				}
			}
			t.Logf("Q=%4d n=%2d±1: moved/ideal mean %.2f worst %.2f", q, n, float64(sumMoved)/float64(sumIdeal), worst)
		}
	}
}

func TestAllocs(t *testing.T) {
	r := mustNew(t, 256, nodes(5))
	buf := make([]NodeID, 0, 8)
	if a := testing.AllocsPerRun(100, func() { _ = r.PartitionOf("bucket", "some-key") }); a != 0 {
		t.Errorf("PartitionOf allocates %v", a)
	}
	if a := testing.AllocsPerRun(100, func() { buf = r.AppendPreference(buf[:0], 7, 3) }); a != 0 {
		t.Errorf("AppendPreference allocates %v", a)
	}
}

func BenchmarkPartitionOf(b *testing.B) {
	r := mustNew(b, 256, nodes(5))
	b.ReportAllocs()
	for b.Loop() {
		_ = r.PartitionOf("users", "user:1234567890")
	}
}

func BenchmarkPreference(b *testing.B) {
	r := mustNew(b, 256, nodes(5, "a", "b", "c"))
	b.ReportAllocs()
	p := 0
	for b.Loop() {
		_ = r.Preference(p, 3)
		p = (p + 1) & 255
	}
}

func BenchmarkAppendPreference(b *testing.B) {
	r := mustNew(b, 256, nodes(5, "a", "b", "c"))
	buf := make([]NodeID, 0, 3)
	b.ReportAllocs()
	p := 0
	for b.Loop() {
		buf = r.AppendPreference(buf[:0], p, 3)
		p = (p + 1) & 255
	}
}

func BenchmarkNew(b *testing.B) {
	for _, n := range []int{5, 64} {
		b.Run(fmt.Sprintf("Q=256/nodes=%d", n), func(b *testing.B) {
			ms := nodes(n, "a", "b", "c")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := New(Config{Partitions: 256}, ms); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
