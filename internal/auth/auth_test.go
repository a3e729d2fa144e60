package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// cheap are argon2id parameters for tests: the same code, a fraction of the cost.
var cheap = Params{Memory: 64, Time: 1, Threads: 1}

// memStore is a Store in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) UserRecord(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	return v, ok
}

func (s *memStore) SetUserRecord(name string, raw []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = raw
	return nil
}

func (s *memStore) DeleteUserRecord(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

func (s *memStore) UserNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

func TestHashAndCheck(t *testing.T) {
	h, err := HashPassword("correct horse", DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not a PHC argon2id string with the default parameters", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("the hash holds the password")
	}
	if !CheckPassword(h, "correct horse") {
		t.Error("the right password does not match")
	}
	for _, wrong := range []string{"", "correct hors", "correct horse ", "Correct horse"} {
		if CheckPassword(h, wrong) {
			t.Errorf("%q matches", wrong)
		}
	}
	h2, _ := HashPassword("correct horse", DefaultParams)
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", strings.Replace(h, "m=19456", "m=99999999", 1)} {
		if CheckPassword(bad, "correct horse") {
			t.Errorf("malformed hash %q matches", bad)
		}
	}
}

func TestCan(t *testing.T) {
	u := &User{Name: "u", Grants: []Grant{{Role: RoleRead}, {Role: RoleWrite, Bucket: "b"}, {Role: RoleAdmin, Bucket: "adm"}}}
	for _, c := range []struct {
		role   Role
		bucket string
		want   bool
	}{
		{RoleRead, "x", true}, {RoleRead, "", true}, {RoleWrite, "x", false}, {RoleWrite, "b", true},
		{RoleAdmin, "b", false}, {RoleAdmin, "adm", true}, {RoleWrite, "adm", true}, {RoleAdmin, "", false},
		{RoleWrite, "", false}, {"bogus", "b", false},
	} {
		if got := u.Can(c.role, c.bucket); got != c.want {
			t.Errorf("Can(%s, %q) = %v, want %v", c.role, c.bucket, got, c.want)
		}
	}
	if (&User{Grants: []Grant{{Role: RoleAdmin}}}).Can(RoleRead, "any") != true {
		t.Error("admin on every bucket does not include read")
	}
}

