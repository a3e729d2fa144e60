package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
)

const (
	kib = 1 << 10
	mib = 1 << 20

	// minMemTableBytes keeps a mistyped config from turning every few
	// writes into a flush.
	minMemTableBytes = 64 * kib
	// maxMemTableBytes is Pebble's own limit (it must fit in a uint32).
	maxMemTableBytes = 4<<30 - 1
)

// PebbleConfig configures OpenPebble.
type PebbleConfig struct {
	// CacheBytes is the size of the block cache shared by reads (data,
	// index and filter blocks). 0 disables caching beyond the OS page cache.
	CacheBytes int64
	// MemTableBytes is the size of one memtable. Pebble keeps up to two
	// (one being written, one being flushed) before it stalls writes, so
	// memtables take up to twice this.
	MemTableBytes int
	// RowCacheBytes is the budget of the row cache (recently read and written values by
	// key, in front of Pebble; see rowCache). 0 disables it.
	RowCacheBytes int64
	// RowCacheKeys picks the keys the row cache keeps and the key filter tracks (nil:
	// all): those that point reads ask for.
	RowCacheKeys func(key []byte) bool
	// KeyFilter keeps a Bloom filter of the keys present (see keyFilter), so that a read
	// of a key never written skips Pebble. It is built by a scan of the store in the
	// background at open; reads go to Pebble until that is done.
	KeyFilter bool
	// Logger receives Pebble's messages: routine ones at Debug, background
	// errors and write stalls at Warn/Error. nil discards them.
	Logger *slog.Logger

	// fs replaces the OS file system; tests use a strict in-memory one to
	// simulate a crash. nil means vfs.Default.
	fs vfs.FS
}

// DefaultPebbleConfig returns a configuration sized for a 3-node dev cluster on one
// laptop: Pebble's memory stays near CacheBytes (64 MiB per node), since Pebble counts its
// memtables against the block cache; production nodes should raise both sizes.
func DefaultPebbleConfig() PebbleConfig {
	return PebbleConfig{
		// 64 MiB: eight times Pebble's own default. Every write reads the
		// key first (read-modify-write of the object), so the index and
		// filter blocks of every table must stay cached or each write pays
		// disk reads. The memtables take their share of it (below).
		CacheBytes: 64 * mib,
		// 16 MiB: four times Pebble's default, and a quarter of the cache.
		// Pebble reserves each memtable's size in the block cache, and keeps
		// up to two of them (the one being written, and one being flushed or
		// kept for reuse): at 32 MiB they took the whole 64 MiB cache, the
		// tables' index and filter blocks were evicted, and each read of an
		// absent key read them again (BenchmarkPebbleReadModifyWrite: 12-18
		// µs of CPU per read and write at 32 MiB, 8-10 at 16 MiB, the same
		// 64 MiB cache). Smaller still (8 MiB) flushes twice as often for no
		// gain: more L0 tables for a read of an absent key to rule out.
		MemTableBytes: 16 * mib,
		// On: a new key's read before its first write is a memtable seek and a table
		// probe per level otherwise. 1.5 to 3 bytes a key: for 1M keys, 2 MB and a scan
		// of 0.5 s at open.
		KeyFilter: true,
		// nil: discard. The server passes its own logger.
		Logger: nil,
	}
}

// Validate reports whether c can be used by OpenPebble.
func (c PebbleConfig) Validate() error {
	if c.CacheBytes < 0 {
		return fmt.Errorf("storage: CacheBytes %d is negative", c.CacheBytes)
	}
	if c.RowCacheBytes < 0 {
		return fmt.Errorf("storage: RowCacheBytes %d is negative", c.RowCacheBytes)
	}
	if c.MemTableBytes < minMemTableBytes || c.MemTableBytes > maxMemTableBytes {
		return fmt.Errorf("storage: MemTableBytes %d out of range [%d, %d]",
			c.MemTableBytes, minMemTableBytes, maxMemTableBytes)
	}
	return nil
}

// Pebble is the persistent Store, backed by a Pebble database in one
// directory. Writes go to Pebble's write-ahead log; synced writes fsync it
// before returning (see the package doc for the durability model).
type Pebble struct {
	dir string
	log *slog.Logger

	// mu guards the lifetime of db: every call holds a read lock for its
	// duration (taken with TryRLock, so a call made while Close waits fails
	// fast with ErrClosed instead of deadlocking, for example from inside a
	// Scan callback); Close takes the write lock.
	mu     sync.RWMutex
	closed bool
	db     *pebble.DB
	rows   *rowCache  // nil: no row cache
	keys   *keyFilter // nil: no key filter
	// unsynced is set by every write made without Sync and cleared just before a synced
	// one, which makes every write before it durable (SyncTracker).
	unsynced atomic.Bool

	stopScan chan struct{} // closed by Close: the key filter's scan stops
	stopOnce sync.Once
	scanDone chan struct{} // closed when the key filter's scan has ended
}

