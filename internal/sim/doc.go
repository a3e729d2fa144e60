// Package sim is quorumkv's deterministic simulator: a cluster of simulated nodes, each
// running the node's own protocol core (package core) — the same coordinators, replica
// handlers, forwarding, sloppy replica sets with hedged stand-ins, dot minting and actor
// rules, read repair, hint storage and handoff sessions, anti-entropy exchanges and
// tombstone reaping the server runs — over the real
// in-memory storage engine and hint store, on a simulated network and clock, driven by one
// seed. The simulator owns the world only: it makes no protocol decision.
//
// Model: one goroutine and an event queue ordered by (virtual time, sequence number). Each
// node's core is stepped with events — a client request, a peer's request, an answer or a
// failed send, the failure detector's view, a timer — and its Ready is carried out as the
// server's loop does: a sync of the store first when asked, then every message through the
// network model, answers back to their senders, replies to the workload, and a Tick at
// the core's next timer. Everything random (latencies, loss, the workload, which node a
// client talks to) draws from one seeded generator in event order, and maps are never
// iterated unsorted, so a seed fully determines a run: the same seed gives the same trace
// hash.
//
// Network: each message takes a latency of its PBS kind (W: a replica write, forwarded
// write or handoff batch; A: its answer; R: a replica read; S: its answer), plus Remote
// between two different nodes (the WAN model). A node's messages to itself — the core
// sends its own replica writes and reads as messages too — take the same latencies and
// are never lost, so the coordinator's own replica acknowledges like any other, as in
// PBS's WARS model (its copy is stored at once: the core needs that for its actor rules).
// A message is lost by chance (Loss) or on a cut link (partitions may be one way); a lost
// request, or one whose answer is lost or would come after the message's deadline, is
// answered to its sender as lost (core.ErrLost) at the deadline; a send to a crashed node
// is refused after one latency (core.ErrUnreachable).
//
// Nodes crash (the store keeps only what was synced, by a core's asking or by the sync
// every 100 ms the server's syncer makes: storage.Memory's crash model; the node restarts
// on that with a new core under a new epoch, hence a new actor, as the server does after a
// crash, past its leased dot counters), pause (their events wait until they resume) and run skewed wall
// clocks. Failure detection is an oracle with a delay: a node sees another down once it
// has been unreachable from it for DetectDelay, and its core is given the new view.
//
// Anti-entropy is the core's too: its hash trees, exchanges (tree and key-list questions
// travel as reads, repairs as writes) and tombstone reaping.
//
// Checkers run during the run — no read returns a value that was never written (every
// minted sibling is recorded through core.Deps.OnMint), no dot is minted twice, a
// replica's version vector for a key never goes backwards within a run (core.Deps.OnWrite),
// a write that saw another has a later timestamp, a read of an lww bucket returns one
// value, no read returns a value a reaped tombstone deleted — and after it: the faults are
// healed, handoff and anti-entropy run for HealBudget (and every client request is
// answered), and then every acknowledged write must be present (as a value or superseded
// by a write that saw it, or deleted by a reaped tombstone), no write's clock may claim an
// acknowledged write of its own actor that its coordinator never saw (kv679; OnMint's
// seen counter), counters must lie between
// their acknowledged and possible sums, all replicas of a key must agree, no deleted
// value may have come back, in an lww bucket the latest acknowledged write must survive,
// and no hint may be left.
package sim
