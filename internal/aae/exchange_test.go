package aae

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/quorumkv/quorumkv/internal/merkle"
)

// These tests drive Exchange directly, as a node core does: the answers come in one at a
// time, in whatever order the test chooses, with no Side and no blocking.

// corruption spoils one side's answer to one question.
type corruption struct {
	name     string
	stage    QuestionKind
	branches func(root uint64, br []uint64) (uint64, []uint64)
	segments func(s [][]uint64) [][]uint64
	keys     func(k []KeyItem, segs []int) []KeyItem
}

// answer feeds m's answer to q into x as side id, spoiled by c if c is for q's kind.
func answer(x *Exchange, id SideID, m *memSide, q Question, c *corruption) error {
	ctx := context.Background()
	if c != nil && c.stage != q.Kind {
		c = nil
	}
	switch q.Kind {
	case AskRoot:
		root, n, _ := m.Root(ctx, part)
		return x.AnswerRoot(id, root, n)
	case AskBranches:
		root, br, n, _ := m.Branches(ctx, part)
		if c != nil {
			root, br = c.branches(root, slices.Clone(br))
		}
		return x.AnswerBranches(id, root, br, n)
	case AskSegments:
		segs, n, _ := m.Segments(ctx, part, q.Branches)
		if c != nil {
			segs = c.segments(segs)
		}
		return x.AnswerSegments(id, segs, n)
	case AskKeys:
		keys, n, _ := m.Keys(ctx, part, q.Segments)
		if c != nil {
			keys = c.keys(keys, q.Segments)
		}
		return x.AnswerKeys(id, keys, n)
	}
	panic("answering " + q.Kind.String())
}

// order says which side answers the i-th question first.
type order struct {
	name  string
	first func(i int) SideID
}

var orders = []order{
	{"local first", func(int) SideID { return Local }},
	{"remote first", func(int) SideID { return Remote }},
	{"alternating", func(i int) SideID { return SideID(i % 2) }},
}

// drive runs x to its end, honestly, and returns the questions it asked.
func drive(t *testing.T, x *Exchange, sides [2]*memSide, first func(int) SideID) []Question {
	t.Helper()
	var asked []Question
	for i := 0; ; i++ {
		q := x.Question()
		if q.Kind == Done || q.Kind == Failed {
			return asked
		}
		asked = append(asked, q)
		a := first(i)
		for _, id := range []SideID{a, 1 - a} {
			if err := answer(x, id, sides[id], q, nil); err != nil {
				t.Fatalf("%v, %s answering %v: %v", q.Kind, id, q, err)
			}
		}
	}
}

func kinds(qs []Question) []QuestionKind {
	out := make([]QuestionKind, len(qs))
	for i, q := range qs {
		out[i] = q.Kind
	}
	return out
}

func TestExchangeAsksOnlyWhatDiffers(t *testing.T) {
	all := []QuestionKind{AskRoot, AskBranches, AskSegments, AskKeys}
	for _, tc := range []struct {
		name      string
		keys, div int
		want      []QuestionKind
	}{
		{"empty", 0, 0, []QuestionKind{AskRoot}},
		{"equal", 1000, 0, []QuestionKind{AskRoot}},
		{"one key", 1000, 1, all},
		{"three kinds", 1000, 3, all},
		{"many", 3000, 100, all},
	} {
		for _, o := range orders {
			t.Run(tc.name+"/"+o.name, func(t *testing.T) {
				local, remote := replicas(tc.keys, merkle.MinSegments)
				diverge(local, remote, max(tc.keys, 1), tc.div)
				x := NewExchange(part, local.shape())
				asked := drive(t, x, [2]*memSide{local, remote}, o.first)
				if got := kinds(asked); !slices.Equal(got, tc.want) {
					t.Fatalf("asked %v, want %v", got, tc.want)
				}
				if q := x.Question(); q.Kind != Done || x.Err() != nil {
					t.Fatalf("ended at %v, err %v", q.Kind, x.Err())
				}
				_, segments, branches, _ := expect(local, remote)
				if len(asked) == len(all) {
					if !slices.Equal(asked[2].Branches, branches) || !slices.Equal(asked[3].Segments, segments) {
						t.Errorf("asked branches %v and segments %v, want %v and %v",
							asked[2].Branches, asked[3].Segments, branches, segments)
					}
				}
				res := x.Result()
				checkResult(t, res, local, remote)
				if via := compare(t, local, remote, local.shape()); !reflect.DeepEqual(res, via) {
					t.Errorf("driven by hand: %+v\n  by Compare: %+v", res, via)
				}
			})
		}
	}
}

