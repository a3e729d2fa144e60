package aae

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// Two replicas from a shared base, each then edited at random (creates, overwrites,
// deletes, including the same key on both sides, to the same or different versions):
// Compare finds exactly the symmetric difference, brute force, with the counts and the
// bytes the model predicts; and the replicas, repaired with it, compare equal.
func TestPropCompareFindsSymmetricDifference(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		segments := 1 << rapid.IntRange(8, 11).Draw(rt, "lgSegments")
		pool := rapid.IntRange(1, 400).Draw(rt, "pool")
		drawKey := func(label string) (string, string) {
			i := rapid.IntRange(0, pool-1).Draw(rt, label)
			return []string{"a", "bb", "users"}[i%3], fmt.Sprint(i)
		}
		edit := func(m *memSide, label string) {
			b, k := drawKey(label + "Key")
			v := rapid.IntRange(0, 3).Draw(rt, label+"Version") // 0 deletes
			if v == 0 {
				m.put(b, k, 0)
			} else {
				m.put(b, k, item(b, k, v))
			}
		}
		local := newMemSide(part, segments)
		for range rapid.IntRange(0, 300).Draw(rt, "base") {
			edit(local, "base")
		}
		remote := local.clone()
		for range rapid.IntRange(0, 30).Draw(rt, "localEdits") {
			edit(local, "local")
		}
		for range rapid.IntRange(0, 30).Draw(rt, "remoteEdits") {
			edit(remote, "remote")
		}

		res, err := Compare(context.Background(), part, local.shape(), local, remote)
		if err != nil {
			rt.Fatalf("Compare: %v", err)
		}
		keys, segs, branches, bytes := expect(local, remote)
		if !slices.Equal(res.Keys, keys) {
			rt.Fatalf("keys:\n got %v\nwant %v", res.Keys, keys)
		}
		if res.Equal != (len(keys) == 0) || res.Equal != (local.tree.Equal(remote.tree)) {
			rt.Fatalf("Equal = %v with %d differing keys", res.Equal, len(keys))
		}
		if res.SegmentsDiffered != len(segs) || res.BranchesDiffered != len(branches) || res.Bytes != bytes {
			rt.Fatalf("%d branches, %d segments, %d bytes; want %d, %d, %d", res.BranchesDiffered,
				res.SegmentsDiffered, res.Bytes, len(branches), len(segs), bytes)
		}

		// Repair (here: the remote takes the local copy) and compare again.
		for _, k := range res.Keys {
			remote.put(k.Bucket, k.Key, k.LocalItem)
		}
		res, err = Compare(context.Background(), part, local.shape(), local, remote)
		if err != nil || !res.Equal {
			rt.Fatalf("after repair: %+v, %v", res, err)
		}
		fresh := newMemSide(part, segments) // and the incremental trees equal rebuilt ones
		for k, it := range remote.all() {
			fresh.put(k.bucket, k.key, it)
		}
		if !fresh.tree.Equal(local.tree) {
			rt.Fatal("repaired trees differ from a rebuilt one")
		}
	})
}

// Exchange driven by hand over two random trees (drawn independently key by key, mostly
// agreeing), with each question answered in a random order and answers re-sent at random
// (a duplicated message before the other side answers, a late one after the question
// moved on): the re-sent answers are refused and change nothing, and the exchange finds
// exactly the keys a brute-force diff of the two replicas finds, with the counts and
// bytes the model predicts — the same result as Compare.
func TestPropExchangeFindsBruteForceDiff(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		segments := 1 << rapid.IntRange(8, 11).Draw(rt, "lgSegments")
		n := rapid.IntRange(0, 300).Draw(rt, "keys")
		versions := rapid.IntRange(0, 3) // 0: the side lacks the key
		lv := rapid.SliceOfN(versions, n, n).Draw(rt, "localVersions")
		rv := rapid.SliceOfN(versions, n, n).Draw(rt, "remoteVersions")
		agree := rapid.SliceOfN(rapid.IntRange(0, 9), n, n).Draw(rt, "agree") // < 8: remote as local
		local, remote := newMemSide(part, segments), newMemSide(part, segments)
		for i := range n {
			b, k := []string{"a", "bb", "users"}[i%3], fmt.Sprint(i)
			if lv[i] > 0 {
				local.put(b, k, item(b, k, lv[i]))
			}
			v := rv[i]
			if agree[i] < 8 {
				v = lv[i]
			}
			if v > 0 {
				remote.put(b, k, item(b, k, v))
			}
		}

		sides := [2]*memSide{local, remote}
		x := NewExchange(part, local.shape())
		type sent struct {
			id SideID
			q  Question
		}
		var last *sent
		for i := 0; ; i++ {
			q := x.Question()
			if q.Kind == Done {
				break
			}
			if q.Kind == Failed {
				rt.Fatalf("failed: %v", x.Err())
			}
			if last != nil && rapid.Bool().Draw(rt, fmt.Sprintf("resendLate%d", i)) {
				resend(rt, x, sides[last.id], last.id, last.q)
			}
			first := Local
			if rapid.Bool().Draw(rt, fmt.Sprintf("remoteFirst%d", i)) {
				first = Remote
			}
			for j, id := range []SideID{first, 1 - first} {
				if err := answer(x, id, sides[id], q, nil); err != nil {
					rt.Fatalf("%v from %v: %v", q.Kind, id, err)
				}
				if j == 0 && rapid.Bool().Draw(rt, fmt.Sprintf("resendEarly%d", i)) {
					resend(rt, x, sides[id], id, q)
				}
				last = &sent{id, q}
			}
		}

		res := x.Result()
		keys, segs, branches, bytes := expect(local, remote)
		if !slices.Equal(res.Keys, keys) {
			rt.Fatalf("keys:\n got %v\nwant %v", res.Keys, keys)
		}
		if res.Equal != (len(keys) == 0) {
			rt.Fatalf("Equal = %v with %d differing keys", res.Equal, len(keys))
		}
		if res.SegmentsDiffered != len(segs) || res.BranchesDiffered != len(branches) || res.Bytes != bytes {
			rt.Fatalf("%d branches, %d segments, %d bytes; want %d, %d, %d", res.BranchesDiffered,
				res.SegmentsDiffered, res.Bytes, len(branches), len(segs), bytes)
		}
		via, err := Compare(context.Background(), part, local.shape(), local, remote)
		if err != nil || !reflect.DeepEqual(via, res) {
			rt.Fatalf("Compare: %+v, %v\nby hand: %+v", via, err, res)
		}
	})
}

// resend feeds side id's answer to q again, which x must refuse without changing.
func resend(rt *rapid.T, x *Exchange, m *memSide, id SideID, q Question) {
	before, res := x.Question(), x.Result()
	if err := answer(x, id, m, q, nil); !errors.Is(err, ErrNotAsked) {
		rt.Fatalf("%v re-sent its answer to %v: %v, want ErrNotAsked", id, q.Kind, err)
	}
	if !reflect.DeepEqual(x.Question(), before) || !reflect.DeepEqual(x.Result(), res) {
		rt.Fatalf("a refused answer changed the exchange")
	}
}
