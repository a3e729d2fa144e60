// Package aae compares two replicas of a partition through their hash trees (package
// merkle) and finds the keys that differ, exchanging only what lies under differing
// branches: bytes grow with the divergence, not with the data.
//
// Model: an exchange asks both sides for their root hash; equal roots end it. Otherwise it
// asks for the branch hashes, then for the segment hashes under the branches that differ,
// then for the keys (with item hashes) in the segments that differ; keys present on one
// side only, or with different item hashes, are the result. Writes go on during an
// exchange, so the answers of one side to successive questions need not agree with each
// other; only each answer's own shape is checked. Repairing them (fetching both
// objects, merging with the version rules, writing the merge where it is missing or stale)
// is the caller's; this package decides what to compare and validates what it is sent, so a
// corrupt or truncated answer ends the exchange with an error and changes nothing.
package aae

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrBadAnswer reports a side's answer that does not fit the question (wrong lengths, keys
// outside the segments asked for, duplicates).
var ErrBadAnswer = errors.New("aae: malformed answer")

// KeyItem is one stored key and its item hash (merkle.ItemHash).
type KeyItem struct {
	Bucket, Key string
	Segment     int
	Item        uint64
}

// Side is one replica's view of a partition. The local side answers from memory and the
// store; the remote side over the network. Each method reports the bytes its exchange cost
// on the wire (request and answer), which the result adds up.
type Side interface {
	// Root returns the tree's root hash alone: when the roots agree, that is all an
	// exchange costs.
	Root(ctx context.Context, partition int) (root uint64, bytes int, err error)
	// Branches returns the tree's root and its branch hashes in order.
	Branches(ctx context.Context, partition int) (root uint64, branches []uint64, bytes int, err error)
	// Segments returns, for each branch asked for, the hashes of its segments in order.
	Segments(ctx context.Context, partition int, branches []int) (segs [][]uint64, bytes int, err error)
	// Keys returns the keys stored in the given segments (any order).
	Keys(ctx context.Context, partition int, segments []int) (keys []KeyItem, bytes int, err error)
}

// Shape is the tree shape both sides must share.
type Shape struct {
	Branches          int
	SegmentsPerBranch int
}

// KeyRef names a key that differs between the sides.
type KeyRef struct {
	Bucket, Key string
	// LocalItem and RemoteItem are the item hashes, 0 where that side lacks the key.
	LocalItem, RemoteItem uint64
}

// Result describes one exchange.
type Result struct {
	Partition        int
	Equal            bool
	BranchesDiffered int
	SegmentsDiffered int
	Keys             []KeyRef // sorted by bucket, key
	Bytes            int      // bytes on the wire, both directions, both sides
}

