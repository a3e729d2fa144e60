package hints

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Config bounds the hint queues.
type Config struct {
	// Window: a hint not updated for longer than this expires (Expire).
	Window time.Duration
	// MaxBytesPerTarget: a target's pending hint bytes never exceed it;
	// past it Add refuses with ErrFull.
	MaxBytesPerTarget int64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		// 3h: Cassandra's max_hint_window. A node down longer than that is
		// better healed by anti-entropy than by hours of stale hints.
		Window: 3 * time.Hour,
		// 1 GiB: enough for an hour of writes at a few hundred KiB/s per
		// target, small beside a node's disk.
		MaxBytesPerTarget: 1 << 30,
	}
}

// Validate reports whether c can be used by Open.
func (c Config) Validate() error {
	if c.Window <= 0 {
		return fmt.Errorf("hints: Window %v must be positive", c.Window)
	}
	if c.MaxBytesPerTarget <= 0 {
		return fmt.Errorf("hints: MaxBytesPerTarget %d must be positive", c.MaxBytesPerTarget)
	}
	return nil
}

var (
	// ErrFull is wrapped by Add when the target's queue would exceed
	// Config.MaxBytesPerTarget.
	ErrFull = errors.New("hints: hint queue for target is full")
	// ErrCorrupt is wrapped when a stored hint record is malformed. When the
	// object itself is malformed the error also wraps version.ErrCorrupt.
	ErrCorrupt = errors.New("hints: corrupt hint record")
	// ErrInvalid is wrapped when a caller passes a malformed argument (a
	// target or bucket holding NUL, an empty target, a foreign cursor).
	ErrInvalid = errors.New("hints: invalid argument")
)

// Hint is one pending hint as returned by Batch.
type Hint struct {
	Target, Bucket, Key string
	// Object is the encoded version.Object (version.Decode reads it). It
	// aliases the record: do not modify it.
	Object []byte
	// UpdatedMs is the nowMs of the last Add to this hint.
	UpdatedMs int64
	// record is the exact stored record, for Delivered's comparison.
	record []byte
}

// TargetStats describes one target's queue.
type TargetStats struct {
	Target string
	// Pending is the number of well-formed hints held for the target.
	Pending int
	// Bytes is their size: store key plus record bytes.
	Bytes int64
	// OldestMs is the smallest UpdatedMs among them, 0 if none.
	OldestMs int64
	// Delivered, Expired and Dropped count hints since Open.
	Delivered, Expired, Dropped uint64
	// Corrupt is the number of corrupt records held for the target (not
	// counted in Pending or Bytes; never delivered).
	Corrupt int
}

const (
	prefix       = "h"
	numStripes   = 256
	dropLogEvery = int64(time.Minute / time.Millisecond)
	// deleteChunk bounds how many keys one compare-and-delete batch locks.
	deleteChunk = 512
)

// targetState is the in-memory account of one target. Guarded by Store.mu.
type targetState struct {
	pending int
	bytes   int64
	// oldest is the smallest UpdatedMs of the pending hints when !stale; when
	// stale (the hint holding the minimum was removed or updated) it is a
	// lower bound, made exact again by refreshOldest.
	oldest int64
	stale  bool
	// recount: a pending record went bad after Open; see Store.recount.
	recount bool
	// gen counts changes to pending/oldest, so that refreshOldest can tell
	// whether the queue changed while it scanned.
	gen uint64

	delivered, expired, dropped uint64
	corrupt                     map[string]struct{} // store keys of corrupt records

	lastDropLogMs int64
	dropLogged    bool
	dropsUnlogged uint64
}

// Store is a node's set of hint queues, kept in a storage.Store. Safe for
// concurrent use.
type Store struct {
	st   storage.Store
	cfg  Config
	log  *slog.Logger
	seed maphash.Seed

	stripes [numStripes]sync.Mutex

	mu      sync.Mutex // guards targets
	targets map[string]*targetState
}

// Open returns a Store over st, scanning the prefix "h" once to rebuild the
// per-target stats. Corrupt records are logged and counted, not fatal; an
// error from st is returned.
func Open(st storage.Store, cfg Config, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		st:      st,
		cfg:     cfg,
		log:     log.With("component", "hints"),
		seed:    maphash.MakeSeed(),
		targets: make(map[string]*targetState),
	}
	err := st.Scan([]byte(prefix), prefixEnd([]byte(prefix)), func(k, v []byte) bool {
		target, _, _, kerr := parseKey(k)
		ts := s.target(target)
		t, _, rerr := decodeRecord(v)
		if err := errors.Join(kerr, rerr); err != nil {
			s.log.Error("hints: corrupt hint record", "target", target, "key", fmt.Sprintf("%q", k), "err", err)
			ts.corrupt[string(k)] = struct{}{}
			return true
		}
		ts.addPending(t, int64(len(k)+len(v)))
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("hints: open: %w", err)
	}
	return s, nil
}

