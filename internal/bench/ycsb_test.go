package bench

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestKeyNameMatchesYCSB: the first records of a YCSB load (insertorder=hashed) are named
// as YCSB's own load output names them.
func TestKeyNameMatchesYCSB(t *testing.T) {
	want := []string{"user6284781860667377211", "user8517097267634966620", "user1820151046732198393"}
	for n, w := range want {
		if got := KeyName(int64(n)); got != w {
			t.Errorf("KeyName(%d) = %s, want %s", n, got, w)
		}
	}
}

// TestWorkloadMix: over a fixed seed, each workload's drawn op types match YCSB's
// proportions within half a percentage point.
func TestWorkloadMix(t *testing.T) {
	want := map[string]map[Op]float64{
		"a": {OpRead: 0.5, OpUpdate: 0.5},
		"b": {OpRead: 0.95, OpUpdate: 0.05},
		"c": {OpRead: 1},
		"d": {OpRead: 0.95, OpInsert: 0.05},
		"e": {OpInsert: 0.05, OpScan: 0.95},
		"f": {OpRead: 0.5, OpReadModifyWrite: 0.5},
	}
	const draws = 200_000
	for name, mix := range want {
		w, err := LookupWorkload(strings.ToUpper(name))
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(7, 11))
		var got [numOps]int
		for range draws {
			got[w.Choose(r)]++
		}
		for op := range numOps {
			share := float64(got[op]) / draws
			if math.Abs(share-mix[op]) > 0.005 {
				t.Errorf("workload %s: %s share %.4f, want %.2f", name, op, share, mix[op])
			}
		}
	}
	if _, err := LookupWorkload("g"); err == nil {
		t.Error("workload g accepted")
	}
}

// TestZipfianSkewAndBounds: draws stay in [min, max], and item i comes up with the
// Zipfian probability (1/(i+1)^theta)/zeta(n).
func TestZipfianSkewAndBounds(t *testing.T) {
	const n, draws = 1000, 400_000
	z := NewZipfian(100, 100+n-1, ZipfianConstant)
	r := rand.New(rand.NewPCG(1, 2))
	counts := make([]int, n)
	for range draws {
		v := z.Next(r)
		if v < 100 || v >= 100+n {
			t.Fatalf("draw %d outside [100, %d]", v, 100+n-1)
		}
		counts[v-100]++
	}
	// Gray's method is exact for items 0 and 1 and approximates the rest by a continuous
	// curve (item 2 comes up about 15% more often than the exact 1/3^theta/zeta); the
	// cumulative shares follow the exact Zipfian's closely.
	zn := zeta(0, n, ZipfianConstant, 0)
	for i := range 2 {
		want := 1 / math.Pow(float64(i+1), ZipfianConstant) / zn
		if got := float64(counts[i]) / draws; math.Abs(got-want) > 0.05*want {
			t.Errorf("item %d: share %.4f, want %.4f", i, got, want)
		}
	}
	for _, k := range []int{10, 100, 500} {
		head := 0
		for _, c := range counts[:k] {
			head += c
		}
		want := zeta(0, int64(k), ZipfianConstant, 0) / zn
		if got := float64(head) / draws; math.Abs(got-want) > 0.03 {
			t.Errorf("items below %d: share %.3f, want %.3f", k, got, want)
		}
	}
	for i := 1; i < 20; i++ {
		if counts[i] > counts[i-1] {
			t.Errorf("item %d drawn more often than item %d: %d > %d", i, i-1, counts[i], counts[i-1])
		}
	}
}

// TestZipfianGrowsZetaIncrementally: extending the item count (as the latest distribution
// does after inserts) gives the zeta a fresh generator computes.
func TestZipfianGrowsZetaIncrementally(t *testing.T) {
	z := NewZipfian(0, 499, ZipfianConstant)
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int64{600, 601, 2000} {
		for range 100 {
			if v := z.nextLong(r, n); v < 0 || v >= n {
				t.Fatalf("draw %d outside [0, %d)", v, n)
			}
		}
		if want := zeta(0, n, ZipfianConstant, 0); math.Abs(z.zetan-want) > 1e-9 {
			t.Fatalf("zeta(%d) = %v, want %v", n, z.zetan, want)
		}
	}
}

