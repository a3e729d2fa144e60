package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/storage"
)

// Config configures a Node.
type Config struct {
	ID         string   // unique, stable node name (e.g. "n1")
	DataDir    string   // where the store lives
	HTTPAddr   string   // host:port of the HTTP API; port 0 picks one
	RESPAddr   string   // host:port of the Redis protocol front end ("" = off)
	RPCAddr    string   // host:port of the internode transport
	GossipAddr string   // host:port of memberlist gossip
	Join       []string // gossip addresses of seed nodes
	Replace    string   // a dead member this node takes over (--replace)
	Zone       string   // failure zone; preference lists spread over zones first

	// DebugFaults enables POST /v1/debug/faults.
	DebugFaults bool

	// TransferRate: 16 MiB/s of partition transfer into this node (0: unthrottled), so a
	// joining node fills quickly without starving client traffic (core.Config.TransferRate).
	TransferRate int64
	// CleanupDelay: 30 s after a cluster change settles before a node deletes its copies of
	// keys it no longer replicates (core.Config.CleanupDelay).
	CleanupDelay time.Duration

	// Loops: the event loops that run the node's protocol core, each owning a contiguous
	// range of partitions (core.ShardConfig). 0 means one per CPU (GOMAXPROCS), as
	// ScyllaDB runs a shard per core: one node's work spreads over its CPUs with no lock
	// per key. At most Partitions.
	Loops int

	// Partitions is Q, the fixed number of ring partitions: 256 balances to within 1/256
	// for clusters up to a few dozen nodes and keeps per-partition state small.
	Partitions int
	// MaxKeyBytes: 8 KiB, the contract's limit; longer keys are refused with 413.
	MaxKeyBytes int
	// MaxValueBytes: 4 MiB, the contract's limit; larger values are refused with 413.
	MaxValueBytes int
	// MaxSiblings: 100 siblings per object. Past that a client that never resolves
	// conflicts is refused (409) rather than letting one key grow without bound.
	MaxSiblings int
	// MaxObjectBytes: 64 MiB per stored object (all siblings), to bound one key's memory.
	MaxObjectBytes int
	// RequestTimeout: 5 s default deadline for a client request, overridable per request.
	RequestTimeout time.Duration

	// HintWindow: 3 h, Cassandra's max_hint_window. A hint not updated for longer expires
	// (counted and logged); its key then heals by read repair and anti-entropy, which is
	// cheaper than replaying hours of writes to a node that was down that long.
	HintWindow time.Duration
	// HintMaxBytes: 1 GiB of pending hints per target; past it a fallback refuses to keep
	// more for that target (the write then needs another replica), counted and logged.
	HintMaxBytes int64
	// HintRate: 16 MiB/s of handoff per target, so a returning node catches up quickly
	// without starving client traffic on either side. 0 means unthrottled.
	HintRate int64
	// HedgeDelay: 1 s. A write that has not heard from a primary by then also sends the
	// object to a fallback as a hint (at most half the request's deadline): a paused or
	// partitioned primary then costs a write this long, not its whole deadline. Far above
	// a healthy replica's latency, so hints for live primaries stay rare.
	HedgeDelay time.Duration
	// NoAAE turns anti-entropy off: no hash trees, no exchanges, no tombstone reaping
	// (for measuring what they cost; without them cold keys never converge).
	NoAAE bool
	// AAESegments: 2^16 segments per partition tree (512 KiB per partition holding data):
	// with up to ~100k keys per partition a segment holds a couple of keys, so a divergent
	// key costs a few hashes and one short key list to find.
	AAESegments int
	// AAEInterval: one anti-entropy exchange every 2 s per node, rotating through its
	// partitions and their other primaries: a 3-node cluster of 256 partitions compares
	// every pair within about half an hour, at little cost when nothing differs.
	AAEInterval time.Duration
	// AAERate: 8 MiB/s of exchange and repair traffic per node at most (scheduled runs).
	AAERate int64
	// TreeRebuildInterval: rebuild the trees from the store every 24 h, so silent disk
	// corruption shows up as a difference and gets repaired.
	TreeRebuildInterval time.Duration
	// ReapInterval: look for tombstones to reap every 10 minutes. A tombstone is reaped
	// only past its bucket's gc_grace and once every primary holds it.
	ReapInterval time.Duration
	// HandoffInterval: 10 s between handoff retries; a member coming back also starts one.
	HandoffInterval time.Duration
	// HandoffBatchBytes: 1 MiB of objects per handoff batch: few round trips, bounded
	// memory, and a failed batch resends little.
	HandoffBatchBytes int

	Logger *slog.Logger
	// SyncWindow: 0. Durable writes (dw, hints, handoff) that arrive while an
	// fsync runs share the next one (group commit); a window makes them also wait this
	// long for others before it. When every write waited for its coordinator's sync (a rule
	// since replaced by a new actor after a crash), the 1 ms window cost about 8% of
	// unpipelined SET throughput and saved no CPU (docs/benchmarks.md, "The coordinator's
	// own ack").
	SyncWindow time.Duration
	// SyncInterval: 100 ms. Writes that claim no durability (a replica's ack without dw)
	// are synced at most this long after they were made: the store keeps the tail of its
	// log in memory until a sync, so without it a replica killed with -9 lost every such
	// write since the node's last sync, however old. 10 ms cost 13% of unpipelined SET
	// throughput (the replicas' fsyncs share the coordinator's disk); 100 ms nothing
	// measurable (docs/benchmarks.md). 0: only when asked.
	SyncInterval time.Duration

	// BlockCacheBytes: 64 MiB, Pebble's block cache, which also holds its memtables
	// (storage.DefaultPebbleConfig says why).
	BlockCacheBytes int64
	// RowCacheBytes: 32 MiB, recently read and written objects by key in front of Pebble,
	// so that the read before each write of a hot key skips Pebble's seeks (0: none).
	RowCacheBytes int64

	// Clock is where the node reads the time; nil is the wall clock.
	Clock Clock

	// HTTPHandler builds the HTTP API for the node (api.New); nil serves no HTTP.
	HTTPHandler func(*Node) http.Handler

	// Security (docs/security.md); all nil serves in the clear, as dev and tests do.
	// HTTPTLS, when set, serves the HTTP API over TLS only (pki.Bundle.ClientFacing).
	HTTPTLS *tls.Config
	// InternodeServerTLS and InternodeClientTLS, when set (both or neither), make the
	// internode port mutual TLS with the cluster CA (pki.Bundle.InternodeServer/Client).
	InternodeServerTLS, InternodeClientTLS *tls.Config
	// GossipKeys encrypt gossip (membership.Config.GossipKeys); the first one sends.
	GossipKeys [][]byte
}

