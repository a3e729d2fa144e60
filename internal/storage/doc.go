// Package storage holds a node's local, sorted key-value engines behind one
// small interface, Store.
//
// # Model
//
// A Store maps byte-string keys to byte-string values, ordered by
// bytes.Compare. It knows nothing of buckets, versions or replication: the
// layers above encode those into keys and values. Two engines implement it:
//
//   - Pebble: the persistent engine (github.com/cockroachdb/pebble), used by
//     the server.
//   - Memory: a sorted slice guarded by a lock, used by tests and the
//     deterministic simulator. It also models what a crash would leave
//     behind (Memory.CrashClone).
//
// Both engines pass the same test suite, and a metamorphic test checks that
// random operation sequences give identical results on both.
//
// # Guarantees
//
//   - Every method is safe for concurrent use.
//   - Ownership: keys, values and ops passed in may be reused by the caller
//     once the call returns. Slices returned by Get are owned by the caller.
//     Slices passed to a Scan callback are valid only inside that call.
//   - Visibility: a write is visible to every Get and Scan that starts after
//     it returns. Write applies its ops atomically: readers see all of them
//     or none. Ops in one Write apply in order, so a later op on the same key
//     wins.
//   - Scan sees a consistent point-in-time view of the range, fixed when the
//     Scan starts; writes made meanwhile (even by the callback itself, which
//     may call any method except Close) are not seen by that Scan.
//   - Durability (what survives a crash of the process or of the machine):
//     a write made with WriteOptions{Sync: true} is durable when the call
//     returns; this is what a replica's "dw" acknowledgement means. A write
//     made with Sync false becomes durable when a later synced write returns,
//     or when Close returns; until then a crash may lose it. Durability is
//     prefix-ordered: if a crash keeps a write, it keeps every write that
//     returned before it. A crash never leaves part of a Write batch.
//   - A Write with no ops does nothing and syncs nothing.
//   - After Close, every method returns ErrClosed. Close waits for calls in
//     flight (including a running Scan) to finish.
//
// # Group commit
//
// Pebble's commit pipeline batches the WAL fsync of concurrent synced
// writers: while one fsync runs, later writers queue, and the next fsync
// covers all of them. So many goroutines writing with Sync: true pay about
// one fsync per group, not one each (see BenchmarkPebblePutSyncParallel).
package storage
