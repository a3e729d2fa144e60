package auth

import (
	"slices"
	"sync"
	"time"
)

// BackoffConfig configures the per-address slowdown of failed authentications.
type BackoffConfig struct {
	// Free: 3 failures from one address cost nothing extra (a typo, a retry).
	Free int
	// Base: the 4th failure makes the next attempt wait 100 ms, doubling per failure...
	Base time.Duration
	// Max: ...up to 5 s, enough to make guessing slow, short enough for a person.
	Max time.Duration
	// Forget: an address that has not failed for 10 minutes starts afresh.
	Forget time.Duration
	// MaxAddrs: 65536 addresses tracked at most (about 5 MiB); past it the oldest half is
	// dropped, so a flood of addresses bounds memory rather than the slowdown.
	MaxAddrs int
}

// DefaultBackoff returns the defaults explained on BackoffConfig.
func DefaultBackoff() BackoffConfig {
	return BackoffConfig{Free: 3, Base: 100 * time.Millisecond, Max: 5 * time.Second, Forget: 10 * time.Minute, MaxAddrs: 1 << 16}
}

// Backoff tracks failures per address. Safe for concurrent use. Only the failing address
// waits; the node serves every other client as before.
type Backoff struct {
	cfg BackoffConfig
	now func() time.Time

	mu    sync.Mutex
	addrs map[string]*failures
}

type failures struct {
	n    int
	last time.Time
}

// NewBackoff returns a Backoff reading the time from now.
func NewBackoff(cfg BackoffConfig, now func() time.Time) *Backoff {
	if cfg.MaxAddrs <= 0 {
		cfg = DefaultBackoff()
	}
	return &Backoff{cfg: cfg, now: now, addrs: map[string]*failures{}}
}

// Delay is how long the next attempt from addr waits.
func (b *Backoff) Delay(addr string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.addrs[addr]
	if f == nil {
		return 0
	}
	if b.now().Sub(f.last) > b.cfg.Forget {
		delete(b.addrs, addr)
		return 0
	}
	return b.delay(f.n)
}

func (b *Backoff) delay(n int) time.Duration {
	over := n - b.cfg.Free
	if over <= 0 {
		return 0
	}
	d := b.cfg.Base
	for i := 1; i < over && d < b.cfg.Max; i++ {
		d *= 2
	}
	return min(d, b.cfg.Max)
}

// Fail records a failure from addr and returns the address's count.
func (b *Backoff) Fail(addr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.addrs[addr]
	if f == nil {
		if len(b.addrs) >= b.cfg.MaxAddrs {
			b.evict()
		}
		f = &failures{}
		b.addrs[addr] = f
	}
	f.n++
	f.last = b.now()
	return f.n
}

// Succeed forgets addr's failures.
func (b *Backoff) Succeed(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.addrs, addr)
}

// evict drops the half of the addresses idle longest (b.mu held). Sorting 64k times once
// per 32k new failing addresses is cheap.
func (b *Backoff) evict() {
	times := make([]time.Time, 0, len(b.addrs))
	for _, f := range b.addrs {
		times = append(times, f.last)
	}
	if len(times) == 0 {
		return
	}
	slices.SortFunc(times, time.Time.Compare)
	cut := times[len(times)/2]
	for a, f := range b.addrs {
		if !f.last.After(cut) {
			delete(b.addrs, a)
		}
	}
}
