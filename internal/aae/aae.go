// Package aae compares two replicas of a partition through their hash trees (package
// merkle) and finds the keys that differ, exchanging only what lies under differing
// branches: bytes grow with the divergence, not with the data.
//
// Model: an exchange puts four questions, in order, to both sides (the local replica and
// a remote one). It asks for the root hash; equal roots end it. Otherwise it asks for the
// branch hashes, then for the segment hashes under the branches that differ, then for the
// keys (with item hashes) in the segments that differ; keys present on one side only, or
// with different item hashes, are the result. Repairing them (fetching both objects,
// merging with the version rules, writing the merge where it is missing or stale) is the
// caller's; this package decides what to compare and validates what it is sent.
//
// An [Exchange] is a pure step machine, so a deterministic node core can run exchanges as
// message exchanges in virtual time: [Exchange.Question] says what to ask, the caller asks
// both sides however it likes (the local one answers at once, the remote one by a message
// that arrives later) and feeds each answer in with [Exchange.AnswerRoot] and its
// siblings. It starts no goroutines and reads no clock; it does no I/O. [Compare] drives
// one to the end over two blocking [Side]s, for callers that have them.
//
// Invariants:
//   - The question advances only when both sides have answered it, in either order; an
//     answer to any other question (a duplicate, a late or misdirected message) is refused
//     with [ErrNotAsked] and changes nothing.
//   - Every answer is checked on arrival against the question and the [Shape] (branch and
//     segment counts, branches adding up to the root, keys only in the segments asked for,
//     no duplicates, no empty names or zero item hashes). A malformed answer fails the
//     exchange with an error wrapping [ErrBadAnswer]: Failed is final, and a failed
//     exchange reports no keys and never Equal, so nothing is repaired from it.
//   - Writes go on during an exchange, so the answers of one side to successive questions
//     need not agree with each other; only each answer's own shape is checked.
//   - The result does not depend on the order answers arrive in, nor on map order: keys
//     are sorted by bucket, then key. Bytes are the sum of what the caller says each
//     answer cost.
package aae

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrBadAnswer reports a side's answer that does not fit the question (wrong lengths, keys
// outside the segments asked for, duplicates). It fails the exchange.
var ErrBadAnswer = errors.New("aae: malformed answer")

// ErrNotAsked reports an answer to a question the exchange is not asking that side: the
// wrong kind, a second answer from the same side, or any answer once the exchange is done
// or failed. The exchange is unchanged; the caller drops the answer (a duplicated or
// late message) or has a bug.
var ErrNotAsked = errors.New("aae: answer to a question not asked")

// KeyItem is one stored key and its item hash (merkle.ItemHash).
type KeyItem struct {
	Bucket, Key string
	Segment     int
	Item        uint64
}

// Side is one replica's view of a partition, for [Compare]. The local side answers from
// memory and the store; the remote side over the network. Each method reports the bytes
// its exchange cost on the wire (request and answer), which the result adds up.
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

// SideID names one of the two sides of an exchange.
type SideID int

const (
	Local SideID = iota
	Remote
)

func (s SideID) String() string {
	switch s {
	case Local:
		return "local"
	case Remote:
		return "remote"
	}
	return fmt.Sprintf("SideID(%d)", int(s))
}

// QuestionKind is what an exchange asks next, or that it has ended.
type QuestionKind int

const (
	// AskRoot asks for the root hash ([Exchange.AnswerRoot]).
	AskRoot QuestionKind = iota + 1
	// AskBranches asks for the root and all branch hashes in order ([Exchange.AnswerBranches]).
	AskBranches
	// AskSegments asks, for each of Question.Branches, its segment hashes in order
	// ([Exchange.AnswerSegments]).
	AskSegments
	// AskKeys asks for the keys stored in Question.Segments ([Exchange.AnswerKeys]).
	AskKeys
	// Done: the exchange has ended; [Exchange.Result] is final.
	Done
	// Failed: a side sent a malformed answer; [Exchange.Err] says which and how.
	Failed
)

