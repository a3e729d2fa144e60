package core

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Store keys of the node's identity.
const (
	keyEpoch   = "m/epoch"
	keyCounter = "m/counter"
	// keyClean is present while the store is closed after a clean stop (Identity.Stop),
	// and removed once a node has loaded its identity from it.
	keyClean = "m/clean"
	// KeySyncMarker is written with fsync to make every earlier write durable.
	KeySyncMarker = "m/sync"
)

// counterLease is how far ahead of use the dot counter is persisted: one synced write per
// 100,000 writes, and a restart skips at most that many counter values.
const counterLease = 100_000

// maxContextCounter bounds the counters a client context may carry: real counters grow by
// one per write, so 2^48 is centuries away, and a forged larger one could exhaust an actor's
// counter space.
const maxContextCounter = 1 << 48

// Minter is a node's version-vector actor and its dot counter. A node whose cores are
// sharded shares one Minter among them (the server wraps an Identity in a lock), so every
// shard mints under one actor and no dot twice.
type Minter interface {
	// Actor is the node's actor: its id and its store's epoch.
	Actor() string
	// Mint returns a dot counter greater than floor and than any minted before.
	Mint(floor uint64) (uint64, error)
	// Minted is the last counter minted.
	Minted() uint64
}

// Identity is the Minter over the node's store. Not safe for concurrent use.
type Identity struct {
	st      storage.Store
	actor   string
	counter uint64 // the last counter minted
	bound   uint64 // counters up to here are leased (persisted)
}

// LoadIdentity reads the node's epoch (InitEpoch first) and leases its dot counter.
func LoadIdentity(nodeID string, st storage.Store) (*Identity, error) {
	id := &Identity{}
	if err := id.load(nodeID, st); err != nil {
		return nil, err
	}
	return id, nil
}

// Actor implements Minter.
func (id *Identity) Actor() string { return id.actor }

// Minted implements Minter.
func (id *Identity) Minted() uint64 { return id.counter }

// InitEpoch gives the store the epoch its node runs under this time: a fresh store, and a
// store whose node did not stop cleanly (a crash, kill -9: no Identity.Stop since it was
// loaded), get fresh (chosen by the driver, never used before: random in the server); a
// store stopped cleanly keeps its epoch. A node whose store was wiped, or lost writes it
// had not synced, so gets new actors and never reuses a dot (see Identity.load).
func InitEpoch(st storage.Store, fresh string) error {
	_, err := st.Get([]byte(keyEpoch))
	switch {
	case err == nil:
		_, cerr := st.Get([]byte(keyClean))
		if cerr == nil {
			return nil // stopped cleanly: every write it made is on disk
		}
		if !errors.Is(cerr, storage.ErrNotFound) {
			return fmt.Errorf("core: read clean-stop mark: %w", cerr)
		}
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("core: read epoch: %w", err)
	}
	if fresh == "" {
		return errors.New("core: empty store epoch")
	}
	if err := st.Put([]byte(keyEpoch), []byte(fresh), storage.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("core: store epoch: %w", err)
	}
	return nil
}

