// Package core is one node's protocol, once: every decision a quorumkv node makes, as a
// deterministic state machine that the server shell (package node) and the simulator
// (package sim) both drive.
//
// Model (etcd raft's RawNode): the driver feeds events to Step — a client request, a peer's
// request, a peer's answer or a failed send, a membership view, or just the passage of time
// — each with the current time; the core answers through Ready: messages to peers,
// answers to peers' requests, replies to clients, whether the store must be synced before
// any of them leaves, and when the core next wants to be stepped (its earliest timer).
// The driver carries the Ready out (sync, then send) and calls Advance; a driver that keeps
// nothing of a carried-out Ready may hand its slices back (Recycle). The core reads and
// writes its node's storage.Store directly (unsynced; Ready.Sync asks for the one fsync a
// turn needs) and keeps hints in a hints.Store over the same store.
//
// What lives here: per-key replica state (merge on write, hash-tree updates, hints kept for
// down primaries), request coordinators for get, put, delete and CRDT operations on top of
// the quorum machines, forwarding to a primary, sloppy replica sets and hedged stand-ins,
// dot minting and the actor rules, LWW and sibling caps, read repair, the checks on client
// contexts, handoff sessions, expiry (expiry.go), conditional writes (cond.go) and key
// listing by coverage queries (list.go).
//
// Invariants:
//   - A dot (actor, counter) is never minted twice: counters come from a persisted, leased,
//     monotonic counter, and an actor names the node and its store's epoch (a wiped store
//     gets a new one).
//   - An actor's version-vector entry for a key covers only dots the coordinator's copy
//     holds: the node's actor mints only from its own primary copy, and a node that may have
//     lost part of it (a crash lost unsynced writes; a wiped store lost all) restarts under
//     a new epoch, hence a new actor (InitEpoch; a clean stop keeps the epoch); coordination
//     from a hint copy or from no copy uses a one-off actor. The same holds for a CRDT
//     state's per-actor counters.
//   - An object is stored only as the merge of what was there and what arrived, so a
//     replica never loses a sibling it had not seen superseded.
//   - An expired value is dead as a tombstone is, and travels like one: it is never
//     answered to a client, and is reaped only under the tombstone rules.
//   - Nothing in a Ready that depends on a durable write leaves before the driver synced
//     the store (Ready.Sync); an acknowledgement that claims durability is therefore true.
//   - The core starts no goroutine, reads no clock, opens no socket or file: time comes in
//     with each Step, randomness is not used, and the same events give the same Ready.
package core