func (k QuestionKind) String() string {
	switch k {
	case AskRoot:
		return "AskRoot"
	case AskBranches:
		return "AskBranches"
	case AskSegments:
		return "AskSegments"
	case AskKeys:
		return "AskKeys"
	case Done:
		return "Done"
	case Failed:
		return "Failed"
	}
	return fmt.Sprintf("QuestionKind(%d)", int(k))
}

// Question is what an exchange asks both sides. Branches is set for AskSegments (branch
// indexes, ascending), Segments for AskKeys (segment indexes across the whole tree,
// ascending).
type Question struct {
	Kind     QuestionKind
	Branches []int
	Segments []int
}

// Exchange is one anti-entropy exchange of a partition, as a step machine. It is not safe
// for concurrent use; the zero value is not usable (call [NewExchange]).
type Exchange struct {
	partition int
	shape     Shape
	kind      QuestionKind
	branchIdx []int        // AskSegments: the branches asked for
	segIdx    []int        // AskKeys: the segments asked for
	asked     map[int]bool // AskKeys: segIdx as a set

	// The answers to the current question, by SideID, kept until both are in.
	answered [2]bool
	roots    [2]uint64
	branches [2][]uint64
	segs     [2][][]uint64
	keys     [2]map[keyID]uint64

	res Result
	err error
}

// NewExchange starts an exchange of partition between two trees of the given shape. Its
// first question is AskRoot.
func NewExchange(partition int, shape Shape) *Exchange {
	return &Exchange{partition: partition, shape: shape, kind: AskRoot, res: Result{Partition: partition}}
}

// Partition is the partition the exchange compares.
func (x *Exchange) Partition() int { return x.partition }

// Question returns what to ask both sides now, or Done or Failed. The slices are the
// caller's to keep.
func (x *Exchange) Question() Question {
	return Question{Kind: x.kind, Branches: slices.Clone(x.branchIdx), Segments: slices.Clone(x.segIdx)}
}

// Waiting reports whether side has yet to answer the current question.
func (x *Exchange) Waiting(side SideID) bool {
	return x.kind < Done && !x.answered[checkSide(side)]
}

// Result reports the exchange: final once Done or Failed, the counts and bytes so far
// before. Keys is set only when Done, and a failed exchange is never Equal.
func (x *Exchange) Result() Result {
	res := x.res
	res.Keys = slices.Clone(x.res.Keys)
	return res
}

// Err is the error that failed the exchange, nil unless the question is Failed.
func (x *Exchange) Err() error { return x.err }

// AnswerRoot gives side's answer to AskRoot: its root hash, and the bytes the question
// and answer cost on the wire.
func (x *Exchange) AnswerRoot(side SideID, root uint64, bytes int) error {
	if err := x.accept(side, AskRoot, bytes); err != nil {
		return err
	}
	x.roots[side] = root
	if !x.answered[1-side] {
		return nil
	}
	if x.roots[Local] == x.roots[Remote] {
		x.res.Equal = true
		x.finish()
		return nil
	}
	x.next(AskBranches)
	return nil
}

// AnswerBranches gives side's answer to AskBranches: its root and branch hashes in order,
// and the bytes they cost. The exchange keeps branches until the question advances; the
// caller must not change them.
func (x *Exchange) AnswerBranches(side SideID, root uint64, branches []uint64, bytes int) error {
	if err := x.accept(side, AskBranches, bytes); err != nil {
		return err
	}
	if len(branches) != x.shape.Branches {
		return x.fail(fmt.Errorf("%w: %s sent %d branches, want %d", ErrBadAnswer, side, len(branches), x.shape.Branches))
	}
	if xorAll(branches) != root {
		return x.fail(fmt.Errorf("%w: %s's branches do not add up to its root", ErrBadAnswer, side))
	}
	x.roots[side], x.branches[side] = root, branches
	if !x.answered[1-side] {
		return nil
	}
	l, r := x.branches[Local], x.branches[Remote]
	if x.roots[Local] == x.roots[Remote] && slices.Equal(l, r) {
		x.res.Equal = true
		x.finish()
		return nil
	}
	// Not empty: equal branch lists add up to equal roots.
	x.branchIdx = diff(l, r)
	x.res.BranchesDiffered = len(x.branchIdx)
	x.next(AskSegments)
	return nil
}