func newTestAuth(t testing.TB, log *slog.Logger, b BackoffConfig, now func() time.Time) (*Authenticator, *memStore) {
	st := newMemStore()
	a, err := New(Config{Store: st, Params: cheap, Logger: log, Backoff: b, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

func TestAuthenticate(t *testing.T) {
	var logs bytes.Buffer
	a, st := newTestAuth(t, slog.New(slog.NewTextHandler(&logs, nil)), BackoffConfig{Free: 100, Base: time.Millisecond, Max: time.Millisecond, Forget: time.Minute, MaxAddrs: 10}, nil)
	if made, err := a.Bootstrap("admin", "first-admin-pw"); !made || err != nil {
		t.Fatalf("bootstrap: %v %v", made, err)
	}
	if made, _ := a.Bootstrap("admin2", "other-admin-pw"); made {
		t.Fatal("bootstrap ran with a user present")
	}
	if _, err := a.Put("alice", "alice-password", []Grant{{Role: RoleRead, Bucket: "b"}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	u, err := a.Authenticate(ctx, "10.0.0.1:5555", "alice", "alice-password")
	if err != nil || u.Name != "alice" || !u.Can(RoleRead, "b") {
		t.Fatalf("alice: %+v %v", u, err)
	}
	// Cached: the same answer again, and still refused for a wrong password.
	if _, err := a.Authenticate(ctx, "10.0.0.1:5555", "alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"alice", "alice-passwor"}, {"alice", ""}, {"bob", "alice-password"}, {"", ""}, {"ALICE", "alice-password"}} {
		if _, err := a.Authenticate(ctx, "10.0.0.2:1", c[0], c[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%q/%q: %v, want ErrBadCredentials", c[0], c[1], err)
		}
	}
	if a.Failures() != 5 {
		t.Errorf("failures = %d, want 5", a.Failures())
	}
	// A new password invalidates the cached pair.
	if _, err := a.Put("alice", "new-alice-password", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, "10.0.0.1:5555", "alice", "alice-password"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("old password after a change: %v", err)
	}
	if u, err := a.Authenticate(ctx, "10.0.0.1:5555", "alice", "new-alice-password"); err != nil || !u.Can(RoleRead, "b") {
		t.Errorf("new password (grants kept): %+v %v", u, err)
	}
	// Records hold a hash, never the password.
	for name, raw := range st.m {
		if strings.Contains(string(raw), "password") || strings.Contains(string(raw), "admin-pw") {
			t.Errorf("record of %s holds a password: %s", name, raw)
		}
	}
	for _, s := range []string{"alice-password", "alice-passwor", "first-admin-pw", "new-alice-password"} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log holds a password %q:\n%s", s, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "authentication failed") {
		t.Error("failures not logged")
	}
}

func TestUserManagement(t *testing.T) {
	a, _ := newTestAuth(t, nil, DefaultBackoff(), nil)
	for _, c := range []struct {
		name, pw string
		grants   []Grant
	}{
		{"", "long-enough", nil}, {"a b", "long-enough", nil}, {strings.Repeat("x", 65), "long-enough", nil},
		{"ok", "short", nil}, {"ok", "", nil}, {"ok", "long-enough", []Grant{{Role: "root"}}},
		{"ok", "long-enough", []Grant{{Role: RoleRead, Bucket: "a/b"}}},
	} {
		if _, err := a.Put(c.name, c.pw, c.grants); !errors.Is(err, ErrInvalid) {
			t.Errorf("Put(%q, %q, %v): %v, want ErrInvalid", c.name, c.pw, c.grants, err)
		}
		if strings.Contains(errString(a.Put(c.name, c.pw, c.grants)), "long-enough") {
			t.Errorf("an error names the password")
		}
	}
	if _, err := a.Put("bob", "bob-password", []Grant{{Role: RoleRead}}); err != nil {
		t.Fatal(err)
	}
	if u, _ := a.Grant("bob", Grant{Role: RoleWrite, Bucket: "w"}); !u.Can(RoleWrite, "w") || u.Can(RoleWrite, "x") {
		t.Errorf("grant: %+v", u)
	}
	if _, err := a.Revoke("bob", Grant{Role: RoleAdmin}); !errors.Is(err, ErrInvalid) {
		t.Errorf("revoking a grant bob lacks: %v", err)
	}
	if u, _ := a.Revoke("bob", Grant{Role: RoleWrite, Bucket: "w"}); u.Can(RoleWrite, "w") {
		t.Errorf("revoke: %+v", u)
	}
	if err := a.Remove("bob"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove("bob"); !errors.Is(err, ErrNoUser) {
		t.Errorf("removing twice: %v", err)
	}
	if l := a.List(); len(l) != 0 {
		t.Errorf("list after remove: %v", l)
	}

	// The last admin on every bucket stays one.
	if _, err := a.Put("root", "root-password", []Grant{{Role: RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"remove":  a.Remove("root"),
		"revoke":  errOf(a.Revoke("root", Grant{Role: RoleAdmin})),
		"regrant": errOf(a.Put("root", "", []Grant{{Role: RoleAdmin, Bucket: "b"}})),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s of the last admin: %v", name, err)
		}
	}
	if _, err := a.Put("root2", "root-password", []Grant{{Role: RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove("root"); err != nil {
		t.Errorf("removing an admin while another remains: %v", err)
	}
}

func errOf(_ any, err error) error { return err }

func errString(_ any, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestBackoff(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBackoff(BackoffConfig{Free: 2, Base: 100 * time.Millisecond, Max: time.Second, Forget: time.Minute, MaxAddrs: 4}, func() time.Time { return now })
	var got []time.Duration
	for range 8 {
		b.Fail("a")
		got = append(got, b.Delay("a"))
	}
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	if b.Delay("other") != 0 {
		t.Error("another address is slowed down")
	}
	b.Succeed("a")
	if b.Delay("a") != 0 {
		t.Error("success does not reset")
	}
	for range 5 {
		b.Fail("a")
	}
	now = now.Add(2 * time.Minute)
	if b.Delay("a") != 0 {
		t.Error("an address idle past Forget is still slowed down")
	}
	// A flood of addresses keeps the table bounded.
	for i := range 100 {
		now = now.Add(time.Millisecond)
		b.Fail(string(rune('A' + i)))
	}
	if n := len(b.addrs); n > 4 {
		t.Errorf("%d addresses tracked, limit 4", n)
	}
}

// TestBackoffSlowsOnlyTheFailingAddress: an address that keeps failing waits before its
// check; another address is answered at once.
func TestBackoffSlowsOnlyTheFailingAddress(t *testing.T) {
	a, _ := newTestAuth(t, nil, BackoffConfig{Free: 1, Base: 300 * time.Millisecond, Max: 300 * time.Millisecond, Forget: time.Minute, MaxAddrs: 16}, nil)
	if _, err := a.Put("u", "u-password", []Grant{{Role: RoleRead}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		_, _ = a.Authenticate(ctx, "10.0.0.9:1", "u", "wrong-password")
	}
	start := time.Now()
	if _, err := a.Authenticate(ctx, "10.0.0.8:1", "u", "u-password"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("another address waited %v", d)
	}
	start = time.Now()
	_, _ = a.Authenticate(ctx, "10.0.0.9:2", "u", "wrong-password")
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("the failing address waited only %v", d)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := a.Authenticate(cctx, "10.0.0.9:3", "u", "u-password"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a cancelled wait: %v", err)
	}
}

// FuzzAuthenticate: whatever name and password arrive, only the stored pair logs in, no
// input panics, and neither the error nor the log carries the password.
func FuzzAuthenticate(f *testing.F) {
	var logs bytes.Buffer
	a, _ := newTestAuth(f, slog.New(slog.NewTextHandler(&logs, nil)), BackoffConfig{Free: 1 << 30, Base: time.Millisecond, Max: time.Millisecond, Forget: time.Minute, MaxAddrs: 16}, nil)
	if _, err := a.Put("alice", "alice-password", []Grant{{Role: RoleRead}}); err != nil {
		f.Fatal(err)
	}
	for _, s := range [][2]string{{"alice", "alice-password"}, {"alice", "alice-password\x00"}, {"alice", ""}, {"", "alice-password"},
		{"alice\x00", "alice-password"}, {strings.Repeat("a", 70), "x"}, {"bob", strings.Repeat("p", 2000)}, {"al\u00efce", "\xff\xfe"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, pw string) {
		logs.Reset()
		u, err := a.Authenticate(context.Background(), "127.0.0.1:1", name, pw)
		ok := name == "alice" && pw == "alice-password"
		if ok != (err == nil) || (ok && u.Name != "alice") {
			t.Fatalf("%q/%q: user %v err %v", name, pw, u, err)
		}
		if err != nil && len(pw) >= 4 && (strings.Contains(err.Error(), pw) || strings.Contains(logs.String(), pw)) {
			t.Fatalf("the password %q is in the error or the log", pw)
		}
	})
}

// FuzzCheckPassword: a hash string from anywhere (a corrupt record) never panics, never
// matches unless it is a real hash of the password, and never costs more than maxParams.
func FuzzCheckPassword(f *testing.F) {
	good, _ := HashPassword("pw-123456", cheap)
	f.Add(good, "pw-123456")
	f.Add(good, "pw-12345")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$", "")
	f.Add("$argon2id$v=19$m=0,t=0,p=0$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "x")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "x")
	f.Add("$argon2id$v=19$m=64,t=1,p=255$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5", "x")
	f.Fuzz(func(t *testing.T, h, pw string) {
		if p, _, _, err := parseHash(h); err == nil && (p.Memory > 64*1024 || p.Time > 4) {
			t.Skip("an expensive but valid hash: not worth running in a fuzz loop")
		}
		if CheckPassword(h, pw) && !(h == good && pw == "pw-123456") {
			// Any other match must be a real hash of pw.
			p, salt, key, err := parseHash(h)
			if err != nil || len(salt) == 0 || len(key) == 0 {
				t.Fatalf("malformed hash %q matched", h)
			}
			_ = p
		}
	})
}

// BenchmarkCheckPassword is what one password check costs with the default parameters:
// paid per RESP login, and per HTTP client and password (then cached).
func BenchmarkCheckPassword(b *testing.B) {
	h, _ := HashPassword("bench-password", DefaultParams)
	for b.Loop() {
		if !CheckPassword(h, "bench-password") {
			b.Fatal("no match")
		}
	}
}

// BenchmarkAuthenticateCached is what an HTTP request with basic auth costs once its
// pair is verified: a record lookup and an HMAC.
func BenchmarkAuthenticateCached(b *testing.B) {
	st := newMemStore()
	a, err := New(Config{Store: st, Params: DefaultParams})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := a.Put("u", "bench-password", []Grant{{Role: RoleRead}}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := a.Authenticate(ctx, "127.0.0.1:1", "u", "bench-password"); err != nil {
			b.Fatal(err)
		}
	}
}