// TestScrambledZipfian: draws stay in range, the hottest key is Zipfian item 0 hashed
// (not key 0), with its 1/zetan share, and a few keys take most of the skew.
func TestScrambledZipfian(t *testing.T) {
	const n, draws = 1000, 400_000
	s := NewScrambledZipfian(0, n-1)
	r := rand.New(rand.NewPCG(5, 6))
	counts := make([]int, n)
	for range draws {
		v := s.Next(r)
		if v < 0 || v >= n {
			t.Fatalf("draw %d outside [0, %d)", v, n)
		}
		counts[v]++
	}
	hot := fnvhash64(0) % n
	if hot == 0 || slices.Max(counts) != counts[hot] {
		t.Fatalf("hottest key %d (count %d), want %d (count %d)", slices.Index(counts, slices.Max(counts)), slices.Max(counts), hot, counts[hot])
	}
	// 1/zetan of the draws, plus the about 0.07% that the long tail hashes to each key.
	if share := float64(counts[hot]) / draws; share < 0.034 || share > 0.043 {
		t.Errorf("hottest key share %.4f, want about %.4f", share, 1/scrambledZetan)
	}
	sorted := slices.Clone(counts)
	slices.Sort(sorted)
	top := 0
	for _, c := range sorted[n-10:] {
		top += c
	}
	// Uniform keys would give the top 10 of 1000 about 1%; Zipfian items 0-9 alone carry
	// zeta(10)/zetan ≈ 11%.
	if share := float64(top) / draws; share < 0.09 {
		t.Errorf("top 10 keys drew %.3f of the draws", share)
	}
}

// TestLatest: draws fall in [1, Last], the newest record the most drawn; Last follows
// acknowledgements only once every earlier insert is acknowledged.
func TestLatest(t *testing.T) {
	ack := NewAckCounter(1000)
	l := NewLatest(ack)
	r := rand.New(rand.NewPCG(8, 9))
	check := func(last int64) {
		t.Helper()
		if ack.Last() != last {
			t.Fatalf("Last = %d, want %d", ack.Last(), last)
		}
		counts := map[int64]int{}
		for range 100_000 {
			v := l.Next(r)
			if v < 1 || v > last {
				t.Fatalf("draw %d outside [1, %d]", v, last)
			}
			counts[v]++
		}
		if counts[last] <= counts[last-1] || counts[last-1] <= counts[last-10] || counts[last-10] <= counts[last/2] {
			t.Fatalf("not skewed to the newest: %d %d %d %d", counts[last], counts[last-1], counts[last-10], counts[last/2])
		}
	}
	check(999)
	var ns []int64
	for range 10 {
		ns = append(ns, ack.Next())
	}
	if ns[0] != 1000 || ns[9] != 1009 {
		t.Fatalf("Next gave %v", ns)
	}
	for _, n := range ns[1:] {
		ack.Ack(n)
	}
	check(999) // 1000 is not acknowledged yet
	ack.Ack(ns[0])
	check(1009)
}

// memStore is a Store in memory: contexts count the writes of a key; failPut makes a put
// fail.
type memStore struct {
	mu       sync.Mutex
	vals     map[string][]byte
	writes   map[string]int
	puts     int
	rmwPuts  int // puts that passed a context
	failed   int
	failPut  func(n int) bool
	sizeSeen map[int]bool
	scans    int
	badScans int // scans of a length outside 1..MaxScanLength
}

func newMemStore() *memStore {
	return &memStore{vals: map[string][]byte{}, writes: map[string]int{}, sizeSeen: map[int]bool{}}
}

func (s *memStore) Get(_ context.Context, key string) (bool, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.vals[key]
	return ok, strings.Repeat("c", s.writes[key]), nil
}

func (s *memStore) Put(_ context.Context, key string, value []byte, causal string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.failPut != nil && s.failPut(s.puts) {
		s.failed++
		return errors.New("unavailable")
	}
	if causal != "" {
		s.rmwPuts++
	}
	s.vals[key] = value
	s.writes[key]++
	s.sizeSeen[len(value)] = true
	return nil
}

// Scan counts scans and reads up to n keys: those present, in key order from key (the
// memory store's order).
func (s *memStore) Scan(_ context.Context, key string, n int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scans++
	if n < 1 || n > MaxScanLength {
		s.badScans++
	}
	got := 0
	for k := range s.vals {
		if k >= key && got < n {
			got++
		}
	}
	return got, nil
}