// target returns the state of target, creating it. Caller holds s.mu (or
// is Open, before s is shared).
func (s *Store) target(target string) *targetState {
	ts := s.targets[target]
	if ts == nil {
		ts = &targetState{corrupt: make(map[string]struct{})}
		s.targets[target] = ts
	}
	return ts
}

func (ts *targetState) addPending(updatedMs, size int64) {
	if ts.pending == 0 {
		ts.oldest, ts.stale = updatedMs, false
	} else {
		ts.oldest = min(ts.oldest, updatedMs)
	}
	ts.pending++
	ts.bytes += size
	ts.gen++
}

func (ts *targetState) removePending(updatedMs, size int64) {
	ts.pending--
	ts.bytes -= size
	ts.gen++
	switch {
	case ts.pending == 0:
		ts.oldest, ts.stale = 0, false
	case updatedMs == ts.oldest:
		ts.stale = true
	}
}

// recount rebuilds pending, bytes and oldest of target from the store,
// holding every stripe so that no write is in flight. It is needed only when
// a record counted as pending went bad after Open (its counted size is then
// unknown), which a healthy engine never does.
func (s *Store) recount(target string) error {
	for i := range s.stripes {
		s.stripes[i].Lock()
	}
	defer func() {
		for i := range s.stripes {
			s.stripes[i].Unlock()
		}
	}()
	s.mu.Lock()
	ts := s.target(target)
	corrupt := maps.Clone(ts.corrupt)
	s.mu.Unlock()
	fresh := targetState{}
	tp := targetPrefix(target)
	err := s.st.Scan(tp, prefixEnd(tp), func(k, v []byte) bool {
		if _, bad := corrupt[string(k)]; bad {
			return true
		}
		if t, _, err := decodeRecord(v); err == nil {
			fresh.addPending(t, int64(len(k)+len(v)))
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("hints: recount %s: %w", target, err)
	}
	s.mu.Lock()
	ts.pending, ts.bytes, ts.oldest, ts.stale, ts.recount = fresh.pending, fresh.bytes, fresh.oldest, false, false
	ts.gen++
	s.mu.Unlock()
	return nil
}

// storeKey builds "h" + target + 0 + bucket + 0 + key.
func storeKey(target, bucket, key string) []byte {
	b := make([]byte, 0, len(prefix)+len(target)+len(bucket)+len(key)+2)
	b = append(b, prefix...)
	b = append(b, target...)
	b = append(b, 0)
	b = append(b, bucket...)
	b = append(b, 0)
	return append(b, key...)
}

// targetPrefix is "h" + target + 0: every hint of target starts with it.
func targetPrefix(target string) []byte {
	b := make([]byte, 0, len(prefix)+len(target)+1)
	b = append(b, prefix...)
	b = append(b, target...)
	return append(b, 0)
}

// prefixEnd returns the smallest key greater than every key with prefix p
// (p never ends in 0xff here: it ends in "h" or 0).
func prefixEnd(p []byte) []byte {
	e := bytes.Clone(p)
	e[len(e)-1]++
	return e
}

// parseKey splits a store key. On a malformed key it still returns the
// best guess at the target (what follows "h" up to the first NUL), so that
// the record can be accounted to it.
func parseKey(k []byte) (target, bucket, key string, err error) {
	rest, ok := bytes.CutPrefix(k, []byte(prefix))
	if !ok {
		return "", "", "", fmt.Errorf("%w: key %q lacks prefix", ErrCorrupt, k)
	}
	t, rest, ok := bytes.Cut(rest, []byte{0})
	if !ok || len(t) == 0 {
		return string(t), "", "", fmt.Errorf("%w: key %q: bad target", ErrCorrupt, k)
	}
	b, kk, ok := bytes.Cut(rest, []byte{0})
	if !ok {
		return string(t), "", "", fmt.Errorf("%w: key %q: no bucket separator", ErrCorrupt, k)
	}
	return string(t), string(b), string(kk), nil
}

// recordPrefix reads a record's UpdatedMs and returns the object bytes
// (aliasing rec), without decoding the object.
func recordPrefix(rec []byte) (int64, []byte, error) {
	u, n := binary.Uvarint(rec)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: bad UpdatedMs varint", ErrCorrupt)
	}
	return int64(u), rec[n:], nil
}

// decodeRecord reads and checks a whole record. The Object aliases rec.
func decodeRecord(rec []byte) (int64, version.Object, error) {
	t, ob, err := recordPrefix(rec)
	if err != nil {
		return 0, version.Object{}, err
	}
	o, err := version.Decode(ob)
	if err != nil {
		return 0, version.Object{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return t, o, nil
}

func encodeRecord(updatedMs int64, o version.Object) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+o.Size())
	b = binary.AppendUvarint(b, uint64(updatedMs))
	return o.AppendBinary(b)
}

func (s *Store) stripe(k []byte) *sync.Mutex {
	return &s.stripes[maphash.Bytes(s.seed, k)%numStripes]
}

func validateNames(target, bucket string) error {
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return fmt.Errorf("%w: target %q must be non-empty and hold no NUL", ErrInvalid, target)
	}
	if strings.IndexByte(bucket, 0) >= 0 {
		return fmt.Errorf("%w: bucket %q holds NUL", ErrInvalid, bucket)
	}
	return nil
}

