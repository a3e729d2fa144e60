package core

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/quorumkv/quorumkv/internal/hints"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Config is a core's protocol settings. The server fills it from its flags; the simulator
// from its scenario. DefaultConfig gives the reasons for the defaults.
type Config struct {
	ID         string // this node's name
	Partitions int    // Q, the ring's fixed number of partitions
	// Shard and Shards: this core serves shard Shard of Shards (see ShardConfig; 0 and 1
	// when the node runs one core).
	Shard, Shards int

	MaxKeyBytes    int // 8 KiB: the contract's key limit (413 beyond)
	MaxValueBytes  int // 4 MiB: the contract's value limit (413 beyond)
	MaxSiblings    int // 100: a write past it is refused (409), never trimmed
	MaxObjectBytes int // 64 MiB: bounds one key's memory

	// RequestTimeout: 5 s, a client request's default deadline.
	RequestTimeout time.Duration
	// HedgeDelay: 1 s. A write that has not heard from a primary by then also sends the
	// object to a fallback as a hint (at most half the request's deadline): a paused or
	// partitioned primary then costs a write this long, not its whole deadline.
	HedgeDelay time.Duration

	// HandoffInterval: 10 s between handoff rounds; a member coming back starts one at once.
	HandoffInterval time.Duration
	// HandoffRetry: 1 s after a failed handoff (the target just came back and is not
	// reachable yet, say), rather than a whole interval.
	HandoffRetry time.Duration
	// HandoffBatchBytes: 1 MiB of objects per handoff batch: few round trips, bounded
	// memory, and a failed batch resends little.
	HandoffBatchBytes int
	// HandoffTimeout: 30 s for one batch to be merged and synced by its target.
	HandoffTimeout time.Duration
	// HintRate: 16 MiB/s of handoff per target (0: unthrottled), so a returning node
	// catches up quickly without starving client traffic on either side.
	HintRate int64
	// TransferRate: 16 MiB/s of partition transfer per node taking partitions over (0:
	// unthrottled), as for handoff: a joining node fills quickly without starving clients.
	TransferRate int64
	// CleanupDelay: 30 s after a cluster change settles before a node deletes its copies of
	// keys it no longer replicates, so coordinators still on the old ring for a moment (a
	// gossip round or two) find them.
	CleanupDelay time.Duration

	// AAE turns anti-entropy on: hash trees, exchanges and tombstone reaping. Without it
	// cold keys never converge (for measuring what it costs).
	AAE bool
	// AAESegments: 2^16 segments per tree (512 KiB per tree holding data): with up to
	// ~100k keys per partition a segment holds a couple of keys, so a divergent key costs a
	// few hashes and one short key list to find.
	AAESegments int
	// AAEInterval: one anti-entropy exchange every 2 s per node, rotating through its trees
	// and their other replicas: a 3-node cluster of 256 partitions compares every pair
	// within about half an hour, at little cost when nothing differs.
	AAEInterval time.Duration
	// AAERate: 8 MiB/s of exchange and repair traffic per node at most (scheduled runs).
	AAERate int64
	// TreeRebuildInterval: rebuild the trees from the store every 24 h, so silent disk
	// corruption shows up as a difference and gets repaired.
	TreeRebuildInterval time.Duration
	// RebuildChunk: 10,000 keys scanned per step of a tree rebuild (a few milliseconds), so
	// requests are served between chunks.
	RebuildChunk int
	// ReapInterval: look for tombstones to reap every 10 minutes. A tombstone is reaped only
	// past its bucket's gc_grace and once every primary holds it.
	ReapInterval time.Duration
	// ReapChunk: 10,000 keys scanned per step of a reaping pass.
	ReapChunk int
}

