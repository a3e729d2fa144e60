package aae

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/merkle"
)

const part = 7

func item(bucket, key string, version int) uint64 {
	return merkle.ItemHash(bucket, key, uint64(version))
}

// replicas returns two identical replicas of n keys over segments segments.
func replicas(n, segments int) (local, remote *memSide) {
	local = newMemSide(part, segments)
	for i := range n {
		b, k := bucketKey(i)
		local.put(b, k, item(b, k, 1))
	}
	return local, local.clone()
}

func bucketKey(i int) (string, string) {
	return []string{"users", "orders", "sessions"}[i%3], fmt.Sprintf("key-%07d", i)
}

// diverge makes k keys differ, in turn: missing on the remote, a different version on the
// remote, and a key the local side lacks. The first k of a fixed sequence, so a larger k
// is a superset of a smaller one's divergence.
func diverge(local, remote *memSide, n, k int) {
	for j := range k {
		i := (j * 7919) % n // spread over the key space
		b, key := bucketKey(i)
		switch j % 3 {
		case 0:
			remote.put(b, key, 0)
		case 1:
			remote.put(b, key, item(b, key, 2))
		case 2:
			b, key = "extra", fmt.Sprintf("new-%d", j)
			remote.put(b, key, item(b, key, 1))
		}
	}
}

func compare(t *testing.T, local, remote Side, shape Shape) Result {
	t.Helper()
	res, err := Compare(context.Background(), part, shape, local, remote)
	if err != nil {
		t.Fatalf("Compare: %v", err)
	}
	if res.Partition != part {
		t.Fatalf("result for partition %d", res.Partition)
	}
	return res
}

func checkResult(t *testing.T, res Result, local, remote *memSide) {
	t.Helper()
	keys, segments, branches, bytes := expect(local, remote)
	if !slices.Equal(res.Keys, keys) {
		t.Fatalf("keys:\n got %v\nwant %v", res.Keys, keys)
	}
	if res.Equal != (len(keys) == 0) {
		t.Errorf("Equal = %v with %d differing keys", res.Equal, len(keys))
	}
	if res.SegmentsDiffered != len(segments) || res.BranchesDiffered != len(branches) {
		t.Errorf("%d branches and %d segments differed, want %d and %d", res.BranchesDiffered, res.SegmentsDiffered, len(branches), len(segments))
	}
	if res.Bytes != bytes {
		t.Errorf("%d bytes, want %d", res.Bytes, bytes)
	}
}

func TestEqualReplicasExchangeOnlyBranches(t *testing.T) {
	for _, tc := range []struct{ keys, segments int }{
		{0, merkle.MinSegments},
		{1000, merkle.MinSegments},
		{5000, merkle.DefaultSegments},
		{100, 1 << 17},
	} {
		local, remote := replicas(tc.keys, tc.segments)
		res := compare(t, local, remote, local.shape())
		if !res.Equal || res.Keys != nil || res.BranchesDiffered != 0 || res.SegmentsDiffered != 0 {
			t.Errorf("%d keys: %+v, want equal", tc.keys, res)
		}
		// The root from each side, nothing more.
		if want := 2 * (reqBytes + hashBytes); res.Bytes != want {
			t.Errorf("%d keys, %d segments: %d bytes, want %d", tc.keys, tc.segments, res.Bytes, want)
		}
		if local.calls != 1 || remote.calls != 1 {
			t.Errorf("%d and %d requests, want one each", local.calls, remote.calls)
		}
	}
	// Whatever the tree size, 2 × (16 + 8) = 48 bytes.
	local, remote := replicas(10, merkle.DefaultSegments)
	if res := compare(t, local, remote, local.shape()); res.Bytes != 48 {
		t.Errorf("equal 2^16-segment trees: %d bytes, want 48", res.Bytes)
	}
}

func TestDivergentKeysReportedExactly(t *testing.T) {
	for _, k := range []int{1, 2, 3, 10, 100, 1000} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			const n = 20_000
			local, remote := replicas(n, merkle.MinSegments<<2)
			diverge(local, remote, n, k)
			res := compare(t, local, remote, local.shape())
			if len(res.Keys) != k {
				t.Fatalf("%d keys reported, want %d", len(res.Keys), k)
			}
			if !slices.IsSortedFunc(res.Keys, cmpKeyRef) {
				t.Error("keys not sorted")
			}
			checkResult(t, res, local, remote)
			for _, kr := range res.Keys {
				if kr.LocalItem != local.get(kr.Bucket, kr.Key) || kr.RemoteItem != remote.get(kr.Bucket, kr.Key) {
					t.Errorf("%s/%s: items %x/%x, sides hold %x/%x", kr.Bucket, kr.Key, kr.LocalItem, kr.RemoteItem,
						local.get(kr.Bucket, kr.Key), remote.get(kr.Bucket, kr.Key))
				}
			}
			// Swapping the sides swaps the items.
			rev := compare(t, remote, local, local.shape())
			if len(rev.Keys) != k || rev.Bytes != res.Bytes {
				t.Fatalf("reversed: %d keys, %d bytes", len(rev.Keys), rev.Bytes)
			}
			for i, kr := range rev.Keys {
				if kr.LocalItem != res.Keys[i].RemoteItem || kr.RemoteItem != res.Keys[i].LocalItem {
					t.Fatalf("reversed key %d: %+v vs %+v", i, kr, res.Keys[i])
				}
			}
		})
	}
}