// DefaultConfig returns the defaults: the protocol's are the core's (see core.Config for
// the reasons), the others' reasons are beside each field.
func DefaultConfig() Config {
	cd := core.DefaultConfig()
	return Config{
		Partitions:     cd.Partitions,
		MaxKeyBytes:    cd.MaxKeyBytes,
		MaxValueBytes:  cd.MaxValueBytes,
		MaxSiblings:    cd.MaxSiblings,
		MaxObjectBytes: cd.MaxObjectBytes,
		RequestTimeout: cd.RequestTimeout,

		HintWindow:        3 * time.Hour,
		HintMaxBytes:      1 << 30,
		HintRate:          cd.HintRate,
		TransferRate:      cd.TransferRate,
		HandoffInterval:   cd.HandoffInterval,
		HandoffBatchBytes: cd.HandoffBatchBytes,
		HedgeDelay:        cd.HedgeDelay,

		AAESegments:         cd.AAESegments,
		AAEInterval:         cd.AAEInterval,
		AAERate:             cd.AAERate,
		TreeRebuildInterval: cd.TreeRebuildInterval,
		ReapInterval:        cd.ReapInterval,
		SyncWindow:          0,
		SyncInterval:        100 * time.Millisecond,
		BlockCacheBytes:     storage.DefaultPebbleConfig().CacheBytes,
		RowCacheBytes:       32 << 20,
	}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" {
		errs = append(errs, errors.New("node: --id is required"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("node: --data is required"))
	}
	if c.HTTPAddr == "" || c.RPCAddr == "" || c.GossipAddr == "" {
		errs = append(errs, errors.New("node: --http, --rpc and --gossip addresses are required"))
	}
	if c.Partitions <= 0 || c.Partitions&(c.Partitions-1) != 0 {
		errs = append(errs, fmt.Errorf("node: partitions %d is not a power of two", c.Partitions))
	}
	if c.MaxKeyBytes <= 0 || c.MaxValueBytes <= 0 || c.MaxSiblings <= 0 || c.MaxObjectBytes <= 0 {
		errs = append(errs, errors.New("node: limits must be positive"))
	}
	if strings.ContainsAny(c.ID, "\x00/") || !utf8.ValidString(c.ID) {
		errs = append(errs, fmt.Errorf("node: id %q may not contain NUL or '/'", c.ID))
	}
	if c.HintWindow <= 0 || c.HintMaxBytes <= 0 || c.HintRate < 0 || c.HandoffInterval <= 0 || c.HandoffBatchBytes <= 0 || c.HedgeDelay <= 0 {
		errs = append(errs, errors.New("node: hint window, hint bytes, handoff interval and batch size must be positive, hint rate >= 0"))
	}
	if c.AAESegments <= 0 || c.AAEInterval <= 0 || c.AAERate < 0 || c.TreeRebuildInterval <= 0 || c.ReapInterval <= 0 {
		errs = append(errs, errors.New("node: anti-entropy segments and intervals must be positive, rate >= 0"))
	}
	if (c.InternodeServerTLS == nil) != (c.InternodeClientTLS == nil) {
		errs = append(errs, errors.New("node: set both internode TLS configurations, or neither"))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, errors.New("node: request timeout must be positive"))
	}
	if c.SyncWindow < 0 || c.SyncInterval < 0 {
		errs = append(errs, errors.New("node: sync window and interval must be >= 0"))
	}
	if c.BlockCacheBytes < 0 || c.RowCacheBytes < 0 {
		errs = append(errs, errors.New("node: cache sizes must be >= 0"))
	}
	if c.TransferRate < 0 {
		errs = append(errs, errors.New("node: transfer rate must be >= 0 (0: unthrottled)"))
	}
	if c.Replace != "" && len(c.Join) == 0 {
		errs = append(errs, fmt.Errorf("node: --replace %s needs --join: the node it replaces belongs to a cluster to join", c.Replace))
	}
	if c.Loops < 0 || c.Loops > c.Partitions {
		errs = append(errs, fmt.Errorf("node: loops %d must be 0 (one per CPU) to partitions (%d)", c.Loops, c.Partitions))
	}
	return errors.Join(errs...)
}

