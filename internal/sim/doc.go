// Package sim is quorumkv's deterministic simulator: a cluster of simulated nodes that run
// the protocol's real code — the ring, dotted version vectors and HLC, the coordinator's
// quorum state machines with read repair, the hint store, the hash trees and the
// anti-entropy exchange, over the in-memory storage engine — on a simulated network and
// clock, driven by one seed.
//
// Model: one goroutine and an event queue ordered by (virtual time, sequence number).
// Everything random (latencies, loss, the workload, which replica a client talks to) draws
// from one seeded generator in event order, so a seed fully determines a run: the same
// seed gives the same trace hash. Messages between nodes, and a node's accesses to its own
// store, go through the network model (per-kind latency distributions, loss, partitions
// that may be asymmetric), so no replica is favoured. Nodes crash (losing writes that were
// not synced: the store's crash model), restart, pause (events wait until they resume) and
// run skewed clocks. Failure detection is an oracle with a delay: a node sees another down
// once it has been unreachable from it for DetectDelay.
//
// Checkers run during the run — no read returns a value that was never written, a
// replica's version vector for a key never goes backwards — and after it: the faults are
// healed, handoff and anti-entropy run for HealBudget, and then every acknowledged write
// must be present (as a value or superseded by a write that saw it), all replicas of a key
// must agree, and no hint may be left.
package sim
