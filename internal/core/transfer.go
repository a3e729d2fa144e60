package core

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Partition transfers: when the membership changes (a node joins, leaves, replaces or
// removes another), the driver's View carries the ring in force (Ring) and the ring after
// the change (Next), and says which partitions have been taken over already (Moved). A
// partition not yet moved keeps its replicas from Ring: reads go there only, writes go
// there and also to Next's new replicas of the key (pending owners), whose acks count
// toward nothing. A node that gains a partition streams it from a current replica, the
// owner first (TransferRequest, in store order, throttled to TransferRate), merging every
// object with the normal version rules, then runs an anti-entropy exchange of each of the
// partition's trees with that replica — equal roots end it at once — and only then reports
// the partition complete (Transfers). The driver publishes that; a partition moves once
// every node gaining it has reported it complete, so a read never meets a new replica that
// is missing an acknowledged write. A node that restarts mid-transfer streams the partition
// again (merging twice changes nothing).

// TransferStatus is one partition this node is taking over.
type TransferStatus struct {
	Partition int
	Source    string // the replica it streams from ("" while none is reachable)
	Phase     string // "waiting", "streaming", "checking", "done"
	Keys      int64  // objects received
	Bytes     int64
	Started   time.Duration // Mono time the streaming started (0: not yet)
	Elapsed   time.Duration // streaming and checking so far
}

type xferPhase uint8

const (
	xferWaiting xferPhase = iota
	xferStreaming
	xferChecking
	xferDone
)

func (p xferPhase) String() string {
	return [...]string{"waiting", "streaming", "checking", "done"}[p]
}

// xfer is one partition being taken over.
type xfer struct {
	p        int
	trees    []int // the n of the trees this node gains in p
	phase    xferPhase
	source   string
	cursor   []byte
	keys     int64
	bytes    int64
	started  time.Duration
	finished time.Duration
	id       uint64 // owner of its messages
	// awaitTrees: the check waits for this node's hash trees to be built.
	awaitTrees bool
}

type xferState struct {
	change   string        // the change these transfers are for (View.Change)
	next     *ring.Ring    // its Next
	ring     *ring.Ring    // and the Ring they start from
	parts    map[int]*xfer // by partition
	order    []int         // partitions, in the order they are taken
	cur      *xfer         // streaming or checking: one at a time
	resumeAt time.Duration // throttle
	// avoid holds the sources whose batch or check failed, each passed over until the
	// Mono time given while another replica is up, so a source cut off from this node (a
	// network partition the failure detector does not see) stalls no partition.
	avoid map[string]time.Duration
}

// ringFor is the ring that places partition p now: Next once p has moved, Ring before.
func (c *Core) ringFor(p int) *ring.Ring {
	if v := c.view; v.Next != nil && p < len(v.Moved) && v.Moved[p] {
		return v.Next
	}
	return c.view.Ring
}

// otherReplicas are, while a change is pending, the other ring's replicas of (p, n):
// Next's before p moved — they must hold every write when they take over —, Ring's after
// — a coordinator that has not yet heard of the move still reads them. Nil otherwise.
func (c *Core) otherReplicas(p, n int) []string {
	v := c.view
	if v.Next == nil || v.Ring == nil {
		return nil
	}
	other := v.Next
	if p < len(v.Moved) && v.Moved[p] {
		other = v.Ring
	}
	ids := other.Preference(p, n)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(id)
	}
	return out
}

// pendingOwners are the other replicas (otherReplicas) that primaries (this ring's) lack
// and that are seen up. They get every write; their acks count toward no quorum, but the
// answer waits, within the deadline, until W replicas of the other ring hold the write as
// well (putCoord.other), so that a write acknowledged on either ring is on W replicas of
// the other and a read by a coordinator that has or has not heard of the move finds it.
func (c *Core) pendingOwners(other, primaries []string) []string {
	var out []string
	for _, id := range other {
		if !slices.Contains(primaries, id) && c.alive(id) {
			out = append(out, id)
		}
	}
	return out
}

