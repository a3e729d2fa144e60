// Package ring maps keys to partitions, partitions to owners, and partitions
// to preference lists.
//
// # Model
//
// The key space is the 64-bit output of KeyHash (xxhash64 of bucket, a NUL
// byte and key). It is cut into Q fixed, equal partitions (Q a power of two):
// partition p holds every hash whose top log2(Q) bits equal p. Q never changes
// for the life of a cluster; only the owner of each partition does (Dynamo
// "strategy 3", as in Riak).
//
// The owner map is a pure function of the set of member IDs (zones do not
// affect ownership): every node that knows the same member set computes the
// same map, whatever order it learned the members in.
// Ownership is capacity-bounded rendezvous hashing: every (partition, member)
// pair has a pseudo-random score; every member has a capacity of floor(Q/n)
// partitions, and Q mod n members (those with the highest capacity hash of
// their ID) get one more. The owner map is the unique stable assignment for
// those scores and capacities: the one obtained by visiting all pairs in
// descending score order and taking a pair when its partition is still free
// and its member still under capacity. New computes it lazily (partitions
// propose to members in score order, members keep their best offers), which
// gives the same result without materialising all Q*n pairs.
//
// The preference list of partition p walks the ring from p: the owners of p,
// p+1, p+2, ... (mod Q), then the members that own no partition (only
// possible when n > Q) in ID order. Call that candidate sequence C(p). Walk(p)
// is C(p) reordered for zone diversity: first, in C(p) order, the first
// member met of each zone; then every other member in C(p) order. A zone is
// the Member.Zone string; the empty string is an ordinary zone, so all
// zone-less members share one zone named "". When every member has the same
// zone (including when none has one) Walk(p) is C(p) without duplicates.
// Preference(p, n) is the first n members of Walk(p).
//
// # Invariants
//
//   - Owner(p) is defined for every p in [0, Q) and is a member.
//   - Balance: the partition counts of any two members differ by at most one.
//   - Determinism: New(cfg, ms) and New(cfg, perm(ms)) give identical rings.
//   - Walk(p) lists every member exactly once and starts with Owner(p).
//   - Preference(p, n) is a prefix of Walk(p) of length min(n, members).
//   - With z distinct zones, the first min(n, z) entries of Preference(p, n)
//     are in distinct zones.
//   - Movement: adding or removing one member changes the owner of close to
//     the minimum number of partitions. Measured worst case (TestMovement):
//     moved <= 1.3*ideal + 2*sqrt(Q) + 2, where ideal is what the members
//     that gain must receive. The excess over ideal comes from balance: the
//     newcomer's best partitions are not spread evenly over the old owners,
//     so one that lost too many takes some back from one that lost too few.
//     At Q=256 the mean ratio moved/ideal is 1.04 at 3 nodes, 1.18 at 6,
//     1.3 at 9, 1.7 at 17.
//
// A Ring is immutable after New and safe for concurrent use. The package is
// pure: no goroutines, clocks, randomness or I/O.
package ring

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// NodeID names a cluster member. It must be non-empty and unique.
type NodeID string

// Member is a cluster member with its failure zone. The empty Zone is a zone
// like any other: all members without a zone share it.
type Member struct {
	ID   NodeID
	Zone string
}

// Config fixes the shape of the ring.
type Config struct {
	// Partitions is Q, the number of partitions. It must be a power of two
	// in [1, 1<<16] and must never change for a given cluster.
	Partitions int
}

// MaxPartitions is the largest allowed Config.Partitions.
const MaxPartitions = 1 << 16

// DefaultConfig returns the default ring shape.
func DefaultConfig() Config {
	return Config{
		// Riak's default ring_creation_size of 64 is small: with 64 partitions
		// the per-node share already differs by a whole partition out of ~6
		// at 10 nodes. 256 keeps every node within 1/256 of the key space of
		// each other for clusters of up to ~64 nodes, while keeping
		// per-partition state (hash trees, hint queues) cheap.
		Partitions: 256,
	}
}

// Sentinel errors returned (wrapped) by Validate and New.
var (
	ErrInvalidConfig   = errors.New("ring: invalid config")
	ErrNoMembers       = errors.New("ring: no members")
	ErrEmptyID         = errors.New("ring: empty member ID")
	ErrDuplicateMember = errors.New("ring: duplicate member ID")
)

