package storage

import (
	"bytes"
	"slices"
	"sync"
)

// Memory is an in-memory Store: a slice of entries sorted by key, guarded
// by a lock. Writes cost O(n) and reads O(log n); it is meant for tests and
// the simulator, not for large data sets.
//
// # Crash model
//
// Memory models the durability of the Pebble engine (see the package doc)
// without a disk: every write made with Sync true, and every write made
// before it, is durable; writes made with Sync false after the last synced
// write are not, until the next synced write or Close. CrashClone returns
// the state a crash would leave. To do so Memory keeps an undo record for
// each unsynced write since the last synced one; a synced write or Close
// drops the records.
//
// Pebble may make an unsynced write durable earlier than that (its WAL is
// written in the background); CrashClone gives the least a crash may keep,
// which is what callers may rely on.
type Memory struct {
	mu      sync.RWMutex
	closed  bool
	entries []entry // sorted by key, keys unique
	// undo holds, oldest first, the previous state of each key written by
	// an unsynced write since the last synced write (or Close).
	undo []undoRecord
}

// entry is one key-value pair. Stored slices are never modified once
// stored, so they may be shared between clones and scan snapshots.
type entry struct {
	key, value []byte
}

type undoRecord struct {
	key     []byte
	value   []byte // previous value; meaningful only if existed
	existed bool
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{}
}

// find returns the index where key is or would be inserted, and whether it
// is there.
func (m *Memory) find(key []byte) (int, bool) {
	return slices.BinarySearchFunc(m.entries, key, func(e entry, k []byte) int {
		return bytes.Compare(e.key, k)
	})
}

// Unsynced implements SyncTracker: whether a crash now would roll back a write.
func (m *Memory) Unsynced() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.undo) > 0
}

// Get implements Store.
func (m *Memory) Get(key []byte) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	i, ok := m.find(key)
	if !ok {
		return nil, ErrNotFound
	}
	v := m.entries[i].value
	out := make([]byte, len(v))
	copy(out, v)
	return out, nil
}

// Put implements Store.
func (m *Memory) Put(key, value []byte, o WriteOptions) error {
	return m.Write([]Op{{Key: key, Value: value}}, o)
}

// Delete implements Store.
func (m *Memory) Delete(key []byte, o WriteOptions) error {
	return m.Write([]Op{{Key: key, Delete: true}}, o)
}

// Write implements Store. Holding the lock for the whole batch makes it
// atomic.
func (m *Memory) Write(ops []Op, o WriteOptions) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if len(ops) == 0 {
		return nil // as in Pebble: an empty batch syncs nothing
	}
	for _, op := range ops {
		key := bytes.Clone(op.Key)
		if key == nil {
			key = []byte{}
		}
		i, found := m.find(key)
		if !o.Sync {
			u := undoRecord{key: key, existed: found}
			if found {
				u.value = m.entries[i].value
			}
			m.undo = append(m.undo, u)
		}
		switch {
		case op.Delete && found:
			m.entries = slices.Delete(m.entries, i, i+1)
		case op.Delete:
		case found:
			m.entries[i].value = cloneNonNil(op.Value)
		default:
			m.entries = slices.Insert(m.entries, i, entry{key, cloneNonNil(op.Value)})
		}
	}
	if o.Sync {
		m.undo = nil // this write and all before it are durable
	}
	return nil
}

func cloneNonNil(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}

// Scan implements Store. It copies the entry headers of the range under
// the read lock (values are shared, they are immutable) and calls fn
// without the lock, so fn may write to the Store.
func (m *Memory) Scan(start, end []byte, fn func(key, value []byte) bool) error {
	m.mu.RLock()
	if m.closed {
		m.mu.RUnlock()
		return ErrClosed
	}
	lo := 0
	if len(start) > 0 {
		lo, _ = m.find(start)
	}
	hi := len(m.entries)
	if len(end) > 0 {
		hi, _ = m.find(end)
	}
	var view []entry
	if lo < hi {
		view = slices.Clone(m.entries[lo:hi])
	}
	m.mu.RUnlock()

	for _, e := range view {
		// Hand out copies: fn must not be able to change stored bytes.
		if !fn(bytes.Clone(e.key), bytes.Clone(e.value)) {
			break
		}
	}
	return nil
}

// Close implements Store. Like Pebble's Close it makes every earlier write
// durable: CrashClone after Close returns everything, which models a clean
// restart.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	m.undo = nil
	return nil
}

// CrashClone returns a new, open Memory holding what a crash at this
// instant would leave: every write up to and including the last synced
// write (or up to Close), and none of the unsynced writes after it. m is
// unchanged and stays usable; CrashClone may be called after Close.
func (m *Memory) CrashClone() *Memory {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c := &Memory{entries: slices.Clone(m.entries)}
	// Roll back the unsynced writes, newest first.
	for i := len(m.undo) - 1; i >= 0; i-- {
		u := m.undo[i]
		j, found := c.find(u.key)
		switch {
		case u.existed && found:
			c.entries[j].value = u.value
		case u.existed:
			c.entries = slices.Insert(c.entries, j, entry{u.key, u.value})
		case found:
			c.entries = slices.Delete(c.entries, j, j+1)
		}
	}
	return c
}

// NewSnapshot implements Store: a copy of the entries as they are now.
func (m *Memory) NewSnapshot() (Snapshot, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	snap := NewMemory()
	snap.entries = slices.Clone(m.entries)
	return memorySnapshot{snap}, nil
}

type memorySnapshot struct{ m *Memory }

func (s memorySnapshot) Scan(start, end []byte, fn func(key, value []byte) bool) error {
	return s.m.Scan(start, end, fn)
}

func (s memorySnapshot) Close() error { return nil }
