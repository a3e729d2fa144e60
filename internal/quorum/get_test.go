package quorum

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/version"
)

func sib(actor string, counter uint64, value string, wall int64) version.Sibling {
	return version.Sibling{
		Dot:       version.Dot{Actor: actor, Counter: counter},
		Value:     []byte(value),
		Timestamp: version.HLC{Wall: wall},
	}
}

// Objects of one key as replicas may hold them.
var (
	empty = version.Object{}
	x1    = version.Object{}.Update(nil, sib("a", 1, "x1", 10)) // a's first write
	x2    = x1.Update(x1.Clock, sib("a", 2, "x2", 20))          // supersedes x1
	y1    = version.Object{}.Update(nil, sib("b", 1, "y1", 15)) // concurrent with x1 and x2
	x1y1  = version.Merge(x1, y1)                               // siblings x1, y1
	z3    = x1y1.Update(x1y1.Clock, sib("c", 1, "z", 30))       // resolves x1 and y1
)

// getRun drives a Get the way the node shell does: an event, then Ready, recording all.
type getRun struct {
	t       *testing.T
	g       *Get
	answer  *Answer
	repairs []Repair // every repair asked for, in order
	last    Ready    // the last Ready
}

func newGetRun(t *testing.T, spec GetSpec, targets []Target) *getRun {
	t.Helper()
	r := &getRun{t: t, g: NewGet(spec, targets)}
	r.ready()
	return r
}

func (r *getRun) ready() Ready {
	r.t.Helper()
	rd := r.g.Ready()
	if rd.Answer != nil {
		if r.answer != nil {
			r.t.Fatalf("second answer %+v after %+v", *rd.Answer, *r.answer)
		}
		r.answer = rd.Answer
	}
	if rd.Done && r.answer == nil {
		r.t.Fatalf("Done before an answer")
	}
	r.repairs = append(r.repairs, rd.Repairs...)
	r.last = rd
	return rd
}

func (r *getRun) reply(node string, obj version.Object) Ready {
	r.t.Helper()
	r.g.Reply(node, obj)
	return r.ready()
}

func (r *getRun) fail(node string) Ready {
	r.t.Helper()
	r.g.Fail(node)
	return r.ready()
}

func (r *getRun) repairDone(node string) Ready {
	r.t.Helper()
	r.g.RepairDone(node)
	return r.ready()
}

func (r *getRun) timeout() Ready {
	r.t.Helper()
	r.g.Timeout()
	return r.ready()
}

// wantAnswer checks the answer is out, succeeded and holds want.
func (r *getRun) wantAnswer(want version.Object, stale bool, replies int) {
	r.t.Helper()
	if r.answer == nil {
		r.t.Fatalf("no answer yet")
	}
	a := r.answer
	if a.Err != nil {
		r.t.Fatalf("answer failed: %v", a.Err)
	}
	if !a.Object.Equal(want) {
		r.t.Fatalf("answer object %v, want %v", a.Object, want)
	}
	if a.Stale != stale || a.Replies != replies {
		r.t.Fatalf("answer Stale=%v Replies=%d, want Stale=%v Replies=%d", a.Stale, a.Replies, stale, replies)
	}
}

func (r *getRun) wantFailure(want QuorumError, replies int) {
	r.t.Helper()
	if r.answer == nil {
		r.t.Fatalf("no answer yet")
	}
	var qe *QuorumError
	if !errors.As(r.answer.Err, &qe) {
		r.t.Fatalf("answer error %v, want a *QuorumError", r.answer.Err)
	}
	if *qe != want {
		r.t.Fatalf("answer error %+v, want %+v", *qe, want)
	}
	if r.answer.Replies != replies {
		r.t.Fatalf("answer Replies=%d, want %d", r.answer.Replies, replies)
	}
	if !r.answer.Object.Empty() {
		r.t.Fatalf("failed answer carries object %v", r.answer.Object)
	}
}

func (r *getRun) wantNoAnswer() {
	r.t.Helper()
	if r.answer != nil {
		r.t.Fatalf("answered early: %+v", *r.answer)
	}
}

func (r *getRun) wantDone(done bool) {
	r.t.Helper()
	if r.last.Done != done {
		r.t.Fatalf("Done = %v, want %v", r.last.Done, done)
	}
}