// DefaultConfig returns the defaults; the reasons are beside each field of Config.
func DefaultConfig() Config {
	return Config{
		Partitions:        256,
		MaxKeyBytes:       8 << 10,
		MaxValueBytes:     4 << 20,
		MaxSiblings:       100,
		MaxObjectBytes:    64 << 20,
		RequestTimeout:    5 * time.Second,
		HedgeDelay:        time.Second,
		HandoffInterval:   10 * time.Second,
		HandoffRetry:      time.Second,
		HandoffBatchBytes: 1 << 20,
		HandoffTimeout:    30 * time.Second,
		HintRate:          16 << 20,
		TransferRate:      16 << 20,
		CleanupDelay:      30 * time.Second,

		AAE:                 true,
		AAESegments:         1 << 16,
		AAEInterval:         2 * time.Second,
		AAERate:             8 << 20,
		TreeRebuildInterval: 24 * time.Hour,
		RebuildChunk:        10_000,
		ReapInterval:        10 * time.Minute,
		ReapChunk:           10_000,
	}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	var errs []error
	if c.ID == "" || strings.ContainsAny(c.ID, "\x00/") || !utf8.ValidString(c.ID) {
		errs = append(errs, fmt.Errorf("core: node id %q must be non-empty UTF-8 without NUL or '/'", c.ID))
	}
	if c.Partitions <= 0 || c.Partitions&(c.Partitions-1) != 0 {
		errs = append(errs, fmt.Errorf("core: partitions %d is not a power of two", c.Partitions))
	}
	if c.Shards > 1 && (c.Shard < 0 || c.Shard >= c.Shards || c.Shards > c.Partitions) {
		errs = append(errs, fmt.Errorf("core: shard %d of %d (at most one shard per partition)", c.Shard, c.Shards))
	}
	if c.MaxKeyBytes <= 0 || c.MaxValueBytes <= 0 || c.MaxSiblings <= 0 || c.MaxObjectBytes <= 0 {
		errs = append(errs, errors.New("core: limits must be positive"))
	}
	if c.RequestTimeout <= 0 || c.HedgeDelay <= 0 || c.HandoffInterval <= 0 || c.HandoffRetry <= 0 ||
		c.HandoffBatchBytes <= 0 || c.HandoffTimeout <= 0 || c.HintRate < 0 || c.TransferRate < 0 || c.CleanupDelay < 0 {
		errs = append(errs, errors.New("core: timeouts, intervals and batch sizes must be positive, hint rate >= 0"))
	}
	if c.AAE && (c.AAESegments <= 0 || c.AAEInterval <= 0 || c.AAERate < 0 || c.TreeRebuildInterval <= 0 ||
		c.RebuildChunk <= 0 || c.ReapInterval <= 0 || c.ReapChunk <= 0) {
		errs = append(errs, errors.New("core: anti-entropy segments, intervals and chunks must be positive, rate >= 0"))
	}
	return errors.Join(errs...)
}

// Counter names a count the core reports to its driver (metrics, simulator reports).
type Counter int

// The counts.
const (
	CountForward             Counter = iota // a write forwarded to a primary
	CountFallbackWrite                      // a stand-in added for a primary during a write
	CountHintStored                         // a hint kept for a down primary
	CountReadRepair                         // a read-repair write sent
	CountStaleRead                          // a read that found a replica behind
	CountSiblings                           // (with n = live siblings) a read's answer
	CountHintsDelivered                     // hints handed off and deleted
	CountHandoffBytes                       // bytes of hints handed off
	CountHintsStale                         // hints older than gc_grace discarded
	CountHandoffReceived                    // hinted objects merged from a handoff
	CountAAEExchangeOK                      // an anti-entropy exchange that completed
	CountAAEExchangeError                   // one that failed
	CountAAESegmentsCompared                // tree segments compared
	CountAAESegmentsDiffered                // tree segments that differed
	CountAAEKeysRepaired                    // keys repaired on either side
	CountAAEBytes                           // exchange and repair bytes on the wire
	CountTombstonesReaped                   // tombstones removed
	CountTransferKeys                       // objects received by partition transfers
	CountTransferBytes                      // bytes received by partition transfers
	CountPendingWrite                       // a write also sent to a partition's pending owner
	CountCleanupDeleted                     // copies deleted of keys this node no longer replicates
)

// LogLevel is a log record's level.
type LogLevel int

// The levels.
const (
	LevelDebug LogLevel = iota
	LevelInfo
	LevelWarn
	LevelError
)