// An answer to a question not being asked (the other kind, the same side twice, after
// the end) is refused and changes nothing: a duplicated or late message is harmless.
func TestExchangeRefusesAnswersNotAsked(t *testing.T) {
	local, remote := replicas(500, merkle.MinSegments)
	diverge(local, remote, 500, 5)
	x := NewExchange(part, local.shape())
	sides := [2]*memSide{local, remote}

	same := func(step string, q Question, res Result) {
		t.Helper()
		if got := x.Question(); !reflect.DeepEqual(got, q) {
			t.Fatalf("%s: question %+v became %+v", step, q, got)
		}
		if got := x.Result(); !reflect.DeepEqual(got, res) {
			t.Fatalf("%s: result %+v became %+v", step, res, got)
		}
	}
	refused := func(step string, err error) {
		t.Helper()
		if !errors.Is(err, ErrNotAsked) || errors.Is(err, ErrBadAnswer) {
			t.Fatalf("%s: err = %v, want ErrNotAsked", step, err)
		}
	}
	for _, want := range []QuestionKind{AskRoot, AskBranches, AskSegments, AskKeys} {
		q := x.Question()
		if q.Kind != want {
			t.Fatalf("asking %v, want %v", q.Kind, want)
		}
		// Answers of every other kind, from either side, are refused.
		for id := range sides {
			res := x.Result()
			for _, other := range []QuestionKind{AskRoot, AskBranches, AskSegments, AskKeys} {
				if other == want {
					continue
				}
				refused(other.String()+" while asking "+want.String(), answer(x, SideID(id), sides[id], Question{Kind: other, Branches: []int{0}, Segments: []int{0}}, nil))
			}
			same("wrong kinds", q, res)
		}
		// The remote answers first; the question waits for the local side, and a second
		// remote answer is refused.
		if err := answer(x, Remote, remote, q, nil); err != nil {
			t.Fatal(err)
		}
		if x.Waiting(Remote) || !x.Waiting(Local) {
			t.Fatalf("%v: waiting remote %v, local %v", want, x.Waiting(Remote), x.Waiting(Local))
		}
		res := x.Result()
		refused("the remote again", answer(x, Remote, remote, q, nil))
		same("the remote again", q, res)
		if err := answer(x, Local, local, q, nil); err != nil {
			t.Fatal(err)
		}
	}
	q, res := x.Question(), x.Result()
	if q.Kind != Done || len(res.Keys) != 5 {
		t.Fatalf("%v with %d keys", q.Kind, len(res.Keys))
	}
	for id := range sides {
		if x.Waiting(SideID(id)) {
			t.Errorf("done, still waiting for %v", SideID(id))
		}
		refused("after the end", answer(x, SideID(id), sides[id], Question{Kind: AskKeys, Segments: []int{0}}, nil))
		refused("after the end", x.AnswerRoot(SideID(id), 1, 10))
	}
	same("after the end", q, res)
	checkResult(t, res, local, remote)
}

func TestExchangeUnknownSidePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	_ = NewExchange(part, Shape{16, 16}).AnswerRoot(SideID(2), 1, 1)
}

func spoilBranch(r uint64, br []uint64) (uint64, []uint64) {
	br[5] ^= 1 << 40
	return r, br
}

