package core

import (
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/aae"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Anti-entropy: pairs of replicas of a partition compare their hash trees (one per
// partition and bucket n; package aae decides what to ask and checks every answer) and
// repair only the keys that differ: fetch the peer's object, merge both with the version
// rules, write the merge where it is missing or stale. A node runs one exchange at a time:
// every AAEInterval the next (tree, peer) pair in rotation, throttled to AAERate bytes/s;
// an on-demand repair (StartRepair) runs its pairs one after the other, and scheduled
// exchanges wait for it.

// ExchangeResult is one exchange of a tree with one peer, with its repairs.
type ExchangeResult struct {
	Partition        int    `json:"partition"`
	N                int    `json:"n"`
	Peer             string `json:"peer"`
	Equal            bool   `json:"equal"`
	SegmentsCompared int    `json:"segments_compared"`
	SegmentsDiffered int    `json:"segments_differed"`
	KeysDiffered     int    `json:"keys_differed"`
	KeysRepaired     int    `json:"keys_repaired"`
	Bytes            int    `json:"bytes"`
	Error            string `json:"error,omitempty"`
}

// StartRepair runs anti-entropy now: every exchange of this node's trees with their other
// replicas, or only those of one partition (Partition >= 0) or with one peer (Peer != "").
// Progress and the end come as RepairUpdates with the same ID.
type StartRepair struct {
	ID        uint64
	Partition int
	Peer      string
}

func (StartRepair) isEvent() {}

// RepairUpdate reports one exchange of an on-demand repair, or (Finished) its end.
type RepairUpdate struct {
	ID       uint64
	Done     int
	Total    int
	Result   ExchangeResult // the exchange just finished (unless Finished with Err)
	Finished bool
	Err      error // the repair could not run
}

type exchangePair struct {
	tree treeID
	peer string
}

type aaeState struct {
	cur      *exchange
	rotation int
	resumeAt time.Duration // throttle: no scheduled exchange before
	repairs  []*repairRun
	// The scheduled rotation's pairs, kept while the ring and the n in use stay the same
	// (recomputing them every tick was a tenth of a simulated node's CPU), and refreshed
	// every pairsTTL ticks for trees of an n no longer in use.
	pairs     []exchangePair
	pairsView uint64 // the view they were computed for (Core.viewSeq)
	pairsNs   []int
	pairsAge  int
}

const pairsTTL = 64

type repairRun struct {
	id       uint64
	pairs    []exchangePair
	done     int
	failed   int
	transfer *xfer // the check of a partition transfer (reported to it, not in Ready)
	// sourceFailed: an exchange of a transfer's check with its source failed.
	sourceFailed bool
}

// exchange is one exchange in progress.
type exchange struct {
	id    uint64
	pair  exchangePair
	ex    *aae.Exchange
	res   ExchangeResult
	run   *repairRun // nil for a scheduled exchange
	keys  []aae.KeyRef
	next  int // the key being repaired
	stage exchangeStage
	// remote is the peer's copy of the key being repaired, once fetched.
	remote version.Object
}

type exchangeStage uint8

const (
	stageCompare exchangeStage = iota
	stageFetch                 // waiting for the peer's copy of keys[next]
	stagePush                  // waiting for the peer to take the merge
)

func (a *aaeState) init() {}

// exchangePairs lists the (tree, peer) pairs this node exchanges: each of its trees holding
// data whose replica set (the first n of the partition's preference list) holds this node,
// with each other node of that set; filtered by partition (-1: all) and peer ("": all).
func (c *Core) exchangePairs(partition int, peer string) ([]exchangePair, error) {
	r := c.view.Ring
	if r == nil {
		return nil, fmt.Errorf("%w: the ring has no members yet", ErrUnavailable)
	}
	if partition >= r.Partitions() {
		return nil, fmt.Errorf("%w: partition %d out of range 0..%d", ErrBadRequest, partition, r.Partitions()-1)
	}
	if peer != "" && !r.Has(ring.NodeID(peer)) {
		return nil, fmt.Errorf("%w: %s is not a member", ErrBadRequest, peer)
	}
	// Every partition and n in use, whether this node holds data there or not (a replica
	// that missed every write of a partition has an empty tree, and must still be repaired);
	// and the trees holding data of an n no longer in use (a bucket whose n changed).
	ns := c.deps.Buckets.Ns()
	if !slices.Contains(ns, DefaultBucketProps().N) {
		ns = append(ns, DefaultBucketProps().N)
	}
	var ids []treeID
	for p := 0; p < r.Partitions(); p++ {
		for _, n := range ns {
			ids = append(ids, treeID{p, n})
		}
	}
	for _, id := range c.trees.ids() {
		if !slices.Contains(ns, id.n) {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, compareTreeIDs)
	var out []exchangePair
	for _, id := range slices.Compact(ids) {
		if partition >= 0 && id.p != partition || !c.owns(id.p) {
			continue
		}
		prefs := c.ringFor(id.p).Preference(id.p, id.n)
		if !slices.Contains(prefs, ring.NodeID(c.cfg.ID)) {
			continue
		}
		for _, p := range prefs {
			if string(p) == c.cfg.ID || (peer != "" && string(p) != peer) {
				continue
			}
			out = append(out, exchangePair{id, string(p)})
		}
	}
	return out, nil
}

// aaeTick starts the next scheduled exchange, unless one runs or a repair waits.
func (c *Core) aaeTick() {
	next := c.now.Mono + c.cfg.AAEInterval
	defer func() { c.at(max(next, c.aae.resumeAt), timerAAE, 0) }()
	if c.aae.cur != nil || len(c.aae.repairs) > 0 || !c.trees.ready || c.now.Mono < c.aae.resumeAt {
		return
	}
	pairs, err := c.scheduledPairs()
	if err != nil || len(pairs) == 0 {
		return
	}
	// Skip peers the failure detector sees down; try the next pair instead.
	for tries := 0; tries < len(pairs); tries++ {
		pr := pairs[c.aae.rotation%len(pairs)]
		c.aae.rotation++
		if c.alive(pr.peer) {
			c.startExchange(pr, nil)
			return
		}
	}
}

// scheduledPairs is exchangePairs(-1, "") for the rotation, cached (see aaeState).
func (c *Core) scheduledPairs() ([]exchangePair, error) {
	a := &c.aae
	ns := c.deps.Buckets.Ns()
	if a.pairs != nil && a.pairsView == c.viewSeq && slices.Equal(a.pairsNs, ns) && a.pairsAge < pairsTTL {
		a.pairsAge++
		return a.pairs, nil
	}
	pairs, err := c.exchangePairs(-1, "")
	if err != nil {
		return nil, err
	}
	a.pairs, a.pairsView, a.pairsNs, a.pairsAge = pairs, c.viewSeq, slices.Clone(ns), 0
	return pairs, nil
}

func (c *Core) startRepair(e StartRepair) {
	fail := func(err error) {
		c.ready.Repairs = append(c.ready.Repairs, RepairUpdate{ID: e.ID, Finished: true, Err: err})
	}
	if c.trees == nil {
		fail(fmt.Errorf("%w: anti-entropy is off on this node (--no-aae)", ErrUnavailable))
		return
	}
	if !c.trees.ready {
		fail(fmt.Errorf("%w: hash trees are being built (%.0f%% done)", ErrUnavailable, 100*c.trees.progress))
		return
	}
	pairs, err := c.exchangePairs(e.Partition, e.Peer)
	if err != nil {
		fail(err)
		return
	}
	run := &repairRun{id: e.ID, pairs: pairs}
	if len(pairs) == 0 {
		c.ready.Repairs = append(c.ready.Repairs, RepairUpdate{ID: e.ID, Finished: true})
		return
	}
	c.aae.repairs = append(c.aae.repairs, run)
	c.nextRepairExchange()
}

// nextRepairExchange starts the next exchange of the oldest repair run, if none runs.
func (c *Core) nextRepairExchange() {
	if c.aae.cur != nil || len(c.aae.repairs) == 0 {
		return
	}
	run := c.aae.repairs[0]
	c.startExchange(run.pairs[run.done], run)
}

func (c *Core) startExchange(pr exchangePair, run *repairRun) {
	nb, per := c.trees.shape()
	x := &exchange{id: c.newID(), pair: pr, ex: aae.NewExchange(pr.tree.p, aae.Shape{Branches: nb, SegmentsPerBranch: per}), run: run,
		res: ExchangeResult{Partition: pr.tree.p, N: pr.tree.n, Peer: pr.peer}}
	c.aae.cur = x
	c.exchangeStep(x)
}

// exchangeStep asks the current question of both sides: this node answers at once, the
// peer by message.
func (c *Core) exchangeStep(x *exchange) {
	ts := c.trees
	id := x.pair.tree
	q := x.ex.Question()
	var err error
	switch q.Kind {
	case aae.AskRoot:
		err = x.ex.AnswerRoot(aae.Local, ts.tree(id).Root(), 0)
		c.aaeAsk(x, &pb.Envelope{Body: &pb.Envelope_Tree{Tree: c.treeRequest(id, nil, true)}})
	case aae.AskBranches:
		t := ts.tree(id)
		err = x.ex.AnswerBranches(aae.Local, t.Root(), t.BranchHashes(), 0)
		c.aaeAsk(x, &pb.Envelope{Body: &pb.Envelope_Tree{Tree: c.treeRequest(id, q.Branches, false)}})
	case aae.AskSegments:
		err = x.ex.AnswerSegments(aae.Local, c.branchSegments(id, q.Branches), 0)
		c.aaeAsk(x, &pb.Envelope{Body: &pb.Envelope_Tree{Tree: c.treeRequest(id, q.Branches, false)}})
	case aae.AskKeys:
		keys, kerr := c.segmentKeys(id, q.Segments)
		if kerr != nil {
			c.finishExchange(x, kerr)
			return
		}
		err = x.ex.AnswerKeys(aae.Local, keys, 0)
		segs := make([]int32, len(q.Segments))
		for i, s := range q.Segments {
			segs[i] = int32(s)
		}
		c.aaeAsk(x, &pb.Envelope{Body: &pb.Envelope_TreeKeys{TreeKeys: &pb.TreeKeysRequest{
			Partition: int32(id.p), Partitions: int32(c.cfg.Partitions), Segments: int32(ts.segments), SegmentList: segs, N: int32(id.n)}}})
	case aae.Done:
		res := x.ex.Result()
		_, per := ts.shape()
		x.res.Equal = res.Equal
		x.res.SegmentsCompared = res.BranchesDiffered * per
		x.res.SegmentsDiffered = res.SegmentsDiffered
		x.res.KeysDiffered = len(res.Keys)
		x.keys = res.Keys
		x.stage = stageFetch
		c.repairNextKey(x)
		return
	case aae.Failed:
		c.finishExchange(x, x.ex.Err())
		return
	}
	if err != nil {
		c.finishExchange(x, err)
	}
}

func (c *Core) treeRequest(id treeID, branches []int, rootOnly bool) *pb.TreeRequest {
	b := make([]int32, len(branches))
	for i, x := range branches {
		b[i] = int32(x)
	}
	return &pb.TreeRequest{Partition: int32(id.p), Partitions: int32(c.cfg.Partitions), Segments: int32(c.trees.segments),
		Branches: b, RootOnly: rootOnly, N: int32(id.n)}
}

func (c *Core) aaeAsk(x *exchange, env *pb.Envelope) {
	x.res.Bytes += proto.Size(env)
	c.send(x.pair.peer, env, c.now.Mono+c.cfg.RequestTimeout, pending{owner: x.id, kind: callAAE})
}

func (c *Core) aaeResponse(p pending, r Response) {
	x := c.aae.cur
	if x == nil || x.id != p.owner {
		return // an exchange that ended already
	}
	if r.Err != nil {
		c.finishExchange(x, fmt.Errorf("%s: %w", x.pair.peer, r.Err))
		return
	}
	size := proto.Size(r.Env)
	if e := r.Env.GetError(); e != nil {
		x.res.Bytes += size
		c.finishExchange(x, fmt.Errorf("%s: %w", x.pair.peer, RemoteError(e.Code, e.Message)))
		return
	}
	switch x.stage {
	case stageCompare:
		if err := c.remoteAnswer(x, r.Env, size); err != nil {
			c.finishExchange(x, err)
			return
		}
		c.exchangeStep(x)
	case stageFetch:
		x.res.Bytes += size
		c.repairFetched(x, r.Env)
	case stagePush:
		x.res.Bytes += size
		if r.Env.GetReplicateResp() == nil {
			k := x.keys[x.next]
			c.finishExchange(x, fmt.Errorf("repair %s/%s on %s: unexpected answer %T", k.Bucket, k.Key, x.pair.peer, r.Env.Body))
			return
		}
		x.res.KeysRepaired++ // counted once per key, whichever sides changed
		x.next++
		x.stage = stageFetch
		c.repairNextKey(x)
	}
}

// remoteAnswer feeds the peer's answer to the exchange, checking its shape first.
func (c *Core) remoteAnswer(x *exchange, env *pb.Envelope, size int) error {
	q := x.ex.Question()
	peer := x.pair.peer
	switch q.Kind {
	case aae.AskRoot:
		tr := env.GetTreeResp()
		if tr == nil || len(tr.Hashes) != 0 {
			x.res.Bytes += size
			return fmt.Errorf("%w: %s answered %T to a root question", aae.ErrBadAnswer, peer, env.Body)
		}
		return x.ex.AnswerRoot(aae.Remote, tr.Root, size)
	case aae.AskBranches:
		tr := env.GetTreeResp()
		if tr == nil {
			x.res.Bytes += size
			return fmt.Errorf("%w: %s answered %T", aae.ErrBadAnswer, peer, env.Body)
		}
		return x.ex.AnswerBranches(aae.Remote, tr.Root, tr.Hashes, size)
	case aae.AskSegments:
		tr := env.GetTreeResp()
		_, per := c.trees.shape()
		if tr == nil || len(tr.Hashes) != len(tr.Segments) {
			x.res.Bytes += size
			return fmt.Errorf("%w: %s sent a malformed segment list", aae.ErrBadAnswer, peer)
		}
		// Rebuild each branch's segments from the non-zero ones sent.
		out := make([][]uint64, len(q.Branches))
		at := make(map[int]int, len(q.Branches))
		for i, b := range q.Branches {
			out[i] = make([]uint64, per)
			at[b] = i
		}
		for j, seg := range tr.Segments {
			i, ok := at[int(seg)/per]
			if seg < 0 || !ok || tr.Hashes[j] == 0 || out[i][int(seg)%per] != 0 {
				x.res.Bytes += size
				return fmt.Errorf("%w: %s sent segment %d, not under a branch asked for, zero or twice", aae.ErrBadAnswer, peer, seg)
			}
			out[i][int(seg)%per] = tr.Hashes[j]
		}
		return x.ex.AnswerSegments(aae.Remote, out, size)
	case aae.AskKeys:
		kr := env.GetTreeKeysResp()
		if kr == nil {
			x.res.Bytes += size
			return fmt.Errorf("%w: %s answered %T", aae.ErrBadAnswer, peer, env.Body)
		}
		out := make([]aae.KeyItem, len(kr.Keys))
		for i, k := range kr.Keys {
			// Every key must be a valid name that lies in the partition and the segment it
			// is listed under: the repairs start only once the whole answer is checked, so a
			// corrupt list repairs nothing, not the keys sorted before its first bad entry.
			if err := c.validKey(k.Bucket, k.Key); err != nil {
				x.res.Bytes += size
				return fmt.Errorf("%w: %s listed a bad key: %w", aae.ErrBadAnswer, peer, err)
			}
			if kp, seg := c.trees.locate(k.Bucket, k.Key); kp != x.pair.tree.p || seg != int(k.Segment) {
				x.res.Bytes += size
				return fmt.Errorf("%w: %s listed %q/%q under partition %d segment %d; it lies in partition %d segment %d",
					aae.ErrBadAnswer, peer, k.Bucket, k.Key, x.pair.tree.p, k.Segment, kp, seg)
			}
			out[i] = aae.KeyItem{Bucket: k.Bucket, Key: k.Key, Segment: int(k.Segment), Item: k.Item}
		}
		return x.ex.AnswerKeys(aae.Remote, out, size)
	}
	return fmt.Errorf("%w: %s answered when no question was open", aae.ErrBadAnswer, peer)
}

// repairNextKey fetches the peer's copy of the next differing key that both nodes should
// hold (by its bucket's n), or ends the exchange.
func (c *Core) repairNextKey(x *exchange) {
	for x.next < len(x.keys) {
		k := x.keys[x.next]
		if err := c.validKey(k.Bucket, k.Key); err != nil {
			c.finishExchange(x, fmt.Errorf("%w: %w", aae.ErrBadAnswer, err))
			return
		}
		rs, err := c.replicas(k.Bucket, k.Key, c.deps.Buckets.Bucket(k.Bucket).N)
		if err != nil {
			c.finishExchange(x, err)
			return
		}
		// Both sides are to be the key's primaries; in a transfer's check this node is one
		// only in the ring to come (the tree compared is one it gains, the peer a replica
		// of it now).
		if !(rs.isPrimary(c.cfg.ID) || x.run != nil && x.run.transfer != nil) || !rs.isPrimary(x.pair.peer) {
			x.next++
			continue
		}
		env := &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: k.Bucket, Key: k.Key}}}
		c.aaeAsk(x, env)
		return
	}
	c.finishExchange(x, nil)
}

