// Package version holds quorumkv's causality metadata: dotted version vectors
// (DVV, as in Riak) with per-node actors, sibling sets, the hybrid logical
// clock used to order last-writer-wins values, and the binary encodings of
// stored objects and of the causal context handed to clients.
//
// # Model
//
// An actor is an opaque, non-empty string naming one writer of dots, in
// practice a node and its store epoch ("n1.7f3a9c"). A Dot (actor, counter)
// names one write event. The caller mints counters; for a given actor they are
// unique and strictly increasing but not necessarily contiguous (a node uses
// one node-wide counter for all keys). A Clock is a version vector: for every
// actor the greatest counter seen, so that a dot (a, c) has been seen by clock
// C exactly when C[a] >= c. Clocks therefore describe down-closed sets of dots
// and Join (entrywise max) is their union.
//
// An Object is what a replica stores for one key: a Clock (the causal history
// of everything the replica has seen for that key) and the siblings, the
// concurrent values that history has not yet superseded, each tagged with the
// Dot of the write that produced it. A deletion is a sibling with Tombstone
// set, so a delete carries causality like any other write.
//
//   - A coordinator write with context C (Object.Update) drops exactly the
//     siblings whose dots C contains and adds the new sibling with a fresh dot.
//     Two writes with the same context therefore become two siblings.
//   - Replica sync (Merge) keeps a sibling when the other side holds the same
//     dot or has never seen it; a sibling the other side has seen but no
//     longer holds was superseded and is dropped. Merge is commutative,
//     associative and idempotent, and never loses a sibling the other side has
//     not seen.
//
// # Invariants
//
// Every Clock and Object produced by this package (and accepted by Decode and
// DecodeContext) satisfies:
//
//   - clock entries are sorted by Actor with no duplicate actors, every actor
//     is non-empty and every Counter is > 0;
//   - siblings are sorted by (Dot.Actor, Dot.Counter) with no duplicate dots,
//     every sibling's Counter is > 0 and every sibling's Dot is contained in
//     the object's Clock;
//   - values are immutable: functions return new slices and never modify
//     their inputs, though results may share backing arrays with inputs.
//
// # Time
//
// HLC timestamps (Kulkarni et al., "Logical Physical Clocks") combine a
// physical wall time in Unix milliseconds with a logical counter. HLClock
// never reads the system clock: the caller passes the physical time in. A
// timestamp it issues is strictly greater than every timestamp it issued or
// observed, so a write made after reading a value (and observing its
// timestamp) is ordered after it even when the writer's physical clock lags.
//
// The package is pure: no goroutines, channels, system time, randomness or
// I/O. HLClock is not safe for concurrent use; its owner serialises access.
package version
