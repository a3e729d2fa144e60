package core

import (
	"slices"
	"time"

	"github.com/quorumkv/quorumkv/internal/ring"
)

// Ownership cleanup: once a cluster change has settled (no Next), a node deletes its copy
// of every key it is no longer a replica of — partitions it gave away in a join, all of
// them after it left — so their disk is reclaimed and anti-entropy stops comparing them.
// It waits CleanupDelay after the ring it cleans for took effect, so that coordinators
// still using the old ring for a moment find the copies they expect; a change that starts
// meanwhile stops the pass (the next settled ring starts another). A pass also runs at
// start, for a change the node missed while it was down. Hints are kept apart and are not
// touched: they go to their primaries as before.

type cleanupState struct {
	ring    *ring.Ring // the ring the pass cleans for (nil: none)
	cursor  []byte
	running bool
	deleted int
	at      time.Duration // when the pass may start
}

// planCleanup starts a pass for a settled ring that differs from the last one cleaned for.
func (c *Core) planCleanup() {
	v := c.view
	cs := &c.cleanup
	if v.Ring == nil || v.Next != nil {
		// A change under way: wait for it to settle, then clean again whatever ring it
		// settles on (this node may have taken partitions in during it).
		*cs = cleanupState{}
		return
	}
	if cs.ring != nil && slices.Equal(cs.ring.Members(), v.Ring.Members()) && (cs.running || cs.cursor == nil) {
		return // cleaned (or cleaning) for this ring already
	}
	lo, _ := c.dataRange()
	*cs = cleanupState{ring: v.Ring, cursor: lo, running: true, at: c.now.Mono + c.cfg.CleanupDelay}
	c.at(cs.at, timerCleanup, 0)
}

// cleanupStep deletes a chunk's keys this node does not replicate.
func (c *Core) cleanupStep() {
	cs := &c.cleanup
	if !cs.running || c.now.Mono < cs.at {
		return
	}
	if c.view.Next != nil || c.view.Ring != cs.ring && !slices.Equal(c.view.Ring.Members(), cs.ring.Members()) {
		cs.running = false
		return
	}
	self := ring.NodeID(c.cfg.ID)
	type victim struct {
		bucket, key string
		k, raw      []byte
	}
	var victims []victim
	next, err := c.scanChunk(c.deps.Store, cs.cursor, c.cfg.RebuildChunk, func(bucket, key string, k, v []byte) {
		p := PartitionOf(bucket, key, c.cfg.Partitions)
		if !slices.Contains(cs.ring.Preference(p, c.deps.Buckets.Bucket(bucket).N), self) {
			victims = append(victims, victim{bucket, key, slices.Clone(k), slices.Clone(v)})
		}
	})
	if err != nil {
		c.log(LevelWarn, "ownership cleanup stopped early", "err", err)
		cs.running = false
		return
	}
	for _, x := range victims {
		if err := c.storeData(x.bucket, x.key, x.k, x.raw, nil, false, true); err != nil {
			c.log(LevelWarn, "ownership cleanup: delete failed", "bucket", x.bucket, "key", x.key, "err", err)
			continue
		}
		cs.deleted++
	}
	c.count(CountCleanupDeleted, len(victims))
	if next == nil {
		if cs.deleted > 0 {
			c.log(LevelInfo, "copies of partitions no longer owned deleted", "keys", cs.deleted)
			lo, hi := c.dataRange()
			c.ready.Compact = append(c.ready.Compact, KeyRange{Start: lo, End: hi})
		}
		cs.running, cs.cursor = false, nil
		return
	}
	cs.cursor = next
	c.at(c.now.Mono, timerCleanup, 0)
}
