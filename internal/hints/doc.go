// Package hints holds a node's durable hint queues for hinted handoff.
//
// # Model
//
// When a primary replica of a key is down, a fallback node stores the
// object as a hint naming that primary (the target). Hints live in the
// node's own storage.Store, beside its data, under the key prefix "h", so
// they survive a restart or a kill -9 of the fallback. Later the node hands
// them off: Batch reads a target's hints in key order, the caller sends
// them to the target, and once the target acknowledged them durably
// Delivered deletes them.
//
// There is at most one hint per (target, bucket, key). Add merges a new
// object into it with version.Merge, so a hint never loses a sibling it
// held, and replaying a hint is idempotent on the primary (it merges with
// the same version rules; an old hint never overwrites a newer value).
//
// # Key layout and record
//
//	key:    "h" + target + 0x00 + bucket + 0x00 + key
//	record: uvarint(UpdatedMs) + version.Object.AppendBinary
//
// Target and bucket never contain NUL (Add refuses them); a target is
// never empty. UpdatedMs is the nowMs of the last Add to the hint. The
// record bytes are the hint's identity for Delivered: a hint is deleted
// only if its stored record is still byte-identical to the one Batch read,
// so a write merged in after Batch read it stays for the next round.
//
// # Bounds
//
//   - Age: Expire deletes every hint not updated for longer than
//     Config.Window (counted as Expired, logged).
//   - Size: a target's pending bytes (the sum over its hints of the store
//     key length plus the record length) never exceed
//     Config.MaxBytesPerTarget; an Add that would exceed it is refused with
//     ErrFull, counted as Dropped and logged (at most one line per target
//     per minute of nowMs). Nothing is dropped silently.
//
// # Invariants
//
//   - Stats agree with the store: for every target, Pending and Bytes are
//     the count and size of its well-formed hints, OldestMs is the smallest
//     UpdatedMs among them (0 if none). Open rebuilds them with one scan.
//   - Add and the compare-and-delete of Delivered and Expire on one key
//     never interleave (striped mutexes by hash of the store key, held
//     across the read, the write and the stats update).
//   - A corrupt record (bad key layout, bad varint, or an object that
//     version.Decode rejects) is never delivered and never panics: Open and
//     Batch skip it, log it at Error, and count it in TargetStats.Corrupt
//     (it is not Pending); Get returns an error wrapping ErrCorrupt. It is
//     kept for inspection until an Add to the same key replaces it.
//
// # Time and effects
//
// Time is passed in as nowMs (Unix milliseconds); the package never reads
// the clock and starts no goroutines. A *slog.Logger is passed in. Store is
// safe for concurrent use.
package hints