// Validate reports whether c is usable. The error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	q := c.Partitions
	if q < 1 || q > MaxPartitions || q&(q-1) != 0 {
		return fmt.Errorf("%w: Partitions = %d, want a power of two in [1, %d]",
			ErrInvalidConfig, q, MaxPartitions)
	}
	return nil
}

// maxPrecomputedWalk caps how many entries of Walk(p) New precomputes per
// partition. Preference(p, n) with n <= the cap is a copy from that table;
// longer preference lists and Walk on clusters with more members than the cap
// are computed on demand in O(Q + members). The table costs
// Q * min(members, cap) * 4 bytes: 64 KiB at Q=256, 16 MiB at Q=65536.
const maxPrecomputedWalk = 64

// Ring is an immutable partition map. Build it with New.
type Ring struct {
	shift   uint     // 64 - log2(Q); PartitionForHash is h >> shift
	mask    int      // Q - 1
	members []Member // sorted by ID
	index   map[NodeID]int32
	owners  []int32 // owners[p] indexes members

	zoneOf    []int32 // zone index per member
	zones     int     // number of distinct zones
	nonOwners []int32 // members owning no partition, ascending ID

	width int     // precomputed walk entries per partition
	walks []int32 // walks[p*width : (p+1)*width] is the prefix of Walk(p)
}

// New builds the ring for the given member set. The order of members does not
// matter. It fails (wrapping the sentinels above) on an invalid cfg, no
// members, an empty ID or a duplicate ID.
func New(cfg Config, members []Member) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, ErrNoMembers
	}
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	for i, m := range ms {
		if m.ID == "" {
			return nil, ErrEmptyID
		}
		if i > 0 && ms[i-1].ID == m.ID {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateMember, m.ID)
		}
	}

	q := cfg.Partitions
	r := &Ring{
		shift:   uint(64 - bits.TrailingZeros(uint(q))),
		mask:    q - 1,
		members: ms,
		index:   make(map[NodeID]int32, len(ms)),
		zoneOf:  make([]int32, len(ms)),
	}
	zoneIdx := make(map[string]int32)
	for i, m := range ms {
		r.index[m.ID] = int32(i)
		z, ok := zoneIdx[m.Zone]
		if !ok {
			z = int32(len(zoneIdx))
			zoneIdx[m.Zone] = z
		}
		r.zoneOf[i] = z
	}
	r.zones = len(zoneIdx)

	hashes := make([]uint64, len(ms))
	for i, m := range ms {
		hashes[i] = xxhash.Sum64String(string(m.ID))
	}
	r.owners = assign(q, hashes, capacities(q, hashes))

	owns := make([]bool, len(ms))
	for _, o := range r.owners {
		owns[o] = true
	}
	for i, ok := range owns {
		if !ok {
			r.nonOwners = append(r.nonOwners, int32(i))
		}
	}

	r.width = min(len(ms), maxPrecomputedWalk)
	r.walks = make([]int32, q*r.width)
	w := r.newWalker()
	for p := range q {
		w.walk(r.walks[p*r.width:p*r.width:(p+1)*r.width], p, r.width)
	}
	return r, nil
}

// Partitions returns Q.
func (r *Ring) Partitions() int { return r.mask + 1 }

// Members returns a copy of the members, sorted by ID.
func (r *Ring) Members() []Member { return slices.Clone(r.members) }

// Size is the number of members: len(Walk(p)) for every p.
func (r *Ring) Size() int { return len(r.members) }

// Has reports whether id is a member.
func (r *Ring) Has(id NodeID) bool {
	_, ok := r.index[id]
	return ok
}

// Owner returns the owner of partition p. It panics if p is not in [0, Q).
func (r *Ring) Owner(p int) NodeID { return r.members[r.owners[p]].ID }

// PartitionsOf returns the partitions owned by id, ascending; nil if id owns
// none or is not a member.
func (r *Ring) PartitionsOf(id NodeID) []int {
	i, ok := r.index[id]
	if !ok {
		return nil
	}
	var ps []int
	for p, o := range r.owners {
		if o == i {
			ps = append(ps, p)
		}
	}
	return ps
}