// Deps are what a core works on, owned by its driver.
type Deps struct {
	Store   storage.Store // the node's store: data, identity and hints
	Hints   *hints.Store  // hint queues over Store
	Buckets Buckets       // bucket properties
	// Count receives counts (nil: dropped).
	Count func(c Counter, n int)
	// Log receives log records with key-value pairs (nil: dropped).
	Log func(level LogLevel, msg string, kv ...any)
	// OnMint, when set, is told of every new sibling this core mints (for the simulator's
	// history checkers), before it is stored or sent anywhere, with the highest counter of
	// its actor the write saw (in the coordinator's copy or the client's context): the new
	// clock claims every earlier dot of the actor, and those above seen it never saw.
	OnMint func(bucket, key string, s version.Sibling, seen uint64)
	// OnWrite, when set, is told of every data-key write (nil raw: deleted, a tombstone
	// reaped) but those of OnDrop.
	OnWrite func(bucket, key string, raw []byte)
	// OnDrop, when set, is told of every copy deleted because this node no longer
	// replicates the key (after a cluster change).
	OnDrop func(bucket, key string)
	// Minter mints this node's dots; shards of one node share it. Nil: the core loads
	// its own from Store (LoadIdentity) and records it on Stop.
	Minter Minter
}

// Time is the current time as the driver sees it.
type Time struct {
	// Wall is the (possibly skewed) wall clock in Unix ms: hybrid logical clocks, hint
	// ages, gc_grace.
	Wall int64
	// Mono orders timers: any monotonic time base, the same across a core's life.
	Mono time.Duration
}

// Core is one node's protocol state. Not safe for concurrent use: one driver steps it.
type Core struct {
	cfg  Config
	deps Deps

	now   Time
	id    Minter
	ownID *Identity // the Minter when this core loaded its own (Deps.Minter unset)
	hlc   version.HLClock
	view  View
	ready Ready
	spare Ready // slices handed back by Recycle, for the next Ready
	// keyBuf is the data key of the write in hand (scratchKey): every store copies the
	// keys it keeps, so one buffer serves each write in turn.
	keyBuf []byte
	// intern keeps the actor strings of the clocks this core decodes on its hot paths.
	intern version.Interner

	nextMsg uint64
	calls   map[uint64]pending // outstanding messages by id
	timers  timerHeap
	// purgeAt: the heap size at which at purges the timers of finished requests.
	purgeAt int
	puts    map[uint64]*putCoord
	fwds    map[uint64]*forward
	gets    map[uint64]*getCoord
	lists   map[uint64]*listCoord
	handoff handoffState
	trees   *treeSet // nil: anti-entropy off
	aae     aaeState
	reap    reapState
	xfers   xferState
	cleanup cleanupState
	viewSeq uint64 // bumps on every SetView
}

// pending is what an outstanding message belongs to.
type pending struct {
	owner uint64 // the coordinator's request id (0 for handoff)
	kind  callKind
	node  string
	extra string // handoff target
}

type callKind uint8

const (
	callReplicate callKind = iota
	callRead
	callRepair
	callForward
	callHandoff
	callAAE
	callReap
	callTransfer
	callPendingWrite
	callList
)

// New builds a core over deps, restoring its identity (store epoch, dot counter) from the
// store. epoch names this store's incarnation: the driver creates it once per fresh store
// (randomly, in the server) and keeps it in the store.
func New(cfg Config, deps Deps, now Time) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Hints == nil || deps.Buckets == nil {
		return nil, errors.New("core: Store, Hints and Buckets are required")
	}
	c := &Core{cfg: cfg, deps: deps, now: now,
		calls: map[uint64]pending{}, puts: map[uint64]*putCoord{}, fwds: map[uint64]*forward{}, gets: map[uint64]*getCoord{},
		lists: map[uint64]*listCoord{}}
	c.id = deps.Minter
	if c.id == nil {
		id, err := LoadIdentity(cfg.ID, deps.Store)
		if err != nil {
			return nil, err
		}
		c.id, c.ownID = id, id
	}
	c.handoff.init(now)
	if cfg.AAE {
		ts, err := newTreeSet(cfg.Partitions, cfg.AAESegments)
		if err != nil {
			return nil, err
		}
		c.trees = ts
		c.aae.init()
	}
	return c, nil
}

// Actor is this run's version-vector actor.
func (c *Core) Actor() string { return c.id.Actor() }