// Add merges obj into the hint for (target, bucket, key) with
// version.Merge (a hint never loses a sibling it held) and sets UpdatedMs to
// nowMs. If the target's pending bytes would exceed MaxBytesPerTarget it
// stores nothing and returns an error wrapping ErrFull; the refusal is
// counted as Dropped and logged at Warn (at most once per target per minute
// of nowMs). A corrupt record already at the key is replaced (and logged).
// With sync the write is durable when Add returns.
func (s *Store) Add(target, bucket, key string, obj version.Object, nowMs int64, sync bool) error {
	if err := validateNames(target, bucket); err != nil {
		return err
	}
	if err := obj.Validate(); err != nil {
		return fmt.Errorf("hints: add: %w", err)
	}
	recount, err := s.add(target, bucket, key, obj, nowMs, sync)
	if recount {
		if rerr := s.recount(target); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return err
}

// add is Add under the key's stripe. recount reports that the target's
// stats must be rebuilt (a record that went bad after Open was replaced).
func (s *Store) add(target, bucket, key string, obj version.Object, nowMs int64, sync bool) (recount bool, err error) {
	k := storeKey(target, bucket, key)
	mu := s.stripe(k)
	mu.Lock()
	defer mu.Unlock()

	old, err := s.st.Get(k)
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return false, fmt.Errorf("hints: add: %w", err)
	}
	merged := obj
	var oldT int64
	oldValid := false
	if exists {
		t, o, derr := decodeRecord(old)
		if derr != nil {
			s.log.Error("hints: replacing corrupt hint record", "target", target, "bucket", bucket, "key", key, "err", derr)
		} else {
			merged, oldT, oldValid = version.Merge(o, obj), t, true
		}
	}
	rec := encodeRecord(nowMs, merged)
	newSize := int64(len(k) + len(rec))

	// Reserve the bytes, so that concurrent Adds to one target cannot pass
	// the bound together.
	s.mu.Lock()
	ts := s.target(target)
	_, wasCorrupt := ts.corrupt[string(k)]
	counted := exists && !wasCorrupt // old record is in pending/bytes
	var oldSize int64
	if counted {
		oldSize = int64(len(k) + len(old))
	}
	if ts.bytes-oldSize+newSize > s.cfg.MaxBytesPerTarget {
		ts.dropped++
		pendingBytes := ts.bytes
		logIt := !ts.dropLogged || nowMs-ts.lastDropLogMs >= dropLogEvery
		var suppressed uint64
		if logIt {
			suppressed = ts.dropsUnlogged
			ts.dropLogged, ts.lastDropLogMs, ts.dropsUnlogged = true, nowMs, 0
		} else {
			ts.dropsUnlogged++
		}
		s.mu.Unlock()
		if logIt {
			s.log.Warn("hints: queue full, dropping hint", "target", target,
				"pending_bytes", pendingBytes, "hint_bytes", newSize,
				"max_bytes", s.cfg.MaxBytesPerTarget, "dropped_unlogged_since_last_line", suppressed)
		}
		return false, fmt.Errorf("hints: add for %s (%d pending bytes, hint %d bytes, max %d): %w",
			target, pendingBytes, newSize, s.cfg.MaxBytesPerTarget, ErrFull)
	}
	ts.bytes += newSize - oldSize
	s.mu.Unlock()

	if err := s.st.Put(k, rec, storage.WriteOptions{Sync: sync}); err != nil {
		s.mu.Lock()
		ts.bytes -= newSize - oldSize
		s.mu.Unlock()
		return false, fmt.Errorf("hints: add: %w", err)
	}

	s.mu.Lock()
	ts.bytes -= newSize - oldSize // the reservation becomes the real thing
	switch {
	case counted && !oldValid:
		// The old record went bad after Open: its counted size is unknown.
		ts.recount = true
	case counted:
		ts.removePending(oldT, oldSize)
	}
	delete(ts.corrupt, string(k))
	ts.addPending(nowMs, newSize)
	recount = ts.recount
	s.mu.Unlock()
	return recount, nil
}

