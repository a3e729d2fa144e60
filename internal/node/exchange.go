package node

import (
	"context"
	"fmt"
	"github.com/quorumkv/quorumkv/internal/core"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/aae"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// Anti-entropy: pairs of replicas of a partition compare their hash trees (package aae) and
// repair only the keys that differ: fetch both objects, merge them with the version rules,
// write the merge where it is missing or stale. Each node runs one exchange every
// AAEInterval, rotating through its partitions and their other primaries, throttled to
// AAERate bytes/s; POST /v1/admin/repair runs them on demand.

// localSide answers an exchange from this node's own trees and store; it costs no wire
// bytes.
type localSide struct{ n *Node }

func (l localSide) Root(_ context.Context, p int) (uint64, int, error) {
	if !l.n.trees.ready.Load() {
		return 0, 0, fmt.Errorf("%w: hash trees are being built", ErrUnavailable)
	}
	return l.n.trees.root(p), 0, nil
}

func (l localSide) Branches(_ context.Context, p int) (uint64, []uint64, int, error) {
	if !l.n.trees.ready.Load() {
		return 0, nil, 0, fmt.Errorf("%w: hash trees are being built", ErrUnavailable)
	}
	root, br := l.n.trees.branches(p)
	return root, br, 0, nil
}

func (l localSide) Segments(_ context.Context, p int, branches []int) ([][]uint64, int, error) {
	return l.n.trees.branchSegments(p, branches), 0, nil
}

func (l localSide) Keys(_ context.Context, p int, segments []int) ([]aae.KeyItem, int, error) {
	keys, err := l.n.segmentKeys(p, segments)
	return keys, 0, err
}

// remoteSide asks a peer over the internode transport and counts the bytes both ways.
type remoteSide struct {
	n    *Node
	peer string
}

func (r remoteSide) ask(ctx context.Context, req *pb.Envelope) (*pb.Envelope, int, error) {
	size := proto.Size(req)
	resp, err := r.n.call(ctx, r.peer, req)
	if err != nil {
		return nil, size, fmt.Errorf("%s: %w", r.peer, err)
	}
	size += proto.Size(resp)
	if e := resp.GetError(); e != nil {
		return nil, size, fmt.Errorf("%s: %w", r.peer, remoteError(e.Code, e.Message))
	}
	return resp, size, nil
}

func (r remoteSide) treeReq(p int, branches []int) *pb.Envelope {
	b := make([]int32, len(branches))
	for i, x := range branches {
		b[i] = int32(x)
	}
	return &pb.Envelope{Body: &pb.Envelope_Tree{Tree: &pb.TreeRequest{
		Partition: int32(p), Partitions: int32(len(r.n.trees.parts)), Segments: int32(r.n.trees.segments), Branches: b}}}
}

func (r remoteSide) Root(ctx context.Context, p int) (uint64, int, error) {
	req := r.treeReq(p, nil)
	req.GetTree().RootOnly = true
	resp, size, err := r.ask(ctx, req)
	if err != nil {
		return 0, size, err
	}
	tr := resp.GetTreeResp()
	if tr == nil || len(tr.Hashes) != 0 {
		return 0, size, fmt.Errorf("%w: %s answered %T to a root question", aae.ErrBadAnswer, r.peer, resp.Body)
	}
	return tr.Root, size, nil
}

func (r remoteSide) Branches(ctx context.Context, p int) (uint64, []uint64, int, error) {
	resp, size, err := r.ask(ctx, r.treeReq(p, nil))
	if err != nil {
		return 0, nil, size, err
	}
	tr := resp.GetTreeResp()
	if tr == nil {
		return 0, nil, size, fmt.Errorf("%w: %s answered %T", aae.ErrBadAnswer, r.peer, resp.Body)
	}
	return tr.Root, tr.Hashes, size, nil
}

func (r remoteSide) Segments(ctx context.Context, p int, branches []int) ([][]uint64, int, error) {
	resp, size, err := r.ask(ctx, r.treeReq(p, branches))
	if err != nil {
		return nil, size, err
	}
	tr := resp.GetTreeResp()
	_, per := r.n.trees.shape()
	if tr == nil || len(tr.Hashes) != len(tr.Segments) {
		return nil, size, fmt.Errorf("%w: %s sent a malformed segment list", aae.ErrBadAnswer, r.peer)
	}
	// Rebuild each branch's segments from the non-zero ones sent.
	out := make([][]uint64, len(branches))
	at := make(map[int]int, len(branches))
	for i, b := range branches {
		out[i] = make([]uint64, per)
		at[b] = i
	}
	for j, seg := range tr.Segments {
		i, ok := at[int(seg)/per]
		if seg < 0 || !ok || tr.Hashes[j] == 0 || out[i][int(seg)%per] != 0 {
			return nil, size, fmt.Errorf("%w: %s sent segment %d, not under a branch asked for, zero or twice", aae.ErrBadAnswer, r.peer, seg)
		}
		out[i][int(seg)%per] = tr.Hashes[j]
	}
	return out, size, nil
}

func (r remoteSide) Keys(ctx context.Context, p int, segments []int) ([]aae.KeyItem, int, error) {
	segs := make([]int32, len(segments))
	for i, s := range segments {
		segs[i] = int32(s)
	}
	resp, size, err := r.ask(ctx, &pb.Envelope{Body: &pb.Envelope_TreeKeys{TreeKeys: &pb.TreeKeysRequest{
		Partition: int32(p), Partitions: int32(len(r.n.trees.parts)), Segments: int32(r.n.trees.segments), SegmentList: segs}}})
	if err != nil {
		return nil, size, err
	}
	kr := resp.GetTreeKeysResp()
	if kr == nil {
		return nil, size, fmt.Errorf("%w: %s answered %T", aae.ErrBadAnswer, r.peer, resp.Body)
	}
	out := make([]aae.KeyItem, len(kr.Keys))
	for i, k := range kr.Keys {
		// Every key must be a valid name that lies in the partition and the segment it is
		// listed under: the repairs start only once the whole answer is checked, so a
		// corrupt list repairs nothing, not the keys sorted before its first bad entry.
		if err := r.n.validKey(k.Bucket, k.Key); err != nil {
			return nil, size, fmt.Errorf("%w: %s listed a bad key: %v", aae.ErrBadAnswer, r.peer, err)
		}
		if kp, seg := r.n.trees.locate(k.Bucket, k.Key); kp != p || seg != int(k.Segment) {
			return nil, size, fmt.Errorf("%w: %s listed %q/%q under partition %d segment %d; it lies in partition %d segment %d",
				aae.ErrBadAnswer, r.peer, k.Bucket, k.Key, p, k.Segment, kp, seg)
		}
		out[i] = aae.KeyItem{Bucket: k.Bucket, Key: k.Key, Segment: int(k.Segment), Item: k.Item}
	}
	return out, size, nil
}

// segmentKeys lists the keys this node stores in some segments of partition p.
func (n *Node) segmentKeys(p int, segments []int) ([]aae.KeyItem, error) {
	var out []aae.KeyItem
	for _, seg := range segments {
		lo, hi := n.trees.segmentRange(p, seg)
		var bad error
		err := n.store.Scan(lo, hi, func(k, v []byte) bool {
			bucket, key, ok := core.ParseDataKey(k)
			if !ok {
				bad = fmt.Errorf("malformed data key %q", k)
				return false
			}
			out = append(out, aae.KeyItem{Bucket: bucket, Key: key, Segment: seg, Item: itemOf(bucket, key, v)})
			return true
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, fmt.Errorf("keys of partition %d segment %d: %w", p, seg, err)
		}
	}
	return out, nil
}

// checkTreeShape refuses a tree question whose shape differs from this node's.
func (n *Node) checkTreeShape(p, partitions, segments int32) error {
	if int(partitions) != len(n.trees.parts) || int(segments) != n.trees.segments {
		return fmt.Errorf("%w: tree shape %d partitions × %d segments, this node has %d × %d",
			ErrBadRequest, partitions, segments, len(n.trees.parts), n.trees.segments)
	}
	if p < 0 || int(p) >= len(n.trees.parts) {
		return fmt.Errorf("%w: partition %d out of range", ErrBadRequest, p)
	}
	if !n.trees.ready.Load() {
		return fmt.Errorf("%w: hash trees are being built", ErrUnavailable)
	}
	return nil
}

func (n *Node) handleTree(r *pb.TreeRequest) *pb.Envelope {
	if err := n.checkTreeShape(r.Partition, r.Partitions, r.Segments); err != nil {
		return errorEnvelope(err)
	}
	p := int(r.Partition)
	if r.RootOnly {
		return &pb.Envelope{Body: &pb.Envelope_TreeResp{TreeResp: &pb.TreeResponse{Root: n.trees.root(p)}}}
	}
	if len(r.Branches) == 0 {
		root, br := n.trees.branches(p)
		return &pb.Envelope{Body: &pb.Envelope_TreeResp{TreeResp: &pb.TreeResponse{Root: root, Hashes: br}}}
	}
	nb, _ := n.trees.shape()
	if len(r.Branches) > nb {
		// Each branch asked for costs a segment list: a question repeating branches could
		// ask for gigabytes.
		return errorEnvelope(fmt.Errorf("%w: %d branches asked for, the tree has %d", ErrBadRequest, len(r.Branches), nb))
	}
	branches := make([]int, len(r.Branches))
	for i, b := range r.Branches {
		if b < 0 || int(b) >= nb {
			return errorEnvelope(fmt.Errorf("%w: branch %d out of range", ErrBadRequest, b))
		}
		branches[i] = int(b)
	}
	_, per := n.trees.shape()
	resp := &pb.TreeResponse{}
	for i, segs := range n.trees.branchSegments(p, branches) {
		for j, h := range segs {
			if h != 0 {
				resp.Hashes = append(resp.Hashes, h)
				resp.Segments = append(resp.Segments, int32(branches[i]*per+j))
			}
		}
	}
	return &pb.Envelope{Body: &pb.Envelope_TreeResp{TreeResp: resp}}
}

func (n *Node) handleTreeKeys(r *pb.TreeKeysRequest) *pb.Envelope {
	if err := n.checkTreeShape(r.Partition, r.Partitions, r.Segments); err != nil {
		return errorEnvelope(err)
	}
	if len(r.SegmentList) > n.trees.segments {
		return errorEnvelope(fmt.Errorf("%w: %d segments asked for", ErrBadRequest, len(r.SegmentList)))
	}
	segs := make([]int, len(r.SegmentList))
	for i, s := range r.SegmentList {
		if s < 0 || int(s) >= n.trees.segments {
			return errorEnvelope(fmt.Errorf("%w: segment %d out of range", ErrBadRequest, s))
		}
		segs[i] = int(s)
	}
	keys, err := n.segmentKeys(int(r.Partition), segs)
	if err != nil {
		return errorEnvelope(err)
	}
	out := make([]*pb.TreeKey, len(keys))
	for i, k := range keys {
		out[i] = &pb.TreeKey{Bucket: k.Bucket, Key: k.Key, Segment: int32(k.Segment), Item: k.Item}
	}
	return &pb.Envelope{Body: &pb.Envelope_TreeKeysResp{TreeKeysResp: &pb.TreeKeysResponse{Keys: out}}}
}

// ExchangeResult is one partition exchange with one peer, with its repairs.
type ExchangeResult struct {
	Partition        int    `json:"partition"`
	Peer             string `json:"peer"`
	Equal            bool   `json:"equal"`
	SegmentsCompared int    `json:"segments_compared"`
	SegmentsDiffered int    `json:"segments_differed"`
	KeysDiffered     int    `json:"keys_differed"`
	KeysRepaired     int    `json:"keys_repaired"`
	Bytes            int    `json:"bytes"`
	Error            string `json:"error,omitempty"`
	errored          bool
}

// exchange compares partition p with peer and repairs what differs.
func (n *Node) exchange(ctx context.Context, p int, peer string) ExchangeResult {
	er := ExchangeResult{Partition: p, Peer: peer}
	nb, per := n.trees.shape()
	res, err := aae.Compare(ctx, p, aae.Shape{Branches: nb, SegmentsPerBranch: per}, localSide{n}, remoteSide{n, peer})
	er.Bytes = res.Bytes
	er.Equal = res.Equal
	er.SegmentsCompared = res.BranchesDiffered * per
	er.SegmentsDiffered = res.SegmentsDiffered
	er.KeysDiffered = len(res.Keys)
	if err == nil {
		for _, k := range res.Keys {
			repaired, bytes, rerr := n.repairKey(ctx, p, peer, k.Bucket, k.Key)
			er.Bytes += bytes
			if rerr != nil {
				err = rerr
				break
			}
			if repaired {
				er.KeysRepaired++
			}
		}
	}
	m := n.metrics
	m.aaeExchanges.WithLabelValues(map[bool]string{true: "ok", false: "error"}[err == nil]).Inc()
	m.aaeSegmentsCompared.Add(float64(er.SegmentsCompared))
	m.aaeSegmentsDiffered.Add(float64(er.SegmentsDiffered))
	m.aaeKeysRepaired.Add(float64(er.KeysRepaired))
	m.aaeBytes.Add(float64(er.Bytes))
	if err != nil {
		er.Error, er.errored = err.Error(), true
	}
	return er
}

// repairKey merges this node's and peer's copies of a key and writes the merge where it
// is missing or stale. Keys whose replica set (by their bucket's n) does not hold both
// nodes are left alone. A tombstone past its bucket's gc_grace is not copied to a side that
// has no copy at all: for reads, absent and deleted are the same, and that side may have
// reaped it already.
func (n *Node) repairKey(ctx context.Context, p int, peer, bucket, key string) (bool, int, error) {
	if err := n.validKey(bucket, key); err != nil {
		return false, 0, fmt.Errorf("%w: %v", aae.ErrBadAnswer, err)
	}
	props := n.Bucket(bucket)
	rs, err := n.replicas(ctx, bucket, key)
	if err != nil {
		return false, 0, err
	}
	if !slices.Contains(rs.Primaries, n.cfg.ID) || !slices.Contains(rs.Primaries, peer) {
		return false, 0, nil
	}
	req := &pb.Envelope{Body: &pb.Envelope_Get{Get: &pb.GetRequest{Bucket: bucket, Key: key}}}
	bytes := proto.Size(req)
	resp, err := n.call(ctx, peer, req)
	if err != nil {
		return false, bytes, fmt.Errorf("fetch %s/%s from %s: %w", bucket, key, peer, err)
	}
	bytes += proto.Size(resp)
	gr := resp.GetGetResp()
	if gr == nil {
		return false, bytes, fmt.Errorf("fetch %s/%s from %s: %w", bucket, key, peer, remoteError(resp.GetError().GetCode(), resp.GetError().GetMessage()))
	}
	var remote version.Object
	if gr.Found {
		if remote, err = version.Decode(gr.Object); err != nil {
			return false, bytes, fmt.Errorf("%w: %s sent %s/%s: %v", aae.ErrBadAnswer, peer, bucket, key, err)
		}
	}
	local, err := n.loadObject(dataKey(bucket, key))
	if err != nil {
		return false, bytes, err
	}
	merged := version.Merge(local, remote)
	if props.LWW() && len(merged.Siblings) > 1 {
		merged = merged.LWW()
	}
	reapable := merged.Deleted() && core.PastGCGrace(merged, props, n.physMs())
	repaired := false
	if !merged.Equal(local) && !(reapable && local.Empty()) {
		ev := core.LocalMerge{Bucket: bucket, Key: key, Object: merged}
		if err := n.loop.do(ctx, func(*core.Core) { n.loop.step(ev) }); err != nil {
			return false, bytes, err
		}
		repaired = true
	}
	if !merged.Equal(remote) && !(reapable && remote.Empty()) {
		req := &pb.Envelope{Body: &pb.Envelope_Replicate{Replicate: &pb.ReplicateRequest{
			Bucket: bucket, Key: key, Object: merged.AppendBinary(nil)}}}
		bytes += proto.Size(req)
		resp, err := n.call(ctx, peer, req)
		if err != nil {
			return repaired, bytes, fmt.Errorf("repair %s/%s on %s: %w", bucket, key, peer, err)
		}
		bytes += proto.Size(resp)
		if resp.GetReplicateResp() == nil {
			return repaired, bytes, fmt.Errorf("repair %s/%s on %s: %w", bucket, key, peer, remoteError(resp.GetError().GetCode(), resp.GetError().GetMessage()))
		}
		repaired = true
	}
	return repaired, bytes, nil
}

// exchangePairs lists (partition, peer) pairs this node exchanges: the partitions it is a
// primary of (for the default n) and their other primaries, filtered by the arguments (-1
// and "" mean all).
func (n *Node) exchangePairs(partition int, peer string) ([]exchangePair, error) {
	r := n.Ring()
	if r == nil {
		return nil, fmt.Errorf("%w: the ring has no members yet", ErrUnavailable)
	}
	if partition >= r.Partitions() {
		return nil, fmt.Errorf("%w: partition %d out of range 0..%d", ErrBadRequest, partition, r.Partitions()-1)
	}
	if peer != "" && !r.Has(ringID(peer)) {
		return nil, fmt.Errorf("%w: %s is not a member", ErrBadRequest, peer)
	}
	nrep := DefaultBucketProps().N
	var out []exchangePair
	for p := 0; p < r.Partitions(); p++ {
		if partition >= 0 && p != partition {
			continue
		}
		prefs := r.Preference(p, nrep)
		if !slices.Contains(prefs, ringID(n.cfg.ID)) {
			continue
		}
		for _, id := range prefs {
			if string(id) == n.cfg.ID || (peer != "" && string(id) != peer) {
				continue
			}
			out = append(out, exchangePair{p, string(id)})
		}
	}
	return out, nil
}

type exchangePair struct {
	partition int
	peer      string
}

// aaeLoop runs one exchange every AAEInterval, rotating through the pairs.
func (n *Node) aaeLoop() {
	defer n.bg.Done()
	next := 0
	for sleepCtx(n.ctx, n.cfg.AAEInterval) {
		if !n.trees.ready.Load() {
			continue
		}
		pairs, err := n.exchangePairs(-1, "")
		if err != nil || len(pairs) == 0 {
			continue
		}
		// Skip peers the failure detector sees down; try the next pair instead.
		for tries := 0; tries < len(pairs); tries++ {
			pr := pairs[next%len(pairs)]
			next++
			if !n.alive(pr.peer) {
				continue
			}
			n.repairMu.Lock()
			er := n.exchange(n.ctx, pr.partition, pr.peer)
			n.repairMu.Unlock()
			if er.errored && n.ctx.Err() == nil {
				n.log.Warn("anti-entropy exchange failed", "partition", pr.partition, "peer", pr.peer, "err", er.Error)
			} else if er.KeysRepaired > 0 {
				n.log.Info("anti-entropy repaired keys", "partition", pr.partition, "peer", pr.peer,
					"segments_differed", er.SegmentsDiffered, "keys_repaired", er.KeysRepaired, "bytes", er.Bytes)
			}
			n.throttleAAE(er.Bytes)
			break
		}
	}
}

func (n *Node) throttleAAE(bytes int) {
	if n.cfg.AAERate <= 0 || bytes <= 0 {
		return
	}
	sleepCtx(n.ctx, time.Duration(float64(bytes)/float64(n.cfg.AAERate)*float64(time.Second)))
}

// RepairSummary is the answer of POST /v1/admin/repair.
type RepairSummary struct {
	Exchanges          int              `json:"exchanges"`
	PartitionsCompared int              `json:"partitions_compared"`
	PartitionsDiffered int              `json:"partitions_differed"`
	SegmentsCompared   int              `json:"segments_compared"`
	SegmentsDiffered   int              `json:"segments_differed"`
	KeysRepaired       int              `json:"keys_repaired"`
	BytesSent          int              `json:"bytes_sent"`
	Errors             int              `json:"errors"`
	ElapsedS           float64          `json:"elapsed_s"`
	FailedExchanges    []ExchangeResult `json:"failed_exchanges,omitempty"`
}

// RepairProgress reports an on-demand repair's progress.
type RepairProgress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// Repair runs anti-entropy now: every exchange of this node's partitions with their other
// primaries, or only those of one partition (partition >= 0) or with one peer (peer != "").
// progress, when set, is called after each exchange.
func (n *Node) Repair(ctx context.Context, partition int, peer string, progress func(RepairProgress)) (RepairSummary, error) {
	start := time.Now()
	var sum RepairSummary
	if n.cfg.NoAAE {
		return sum, fmt.Errorf("%w: anti-entropy is off on this node (--no-aae)", ErrUnavailable)
	}
	if !n.trees.ready.Load() {
		return sum, fmt.Errorf("%w: hash trees are being built (started %s ago)", ErrUnavailable, time.Since(start))
	}
	pairs, err := n.exchangePairs(partition, peer)
	if err != nil {
		return sum, err
	}
	n.repairMu.Lock()
	defer n.repairMu.Unlock()
	compared := map[int]bool{}
	differed := map[int]bool{}
	for i, pr := range pairs {
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		er := n.exchange(ctx, pr.partition, pr.peer)
		sum.Exchanges++
		compared[pr.partition] = true
		if !er.Equal {
			differed[pr.partition] = true
		}
		sum.SegmentsCompared += er.SegmentsCompared
		sum.SegmentsDiffered += er.SegmentsDiffered
		sum.KeysRepaired += er.KeysRepaired
		sum.BytesSent += er.Bytes
		if er.errored {
			sum.Errors++
			if len(sum.FailedExchanges) < 20 {
				sum.FailedExchanges = append(sum.FailedExchanges, er)
			}
		}
		if progress != nil {
			progress(RepairProgress{Done: i + 1, Total: len(pairs)})
		}
	}
	sum.PartitionsCompared = len(compared)
	sum.PartitionsDiffered = len(differed)
	sum.ElapsedS = time.Since(start).Seconds()
	n.log.Info("anti-entropy repair run", "exchanges", sum.Exchanges, "keys_repaired", sum.KeysRepaired,
		"segments_differed", sum.SegmentsDiffered, "bytes", sum.BytesSent, "errors", sum.Errors)
	return sum, nil
}

// PartitionRoot is one partition's tree root.
type PartitionRoot struct {
	Partition int    `json:"partition"`
	Root      string `json:"root"`
}

// AAEInfo is GET /v1/admin/aae.
type AAEInfo struct {
	Node            string          `json:"node"`
	Ready           bool            `json:"ready"`
	RebuildProgress float64         `json:"rebuild_progress"`
	Rebuilds        int64           `json:"rebuilds"`
	Segments        int             `json:"segments"`
	TreeBytes       int             `json:"tree_bytes"`
	Roots           []PartitionRoot `json:"roots"`
}

// AAE describes this node's hash trees: the root of every partition holding data.
func (n *Node) AAE() AAEInfo {
	ts := n.trees
	info := AAEInfo{Node: n.cfg.ID, Ready: ts.ready.Load(), RebuildProgress: float64(ts.progress.Load()) / 1e6,
		Rebuilds: ts.rebuilds.Load(), Segments: ts.segments, TreeBytes: ts.memoryBytes(), Roots: []PartitionRoot{}}
	for p := range ts.parts {
		if r := ts.root(p); r != 0 {
			info.Roots = append(info.Roots, PartitionRoot{Partition: p, Root: fmt.Sprintf("%016x", r)})
		}
	}
	return info
}
