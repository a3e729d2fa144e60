// Package membership tells a quorumkv node which nodes form the cluster,
// which of them are reachable, and holds a small cluster-wide metadata map.
//
// The model has two layers that must not be confused:
//
//   - Ring membership (durable). The ring member set is the union of every node
//     that ever started in the cluster and has not been removed (Forget). A
//     node that crashes, is killed or is shut down stays a ring member: the
//     ring keeps routing around it (sloppy quorum) instead of reassigning its
//     partitions. Each member record carries the node's latest NodeMeta and
//     gossip address, ordered by an epoch the node bumps on every Start, so
//     addresses that change across restarts converge to the newest. The set
//     is persisted through a StateStore, so a restarted node knows the cluster
//     before gossip reaches anyone, and it is exchanged in memberlist's
//     push-pull, so every node converges on the same set even while some
//     members are down.
//
//   - Liveness (soft). hashicorp/memberlist (SWIM: randomized probes,
//     indirect probes, suspicion with refutation) decides which ring members
//     are reachable. Members reports each ring member with State Alive or
//     Down (Leaving for a member that announced Leave). memberlist v0.7.0
//     does not expose its suspicion state publicly, so a suspected node is
//     reported Alive until it is declared dead; Suspect is part of the API
//     for consumers that want to distinguish it later.
//
// The metadata map (bucket properties and the like) is a last-writer-wins
// register per key, ordered by (Lamport clock, writer node ID): a SetMeta
// made anywhere after seeing a value always wins over it, concurrent writes
// are decided the same way on every node. Writes are persisted, spread at once
// by gossip broadcast, and repaired by the periodic push-pull full-state sync,
// so every node converges on the same map and keeps it across restarts.
//
// With Config.GossipKeys all gossip (packets and push-pull streams, hence the
// metadata, which holds users' password hashes) is encrypted and authenticated
// with memberlist's keyring; what no key opens is refused and counted
// (GossipRejected), so a host without the key cannot join.
//
// With Config.Cert and Config.CAs (TLS) the gossip key is not enough to be a
// member: admission (admission.go). Everything this package gossips is
// signed by its sender's certified key; a node appears in Members (ring,
// cluster changes) only while its node meta verifies with a certificate the
// cluster CA signed for its ID and announces the address gossip sees it at,
// and a member record, metadata entry or push-pull state is merged only when
// it verifies with its sender's certificate. What fails is never applied,
// relayed or persisted; it is counted (Unverified) and logged without its
// content. The local persisted state is trusted (it may hold unsigned
// entries from before admission; they spread signed by their holder).
//
// Invariants: merge of member records and of metadata entries is
// commutative, associative and idempotent; the persisted state only grows
// in version order; a corrupt remote state is logged and ignored, a corrupt
// local state fails Start; with admission on, every record and entry in the
// state came from the local store, a local write, or a sender that proved a
// certificate of the cluster CA naming it.
package membership

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// NodeMeta is what a node announces about itself. It is encoded into
// memberlist's node meta, which must stay under memberlist.MetaMaxSize bytes.
type NodeMeta struct {
	ID, Zone, HTTP, RESP, RPC string
}

// State is a ring member's liveness as seen by this node.
type State string

const (
	Alive   State = "alive"   // reachable
	Suspect State = "suspect" // suspected by the failure detector (see package doc)
	Down    State = "down"    // not reachable; still a ring member
	Leaving State = "leaving" // announced Leave; still a ring member until forgotten
)

// Member is one ring member with its current state.
type Member struct {
	NodeMeta
	Gossip string // host:port of its gossip endpoint
	State  State
	Joined time.Time // first start of the node, as it announced it
}

// StateStore persists the membership's durable state (the ring member set and
// the metadata map) so a restarted node remembers the cluster even before
// gossip reaches anyone. Calls are serialized by the Membership; Save must
// replace the previous state atomically (a crash leaves the old or the new
// state, never a mix).
type StateStore interface {
	// Load returns the last saved state, or nil, nil when there is none.
	Load() ([]byte, error)
	// Save durably replaces the saved state.
	Save([]byte) error
}