// Config returns the core's configuration.
func (c *Core) Config() Config { return c.cfg }

func (c *Core) count(k Counter, n int) {
	if c.deps.Count != nil && n != 0 {
		c.deps.Count(k, n)
	}
}

func (c *Core) log(level LogLevel, msg string, kv ...any) {
	if c.deps.Log != nil {
		c.deps.Log(level, msg, kv...)
	}
}

// View is the cluster as the failure detector and the membership see it.
type View struct {
	Ring *ring.Ring // the ownership in force; nil until there are members
	// Next is the ownership after the pending membership changes (nil: none), and Moved
	// says, by partition, which have been taken over already: those follow Next, the
	// others Ring (see transfer.go).
	Next  *ring.Ring
	Moved []bool
	Alive map[string]bool // members seen up (or suspect)
	// Change names the pending change (with Next): the transfers this node makes, and the
	// progress it saves and reports, belong to it. A driver gives every change a name of
	// its own, never reused: a ring can come back (3 nodes, then 5, then the same 3), and
	// what was taken over for the earlier change to it must not count for the later one.
	// Empty: the members of Next (MembersKey), for drivers that never repeat a ring.
	Change string
	// Heard: every member has heard of the change (the driver saw each one's report
	// for it), so every coordinator's writes now reach Next's replicas as well as
	// Ring's. Transfers start only then: what they stream and check then holds every
	// write acknowledged before, and the writes after reach the new replicas directly.
	// (A transfer done before would miss the writes of a member that had not heard, to
	// the old replicas only, and the partition would move without them.)
	Heard bool
}

// changeName is the name of v's pending change (View.Change).
func (v View) changeName() string {
	if v.Change != "" || v.Next == nil {
		return v.Change
	}
	return MembersKey(v.Next)
}

// Event is something that happened: the input of Step.
type Event interface{ isEvent() }

// Tick is the passage of time alone (timers).
type Tick struct{}

// SetView replaces the cluster view. Members newly seen up get their hints handed off.
type SetView struct{ View View }

// ClientRequest is a client's read or write, answered by a Reply with the same ID.
type ClientRequest struct {
	ID          uint64 // chosen by the driver, unique among its requests in flight
	Op          Op
	Bucket, Key string
	Value       []byte // OpPut
	Write       WriteOptions
	Read        ReadOptions
	CRDT        *CRDTOp      // OpCRDT
	List        *ListOptions // OpList
}

// PeerRequest is a request from another node, answered by an Answer with the same ID.
type PeerRequest struct {
	From string
	ID   uint64 // chosen by the driver
	Env  *pb.Envelope
}

// Response is the answer to one of this core's Messages, or why there is none.
type Response struct {
	ID  uint64 // the Message's ID
	Env *pb.Envelope
	// Err wraps ErrUnreachable (not sent) or ErrLost (no answer) when Env is nil.
	Err error
}

// LocalMerge merges an object into this node's own replica of a key (anti-entropy
// repairs run by the driver), as a replica write from a peer would.
type LocalMerge struct {
	Bucket, Key string
	Object      version.Object
}

func (Tick) isEvent()          {}
func (SetView) isEvent()       {}
func (ClientRequest) isEvent() {}
func (PeerRequest) isEvent()   {}
func (Response) isEvent()      {}
func (LocalMerge) isEvent()    {}

// Op is a client operation.
type Op uint8

// The client operations.
const (
	OpGet Op = iota + 1
	OpPut
	OpDelete
	OpCRDT
	OpList // a page of a bucket's keys (list.go)
)

func (o Op) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpCRDT:
		return "update"
	case OpList:
		return "list"
	}
	return "op?"
}

// WriteOptions are a write's per-request settings; empty strings take the bucket's
// defaults.
type WriteOptions struct {
	W, PW, DW string
	Timeout   time.Duration
	Context   string // causal context of the read this write supersedes
	// ContentType and Meta describe a put's value (its HTTP Content-Type and
	// X-Quorumkv-Meta-* headers): kept with it, returned with it. Meta sorted by key.
	ContentType string
	Meta        []version.MetaEntry
	// Expiry is the written value's lifetime (see expiry.go); the zero value takes the
	// bucket's ttl_s (a CRDT operation keeps the key's expiry).
	Expiry Expiry
	// Cond makes the write conditional on what a read at the request's Read quorum finds
	// (cond.go); ClientRequest.Read gives that read's R and PR.
	Cond WriteCond
}