// OpenPebble opens the database in dir, creating dir and the database if
// missing. Errors are wrapped with the path.
func OpenPebble(dir string, cfg PebbleConfig) (*Pebble, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "storage", "dir", dir)

	fs := cfg.fs
	if fs == nil {
		fs = vfs.Default
	}
	if err := mkdirAllDurable(fs, dir); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}

	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	opts := &pebble.Options{
		FS:                 fs,
		Cache:              cache,
		MemTableSize:       uint64(cfg.MemTableBytes),
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{logger},
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				logger.Error("pebble background error", "err", err)
			},
			DiskSlow: func(info pebble.DiskSlowInfo) {
				logger.Warn("pebble disk slow", "info", info.String())
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				logger.Warn("pebble write stall", "reason", info.Reason)
			},
			WriteStallEnd: func() {
				logger.Info("pebble write stall ended")
			},
		},
	}
	// Bloom filters (10 bits per key, ~1% false positives) let a point read skip every
	// sstable that cannot hold the key: reads here are all point reads of one key.
	opts.Levels = make([]pebble.LevelOptions, 7)
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].FilterType = pebble.TableFilter
	}
	opts.EnsureDefaults()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			// The LOCK file is locked: another process has the store open.
			if pid := LockHolder(dir); pid != 0 {
				return nil, fmt.Errorf("%w: %s is open in pid %d", ErrInUse, dir, pid)
			}
			return nil, fmt.Errorf("%w: %s: %w", ErrInUse, dir, err)
		}
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	p := &Pebble{dir: dir, log: logger, db: db}
	if cfg.RowCacheBytes > 0 {
		p.rows = newRowCache(cfg.RowCacheBytes, cfg.RowCacheKeys)
	}
	if cfg.KeyFilter {
		p.keys = newKeyFilter(cfg.RowCacheKeys)
		p.stopScan, p.scanDone = make(chan struct{}), make(chan struct{})
		go p.fillKeyFilter()
	}
	return p, nil
}

// fillKeyFilter adds every key the store holds to the key filter, then lets the filter
// answer reads. Writes made meanwhile add their own keys (apply), so none is missed.
func (p *Pebble) fillKeyFilter() {
	defer close(p.scanDone)
	if !p.enter() {
		return
	}
	defer p.mu.RUnlock()
	start := time.Now()
	if n := p.tableEntries(); n > 0 {
		p.keys.presize(n + n/4 + keyFilterFirstKeys) // and room to grow before the next part
	}
	it, err := p.db.NewIter(nil)
	if err != nil {
		p.log.Error("key filter: cannot scan the store; reads of absent keys go to Pebble", "err", err)
		return
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		if k := it.Key(); p.keys.tracks(k) {
			p.keys.add(k)
		}
		if n++; n%4096 == 0 {
			select {
			case <-p.stopScan:
				_ = it.Close()
				return
			default:
			}
		}
	}
	if err := it.Close(); err != nil {
		p.log.Error("key filter: scan of the store failed; reads of absent keys go to Pebble", "err", err)
		return
	}
	p.keys.ready.Store(true)
	st := p.keys.stats()
	p.log.Debug("key filter ready", "keys", st.Keys, "bytes", st.Bytes, "took", time.Since(start))
}

