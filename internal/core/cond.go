package core

import (
	"fmt"

	"github.com/quorumkv/quorumkv/internal/version"
)

// Conditional writes: a write that must find the key absent (HTTP If-None-Match: *, Redis
// SET NX) or present (If-Match: *, SET XX). The node that receives it first reads the key
// at the request's read quorum (R, PR); when the condition holds it writes, as an ordinary
// write, with the context of that read (so a create-only write supersedes the tombstones
// and expired values it read: a fresh value, not a sibling of a dead one); otherwise it
// answers ErrPreconditionFailed and writes nothing.
//
// What this guarantees in a leaderless store, and what it does not: the check and the write
// are two quorum operations, not one atomic step. With R + W > N, a create-only write fails
// when an earlier acknowledged write of a live value is visible (sloppy quorum aside, as
// for any read). Two create-only writes racing each other can both read "absent" and both
// succeed: neither saw the other, so they become siblings (or, in an lww bucket, the later
// one wins). There is no lock and no compare-and-set; for that, a key needs a single
// writer or a consensus protocol.

// WriteCond is a write's precondition.
type WriteCond uint8

// The preconditions.
const (
	CondNone    WriteCond = iota
	CondAbsent            // the key holds no live value (If-None-Match: *, SET NX)
	CondPresent           // the key holds a live value (If-Match: *, SET XX)
)

// condWrite is a conditional write waiting for its read.
type condWrite struct {
	from origin
	m    mutation
	o    WriteOptions
	cond WriteCond
}

// startCondWrite validates the write, then reads the key (getCoord with cond set).
func (c *Core) startCondWrite(r ClientRequest, m mutation) {
	from := origin{client: true, id: r.ID}
	if r.Write.Cond != CondAbsent && r.Write.Cond != CondPresent {
		c.reply(from, Reply{Err: fmt.Errorf("%w: unknown write condition %d", ErrBadRequest, r.Write.Cond)})
		return
	}
	if _, err := c.checkWrite(c.deps.Buckets.Bucket(r.Bucket), r.Bucket, r.Key, m, r.Write); err != nil {
		c.reply(from, Reply{Err: err})
		return
	}
	read := r
	read.Op = OpGet
	if read.Read.Timeout == 0 {
		read.Read.Timeout = r.Write.Timeout
	}
	c.startRead(read, &condWrite{from: from, m: m, o: r.Write, cond: r.Write.Cond})
}

// condRead goes on from a conditional write's read: obj is the merge of the replies, expired
// values left out; raw is the merge as read (for its timestamps).
func (c *Core) condRead(g *getCoord, obj, raw version.Object) {
	cw := g.cond
	live := len(obj.Live()) > 0
	switch {
	case cw.cond == CondAbsent && live:
		c.reply(cw.from, Reply{Err: fmt.Errorf("%w: the key holds a value (create-only write)", ErrPreconditionFailed), Partition: g.rs.partition})
		return
	case cw.cond == CondPresent && !live:
		c.reply(cw.from, Reply{Err: fmt.Errorf("%w: the key holds no value", ErrPreconditionFailed), Partition: g.rs.partition})
		return
	}
	m := cw.m
	if m.ctx == "" && len(raw.Clock) > 0 {
		m.ctx = version.EncodeContext(raw.Clock, raw.MaxTimestamp())
	}
	c.write(cw.from, g.bucket, g.key, m, cw.o, false)
}