// KeyHash is the position of a key on the ring: xxhash64 of bucket, a NUL
// byte and key. It is stable across processes, platforms and releases.
func KeyHash(bucket, key string) uint64 {
	var buf [128]byte
	if n := len(bucket) + 1 + len(key); n <= len(buf) {
		copy(buf[copy(buf[:], bucket)+1:], key)
		return xxhash.Sum64(buf[:n])
	}
	var d xxhash.Digest
	d.Reset()
	d.WriteString(bucket)
	d.Write([]byte{0})
	d.WriteString(key)
	return d.Sum64()
}

// PartitionOf returns the partition holding bucket/key. O(1), no allocation.
func (r *Ring) PartitionOf(bucket, key string) int {
	return r.PartitionForHash(KeyHash(bucket, key))
}

// PartitionForHash returns the partition holding hash h: its top log2(Q)
// bits.
func (r *Ring) PartitionForHash(h uint64) int {
	return int(h >> r.shift) // a shift by 64 (Q = 1) yields 0
}

// Preference returns the n primaries of partition p: the first min(n,
// members) entries of Walk(p). It returns nil if n <= 0 and panics if p is
// not in [0, Q).
func (r *Ring) Preference(p, n int) []NodeID {
	n = min(n, len(r.members))
	if n <= 0 {
		r.checkPartition(p)
		return nil
	}
	return r.AppendPreference(make([]NodeID, 0, n), p, n)
}

// AppendPreference appends Preference(p, n) to dst and returns the extended
// slice. It does not allocate when n <= 64 and dst has room.
func (r *Ring) AppendPreference(dst []NodeID, p, n int) []NodeID {
	r.checkPartition(p)
	n = min(n, len(r.members))
	if n <= 0 {
		return dst
	}
	var idx []int32
	if n <= r.width {
		idx = r.walks[p*r.width : p*r.width+n]
	} else {
		idx = r.newWalker().walk(make([]int32, 0, n), p, n)
	}
	for _, i := range idx {
		dst = append(dst, r.members[i].ID)
	}
	return dst
}

// Walk returns every member once, in preference order for partition p:
// Preference(p, n) is Walk(p)[:n] for every n. The entries after the first N
// are the fallbacks a sloppy quorum uses, nearest first. It panics if p is
// not in [0, Q).
func (r *Ring) Walk(p int) []NodeID {
	return r.AppendPreference(make([]NodeID, 0, len(r.members)), p, len(r.members))
}

func (r *Ring) checkPartition(p int) {
	if p < 0 || p > r.mask {
		panic(fmt.Sprintf("ring: partition %d out of range [0, %d)", p, r.mask+1))
	}
}

// walker computes prefixes of Walk(p). Its stamp arrays make each walk O(steps)
// without clearing per-member state.
type walker struct {
	r        *Ring
	stamp    uint32
	taken    []uint32 // taken[m] == stamp: m is in the output
	zoneUsed []uint32 // zoneUsed[z] == stamp: zone z is in the output
}

func (r *Ring) newWalker() *walker {
	return &walker{r: r, taken: make([]uint32, len(r.members)), zoneUsed: make([]uint32, r.zones)}
}

// walk appends the first limit (<= members) entries of Walk(p) to dst.
func (w *walker) walk(dst []int32, p, limit int) []int32 {
	r := w.r
	w.stamp++
	start := len(dst)
	q := r.mask + 1
	// offer hands every candidate, owners in ring order then non-owners, to take until
	// it reports that it has enough.
	offer := func(take func(m int32) bool) {
		for i := 0; i < q; i++ {
			if take(r.owners[(p+i)&r.mask]) {
				return
			}
		}
		for _, m := range r.nonOwners {
			if take(m) {
				return
			}
		}
	}
	// Pass 1: the first member met of each zone, in candidate order.
	if want := min(limit, r.zones); want > 0 {
		offer(func(m int32) bool {
			if z := r.zoneOf[m]; w.zoneUsed[z] != w.stamp {
				w.zoneUsed[z] = w.stamp
				w.taken[m] = w.stamp
				dst = append(dst, m)
			}
			return len(dst)-start == want
		})
	}
	// Pass 2: everyone else, in candidate order.
	if len(dst)-start < limit {
		offer(func(m int32) bool {
			if w.taken[m] != w.stamp {
				w.taken[m] = w.stamp
				dst = append(dst, m)
			}
			return len(dst)-start == limit
		})
	}
	return dst
}