func TestDivergenceKinds(t *testing.T) {
	local, remote := replicas(100, merkle.MinSegments)
	local.put("b", "only-local", item("b", "only-local", 1))
	remote.put("b", "only-remote", item("b", "only-remote", 1))
	local.put("a", "both", item("a", "both", 1))
	remote.put("a", "both", item("a", "both", 2))
	b0, k0 := bucketKey(0)
	remote.put(b0, k0, 0) // deleted on the remote
	res := compare(t, local, remote, local.shape())
	want := []KeyRef{
		{Bucket: "a", Key: "both", LocalItem: item("a", "both", 1), RemoteItem: item("a", "both", 2)},
		{Bucket: "b", Key: "only-local", LocalItem: item("b", "only-local", 1)},
		{Bucket: "b", Key: "only-remote", RemoteItem: item("b", "only-remote", 1)},
		{Bucket: b0, Key: k0, LocalItem: item(b0, k0, 1)},
	}
	if !slices.Equal(res.Keys, want) {
		t.Fatalf("keys:\n got %v\nwant %v", res.Keys, want)
	}
	checkResult(t, res, local, remote)
}

// Differences that cancel out in the root (one key per side, equal item hashes) end the
// exchange at the root: that is the price of sending only roots between equal replicas,
// and with real 64-bit item hashes such a collision has probability 2^-64 per exchange.
func TestRootCollisionIsTheAcceptedRisk(t *testing.T) {
	local, remote := replicas(0, merkle.MinSegments) // 16 branches of 16
	local.putIn(3, "b", "x", 0xfeed)
	remote.putIn(40, "b", "y", 0xfeed)
	if local.tree.Root() != remote.tree.Root() {
		t.Fatal("roots should collide")
	}
	res := compare(t, local, remote, local.shape())
	if !res.Equal || res.Bytes != 2*(reqBytes+hashBytes) {
		t.Fatalf("%+v, want equal after comparing roots only", res)
	}
}

// The acceptance figure: 100,000 keys, 10 divergent, the exchange sends < 1% of the bytes the
// data occupies (modelled as bucket + key + 100 bytes of object per key). Deterministic:
// fixed keys, fixed divergence, a byte model.
func TestBytesProportionalToDivergence(t *testing.T) {
	const n = 100_000
	base, _ := replicas(n, merkle.DefaultSegments)
	dataBytes := 0
	for i := range n {
		b, k := bucketKey(i)
		dataBytes += len(b) + len(k) + 100
	}
	prev := 0
	for _, k := range []int{0, 1, 10, 100, 1000} {
		local, remote := base.clone(), base.clone()
		diverge(local, remote, n, k)
		res := compare(t, local, remote, local.shape())
		checkResult(t, res, local, remote)
		if len(res.Keys) != k {
			t.Fatalf("k=%d: %d keys found", k, len(res.Keys))
		}
		if res.Bytes < prev {
			t.Errorf("k=%d: %d bytes, fewer than with less divergence (%d)", k, res.Bytes, prev)
		}
		prev = res.Bytes
		pct := 100 * float64(res.Bytes) / float64(dataBytes)
		t.Logf("%d divergent of %d: %d bytes on the wire = %.3f%% of %d data bytes (%d branches, %d segments differed)",
			k, n, res.Bytes, pct, dataBytes, res.BranchesDiffered, res.SegmentsDiffered)
		if k == 10 && res.Bytes*100 >= dataBytes {
			t.Errorf("10 divergent keys cost %d bytes, not under 1%% of %d", res.Bytes, dataBytes)
		}
	}
}

func TestShapeMismatch(t *testing.T) {
	local, remote := replicas(10, merkle.MinSegments)
	diverge(local, remote, 10, 1) // shapes are checked once roots differ
	_, err := Compare(context.Background(), part, Shape{Branches: 32, SegmentsPerBranch: 8}, local, remote)
	if !errors.Is(err, ErrBadAnswer) {
		t.Errorf("shape mismatch: %v, want ErrBadAnswer", err)
	}
	big := newMemSide(part, merkle.MinSegments<<2)
	big.putIn(0, "b", "only-here", 7)
	if _, err := Compare(context.Background(), part, local.shape(), local, big); !errors.Is(err, ErrBadAnswer) {
		t.Errorf("trees of different sizes: %v, want ErrBadAnswer", err)
	}
}