// mkdirAllDurable creates dir and any missing parents, and fsyncs the
// parent of each directory it creates. Pebble syncs the files it creates
// inside dir, but not dir's own entry in its parent: without this, a crash
// soon after a node first starts could lose the whole data directory,
// synced writes included.
func mkdirAllDurable(fs vfs.FS, dir string) error {
	_, err := fs.Stat(dir)
	if err == nil {
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	parent := fs.PathDir(dir)
	if parent != dir {
		if err := mkdirAllDurable(fs, parent); err != nil {
			return err
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d, err := fs.OpenDir(parent)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("sync %s: %w", parent, err)
	}
	return d.Close()
}

// enter starts a call; it returns false once Close has begun. A true
// result must be paired with p.mu.RUnlock.
func (p *Pebble) enter() bool {
	if !p.mu.TryRLock() {
		return false // Close holds or waits for the write lock
	}
	if p.closed {
		p.mu.RUnlock()
		return false
	}
	return true
}

func (p *Pebble) wrap(op string, err error) error {
	return fmt.Errorf("storage: %s %s: %w", op, p.dir, err)
}

// Get implements Store.
func (p *Pebble) Get(key []byte) ([]byte, error) {
	if !p.enter() {
		return nil, ErrClosed
	}
	defer p.mu.RUnlock()
	var seq uint64
	cached := p.rows != nil && p.rows.caches(key)
	if cached {
		val, ok, s := p.rows.get(key)
		if ok {
			return val, nil
		}
		seq = s
	}
	if p.keys != nil && p.keys.absent(key) {
		return nil, ErrNotFound
	}
	v, closer, err := p.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, p.wrap("get", err)
	}
	out := make([]byte, len(v)) // v is only valid until closer.Close
	copy(out, v)
	if err := closer.Close(); err != nil {
		return nil, p.wrap("get", err)
	}
	if cached {
		p.rows.fill(key, out, seq)
	}
	return out, nil
}

// tableEntries is about how many keys the store's tables hold (their properties' entry
// counts: every key, not only those the key filter tracks, and deleted ones until
// compacted away), or 0 when Pebble cannot tell.
func (p *Pebble) tableEntries() int64 {
	levels, err := p.db.SSTables(pebble.WithProperties())
	if err != nil {
		return 0
	}
	var n uint64
	for _, tables := range levels {
		for _, t := range tables {
			if t.Properties != nil {
				n += t.Properties.NumEntries
			}
		}
	}
	return int64(min(n, 1<<40))
}

// KeyFilterStats describes the key filter (zero without one).
func (p *Pebble) KeyFilterStats() KeyFilterStats {
	if p.keys == nil {
		return KeyFilterStats{}
	}
	return p.keys.stats()
}

// RowCacheStats describes the row cache (zero without one).
func (p *Pebble) RowCacheStats() RowCacheStats {
	if p.rows == nil {
		return RowCacheStats{}
	}
	return p.rows.stats()
}

// apply runs write, which changes the keys of ops, keeping the key filter and the row
// cache coherent: every key written goes into the key filter before the write (see
// keyFilter); an unsynced write updates the cached keys with what it wrote, under the
// writers' lock; a synced one, and one that failed, drops its keys from the cache
// afterwards (see rowCache).
func (p *Pebble) apply(ops []Op, o WriteOptions, write func() error) error {
	if o.Sync {
		p.unsynced.Store(false) // a synced write makes every write before it durable
		w := write
		write = func() error {
			err := w()
			if err != nil {
				p.unsynced.Store(true) // it may not have
			}
			return err
		}
	} else {
		p.unsynced.Store(true)
	}
	if p.keys != nil {
		for _, op := range ops {
			if !op.Delete && p.keys.tracks(op.Key) {
				p.keys.add(op.Key)
			}
		}
	}
	if p.rows == nil {
		return write()
	}
	if o.Sync {
		err := write()
		p.rows.wmu.Lock()
		for _, op := range ops {
			if p.rows.caches(op.Key) {
				p.rows.invalidate(op.Key)
			}
		}
		p.rows.wmu.Unlock()
		return err
	}
	p.rows.wmu.Lock()
	defer p.rows.wmu.Unlock()
	err := write()
	for _, op := range ops {
		if !p.rows.caches(op.Key) {
			continue
		}
		if err != nil {
			p.rows.invalidate(op.Key)
		} else {
			p.rows.set(op.Key, op.Value, op.Delete)
		}
	}
	return err
}

func writeOpts(o WriteOptions) *pebble.WriteOptions {
	if o.Sync {
		return pebble.Sync
	}
	return pebble.NoSync
}

// Unsynced implements SyncTracker: whether a write made without Sync may not be durable.
func (p *Pebble) Unsynced() bool { return p.unsynced.Load() }

// Put implements Store.
func (p *Pebble) Put(key, value []byte, o WriteOptions) error {
	if !p.enter() {
		return ErrClosed
	}
	defer p.mu.RUnlock()
	// Set copies key and value into a batch, and a synced Set joins the
	// commit pipeline's group commit like any other batch.
	err := p.apply([]Op{{Key: key, Value: value}}, o, func() error { return p.db.Set(key, value, writeOpts(o)) })
	if err != nil {
		return p.wrap("put", err)
	}
	return nil
}

// Delete implements Store.
func (p *Pebble) Delete(key []byte, o WriteOptions) error {
	if !p.enter() {
		return ErrClosed
	}
	defer p.mu.RUnlock()
	err := p.apply([]Op{{Key: key, Delete: true}}, o, func() error { return p.db.Delete(key, writeOpts(o)) })
	if err != nil {
		return p.wrap("delete", err)
	}
	return nil
}

// Write implements Store.
func (p *Pebble) Write(ops []Op, o WriteOptions) error {
	if !p.enter() {
		return ErrClosed
	}
	defer p.mu.RUnlock()
	if len(ops) == 0 {
		return nil
	}
	b := p.db.NewBatch()
	defer b.Close()
	for _, op := range ops {
		var err error
		if op.Delete {
			err = b.Delete(op.Key, nil)
		} else {
			err = b.Set(op.Key, op.Value, nil)
		}
		if err != nil {
			return p.wrap("write", err)
		}
	}
	if err := p.apply(ops, o, func() error { return b.Commit(writeOpts(o)) }); err != nil {
		return p.wrap("write", err)
	}
	return nil
}

// Compact implements Compacter: it rewrites [start, end) so that deleted keys give their
// disk space back, flushing the memtable first if it overlaps. It can take seconds on a
// large range; callers run it off any latency-sensitive path.
func (p *Pebble) Compact(start, end []byte) error {
	if !p.enter() {
		return ErrClosed
	}
	defer p.mu.RUnlock()
	if err := p.db.Compact(start, end, false); err != nil {
		return p.wrap("compact", err)
	}
	return nil
}

// TableBytes is the bytes the store's sorted tables take on disk (the write-ahead log
// aside).
func (p *Pebble) TableBytes() int64 {
	if !p.enter() {
		return 0
	}
	defer p.mu.RUnlock()
	return p.db.Metrics().Total().Size
}

// Scan implements Store. The iterator reads a point-in-time view of the
// database, so fn may write to the Store.
func (p *Pebble) Scan(start, end []byte, fn func(key, value []byte) bool) error {
	if !p.enter() {
		return ErrClosed
	}
	defer p.mu.RUnlock()
	return p.scan(p.db, start, end, fn)
}

// iterable is what Scan needs of a DB or a snapshot.
type iterable interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

func (p *Pebble) scan(r iterable, start, end []byte, fn func(key, value []byte) bool) error {
	var lower, upper []byte
	// The bounds must stay unchanged while the iterator lives; fn belongs
	// to the caller and could modify start or end, so copy them.
	if len(start) > 0 {
		lower = bytes.Clone(start)
	}
	if len(end) > 0 {
		if bytes.Compare(start, end) >= 0 {
			return nil
		}
		upper = bytes.Clone(end)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return p.wrap("scan", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return p.wrap("scan", err)
		}
		if !fn(it.Key(), v) {
			break
		}
	}
	if err := it.Close(); err != nil { // Close returns it.Error()
		return p.wrap("scan", err)
	}
	return nil
}

// NewSnapshot implements Store.
func (p *Pebble) NewSnapshot() (Snapshot, error) {
	if !p.enter() {
		return nil, ErrClosed
	}
	defer p.mu.RUnlock()
	return &pebbleSnapshot{p: p, snap: p.db.NewSnapshot()}, nil
}

type pebbleSnapshot struct {
	p    *Pebble
	snap *pebble.Snapshot
}

func (s *pebbleSnapshot) Scan(start, end []byte, fn func(key, value []byte) bool) error {
	if !s.p.enter() {
		return ErrClosed
	}
	defer s.p.mu.RUnlock()
	return s.p.scan(s.snap, start, end, fn)
}

func (s *pebbleSnapshot) Close() error {
	if err := s.snap.Close(); err != nil {
		return s.p.wrap("close snapshot", err)
	}
	return nil
}

// Close implements Store. It flushes and fsyncs the WAL, so every write
// made before Close is durable once it returns.
func (p *Pebble) Close() error {
	if p.stopScan != nil {
		p.stopOnce.Do(func() { close(p.stopScan) })
		<-p.scanDone
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.closed = true
	if p.rows != nil {
		p.rows.close() // no call is in flight: they hold p.mu
	}
	if err := p.db.Close(); err != nil {
		return p.wrap("close", err)
	}
	return nil
}

// pebbleLogger routes Pebble's log lines to slog. Pebble is chatty at Info
// (every flush and compaction), so its Infof goes to Debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...), "source", "pebble")
	}
}

// Fatalf is called by Pebble on an unrecoverable error (for example a
// failed WAL write, after which the commit pipeline is unusable). It must
// not return; we log and panic, since the store's invariants are broken.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "source", "pebble", "fatal", true)
	panic("storage: pebble fatal: " + msg)
}