// Errors returned by the package.
var (
	ErrClosed       = errors.New("membership: shut down")
	ErrMemberAlive  = errors.New("membership: member is alive")
	ErrUnknownNode  = errors.New("membership: unknown member")
	ErrInvalidInput = errors.New("membership: invalid input")
)

// Config configures a Membership.
type Config struct {
	Meta     NodeMeta
	BindAddr string   // gossip host:port; port 0 picks a free port
	Seeds    []string // gossip addresses of nodes to join
	Store    StateStore
	Logger   *slog.Logger
	// GossipKeys, when set, encrypt and authenticate all gossip (memberlist's keyring,
	// AES-GCM): the first key sends, every key is tried on what arrives, and what no
	// key opens is refused. Keys are 16, 24 or 32 bytes. A host without a key of the
	// ring cannot join, probe or spread metadata.
	GossipKeys [][]byte
	// Cert and CAs, when set (both or neither), turn on admission (admission.go): this
	// node signs all it gossips with Cert's private key, and counts another node as a
	// member, and applies what it gossips, only once that node proved it holds a key
	// whose certificate CAs signed for its node id. Cert must name Meta.ID and chain to
	// CAs, for server and client use (the internode certificate).
	Cert *tls.Certificate
	CAs  *x509.CertPool

	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	SuspicionMult    int
}