// Get returns the object hinted for (target, bucket, key). A corrupt record
// gives an error wrapping ErrCorrupt.
func (s *Store) Get(target, bucket, key string) (version.Object, bool, error) {
	if err := validateNames(target, bucket); err != nil {
		return version.Object{}, false, err
	}
	rec, err := s.st.Get(storeKey(target, bucket, key))
	if errors.Is(err, storage.ErrNotFound) {
		return version.Object{}, false, nil
	}
	if err != nil {
		return version.Object{}, false, fmt.Errorf("hints: get: %w", err)
	}
	_, o, err := decodeRecord(rec)
	if err != nil {
		return version.Object{}, false, fmt.Errorf("hints: get %s/%q/%q: %w", target, bucket, key, err)
	}
	return o, true, nil
}

// Batch returns the pending hints of target in key order, starting after
// the cursor after (nil: from the start), holding up to maxBytes of object
// bytes (but at least one hint if any remain), and the cursor to continue
// from, nil when no hint remains after the batch. The cursor is opaque (a
// store key). Corrupt records are skipped, logged and counted in
// TargetStats.Corrupt; they do not stop the queue.
func (s *Store) Batch(target string, after []byte, maxBytes int) (hs []Hint, next []byte, err error) {
	if err := validateNames(target, ""); err != nil {
		return nil, nil, err
	}
	tp := targetPrefix(target)
	start := tp
	if after != nil {
		if !bytes.HasPrefix(after, tp) {
			return nil, nil, fmt.Errorf("%w: cursor %q is not one of target %s", ErrInvalid, after, target)
		}
		start = append(bytes.Clone(after), 0) // the smallest key after the cursor
	}
	total := 0
	more := false
	type bad struct{ k, v []byte }
	var corrupt []bad
	err = s.st.Scan(start, prefixEnd(tp), func(k, v []byte) bool {
		_, bucket, key, kerr := parseKey(k)
		t, ob, rerr := recordPrefix(v)
		if rerr == nil {
			_, rerr = version.Decode(ob)
		}
		if err := errors.Join(kerr, rerr); err != nil {
			corrupt = append(corrupt, bad{bytes.Clone(k), bytes.Clone(v)})
			return true
		}
		if len(hs) > 0 && total+len(ob) > maxBytes {
			more = true
			return false
		}
		rec := bytes.Clone(v)
		hs = append(hs, Hint{
			Target: target, Bucket: bucket, Key: key,
			Object:    rec[len(v)-len(ob):],
			UpdatedMs: t,
			record:    rec,
		})
		total += len(ob)
		return true
	})
	if err != nil {
		return nil, nil, fmt.Errorf("hints: batch %s: %w", target, err)
	}
	for _, c := range corrupt {
		s.noteCorrupt(target, c.k, c.v)
	}
	if len(corrupt) > 0 {
		s.mu.Lock()
		rc := s.target(target).recount
		s.mu.Unlock()
		if rc {
			if err := s.recount(target); err != nil {
				return nil, nil, err
			}
		}
	}
	if more {
		next = storeKey(target, hs[len(hs)-1].Bucket, hs[len(hs)-1].Key)
	}
	return hs, next, nil
}

// noteCorrupt accounts a corrupt record met by Batch: if it is still stored
// as read and not yet known, it moves from Pending to Corrupt.
func (s *Store) noteCorrupt(target string, k, v []byte) {
	mu := s.stripe(k)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.st.Get(k)
	if err != nil || !bytes.Equal(cur, v) {
		return // changed or gone since the scan: not ours to judge
	}
	s.mu.Lock()
	ts := s.target(target)
	_, known := ts.corrupt[string(k)]
	if !known {
		ts.corrupt[string(k)] = struct{}{}
		ts.recount = true // it was counted as pending, with a size we no longer know
	}
	s.mu.Unlock()
	if !known {
		s.log.Error("hints: skipping corrupt hint record", "target", target, "key", fmt.Sprintf("%q", k))
	}
}

