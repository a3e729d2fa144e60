package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Store is where users live: the node's cluster metadata (node.Node implements it). A
// record is opaque bytes here; every method is safe from any goroutine.
type Store interface {
	UserRecord(name string) ([]byte, bool)
	SetUserRecord(name string, raw []byte) error
	DeleteUserRecord(name string) error
	UserNames() []string
}

// Config configures an Authenticator.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// Params hash new passwords (DefaultParams).
	Params Params
	// Backoff slows down addresses that fail (DefaultBackoff).
	Backoff BackoffConfig
	// CacheSize: 4096 verified (user, password) pairs at most; past it the cache is
	// emptied and refills on demand, which costs one hash per client.
	CacheSize int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultConfig returns the defaults, each explained on Config.
func DefaultConfig() Config {
	return Config{Params: DefaultParams, Backoff: DefaultBackoff(), CacheSize: 4096}
}

// Validate reports a configuration error (zero Params, CacheSize and Now take their
// defaults in New).
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("auth: Store is required")
	case c.Params.Memory != 0 && (c.Params.Time == 0 || c.Params.Threads == 0 || c.Params.Memory < 8*uint32(c.Params.Threads)):
		return errors.New("auth: argon2id parameters need time >= 1, threads >= 1, memory >= 8 KiB per thread")
	case c.Backoff.MaxAddrs < 0 || c.Backoff.Base < 0 || c.Backoff.Max < 0:
		return errors.New("auth: backoff values must not be negative")
	}
	return nil
}

// Authenticator checks credentials against the Store. Safe for concurrent use.
type Authenticator struct {
	cfg     Config
	log     *slog.Logger
	secret  []byte
	backoff *Backoff
	dummy   string // a hash checked for unknown users, so they cost what known ones do

	mu    sync.Mutex
	cache map[[sha256.Size]byte]string // verified pair → the record's hash at the time
	users map[string]decoded           // decoded records, by name, while their bytes hold

	failures  atomic.Uint64
	successes atomic.Uint64
}

// New returns an Authenticator over cfg.Store.
func New(cfg Config) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Params.Memory == 0 {
		cfg.Params = DefaultParams
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultConfig().CacheSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("auth: secret: %w", err)
	}
	dpw := make([]byte, 16)
	if _, err := rand.Read(dpw); err != nil {
		return nil, fmt.Errorf("auth: secret: %w", err)
	}
	dummy, err := HashPassword(string(dpw), cfg.Params)
	if err != nil {
		return nil, err
	}
	return &Authenticator{cfg: cfg, log: log.With("component", "auth"), secret: secret, dummy: dummy,
		backoff: NewBackoff(cfg.Backoff, cfg.Now), cache: map[[sha256.Size]byte]string{}, users: map[string]decoded{}}, nil
}

// Failures is how many authentications failed since start.
func (a *Authenticator) Failures() uint64 { return a.failures.Load() }

// Successes is how many authentications succeeded since start.
func (a *Authenticator) Successes() uint64 { return a.successes.Load() }

// Authenticate checks name and password for a client at remote (host:port or host). It
// first waits out the address's backoff (bounded by ctx), then checks; a failure is
// counted, logged without the password, and lengthens the address's backoff. The error
// is ErrBadCredentials (or ctx's), never anything naming the password.
func (a *Authenticator) Authenticate(ctx context.Context, remote, name, pw string) (*User, error) {
	host := hostOf(remote)
	if d := a.backoff.Delay(host); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("auth: waiting out the backoff: %w", ctx.Err())
		}
	}
	u, ok := a.check(name, pw)
	if !ok {
		a.failures.Add(1)
		n := a.backoff.Fail(host)
		// The name is logged (it helps an operator see a misconfigured client), clipped;
		// the password never.
		a.log.Warn("authentication failed", "user", clipName(name), "remote", host, "failures", n)
		return nil, ErrBadCredentials
	}
	a.successes.Add(1)
	a.backoff.Succeed(host)
	return u, nil
}

type decoded struct {
	raw string
	u   *User
}

// Current returns user name as stored now, decoded once per change of its record. The
// user is shared: read it, never change it (Lookup returns a copy to change).
func (a *Authenticator) Current(name string) (*User, error) {
	raw, ok := a.cfg.Store.UserRecord(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoUser, clipName(name))
	}
	a.mu.Lock()
	e, hit := a.users[name]
	a.mu.Unlock()
	if hit && e.raw == string(raw) {
		return e.u, nil
	}
	u, err := DecodeUser(raw)
	if err != nil || u.Name != name {
		a.log.Error("unreadable user record in cluster metadata", "user", clipName(name))
		return nil, fmt.Errorf("%w: %q", ErrNoUser, clipName(name))
	}
	a.mu.Lock()
	if len(a.users) >= a.cfg.CacheSize {
		clear(a.users)
	}
	a.users[name] = decoded{raw: string(raw), u: u}
	a.mu.Unlock()
	return u, nil
}

// check verifies the pair, through the cache when it can.
func (a *Authenticator) check(name, pw string) (*User, bool) {
	if len(name) > MaxNameBytes || len(pw) > MaxPasswordBytes {
		return nil, false
	}
	u, err := a.Current(name)
	found := err == nil
	key := cacheKey(a.secret, name, pw)
	if found {
		a.mu.Lock()
		h, hit := a.cache[key]
		a.mu.Unlock()
		if hit && h == u.Hash {
			return u, true
		}
	}
	hash := a.dummy
	if found {
		hash = u.Hash
	}
	if !CheckPassword(hash, pw) || !found {
		return nil, false
	}
	a.mu.Lock()
	if len(a.cache) >= a.cfg.CacheSize {
		clear(a.cache)
	}
	a.cache[key] = u.Hash
	a.mu.Unlock()
	return u, true
}

