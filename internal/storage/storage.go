package storage

import "errors"

// ErrNotFound is returned by Get when the key is absent.
var ErrNotFound = errors.New("storage: not found")

// ErrClosed is returned by every method of a Store after Close has been
// called.
var ErrClosed = errors.New("storage: closed")

// ErrInUse is returned by OpenPebble when another process holds the store open; the
// message names that process's pid when the system tells it.
var ErrInUse = errors.New("storage: data directory in use by another process")

// WriteOptions control a single write.
type WriteOptions struct {
	// Sync makes the write durable before the call returns (the WAL is
	// fsynced). This is what a "dw" acknowledgement means. Without Sync the
	// write is durable only once a later synced write or Close returns.
	Sync bool
}

// Op is one mutation in an atomic Write batch.
type Op struct {
	Key, Value []byte
	// Delete removes Key; Value is ignored.
	Delete bool
}

// Store is a sorted key-value engine. Safe for concurrent use.
//
// Keys and values passed in may be reused by the caller after the call
// returns; returned slices are owned by the caller. Errors other than
// ErrNotFound and ErrClosed come from the engine (I/O, corruption) and are
// wrapped; test them with errors.Is.
type Store interface {
	// Get returns a copy of the value stored at key, or ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Put stores value at key, replacing any previous value.
	Put(key, value []byte, o WriteOptions) error
	// Delete removes key. Deleting an absent key is not an error.
	Delete(key []byte, o WriteOptions) error
	// Write applies ops atomically and in order.
	Write(ops []Op, o WriteOptions) error
	// Scan calls fn for each key in [start, end) in key order, on a
	// point-in-time view taken when Scan starts. A nil or empty start means
	// from the first key; a nil or empty end means to the last (so callers
	// need not care whether a bound they built is nil). key and value are
	// valid only inside fn. fn returns false to stop early. fn may call any
	// method of the Store except Close (which would wait for the Scan, and
	// so forever).
	Scan(start, end []byte, fn func(key, value []byte) bool) error
	// NewSnapshot returns a point-in-time view taken now, for reads that must see one
	// consistent state across many calls (a hash-tree rebuild). Close it before the Store.
	NewSnapshot() (Snapshot, error)
	// Close releases the engine. It waits for calls in flight; later calls
	// return ErrClosed, and so does a second Close.
	Close() error
}

// SyncTracker is a Store that knows whether writes made without Sync may still be lost
// in a crash of the process (Pebble keeps the tail of its log in memory until a sync or
// a full block), so a driver can sync when there are, and only then.
type SyncTracker interface {
	Unsynced() bool
}

// Compacter is a Store that can rewrite a key range so that deleted keys give their disk
// space back (Pebble; the in-memory engine frees memory at once and has no need).
type Compacter interface {
	Compact(start, end []byte) error
}

// Snapshot is a read-only point-in-time view of a Store. Safe for concurrent use.
type Snapshot interface {
	// Scan is Store.Scan on the view.
	Scan(start, end []byte, fn func(key, value []byte) bool) error
	// Close releases the view.
	Close() error
}

var (
	_ Store = (*Pebble)(nil)
	_ Store = (*Memory)(nil)
)
