package node

import (
	"context"
	"fmt"
	"github.com/quorumkv/quorumkv/internal/merkle"
	"github.com/quorumkv/quorumkv/internal/ring"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// In-process tests of anti-entropy (issue 4) that need the node's insides: byte counts of
// exchanges over 100,000 keys (written straight into the stores through writeRaw, the one
// path that stores data and updates the trees, which takes well under a second where HTTP
// writes take a minute on two cores), and peers answering exchanges with corrupt messages.

// startNodes starts size in-process nodes (no HTTP, 1, 3 and 2 loops) whose scheduled
// exchanges and reaping never run during a test, and waits until each sees every member alive and has its trees.
func startNodes(t *testing.T, size int) []*Node {
	t.Helper()
	var nodes []*Node
	seed := ""
	for i := 1; i <= size; i++ {
		n := startNode(t, i, seed)
		if seed == "" {
			seed = n.GossipAddr()
		}
		nodes = append(nodes, n)
	}
	waitUntil(t, 20*time.Second, "every node to see every member alive with its trees built", func() bool {
		for _, n := range nodes {
			if !n.treeInfo(false).Ready || n.Ring() == nil || len(n.Ring().Members()) != size {
				return false
			}
			for _, m := range n.Members() {
				if !n.alive(m.ID) {
					return false
				}
			}
		}
		return true
	})
	return nodes
}

// startNode starts node n<i> (no HTTP; 1, 3 or 2 loops by i) joining seed ("": none).
func startNode(t *testing.T, i int, seed string) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID = fmt.Sprintf("n%d", i)
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr, cfg.RPCAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.RequestTimeout = 5 * time.Second
	cfg.AAEInterval, cfg.ReapInterval = time.Hour, time.Hour
	cfg.CleanupDelay = time.Second
	// Shard counts differ between nodes (and from the machine's CPUs): a tree exchange, a
	// handoff or a transfer must not depend on how the other side shards.
	cfg.Loops = []int{1, 3, 2}[(i-1)%3]
	if os.Getenv("QKV_DEBUG_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if seed != "" {
		cfg.Join = []string{seed}
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// storeObject writes obj as n's copy of bucket/key, as a replica write would.
func storeObject(t *testing.T, n *Node, bucket, key string, obj version.Object) []byte {
	t.Helper()
	var enc []byte
	if !obj.Empty() {
		enc = obj.AppendBinary(nil)
	}
	if err := n.writeRaw(bucket, key, enc); err != nil {
		t.Fatal(err)
	}
	return enc
}

func rawCopy(t *testing.T, n *Node, bucket, key string) string {
	t.Helper()
	_, raw, err := n.loadObjectRaw(dataKey(bucket, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func sibling(actor string, counter uint64, value string) version.Sibling {
	return version.Sibling{Dot: version.Dot{Actor: actor, Counter: counter}, Value: []byte(value),
		Timestamp: version.HLC{Wall: time.Now().UnixMilli()}}
}

// rootAnswerBound is the most a root-only question of partition p and its answer can
// cost: the request as the core sizes it (before the transport numbers it) and an
// answer carrying the largest id and a full root.
func rootAnswerBound(n *Node, p int) (req, answer int) {
	r := &pb.Envelope{Body: &pb.Envelope_Tree{Tree: &pb.TreeRequest{Partition: int32(p), Partitions: int32(n.cfg.Partitions),
		Segments: int32(n.cfg.AAESegments), RootOnly: true, N: 3}}}
	resp := &pb.Envelope{Id: math.MaxUint64, Body: &pb.Envelope_TreeResp{TreeResp: &pb.TreeResponse{Root: math.MaxUint64}}}
	return proto.Size(r), proto.Size(resp)
}

// TestExchangeBytesGrowWithDivergenceNotData: two replicas of 100,000 keys, 10 of them
// divergent (newer on one side, newer on the other, or missing on one): one repair round
// repairs exactly those 10 and sends under 1% of the bytes the data occupies; a second
// round, with nothing divergent, sends root questions and answers only.
func TestExchangeBytesGrowWithDivergenceNotData(t *testing.T) {
	const keys, divergent = 100_000, 10
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	ctx := context.Background()

	start := time.Now()
	dataBytes := 0
	objs := make([]version.Object, divergent)
	value := make([]byte, 40) // a small value: the data is mostly keys, versions and hashes
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("key-%06d", i)
		copy(value, fmt.Sprintf("value-%06d-", i))
		obj := version.Object{}.Update(nil, version.Sibling{Dot: version.Dot{Actor: "w.1", Counter: uint64(i + 1)},
			Value: value, Timestamp: version.HLC{Wall: 1_700_000_000_000 + int64(i)}})
		enc := storeObject(t, n1, "b", key, obj)
		storeObject(t, n2, "b", key, obj)
		dataBytes += len(enc) + len(key)
		if i < divergent {
			objs[i] = obj
		}
	}
	t.Logf("wrote %d keys on both replicas in %v: %d bytes of data (objects + keys)", keys, time.Since(start), dataBytes)

	// Divergence: 4 keys newer on n1, 3 newer on n2, 3 missing on n2.
	for i := 0; i < divergent; i++ {
		key := fmt.Sprintf("key-%06d", i)
		switch {
		case i < 4:
			storeObject(t, n1, "b", key, objs[i].Update(objs[i].Clock, sibling("w.1", uint64(keys+i+1), "newer on n1")))
		case i < 7:
			storeObject(t, n2, "b", key, objs[i].Update(objs[i].Clock, sibling("w.1", uint64(keys+i+1), "newer on n2")))
		default:
			storeObject(t, n2, "b", key, version.Object{})
		}
	}

	sum, err := n1.Repair(ctx, -1, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repair with %d of %d keys divergent: %+v; %d bytes sent = %.3f%% of the data", divergent, keys, sum,
		sum.BytesSent, 100*float64(sum.BytesSent)/float64(dataBytes))
	parts := n1.Ring().Partitions()
	if sum.Errors != 0 || sum.Exchanges != parts || sum.KeysRepaired != divergent {
		t.Fatalf("repair summary %+v: want %d exchanges, no errors and %d keys repaired", sum, parts, divergent)
	}
	if sum.BytesSent*100 >= dataBytes {
		t.Fatalf("the exchange sent %d bytes for %d divergent keys: not under 1%% of the %d bytes of data", sum.BytesSent, divergent, dataBytes)
	}
	for i := 0; i < divergent; i++ {
		key := fmt.Sprintf("key-%06d", i)
		a, b := rawCopy(t, n1, "b", key), rawCopy(t, n2, "b", key)
		if a != b || a == "" {
			t.Fatalf("%s after the repair: n1 holds %d bytes, n2 %d", key, len(a), len(b))
		}
		obj, _ := version.Decode([]byte(a))
		want := "newer on n1"
		if i >= 4 {
			want = "newer on n2"
		}
		if i >= 7 {
			want = fmt.Sprintf("value-%06d-", i)
		}
		if live := obj.Live(); len(live) != 1 || string(live[0].Value[:len(want)]) != want {
			t.Fatalf("%s after the repair: %v, want %q", key, obj, want)
		}
	}
	for p := 0; p < parts; p++ {
		if a, b := rootOf(n1, p), rootOf(n2, p); a != b {
			t.Fatalf("partition %d roots after the repair: %016x and %016x", p, a, b)
		}
	}

	// Nothing divergent: only root questions and answers travel.
	again, err := n1.Repair(ctx, -1, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	low, high := 0, 0
	for p := 0; p < parts; p++ {
		req, answer := rootAnswerBound(n1, p)
		low += req
		high += req + answer
	}
	t.Logf("repair with nothing divergent: %d exchanges, %d bytes (%.1f per exchange; roots alone: %d..%d)",
		again.Exchanges, again.BytesSent, float64(again.BytesSent)/float64(again.Exchanges), low, high)
	if again.Errors != 0 || again.Exchanges != parts || again.PartitionsDiffered != 0 || again.SegmentsCompared != 0 || again.KeysRepaired != 0 {
		t.Fatalf("second repair: %+v, want %d equal exchanges", again, parts)
	}
	if again.BytesSent < low || again.BytesSent > high || again.BytesSent > 64*again.Exchanges {
		t.Fatalf("second repair sent %d bytes over %d exchanges: want root questions and answers only, %d..%d bytes",
			again.BytesSent, again.Exchanges, low, high)
	}
}

// corrupter is a fake n2: it serves n2's internode address, answering every request with
// n2's own answer, except that it corrupts the tree answers of the current mode.
type corrupter struct {
	n2    *Node
	mode  atomic.Value // string
	calls atomic.Int64
	// other is a key of another partition, for answers that name keys of the wrong one.
	other struct {
		Bucket, Key string
		Item        uint64
	}
}

func (c *corrupter) Handle(ctx context.Context, from string, req *pb.Envelope) *pb.Envelope {
	c.calls.Add(1)
	resp := c.n2.Handle(ctx, from, req)
	mode, _ := c.mode.Load().(string)
	tree := req.GetTree()
	switch {
	case tree != nil && tree.RootOnly:
		switch mode {
		case "root answered with hashes":
			resp.GetTreeResp().Hashes = []uint64{1}
		case "root answered with a read":
			resp = &pb.Envelope{Id: resp.Id, Body: &pb.Envelope_GetResp{GetResp: &pb.GetResponse{}}}
		case "root answered with no body":
			resp = &pb.Envelope{Id: resp.Id}
		}
	case tree != nil && len(tree.Branches) == 0:
		tr := resp.GetTreeResp()
		switch mode {
		case "branches truncated":
			tr.Hashes = tr.Hashes[:len(tr.Hashes)-1]
		case "branches not adding up to the root":
			tr.Hashes[0] ^= 1
		case "branches too many":
			tr.Hashes = append(tr.Hashes, 0)
		}
	case tree != nil:
		tr := resp.GetTreeResp()
		switch mode {
		case "segments truncated":
			tr.Hashes = tr.Hashes[:len(tr.Hashes)-1]
		case "segments empty":
			tr.Hashes = nil
		case "segment outside the branches asked for":
			_, per := shapeOf(c.n2)
			tr.Segments[0] = (tr.Segments[0] + int32(per)) % int32(c.n2.cfg.AAESegments)
		case "zero segment hash":
			tr.Hashes[0] = 0
		case "segment sent twice":
			tr.Hashes = append(tr.Hashes, tr.Hashes[0])
			tr.Segments = append(tr.Segments, tr.Segments[0])
		}
	case req.GetTreeKeys() != nil:
		kr := resp.GetTreeKeysResp()
		asked := req.GetTreeKeys().SegmentList
		switch mode {
		case "keys of a segment not asked for":
			// A key of this partition, listed under its own segment, which was not asked for.
			for i := 0; ; i++ {
				key := fmt.Sprintf("stray%d", i)
				kp, seg := locate(c.n2, "b", key)
				if kp == int(req.GetTreeKeys().Partition) && !slices.Contains(asked, int32(seg)) {
					kr.Keys = append(kr.Keys, &pb.TreeKey{Bucket: "b", Key: key, Segment: int32(seg), Item: 7})
					break
				}
			}
		case "keys listed twice":
			kr.Keys = append(kr.Keys, kr.Keys...)
		case "keys with a zero item hash":
			kr.Keys[0].Item = 0
		case "keys with an empty name":
			kr.Keys = append(kr.Keys, &pb.TreeKey{Bucket: "b", Segment: asked[0], Item: 7})
		case "keys with a bad bucket":
			kr.Keys = append(kr.Keys, &pb.TreeKey{Bucket: "b\x00x", Key: "k", Segment: asked[0], Item: 7})
		case "keys of another partition":
			kr.Keys = append(kr.Keys, &pb.TreeKey{Bucket: c.other.Bucket, Key: c.other.Key, Segment: asked[0], Item: c.other.Item})
		}
	}
	return resp
}

// TestCorruptExchangeAnswersChangeNothing: a peer whose tree answers are malformed
// (wrong body, wrong lengths, hashes that do not add up, keys outside the segments asked
// for or outside the partition, duplicates, zero hashes, bad names) fails the exchange
// with an error and nothing is repaired on either side; the same peer answering honestly
// gets the divergence repaired, so the refusals were the checks' doing.
func TestCorruptExchangeAnswersChangeNothing(t *testing.T) {
	nodes := startNodes(t, 2)
	n1, n2 := nodes[0], nodes[1]
	ctx := context.Background()

	// Replace n2's internode server by the corrupter at the same address.
	addr := n2.RPCAddr()
	_ = n2.tr.Close()
	c := &corrupter{n2: n2}
	cfg := transport.DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Handler = "n2", addr, c
	cfg.Resolve = func(string) (string, bool) { return n1.RPCAddr(), true }
	var evil *transport.Transport
	waitUntil(t, 5*time.Second, "listening again on "+addr, func() bool {
		var err error
		evil, err = transport.Listen(cfg)
		return err == nil
	})
	t.Cleanup(func() { _ = evil.Close() })

	// One divergent key per direction, in one partition; another key elsewhere.
	var a, b string
	p := -1
	for i := 0; a == "" || b == ""; i++ {
		key := fmt.Sprintf("k%d", i)
		kp, _ := locate(n1, "b", key)
		switch {
		case p < 0:
			p, a = kp, key
		case kp == p:
			b = key
		case c.other.Key == "":
			c.other.Bucket, c.other.Key, c.other.Item = "b", key, 7
		}
	}
	base := version.Object{}.Update(nil, sibling("w.1", 1, "v1"))
	storeObject(t, n1, "b", a, base)
	storeObject(t, n2, "b", a, base)
	storeObject(t, n1, "b", a, base.Update(base.Clock, sibling("w.1", 2, "v2 on n1")))
	storeObject(t, n2, "b", b, version.Object{}.Update(nil, sibling("w.2", 1, "only on n2")))
	other := version.Object{}.Update(nil, sibling("w.3", 1, "other on n1"))
	storeObject(t, n1, "b", c.other.Key, other)
	before := map[string][2]string{}
	for _, k := range []string{a, b, c.other.Key} {
		before[k] = [2]string{rawCopy(t, n1, "b", k), rawCopy(t, n2, "b", k)}
	}

	for _, mode := range []string{
		"root answered with hashes", "root answered with a read", "root answered with no body",
		"branches truncated", "branches not adding up to the root", "branches too many",
		"segments truncated", "segments empty",
		"segment outside the branches asked for", "zero segment hash", "segment sent twice",
		"keys of a segment not asked for", "keys listed twice", "keys with a zero item hash",
		"keys with an empty name", "keys with a bad bucket", "keys of another partition",
	} {
		c.mode.Store(mode)
		calls := c.calls.Load()
		sum, err := n1.Repair(ctx, p, "n2", nil)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if c.calls.Load() == calls {
			t.Fatalf("%s: the exchange never reached the fake peer", mode)
		}
		if sum.Errors != 1 || sum.KeysRepaired != 0 || len(sum.FailedExchanges) != 1 {
			t.Errorf("%s: summary %+v, want one failed exchange and nothing repaired", mode, sum)
			continue
		}
		t.Logf("%s: %s", mode, sum.FailedExchanges[0].Error)
		for k, want := range before {
			if got := [2]string{rawCopy(t, n1, "b", k), rawCopy(t, n2, "b", k)}; got != want {
				t.Fatalf("%s: the copies of %s changed", mode, k)
			}
		}
	}

	c.mode.Store("")
	sum, err := n1.Repair(ctx, p, "n2", nil)
	if err != nil || sum.Errors != 0 || sum.KeysRepaired != 2 {
		t.Fatalf("honest exchange: %+v %v, want 2 keys repaired", sum, err)
	}
	for _, k := range []string{a, b} {
		if x, y := rawCopy(t, n1, "b", k), rawCopy(t, n2, "b", k); x != y {
			t.Fatalf("%s after an honest exchange differs", k)
		}
	}
	if got := rawCopy(t, n2, "b", c.other.Key); got != "" {
		t.Fatalf("the key of another partition reached n2 through an exchange of partition %d", p)
	}
}

// TestBadTreeRequests: tree questions of the wrong shape or out of range are refused as
// bad requests, over the wire, and change nothing.
func TestBadTreeRequests(t *testing.T) {
	nodes := startNodes(t, 2)
	n1 := nodes[0]
	storeObject(t, n1, "b", "k", version.Object{}.Update(nil, sibling("w.1", 1, "v")))
	rootBefore := map[int]uint64{}
	for p := range n1.cfg.Partitions {
		rootBefore[p] = rootOf(n1, p)
	}

	cfg := transport.DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Handler = "evil", "127.0.0.1:0", noHandler{}
	cfg.Resolve = func(string) (string, bool) { return n1.RPCAddr(), true }
	evil, err := transport.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()

	parts, segs := int32(n1.cfg.Partitions), int32(n1.cfg.AAESegments)
	nb, _ := shapeOf(n1)
	tree := func(r *pb.TreeRequest) *pb.Envelope { return &pb.Envelope{Body: &pb.Envelope_Tree{Tree: r}} }
	keys := func(r *pb.TreeKeysRequest) *pb.Envelope {
		return &pb.Envelope{Body: &pb.Envelope_TreeKeys{TreeKeys: r}}
	}
	tooMany := make([]int32, nb+1)
	tooManySegs := make([]int32, segs+1)
	for _, tc := range []struct {
		name string
		req  *pb.Envelope
	}{
		{"tree of another partition count", tree(&pb.TreeRequest{Partition: 0, Partitions: parts / 2, Segments: segs})},
		{"tree of another segment count", tree(&pb.TreeRequest{Partition: 0, Partitions: parts, Segments: segs * 2})},
		{"tree with no shape", tree(&pb.TreeRequest{RootOnly: true})},
		{"tree of a negative partition", tree(&pb.TreeRequest{Partition: -1, Partitions: parts, Segments: segs, RootOnly: true})},
		{"tree of a partition past the last", tree(&pb.TreeRequest{Partition: parts, Partitions: parts, Segments: segs})},
		{"tree of a negative branch", tree(&pb.TreeRequest{Partition: 1, Partitions: parts, Segments: segs, Branches: []int32{0, -1}})},
		{"tree of a branch past the last", tree(&pb.TreeRequest{Partition: 1, Partitions: parts, Segments: segs, Branches: []int32{int32(nb)}})},
		{"tree of more branches than there are", tree(&pb.TreeRequest{Partition: 1, Partitions: parts, Segments: segs, Branches: tooMany})},
		{"keys of another shape", keys(&pb.TreeKeysRequest{Partition: 0, Partitions: parts, Segments: segs / 2, SegmentList: []int32{0}})},
		{"keys of a negative partition", keys(&pb.TreeKeysRequest{Partition: -1, Partitions: parts, Segments: segs, SegmentList: []int32{0}})},
		{"keys of a partition past the last", keys(&pb.TreeKeysRequest{Partition: parts, Partitions: parts, Segments: segs, SegmentList: []int32{0}})},
		{"keys of a negative segment", keys(&pb.TreeKeysRequest{Partition: 0, Partitions: parts, Segments: segs, SegmentList: []int32{-1}})},
		{"keys of a segment past the last", keys(&pb.TreeKeysRequest{Partition: 0, Partitions: parts, Segments: segs, SegmentList: []int32{segs}})},
		{"keys of more segments than there are", keys(&pb.TreeKeysRequest{Partition: 0, Partitions: parts, Segments: segs, SegmentList: tooManySegs})},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan *pb.Envelope, 1)
		evil.Call(ctx, "n1", tc.req, func(e *pb.Envelope, err error) {
			if err != nil {
				t.Errorf("%s: transport error %v", tc.name, err)
			}
			done <- e
		})
		resp := <-done
		cancel()
		if resp.GetError() == nil || resp.GetError().Code != "bad_request" {
			t.Errorf("%s: answer %T (error %v), want an error with code bad_request", tc.name, resp.GetBody(), resp.GetError())
		}
	}
	for p, r := range rootBefore {
		if rootOf(n1, p) != r {
			t.Fatalf("partition %d's root changed", p)
		}
	}
	if got := rawCopy(t, n1, "b", "k"); got == "" {
		t.Fatalf("the key is gone")
	}
}

type noHandler struct{}

func (noHandler) Handle(context.Context, string, *pb.Envelope) *pb.Envelope { return nil }

// rootOf is the root of partition p's tree for buckets of the default n on node n.
func rootOf(n *Node, p int) uint64 {
	for _, r := range n.treeInfo(true).Roots {
		if r.Partition == p && r.N == DefaultBucketProps().N {
			return r.Root
		}
	}
	return 0
}

// shapeOf is the shape of node n's trees.
func shapeOf(n *Node) (branches, perBranch int) {
	t, err := merkle.New(n.cfg.AAESegments)
	if err != nil {
		panic(err)
	}
	return t.Branches(), t.SegmentsPerBranch()
}

// locate gives a key's partition and tree segment on node n.
func locate(n *Node, bucket, key string) (int, int) {
	h := ring.KeyHash(bucket, key)
	pbits := bits.TrailingZeros(uint(n.cfg.Partitions))
	return int(h >> (64 - uint(pbits))), merkle.SegmentOf(h, pbits, n.cfg.AAESegments)
}