var corruptions = []corruption{
	// (Any root is a well-formed answer to AskRoot: that stage cannot be malformed.)
	{name: "one branch too few", stage: AskBranches, branches: func(r uint64, br []uint64) (uint64, []uint64) { return r, br[:len(br)-1] }},
	{name: "one branch too many", stage: AskBranches, branches: func(r uint64, br []uint64) (uint64, []uint64) { return r, append(br, 0) }},
	{name: "no branches", stage: AskBranches, branches: func(r uint64, br []uint64) (uint64, []uint64) { return r, nil }},
	{name: "root off", stage: AskBranches, branches: func(r uint64, br []uint64) (uint64, []uint64) { return r ^ 1, br }},
	{name: "a branch off", stage: AskBranches, branches: spoilBranch},
	{name: "segments for a branch too few", stage: AskSegments, segments: func(s [][]uint64) [][]uint64 { return s[:len(s)-1] }},
	{name: "segments for a branch too many", stage: AskSegments, segments: func(s [][]uint64) [][]uint64 { return append(s, s[0]) }},
	{name: "no segments", stage: AskSegments, segments: func(s [][]uint64) [][]uint64 { return nil }},
	{name: "a branch's segments truncated", stage: AskSegments, segments: func(s [][]uint64) [][]uint64 {
		s[0] = s[0][:len(s[0])-1]
		return s
	}},
	{name: "a branch's segments too long", stage: AskSegments, segments: func(s [][]uint64) [][]uint64 {
		s[len(s)-1] = append(s[len(s)-1], 0)
		return s
	}},
	{name: "key in a segment not asked for", stage: AskKeys, keys: func(k []KeyItem, segs []int) []KeyItem {
		s := 0
		for slices.Contains(segs, s) {
			s++
		}
		return append(k, KeyItem{Bucket: "b", Key: "stray", Segment: s, Item: 1})
	}},
	{name: "key in a segment out of range", stage: AskKeys, keys: func(k []KeyItem, segs []int) []KeyItem {
		return append(k, KeyItem{Bucket: "b", Key: "stray", Segment: -1, Item: 1})
	}},
	{name: "duplicate key", stage: AskKeys, keys: func(k []KeyItem, segs []int) []KeyItem { return append(k, k[0]) }},
	{name: "duplicate key with another item", stage: AskKeys, keys: func(k []KeyItem, segs []int) []KeyItem {
		d := k[len(k)-1]
		d.Item ^= 1
		return append(k, d)
	}},
	{name: "zero item hash", stage: AskKeys, keys: func(k []KeyItem, segs []int) []KeyItem {
		k[0].Item = 0
		return k
	}},
	{name: "empty key", stage: AskKeys, keys: func(k []KeyItem, segs []int) []KeyItem {
		return append(k, KeyItem{Bucket: "b", Segment: segs[0], Item: 1})
	}},
	{name: "empty bucket", stage: AskKeys, keys: func(k []KeyItem, segs []int) []KeyItem {
		return append(k, KeyItem{Key: "k", Segment: segs[0], Item: 1})
	}},
}

