// Package node is the server shell: it wires the store, the gossip membership, the
// internode transport and the HTTP listener to the node's protocol core (package core).
//
// Model: a few loop goroutines (about one per CPU) each own one shard of the core, a
// contiguous range of the ring's partitions (shards.go). Client requests (the HTTP and
// Redis front ends), peer requests (the transport's handler), answers to the core's
// messages, the failure detector's view and timers become core events for the shard they
// concern; each loop turn steps them, then carries out the shard's Ready: one fsync if any
// write of the turn must be durable, then the messages to peers (one batch per peer, by
// the transport), the answers and the client replies. Messages a shard sends to this node
// itself are answered in the same turn. The shell owns every goroutine, socket, timer and
// disk handle; every protocol decision is the core's, so the simulator runs the same
// decisions.
//
// Invariants: only its loop touches a shard's core, and a key is only ever served by its
// partition's shard; nothing that claims durability leaves before the turn's sync; a
// transport callback never blocks (it queues an event).
package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/hints"
	"github.com/quorumkv/quorumkv/internal/membership"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
)

// Store key prefixes. Data keys are "d" + bucket + 0x00 + key (bucket names hold no NUL).
const (
	prefixData = core.PrefixData
	keyMember  = "m/membership"
)

// Node is one quorumkv server.
type Node struct {
	cfg    Config
	log    *slog.Logger
	store  storage.Store
	pebble *storage.Pebble // the store, for its statistics
	ms     *membership.Membership
	tr     Transport
	clock  Clock
	http   *http.Server
	hlis   net.Listener

	ring    atomic.Pointer[ring.Ring] // the ring in force
	view    atomic.Pointer[clusterView]
	rings   ringSet
	members atomic.Pointer[[]membership.Member]
	xferSig chan struct{} // a loop completed a partition transfer (durably)
	// wasAlive: the members seen alive at the last refresh (refreshMembers' own: it runs
	// on one goroutine at a time).
	wasAlive map[string]bool
	// compactMu runs one store compaction at a time.
	compactMu sync.Mutex

	skew atomic.Int64 // clock skew in ms (fault injection)
	// syncDelay is how long, in ms, the syncer waits before each fsync (fault injection:
	// a slow disk).
	syncDelay    atomic.Int64
	syncDelaySet chan struct{} // signalled when syncDelay changes: a wait under way starts over

	coreCfg core.Config
	loops   []*loop // one per shard of the core
	out     outbox  // the loops' turns waiting for the syncer's fsync
	minter  *sharedMinter
	actor   string

	buckets *bucketCache
	metrics *Metrics
	hints   *hints.Store
	// repairMu runs one anti-entropy exchange at a time (scheduled or on demand).
	repairMu sync.Mutex

	bg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
	closeErr error
	closed   atomic.Bool
	// ready is set once every part is wired: the transport listens before gossip starts
	// (gossip announces its address), and requests arriving in between are refused.
	ready atomic.Bool
}