// DefaultConfig returns a configuration tuned for a LAN or loopback cluster:
// a killed node is declared down within a few seconds.
func DefaultConfig() Config {
	return Config{
		BindAddr: "0.0.0.0:7946", // memberlist's well-known port
		// Each node probes one peer per interval; short enough that a dead
		// node is probed within ~N*500ms, cheap enough for tens of nodes.
		ProbeInterval: 500 * time.Millisecond,
		// An ack on a LAN takes well under a millisecond; 200ms tolerates GC
		// pauses and a loaded host without a false suspicion.
		ProbeTimeout: 200 * time.Millisecond,
		// Broadcasts (metadata writes, state changes) go out every 100ms:
		// sub-second propagation at a few packets per second.
		GossipInterval: 100 * time.Millisecond,
		// Full-state sync repairs whatever gossip lost and re-merges healed
		// partitions; 5s keeps TCP churn low while bounding repair delay.
		PushPullInterval: 5 * time.Second,
		// Suspicion lasts SuspicionMult*max(1,log10(N))*ProbeInterval = 2s on
		// small clusters (longer without confirmations): time to refute.
		SuspicionMult: 4,
	}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.Meta.ID == "" {
		return fmt.Errorf("%w: Meta.ID is empty", ErrInvalidInput)
	}
	if strings.ContainsAny(c.Meta.ID, " \t\r\n") {
		return fmt.Errorf("%w: Meta.ID %q contains whitespace", ErrInvalidInput, c.Meta.ID)
	}
	if _, _, err := splitHostPort(c.BindAddr); err != nil {
		return fmt.Errorf("%w: BindAddr: %w", ErrInvalidInput, err)
	}
	for name, d := range map[string]time.Duration{
		"ProbeInterval": c.ProbeInterval, "ProbeTimeout": c.ProbeTimeout,
		"GossipInterval": c.GossipInterval, "PushPullInterval": c.PushPullInterval,
	} {
		if d <= 0 {
			return fmt.Errorf("%w: %s must be positive, got %v", ErrInvalidInput, name, d)
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("%w: ProbeTimeout %v must be shorter than ProbeInterval %v",
			ErrInvalidInput, c.ProbeTimeout, c.ProbeInterval)
	}
	for i, k := range c.GossipKeys {
		if len(k) != 16 && len(k) != 24 && len(k) != 32 {
			return fmt.Errorf("%w: gossip key %d is %d bytes, want 16, 24 or 32", ErrInvalidInput, i+1, len(k))
		}
	}
	if (c.Cert == nil) != (c.CAs == nil) {
		return fmt.Errorf("%w: Cert and CAs go together", ErrInvalidInput)
	}
	if c.SuspicionMult < 1 {
		return fmt.Errorf("%w: SuspicionMult must be at least 1, got %d", ErrInvalidInput, c.SuspicionMult)
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

// Membership is a running gossip member. Its methods are safe for concurrent
// use.
type Membership struct {
	cfg    Config
	log    *slog.Logger
	self   string
	gossip string // advertised gossip address

	list  atomic.Pointer[memberlist.Memberlist]
	queue *memberlist.TransmitLimitedQueue

	mu       sync.Mutex
	st       *state
	metaGen  atomic.Uint64 // MetaGen: bumped under mu after each change to st.meta
	subs     []chan struct{}
	metaSubs []chan struct{}
	lastView []Member

	persistMu sync.Mutex // serializes Store.Save

	persistCh chan struct{} // coalescing: state changed, save it
	selfCh    chan struct{} // coalescing: own record changed, re-announce
	viewCh    chan struct{} // coalescing: recompute Members and notify

	done     chan struct{}
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
	closed   atomic.Bool
	numLive  atomic.Int64  // alive+suspect nodes incl. self, from memberlist events
	rejected atomic.Uint64 // gossip messages refused for want of the gossip key

	adm     *admission // nil without TLS: every gossip member counts
	metaMu  sync.Mutex // guards metaRec, metaSig
	metaRec record     // the record metaSig signs
	metaSig []byte     // our signed node meta
}

// Unverified counts, by reason, the gossip messages and states this node refused because
// their sender did not prove a certificate of the cluster CA naming it (see Reason). All
// zero without TLS.
func (m *Membership) Unverified() map[Reason]uint64 {
	out := make(map[Reason]uint64, len(Reasons))
	for i, r := range Reasons {
		if m.adm != nil {
			out[r] = m.adm.counts[i].Load()
		} else {
			out[r] = 0
		}
	}
	return out
}

// GossipRejected is how many gossip messages and streams this node refused because no
// key of its keyring opened them (or they came unencrypted while it has keys).
func (m *Membership) GossipRejected() uint64 { return m.rejected.Load() }

// Start creates the memberlist instance, loads the persisted state, and
// joins the seeds and the known ring members. When none is reachable (a node
// restarting alone) it still comes up and keeps retrying in the background
// with backoff. ctx bounds only the start itself.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "membership", "node", cfg.Meta.ID)
	m := &Membership{
		cfg:       cfg,
		log:       log,
		self:      cfg.Meta.ID,
		st:        newState(),
		persistCh: make(chan struct{}, 1),
		selfCh:    make(chan struct{}, 1),
		viewCh:    make(chan struct{}, 1),
		done:      make(chan struct{}),
	}

	if cfg.Cert != nil {
		ident, err := newIdentity(cfg.Meta.ID, cfg.Cert, cfg.CAs)
		if err != nil {
			return nil, err
		}
		m.adm = newAdmission(ident)
	}

	if cfg.Store != nil {
		b, err := cfg.Store.Load()
		if err != nil {
			return nil, fmt.Errorf("membership: loading persisted state: %w", err)
		}
		if b != nil {
			// The local store is trusted: what it holds was accepted (or written) by this
			// node, signed or from before admission existed. Certificates in it are
			// checked again (the CA may have changed since).
			st, certs, err := decodeStateCerts(b)
			if err != nil {
				return nil, fmt.Errorf("membership: persisted state of node %s: %w", cfg.Meta.ID, err)
			}
			m.st = st
			if m.adm != nil {
				for _, c := range certs {
					if _, err := m.adm.addCert(c.ID, c.Chain); err != nil {
						log.Info("dropping a persisted certificate the cluster CA no longer accepts", "member", c.ID, "err", err)
					}
				}
			}
		}
	}

	host, port, _ := splitHostPort(cfg.BindAddr)
	ip, err := resolveBindHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("membership: resolving bind address %q: %w", cfg.BindAddr, err)
	}
	stdlog := newStdLogger(log, &m.rejected)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{ip}, BindPort: port, Logger: stdlog,
	})
	if err != nil {
		return nil, fmt.Errorf("membership: binding gossip address %s: %w", cfg.BindAddr, err)
	}
	if port == 0 {
		port = nt.GetAutoBindPort()
	}
	advIP, advPort, err := nt.FinalAdvertiseAddr("", port)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("membership: choosing advertise address: %w", err)
	}
	m.gossip = net.JoinHostPort(advIP.String(), strconv.Itoa(advPort))

	// Our own record: a new epoch above anything this node announced before,
	// so our current addresses replace the persisted ones everywhere.
	selfRec := record{
		ID: cfg.Meta.ID, Zone: cfg.Meta.Zone, HTTP: cfg.Meta.HTTP, RESP: cfg.Meta.RESP, RPC: cfg.Meta.RPC,
		Gossip: m.gossip, Epoch: 1, Joined: time.Now().UnixMilli(),
	}
	if old, ok := m.st.members[m.self]; ok {
		selfRec.Epoch = old.Epoch + 1
		if old.Joined != 0 {
			selfRec.Joined = old.Joined
		}
	}
	m.st.members[m.self] = selfRec
	meta, err := m.signedMeta(selfRec)
	if err != nil {
		_ = nt.Shutdown()
		return nil, err
	}
	// A later record differs in epoch and status only; a signed one also in its
	// signature's length (ECDSA's varies by a few bytes): leave room for that.
	margin := 0
	if m.adm != nil {
		margin = 16
	}
	if n := len(meta) + margin; n > memberlist.MetaMaxSize {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("%w: node meta is %d bytes, memberlist allows %d", ErrInvalidInput, n, memberlist.MetaMaxSize)
	}
	if err := m.persist(); err != nil {
		_ = nt.Shutdown()
		return nil, err
	}

	m.queue = &memberlist.TransmitLimitedQueue{
		// Not list.NumMembers: the queue calls NumNodes under its lock, and
		// memberlist queues (through our event delegate) under its node lock,
		// so taking the node lock here would invert the lock order.
		NumNodes:       func() int { return int(max(m.numLive.Load(), 1)) },
		RetransmitMult: 4,
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.ID
	mc.Transport = nt
	mc.BindAddr = ip
	mc.BindPort = port
	mc.AdvertisePort = port
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.GossipInterval = cfg.GossipInterval
	mc.PushPullInterval = cfg.PushPullInterval
	mc.SuspicionMult = cfg.SuspicionMult
	// Without confirmations suspicion may last up to this multiple of its
	// minimum; memberlist's 6 would mean ~12s in a 3-node cluster.
	mc.SuspicionMaxTimeoutMult = 3
	mc.TCPTimeout = 2 * time.Second
	mc.GossipToTheDeadTime = 3 * cfg.PushPullInterval
	// A restarted node may come back on another port under the same name;
	// let it take over its name as soon as the old incarnation is dead.
	mc.DeadNodeReclaimTime = time.Millisecond
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	mc.Conflict = (*events)(m)
	mc.Logger = stdlog
	mc.LogOutput = nil
	if len(cfg.GossipKeys) > 0 {
		kr, err := memberlist.NewKeyring(cfg.GossipKeys[1:], cfg.GossipKeys[0])
		if err != nil {
			_ = nt.Shutdown()
			return nil, fmt.Errorf("membership: gossip keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}

	list, err := memberlist.Create(mc)
	if err != nil {
		_ = nt.Shutdown()
		return nil, fmt.Errorf("membership: starting memberlist: %w", err)
	}
	m.list.Store(list)
	m.log.Info("gossip started", "addr", m.gossip, "epoch", selfRec.Epoch)

	targets := m.joinTargets(true)
	if len(targets) > 0 {
		type res struct {
			n   int
			err error
		}
		ch := make(chan res, 1)
		go func() {
			n, err := list.Join(targets)
			ch <- res{n, err}
		}()
		select {
		case r := <-ch:
			if r.n == 0 {
				m.log.Info("no seed or known member reachable; running alone and retrying in the background",
					"targets", targets, "err", r.err)
			} else {
				m.log.Info("joined cluster", "contacted", r.n)
			}
		case <-ctx.Done():
			_ = list.Shutdown()
			return nil, fmt.Errorf("membership: joining %v: %w", targets, ctx.Err())
		}
	}

	if m.adm != nil {
		// Our certificate, so that the others can check what we sign; the push-pull of
		// the join carried it to the seed already.
		m.broadcastCert(m.adm.self.id, m.adm.self.chain)
	}
	m.lastView = m.Members()
	m.wg.Add(2)
	go m.worker()
	go m.joinLoop()
	return m, nil
}

func resolveBindHost(ctx context.Context, host string) (string, error) {
	if host == "" {
		return "0.0.0.0", nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return "", err
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("no address for %q", host)
	}
	return addrs[0].IP.String(), nil
}

// GossipAddr returns the advertised gossip address (the port resolved when
// BindAddr asked for port 0).
func (m *Membership) GossipAddr() string { return m.gossip }

// ID returns this node's ID.
func (m *Membership) ID() string { return m.self }

// liveSet returns the names memberlist considers alive or suspect and, with admission,
// whose node meta proves them (admitting the members that just proved themselves).
func (m *Membership) liveSet() map[string]bool {
	live := map[string]bool{}
	l := m.list.Load()
	if l == nil || m.closed.Load() {
		return live
	}
	nodes := l.Members()
	if m.adm == nil {
		for _, n := range nodes {
			live[n.Name] = true // Name is immutable once published
		}
		return live
	}
	var admitted []record
	present := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		present[n.Name] = true
		if n.Name == m.self {
			live[n.Name] = true
			continue
		}
		rec, ok, fresh := m.checkLive(n.Name)
		if ok {
			live[n.Name] = true
			if fresh {
				admitted = append(admitted, rec)
			}
		}
	}
	m.adm.forgetLive(present)
	for _, r := range admitted {
		m.log.Info("member admitted: its certificate proved", "member", r.ID, "addr", r.Gossip, "epoch", r.Epoch)
		m.applyRecord(r)
	}
	return live
}

// Members returns every ring member, sorted by ID, with its current state.
// Members that are not reachable stay listed as Down. Self is Alive (or
// Leaving after Leave).
func (m *Membership) Members() []Member {
	live := m.liveSet() // never call memberlist while holding m.mu
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.st.members))
	for _, r := range m.st.members {
		if r.Status == statusRemoved {
			continue
		}
		mb := Member{NodeMeta: r.meta(), Gossip: r.Gossip, State: Down}
		if r.Joined != 0 {
			mb.Joined = time.UnixMilli(r.Joined)
		}
		switch {
		case r.Status == statusLeaving:
			mb.State = Leaving
		case r.ID == m.self && !m.closed.Load():
			mb.State = Alive
		case live[r.ID]:
			mb.State = Alive
		}
		out = append(out, mb)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Subscribe returns a channel (buffer 1, coalescing) that receives a signal
// whenever the member set or any member's state or meta changes. Call
// Members after a signal to see the new view.
func (m *Membership) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs = append(m.subs, ch)
	m.mu.Unlock()
	return ch
}

// SubscribeMeta returns a channel (buffer 1, coalescing) that receives a
// signal whenever any key of the metadata map changes.
func (m *Membership) SubscribeMeta() <-chan struct{} {
	ch := make(chan struct{}, 1)
	m.mu.Lock()
	m.metaSubs = append(m.metaSubs, ch)
	m.mu.Unlock()
	return ch
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// SetMeta writes key in the cluster metadata map. The write is persisted
// before SetMeta returns, then spread by gossip and push-pull. A later
// SetMeta anywhere that has seen this value wins over it.
func (m *Membership) SetMeta(key string, value []byte) error {
	return m.writeMeta(key, value, false)
}

// DeleteMeta removes key from the cluster metadata map (a tombstone that
// wins over every write it has seen).
func (m *Membership) DeleteMeta(key string) error {
	return m.writeMeta(key, nil, true)
}

func (m *Membership) writeMeta(key string, value []byte, deleted bool) error {
	if key == "" {
		return fmt.Errorf("%w: empty metadata key", ErrInvalidInput)
	}
	if m.closed.Load() {
		return fmt.Errorf("membership: writing metadata %q: %w", key, ErrClosed)
	}
	m.mu.Lock()
	e := m.st.put(m.self, key, value, deleted)
	m.metaGen.Add(1)
	metaSubs := slices.Clone(m.metaSubs)
	m.mu.Unlock()
	for _, ch := range metaSubs {
		signal(ch)
	}
	m.broadcast(msgEntry, "meta:"+key, e)
	if err := m.persist(); err != nil {
		return fmt.Errorf("membership: writing metadata %q: %w", key, err)
	}
	return nil
}

// MetaGen numbers the states of the metadata: it grows with every change, after the
// change is visible to GetMeta, so a value read after MetaGen returned g is at least as
// new as state g (a cache keyed by it is never stale).
func (m *Membership) MetaGen() uint64 { return m.metaGen.Load() }

// GetMeta returns the current value of key.
func (m *Membership) GetMeta(key string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.st.meta[key]
	if !ok || e.Deleted {
		return nil, false
	}
	return slices.Clone(e.Value), true
}

// MetaKeys returns the keys with the given prefix, sorted.
func (m *Membership) MetaKeys(prefix string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k, e := range m.st.meta {
		if !e.Deleted && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Leave announces that this node leaves the ring: it is listed as Leaving
// everywhere (partitions should be handed off, then Forget removes it), and
// then stops gossiping. Shutdown, not Leave, is the normal way to stop.
func (m *Membership) Leave(ctx context.Context) error {
	if m.closed.Load() {
		return fmt.Errorf("membership: leave: %w", ErrClosed)
	}
	m.mu.Lock()
	r := m.st.members[m.self]
	r.Epoch++
	r.Status = statusLeaving
	m.st.members[m.self] = r
	m.mu.Unlock()
	m.broadcast(msgRecord, "member:"+m.self, r)
	m.signalView()
	if err := m.persist(); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	list := m.list.Load()
	timeout := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	// Give the announcement a chance to go out before we stop answering.
	for m.queue.NumQueued() > 0 && list.NumMembers() > 1 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("membership: leave: %w", ctx.Err())
		case <-time.After(m.cfg.GossipInterval):
		}
	}
	if err := list.Leave(timeout); err != nil {
		m.log.Warn("memberlist leave", "err", err)
	}
	return m.Shutdown(ctx)
}

// Forget removes a member that is down or leaving from the ring (after its
// partitions were handed off). A forgotten node that starts again rejoins.
func (m *Membership) Forget(id string) error {
	if id == m.self {
		return fmt.Errorf("%w: cannot forget self", ErrInvalidInput)
	}
	live := m.liveSet()
	m.mu.Lock()
	r, ok := m.st.members[id]
	if !ok || r.Status == statusRemoved {
		m.mu.Unlock()
		return fmt.Errorf("membership: forget %q: %w", id, ErrUnknownNode)
	}
	if live[id] && r.Status != statusLeaving {
		m.mu.Unlock()
		return fmt.Errorf("membership: forget %q: %w", id, ErrMemberAlive)
	}
	r.Epoch++
	r.Status = statusRemoved
	m.st.members[id] = r
	m.mu.Unlock()
	m.broadcast(msgRecord, "member:"+id, r)
	m.signalView()
	if err := m.persist(); err != nil {
		return fmt.Errorf("membership: forget %q: %w", id, err)
	}
	return nil
}

// Shutdown stops gossiping without leaving: the other nodes see this node
// Down and keep it in the ring. The state is persisted a last time. It is
// idempotent.
func (m *Membership) Shutdown(ctx context.Context) error {
	m.shutOnce.Do(func() {
		m.closed.Store(true)
		close(m.done)
		var errs []error
		if l := m.list.Load(); l != nil {
			if err := l.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("membership: stopping memberlist: %w", err))
			}
		}
		waited := make(chan struct{})
		go func() { m.wg.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("membership: waiting for background tasks: %w", ctx.Err()))
		}
		if err := m.persist(); err != nil {
			errs = append(errs, err)
		}
		m.shutErr = errors.Join(errs...)
		m.log.Info("gossip stopped")
	})
	return m.shutErr
}