// repairFetched merges the peer's copy with this node's and writes the merge where it is
// missing or stale. A tombstone past its bucket's gc_grace is not copied to a side that has
// no copy at all: for reads, absent and deleted are the same, and that side may have
// reaped it already.
func (c *Core) repairFetched(x *exchange, env *pb.Envelope) {
	k := x.keys[x.next]
	gr := env.GetGetResp()
	if gr == nil {
		c.finishExchange(x, fmt.Errorf("fetch %s/%s from %s: unexpected answer %T", k.Bucket, k.Key, x.pair.peer, env.Body))
		return
	}
	var remote version.Object
	if gr.Found {
		var err error
		if remote, err = version.Decode(gr.Object); err != nil {
			c.finishExchange(x, fmt.Errorf("%w: %s sent %s/%s: %w", aae.ErrBadAnswer, x.pair.peer, k.Bucket, k.Key, err))
			return
		}
	}
	local, _, err := c.loadRaw(DataKey(k.Bucket, k.Key))
	if err != nil {
		c.finishExchange(x, err)
		return
	}
	props := c.deps.Buckets.Bucket(k.Bucket)
	merged := version.Merge(local, remote)
	if props.LWW() && len(merged.Siblings) > 1 {
		merged = merged.LWW()
	}
	reapable := merged.Dead(c.now.Wall) && PastGCGrace(merged, props, c.now.Wall)
	repaired := false
	if !merged.Equal(local) && !(reapable && local.Empty()) {
		if _, err := c.applyMerge(k.Bucket, k.Key, merged, props.LWW(), false); err != nil {
			c.finishExchange(x, err)
			return
		}
		repaired = true
	}
	if !merged.Equal(remote) && !(reapable && remote.Empty()) {
		hl := c.hlc.Last()
		req := &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{
			Bucket: k.Bucket, Key: k.Key, Object: merged.AppendBinary(nil), HlcWall: hl.Wall, HlcLogical: hl.Logical}}}
		x.stage = stagePush
		c.aaeAsk(x, req)
		return
	}
	if repaired {
		x.res.KeysRepaired++
	}
	x.next++
	c.repairNextKey(x)
}