// Compare runs one exchange of partition between local and remote.
func Compare(ctx context.Context, partition int, shape Shape, local, remote Side) (Result, error) {
	res := Result{Partition: partition}
	lroot, lb, err := local.Root(ctx, partition)
	if err != nil {
		return res, fmt.Errorf("aae: local root: %w", err)
	}
	rroot, rb, err := remote.Root(ctx, partition)
	res.Bytes += lb + rb
	if err != nil {
		return res, fmt.Errorf("aae: remote root: %w", err)
	}
	if lroot == rroot {
		res.Equal = true
		return res, nil
	}
	lroot, lbr, lb, err := local.Branches(ctx, partition)
	if err != nil {
		return res, fmt.Errorf("aae: local branches: %w", err)
	}
	rroot, rbr, rb, err := remote.Branches(ctx, partition)
	res.Bytes += lb + rb
	if err != nil {
		return res, fmt.Errorf("aae: remote branches: %w", err)
	}
	if len(lbr) != shape.Branches || len(rbr) != shape.Branches {
		return res, fmt.Errorf("%w: %d and %d branches, want %d", ErrBadAnswer, len(lbr), len(rbr), shape.Branches)
	}
	if xorAll(lbr) != lroot || xorAll(rbr) != rroot {
		return res, fmt.Errorf("%w: branches do not add up to the root", ErrBadAnswer)
	}
	if lroot == rroot && slices.Equal(lbr, rbr) {
		res.Equal = true
		return res, nil
	}
	branches := diff(lbr, rbr)
	res.BranchesDiffered = len(branches)

	lsegs, lb, err := local.Segments(ctx, partition, branches)
	if err != nil {
		return res, fmt.Errorf("aae: local segments: %w", err)
	}
	rsegs, rb, err := remote.Segments(ctx, partition, branches)
	res.Bytes += lb + rb
	if err != nil {
		return res, fmt.Errorf("aae: remote segments: %w", err)
	}
	if err := checkSegments(lsegs, branches, shape); err != nil {
		return res, fmt.Errorf("local: %w", err)
	}
	if err := checkSegments(rsegs, branches, shape); err != nil {
		return res, fmt.Errorf("remote: %w", err)
	}
	var segments []int
	for i, b := range branches {
		for _, j := range diff(lsegs[i], rsegs[i]) {
			segments = append(segments, b*shape.SegmentsPerBranch+j)
		}
	}
	res.SegmentsDiffered = len(segments)
	if len(segments) == 0 {
		return res, nil
	}

	lkeys, lb, err := local.Keys(ctx, partition, segments)
	if err != nil {
		return res, fmt.Errorf("aae: local keys: %w", err)
	}
	rkeys, rb, err := remote.Keys(ctx, partition, segments)
	res.Bytes += lb + rb
	if err != nil {
		return res, fmt.Errorf("aae: remote keys: %w", err)
	}
	lm, err := keyMap(lkeys, segments)
	if err != nil {
		return res, fmt.Errorf("local: %w", err)
	}
	rm, err := keyMap(rkeys, segments)
	if err != nil {
		return res, fmt.Errorf("remote: %w", err)
	}
	for k, li := range lm {
		if ri := rm[k]; ri != li {
			res.Keys = append(res.Keys, KeyRef{Bucket: k.bucket, Key: k.key, LocalItem: li, RemoteItem: ri})
		}
	}
	for k, ri := range rm {
		if _, ok := lm[k]; !ok {
			res.Keys = append(res.Keys, KeyRef{Bucket: k.bucket, Key: k.key, RemoteItem: ri})
		}
	}
	slices.SortFunc(res.Keys, func(a, b KeyRef) int {
		if c := strings.Compare(a.Bucket, b.Bucket); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return res, nil
}

func xorAll(hs []uint64) uint64 {
	var x uint64
	for _, h := range hs {
		x ^= h
	}
	return x
}

func diff(a, b []uint64) []int {
	var out []int
	for i := range a {
		if a[i] != b[i] {
			out = append(out, i)
		}
	}
	return out
}

// checkSegments verifies that the segments of each branch asked for are complete. (They
// need not add up to the branch hash announced before: a write in between changes both.)
func checkSegments(segs [][]uint64, branches []int, shape Shape) error {
	if len(segs) != len(branches) {
		return fmt.Errorf("%w: segments for %d branches, asked for %d", ErrBadAnswer, len(segs), len(branches))
	}
	for i, b := range branches {
		if len(segs[i]) != shape.SegmentsPerBranch {
			return fmt.Errorf("%w: branch %d has %d segments, want %d", ErrBadAnswer, b, len(segs[i]), shape.SegmentsPerBranch)
		}
	}
	return nil
}

type keyID struct{ bucket, key string }

// keyMap indexes keys, refusing duplicates, keys of segments not asked for and zero item
// hashes. (It does not require a segment's items to add up to the segment hash announced
// before: writes landing between the two questions legitimately change both.)
func keyMap(keys []KeyItem, segments []int) (map[keyID]uint64, error) {
	asked := make(map[int]bool, len(segments))
	for _, s := range segments {
		asked[s] = true
	}
	m := make(map[keyID]uint64, len(keys))
	for _, k := range keys {
		if !asked[k.Segment] {
			return nil, fmt.Errorf("%w: key %q/%q in segment %d, which was not asked for", ErrBadAnswer, k.Bucket, k.Key, k.Segment)
		}
		if k.Item == 0 || k.Bucket == "" || k.Key == "" {
			return nil, fmt.Errorf("%w: empty key or zero item hash", ErrBadAnswer)
		}
		id := keyID{k.Bucket, k.Key}
		if _, dup := m[id]; dup {
			return nil, fmt.Errorf("%w: key %q/%q listed twice", ErrBadAnswer, k.Bucket, k.Key)
		}
		m[id] = k.Item
	}
	return m, nil
}