// Start opens the store, joins the cluster and serves the internode RPC and, when
// cfg.HTTPHandler is set, the HTTP API.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("node", cfg.ID)
	pcfg := storage.DefaultPebbleConfig()
	pcfg.Logger = log
	pcfg.CacheBytes, pcfg.RowCacheBytes = cfg.BlockCacheBytes, cfg.RowCacheBytes
	// Only objects: the reads before writes are theirs, and other keys (hints, trees,
	// membership) would take their room.
	pcfg.RowCacheKeys = func(k []byte) bool { return len(k) > 0 && k[0] == core.PrefixData[0] }
	st, err := storage.OpenPebble(cfg.DataDir, pcfg)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", cfg.ID, err)
	}
	n := &Node{cfg: cfg, log: log, store: st, pebble: st, clock: cfg.Clock, xferSig: make(chan struct{}, 1),
		syncDelaySet: make(chan struct{}, 1)}
	if n.clock == nil {
		n.clock = wallClock{}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.metrics = newMetrics()
	n.buckets = newBucketCache(n)
	fail := func(err error) (*Node, error) {
		n.cancel()
		if n.tr != nil {
			_ = n.tr.Close()
		}
		if n.ms != nil {
			_ = n.ms.Shutdown(context.Background())
		}
		_ = st.Close()
		return nil, err
	}
	var eb [6]byte
	if _, err := rand.Read(eb[:]); err != nil {
		return fail(fmt.Errorf("node %s: epoch: %w", cfg.ID, err))
	}
	// A store that was never a member of a cluster: as a joining node, it must stream its
	// partitions before it serves them.
	fresh := false
	if _, err := st.Get([]byte(keyMember)); errors.Is(err, storage.ErrNotFound) {
		fresh = true
	}
	if err := core.InitEpoch(st, hex.EncodeToString(eb[:])); err != nil {
		return fail(fmt.Errorf("node %s: %w", cfg.ID, err))
	}
	n.hints, err = hints.Open(st, hints.Config{Window: cfg.HintWindow, MaxBytesPerTarget: cfg.HintMaxBytes}, log)
	if err != nil {
		return fail(fmt.Errorf("node %s: %w", cfg.ID, err))
	}
	n.metrics.reg.MustRegister(newHintCollector(n))
	n.metrics.reg.MustRegister(newTreeCollector(n))
	n.metrics.reg.MustRegister(newTransferCollector(n))
	n.metrics.reg.MustRegister(newSecurityCollector(n))
	n.metrics.reg.MustRegister(newStoreCollector(n))

	n.coreCfg = cfg.coreConfig()
	ident, err := core.LoadIdentity(cfg.ID, st)
	if err != nil {
		return fail(fmt.Errorf("node %s: %w", cfg.ID, err))
	}
	n.minter = &sharedMinter{id: ident}
	n.actor = ident.Actor()
	shards := cfg.loops()
	for s := range shards {
		// A shard's writes of one loop turn commit as one batch (the loop commits it).
		batch := storage.NewTurnBatch(st)
		deps := core.Deps{Store: batch, Hints: n.hints, Buckets: n, Count: n.metrics.count, Log: coreLogger(log), Minter: n.minter}
		c, err := core.New(core.ShardConfig(n.coreCfg, s, shards), deps, core.Time{Wall: n.physMs()})
		if err != nil {
			return fail(fmt.Errorf("node %s: %w", cfg.ID, err))
		}
		n.loops = append(n.loops, newLoop(n, c, s, batch))
	}
	n.out.sig = make(chan struct{}, 1)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		n.syncer(n.ctx)
	}()
	for _, l := range n.loops {
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			l.run(n.ctx)
		}()
	}

	n.tr, err = listenTransport(transport.Config{
		NodeID:         cfg.ID,
		ListenAddr:     cfg.RPCAddr,
		Resolve:        n.resolveRPC,
		Handler:        n,
		Logger:         log,
		MaxBatch:       transport.DefaultConfig().MaxBatch,
		QueueLen:       transport.DefaultConfig().QueueLen,
		MaxInflight:    transport.DefaultConfig().MaxInflight,
		MaxMsgBytes:    transport.DefaultConfig().MaxMsgBytes,
		DefaultTimeout: cfg.RequestTimeout,
		DialTimeout:    transport.DefaultConfig().DialTimeout,
		ServerTLS:      cfg.InternodeServerTLS,
		ClientTLS:      cfg.InternodeClientTLS,
	})
	if err != nil {
		return fail(fmt.Errorf("node %s: %w", cfg.ID, err))
	}

	if cfg.HTTPHandler != nil {
		n.hlis, err = net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fail(fmt.Errorf("node %s: listen http %s: %w", cfg.ID, cfg.HTTPAddr, err))
		}
		if cfg.HTTPTLS != nil {
			n.hlis = tls.NewListener(n.hlis, cfg.HTTPTLS)
		}
	}

	mcfg := membership.DefaultConfig()
	mcfg.Meta = membership.NodeMeta{ID: cfg.ID, Zone: cfg.Zone, HTTP: n.HTTPAddr(), RESP: cfg.RESPAddr, RPC: n.tr.Addr()}
	mcfg.BindAddr = cfg.GossipAddr
	mcfg.Seeds = cfg.Join
	mcfg.Store = storeState{st}
	mcfg.Logger = log
	mcfg.GossipKeys = cfg.GossipKeys
	if t := cfg.InternodeServerTLS; t != nil && len(t.Certificates) > 0 && t.ClientCAs != nil {
		mcfg.Cert, mcfg.CAs = &t.Certificates[0], t.ClientCAs // gossip admission (membership)
	}
	n.ms, err = membership.Start(ctx, mcfg)
	if err != nil {
		return fail(fmt.Errorf("node %s: %w", cfg.ID, err))
	}
	ms := n.ms.Members() // what the join learned (--replace checks its target)
	n.members.Store(&ms)
	if err := n.initMemberState(fresh); err != nil {
		return fail(fmt.Errorf("node %s: %w", cfg.ID, err))
	}
	n.refreshMembers()
	n.bg.Add(2)
	go n.watchMembers()
	go n.watchTransfers()
	for _, l := range n.loops {
		l.submit(func() { l.c.Start() })
	}
	n.ready.Store(true)

	if cfg.HTTPHandler != nil {
		n.http = &http.Server{
			Handler:           cfg.HTTPHandler(n),
			ReadHeaderTimeout: 10 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			if err := n.http.Serve(n.hlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server stopped", "err", err)
			}
		}()
	}
	log.Info("node started", "actor", n.actor, "loops", len(n.loops), "http", n.HTTPAddr(), "rpc", n.RPCAddr(), "gossip", n.GossipAddr(), "members", len(n.Members()))
	return n, nil
}