// Lookup returns a copy of user name, free to change.
func (a *Authenticator) Lookup(name string) (*User, error) {
	u, err := a.Current(name)
	if err != nil {
		return nil, err
	}
	c := *u
	c.Grants = slices.Clone(u.Grants)
	return &c, nil
}

// List returns every user, sorted by name, without hashes.
func (a *Authenticator) List() []PublicUser {
	names := a.cfg.Store.UserNames()
	slices.Sort(names)
	out := make([]PublicUser, 0, len(names))
	for _, n := range names {
		if u, err := a.Lookup(n); err == nil {
			out = append(out, u.Public())
		}
	}
	return out
}

// Put creates or replaces a user: pw "" keeps the existing password (an error for a new
// user), grants nil keeps the existing grants.
func (a *Authenticator) Put(name, pw string, grants []Grant) (*User, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	for _, g := range grants {
		if err := ValidGrant(g); err != nil {
			return nil, err
		}
	}
	u, err := a.Lookup(name)
	if errors.Is(err, ErrNoUser) {
		if pw == "" {
			return nil, fmt.Errorf("%w: a new user needs a password", ErrInvalid)
		}
		u, err = &User{Name: name}, nil
	}
	if err != nil {
		return nil, err
	}
	if pw != "" {
		if err := ValidPassword(pw); err != nil {
			return nil, err
		}
		if u.Hash, err = HashPassword(pw, a.cfg.Params); err != nil {
			return nil, err
		}
	}
	if grants != nil {
		wasAdmin := u.Can(RoleAdmin, "")
		u.Grants = nil
		for _, g := range grants {
			u.AddGrant(g)
		}
		if err := a.keepsAnAdmin(u.Name, wasAdmin, u.Can(RoleAdmin, "")); err != nil {
			return nil, err
		}
	}
	return u, a.save(u)
}

// keepsAnAdmin refuses a change that takes the admin role on every bucket from the last
// user who has it: nobody could then manage users, and $QUORUMKV_ADMIN_PASSWORD makes a
// first admin only in a cluster with no user at all.
func (a *Authenticator) keepsAnAdmin(name string, wasAdmin, isAdmin bool) error {
	if !wasAdmin || isAdmin {
		return nil
	}
	for _, n := range a.cfg.Store.UserNames() {
		if n == name {
			continue
		}
		if o, err := a.Current(n); err == nil && o.Can(RoleAdmin, "") {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is the last user with the admin role on every bucket; grant it to another user first", ErrInvalid, clipName(name))
}

// Grant adds g to user name.
func (a *Authenticator) Grant(name string, g Grant) (*User, error) {
	if err := ValidGrant(g); err != nil {
		return nil, err
	}
	u, err := a.Lookup(name)
	if err != nil {
		return nil, err
	}
	if u.AddGrant(g) {
		err = a.save(u)
	}
	return u, err
}

// Revoke removes g from user name; revoking a grant the user lacks is an error.
func (a *Authenticator) Revoke(name string, g Grant) (*User, error) {
	u, err := a.Lookup(name)
	if err != nil {
		return nil, err
	}
	wasAdmin := u.Can(RoleAdmin, "")
	if !u.RemoveGrant(g) {
		return nil, fmt.Errorf("%w: user %s has no grant %s", ErrInvalid, u.Name, g)
	}
	if err := a.keepsAnAdmin(u.Name, wasAdmin, u.Can(RoleAdmin, "")); err != nil {
		return nil, err
	}
	return u, a.save(u)
}

// Remove deletes user name.
func (a *Authenticator) Remove(name string) error {
	u, err := a.Lookup(name)
	if err != nil {
		return err
	}
	if err := a.keepsAnAdmin(name, u.Can(RoleAdmin, ""), false); err != nil {
		return err
	}
	if err := a.cfg.Store.DeleteUserRecord(name); err != nil {
		return fmt.Errorf("auth: remove user: %w", err)
	}
	return nil
}

func (a *Authenticator) save(u *User) error {
	raw, err := json.Marshal(u)
	if err != nil {
		return fmt.Errorf("auth: encode user: %w", err)
	}
	if err := a.cfg.Store.SetUserRecord(u.Name, raw); err != nil {
		return fmt.Errorf("auth: store user: %w", err)
	}
	return nil
}

// Bootstrap creates user name as admin on every bucket with password pw when no user
// exists yet; it reports whether it did. An empty pw does nothing.
func (a *Authenticator) Bootstrap(name, pw string) (bool, error) {
	if pw == "" || len(a.cfg.Store.UserNames()) > 0 {
		return false, nil
	}
	if _, err := a.Put(name, pw, []Grant{{Role: RoleAdmin}}); err != nil {
		return false, err
	}
	a.log.Info("created the first admin user", "user", name)
	return true, nil
}

func hostOf(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}

// clipName bounds what a log line carries of a name a client sent.
func clipName(s string) string {
	if len(s) > MaxNameBytes {
		return s[:MaxNameBytes] + "..."
	}
	return s
}
