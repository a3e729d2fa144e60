package storage

import "unsafe"

// TurnBatch gathers the unsynced writes of one event-loop turn and commits them to the
// store underneath as one atomic batch (one Pebble commit instead of one per write),
// while reads through it see them at once. Its owner commits it at the end of every turn,
// before anything that depends on the writes leaves.
//
// Model: a write without Sync is buffered, in order; Get answers from the buffer first.
// A synced write, a Scan or a snapshot first commits what is buffered, so order and
// visibility are as if every write had gone straight to the store. Not safe for
// concurrent use: one loop owns it. Only writes through the TurnBatch are buffered; other
// writers of the same store must not touch its keys.
type TurnBatch struct {
	st    Store
	ops   []Op
	idx   map[string]int // key → its last op in ops
	arena []byte         // the buffered keys and values, copied one after another
}

// keepArenaBytes: an arena grown past this for one big turn is dropped at Commit rather
// than kept for the loop's life.
const keepArenaBytes = 1 << 20

var _ Store = (*TurnBatch)(nil)

// NewTurnBatch buffers writes to st.
func NewTurnBatch(st Store) *TurnBatch { return &TurnBatch{st: st, idx: map[string]int{}} }

// Pending is how many writes wait for Commit.
func (t *TurnBatch) Pending() int { return len(t.ops) }

// Commit writes what is buffered as one batch (without sync: the owner syncs when a
// turn must be durable).
func (t *TurnBatch) Commit() error {
	if len(t.ops) == 0 {
		return nil
	}
	err := t.st.Write(t.ops, WriteOptions{})
	clear(t.ops)
	t.ops = t.ops[:0]
	clear(t.idx)
	// Nothing refers to the arena's bytes any more: the store copied them, and the map
	// that held its keys is empty.
	t.arena = t.arena[:0]
	if cap(t.arena) > keepArenaBytes {
		t.arena = nil
	}
	return err
}

// Get implements Store.
func (t *TurnBatch) Get(key []byte) ([]byte, error) {
	if i, ok := t.idx[string(key)]; ok {
		op := t.ops[i]
		if op.Delete {
			return nil, ErrNotFound
		}
		return append([]byte(nil), op.Value...), nil
	}
	return t.st.Get(key)
}

// buffer copies op's key and value into the arena (one allocation for a turn's writes,
// not two per write) and queues it. A slice handed out earlier keeps its bytes when the
// arena grows: growing copies, it never moves what was written.
func (t *TurnBatch) buffer(op Op) {
	t.arena = append(t.arena, op.Key...)
	op.Key = t.arena[len(t.arena)-len(op.Key) : len(t.arena) : len(t.arena)]
	if !op.Delete {
		t.arena = append(t.arena, op.Value...)
		op.Value = t.arena[len(t.arena)-len(op.Value) : len(t.arena) : len(t.arena)]
	}
	// The map's key is the arena's copy, not a new string: nothing overwrites those bytes
	// before Commit empties the map (the arena only grows meanwhile, and growing leaves
	// what was written where it was).
	t.idx[unsafe.String(unsafe.SliceData(op.Key), len(op.Key))] = len(t.ops)
	t.ops = append(t.ops, op)
}

// Put implements Store.
func (t *TurnBatch) Put(key, value []byte, o WriteOptions) error {
	if o.Sync {
		return t.Write([]Op{{Key: key, Value: value}}, o)
	}
	t.buffer(Op{Key: key, Value: value})
	return nil
}

// Delete implements Store.
func (t *TurnBatch) Delete(key []byte, o WriteOptions) error {
	if o.Sync {
		return t.Write([]Op{{Key: key, Delete: true}}, o)
	}
	t.buffer(Op{Key: key, Delete: true})
	return nil
}

// Write implements Store: buffered, unless synced (then with what was buffered before).
func (t *TurnBatch) Write(ops []Op, o WriteOptions) error {
	if !o.Sync {
		for _, op := range ops {
			t.buffer(op)
		}
		return nil
	}
	if err := t.Commit(); err != nil {
		return err
	}
	return t.st.Write(ops, o)
}

// Scan implements Store, after committing what is buffered.
func (t *TurnBatch) Scan(start, end []byte, fn func(key, value []byte) bool) error {
	if err := t.Commit(); err != nil {
		return err
	}
	return t.st.Scan(start, end, fn)
}

// NewSnapshot implements Store, after committing what is buffered.
func (t *TurnBatch) NewSnapshot() (Snapshot, error) {
	if err := t.Commit(); err != nil {
		return nil, err
	}
	return t.st.NewSnapshot()
}

// Close commits what is buffered; the store underneath stays open (its owner closes it).
func (t *TurnBatch) Close() error { return t.Commit() }
