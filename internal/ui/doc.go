// Package ui is the web dashboard every node serves at /ui/: the ring, the nodes, request
// rates and latencies, hints, anti-entropy, transfers and a key inspector.
//
// Model: a static page (HTML, CSS and JavaScript embedded in the binary: no build step, no
// CDN, so it works in an air-gapped data centre) that polls a few JSON endpoints under
// /ui/api/ and draws what they return. Those endpoints never do work on the node's request
// path:
//
//   - a sampler goroutine gathers the node's own Prometheus registry every Interval,
//     derives rates and p50/p99 latencies from the difference with the previous gather,
//     keeps the last History windows in a ring buffer together with the node's hint queues
//     and hash-tree state, and publishes the lot encoded as JSON behind an atomic pointer;
//     GET /ui/api/node writes those bytes;
//   - GET /ui/api/cluster reads the membership and the ring (atomic loads in the node) and
//     asks every other member's /ui/api/node over HTTP, concurrently, each with
//     PeerTimeout; a member that does not answer is reported unreachable, never waited
//     for longer. Concurrent callers share one fan-out per CacheFor.
//   - GET /ui/api/key asks every member's GET /v1/admin/local for a key the same way (the
//     browser cannot call other nodes itself: they are other origins).
//
// Invariants: a request reads snapshots and makes bounded peer calls; it takes no lock the
// data path takes, and a down or partitioned member costs at most PeerTimeout. Every
// handler goes through one guard (Config.Authorize), where a login goes once the server
// has --auth; until then the dashboard is as open as the rest of the HTTP API.
package ui