// AnswerSegments gives side's answer to AskSegments: for each branch asked for, in the
// order asked, its segment hashes in order; and the bytes they cost. The exchange keeps
// segs until the question advances; the caller must not change them.
func (x *Exchange) AnswerSegments(side SideID, segs [][]uint64, bytes int) error {
	if err := x.accept(side, AskSegments, bytes); err != nil {
		return err
	}
	if err := checkSegments(side, segs, x.branchIdx, x.shape); err != nil {
		return x.fail(err)
	}
	x.segs[side] = segs
	if !x.answered[1-side] {
		return nil
	}
	var segments []int
	for i, b := range x.branchIdx {
		for _, j := range diff(x.segs[Local][i], x.segs[Remote][i]) {
			segments = append(segments, b*x.shape.SegmentsPerBranch+j)
		}
	}
	x.res.SegmentsDiffered = len(segments)
	if len(segments) == 0 {
		// The roots differed and the segments do not: writes landed in between. Not
		// Equal, nothing to repair; the next exchange looks again.
		x.finish()
		return nil
	}
	x.segIdx = segments
	x.asked = make(map[int]bool, len(segments))
	for _, s := range segments {
		x.asked[s] = true
	}
	x.next(AskKeys)
	return nil
}

// AnswerKeys gives side's answer to AskKeys: the keys stored in the segments asked for,
// in any order, and the bytes they cost.
func (x *Exchange) AnswerKeys(side SideID, keys []KeyItem, bytes int) error {
	if err := x.accept(side, AskKeys, bytes); err != nil {
		return err
	}
	m, err := keyMap(side, keys, x.asked)
	if err != nil {
		return x.fail(err)
	}
	x.keys[side] = m
	if !x.answered[1-side] {
		return nil
	}
	lm, rm := x.keys[Local], x.keys[Remote]
	var out []KeyRef
	for k, li := range lm {
		if ri := rm[k]; ri != li {
			out = append(out, KeyRef{Bucket: k.bucket, Key: k.key, LocalItem: li, RemoteItem: ri})
		}
	}
	for k, ri := range rm {
		if _, ok := lm[k]; !ok {
			out = append(out, KeyRef{Bucket: k.bucket, Key: k.key, RemoteItem: ri})
		}
	}
	slices.SortFunc(out, func(a, b KeyRef) int {
		if c := strings.Compare(a.Bucket, b.Bucket); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	x.res.Keys = out
	x.finish()
	return nil
}

// accept admits side's answer to a question of kind want, counting its bytes, or refuses
// it with ErrNotAsked.
func (x *Exchange) accept(side SideID, want QuestionKind, bytes int) error {
	side = checkSide(side)
	if x.kind != want || x.answered[side] {
		return fmt.Errorf("%w: %s answered %s, the exchange of partition %d asks it %s",
			ErrNotAsked, side, want, x.partition, x.asking(side))
	}
	x.answered[side] = true
	x.res.Bytes += bytes
	return nil
}

// asking describes what the exchange waits for from side, for error messages.
func (x *Exchange) asking(side SideID) string {
	switch {
	case x.kind >= Done:
		return "nothing (" + x.kind.String() + ")"
	case x.answered[side]:
		return "nothing until the other side answers " + x.kind.String()
	}
	return x.kind.String()
}

// next moves to the question of kind k, forgetting the answers to the last one.
func (x *Exchange) next(k QuestionKind) {
	x.kind = k
	x.answered = [2]bool{}
	x.branches = [2][]uint64{}
	x.segs = [2][][]uint64{}
	x.keys = [2]map[keyID]uint64{}
}

func (x *Exchange) finish() {
	x.next(Done)
	x.branchIdx, x.segIdx, x.asked = nil, nil, nil
}

// fail ends the exchange with err: it keeps the counts and bytes so far, and no keys.
func (x *Exchange) fail(err error) error {
	x.finish()
	x.kind = Failed
	x.res.Equal, x.res.Keys = false, nil
	x.err = err
	return err
}

// checkSide panics on a SideID that is neither Local nor Remote: it can only come from a
// bug in the caller, never from the wire.
func checkSide(s SideID) SideID {
	if s != Local && s != Remote {
		panic(fmt.Sprintf("aae: %v is neither Local nor Remote", s))
	}
	return s
}

// Compare runs one exchange of partition between local and remote over blocking sides:
// each question goes to the local side, then to the remote one. A side's error ends it
// (wrapped, with the bytes counted so far); so does a malformed answer (ErrBadAnswer).
func Compare(ctx context.Context, partition int, shape Shape, local, remote Side) (Result, error) {
	x := NewExchange(partition, shape)
	for {
		q := x.Question()
		switch q.Kind {
		case Done:
			return x.Result(), nil
		case Failed:
			return x.Result(), x.Err()
		}
		for id, s := range [2]Side{local, remote} {
			if n, err := ask(ctx, x, SideID(id), s, q); err != nil {
				res := x.Result()
				res.Bytes += n
				return res, err
			}
		}
	}
}

// ask puts q to side s and feeds its answer to x. A side's own error is returned with the
// bytes it reported (x has not counted them); x's verdict on the answer is returned as is.
func ask(ctx context.Context, x *Exchange, id SideID, s Side, q Question) (bytes int, err error) {
	p := x.Partition()
	switch q.Kind {
	case AskRoot:
		root, n, err := s.Root(ctx, p)
		if err != nil {
			return n, fmt.Errorf("aae: %s root: %w", id, err)
		}
		return 0, x.AnswerRoot(id, root, n)
	case AskBranches:
		root, br, n, err := s.Branches(ctx, p)
		if err != nil {
			return n, fmt.Errorf("aae: %s branches: %w", id, err)
		}
		return 0, x.AnswerBranches(id, root, br, n)
	case AskSegments:
		segs, n, err := s.Segments(ctx, p, q.Branches)
		if err != nil {
			return n, fmt.Errorf("aae: %s segments: %w", id, err)
		}
		return 0, x.AnswerSegments(id, segs, n)
	case AskKeys:
		keys, n, err := s.Keys(ctx, p, q.Segments)
		if err != nil {
			return n, fmt.Errorf("aae: %s keys: %w", id, err)
		}
		return 0, x.AnswerKeys(id, keys, n)
	}
	panic(fmt.Sprintf("aae: asking %v", q.Kind))
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
func checkSegments(side SideID, segs [][]uint64, branches []int, shape Shape) error {
	if len(segs) != len(branches) {
		return fmt.Errorf("%w: %s sent segments for %d branches, asked for %d", ErrBadAnswer, side, len(segs), len(branches))
	}
	for i, b := range branches {
		if len(segs[i]) != shape.SegmentsPerBranch {
			return fmt.Errorf("%w: %s sent %d segments for branch %d, want %d", ErrBadAnswer, side, len(segs[i]), b, shape.SegmentsPerBranch)
		}
	}
	return nil
}

type keyID struct{ bucket, key string }

// keyMap indexes keys, refusing duplicates, keys of segments not asked for and zero item
// hashes. (It does not require a segment's items to add up to the segment hash announced
// before: writes landing between the two questions legitimately change both.)
func keyMap(side SideID, keys []KeyItem, asked map[int]bool) (map[keyID]uint64, error) {
	m := make(map[keyID]uint64, len(keys))
	for _, k := range keys {
		if !asked[k.Segment] {
			return nil, fmt.Errorf("%w: %s sent key %q/%q in segment %d, which was not asked for", ErrBadAnswer, side, k.Bucket, k.Key, k.Segment)
		}
		if k.Item == 0 || k.Bucket == "" || k.Key == "" {
			return nil, fmt.Errorf("%w: %s sent an empty key or a zero item hash", ErrBadAnswer, side)
		}
		id := keyID{k.Bucket, k.Key}
		if _, dup := m[id]; dup {
			return nil, fmt.Errorf("%w: %s listed key %q/%q twice", ErrBadAnswer, side, k.Bucket, k.Key)
		}
		m[id] = k.Item
	}
	return m, nil
}