// wantRepairs checks the repairs asked for so far, as "node=object" in order.
func (r *getRun) wantRepairs(want ...Repair) {
	r.t.Helper()
	if !slices.EqualFunc(r.repairs, want, func(a, b Repair) bool { return a.Node == b.Node && a.Object.Equal(b.Object) }) {
		r.t.Fatalf("repairs\n got  %s\n want %s", fmtRepairs(r.repairs), fmtRepairs(want))
	}
}

func fmtRepairs(rs []Repair) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s=%v", r.Node, r.Object))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func TestGetTestObjects(t *testing.T) {
	// The fixtures mean what the tests assume.
	if !version.Merge(x1, x2).Equal(x2) || !version.Merge(x2, z3).Clock.Descends(z3.Clock) {
		t.Fatal("x2 does not supersede x1")
	}
	if len(x1y1.Siblings) != 2 || len(version.Merge(x2, y1).Siblings) != 2 {
		t.Fatal("x and y are not concurrent")
	}
	if !version.Merge(x1y1, z3).Equal(z3) || len(z3.Siblings) != 1 {
		t.Fatal("z3 does not resolve x1 and y1")
	}
}

func TestGetAnswersAfterR(t *testing.T) {
	for _, mode := range []RepairMode{RepairBlocking, RepairAsync, RepairNone} {
		t.Run(mode.String(), func(t *testing.T) {
			r := newGetRun(t, GetSpec{R: 2, Repair: mode}, primaries("a", "b", "c"))
			r.wantNoAnswer()
			r.wantDone(false)
			r.reply("a", x2)
			r.wantNoAnswer()
			r.reply("b", x2)
			r.wantAnswer(x2, false, 2)
			r.wantDone(false) // c has not answered
			r.reply("c", x2)
			r.wantDone(true)
			r.wantRepairs()
		})
	}
}

func TestGetMergesSiblings(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 2, Repair: RepairAsync}, primaries("a", "b", "c"))
	r.reply("b", y1)
	r.reply("a", x1)
	r.wantAnswer(x1y1, true, 2)
	if got := len(r.answer.Object.Siblings); got != 2 {
		t.Fatalf("answer has %d siblings, want 2", got)
	}
	// Both replicas miss the other's sibling; targets are repaired in target order.
	r.wantRepairs(Repair{"a", x1y1}, Repair{"b", x1y1})
}

func TestGetNewerReplyWins(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 3, Repair: RepairNone}, primaries("a", "b", "c"))
	r.reply("a", x1)
	r.reply("b", x2)
	r.reply("c", x1y1)
	want := version.Merge(x2, y1)
	r.wantAnswer(want, true, 3)
	r.wantDone(true)
	r.wantRepairs() // repair is off, but the answer still reports the stale replicas
}

func TestGetLWW(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 2, Repair: RepairAsync, LWW: true}, primaries("a", "b", "c"))
	r.reply("a", x1) // wall 10
	r.reply("b", y1) // wall 15: the last writer
	want := x1y1.LWW()
	if len(want.Siblings) != 1 || string(want.Siblings[0].Value) != "y1" {
		t.Fatalf("fixture: LWW of x1y1 = %v", want)
	}
	r.wantAnswer(want, true, 2)
	// b holds y1 but not x1's dot in its clock, so it is behind the LWW object too.
	r.wantRepairs(Repair{"a", want}, Repair{"b", want})

	// A single sibling is left alone.
	r = newGetRun(t, GetSpec{R: 2, Repair: RepairAsync, LWW: true}, primaries("a", "b"))
	r.reply("a", x2)
	r.reply("b", x1)
	r.wantAnswer(x2, true, 2)
	r.wantRepairs(Repair{"b", x2})
}