// ReadOptions are a read's per-request settings.
type ReadOptions struct {
	R, PR   string
	Timeout time.Duration
}

// Ready is what the driver must do now.
type Ready struct {
	// Sync: make every store write so far durable before anything below leaves.
	Sync bool
	// Messages are requests to peers; each one's answer (or failure) comes back as a
	// Response with its ID.
	Messages []Message
	// Answers answer peers' requests.
	Answers []Answer
	// Replies answer client requests.
	Replies []Reply
	// Repairs report on-demand anti-entropy runs (StartRepair).
	Repairs []RepairUpdate
	// Reaped reports on-demand reaping passes (StartReap).
	Reaped []ReapDone
	// TransfersChanged: a partition transfer completed (Transfers), to publish once this
	// Ready's sync is done.
	TransfersChanged bool
	// Compact lists store key ranges where many keys were deleted (an ownership cleanup):
	// the driver may compact them, off the loop, so their disk space comes back.
	Compact []KeyRange
}

// KeyRange is the store keys from Start up to End (excluded).
type KeyRange struct{ Start, End []byte }

// Empty reports whether there is nothing to do.
func (r *Ready) Empty() bool {
	return !r.Sync && len(r.Messages) == 0 && len(r.Answers) == 0 && len(r.Replies) == 0 &&
		len(r.Repairs) == 0 && len(r.Reaped) == 0 && !r.TransfersChanged && len(r.Compact) == 0
}

// Message is a request to a peer.
type Message struct {
	To       string
	ID       uint64
	Env      *pb.Envelope
	Deadline time.Duration // Mono time after which the driver gives up (Response with ErrLost)
}

// Answer answers a PeerRequest.
type Answer struct {
	To  string
	ID  uint64
	Env *pb.Envelope
}

// Reply answers a ClientRequest.
type Reply struct {
	ID     uint64
	Err    error
	Object version.Object // OpGet: the merge of the replies (Empty when absent), without expired siblings
	// At is the wall time (Unix ms) at which an OpGet judged expiry: a sibling's time to
	// live is its Expires minus At.
	At int64
	// Context is a write's new causal context.
	Context string
	// Before and After are a CRDT operation's state at its coordinator.
	Before, After []byte
	// Partition is the key's ring partition.
	Partition int
	// Keys and Next are an OpList page: its keys in store order, and the cursor of the next
	// page (nil: the listing is complete).
	Keys []ListedKey
	Next []byte
}

// Step applies one event at time now.
func (c *Core) Step(now Time, ev Event) {
	c.advanceTime(now)
	switch e := ev.(type) {
	case Tick:
	case SetView:
		c.setView(e.View)
	case ClientRequest:
		c.clientRequest(e)
	case PeerRequest:
		c.peerRequest(e)
	case Response:
		c.response(e)
	case StartRepair:
		c.startRepair(e)
	case StartReap:
		c.startReap(e)
	case LocalMerge:
		if err := c.validKey(e.Bucket, e.Key); err != nil {
			c.log(LevelError, "local merge refused", "err", err)
			break
		}
		if _, err := c.applyMerge(e.Bucket, e.Key, e.Object, c.deps.Buckets.Bucket(e.Bucket).LWW(), false); err != nil {
			c.log(LevelError, "local merge failed", "bucket", e.Bucket, "key", e.Key, "err", err)
		}
	default:
		panic("core: unknown event type") // ev not named: naming it would make every event escape to the heap
	}
	c.runTimers()
}

// Ready returns what the driver must do now. Its slices stay the driver's until it hands
// them back with Recycle (a driver that never does keeps them for good).
func (c *Core) Ready() Ready { return c.ready }

// HasReady reports whether Ready holds anything.
func (c *Core) HasReady() bool { return !c.ready.Empty() }

// Advance tells the core that the last Ready was carried out. The next Ready starts in the
// slices last handed back by Recycle, if any.
func (c *Core) Advance() {
	c.ready = Ready{Messages: c.spare.Messages, Answers: c.spare.Answers, Replies: c.spare.Replies}
	c.spare = Ready{}
}

