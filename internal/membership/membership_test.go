package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testLogger discards logs unless MEMBERSHIP_TEST_LOG is set (memberlist's
// goroutines may log after a test ended, so t.Log is not an option).
func testLogger(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
		if os.Getenv("MEMBERSHIP_TEST_LOG") != "" {
			w = os.Stderr
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func testConfig(id string, store StateStore, seeds ...string) Config {
	c := DefaultConfig()
	c.Meta = NodeMeta{ID: id, Zone: "z-" + id, HTTP: "127.0.0.1:80" + id[len(id)-1:], RPC: "rpc-" + id}
	c.BindAddr = "127.0.0.1:0"
	c.Seeds = seeds
	c.Store = store
	c.Logger = testLogger(nil)
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.SuspicionMult = 3
	return c
}

func start(t *testing.T, cfg Config) *Membership {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start(%s): %v", cfg.Meta.ID, err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m
}

func stop(t *testing.T, m *Membership) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown(%s): %v", m.ID(), err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	begin := time.Now()
	deadline := begin.Add(d)
	for {
		ok, detail := cond()
		if ok {
			return time.Since(begin)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, detail)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func states(m *Membership) string {
	var b strings.Builder
	for _, mb := range m.Members() {
		fmt.Fprintf(&b, "%s=%s@%s ", mb.ID, mb.State, mb.Gossip)
	}
	return strings.TrimSpace(b.String())
}

// viewIs reports whether every node in ms sees exactly want (id=state ...).
func viewIs(want map[string]State, ms ...*Membership) func() (bool, string) {
	return func() (bool, string) {
		var detail []string
		ok := true
		for _, m := range ms {
			got := m.Members()
			detail = append(detail, m.ID()+": "+states(m))
			if len(got) != len(want) {
				ok = false
				continue
			}
			for _, mb := range got {
				if want[mb.ID] != mb.State {
					ok = false
				}
			}
		}
		return ok, strings.Join(detail, " | ")
	}
}

func metaIs(key, want string, ms ...*Membership) func() (bool, string) {
	return func() (bool, string) {
		var detail []string
		ok := true
		for _, m := range ms {
			v, found := m.GetMeta(key)
			detail = append(detail, fmt.Sprintf("%s: %q/%v", m.ID(), v, found))
			if !found || string(v) != want {
				ok = false
			}
		}
		return ok, strings.Join(detail, " ")
	}
}

func TestJoinAndMetadata(t *testing.T) {
	n1 := start(t, testConfig("n1", nil))
	n2 := start(t, testConfig("n2", nil, n1.GossipAddr()))
	n3 := start(t, testConfig("n3", nil, n1.GossipAddr()))
	all := map[string]State{"n1": Alive, "n2": Alive, "n3": Alive}
	waitFor(t, 5*time.Second, "3 alive members everywhere", viewIs(all, n1, n2, n3))

	for _, mb := range n2.Members() {
		if mb.ID == "n3" {
			if mb.Zone != "z-n3" || mb.RPC != "rpc-n3" || mb.Gossip != n3.GossipAddr() || mb.Joined.IsZero() {
				t.Errorf("n2 sees n3 as %+v, want its announced meta", mb)
			}
		}
	}

	if err := n3.SetMeta("bucket/users", []byte(`{"n":3}`)); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, 5*time.Second, "metadata everywhere", metaIs("bucket/users", `{"n":3}`, n1, n2, n3))
	t.Logf("metadata propagation (gossip): %v", d)

	_ = n1.SetMeta("bucket/a", []byte("1"))
	_ = n1.SetMeta("other", []byte("x"))
	waitFor(t, 5*time.Second, "keys", func() (bool, string) {
		got := strings.Join(n2.MetaKeys("bucket/"), ",")
		return got == "bucket/a,bucket/users", got
	})

	if err := n2.DeleteMeta("bucket/a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "delete everywhere", func() (bool, string) {
		for _, m := range []*Membership{n1, n2, n3} {
			if _, ok := m.GetMeta("bucket/a"); ok {
				return false, m.ID() + " still has it"
			}
		}
		return true, ""
	})
}

func TestDownRestartAndPersistence(t *testing.T) {
	s1, s2, s3 := &MemStore{}, &MemStore{}, &MemStore{}
	n1 := start(t, testConfig("n1", s1))
	n2 := start(t, testConfig("n2", s2, n1.GossipAddr()))
	n3 := start(t, testConfig("n3", s3, n1.GossipAddr()))
	waitFor(t, 5*time.Second, "3 alive", viewIs(map[string]State{"n1": Alive, "n2": Alive, "n3": Alive}, n1, n2, n3))
	if err := n1.SetMeta("bucket/b", []byte("props")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "metadata", metaIs("bucket/b", "props", n1, n2, n3))

	sub := n1.Subscribe()
	oldAddr := n3.GossipAddr()
	stop(t, n3) // no leave message: to the others this looks like a crash
	d := waitFor(t, 5*time.Second, "n3 down but listed",
		viewIs(map[string]State{"n1": Alive, "n2": Alive, "n3": Down}, n1, n2))
	t.Logf("killed node detected down after %v (probe 100ms, suspicion mult 3)", d)
	select {
	case <-sub:
	case <-time.After(2 * time.Second):
		t.Fatal("no subscription signal after n3 went down")
	}

	// Restart n3 from its persisted state on a new port.
	n3 = start(t, testConfig("n3", s3, n1.GossipAddr()))
	if n3.GossipAddr() == oldAddr {
		t.Fatalf("expected a new port, got the old address %s", oldAddr)
	}
	if v, ok := n3.GetMeta("bucket/b"); !ok || string(v) != "props" {
		t.Fatalf("restarted n3 lost persisted metadata: %q %v", v, ok)
	}
	d = waitFor(t, 10*time.Second, "n3 alive again", viewIs(map[string]State{"n1": Alive, "n2": Alive, "n3": Alive}, n1, n2, n3))
	t.Logf("restarted node (new port) alive everywhere after %v", d)
	waitFor(t, 5*time.Second, "new address known", func() (bool, string) {
		for _, mb := range n2.Members() {
			if mb.ID == "n3" {
				return mb.Gossip == n3.GossipAddr(), mb.Gossip
			}
		}
		return false, "n3 missing"
	})

	// Whole cluster down; n1 restarts alone with no reachable seed.
	n2Addr := n2.GossipAddr()
	stop(t, n1)
	stop(t, n2)
	stop(t, n3)
	n1 = start(t, testConfig("n1", s1, "127.0.0.1:1"))
	got := n1.Members()
	if len(got) != 3 {
		t.Fatalf("n1 restarted alone lists %s, want all 3 ring members", states(n1))
	}
	waitFor(t, 5*time.Second, "alone view", viewIs(map[string]State{"n1": Alive, "n2": Down, "n3": Down}, n1))
	if v, ok := n1.GetMeta("bucket/b"); !ok || string(v) != "props" {
		t.Fatalf("n1 lost metadata: %q %v", v, ok)
	}

	// n2 comes back on its old address without seeds: n1's background
	// rejoin finds it from the persisted ring.
	c2 := testConfig("n2", s2)
	c2.BindAddr = n2Addr
	n2 = start(t, c2)
	waitFor(t, 10*time.Second, "n1 and n2 re-merged", viewIs(map[string]State{"n1": Alive, "n2": Alive, "n3": Down}, n1, n2))
}

func TestConcurrentSetMetaConverges(t *testing.T) {
	n1 := start(t, testConfig("n1", nil))
	n2 := start(t, testConfig("n2", nil, n1.GossipAddr()))
	n3 := start(t, testConfig("n3", nil, n1.GossipAddr()))
	ms := []*Membership{n1, n2, n3}
	waitFor(t, 5*time.Second, "3 alive", viewIs(map[string]State{"n1": Alive, "n2": Alive, "n3": Alive}, ms...))

	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			for i := range 20 {
				if err := m.SetMeta("k", fmt.Appendf(nil, "%s-%d", m.ID(), i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, 5*time.Second, "convergence", func() (bool, string) {
		var vals []string
		for _, m := range ms {
			v, _ := m.GetMeta("k")
			vals = append(vals, string(v))
		}
		return vals[0] == vals[1] && vals[1] == vals[2] && vals[0] != "", strings.Join(vals, " ")
	})

	// A write made after seeing the converged value wins everywhere.
	if err := n2.SetMeta("k", []byte("final")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "later write wins", metaIs("k", "final", ms...))
}

func TestLeaveAndForget(t *testing.T) {
	n1 := start(t, testConfig("n1", nil))
	n2 := start(t, testConfig("n2", nil, n1.GossipAddr()))
	n3 := start(t, testConfig("n3", nil, n1.GossipAddr()))
	waitFor(t, 5*time.Second, "3 alive", viewIs(map[string]State{"n1": Alive, "n2": Alive, "n3": Alive}, n1, n2, n3))

	if err := n1.Forget("n2"); !errors.Is(err, ErrMemberAlive) {
		t.Fatalf("Forget(alive) = %v, want ErrMemberAlive", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n3.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n3 leaving", viewIs(map[string]State{"n1": Alive, "n2": Alive, "n3": Leaving}, n1, n2))
	if err := n1.Forget("n3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "n3 forgotten", viewIs(map[string]State{"n1": Alive, "n2": Alive}, n1, n2))
	if err := n1.Forget("nope"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("Forget(unknown) = %v", err)
	}
}

func TestCorruptPersistedState(t *testing.T) {
	store := &MemStore{}
	_ = store.Save([]byte(`{"v":1,"members":[{"id":""}]}`))
	_, err := Start(context.Background(), testConfig("n1", store))
	if !errors.Is(err, ErrCorruptState) {
		t.Fatalf("Start with corrupt state: %v, want ErrCorruptState", err)
	}
	_ = store.Save([]byte("garbage"))
	if _, err := Start(context.Background(), testConfig("n1", store)); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("Start with garbage: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCorruptRemoteStateIgnored(t *testing.T) {
	var logs syncBuffer
	cfg := testConfig("n1", nil)
	cfg.Logger = testLogger(&logs)
	n1 := start(t, cfg)
	_ = n1.SetMeta("k", []byte("v"))
	before := n1.st.encode()
	d := (*delegate)(n1)
	d.MergeRemoteState([]byte(`{"v":1,"members":[{"id":"x","st":"bogus"}]}`), false)
	d.MergeRemoteState([]byte{0xff, 0x00}, true)
	d.NotifyMsg([]byte{9, 1, 2})
	n1.mu.Lock()
	after := n1.st.encode()
	n1.mu.Unlock()
	if !bytes.Equal(before, after) {
		t.Fatalf("corrupt remote state changed the state:\n%s\n%s", before, after)
	}
	if !strings.Contains(logs.String(), "ignoring corrupt remote state") {
		t.Fatalf("corrupt remote state not logged; logs:\n%s", logs.String())
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Meta.ID = "n1"
	if err := ok.Validate(); err != nil {
		t.Fatalf("default config with ID: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"no id":          func(c *Config) { c.Meta.ID = "" },
		"space in id":    func(c *Config) { c.Meta.ID = "a b" },
		"bad bind":       func(c *Config) { c.BindAddr = "nope" },
		"bad port":       func(c *Config) { c.BindAddr = "127.0.0.1:99999" },
		"zero probe":     func(c *Config) { c.ProbeInterval = 0 },
		"timeout>=probe": func(c *Config) { c.ProbeTimeout = c.ProbeInterval },
		"zero pushpull":  func(c *Config) { c.PushPullInterval = 0 },
		"zero gossip":    func(c *Config) { c.GossipInterval = 0 },
		"suspicion":      func(c *Config) { c.SuspicionMult = 0 },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidInput", name, err)
		}
	}
}

func TestFileStore(t *testing.T) {
	s := FileStore{Path: filepath.Join(t.TempDir(), "membership.json")}
	if b, err := s.Load(); b != nil || err != nil {
		t.Fatalf("empty Load = %q, %v", b, err)
	}
	for _, v := range []string{"one", "two"} {
		if err := s.Save([]byte(v)); err != nil {
			t.Fatal(err)
		}
		if b, err := s.Load(); string(b) != v || err != nil {
			t.Fatalf("Load = %q, %v; want %q", b, err, v)
		}
	}
}