func (c *Core) finishExchange(x *exchange, err error) {
	c.aae.cur = nil
	// The exchange counted the answers it was fed; the questions, the repairs and any answer
	// refused before it was fed are counted here.
	x.res.Bytes += x.ex.Result().Bytes
	if err != nil {
		x.res.Error = err.Error()
		c.count(CountAAEExchangeError, 1)
	} else {
		c.count(CountAAEExchangeOK, 1)
	}
	c.count(CountAAESegmentsCompared, x.res.SegmentsCompared)
	c.count(CountAAESegmentsDiffered, x.res.SegmentsDiffered)
	c.count(CountAAEKeysRepaired, x.res.KeysRepaired)
	c.count(CountAAEBytes, x.res.Bytes)
	if run := x.run; run != nil {
		run.done++
		if err != nil {
			run.failed++
			if run.transfer != nil && x.pair.peer == run.transfer.source {
				run.sourceFailed = true
			}
		}
		fin := run.done == len(run.pairs)
		if run.transfer == nil {
			c.ready.Repairs = append(c.ready.Repairs, RepairUpdate{ID: run.id, Done: run.done, Total: len(run.pairs), Result: x.res, Finished: fin})
		}
		if fin {
			c.aae.repairs = c.aae.repairs[1:]
			if run.transfer != nil {
				c.transferChecked(run.transfer, run)
			}
		}
		c.nextRepairExchange()
		return
	}
	if err != nil {
		c.log(LevelWarn, "anti-entropy exchange failed", "partition", x.res.Partition, "n", x.res.N, "peer", x.res.Peer, "err", err)
	} else if x.res.KeysRepaired > 0 {
		c.log(LevelInfo, "anti-entropy repaired keys", "partition", x.res.Partition, "n", x.res.N, "peer", x.res.Peer,
			"segments_differed", x.res.SegmentsDiffered, "keys_repaired", x.res.KeysRepaired, "bytes", x.res.Bytes)
	}
	if c.cfg.AAERate > 0 && x.res.Bytes > 0 {
		c.aae.resumeAt = c.now.Mono + time.Duration(float64(x.res.Bytes)/float64(c.cfg.AAERate)*float64(time.Second))
	}
	c.nextRepairExchange()
}

