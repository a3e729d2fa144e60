package bench

import (
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
)

// The key generators of YCSB's core workloads (site.ycsb.generator), ported so that a run
// here draws keys as a YCSB client would: the same formulas, constants and quirks. Each
// generator that holds mutable state belongs to one client goroutine; randomness comes
// from the *rand.Rand passed in, so a seed decides a client's sequence of draws.

// ZipfianConstant is YCSB's default Zipfian exponent (theta).
const ZipfianConstant = 0.99

// scrambledItems is the item count of the Zipfian behind YCSB's scrambled Zipfian
// (ScrambledZipfianGenerator.ITEM_COUNT), and scrambledZetan its zeta for
// ZipfianConstant, precomputed by YCSB (ZETAN) because summing 10^10 terms takes minutes.
const (
	scrambledItems = 10_000_000_000
	scrambledZetan = 26.46902820178302
)

// Zipfian draws integers in [min, max], item min the most popular, item min+i with
// probability proportional to 1/(i+1)^theta, by Gray et al.'s method ("Quickly
// generating billion-record synthetic databases", SIGMOD 1994) as YCSB's ZipfianGenerator
// implements it. The item count may grow between draws (nextLong with a larger count):
// zeta is then extended incrementally, as YCSB does for the "latest" distribution.
type Zipfian struct {
	items, base              int64
	theta, zeta2theta, alpha float64
	zetan, eta               float64
	countForZeta             int64
}

// NewZipfian returns a Zipfian over [min, max] with exponent theta (0 < theta < 1). It
// sums zeta over max-min+1 terms: O(items), about 3 ms per 100,000 items.
func NewZipfian(min, max int64, theta float64) *Zipfian {
	return newZipfianZeta(min, max, theta, zeta(0, max-min+1, theta, 0))
}

func newZipfianZeta(min, max int64, theta, zetan float64) *Zipfian {
	z := &Zipfian{items: max - min + 1, base: min, theta: theta, zetan: zetan}
	z.zeta2theta = zeta(0, 2, theta, 0)
	z.alpha = 1 / (1 - theta)
	z.countForZeta = z.items
	z.eta = z.etaFor()
	return z
}

// etaFor is YCSB's eta. YCSB computes it from the item count given at construction even
// after zeta has been extended to a larger count; kept so that draws match YCSB's.
func (z *Zipfian) etaFor() float64 {
	return (1 - math.Pow(2/float64(z.items), 1-z.theta)) / (1 - z.zeta2theta/z.zetan)
}

// zeta extends sum into the sum over i in [st, n) of 1/(i+1)^theta.
func zeta(st, n int64, theta, sum float64) float64 {
	for i := st; i < n; i++ {
		sum += 1 / math.Pow(float64(i+1), theta)
	}
	return sum
}

// Next draws one item in [min, max].
func (z *Zipfian) Next(r *rand.Rand) int64 { return z.nextLong(r, z.items) }

// nextLong draws one item in [base, base+itemCount), extending zeta when itemCount
// has grown (YCSB never shrinks it: allowitemcountdecrease is false).
func (z *Zipfian) nextLong(r *rand.Rand, itemCount int64) int64 {
	if itemCount > z.countForZeta {
		z.zetan = zeta(z.countForZeta, itemCount, z.theta, z.zetan)
		z.countForZeta = itemCount
		z.eta = z.etaFor()
	}
	u := r.Float64()
	uz := u * z.zetan
	if uz < 1 {
		return z.base
	}
	if uz < 1+math.Pow(0.5, z.theta) {
		return z.base + 1
	}
	return z.base + int64(float64(itemCount)*math.Pow(z.eta*u-z.eta+1, z.alpha))
}

