package hints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/version"
)

// obj returns a fresh single-sibling object written by actor with the
// given counter (concurrent with every other such object of another actor).
func obj(actor string, counter uint64, value string) version.Object {
	return version.Object{}.Update(nil, version.Sibling{
		Dot:       version.Dot{Actor: actor, Counter: counter},
		Value:     []byte(value),
		Timestamp: version.HLC{Wall: int64(counter)},
	})
}

func openMem(t testing.TB, cfg Config) (*Store, *storage.Memory) {
	t.Helper()
	m := storage.NewMemory()
	s, err := Open(m, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, m
}

func statsOf(s *Store, target string) TargetStats {
	for _, ts := range s.Stats() {
		if ts.Target == target {
			return ts
		}
	}
	return TargetStats{Target: target}
}

// drain reads every hint of target with the given batch size.
func drain(t interface {
	Helper()
	Fatalf(string, ...any)
	Fatal(...any)
}, s *Store, target string, maxBytes int) []Hint {
	t.Helper()
	var all []Hint
	var cur []byte
	for i := 0; ; i++ {
		hs, next, err := s.Batch(target, cur, maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, hs...)
		if next == nil {
			return all
		}
		if len(hs) == 0 {
			t.Fatalf("batch %d: no hints but a cursor", i)
		}
		cur = next
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{{Window: 0, MaxBytesPerTarget: 1}, {Window: time.Second, MaxBytesPerTarget: 0}} {
		if c.Validate() == nil {
			t.Errorf("%+v: want an error", c)
		}
		if _, err := Open(storage.NewMemory(), c, nil); err == nil {
			t.Errorf("Open with %+v: want an error", c)
		}
	}
}

func TestAddGetMerge(t *testing.T) {
	s, _ := openMem(t, DefaultConfig())
	a, b := obj("n1.aa", 1, "a"), obj("n2.bb", 1, "b")
	if err := s.Add("n3", "bk", "k", a, 100, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("n3", "bk", "k", b, 200, true); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get("n3", "bk", "k")
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if want := version.Merge(a, b); !got.Equal(want) || len(got.Siblings) != 2 {
		t.Fatalf("Get = %v, want both siblings %v", got, want)
	}
	// A write superseding a drops it; b stays (a hint never loses a sibling it held
	// that the new object has not seen).
	a2 := a.Update(a.Clock, version.Sibling{Dot: version.Dot{Actor: "n1.aa", Counter: 2}, Value: []byte("a2")})
	if err := s.Add("n3", "bk", "k", a2, 300, false); err != nil {
		t.Fatal(err)
	}
	got, _, _ = s.Get("n3", "bk", "k")
	if !got.Equal(version.Merge(version.Merge(a, b), a2)) || len(got.Siblings) != 2 {
		t.Fatalf("after superseding write: %v", got)
	}
	if _, ok, err := s.Get("n3", "bk", "other"); ok || err != nil {
		t.Fatalf("absent key: %v %v", ok, err)
	}
	st := statsOf(s, "n3")
	if st.Pending != 1 || st.OldestMs != 300 || st.Bytes <= 0 {
		t.Fatalf("stats %+v", st)
	}
	hs := drain(t, s, "n3", 1<<20)
	if len(hs) != 1 || hs[0].UpdatedMs != 300 || hs[0].Bucket != "bk" || hs[0].Key != "k" {
		t.Fatalf("batch %+v", hs)
	}
	if got := s.Targets(); len(got) != 1 || got[0] != "n3" {
		t.Fatalf("Targets %v", got)
	}
}

func TestAddRejectsBadNames(t *testing.T) {
	s, _ := openMem(t, DefaultConfig())
	o := obj("n1.aa", 1, "v")
	for _, c := range []struct{ target, bucket string }{{"", "b"}, {"n\x001", "b"}, {"n1", "b\x00"}} {
		if err := s.Add(c.target, c.bucket, "k", o, 1, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("Add(%q, %q): %v, want ErrInvalid", c.target, c.bucket, err)
		}
	}
	// A key may hold NUL: it is last in the layout.
	if err := s.Add("n1", "b", "k\x00\x00x", o, 1, false); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get("n1", "b", "k\x00\x00x"); !ok || err != nil {
		t.Fatalf("Get: %v %v", ok, err)
	}
	if hs := drain(t, s, "n1", 0); len(hs) != 1 || hs[0].Key != "k\x00\x00x" {
		t.Fatalf("batch %+v", hs)
	}
	if err := s.Add("n1", "b", "k", version.Object{Siblings: []version.Sibling{{Dot: version.Dot{Actor: "x", Counter: 1}}}}, 1, false); !errors.Is(err, version.ErrCorrupt) {
		t.Fatalf("invalid object: %v", err)
	}
}

// countingHandler counts log records by level.
type countingHandler struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[r.Level]++
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[l]
}

func TestByteBound(t *testing.T) {
	o := obj("n1.aa", 1, "0123456789")
	size := int64(len(storeKey("t", "b", "k00")) + len(encodeRecord(1000, o)))
	cfg := DefaultConfig()
	cfg.MaxBytesPerTarget = 3*size + size/2
	h := &countingHandler{counts: map[slog.Level]int{}}
	s, err := Open(storage.NewMemory(), cfg, slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Add("t", "b", fmt.Sprintf("k%02d", i), o, 1000, false); err != nil {
			t.Fatal(err)
		}
	}
	for i, now := range []int64{1000, 1001, 30_000, 61_000} {
		err := s.Add("t", "b", fmt.Sprintf("k%02d", 10+i), o, now, false)
		if !errors.Is(err, ErrFull) {
			t.Fatalf("Add %d: %v, want ErrFull", i, err)
		}
		if _, ok, _ := s.Get("t", "b", fmt.Sprintf("k%02d", 10+i)); ok {
			t.Fatal("a refused hint was stored")
		}
	}
	// Growing an existing hint past the bound is refused too, and the hint is kept.
	big := obj("n2.bb", 1, string(make([]byte, size)))
	if err := s.Add("t", "b", "k00", big, 2000, false); !errors.Is(err, ErrFull) {
		t.Fatalf("growing add: %v", err)
	}
	if got, _, _ := s.Get("t", "b", "k00"); !got.Equal(o) {
		t.Fatalf("hint changed by a refused add: %v", got)
	}
	// Another target has its own bound.
	if err := s.Add("u", "b", "k00", o, 1000, false); err != nil {
		t.Fatal(err)
	}
	st := statsOf(s, "t")
	if st.Dropped != 5 || st.Pending != 3 || st.Bytes != 3*size || st.Bytes > cfg.MaxBytesPerTarget {
		t.Fatalf("stats %+v (size %d)", st, size)
	}
	// One line at 1000, suppressed at 1001, 2000 and 30000, one at 61000.
	if n := h.count(slog.LevelWarn); n != 2 {
		t.Fatalf("%d warn lines, want 2 (rate limited)", n)
	}
}

func TestBatchPagination(t *testing.T) {
	s, _ := openMem(t, DefaultConfig())
	want := map[string]bool{}
	for i := range 100 {
		k := fmt.Sprintf("k%03d", (i*37)%100)
		for _, target := range []string{"a", "ab", "b"} { // "ab" shares a prefix with "a"
			if err := s.Add(target, "bk", k, obj("n1.aa", uint64(i+1), k), int64(i), false); err != nil {
				t.Fatal(err)
			}
		}
		want[k] = true
	}
	for _, maxBytes := range []int{0, 1, 50, 200, 1 << 20} {
		hs := drain(t, s, "a", maxBytes)
		if len(hs) != 100 {
			t.Fatalf("maxBytes %d: %d hints, want 100", maxBytes, len(hs))
		}
		seen := map[string]bool{}
		for i, h := range hs {
			if h.Target != "a" || !want[h.Key] || seen[h.Key] {
				t.Fatalf("maxBytes %d: bad or repeated hint %+v", maxBytes, h)
			}
			if i > 0 && hs[i-1].Key >= h.Key {
				t.Fatalf("not in key order at %d", i)
			}
			seen[h.Key] = true
			o, err := version.Decode(h.Object)
			if err != nil || string(o.Siblings[0].Value) != h.Key {
				t.Fatalf("hint object %v %v", o, err)
			}
		}
	}
	// Batches respect maxBytes beyond their first hint.
	hs, next, err := s.Batch("a", nil, 200)
	if err != nil || next == nil {
		t.Fatal(err)
	}
	total := 0
	for _, h := range hs {
		total += len(h.Object)
	}
	if total > 200 || len(hs) < 2 {
		t.Fatalf("batch of %d hints, %d bytes", len(hs), total)
	}
	if _, _, err := s.Batch("b", next, 10); !errors.Is(err, ErrInvalid) {
		t.Fatalf("foreign cursor: %v", err)
	}
	if hs, next, err := s.Batch("nobody", nil, 10); len(hs) != 0 || next != nil || err != nil {
		t.Fatal("empty target")
	}
}

func TestDeliveredOnlyUnchanged(t *testing.T) {
	s, _ := openMem(t, DefaultConfig())
	for i := range 5 {
		if err := s.Add("t", "b", fmt.Sprintf("k%d", i), obj("n1.aa", uint64(i+1), "v"), 10, false); err != nil {
			t.Fatal(err)
		}
	}
	hs := drain(t, s, "t", 1<<20)
	// A write lands on k2 between Batch and Delivered.
	late := obj("n2.bb", 1, "late")
	if err := s.Add("t", "b", "k2", late, 20, false); err != nil {
		t.Fatal(err)
	}
	n, err := s.Delivered(append(hs, hs[0]), true) // a duplicate counts once
	if err != nil || n != 4 {
		t.Fatalf("Delivered = %d, %v; want 4", n, err)
	}
	got, ok, err := s.Get("t", "b", "k2")
	if err != nil || !ok || !got.Equal(version.Merge(obj("n1.aa", 3, "v"), late)) {
		t.Fatalf("k2 after Delivered: %v %v %v", got, ok, err)
	}
	st := statsOf(s, "t")
	if st.Pending != 1 || st.Delivered != 4 || st.OldestMs != 20 {
		t.Fatalf("stats %+v", st)
	}
	// Next round delivers it; a second Delivered of the same hints does nothing.
	hs2 := drain(t, s, "t", 1<<20)
	if n, err := s.Delivered(hs2, false); n != 1 || err != nil {
		t.Fatalf("second round %d %v", n, err)
	}
	if n, err := s.Delivered(hs2, false); n != 0 || err != nil {
		t.Fatalf("repeat %d %v", n, err)
	}
	// A Hint not from Batch is never deleted.
	if err := s.Add("t", "b", "x", late, 30, false); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Delivered([]Hint{{Target: "t", Bucket: "b", Key: "x"}}, false); n != 0 {
		t.Fatal("deleted a hint without a record")
	}
	st = statsOf(s, "t")
	if st.Pending != 1 || st.Delivered != 5 || st.OldestMs != 30 {
		t.Fatalf("stats %+v", st)
	}
	if got := s.Targets(); len(got) != 1 {
		t.Fatalf("Targets %v", got)
	}
}

func TestExpire(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Window = time.Second
	s, _ := openMem(t, cfg)
	for i := range 10 {
		if err := s.Add("t", "b", fmt.Sprintf("k%d", i), obj("n1.aa", uint64(i+1), "v"), int64(i*100), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add("u", "b", "k", obj("n1.aa", 1, "v"), 0, false); err != nil {
		t.Fatal(err)
	}
	before, beforeU := statsOf(s, "t"), statsOf(s, "u")
	// cutoff 1450-1000 = 450: UpdatedMs 0..400 go (5 in t, 1 in u), 500..900 stay.
	n, b, err := s.Expire(1450)
	if err != nil || n != 6 {
		t.Fatalf("Expire = %d, %d, %v", n, b, err)
	}
	st, su := statsOf(s, "t"), statsOf(s, "u")
	if st.Pending != 5 || st.Expired != 5 || st.OldestMs != 500 || su.Pending != 0 || su.Expired != 1 {
		t.Fatalf("stats %+v %+v", st, su)
	}
	if b != before.Bytes-st.Bytes+beforeU.Bytes || su.Bytes != 0 {
		t.Fatalf("expired bytes %d", b)
	}
	if _, ok, _ := s.Get("t", "b", "k4"); ok {
		t.Fatal("k4 not expired")
	}
	if _, ok, _ := s.Get("t", "b", "k5"); !ok {
		t.Fatal("k5 expired")
	}
	// A hint refreshed by Add is young again.
	if err := s.Add("t", "b", "k5", obj("n2.bb", 1, "w"), 2000, false); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := s.Expire(2950); n != 4 {
		t.Fatalf("second Expire %d, want 4", n)
	}
	if st := statsOf(s, "t"); st.Pending != 1 || st.OldestMs != 2000 || st.Expired != 9 {
		t.Fatalf("stats %+v", st)
	}
	if got := s.Targets(); len(got) != 1 || got[0] != "t" {
		t.Fatalf("Targets %v", got)
	}
}

// queueStats is the part of TargetStats that is rebuilt from the store.
func queueStats(s *Store) map[string][3]int64 {
	out := map[string][3]int64{}
	for _, st := range s.Stats() {
		if st.Pending > 0 || st.Corrupt > 0 {
			out[st.Target] = [3]int64{int64(st.Pending), st.Bytes, st.OldestMs}
		}
	}
	return out
}

func sameQueues(t testing.TB, a, b map[string][3]int64) {
	t.Helper()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("queues differ:\n%v\n%v", a, b)
	}
}

func TestReopenRebuildsStats(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Window = time.Second
	s, m := openMem(t, cfg)
	for i := range 50 {
		target := []string{"n1", "n2", "n3"}[i%3]
		if err := s.Add(target, "b", fmt.Sprintf("k%d", i%20), obj(fmt.Sprintf("a%d", i), 1, "v"), int64(100+i*10), false); err != nil {
			t.Fatal(err)
		}
	}
	hs, _, _ := s.Batch("n1", nil, 100)
	if _, err := s.Delivered(hs, false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Expire(1300); err != nil {
		t.Fatal(err)
	}
	before := queueStats(s)
	s2, err := Open(m, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameQueues(t, before, queueStats(s2))
	// The crash image (nothing synced) holds no hints; a clean close keeps them all.
	s3, err := Open(m.CrashClone(), cfg, nil)
	if err != nil || len(s3.Targets()) != 0 {
		t.Fatalf("crash clone: %v %v", s3.Targets(), err)
	}
}

func TestSyncedAddSurvivesCrash(t *testing.T) {
	s, m := openMem(t, DefaultConfig())
	if err := s.Add("t", "b", "unsynced-before", obj("n1.aa", 1, "v"), 1, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("t", "b", "synced", obj("n1.aa", 2, "v"), 2, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("t", "b", "unsynced-after", obj("n1.aa", 3, "v"), 3, false); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(m.CrashClone(), DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]bool{"unsynced-before": true, "synced": true, "unsynced-after": false} {
		if _, ok, _ := s2.Get("t", "b", k); ok != want {
			t.Errorf("%s after crash: %v, want %v", k, ok, want)
		}
	}
}

func TestCorruptRecords(t *testing.T) {
	m := storage.NewMemory()
	put := func(k, v string) {
		if err := m.Put([]byte(k), []byte(v), storage.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	good := string(encodeRecord(5, obj("n1.aa", 1, "v")))
	put("ht\x00b\x00a", good)
	put("ht\x00b\x00bad-object", "\x05garbage")
	put("ht\x00b\x00bad-varint", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
	put("ht\x00no-second-nul", good)
	put("ht\x00b\x00z", good)
	h := &countingHandler{counts: map[slog.Level]int{}}
	s, err := Open(m, DefaultConfig(), slog.New(h))
	if err != nil {
		t.Fatal(err)
	}
	st := statsOf(s, "t")
	if st.Pending != 2 || st.Corrupt != 3 || h.count(slog.LevelError) != 3 {
		t.Fatalf("stats %+v, %d errors logged", st, h.count(slog.LevelError))
	}
	_, _, err = s.Get("t", "b", "bad-object")
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, version.ErrCorrupt) {
		t.Fatalf("Get corrupt: %v", err)
	}
	if hs := drain(t, s, "t", 0); len(hs) != 2 || hs[0].Key != "a" || hs[1].Key != "z" {
		t.Fatalf("batch %+v", hs)
	}
	// Corruption appearing after Open is found by Batch and moved out of Pending.
	put("ht\x00b\x00a", "\x01\x02")
	if hs := drain(t, s, "t", 0); len(hs) != 1 || hs[0].Key != "z" {
		t.Fatalf("batch %+v", hs)
	}
	if st := statsOf(s, "t"); st.Pending != 1 || st.Corrupt != 4 || st.OldestMs != 5 {
		t.Fatalf("stats %+v", st)
	}
	// Add replaces a corrupt record.
	if err := s.Add("t", "b", "bad-object", obj("n2.bb", 1, "w"), 9, false); err != nil {
		t.Fatal(err)
	}
	if st := statsOf(s, "t"); st.Pending != 2 || st.Corrupt != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Expire leaves corrupt records alone.
	if n, _, err := s.Expire(1 << 50); n != 2 || err != nil {
		t.Fatalf("Expire %d %v", n, err)
	}
	if st := statsOf(s, "t"); st.Pending != 0 || st.Corrupt != 3 {
		t.Fatalf("stats %+v", st)
	}
	s2, err := Open(m, DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sameQueues(t, queueStats(s), queueStats(s2))
}

func TestConcurrentUse(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxBytesPerTarget = 20_000
	s, m := openMem(t, cfg)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				target := []string{"x", "y"}[i%2]
				_ = s.Add(target, "b", fmt.Sprintf("k%d", i%40), obj(fmt.Sprintf("w%d", w), uint64(i+1), "value"), int64(i), false)
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 100 {
				for _, target := range []string{"x", "y"} {
					hs, _, err := s.Batch(target, nil, 300)
					if err != nil {
						t.Error(err)
						return
					}
					if _, err := s.Delivered(hs, false); err != nil {
						t.Error(err)
						return
					}
				}
				_ = s.Stats()
				if _, _, err := s.Expire(150 + int64(cfg.Window.Milliseconds())); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, st := range s.Stats() {
		if st.Bytes > cfg.MaxBytesPerTarget {
			t.Fatalf("%+v over the bound", st)
		}
	}
	s2, err := Open(m, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameQueues(t, queueStats(s), queueStats(s2))
}

// TestPebbleKill9 adds hints with sync=true in a child process that kills
// itself with SIGKILL (no Close), then reopens the Pebble store here.
func TestPebbleKill9(t *testing.T) {
	const n = 200
	if dir := os.Getenv("HINTS_KILL9_DIR"); dir != "" {
		p, err := storage.OpenPebble(dir, storage.DefaultPebbleConfig())
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		s, err := Open(p, DefaultConfig(), nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		for i := range n {
			if err := s.Add("n2", "b", fmt.Sprintf("k%04d", i), obj("n1.aa", uint64(i+1), "v"), int64(1000+i), true); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPebbleKill9$")
	cmd.Env = append(os.Environ(), "HINTS_KILL9_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	p, err := storage.OpenPebble(dir, storage.DefaultPebbleConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := Open(p, DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := statsOf(s, "n2")
	if st.Pending != n || st.OldestMs != 1000 || st.Corrupt != 0 {
		t.Fatalf("after kill -9: %+v", st)
	}
	hs := drain(t, s, "n2", 100)
	for i, h := range hs {
		o, err := version.Decode(h.Object)
		if err != nil || h.Key != fmt.Sprintf("k%04d", i) || !o.Equal(obj("n1.aa", uint64(i+1), "v")) {
			t.Fatalf("hint %d: %+v %v", i, h, err)
		}
	}
	if len(hs) != n {
		t.Fatalf("%d hints, want %d", len(hs), n)
	}
	if d, err := s.Delivered(hs, true); d != n || err != nil {
		t.Fatalf("Delivered %d %v", d, err)
	}
	if len(s.Targets()) != 0 {
		t.Fatal("not drained")
	}
}
