package aae

import (
	"context"
	"fmt"
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