func TestGetPrimaryQuorum(t *testing.T) {
	targets := append(primaries("a", "b"), fallbacks("x", "y")...)

	t.Run("fallback replies count toward R only", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 2, PR: 1, Repair: RepairNone}, targets)
		r.reply("x", x1)
		r.reply("y", x1)
		r.wantNoAnswer() // R met, PR not
		r.reply("b", x1)
		r.wantAnswer(x1, false, 3)
	})
	t.Run("pr fails early", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 1, PR: 2, Repair: RepairNone}, targets)
		r.reply("x", x1)
		r.reply("a", x1)
		r.wantNoAnswer()
		r.fail("b")
		r.wantFailure(QuorumError{Kind: "pr", Required: 2, Acks: 1}, 2)
	})
	t.Run("pr fails on timeout", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 2, PR: 2, Repair: RepairNone}, targets)
		r.reply("x", x1)
		r.reply("y", x1)
		r.reply("a", x1)
		r.timeout()
		r.wantFailure(QuorumError{Kind: "pr", Required: 2, Acks: 1, Timeout: true}, 3)
		r.wantDone(true)
	})
	t.Run("pr impossible with fallbacks only", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 1, PR: 1}, fallbacks("x", "y"))
		r.wantFailure(QuorumError{Kind: "pr", Required: 1, Acks: 0}, 0)
	})
	t.Run("r is reported before pr", func(t *testing.T) {
		// Failing a rules out both R=3 and PR=2 at once.
		r := newGetRun(t, GetSpec{R: 3, PR: 2}, append(primaries("a", "b"), fallbacks("x")...))
		r.fail("a")
		r.wantFailure(QuorumError{Kind: "r", Required: 3, Acks: 0}, 0)
	})
	t.Run("pr is reported while r is still possible", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 2, PR: 2}, targets)
		r.reply("x", x1)
		r.wantNoAnswer()
		r.fail("a")
		r.wantFailure(QuorumError{Kind: "pr", Required: 2, Acks: 0}, 1)
	})
}

func TestGetQuorumFailure(t *testing.T) {
	t.Run("early", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 2}, primaries("a", "b", "c"))
		r.fail("a")
		r.wantNoAnswer()
		r.reply("b", x1)
		r.wantNoAnswer()
		r.fail("c")
		r.wantFailure(QuorumError{Kind: "r", Required: 2, Acks: 1}, 1)
		r.wantDone(true)
	})
	t.Run("r above targets", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 3}, primaries("a", "b"))
		r.wantFailure(QuorumError{Kind: "r", Required: 3, Acks: 0}, 0)
		r.wantDone(false) // the replies are still on their way
	})
	t.Run("timeout", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 3}, primaries("a", "b", "c"))
		r.reply("a", x1)
		r.reply("c", x1)
		r.timeout()
		r.wantFailure(QuorumError{Kind: "r", Required: 3, Acks: 2, Timeout: true}, 2)
		r.wantDone(true)
		// Nothing arrives after the deadline.
		r.reply("b", x2)
		if len(r.last.Repairs) != 0 || !r.last.Done {
			t.Fatalf("reply after the deadline: %+v", r.last)
		}
	})
	t.Run("timeout with no replies", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 1}, primaries("a"))
		r.timeout()
		r.wantFailure(QuorumError{Kind: "r", Required: 1, Acks: 0, Timeout: true}, 0)
	})
	t.Run("a failed read repairs nothing, in any order", func(t *testing.T) {
		for _, order := range [][]string{{"-c", "a", "b"}, {"a", "-c", "b"}, {"a", "b", "-c"}} {
			r := newGetRun(t, GetSpec{R: 3, Repair: RepairAsync}, primaries("a", "b", "c"))
			for _, ev := range order {
				switch ev {
				case "a":
					r.reply("a", x1)
				case "b":
					r.reply("b", empty)
				default:
					r.fail("c")
				}
			}
			r.wantDone(true)
			r.wantRepairs()
			r.timeout()
			r.wantRepairs()
			r.wantDone(true)
		}
	})
	t.Run("timeout after the answer changes nothing", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 1, Repair: RepairNone}, primaries("a", "b"))
		r.reply("a", x1)
		r.wantAnswer(x1, false, 1)
		r.timeout()
		r.wantAnswer(x1, false, 1)
		r.wantDone(true)
	})
}