// loops is how many event loops the node runs.
func (c Config) loops() int {
	if c.Loops > 0 {
		return c.Loops
	}
	return max(1, min(runtime.GOMAXPROCS(0), c.Partitions))
}

// coreConfig is the core's share of the configuration.
func (c Config) coreConfig() core.Config {
	cc := core.DefaultConfig()
	cc.ID = c.ID
	cc.Partitions = c.Partitions
	cc.MaxKeyBytes, cc.MaxValueBytes = c.MaxKeyBytes, c.MaxValueBytes
	cc.MaxSiblings, cc.MaxObjectBytes = c.MaxSiblings, c.MaxObjectBytes
	cc.RequestTimeout = c.RequestTimeout
	cc.HedgeDelay = c.HedgeDelay
	cc.HandoffInterval = c.HandoffInterval
	cc.HandoffBatchBytes = c.HandoffBatchBytes
	cc.HintRate = c.HintRate
	cc.TransferRate = c.TransferRate
	if c.CleanupDelay > 0 {
		cc.CleanupDelay = c.CleanupDelay
	}
	cc.AAE = !c.NoAAE
	cc.AAESegments, cc.AAEInterval, cc.AAERate = c.AAESegments, c.AAEInterval, c.AAERate
	cc.TreeRebuildInterval, cc.ReapInterval = c.TreeRebuildInterval, c.ReapInterval
	return cc
}