// faulty wraps a Side and corrupts its answers.
type faulty struct {
	Side
	branches func(root uint64, br []uint64) (uint64, []uint64)
	segments func(segs [][]uint64) [][]uint64
	keys     func(keys []KeyItem, segments []int) []KeyItem
	err      [3]error // errors returned by Branches, Segments, Keys
}

func (f *faulty) Branches(ctx context.Context, p int) (uint64, []uint64, int, error) {
	if f.err[0] != nil {
		return 0, nil, 0, f.err[0]
	}
	root, br, n, err := f.Side.Branches(ctx, p)
	if err == nil && f.branches != nil {
		root, br = f.branches(root, br)
	}
	return root, br, n, err
}

func (f *faulty) Segments(ctx context.Context, p int, branches []int) ([][]uint64, int, error) {
	if f.err[1] != nil {
		return nil, 0, f.err[1]
	}
	segs, n, err := f.Side.Segments(ctx, p, branches)
	if err == nil && f.segments != nil {
		segs = f.segments(segs)
	}
	return segs, n, err
}

func (f *faulty) Keys(ctx context.Context, p int, segments []int) ([]KeyItem, int, error) {
	if f.err[2] != nil {
		return nil, 0, f.err[2]
	}
	keys, n, err := f.Side.Keys(ctx, p, segments)
	if err == nil && f.keys != nil {
		keys = f.keys(keys, segments)
	}
	return keys, n, err
}

func TestCorruptAnswers(t *testing.T) {
	cases := []struct {
		name string
		f    faulty
	}{
		{"one branch too few", faulty{branches: func(r uint64, br []uint64) (uint64, []uint64) { return r, br[:len(br)-1] }}},
		{"one branch too many", faulty{branches: func(r uint64, br []uint64) (uint64, []uint64) { return r, append(br, 0) }}},
		{"no branches", faulty{branches: func(r uint64, br []uint64) (uint64, []uint64) { return r, nil }}},
		{"root off", faulty{branches: func(r uint64, br []uint64) (uint64, []uint64) { return r ^ 1, br }}},
		{"a branch off", faulty{branches: func(r uint64, br []uint64) (uint64, []uint64) {
			br = slices.Clone(br)
			br[5] ^= 1 << 40
			return r, br
		}}},
		{"segments for a branch too few", faulty{segments: func(s [][]uint64) [][]uint64 { return s[:len(s)-1] }}},
		{"segments for a branch too many", faulty{segments: func(s [][]uint64) [][]uint64 { return append(s, s[0]) }}},
		{"a branch's segments truncated", faulty{segments: func(s [][]uint64) [][]uint64 {
			s[0] = s[0][:len(s[0])-1]
			return s
		}}},
		{"a branch's segments too long", faulty{segments: func(s [][]uint64) [][]uint64 {
			s[0] = append(s[0], 0)
			return s
		}}},
		{"key in a segment not asked for", faulty{keys: func(k []KeyItem, segs []int) []KeyItem {
			s := 0
			for slices.Contains(segs, s) {
				s++
			}
			return append(k, KeyItem{Bucket: "b", Key: "stray", Segment: s, Item: 1})
		}}},
		{"key in a segment out of range", faulty{keys: func(k []KeyItem, segs []int) []KeyItem {
			return append(k, KeyItem{Bucket: "b", Key: "stray", Segment: -1, Item: 1})
		}}},
		{"duplicate key", faulty{keys: func(k []KeyItem, segs []int) []KeyItem { return append(k, k[0]) }}},
		{"duplicate key with another item", faulty{keys: func(k []KeyItem, segs []int) []KeyItem {
			d := k[len(k)-1]
			d.Item ^= 1
			return append(k, d)
		}}},
		{"zero item hash", faulty{keys: func(k []KeyItem, segs []int) []KeyItem {
			k[0].Item = 0
			return k
		}}},
		{"empty key", faulty{keys: func(k []KeyItem, segs []int) []KeyItem {
			return append(k, KeyItem{Bucket: "b", Segment: segs[0], Item: 1})
		}}},
		{"empty bucket", faulty{keys: func(k []KeyItem, segs []int) []KeyItem {
			return append(k, KeyItem{Key: "k", Segment: segs[0], Item: 1})
		}}},
	}
	const n = 3000
	for _, tc := range cases {
		for _, which := range []string{"local", "remote"} {
			t.Run(tc.name+"/"+which, func(t *testing.T) {
				local, remote := replicas(n, merkle.MinSegments)
				diverge(local, remote, n, 30) // several branches and segments differ, on both sides
				f := tc.f
				var l, r Side = local, remote
				if which == "local" {
					f.Side, l = local, &f
				} else {
					f.Side, r = remote, &f
				}
				res, err := Compare(context.Background(), part, local.shape(), l, r)
				if !errors.Is(err, ErrBadAnswer) {
					t.Fatalf("err = %v, want ErrBadAnswer", err)
				}
				if res.Keys != nil || res.Equal {
					t.Fatalf("a failed exchange reported %d keys, equal %v", len(res.Keys), res.Equal)
				}
				t.Log(err)
			})
		}
	}
}