func TestGetBlockingRepair(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 2, Repair: RepairBlocking}, primaries("a", "b", "c"))
	r.reply("a", x2)
	rd := r.reply("b", x1)
	r.wantNoAnswer() // quorum met, but b is stale: repair first
	if len(rd.Repairs) != 1 {
		t.Fatalf("Ready = %+v, want one repair", rd)
	}
	r.wantRepairs(Repair{"b", x2})
	r.wantDone(false)
	r.repairDone("a") // not in repair: ignored
	r.repairDone("q") // unknown node: ignored
	r.wantNoAnswer()
	r.repairDone("b")
	r.wantAnswer(x2, true, 2)
	r.wantDone(false) // c still to answer
	r.reply("c", x2)
	r.wantDone(true)
	r.repairDone("b") // a second done: ignored
	r.wantRepairs(Repair{"b", x2})
}

func TestGetBlockingWaitsForEveryRepair(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 3, Repair: RepairBlocking}, primaries("a", "b", "c"))
	r.reply("a", x1)
	r.reply("b", empty)
	r.reply("c", y1)
	r.wantRepairs(Repair{"a", x1y1}, Repair{"b", x1y1}, Repair{"c", x1y1})
	r.repairDone("c")
	r.repairDone("a")
	r.wantNoAnswer()
	r.wantDone(false)
	r.repairDone("b")
	r.wantAnswer(x1y1, true, 3)
	r.wantDone(true)
}

func TestGetBlockingTimeout(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 2, Repair: RepairBlocking}, primaries("a", "b", "c"))
	r.reply("a", x2)
	r.reply("b", x1)
	r.wantNoAnswer()
	r.timeout() // the repair to b never came back
	r.wantAnswer(x2, true, 2)
	r.wantDone(true)
	r.repairDone("b") // late: ignored
	r.wantDone(true)
	r.wantRepairs(Repair{"b", x2})
}

// A reply that arrives while a blocking read waits for its repairs is a late reply: it is
// repaired (and waited for) like any other.
func TestGetBlockingReplyWhileRepairing(t *testing.T) {
	t.Run("stale", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 2, Repair: RepairBlocking}, primaries("a", "b", "c"))
		r.reply("a", x2)
		r.reply("b", x1)
		r.reply("c", empty) // arrives while b is being repaired
		r.wantRepairs(Repair{"b", x2}, Repair{"c", x2})
		r.repairDone("b")
		r.wantNoAnswer() // c's repair is part of the blocking wait
		r.repairDone("c")
		r.wantAnswer(x2, true, 2)
		r.wantDone(true)
	})
	t.Run("newer", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 2, Repair: RepairBlocking}, primaries("a", "b", "c"))
		r.reply("a", x1)
		r.reply("b", empty)
		r.wantRepairs(Repair{"b", x1})
		r.reply("c", x2) // newer than the decided answer, arrives before it is released
		// a is behind c now; b is already being repaired and gets one repair per read.
		r.wantRepairs(Repair{"b", x1}, Repair{"a", x2})
		r.repairDone("b")
		r.repairDone("a")
		r.wantAnswer(x1, true, 2) // the answer is fixed when the quorum is met
		r.wantDone(true)
	})
}

func TestGetAsyncRepair(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 2, Repair: RepairAsync}, primaries("a", "b", "c"))
	r.reply("a", x2)
	rd := r.reply("b", x1)
	if rd.Answer == nil || len(rd.Repairs) != 1 {
		t.Fatalf("Ready = %+v, want the answer and the repair together", rd)
	}
	r.wantAnswer(x2, true, 2)
	r.wantRepairs(Repair{"b", x2})
	r.reply("c", x2)
	r.wantDone(false) // b's repair is outstanding
	r.repairDone("b")
	r.wantDone(true)
}

func TestGetNoRepair(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 2, Repair: RepairNone}, primaries("a", "b", "c"))
	r.reply("a", x2)
	r.reply("b", x1)
	r.wantAnswer(x2, true, 2)
	r.wantDone(false)
	r.reply("c", empty)
	r.wantDone(true)
	r.wantRepairs()
}

func TestGetNotFound(t *testing.T) {
	t.Run("repaired from another replica", func(t *testing.T) {
		r := newGetRun(t, GetSpec{R: 2, Repair: RepairAsync}, primaries("a", "b", "c"))
		r.reply("a", empty)
		r.reply("b", x1)
		r.wantAnswer(x1, true, 2)
		r.wantRepairs(Repair{"a", x1})
	})
	t.Run("nowhere", func(t *testing.T) {
		for _, mode := range []RepairMode{RepairBlocking, RepairAsync, RepairNone} {
			r := newGetRun(t, GetSpec{R: 2, Repair: mode}, primaries("a", "b", "c"))
			r.reply("a", empty)
			r.reply("c", empty)
			r.wantAnswer(empty, false, 2)
			r.reply("b", empty)
			r.wantDone(true)
			r.wantRepairs()
		}
	})
}