// branchSegments returns, for each branch asked for, the hashes of its segments.
func (c *Core) branchSegments(id treeID, branches []int) [][]uint64 {
	t := c.trees.tree(id)
	out := make([][]uint64, len(branches))
	for i, b := range branches {
		out[i] = t.BranchSegments(nil, b)
	}
	return out
}

// segmentKeys lists the keys of tree id this node stores in some segments: the keys of
// the partition's segment whose bucket has the tree's n.
func (c *Core) segmentKeys(id treeID, segments []int) ([]aae.KeyItem, error) {
	var out []aae.KeyItem
	for _, seg := range segments {
		lo, hi := c.trees.segmentRange(id.p, seg)
		var bad error
		err := c.deps.Store.Scan(lo, hi, func(k, v []byte) bool {
			bucket, key, ok := ParseDataKey(k)
			if !ok {
				bad = fmt.Errorf("malformed data key %q", k)
				return false
			}
			if c.deps.Buckets.Bucket(bucket).N == id.n {
				out = append(out, aae.KeyItem{Bucket: bucket, Key: key, Segment: seg, Item: itemOf(bucket, key, v)})
			}
			return true
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, fmt.Errorf("keys of partition %d segment %d: %w", id.p, seg, err)
		}
	}
	return out, nil
}

// checkTree refuses a tree question whose shape differs from this node's.
func (c *Core) checkTree(p, partitions, segments, n int32) (treeID, error) {
	ts := c.trees
	if ts == nil {
		return treeID{}, fmt.Errorf("%w: anti-entropy is off on this node", ErrUnavailable)
	}
	if int(partitions) != c.cfg.Partitions || int(segments) != ts.segments {
		return treeID{}, fmt.Errorf("%w: tree shape %d partitions × %d segments, this node has %d × %d",
			ErrBadRequest, partitions, segments, c.cfg.Partitions, ts.segments)
	}
	if p < 0 || int(p) >= c.cfg.Partitions {
		return treeID{}, fmt.Errorf("%w: partition %d out of range", ErrBadRequest, p)
	}
	if !c.owns(int(p)) {
		return treeID{}, fmt.Errorf("core: partition %d asked of shard %d, which does not own it", p, c.cfg.Shard)
	}
	if n == 0 {
		n = int32(DefaultBucketProps().N)
	}
	if n < 1 || n > 16 {
		return treeID{}, fmt.Errorf("%w: n %d out of range", ErrBadRequest, n)
	}
	if !ts.ready {
		return treeID{}, fmt.Errorf("%w: hash trees are being built", ErrUnavailable)
	}
	return treeID{int(p), int(n)}, nil
}

func (c *Core) handleTree(r *pb.TreeRequest) *pb.Envelope {
	id, err := c.checkTree(r.Partition, r.Partitions, r.Segments, r.N)
	if err != nil {
		return ErrorEnvelope(err)
	}
	t := c.trees.tree(id)
	if r.RootOnly {
		return &pb.Envelope{Body: &pb.Envelope_TreeResp{TreeResp: &pb.TreeResponse{Root: t.Root()}}}
	}
	if len(r.Branches) == 0 {
		return &pb.Envelope{Body: &pb.Envelope_TreeResp{TreeResp: &pb.TreeResponse{Root: t.Root(), Hashes: t.BranchHashes()}}}
	}
	nb, per := c.trees.shape()
	if len(r.Branches) > nb {
		// Each branch asked for costs a segment list: a question repeating branches could
		// ask for gigabytes.
		return ErrorEnvelope(fmt.Errorf("%w: %d branches asked for, the tree has %d", ErrBadRequest, len(r.Branches), nb))
	}
	branches := make([]int, len(r.Branches))
	for i, b := range r.Branches {
		if b < 0 || int(b) >= nb {
			return ErrorEnvelope(fmt.Errorf("%w: branch %d out of range", ErrBadRequest, b))
		}
		branches[i] = int(b)
	}
	resp := &pb.TreeResponse{}
	for i, segs := range c.branchSegments(id, branches) {
		for j, h := range segs {
			if h != 0 {
				resp.Hashes = append(resp.Hashes, h)
				resp.Segments = append(resp.Segments, int32(branches[i]*per+j))
			}
		}
	}
	return &pb.Envelope{Body: &pb.Envelope_TreeResp{TreeResp: resp}}
}

func (c *Core) handleTreeKeys(r *pb.TreeKeysRequest) *pb.Envelope {
	id, err := c.checkTree(r.Partition, r.Partitions, r.Segments, r.N)
	if err != nil {
		return ErrorEnvelope(err)
	}
	if len(r.SegmentList) > c.trees.segments {
		return ErrorEnvelope(fmt.Errorf("%w: %d segments asked for", ErrBadRequest, len(r.SegmentList)))
	}
	segs := make([]int, len(r.SegmentList))
	for i, s := range r.SegmentList {
		if s < 0 || int(s) >= c.trees.segments {
			return ErrorEnvelope(fmt.Errorf("%w: segment %d out of range", ErrBadRequest, s))
		}
		segs[i] = int(s)
	}
	keys, err := c.segmentKeys(id, segs)
	if err != nil {
		return ErrorEnvelope(err)
	}
	out := make([]*pb.TreeKey, len(keys))
	for i, k := range keys {
		out[i] = &pb.TreeKey{Bucket: k.Bucket, Key: k.Key, Segment: int32(k.Segment), Item: k.Item}
	}
	return &pb.Envelope{Body: &pb.Envelope_TreeKeysResp{TreeKeysResp: &pb.TreeKeysResponse{Keys: out}}}
}