func ycsbTestConfig(w string, stores int) YCSBConfig {
	cfg := DefaultYCSBConfig()
	cfg.Workload = Workloads[w]
	cfg.Records, cfg.Operations, cfg.Clients, cfg.RecordBytes = 500, 4000, 6, 64
	cfg.Addrs = make([]string, stores)
	return cfg
}

// TestRunYCSBCountsAddUp runs each workload over in-memory stores: every op is counted
// once, by type, in proportions near the mix; reads find the loaded and inserted records;
// read-modify-writes pass the context they read.
func TestRunYCSBCountsAddUp(t *testing.T) {
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		st := newMemStore()
		cfg := ycsbTestConfig(name, 3)
		rep, err := runYCSB(context.Background(), cfg, []Store{st, st, st})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Load == nil || rep.Load.Total.Ops != 500 || len(rep.Load.ByOp) != 1 || rep.Load.ByOp[0].Op != "insert" {
			t.Fatalf("%s: load %+v", name, rep.Load)
		}
		var sum, errs, nf int64
		byOp := map[string]int64{}
		for _, o := range rep.Run.ByOp {
			sum, errs, nf = sum+o.Ops, errs+o.Errors, nf+o.NotFound
			byOp[o.Op] = o.Ops
			if o.P50US <= 0 || o.P999US < o.P50US || o.MaxUS < o.P999US {
				t.Errorf("%s %s: percentiles %+v", name, o.Op, o)
			}
		}
		if sum != 4000 || rep.Run.Total.Ops != 4000 || errs != 0 || nf != 0 || rep.Run.Total.NotFound != 0 {
			t.Fatalf("%s: run total %+v, by op %v (sum %d, errors %d, not found %d)", name, rep.Run.Total, byOp, sum, errs, nf)
		}
		for op, p := range Workloads[name].Mix {
			if got := float64(byOp[Op(op).String()]) / 4000; math.Abs(got-p) > 0.05 {
				t.Errorf("%s: %s share %.3f, want %.2f", name, Op(op), got, p)
			}
		}
		wantKeys := 500 + int(byOp["insert"])
		if len(st.vals) != wantKeys {
			t.Errorf("%s: %d keys stored, want %d", name, len(st.vals), wantKeys)
		}
		if int64(st.scans) != byOp["scan"] || st.badScans != 0 {
			t.Errorf("%s: %d scans (%d of a bad length), want %d", name, st.scans, st.badScans, byOp["scan"])
		}
		if int64(st.rmwPuts) != byOp["read_modify_write"] {
			t.Errorf("%s: %d puts with a context, want %d", name, st.rmwPuts, byOp["read_modify_write"])
		}
		if len(st.sizeSeen) != 1 || !st.sizeSeen[64] {
			t.Errorf("%s: record sizes %v", name, st.sizeSeen)
		}
		var out strings.Builder
		rep.WriteText(&out)
		if !strings.Contains(out.String(), "load  INSERT") || !strings.Contains(out.String(), "run   TOTAL") {
			t.Errorf("%s: text\n%s", name, out.String())
		}
	}
}

// TestRunYCSBCountsErrors: failed writes are counted as errors of their op type and add
// up; a load phase that fails entirely stops with ErrLoadFailed.
func TestRunYCSBCountsErrors(t *testing.T) {
	st := newMemStore()
	st.failPut = func(n int) bool { return n > 500 && n%10 == 0 }
	rep, err := runYCSB(context.Background(), ycsbTestConfig("a", 1), []Store{st})
	if err != nil {
		t.Fatal(err)
	}
	var upd OpReport
	for _, o := range rep.Run.ByOp {
		if o.Op == "update" {
			upd = o
		}
	}
	if upd.Errors != int64(st.failed) || rep.Run.Total.Errors != int64(st.failed) || st.failed == 0 {
		t.Fatalf("update errors %d, total %d, store failed %d", upd.Errors, rep.Run.Total.Errors, st.failed)
	}
	if rep.Run.FirstError != "unavailable" {
		t.Fatalf("first error %q", rep.Run.FirstError)
	}

	st = newMemStore()
	st.failPut = func(int) bool { return true }
	rep, err = runYCSB(context.Background(), ycsbTestConfig("a", 1), []Store{st})
	if !errors.Is(err, ErrLoadFailed) || rep == nil || rep.Load.Total.Errors != 500 {
		t.Fatalf("all inserts failing: %v, %+v", err, rep)
	}
}
