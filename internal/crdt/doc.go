// Package crdt holds quorumkv's convergent replicated data types: a PN-counter,
// an add-wins observed-remove set without tombstones (ORSWOT), a
// last-writer-wins register, an enable-wins flag and a map whose fields are
// any of these, nested.
//
// # Model
//
// The types are state-based CRDTs with full-state merge. Replicas already
// ship whole objects (replication, read repair, hinted handoff,
// anti-entropy), so full-state merge needs no delta buffers, no delivery
// guarantees and no acknowledgements, and the states stay small: the set and
// the map keep no tombstones. The node stores a CRDT's encoded State as the
// value of a DVV object (package version); concurrent updates become DVV
// siblings, which readers and the next coordinator fold together with Merge
// before Apply.
//
// Actors are opaque non-empty strings (the node passes its own, node id and
// store epoch, "n1.ab12cd"). An actor's counters only grow, so a dot
// (actor, counter) names one update event forever. Apply mints the dot
// clock[actor]+1; ApplyDot takes a caller-minted dot (for example from a
// node-wide counter, which also keeps two in-flight updates on one key from
// minting the same dot).
//
//   - Counter: per actor the total of its increments (P) and of its
//     decrements (N); Merge takes the entrywise maximum; the value is
//     ΣP − ΣN (int64, wrapping).
//   - Set (riak_dt_orswot): a clock and, per element, the dots of the adds
//     that put it there. Add mints one dot and replaces the element's dots
//     (the coordinator has observed them). Remove drops the element's dots
//     the remove's context has seen, or all of them when the context is
//     empty ("remove what this state observed"). Merge keeps a dot if both
//     sides hold it, or if the side lacking it has not seen it (its clock
//     does not contain it); an element without dots is absent. A concurrent
//     add (a dot the remover had not seen) therefore wins.
//   - Register: value, HLC timestamp and actor; Merge keeps the greatest
//     (timestamp, actor, value). Apply writes a timestamp greater than the
//     current one even if ts is behind, so an assignment always wins over
//     the state it was applied to.
//   - Flag: an ORSWOT with one element: enable mints a dot, disable drops
//     the dots its context has seen; enabled while any dot remains, so a
//     concurrent enable wins.
//   - Map: a clock and fields keyed by (name, type). A field holds presence
//     dots, each with the field's nested State as written by that update
//     (like DVV siblings); its value is the Merge of those States. Presence
//     merges as an ORSWOT element does. An update of a field mints one dot,
//     folds the field's current States, applies the nested op with the same
//     dot and leaves the field with that single dot. Removing a field drops
//     the presence dots the context has seen (all, with an empty context);
//     the field, with its nested value, remains only if an update the
//     remover had not seen remains. Every dot of a nested set, flag or map
//     is minted from the top-level clock, so one context (the top-level
//     clock) describes nested removes too; and a nested dotted State's clock
//     is joined with its parent's clock when it is updated, so a field
//     removed and then re-created does not bring back the elements the
//     remover had seen.
//
// Simplifications, compared with riak_dt_map: a concurrent update of a
// removed field keeps the field's whole value as the updater saw it
// (counters keep their old increments, registers their value), rather than
// only the updater's part. An update of a name whose existing field has
// another type is refused (ErrTypeMismatch); remove the field first, or
// replace it (FieldOp.Replace: a remove of the name and the update, in one op).
// Concurrent updates of one name with two types leave both fields; Value
// then shows them as "name:type". Removes act only on the dots the
// coordinator's state holds: there are no deferred removes, so a remove
// whose context is ahead of the coordinator's state does not remove dots
// that state has not received yet (the node should read before it removes).
//
// # Invariants
//
// Every State produced by this package (and accepted by Decode):
//
//   - has a valid Type, and only the parts of that type;
//   - counter entries are sorted by actor, unique, with P or N non-zero;
//   - clocks are valid version.Clocks; set elements and map fields (by name,
//     then type) are strictly sorted; dot lists are strictly sorted by
//     (actor, counter), non-empty, and every dot is contained in the clock
//     of the State that holds them;
//   - a set register has a non-empty actor;
//   - map fields nest at most MaxDepth levels.
//
// States are immutable values: functions return new States and never modify
// their arguments (results may share memory with them). Merge is
// commutative, associative and idempotent, and Merge(s, Apply(s, …)) equals
// Apply(s, …): an update never loses what its input had merged.
//
// The encoding is canonical (equal States have equal bytes, which the
// anti-entropy hash trees rely on) and versioned by its first byte.
//
// The package is pure: no goroutines, channels, system time, randomness or
// I/O; time (the HLC of an assignment) is an argument.
package crdt