// persist saves the current state. Saves are serialized and each takes its
// snapshot after acquiring the lock, so the last save holds the newest state.
func (m *Membership) persist() error {
	if m.cfg.Store == nil {
		return nil
	}
	m.persistMu.Lock()
	defer m.persistMu.Unlock()
	var certs []certWire
	if m.adm != nil {
		certs = m.adm.wire() // checked ones only; checked again when loaded
	}
	m.mu.Lock()
	b := m.st.encodeWith(certs)
	m.mu.Unlock()
	if err := m.cfg.Store.Save(b); err != nil {
		return fmt.Errorf("membership: saving state: %w", err)
	}
	return nil
}

func (m *Membership) signalView() { signal(m.viewCh) }

// worker persists remote changes, re-announces our own record when it
// changed, and notifies subscribers when the member view changes.
func (m *Membership) worker() {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.ProbeInterval / 2)
	defer tick.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-m.persistCh:
			if err := m.persist(); err != nil {
				m.log.Error("persisting membership state", "err", err)
			}
		case <-m.selfCh:
			if err := m.list.Load().UpdateNode(m.cfg.ProbeInterval * 4); err != nil {
				m.log.Debug("announcing updated node meta", "err", err)
			}
			m.signalView()
		case <-m.viewCh:
			m.refreshView()
		case <-tick.C:
			m.refreshView()
		}
	}
}