// physMs is this node's wall clock in ms, skewed by fault injection.
func (n *Node) physMs() int64 { return n.clock.Now().UnixMilli() + n.skew.Load() }

// Transport is what the node needs of the internode transport (transport.Transport):
// Call never blocks and runs its callback exactly once.
type Transport interface {
	Call(ctx context.Context, to string, req *pb.Envelope, cb func(*pb.Envelope, error))
	// Send is Call with a deadline and a tag for cb (one func for many calls).
	Send(deadline time.Time, to string, req *pb.Envelope, tag uint64, cb func(uint64, *pb.Envelope, error))
	SetFaults(f transport.Faults)
	CurrentFaults() transport.Faults
	ResetBackoff(id string)
	Addr() string
	Close() error
}

// Clock is where the node reads the time: the wall clock in the server.
type Clock interface {
	Now() time.Time
	Since(t time.Time) time.Duration
}

// wallClock is the real clock.
type wallClock struct{}

func (wallClock) Now() time.Time                  { return time.Now() }
func (wallClock) Since(t time.Time) time.Duration { return time.Since(t) }

// ID is the node's name.
func (n *Node) ID() string { return n.cfg.ID }

// Actor is the node's version-vector actor (id, store epoch and run).
func (n *Node) Actor() string { return n.actor }

// HTTPAddr is the bound HTTP address ("" when no HTTP handler was configured).
func (n *Node) HTTPAddr() string {
	if n.hlis == nil {
		return ""
	}
	return n.hlis.Addr().String()
}

// RESPAddr is the Redis-protocol address ("" when off).
func (n *Node) RESPAddr() string { return n.cfg.RESPAddr }

// RPCAddr is the bound internode address.
func (n *Node) RPCAddr() string { return n.tr.Addr() }

// GossipAddr is the bound gossip address.
func (n *Node) GossipAddr() string { return n.ms.GossipAddr() }

// Close stops serving, leaves the gossip (as a down member, not a leave) and closes the store.
func (n *Node) Close(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) {
		return n.closeErr
	}
	var errs []error
	if n.http != nil {
		if err := n.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
	}
	n.cancel()
	if err := n.ms.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("gossip shutdown: %w", err))
	}
	if err := n.tr.Close(); err != nil {
		errs = append(errs, err)
	}
	n.bg.Wait()
	// The loops have stopped: nothing else writes. Recording a clean stop (synced after
	// every write) lets the next run carry on as the same actor.
	if n.minter != nil {
		if err := n.minter.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store close: %w", err))
	}
	n.closeErr = errors.Join(errs...)
	n.log.Info("node stopped")
	return n.closeErr
}

// Members returns the ring members with their current state, sorted by ID.
func (n *Node) Members() []membership.Member {
	if m := n.members.Load(); m != nil {
		return *m
	}
	return nil
}

// Ring returns the current ring.
func (n *Node) Ring() *ring.Ring { return n.ring.Load() }

func (n *Node) watchMembers() {
	defer n.bg.Done()
	ch, meta := n.ms.Subscribe(), n.ms.SubscribeMeta()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-ch:
		case <-meta: // member states and transfer reports live in the metadata
		}
		n.refreshMembers()
	}
}

func sortedRingMembers(rm []ring.Member) []ring.Member {
	out := slices.Clone(rm)
	slices.SortFunc(out, func(a, b ring.Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (n *Node) member(id string) (membership.Member, bool) {
	for _, m := range n.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return membership.Member{}, false
}

func (n *Node) resolveRPC(id string) (string, bool) {
	m, ok := n.member(id)
	if !ok || m.RPC == "" {
		return "", false
	}
	return m.RPC, true
}

// alive reports whether the failure detector considers node id up.
func (n *Node) alive(id string) bool {
	if id == n.cfg.ID {
		return true
	}
	m, ok := n.member(id)
	return ok && (m.State == membership.Alive || m.State == membership.Suspect)
}

// storeState persists the membership state in the node's store.
type storeState struct{ st storage.Store }

func (s storeState) Load() ([]byte, error) {
	v, err := s.st.Get([]byte(keyMember))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

func (s storeState) Save(b []byte) error {
	return s.st.Put([]byte(keyMember), b, storage.WriteOptions{Sync: true})
}

// listenTransport starts the internode transport (the node is its AsyncHandler: no request holds
// a goroutine while the loop works on it).
func listenTransport(cfg transport.Config) (Transport, error) {
	t, err := transport.Listen(cfg)
	if err != nil {
		return nil, err
	}
	return t, nil
}
