package sim

import (
	"context"

	"github.com/quorumkv/quorumkv/internal/aae"
	"github.com/quorumkv/quorumkv/internal/merkle"
)

// treeSide answers an exchange from a simulated node's own trees and store, as the
// server's local side does.
type treeSide struct{ n *snode }

func (s treeSide) Root(_ context.Context, p int) (uint64, int, error) {
	return s.n.trees[p].Root(), 0, nil
}

func (s treeSide) Branches(_ context.Context, p int) (uint64, []uint64, int, error) {
	t := s.n.trees[p]
	return t.Root(), t.BranchHashes(), 0, nil
}

func (s treeSide) Segments(_ context.Context, p int, branches []int) ([][]uint64, int, error) {
	out := make([][]uint64, len(branches))
	for i, b := range branches {
		out[i] = s.n.trees[p].BranchSegments(nil, b)
	}
	return out, 0, nil
}

func (s treeSide) Keys(_ context.Context, p int, segments []int) ([]aae.KeyItem, int, error) {
	want := map[int]bool{}
	for _, seg := range segments {
		want[seg] = true
	}
	var out []aae.KeyItem
	err := s.n.store.Scan([]byte("d"), []byte("e"), func(k, v []byte) bool {
		key := string(k[1:])
		kp, seg := s.n.w.locate(key)
		if kp == p && want[seg] {
			out = append(out, aae.KeyItem{Bucket: simBucket, Key: key, Segment: seg, Item: merkle.ItemHash(simBucket, key, merkle.Digest(v))})
		}
		return true
	})
	return out, 0, err
}

// diffKeys compares partition p of two nodes with the real exchange and returns the keys
// that differ, sorted.
func diffKeys(a, b *snode, p int) []string {
	t := a.trees[p]
	res, err := aae.Compare(context.Background(), p, aae.Shape{Branches: t.Branches(), SegmentsPerBranch: t.SegmentsPerBranch()}, treeSide{a}, treeSide{b})
	if err != nil {
		a.w.hist.violate("anti-entropy exchange %s-%s partition %d failed: %v", a.name, b.name, p, err)
		return nil
	}
	keys := make([]string, len(res.Keys))
	for i, k := range res.Keys {
		keys[i] = k.Key
	}
	return keys
}
