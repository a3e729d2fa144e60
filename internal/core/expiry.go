package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Expiry (TTL): a write may give its value a lifetime. The coordinator turns it into an
// absolute hybrid-clock wall time, Sibling.Expires = the write's HLC wall + TTL, fixed in
// the object, so every copy of the value (replicas, hints, repairs, transfers) expires at
// the same instant. From then on the value is dead, exactly as a tombstone is:
//
//   - a read's answer leaves expired siblings out (the clock still covers them, so a
//     write with the read's context supersedes them); a key whose siblings all expired
//     reads as absent;
//   - a coordinator's write drops the expired siblings of its copy (a write after
//     expiry starts a fresh value, not a sibling of a dead one), and a CRDT operation
//     folds only unexpired states;
//   - repair, anti-entropy, handoff and transfers move expired values like tombstones: they
//     carry the causality of what the value superseded, so an older value a replica still
//     holds is superseded there too and cannot come back;
//   - an object whose siblings are all tombstones or expired is reaped under the tombstone
//     rules: once gc_grace has passed since the last of them died (DiedAt) and every
//     primary holds it. Hints older than gc_grace are dropped rather than delivered, so a
//     late hint of an older value cannot outlive the reaping either.
//
// Expiry is judged at max(the node's wall clock, its HLC): the HLC has observed the
// timestamps of the replicas' answers, so once a node has answered "expired", a node that
// hears from it does too. Clock skew moves the instant a value expires by at most the
// skew between the writer's and the reader's clocks (earlier, when a node's clock runs
// ahead and the HLC carries it).

// ExpiryMode says how a write sets its value's expiry.
type ExpiryMode uint8

// The expiry modes.
const (
	// ExpiryAuto: a value or tombstone gets the bucket's ttl_s (none when 0); a CRDT
	// operation keeps the key's current expiry (Redis INCR keeps a TTL), or gets the
	// bucket's ttl_s when the key held nothing live.
	ExpiryAuto ExpiryMode = iota
	// ExpiryBucket: the bucket's ttl_s whatever the key held (Redis SET without EX).
	ExpiryBucket
	// ExpiryTTL: Expiry.TTL from the write's timestamp.
	ExpiryTTL
	// ExpiryNever: no expiry, whatever the bucket says (Redis PERSIST).
	ExpiryNever
)

// Expiry is a write's expiry request.
type Expiry struct {
	Mode ExpiryMode
	TTL  time.Duration // ExpiryTTL: > 0, whole milliseconds
}

// MaxTTL bounds a TTL (about 100 years): an expiry beyond it would overflow nothing, but
// no caller means it.
const MaxTTL = 100 * 365 * 24 * time.Hour

// Validate checks e.
func (e Expiry) Validate() error {
	switch e.Mode {
	case ExpiryAuto, ExpiryBucket, ExpiryNever:
		if e.TTL != 0 {
			return fmt.Errorf("%w: a TTL given with expiry mode %d", ErrBadRequest, e.Mode)
		}
	case ExpiryTTL:
		if e.TTL < time.Millisecond || e.TTL > MaxTTL {
			return fmt.Errorf("%w: ttl %v is outside 1ms..%v", ErrBadRequest, e.TTL, MaxTTL)
		}
	default:
		return fmt.Errorf("%w: unknown expiry mode %d", ErrBadRequest, e.Mode)
	}
	return nil
}

// expiresAt is the absolute expiry of a new sibling written at wall (Unix ms) with e, over
// a key whose unexpired siblings are live. 0: never.
func expiresAt(e Expiry, props BucketProps, crdtOp bool, live version.Object, wall int64) int64 {
	bucket := func() int64 {
		if props.TTLS > 0 {
			return wall + props.TTLS*1000
		}
		return 0
	}
	switch e.Mode {
	case ExpiryTTL:
		return wall + e.TTL.Milliseconds()
	case ExpiryNever:
		return 0
	case ExpiryBucket:
		return bucket()
	}
	if crdtOp {
		if s, ok := latestLive(live); ok {
			return s.Expires
		}
	}
	return bucket()
}

// latestLive is the live sibling written last (by HLC, then dot), if any.
func latestLive(o version.Object) (version.Sibling, bool) {
	var best version.Sibling
	found := false
	for _, s := range o.Siblings {
		if s.Tombstone {
			continue
		}
		if !found || best.Timestamp.Less(s.Timestamp) || (best.Timestamp == s.Timestamp && best.Dot.Compare(s.Dot) < 0) {
			best, found = s, true
		}
	}
	return best, found
}