func (m *Membership) refreshView() {
	view := m.Members()
	m.mu.Lock()
	changed := !slices.Equal(view, m.lastView)
	if changed {
		m.lastView = view
	}
	subs := slices.Clone(m.subs)
	m.mu.Unlock()
	if changed {
		for _, ch := range subs {
			signal(ch)
		}
	}
}

// joinTargets lists gossip addresses worth joining: the ring members
// memberlist does not see alive and, when we are alone (or at start), the
// seeds.
func (m *Membership) joinTargets(includeSeeds bool) []string {
	live := m.liveSet()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{m.gossip: true}
	var out []string
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if includeSeeds {
		for _, s := range m.cfg.Seeds {
			add(s)
		}
	}
	ids := make([]string, 0, len(m.st.members))
	for id := range m.st.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := m.st.members[id]
		if id != m.self && r.Status == statusMember && !live[id] {
			add(r.Gossip)
		}
	}
	return out
}

// joinLoop retries joining: quickly with backoff while this node sees no
// peer (restarted alone, seeds not up yet), slowly afterwards to re-merge
// down ring members that memberlist stopped probing (healed partitions,
// members back on a new address).
func (m *Membership) joinLoop() {
	defer m.wg.Done()
	const minBackoff = 250 * time.Millisecond
	maxBackoff := max(m.cfg.PushPullInterval, minBackoff)
	backoff := minBackoff
	for {
		list := m.list.Load()
		alone := list.NumMembers() <= 1
		wait := m.cfg.PushPullInterval
		if alone {
			wait = backoff
		}
		wait = wait/2 + rand.N(wait/2+1) // jitter, so restarted nodes do not sync up
		select {
		case <-m.done:
			return
		case <-time.After(wait):
		}
		alone = list.NumMembers() <= 1
		targets := m.joinTargets(alone)
		if len(targets) == 0 {
			continue
		}
		n, err := list.Join(targets)
		if alone {
			if n == 0 {
				backoff = min(backoff*2, maxBackoff)
				m.log.Debug("join retry failed", "targets", targets, "err", err, "next", backoff)
			} else {
				backoff = minBackoff
				m.log.Info("joined cluster", "contacted", n)
			}
		} else if n > 0 {
			m.log.Debug("re-merged with down members", "contacted", n)
		}
	}
}