// recycleCap bounds the slices Recycle keeps: a burst's large Ready is not pinned for good.
const recycleCap = 1024

// Recycle hands back the slices of a Ready the driver has carried out and kept nothing of
// (it copied what it keeps), so that the next turns append to them instead of growing new
// ones: every request's messages and reply otherwise cost a turn of allocations. The
// driver must not touch rd afterwards.
func (c *Core) Recycle(rd Ready) {
	c.spare.Messages = reusable(rd.Messages)
	c.spare.Answers = reusable(rd.Answers)
	c.spare.Replies = reusable(rd.Replies)
}

// reusable empties s for reuse, its elements cleared so that nothing the turn held stays
// reachable; nil when s is over recycleCap.
func reusable[T any](s []T) []T {
	if cap(s) > recycleCap {
		return nil
	}
	clear(s)
	return s[:0]
}

// NextTimer is the Mono time of the core's earliest timer, and false when it has none:
// the driver steps a Tick then.
func (c *Core) NextTimer() (time.Duration, bool) {
	// Timers of requests that finished are dropped here rather than cancelled when they
	// finish: the driver is then never woken for nothing.
	for len(c.timers) > 0 && c.deadTimer(c.timers[0]) {
		c.timers.pop()
	}
	if len(c.timers) == 0 {
		return 0, false
	}
	return c.timers[0].at, true
}

// deadTimer reports a timer whose request has finished.
func (c *Core) deadTimer(t timer) bool {
	switch t.kind {
	case timerPutDeadline, timerPutHedge:
		return c.puts[t.owner] == nil
	case timerGetDeadline:
		return c.gets[t.owner] == nil
	case timerFwdDeadline:
		return c.fwds[t.owner] == nil
	case timerListDeadline:
		return c.lists[t.owner] == nil
	}
	return false
}

func (c *Core) advanceTime(now Time) {
	if now.Mono > c.now.Mono {
		c.now.Mono = now.Mono
	}
	c.now.Wall = now.Wall
}

// send queues a request to a peer, owned by coordinator owner.
func (c *Core) send(to string, env *pb.Envelope, deadline time.Duration, p pending) uint64 {
	c.nextMsg++
	id := c.nextMsg
	p.node = to
	c.calls[id] = p
	c.ready.Messages = append(c.ready.Messages, Message{To: to, ID: id, Env: env, Deadline: deadline})
	return id
}

func (c *Core) response(r Response) {
	p, ok := c.calls[r.ID]
	if !ok {
		return // its owner finished already
	}
	delete(c.calls, r.ID)
	switch p.kind {
	case callReplicate:
		if pc := c.puts[p.owner]; pc != nil {
			c.putResponse(pc, p.node, r)
		}
	case callPendingWrite:
		if pc := c.puts[p.owner]; pc != nil {
			c.pendingWriteResponse(pc, p.node, r)
		}
	case callRead, callRepair:
		if g := c.gets[p.owner]; g != nil {
			c.getResponse(g, p, r)
		}
	case callForward:
		if f := c.fwds[p.owner]; f != nil {
			c.forwardResponse(f, p.node, r)
		}
	case callHandoff:
		c.handoffResponse(p.extra, r)
	case callAAE:
		c.aaeResponse(p, r)
	case callReap:
		c.reapResponse(p, r)
	case callTransfer:
		c.transferResponse(p, r)
	case callList:
		if l := c.lists[p.owner]; l != nil {
			c.listResponse(l, p, r)
		}
	}
}

// timers

type timerKind uint8

const (
	timerPutDeadline timerKind = iota
	timerPutHedge
	timerGetDeadline
	timerFwdDeadline
	timerHandoff
	timerRebuild
	timerAAE
	timerReap
	timerTransfer
	timerCleanup
	timerListDeadline
)

type timer struct {
	at    time.Duration
	seq   uint64
	kind  timerKind
	owner uint64
}

// timerHeap is a binary min-heap of timers by (at, seq): a total order (seq is unique), so
// the order timers fire in does not depend on the heap's layout. Typed rather than
// container/heap, whose Push and Pop box every timer into an interface (an allocation per
// timer: two per write).
type timerHeap []timer