func TestGetLateReplies(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 1, Repair: RepairAsync}, primaries("a", "b", "c"))
	r.reply("a", x1)
	r.wantAnswer(x1, false, 1)
	r.wantDone(false)
	r.reply("b", empty) // late and behind
	r.wantRepairs(Repair{"b", x1})
	r.reply("c", x2) // late and ahead: a is behind now; b already has its repair
	r.wantRepairs(Repair{"b", x1}, Repair{"a", x2})
	r.wantAnswer(x1, false, 1) // the answer does not change
	r.repairDone("a")
	r.wantDone(false)
	r.repairDone("b")
	r.wantDone(true)

	// In blocking mode too, after the answer.
	r = newGetRun(t, GetSpec{R: 1, Repair: RepairBlocking}, primaries("a", "b"))
	r.reply("a", x2)
	r.wantAnswer(x2, false, 1)
	r.reply("b", x1)
	r.wantRepairs(Repair{"b", x2})
	r.wantDone(false)
	r.repairDone("b")
	r.wantDone(true)

	// And never with repair off.
	r = newGetRun(t, GetSpec{R: 1, Repair: RepairNone}, primaries("a", "b"))
	r.reply("a", x2)
	r.reply("b", x1)
	r.wantDone(true)
	r.wantRepairs()
}

func TestGetReadyDrains(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 2, Repair: RepairAsync}, primaries("a", "b"))
	r.reply("a", x1)
	r.reply("b", y1)
	if r.last.Answer == nil || len(r.last.Repairs) != 2 || r.last.Done {
		t.Fatalf("Ready = %+v", r.last)
	}
	// A second Ready without events carries nothing new.
	rd := r.ready()
	if rd.Answer != nil || len(rd.Repairs) != 0 || rd.Done {
		t.Fatalf("second Ready = %+v, want empty", rd)
	}
	r.repairDone("a")
	r.repairDone("b")
	r.wantDone(true)
	// Done stays true.
	if rd := r.ready(); !rd.Done || rd.Answer != nil || len(rd.Repairs) != 0 {
		t.Fatalf("Ready after done = %+v", rd)
	}
}

func TestGetIgnoresDuplicatesAndStrangers(t *testing.T) {
	r := newGetRun(t, GetSpec{R: 2, Repair: RepairAsync}, primaries("a", "b", "c"))
	r.reply("z", x2) // not a target
	r.fail("q")
	r.reply("a", x1)
	r.reply("a", x2) // a second reply from a: the first stands
	r.fail("a")
	r.wantNoAnswer()
	r.reply("b", x1)
	r.wantAnswer(x1, false, 2)
	r.fail("c")
	r.wantDone(true)
	r.wantRepairs()
}

func TestGetAnswersOnce(t *testing.T) {
	// Every order of events on three replicas answers exactly once, and Done only after.
	type ev struct {
		node string
		obj  version.Object
		fail bool
	}
	evs := []ev{{"a", x1, false}, {"b", y1, false}, {"c", empty, true}}
	perms := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, mode := range []RepairMode{RepairBlocking, RepairAsync, RepairNone} {
		for R := 1; R <= 3; R++ {
			for _, p := range perms {
				r := newGetRun(t, GetSpec{R: R, Repair: mode}, primaries("a", "b", "c"))
				for _, i := range p {
					if evs[i].fail {
						r.fail(evs[i].node)
					} else {
						r.reply(evs[i].node, evs[i].obj)
					}
				}
				for _, rp := range r.repairs {
					r.repairDone(rp.Node)
				}
				if r.answer == nil || !r.last.Done {
					t.Fatalf("%v R=%d order %v: answer %v, Done %v", mode, R, p, r.answer, r.last.Done)
				}
				if (R == 3) != (r.answer.Err != nil) {
					t.Fatalf("%v R=%d order %v: answer error %v", mode, R, p, r.answer.Err)
				}
			}
		}
	}
}