// load reads the epoch, leases the dot counter, and removes the clean-stop mark: from
// here on, until Stop, a crash counts as unclean.
//
// The actor is the node and its store's epoch. An actor's entry in a key's version vector
// says "every dot of this actor up to here is seen", which holds only while the node's
// copy of the key has every dot the actor minted for it. A clean stop leaves every write
// on disk, so the epoch, hence the actor, survives it: clean restarts (upgrades, rolling
// restarts) add no version-vector entries. A crash may lose writes the node had not synced
// yet, its own coordinated ones among them, which other replicas hold and acknowledged (a
// write's "ok" waits for no fsync unless DW asks it to, or W=1); its next dot for such a
// key under the old actor would cover the lost write, and every replica would drop it as
// superseded (Riak's kv679). So the node restarts from a crash under a new epoch
// (InitEpoch), as Riak's vnodes do: its new dots cover nothing of the old actor's, and the
// lost writes come back from the other replicas by read repair and anti-entropy. The cost
// is one version-vector entry per crash, for the keys the node writes afterwards.
// Counters restart past the persisted lease, so no dot is minted twice either way. A store
// that lost everything (a wiped disk) is a fresh one: a new epoch too.
func (id *Identity) load(nodeID string, st storage.Store) error {
	id.st = st
	epoch, err := st.Get([]byte(keyEpoch))
	if err != nil {
		return fmt.Errorf("core: read epoch (InitEpoch first): %w", err)
	}
	v, err := st.Get([]byte(keyCounter))
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return fmt.Errorf("core: read counter: %w", err)
	default:
		c, perr := strconv.ParseUint(string(v), 10, 64)
		if perr != nil {
			return fmt.Errorf("core: corrupt counter %q: %w", v, perr)
		}
		id.counter = c
	}
	id.bound = id.counter
	id.actor = nodeID + "." + string(epoch)
	if err := id.extendLease(id.counter); err != nil {
		return err
	}
	// Synced: a crash after this point must count as unclean at the next start.
	if err := st.Delete([]byte(keyClean), storage.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("core: clear clean-stop mark: %w", err)
	}
	return nil
}

func (id *Identity) extendLease(from uint64) error {
	bound := from + counterLease
	if err := id.st.Put([]byte(keyCounter), []byte(strconv.FormatUint(bound, 10)), storage.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("core: lease dot counter: %w", err)
	}
	id.bound = bound
	return nil
}

// Mint implements Minter: a dot counter greater than floor and than any this node minted.
func (id *Identity) Mint(floor uint64) (uint64, error) {
	c := max(id.counter, floor) + 1
	if c > id.bound {
		if err := id.extendLease(c); err != nil {
			return 0, err
		}
	}
	id.counter = c
	return c, nil
}

// Stop records a clean stop of a core that owns its identity (Deps.Minter unset); see
// Identity.Stop. The driver calls it last, once nothing else will be written.
func (c *Core) Stop() error {
	if c.ownID == nil {
		return nil
	}
	return c.ownID.Stop()
}

// Stop records a clean stop: the exact dot counter, so the next run carries on from it
// rather than past the lease, and the clean-stop mark, so that it keeps its epoch (one
// synced batch: every write before it is durable too). The driver calls it last, once
// nothing else will be written.
func (id *Identity) Stop() error {
	ops := []storage.Op{
		{Key: []byte(keyCounter), Value: []byte(strconv.FormatUint(id.counter, 10))},
		{Key: []byte(keyClean), Value: []byte{1}},
	}
	if err := id.st.Write(ops, storage.WriteOptions{Sync: true}); err != nil {
		return fmt.Errorf("core: record clean stop: %w", err)
	}
	return nil
}

// checkContext refuses a forged context: one claiming a write of this node's actor that it
// never made, or an absurd counter.
func (c *Core) checkContext(clk version.Clock) error {
	for _, e := range clk {
		if e.Counter > maxContextCounter {
			return fmt.Errorf("%w: context counter %d for %s is out of range", ErrBadRequest, e.Counter, e.Actor)
		}
	}
	actor := c.id.Actor()
	if n := clk.Get(actor); n > c.id.Minted() {
		return fmt.Errorf("%w: context names write %d of %s, which was never made", ErrBadRequest, n, actor)
	}
	return nil
}

// hlcNow ticks the node's hybrid logical clock past every timestamp observed.
func (c *Core) hlcNow(observe ...version.HLC) version.HLC {
	for _, h := range observe {
		if !h.IsZero() {
			c.hlc.Observe(h, c.now.Wall)
		}
	}
	return c.hlc.Now(c.now.Wall)
}

func (c *Core) hlcObserve(h version.HLC) {
	if !h.IsZero() {
		c.hlc.Observe(h, c.now.Wall)
	}
}