// Gainers are the nodes that take partition p over between r and next: among next's
// replicas of (p, n) but not r's, for some n in ns. Sorted.
func Gainers(r, next *ring.Ring, p int, ns []int) []string {
	var out []string
	for _, n := range ns {
		old := r.Preference(p, n)
		for _, id := range next.Preference(p, n) {
			if !slices.Contains(old, id) && !slices.Contains(out, string(id)) {
				out = append(out, string(id))
			}
		}
	}
	slices.Sort(out)
	return out
}

// MovedPartitions says which partitions have been taken over between r and next: those
// moved before (prev, by partition; nil: none) and, once every member of either ring has
// heard of the change (heard: it published a report for next, or it is down), those
// whose every gainer reports them complete (done). Every node computes it from what the
// members published, so all agree once they have heard the same reports. The wait for
// every member matters: a coordinator that has not heard of the change writes to the old
// replicas only, so a partition must not move — its reads go to the new replicas — while
// one may still do so.
func MovedPartitions(r, next *ring.Ring, ns []int, prev []bool, heard func(node string) bool, done func(node string, p int) bool) []bool {
	all := EveryMemberHeard(r, next, heard)
	out := make([]bool, r.Partitions())
	for p := range out {
		if p < len(prev) && prev[p] {
			out[p] = true
			continue
		}
		if !all {
			continue
		}
		moved := true
		for _, g := range Gainers(r, next, p, ns) {
			if !done(g, p) {
				moved = false
				break
			}
		}
		out[p] = moved
	}
	return out
}

// EveryMemberHeard reports whether every member of r and next has heard of the change
// between them (View.Heard).
func EveryMemberHeard(r, next *ring.Ring, heard func(node string) bool) bool {
	for _, rg := range []*ring.Ring{r, next} {
		for _, m := range rg.Members() {
			if !heard(string(m.ID)) {
				return false
			}
		}
	}
	return true
}

// planTransfers lists the partitions of this shard that this node gains between Ring and
// Next, keeping the progress of those it was already taking for the same Next.
func (c *Core) planTransfers() {
	v := c.view
	x := &c.xfers
	if v.Next == nil || v.Ring == nil {
		if x.next != nil {
			c.ready.TransfersChanged = true // no change pending any more
			c.dropTransferChecks()
		}
		*x = xferState{}
		return
	}
	name := v.changeName()
	if x.next != nil && x.change == name && slices.Equal(x.next.Members(), v.Next.Members()) && x.ring != nil && slices.Equal(x.ring.Members(), v.Ring.Members()) {
		x.next, x.ring = v.Next, v.Ring
		return // the same change: keep going
	}
	// A new plan. A partition complete for the same change stays complete (the writes
	// kept reaching this node, a pending owner, since); one under way starts again. A
	// change to the same Next made again later is another change: it starts afresh.
	old := x.parts
	if x.next == nil || x.change != name || !slices.Equal(x.next.Members(), v.Next.Members()) {
		old = nil
	}
	c.dropTransferChecks()
	*x = xferState{change: name, next: v.Next, ring: v.Ring, parts: map[int]*xfer{}}
	c.ready.TransfersChanged = true // a new plan: what it has done so far is to be published
	// What this shard completed for the same change before a restart.
	saved := c.loadTransfersDone(name)
	self := ring.NodeID(c.cfg.ID)
	ns := c.deps.Buckets.Ns()
	lo, hi := ShardPartitions(c.cfg.Shard, c.cfg.Partitions, c.cfg.Shards)
	for p := lo; p < hi; p++ {
		var trees []int
		for _, n := range ns {
			if slices.Contains(v.Next.Preference(p, n), self) && !slices.Contains(v.Ring.Preference(p, n), self) {
				trees = append(trees, n)
			}
		}
		if len(trees) > 0 {
			t := &xfer{p: p, trees: trees}
			if o := old[p]; o != nil && o.phase == xferDone && slices.Equal(o.trees, trees) {
				t = o
			} else if saved[p] {
				t.phase = xferDone // streamed and checked before this node restarted
			}
			x.parts[p] = t
			x.order = append(x.order, p)
		}
	}
	if len(x.order) > 0 {
		c.log(LevelInfo, "partition transfers planned", "partitions", len(x.order))
		c.at(c.now.Mono, timerTransfer, 0)
	}
}