func (t timer) before(u timer) bool {
	if t.at != u.at {
		return t.at < u.at
	}
	return t.seq < u.seq
}

func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q[i].before(q[parent]) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

// heapify restores the heap order of h after arbitrary changes.
func (h timerHeap) heapify() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// down moves h[i] down to its place.
func (h timerHeap) down(i int) {
	for {
		least, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l].before(h[least]) {
			least = l
		}
		if r < len(h) && h[r].before(h[least]) {
			least = r
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}

// pop removes and returns the earliest timer; the heap must not be empty.
func (h *timerHeap) pop() timer {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	q.down(0)
	*h = q
	return top
}

func (c *Core) after(d time.Duration, kind timerKind, owner uint64) {
	c.at(c.now.Mono+d, kind, owner)
}

func (c *Core) at(t time.Duration, kind timerKind, owner uint64) {
	c.nextMsg++
	if len(c.timers) >= c.purgeAt {
		c.purgeTimers()
	}
	c.timers.push(timer{at: t, seq: c.nextMsg, kind: kind, owner: owner})
}

// minPurge is the heap size below which timers of finished requests are left to be
// dropped as they come up (NextTimer).
const minPurge = 1024

// purgeTimers drops the timers of requests that have finished. A request's deadline
// timer (and a write's hedge) is not cancelled when the request finishes (NextTimer drops
// it when it comes up), so under load the heap held every request of the last timeout:
// 5 s of them, 100,000s, each push and pop walking ~17 levels of them. Purging when the
// heap has doubled since the last purge keeps it within twice the live timers (and
// minPurge), at an amortized O(1) per push. Pop order is unchanged: it is the total order
// (at, seq), whatever the heap's shape.
func (c *Core) purgeTimers() {
	live := c.timers[:0]
	for _, t := range c.timers {
		if !c.deadTimer(t) {
			live = append(live, t)
		}
	}
	clear(c.timers[len(live):])
	c.timers = live
	c.timers.heapify()
	c.purgeAt = max(2*len(c.timers), minPurge)
}

func (c *Core) runTimers() {
	for len(c.timers) > 0 && c.timers[0].at <= c.now.Mono {
		t := c.timers.pop()
		switch t.kind {
		case timerPutDeadline:
			if pc := c.puts[t.owner]; pc != nil {
				pc.fsm.Timeout()
				c.putProgress(pc, true)
			}
		case timerPutHedge:
			if pc := c.puts[t.owner]; pc != nil {
				c.putHedge(pc)
			}
		case timerGetDeadline:
			if g := c.gets[t.owner]; g != nil {
				g.fsm.Timeout()
				c.getProgress(g, true)
			}
		case timerFwdDeadline:
			if f := c.fwds[t.owner]; f != nil {
				c.forwardTimeout(f)
			}
		case timerHandoff:
			c.handoffRound()
		case timerRebuild:
			c.rebuildStep()
		case timerAAE:
			c.aaeTick()
		case timerReap:
			c.reapStep()
		case timerTransfer:
			c.transferStep()
		case timerCleanup:
			c.cleanupStep()
		case timerListDeadline:
			if l := c.lists[t.owner]; l != nil {
				c.listTimeout(l)
			}
		}
	}
}

func (c *Core) setView(v View) {
	was, wasHeard := c.view.Alive, c.view.Heard && c.view.Next != nil
	c.view = v
	c.viewSeq++
	c.planTransfers()
	if v.Next != nil && v.Heard && !wasHeard && len(c.xfers.order) > 0 {
		c.at(c.now.Mono, timerTransfer, 0) // every member has heard: the transfers may start
	}
	c.planCleanup()
	back := false
	for id := range v.Alive {
		if !was[id] {
			back = true
		}
	}
	if back {
		c.kickHandoff() // a member may be back: hand its hints over now
	}
}

// alive reports whether the failure detector considers node id up.
func (c *Core) alive(id string) bool { return id == c.cfg.ID || c.view.Alive[id] }

func (c *Core) timeout(d time.Duration) time.Duration {
	if d <= 0 {
		return c.cfg.RequestTimeout
	}
	return d
}
