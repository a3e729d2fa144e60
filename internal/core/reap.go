package core

import (
	"bytes"
	"time"

	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Tombstone reaping: a delete leaves a tombstone so that a replica that slept through the
// delete cannot bring the value back. A tombstone is removed only when both hold: its
// bucket's gc_grace has passed since the delete, and every primary of the key is known to
// hold this very tombstone — checked, just before reaping, by asking each other primary
// for its copy (a primary holding nothing has reaped it already). A primary that is down,
// or holds anything else, keeps the tombstone alive here. A pass scans the store a chunk
// at a time every ReapInterval, and checks its candidates one after the other.

// StartReap runs one reaping pass now; a ReapDone with the same ID reports it.
type StartReap struct{ ID uint64 }

func (StartReap) isEvent() {}

// ReapDone reports an on-demand reaping pass.
type ReapDone struct {
	ID     uint64
	Reaped int
}

type reapState struct {
	next    time.Duration // the next scheduled pass
	running bool
	cursor  []byte // the next key to scan; nil once the scan is done
	cands   []reapCand
	cur     *reapCand
	reaped  int
	waiting []uint64 // on-demand passes waiting for this one to end
}

type reapCand struct {
	id          uint64
	bucket, key string
	raw         []byte
	ask         []string // primaries still to ask
}

func (c *Core) startReap(e StartReap) {
	if c.trees == nil {
		c.ready.Reaped = append(c.ready.Reaped, ReapDone{ID: e.ID})
		return
	}
	c.reap.waiting = append(c.reap.waiting, e.ID)
	c.beginReapPass()
}

func (c *Core) beginReapPass() {
	if c.reap.running {
		return
	}
	lo, _ := c.dataRange()
	c.reap = reapState{next: c.reap.next, running: true, cursor: lo, waiting: c.reap.waiting}
	c.at(c.now.Mono, timerReap, 0)
}

// reapStep moves the pass on: scan a chunk, or check the next candidate.
func (c *Core) reapStep() {
	rs := &c.reap
	if c.now.Mono >= rs.next {
		rs.next = c.now.Mono + c.cfg.ReapInterval
		c.at(rs.next, timerReap, 0)
		if !rs.running {
			c.beginReapPass()
			return
		}
	}
	if !rs.running {
		return
	}
	if rs.cur != nil {
		return // waiting for a primary's answer
	}
	if len(rs.cands) > 0 {
		c.checkCandidate()
		return
	}
	if rs.cursor == nil {
		c.endReapPass()
		return
	}
	next, err := c.scanChunk(c.deps.Store, rs.cursor, c.cfg.ReapChunk, func(bucket, key string, _, v []byte) {
		obj, err := version.Decode(v)
		if err != nil || !obj.Dead(c.now.Wall) || !PastGCGrace(obj, c.deps.Buckets.Bucket(bucket), c.now.Wall) {
			return
		}
		rs.cands = append(rs.cands, reapCand{bucket: bucket, key: key, raw: bytes.Clone(v)})
	})
	if err != nil {
		c.log(LevelWarn, "tombstone reaping stopped early", "err", err)
		c.endReapPass()
		return
	}
	rs.cursor = next
	c.at(c.now.Mono, timerReap, 0)
}

// checkCandidate asks the other primaries of the next candidate for their copies.
func (c *Core) checkCandidate() {
	rs := &c.reap
	cand := rs.cands[0]
	rs.cands = rs.cands[1:]
	set, err := c.replicas(cand.bucket, cand.key, c.deps.Buckets.Bucket(cand.bucket).N)
	if err != nil || !set.isPrimary(c.cfg.ID) {
		c.at(c.now.Mono, timerReap, 0) // not ours to judge (the ring moved); a primary will
		return
	}
	for _, p := range set.primaries {
		if p == c.cfg.ID {
			continue
		}
		if !c.alive(p) {
			c.at(c.now.Mono, timerReap, 0) // a primary down cannot confirm
			return
		}
		cand.ask = append(cand.ask, p)
	}
	cand.id = c.newID()
	rs.cur = &cand
	c.askNextPrimary()
}

func (c *Core) askNextPrimary() {
	rs := &c.reap
	cand := rs.cur
	if len(cand.ask) == 0 {
		// Every primary holds this tombstone or nothing: reap it, if unchanged meanwhile.
		if ok, err := c.Reap(cand.bucket, cand.key, cand.raw); err != nil {
			c.log(LevelWarn, "tombstone reaping failed", "bucket", cand.bucket, "key", cand.key, "err", err)
		} else if ok {
			rs.reaped++
			c.count(CountTombstonesReaped, 1)
		}
		rs.cur = nil
		c.at(c.now.Mono, timerReap, 0)
		return
	}
	p := cand.ask[0]
	cand.ask = cand.ask[1:]
	env := &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: cand.bucket, Key: cand.key}}}
	c.send(p, env, c.now.Mono+c.cfg.RequestTimeout, pending{owner: cand.id, kind: callReap})
}

func (c *Core) reapResponse(p pending, r Response) {
	rs := &c.reap
	cand := rs.cur
	if cand == nil || cand.id != p.owner {
		return
	}
	gr := r.Env.GetGetResp()
	// A primary holding nothing has reaped this tombstone already (it confirmed, before
	// reaping, that every primary held it) or never had the key; either way it has no older
	// value to bring back (hints older than gc_grace are discarded, not delivered).
	// Requiring it to hold the tombstone would let only the first primary ever reap: the
	// others would keep the tombstone forever.
	if r.Err != nil || gr == nil || gr.Found && !bytes.Equal(gr.Object, cand.raw) {
		rs.cur = nil // cannot confirm: keep it
		c.at(c.now.Mono, timerReap, 0)
		return
	}
	c.askNextPrimary()
}

func (c *Core) endReapPass() {
	rs := &c.reap
	if rs.reaped > 0 {
		c.log(LevelInfo, "tombstones reaped", "count", rs.reaped)
	}
	for _, id := range rs.waiting {
		c.ready.Reaped = append(c.ready.Reaped, ReapDone{ID: id, Reaped: rs.reaped})
	}
	c.reap = reapState{next: rs.next}
}