// TransferPlan is the change the transfers are for (View.Change; "" when none is
// pending) and their status.
func (c *Core) TransferPlan() (string, []TransferStatus) {
	if c.xfers.next == nil {
		return "", nil
	}
	return c.xfers.change, c.Transfers()
}

// MembersKey names a ring by its members, sorted, joined by commas (the name of a change
// whose driver gives none: View.Change).
func MembersKey(r *ring.Ring) string {
	ids := make([]string, 0, len(r.Members()))
	for _, m := range r.Members() {
		ids = append(ids, string(m.ID))
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// The partitions a shard completed for a change are kept in the store (key
// "m/xfer/<shard>": the change's name, a NUL, then one byte per partition), so a
// node that restarts in the middle of a change goes on from there instead of streaming
// them again.
func (c *Core) transfersKey() []byte { return []byte(fmt.Sprintf("m/xfer/%d", c.cfg.Shard)) }

func (c *Core) loadTransfersDone(change string) map[int]bool {
	raw, err := c.deps.Store.Get(c.transfersKey())
	if err != nil {
		return nil
	}
	key, bits, ok := strings.Cut(string(raw), "\x00")
	if !ok || key != change {
		return nil // another change
	}
	done := map[int]bool{}
	for p := 0; p < len(bits) && p < c.cfg.Partitions; p++ {
		if bits[p] == 1 {
			done[p] = true
		}
	}
	return done
}

func (c *Core) saveTransfersDone() {
	x := &c.xfers
	bits := make([]byte, c.cfg.Partitions)
	for p, t := range x.parts {
		if t.phase == xferDone {
			bits[p] = 1
		}
	}
	raw := append([]byte(x.change+"\x00"), bits...)
	if err := c.deps.Store.Put(c.transfersKey(), raw, storage.WriteOptions{}); err != nil {
		c.log(LevelWarn, "recording transfer progress failed (a restart streams those partitions again)", "err", err)
	}
}

// Transfers reports the partitions this core is taking over, in order.
func (c *Core) Transfers() []TransferStatus {
	x := &c.xfers
	out := make([]TransferStatus, 0, len(x.order))
	for _, p := range x.order {
		t := x.parts[p]
		st := TransferStatus{Partition: p, Source: t.source, Phase: t.phase.String(), Keys: t.keys, Bytes: t.bytes, Started: t.started}
		switch {
		case t.phase == xferDone:
			st.Elapsed = t.finished - t.started
		case t.started > 0:
			st.Elapsed = c.now.Mono - t.started
		}
		out = append(out, st)
	}
	return out
}

// transferStep starts the next transfer when none runs and the throttle allows.
func (c *Core) transferStep() {
	x := &c.xfers
	if t := x.cur; t != nil {
		if t.awaitTrees {
			t.awaitTrees = false
			c.checkTransfer(t)
		}
		return
	}
	if x.next == nil || !c.view.Heard {
		return // no change, or not every member has heard of it yet (View.Heard)
	}
	if c.now.Mono < x.resumeAt {
		c.at(x.resumeAt, timerTransfer, 0)
		return
	}
	for _, p := range x.order {
		t := x.parts[p]
		if t.phase == xferDone {
			continue
		}
		src := c.transferSource(p)
		if src == "" {
			t.source = ""
			c.at(c.now.Mono+c.cfg.HandoffRetry, timerTransfer, 0) // no replica reachable yet
			return
		}
		if t.started == 0 {
			t.started = max(c.now.Mono, 1)
		}
		if src != t.source {
			t.source, t.cursor = src, nil // another replica: from the start
		}
		t.phase = xferStreaming
		x.cur = t
		c.askTransfer(t)
		return
	}
}

// transferSource is the replica to stream partition p from: the first of Ring's replicas
// seen up, the owner first (it holds the keys of every n), passing over those that just
// failed while another is up.
func (c *Core) transferSource(p int) string {
	maxN := slices.Max(c.deps.Buckets.Ns())
	avoided := ""
	for _, id := range c.view.Ring.Preference(p, maxN) {
		if string(id) == c.cfg.ID || !c.alive(string(id)) {
			continue
		}
		if c.now.Mono < c.xfers.avoid[string(id)] {
			if avoided == "" {
				avoided = string(id)
			}
			continue
		}
		return string(id)
	}
	return avoided
}

// sourceFailed passes over t's source for as long as a batch may take (transferSource).
func (c *Core) sourceFailed(t *xfer) {
	if c.xfers.avoid == nil {
		c.xfers.avoid = map[string]time.Duration{}
	}
	c.xfers.avoid[t.source] = c.now.Mono + c.cfg.HandoffTimeout
}

func (c *Core) askTransfer(t *xfer) {
	t.id = c.newID()
	req := &pb.TransferRequest{Partition: int32(t.p), Partitions: int32(c.cfg.Partitions), After: t.cursor, MaxBytes: int32(c.cfg.HandoffBatchBytes)}
	c.send(t.source, &pb.Envelope{Body: &pb.Envelope_Transfer{Transfer: req}}, c.now.Mono+c.cfg.HandoffTimeout, pending{owner: t.id, kind: callTransfer})
}

func (c *Core) transferResponse(p pending, r Response) {
	x := &c.xfers
	t := x.cur
	if t == nil || t.id != p.owner || t.phase != xferStreaming {
		return // a transfer for another Next, or one given up
	}
	tr := r.Env.GetTransferResp()
	if r.Err != nil || tr == nil {
		err := r.Err
		if err == nil {
			err = remoteErr(r.Env)
		}
		c.log(LevelWarn, "partition transfer batch failed; retrying", "partition", t.p, "source", t.source, "err", err)
		c.sourceFailed(t)
		x.cur = nil
		x.resumeAt = c.now.Mono + c.cfg.HandoffRetry
		c.at(x.resumeAt, timerTransfer, 0)
		return
	}
	size, err := c.mergeTransfer(t, tr)
	if err != nil {
		c.log(LevelError, "partition transfer refused a batch; retrying", "partition", t.p, "source", t.source, "err", err)
		c.sourceFailed(t)
		x.cur = nil
		x.resumeAt = c.now.Mono + c.cfg.HandoffRetry
		c.at(x.resumeAt, timerTransfer, 0)
		return
	}
	if c.cfg.TransferRate > 0 && size > 0 {
		x.resumeAt = c.now.Mono + time.Duration(float64(size)/float64(c.cfg.TransferRate)*float64(time.Second))
	}
	if !tr.Done {
		t.cursor = tr.Next
		if c.now.Mono < x.resumeAt {
			x.cur = nil // the next batch after the throttle; the cursor keeps its place
			c.at(x.resumeAt, timerTransfer, 0)
			return
		}
		c.askTransfer(t)
		return
	}
	c.checkTransfer(t)
}

// mergeTransfer checks a batch whole (every key of partition t.p, every object valid),
// then merges each object; the batch is durable before anything of this turn leaves.
func (c *Core) mergeTransfer(t *xfer, tr *pb.TransferResponse) (int, error) {
	objs := make([]version.Object, len(tr.Items))
	size := 0
	for i, it := range tr.Items {
		if err := c.validKey(it.Bucket, it.Key); err != nil {
			return 0, fmt.Errorf("item %d: %w", i, err)
		}
		if p := PartitionOf(it.Bucket, it.Key, c.cfg.Partitions); p != t.p {
			return 0, fmt.Errorf("%w: item %d (%s/%s) is of partition %d, not %d", ErrBadRequest, i, it.Bucket, it.Key, p, t.p)
		}
		obj, err := version.Decode(it.Object)
		if err != nil {
			return 0, fmt.Errorf("%w: item %d (%s/%s): %w", ErrBadRequest, i, it.Bucket, it.Key, err)
		}
		objs[i] = obj
		size += len(it.Key) + len(it.Object)
	}
	if !tr.Done && len(tr.Next) == 0 {
		return 0, fmt.Errorf("%w: a batch that is not the last without a cursor", ErrBadRequest)
	}
	for i, it := range tr.Items {
		if _, err := c.applyMerge(it.Bucket, it.Key, objs[i], c.deps.Buckets.Bucket(it.Bucket).LWW(), true); err != nil {
			return 0, fmt.Errorf("item %d: %w", i, err)
		}
	}
	t.keys += int64(len(tr.Items))
	t.bytes += int64(size)
	c.count(CountTransferKeys, len(tr.Items))
	c.count(CountTransferBytes, size)
	return size, nil
}

// checkTransfer compares each tree this node gains in the partition with the source's
// and with every other current replica's seen up, by anti-entropy exchanges (equal roots
// end one at once; a difference — a write that reached one side only meanwhile — is
// repaired both ways). The new copy then holds every write any reachable old replica
// holds, so a write acknowledged by W old replicas is on W new ones even when the
// source had missed it. Without anti-entropy the streamed copy stands.
func (c *Core) checkTransfer(t *xfer) {
	t.phase = xferChecking
	if c.trees == nil {
		c.finishTransfer(t)
		return
	}
	if !c.trees.ready {
		t.awaitTrees = true
		c.after(c.cfg.HandoffRetry, timerTransfer, 0)
		return
	}
	var pairs []exchangePair
	for _, n := range t.trees {
		for _, id := range c.view.Ring.Preference(t.p, n) {
			if peer := string(id); peer != c.cfg.ID && (peer == t.source || c.alive(peer)) {
				pairs = append(pairs, exchangePair{tree: treeID{t.p, n}, peer: peer})
			}
		}
	}
	if len(pairs) == 0 {
		c.finishTransfer(t)
		return
	}
	run := &repairRun{id: t.id, pairs: pairs, transfer: t}
	c.aae.repairs = append(c.aae.repairs, run)
	c.nextRepairExchange()
}

// transferChecked ends the check of run's transfer: done when the exchanges with the
// source succeeded (one with another replica that failed — a replica this node cannot
// reach — is logged and leaves the copy as the source has it), streamed again from
// another source otherwise.
func (c *Core) transferChecked(t *xfer, run *repairRun) {
	x := &c.xfers
	if x.cur != t {
		return
	}
	if run.sourceFailed {
		c.log(LevelWarn, "partition transfer check failed; streaming the partition again", "partition", t.p, "source", t.source)
		c.sourceFailed(t)
		t.phase, t.cursor = xferWaiting, nil
		x.cur = nil
		x.resumeAt = c.now.Mono + c.cfg.HandoffRetry
		c.at(x.resumeAt, timerTransfer, 0)
		return
	}
	if run.failed > 0 {
		c.log(LevelWarn, "partition transfer check could not compare with every replica", "partition", t.p, "source", t.source, "failed", run.failed)
	}
	c.finishTransfer(t)
}

func (c *Core) finishTransfer(t *xfer) {
	t.phase, t.finished = xferDone, c.now.Mono
	c.xfers.cur = nil
	c.saveTransfersDone()
	c.ready.Sync = true // what was merged is on disk before the partition is reported complete
	c.ready.TransfersChanged = true
	c.log(LevelInfo, "partition transfer complete", "partition", t.p, "source", t.source, "keys", t.keys, "bytes", t.bytes, "elapsed", t.finished-t.started)
	c.at(c.now.Mono, timerTransfer, 0)
}

// dropTransferChecks stops the anti-entropy checks of a plan that was replaced: their
// exchanges would otherwise go on repairing a partition into a node that may no longer be
// its replica (and, the ring settled, has deleted its copy).
func (c *Core) dropTransferChecks() {
	if x := c.aae.cur; x != nil && x.run != nil && x.run.transfer != nil {
		c.aae.cur = nil // its answers are ignored from now on
	}
	runs := c.aae.repairs[:0]
	for _, r := range c.aae.repairs {
		if r.transfer == nil {
			runs = append(runs, r)
		}
	}
	clear(c.aae.repairs[len(runs):])
	c.aae.repairs = runs
	c.nextRepairExchange()
}

// partitionScan checks a peer's request to read one of this shard's partitions (a transfer,
// a listing) from a store position after (empty: its start): the partition, the store
// range to read, [start, hi).
func (c *Core) partitionScan(what string, part, parts int32, after []byte) (p int, start, hi []byte, err error) {
	if int(parts) != c.cfg.Partitions || part < 0 || int(part) >= c.cfg.Partitions {
		return 0, nil, nil, fmt.Errorf("%w: %s of partition %d of %d (this node has %d)", ErrBadRequest, what, part, parts, c.cfg.Partitions)
	}
	p = int(part)
	if !c.owns(p) {
		return 0, nil, nil, fmt.Errorf("core: partition %d asked of shard %d, which does not own it", p, c.cfg.Shard)
	}
	lo, hi := partitionStart(p, c.cfg.Partitions), partitionStart(p+1, c.cfg.Partitions)
	start = lo
	if len(after) > 0 {
		if bytes.Compare(after, lo) < 0 || bytes.Compare(after, hi) >= 0 {
			return 0, nil, nil, fmt.Errorf("%w: %s cursor outside partition %d", ErrBadRequest, what, p)
		}
		start = after
	}
	return p, start, hi, nil
}

// handleTransfer answers a new owner's request for a partition's next stored objects.
func (c *Core) handleTransfer(r *pb.TransferRequest) *pb.Envelope {
	p, start, hi, err := c.partitionScan("transfer", r.Partition, r.Partitions, r.After)
	if err != nil {
		return ErrorEnvelope(err)
	}
	limit := int(r.MaxBytes)
	if limit <= 0 || limit > c.cfg.HandoffBatchBytes {
		limit = c.cfg.HandoffBatchBytes
	}
	resp := &pb.TransferResponse{Done: true}
	size := 0
	var last []byte
	err = c.deps.Store.Scan(start, hi, func(k, v []byte) bool {
		if size >= limit {
			resp.Done = false
			return false
		}
		bucket, key, ok := ParseDataKey(k)
		if !ok {
			return true
		}
		resp.Items = append(resp.Items, &pb.HandoffItem{Bucket: bucket, Key: key, Object: bytes.Clone(v)})
		size += len(k) + len(v)
		last = append(last[:0], k...)
		return true
	})
	if err != nil {
		return ErrorEnvelope(fmt.Errorf("transfer of partition %d: %w", p, err))
	}
	if !resp.Done {
		resp.Next = append(last, 0) // the next key after the last one sent
	}
	return &pb.Envelope{Body: &pb.Envelope_TransferResp{TransferResp: resp}}
}

// remoteErr is the error an error envelope carries (or says there was none).
func remoteErr(env *pb.Envelope) error {
	if e := env.GetError(); e != nil {
		return RemoteErrorOf(e)
	}
	return fmt.Errorf("%w: unexpected answer %T", ErrBadRequest, env.GetBody())
}