// KeyExpiry is a read object's expiry, as Redis TTL reports it: the expiry of its live
// sibling written last (0: none, or no live sibling). Pass an object a read answered
// (expired siblings already left out).
func KeyExpiry(o version.Object) int64 {
	s, _ := latestLive(o)
	return s.Expires
}

// expiryNow is the wall time (Unix ms) at which this node judges expiry: its clock, or its
// HLC when that has seen later timestamps.
func (c *Core) expiryNow() int64 { return max(c.now.Wall, c.hlc.Last().Wall) }

// The forwarded form of an expiry request: pb.CoordPutRequest's expiry_mode and ttl_ms.

// expiryModes maps each ExpiryMode to its wire value, and back.
var expiryModes = map[ExpiryMode]pb.ExpiryMode{
	ExpiryAuto:   pb.ExpiryMode_EXPIRY_MODE_AUTO,
	ExpiryBucket: pb.ExpiryMode_EXPIRY_MODE_BUCKET,
	ExpiryTTL:    pb.ExpiryMode_EXPIRY_MODE_TTL,
	ExpiryNever:  pb.ExpiryMode_EXPIRY_MODE_NEVER,
}

// putExpiry sets a forwarded write's expiry fields from e (valid: checkWrite checked it).
func putExpiry(req *pb.CoordPutRequest, e Expiry) {
	req.ExpiryMode, req.TtlMs = expiryModes[e.Mode], e.TTL.Milliseconds()
}

// forwardedExpiry is the expiry request of a forwarded write; ErrBadRequest when it is not
// a valid one.
func forwardedExpiry(r *pb.CoordPutRequest) (Expiry, error) {
	e := Expiry{Mode: ExpiryMode(255)}
	for m, w := range expiryModes {
		if w == r.ExpiryMode {
			e.Mode = m
		}
	}
	if e.Mode == ExpiryMode(255) {
		return Expiry{}, fmt.Errorf("%w: unknown expiry mode %d in a forwarded write", ErrBadRequest, r.ExpiryMode)
	}
	if r.TtlMs < 0 || r.TtlMs > MaxTTL.Milliseconds() {
		return Expiry{}, fmt.Errorf("%w: forwarded ttl %d ms is outside 1..%d", ErrBadRequest, r.TtlMs, MaxTTL.Milliseconds())
	}
	e.TTL = time.Duration(r.TtlMs) * time.Millisecond
	if err := e.Validate(); err != nil {
		return Expiry{}, err
	}
	return e, nil
}

// Nodes of the previous release forwarded the expiry and the touch as reserved metadata
// entries, whose keys start with a NUL byte. A node still reads them on receipt, for one
// release, so that a rolling upgrade drops no TTL an old node forwards (docs/design.md,
// "Upgrades"); it never sends them. While it reads them, a client's metadata key may not
// start with a NUL byte either (checkMeta): forwarded, it would be taken for one.
const (
	legacyMetaPrefix = "\x00"
	legacyMetaExpiry = "\x00expiry" // "<mode>" or "<mode>:<ttl ms>"
	legacyMetaTouch  = "\x00touch"  // a CRDT touch
)

// takeLegacyReserved splits a forwarded write's metadata into the client's entries and
// what reserved entries (legacyMetaPrefix) an old node's forward said: legacy reports
// whether there was any.
func takeLegacyReserved(meta []version.MetaEntry) (rest []version.MetaEntry, exp Expiry, touch, legacy bool, err error) {
	for _, e := range meta {
		if !strings.HasPrefix(e.Key, legacyMetaPrefix) {
			rest = append(rest, e)
			continue
		}
		legacy = true
		switch e.Key {
		case legacyMetaExpiry:
			mode, ttl, hasTTL := strings.Cut(e.Value, ":")
			m, perr := strconv.ParseUint(mode, 10, 8)
			if perr != nil {
				return nil, Expiry{}, false, false, fmt.Errorf("%w: forwarded expiry %q", ErrBadRequest, e.Value)
			}
			exp.Mode = ExpiryMode(m)
			if hasTTL {
				ms, perr := strconv.ParseInt(ttl, 10, 64)
				if perr != nil || ms < 0 || ms > MaxTTL.Milliseconds() {
					return nil, Expiry{}, false, false, fmt.Errorf("%w: forwarded expiry %q", ErrBadRequest, e.Value)
				}
				exp.TTL = time.Duration(ms) * time.Millisecond
			}
			if err := exp.Validate(); err != nil {
				return nil, Expiry{}, false, false, err
			}
		case legacyMetaTouch:
			touch = true
		default:
			return nil, Expiry{}, false, false, fmt.Errorf("%w: unknown reserved metadata %q in a forwarded write", ErrBadRequest, e.Key)
		}
	}
	return rest, exp, touch, legacy, nil
}