// Delivered deletes the given hints (as returned by Batch), each only if
// its stored record is still byte-identical to the one Batch returned: a
// write merged into a hint after Batch read it stays, for the next round.
// It returns how many it deleted and counts them as Delivered. With sync
// the deletions are durable when it returns.
func (s *Store) Delivered(hs []Hint, sync bool) (int, error) {
	cands := make([]candidate, 0, len(hs))
	for _, h := range hs {
		if h.record == nil || validateNames(h.Target, h.Bucket) != nil {
			continue // not from Batch: nothing to compare with
		}
		cands = append(cands, candidate{target: h.Target, key: storeKey(h.Target, h.Bucket, h.Key), want: h.record})
	}
	n, _, err := s.deleteIf(cands, sync, func(c candidate, rec []byte) bool { return bytes.Equal(rec, c.want) },
		func(ts *targetState) { ts.delivered++ })
	return n, err
}

// candidate is a key to compare-and-delete.
type candidate struct {
	target string
	key    []byte
	want   []byte // Delivered: the expected record
}

// deleteIf deletes, in chunks, each candidate whose current record
// satisfies pred, holding the stripes of a chunk across the reads, the
// write and the stats update. count is applied to each deletion's target.
// It returns the number deleted (and, through the stats, their bytes).
func (s *Store) deleteIf(cands []candidate, sync bool, pred func(c candidate, rec []byte) bool, count func(*targetState)) (int, int64, error) {
	deleted := 0
	var deletedBytes int64
	for len(cands) > 0 {
		chunk := cands[:min(len(cands), deleteChunk)]
		cands = cands[len(chunk):]
		n, b, err := s.deleteChunk(chunk, sync, pred, count)
		deleted += n
		deletedBytes += b
		if err != nil {
			return deleted, deletedBytes, err
		}
	}
	return deleted, deletedBytes, nil
}

type removal struct {
	target    string
	key       string
	updatedMs int64
	size      int64
}

func (s *Store) deleteChunk(chunk []candidate, sync bool, pred func(c candidate, rec []byte) bool, count func(*targetState)) (int, int64, error) {
	// Lock the chunk's stripes in index order (no deadlock with other chunks).
	idx := make([]int, 0, len(chunk))
	for _, c := range chunk {
		idx = append(idx, int(maphash.Bytes(s.seed, c.key)%numStripes))
	}
	locked := slices.Clone(idx)
	slices.Sort(locked)
	locked = slices.Compact(locked)
	for _, i := range locked {
		s.stripes[i].Lock()
	}
	defer func() {
		for _, i := range locked {
			s.stripes[i].Unlock()
		}
	}()

	seen := make(map[string]bool, len(chunk))
	var ops []storage.Op
	var rems []removal
	for _, c := range chunk {
		if seen[string(c.key)] {
			continue
		}
		seen[string(c.key)] = true
		rec, err := s.st.Get(c.key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("hints: delete: %w", err)
		}
		if !pred(c, rec) {
			continue
		}
		t, _, err := recordPrefix(rec)
		if err != nil {
			continue // pred accepts only well-formed records; be safe
		}
		ops = append(ops, storage.Op{Key: c.key, Delete: true})
		rems = append(rems, removal{target: c.target, key: string(c.key), updatedMs: t, size: int64(len(c.key) + len(rec))})
	}
	if len(ops) == 0 {
		return 0, 0, nil
	}
	if err := s.st.Write(ops, storage.WriteOptions{Sync: sync}); err != nil {
		return 0, 0, fmt.Errorf("hints: delete: %w", err)
	}
	var total int64
	s.mu.Lock()
	for _, r := range rems {
		ts := s.target(r.target)
		if _, bad := ts.corrupt[r.key]; bad {
			delete(ts.corrupt, r.key) // not reachable through Delivered/Expire; kept exact anyway
		} else {
			ts.removePending(r.updatedMs, r.size)
		}
		count(ts)
		total += r.size
	}
	s.mu.Unlock()
	return len(rems), total, nil
}