// ScrambledZipfian is YCSB's scrambled Zipfian: a Zipfian over 10^10 items whose draws are
// hashed (FNV-1a, 64 bits) into [min, max], so the popular items are spread over the key
// space instead of clustering at its start. Popularity follows the Zipfian's: the hottest
// key, fnvhash64(0) mod the count, takes 1/zetan ≈ 3.8% of the draws.
type ScrambledZipfian struct {
	min, count int64
	z          *Zipfian
}

// NewScrambledZipfian returns YCSB's scrambled Zipfian over [min, max] with
// ZipfianConstant.
func NewScrambledZipfian(min, max int64) *ScrambledZipfian {
	return &ScrambledZipfian{min: min, count: max - min + 1,
		z: newZipfianZeta(0, scrambledItems, ZipfianConstant, scrambledZetan)}
}

// Next draws one item in [min, max].
func (s *ScrambledZipfian) Next(r *rand.Rand) int64 {
	return s.min + fnvhash64(s.z.Next(r))%s.count
}

// AckCounter is YCSB's AcknowledgedCounterGenerator, shared by the clients: Next hands out
// the key numbers of new records in order; Ack marks one inserted (or its insert given up:
// YCSB acknowledges either way); Last is the highest key number below which every key has
// been acknowledged, the newest record that readers may ask for.
type AckCounter struct {
	next atomic.Int64
	last atomic.Int64

	mu      sync.Mutex
	pending map[int64]struct{} // acknowledged above last
}

// NewAckCounter returns a counter whose first Next is start, with every key below start
// acknowledged (the loaded records).
func NewAckCounter(start int64) *AckCounter {
	c := &AckCounter{pending: map[int64]struct{}{}}
	c.next.Store(start)
	c.last.Store(start - 1)
	return c
}

// Next returns the next key number to insert.
func (c *AckCounter) Next() int64 { return c.next.Add(1) - 1 }

// Ack acknowledges key number v (returned by Next).
func (c *AckCounter) Ack(v int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[v] = struct{}{}
	last := c.last.Load()
	for {
		if _, ok := c.pending[last+1]; !ok {
			break
		}
		delete(c.pending, last+1)
		last++
	}
	c.last.Store(last)
}

// Last returns the highest key number with every key up to it acknowledged.
func (c *AckCounter) Last() int64 { return c.last.Load() }

// Latest is YCSB's SkewedLatestGenerator: the newest records are the most popular, the
// draw being Last minus a Zipfian over [0, Last), so it falls in [1, Last] (YCSB's
// formula never yields key 0). It follows the counter as inserts are acknowledged.
type Latest struct {
	basis *AckCounter
	z     *Zipfian
}

// NewLatest returns a latest-distribution generator over basis.
func NewLatest(basis *AckCounter) *Latest {
	// YCSB sizes the Zipfian at Last items; at least one keeps its formulas finite.
	return &Latest{basis: basis, z: NewZipfian(0, max(basis.Last(), 1)-1, ZipfianConstant)}
}

// Next draws one key number in [0, Last].
func (l *Latest) Next(r *rand.Rand) int64 {
	last := l.basis.Last()
	if last < 1 {
		return max(last, 0)
	}
	return min(max(last-l.z.nextLong(r, last), 0), last)
}

// fnvhash64 is YCSB's Utils.fnvhash64: 64-bit FNV-1a over the eight low-first bytes of v,
// made non-negative.
func fnvhash64(v int64) int64 {
	const (
		offsetBasis = -3750763034362895579 // 0xCBF29CE484222325 as a signed 64-bit value
		prime       = 1099511628211
	)
	h := int64(offsetBasis)
	for range 8 {
		h ^= v & 0xff
		h *= prime
		v >>= 8
	}
	if h < 0 {
		h = -h // Java's Math.abs; it leaves MinInt64 negative, which we fold to 0
	}
	return max(h, 0)
}

// KeyName is YCSB's key for record number n with the default insertorder=hashed:
// "user" followed by fnvhash64(n) in decimal.
func KeyName(n int64) string {
	return "user" + strconv.FormatInt(fnvhash64(n), 10)
}