func TestCorruptAnswerBetweenDivergentReplicas(t *testing.T) {
	// Branches that do not add up to the root the same side sent are caught before
	// anything else is compared.
	local, remote := replicas(100, merkle.MinSegments)
	diverge(local, remote, 100, 1)
	f := &faulty{Side: remote, branches: func(r uint64, br []uint64) (uint64, []uint64) {
		br = slices.Clone(br)
		br[0] ^= 1
		return r, br
	}}
	if res, err := Compare(context.Background(), part, local.shape(), local, f); !errors.Is(err, ErrBadAnswer) || res.Equal {
		t.Fatalf("err = %v, equal %v", err, res.Equal)
	}
}

func TestSideErrorsPropagate(t *testing.T) {
	boom := errors.New("boom")
	for stage := range 3 {
		for _, which := range []string{"local", "remote"} {
			t.Run(fmt.Sprintf("stage%d/%s", stage, which), func(t *testing.T) {
				local, remote := replicas(500, merkle.MinSegments)
				diverge(local, remote, 500, 5)
				f := &faulty{}
				f.err[stage] = boom
				var l, r Side = local, remote
				if which == "local" {
					f.Side, l = local, f
				} else {
					f.Side, r = remote, f
				}
				res, err := Compare(context.Background(), part, local.shape(), l, r)
				if !errors.Is(err, boom) || errors.Is(err, ErrBadAnswer) {
					t.Fatalf("err = %v, want boom", err)
				}
				if res.Keys != nil || res.Equal {
					t.Fatalf("a failed exchange reported %d keys, equal %v", len(res.Keys), res.Equal)
				}
			})
		}
	}
}

// cancelling is a Side that cancels the exchange's context once it has answered after
// calls, as a caller giving up mid-exchange would.
type cancelling struct {
	*memSide
	cancel context.CancelFunc
	after  int
}

func (c *cancelling) tick() {
	if c.memSide.calls >= c.after {
		c.cancel()
	}
}

func (c *cancelling) Root(ctx context.Context, p int) (uint64, int, error) {
	defer c.tick()
	return c.memSide.Root(ctx, p)
}

func (c *cancelling) Branches(ctx context.Context, p int) (uint64, []uint64, int, error) {
	defer c.tick()
	return c.memSide.Branches(ctx, p)
}

func (c *cancelling) Segments(ctx context.Context, p int, b []int) ([][]uint64, int, error) {
	defer c.tick()
	return c.memSide.Segments(ctx, p, b)
}

func (c *cancelling) Keys(ctx context.Context, p int, s []int) ([]KeyItem, int, error) {
	defer c.tick()
	return c.memSide.Keys(ctx, p, s)
}

func TestContextCancellation(t *testing.T) {
	local, remote := replicas(500, merkle.MinSegments)
	diverge(local, remote, 500, 5)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Compare(ctx, part, local.shape(), local, remote)
	if !errors.Is(err, context.Canceled) || res.Keys != nil {
		t.Fatalf("cancelled before: err = %v, %d keys", err, len(res.Keys))
	}

	// The local side cancels after answering its 1st to 4th question: the remote's next
	// question fails, and so does the exchange.
	for after := 1; after <= 4; after++ {
		local.calls, remote.calls = 0, 0
		ctx, cancel := context.WithCancel(context.Background())
		l := &cancelling{memSide: local, cancel: cancel, after: after}
		res, err := Compare(ctx, part, local.shape(), l, remote)
		cancel()
		if !errors.Is(err, context.Canceled) || res.Keys != nil {
			t.Fatalf("cancelled after %d: err = %v, %d keys", after, err, len(res.Keys))
		}
		if remote.calls != after-1 {
			t.Errorf("cancelled after %d: the remote answered %d questions", after, remote.calls)
		}
	}

	ctx, cancel = context.WithDeadline(context.Background(), time0)
	defer cancel()
	if _, err := Compare(ctx, part, local.shape(), local, remote); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("past deadline: err = %v", err)
	}
}

var time0 = time.Unix(0, 0)