// Expire deletes every hint whose UpdatedMs < nowMs - Window, returning how
// many and their bytes; they are counted as Expired and logged per target.
// Corrupt records are left alone. Deletions are not synced: a crash may
// bring some back, and the next Expire removes them again.
func (s *Store) Expire(nowMs int64) (n int, bytesOut int64, err error) {
	cutoff := nowMs - s.cfg.Window.Milliseconds()
	s.mu.Lock()
	var targets []string
	for name, ts := range s.targets {
		// oldest is exact or a lower bound, so this skips only targets
		// with nothing to expire.
		if ts.pending > 0 && ts.oldest < cutoff {
			targets = append(targets, name)
		}
	}
	s.mu.Unlock()
	slices.Sort(targets)

	for _, target := range targets {
		tp := targetPrefix(target)
		var cands []candidate
		err := s.st.Scan(tp, prefixEnd(tp), func(k, v []byte) bool {
			if t, _, err := recordPrefix(v); err == nil && t < cutoff {
				cands = append(cands, candidate{target: target, key: bytes.Clone(k)})
			}
			return true
		})
		if err != nil {
			return n, bytesOut, fmt.Errorf("hints: expire %s: %w", target, err)
		}
		tn, tb, err := s.deleteIf(cands, false, func(c candidate, rec []byte) bool {
			s.mu.Lock()
			_, bad := s.targets[target].corrupt[string(c.key)]
			s.mu.Unlock()
			if bad {
				return false
			}
			// A full decode: a record gone bad since Open is left for
			// Batch to find, never counted as expired.
			t, _, err := decodeRecord(rec)
			return err == nil && t < cutoff
		}, func(ts *targetState) { ts.expired++ })
		n += tn
		bytesOut += tb
		if tn > 0 {
			s.log.Info("hints: expired hints", "target", target, "count", tn, "bytes", tb,
				"window", s.cfg.Window)
		}
		if err != nil {
			return n, bytesOut, err
		}
	}
	return n, bytesOut, nil
}

// refreshOldest makes the oldest of target exact again by scanning its
// hints. If the queue changes while it scans it retries a few times, then
// leaves the (lower-bound) value as it is.
func (s *Store) refreshOldest(target string) error {
	tp := targetPrefix(target)
	for range 3 {
		s.mu.Lock()
		ts := s.targets[target]
		if ts == nil || !ts.stale {
			s.mu.Unlock()
			return nil
		}
		gen := ts.gen
		corrupt := maps.Clone(ts.corrupt)
		s.mu.Unlock()

		var oldest int64
		found := false
		err := s.st.Scan(tp, prefixEnd(tp), func(k, v []byte) bool {
			if _, bad := corrupt[string(k)]; bad {
				return true
			}
			if t, _, err := recordPrefix(v); err == nil && (!found || t < oldest) {
				oldest, found = t, true
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("hints: stats %s: %w", target, err)
		}
		s.mu.Lock()
		if ts.gen == gen {
			ts.oldest, ts.stale = oldest, false
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
	}
	return nil
}

// Stats returns every target's stats, sorted by target, including targets
// with counters but nothing pending. OldestMs is exact unless the queue
// kept changing while Stats recomputed it, in which case it may be lower
// (older) than the true minimum, never higher.
func (s *Store) Stats() []TargetStats {
	s.mu.Lock()
	var stale, recount []string
	for name, ts := range s.targets {
		if ts.recount {
			recount = append(recount, name)
		} else if ts.stale {
			stale = append(stale, name)
		}
	}
	s.mu.Unlock()
	for _, name := range recount {
		if err := s.recount(name); err != nil {
			s.log.Warn("hints: cannot recount target", "target", name, "err", err)
		}
	}
	for _, name := range stale {
		if err := s.refreshOldest(name); err != nil {
			s.log.Warn("hints: cannot recompute oldest hint", "target", name, "err", err)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TargetStats, 0, len(s.targets))
	for name, ts := range s.targets {
		if ts.pending == 0 && ts.delivered == 0 && ts.expired == 0 && ts.dropped == 0 && len(ts.corrupt) == 0 {
			continue
		}
		out = append(out, TargetStats{
			Target: name, Pending: ts.pending, Bytes: ts.bytes, OldestMs: ts.oldest,
			Delivered: ts.delivered, Expired: ts.expired, Dropped: ts.dropped,
			Corrupt: len(ts.corrupt),
		})
	}
	slices.SortFunc(out, func(a, b TargetStats) int { return strings.Compare(a.Target, b.Target) })
	return out
}

// Targets returns the targets with pending hints, sorted.
func (s *Store) Targets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, ts := range s.targets {
		if ts.pending > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