// A malformed answer at any stage, from either side, arriving first or second, fails
// the exchange at once: Failed is final, reports no keys and is never Equal, and every
// later answer is refused without changing it.
func TestExchangeMalformedAnswerFails(t *testing.T) {
	const n = 3000
	for _, c := range corruptions {
		for _, bad := range []SideID{Local, Remote} {
			for _, badFirst := range []bool{true, false} {
				name := c.name + "/" + bad.String()
				if badFirst {
					name += " first"
				} else {
					name += " second"
				}
				t.Run(name, func(t *testing.T) {
					local, remote := replicas(n, merkle.MinSegments)
					diverge(local, remote, n, 30) // several branches and segments differ
					sides := [2]*memSide{local, remote}
					x := NewExchange(part, local.shape())
					for x.Question().Kind != c.stage {
						q := x.Question()
						if q.Kind == Done {
							t.Fatalf("done before %v", c.stage)
						}
						for id := range sides {
							if err := answer(x, SideID(id), sides[id], q, nil); err != nil {
								t.Fatal(err)
							}
						}
					}
					q := x.Question()
					good := 1 - bad
					if !badFirst {
						if err := answer(x, good, sides[good], q, nil); err != nil {
							t.Fatal(err)
						}
					}
					before := x.Result().Bytes
					err := answer(x, bad, sides[bad], q, &c)
					if !errors.Is(err, ErrBadAnswer) {
						t.Fatalf("err = %v, want ErrBadAnswer", err)
					}
					t.Log(err)
					if x.Question().Kind != Failed || x.Err() != err {
						t.Fatalf("after a malformed answer: %v, err %v", x.Question().Kind, x.Err())
					}
					res := x.Result()
					if res.Keys != nil || res.Equal {
						t.Fatalf("a failed exchange reported %d keys, equal %v", len(res.Keys), res.Equal)
					}
					if res.Bytes <= before {
						t.Errorf("the malformed answer's bytes were not counted")
					}
					for id := range sides {
						if x.Waiting(SideID(id)) {
							t.Errorf("failed, still waiting for %v", SideID(id))
						}
						if err := answer(x, SideID(id), sides[id], q, nil); !errors.Is(err, ErrNotAsked) {
							t.Errorf("%v answering a failed exchange: %v, want ErrNotAsked", SideID(id), err)
						}
					}
					if got := x.Result(); !reflect.DeepEqual(got, res) || x.Question().Kind != Failed {
						t.Errorf("a failed exchange changed: %+v → %+v", res, got)
					}
				})
			}
		}
	}
}

// Bytes are what the caller says each answer cost, whatever the sides.
func TestExchangeCountsBytesGiven(t *testing.T) {
	x := NewExchange(part, Shape{Branches: 2, SegmentsPerBranch: 2})
	steps := []func() error{
		func() error { return x.AnswerRoot(Remote, 3, 1) },
		func() error { return x.AnswerRoot(Local, 1, 10) },
		func() error { return x.AnswerBranches(Local, 1, []uint64{1, 0}, 100) },
		func() error { return x.AnswerBranches(Remote, 3, []uint64{1, 2}, 1000) },
		func() error { return x.AnswerSegments(Remote, [][]uint64{{0, 2}}, 10000) },
		func() error { return x.AnswerSegments(Local, [][]uint64{{0, 0}}, 100000) },
		func() error {
			return x.AnswerKeys(Local, nil, 1000000)
		},
		func() error {
			return x.AnswerKeys(Remote, []KeyItem{{Bucket: "b", Key: "k", Segment: 3, Item: 2}}, 10000000)
		},
	}
	want := []QuestionKind{AskRoot, AskBranches, AskBranches, AskSegments, AskSegments, AskKeys, AskKeys, Done}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if q := x.Question(); q.Kind != want[i] {
			t.Fatalf("after step %d: %v, want %v", i, q.Kind, want[i])
		}
		if i == 3 && !slices.Equal(x.Question().Branches, []int{1}) {
			t.Fatalf("asks branches %v, want [1]", x.Question().Branches)
		}
		if i == 5 && !slices.Equal(x.Question().Segments, []int{3}) {
			t.Fatalf("asks segments %v, want [3]", x.Question().Segments)
		}
	}
	want2 := Result{Partition: part, BranchesDiffered: 1, SegmentsDiffered: 1, Bytes: 11111111,
		Keys: []KeyRef{{Bucket: "b", Key: "k", RemoteItem: 2}}}
	if res := x.Result(); !reflect.DeepEqual(res, want2) {
		t.Fatalf("%+v, want %+v", res, want2)
	}
}

// The caller may keep and change what Question and Result return.
func TestExchangeQuestionIsACopy(t *testing.T) {
	local, remote := replicas(300, merkle.MinSegments)
	diverge(local, remote, 300, 3)
	x := NewExchange(part, local.shape())
	sides := [2]*memSide{local, remote}
	for x.Question().Kind != Done {
		q := x.Question()
		for i := range q.Branches {
			q.Branches[i] = -1
		}
		for i := range q.Segments {
			q.Segments[i] = -1
		}
		for id := range sides {
			if err := answer(x, SideID(id), sides[id], x.Question(), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	res := x.Result()
	res.Keys[0].Bucket = "changed"
	checkResult(t, x.Result(), local, remote)
}
