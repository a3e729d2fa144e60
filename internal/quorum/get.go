package quorum

import (
	"fmt"
	"strings"

	"github.com/quorumkv/quorumkv/internal/version"
)

// RepairMode says what a read does with replicas that answered with less than the merge.
type RepairMode int

const (
	// RepairBlocking sends the merged object to stale replicas and waits for their acks
	// (or the deadline) before answering, so a following read at any R sees it there.
	RepairBlocking RepairMode = iota
	// RepairAsync answers at once and repairs in the background.
	RepairAsync
	// RepairNone leaves stale replicas to anti-entropy.
	RepairNone
)

func (m RepairMode) String() string {
	switch m {
	case RepairAsync:
		return "async"
	case RepairNone:
		return "none"
	default:
		return "blocking"
	}
}

// ParseRepairMode reads "blocking", "async" or "none".
func ParseRepairMode(s string) (RepairMode, error) {
	switch strings.ToLower(s) {
	case "blocking":
		return RepairBlocking, nil
	case "async":
		return RepairAsync, nil
	case "none":
		return RepairNone, nil
	}
	return 0, fmt.Errorf("quorum: read_repair %q is not blocking, async or none", s)
}

// GetSpec says what a read needs.
type GetSpec struct {
	R, PR  int
	Repair RepairMode
	LWW    bool // resolve siblings to the last writer (conflict mode lww)
}

// Repair is an object to send to a replica that is behind.
type Repair struct {
	Node   string
	Object version.Object
}

// Answer is a read's result.
type Answer struct {
	Object  version.Object // merge of every reply; Empty when no replica had the key
	Err     error          // *QuorumError when R or PR was not met
	Stale   bool           // some replica that answered was behind the merge
	Replies int
}

// Ready is what the coordinator must do now.
type Ready struct {
	Repairs []Repair
	Answer  *Answer // non-nil exactly once
	Done    bool    // nothing more to wait for
}

// Get tracks one read.
type Get struct {
	spec     GetSpec
	targets  []Target
	st       []status
	objs     []version.Object
	repair   []status // per target: waiting when a repair is in flight
	inRepair []bool
	merged   version.Object
	answered bool
	failed   bool // the answer is a quorum failure: nothing to repair
	timedOut bool
	decided  *Answer // answer decided, waiting for blocking repairs
	out      Ready

	// Room for the per-target state of the usual N (3) and a stand-in, so that a read's
	// state machine is one allocation.
	stBuf, repairBuf [inlineTargets]status
	objsBuf          [inlineTargets]version.Object
	inRepairBuf      [inlineTargets]bool
}

const inlineTargets = 4

// NewGet starts a read of targets.
func NewGet(spec GetSpec, targets []Target) *Get {
	g := &Get{spec: spec, targets: targets}
	if n := len(targets); n <= inlineTargets {
		g.st, g.objs, g.repair, g.inRepair = g.stBuf[:n], g.objsBuf[:n], g.repairBuf[:n], g.inRepairBuf[:n]
	} else {
		g.st, g.objs = make([]status, n), make([]version.Object, n)
		g.repair, g.inRepair = make([]status, n), make([]bool, n)
	}
	g.step()
	return g
}

// Reply records node's stored object (Empty when it has none).
func (g *Get) Reply(node string, obj version.Object) {
	if i := index(g.targets, node); i >= 0 && g.st[i] == waiting {
		g.st[i] = acked
		g.objs[i] = obj
		g.step()
	}
}

// Fail records that node will not answer.
func (g *Get) Fail(node string) {
	if i := index(g.targets, node); i >= 0 && g.st[i] == waiting {
		g.st[i] = failedStatus
		g.step()
	}
}

// RepairDone records the end of a repair sent to node (acked or failed alike).
func (g *Get) RepairDone(node string) {
	if i := index(g.targets, node); i >= 0 && g.inRepair[i] {
		g.inRepair[i] = false
		g.step()
	}
}

// Timeout records that the deadline passed: answer now with what there is.
func (g *Get) Timeout() {
	g.timedOut = true
	for i := range g.st {
		if g.st[i] == waiting {
			g.st[i] = failedStatus
		}
	}
	for i := range g.inRepair {
		g.inRepair[i] = false
	}
	g.step()
}

// Ready returns and clears what the coordinator must do now.
func (g *Get) Ready() Ready {
	r := g.out
	g.out = Ready{}
	r.Done = g.done()
	return r
}

func (g *Get) done() bool {
	if !g.answered {
		return false
	}
	for i := range g.st {
		if g.st[i] == waiting || g.inRepair[i] {
			return false
		}
	}
	return true
}

// Counts returns the replies received so far: all, and from primaries.
func (g *Get) Counts() (replies, primary int) {
	replies, primary, _, _ = g.counts()
	return replies, primary
}

// Settled reports whether every target has replied or failed.
func (g *Get) Settled() bool {
	_, _, waitAll, _ := g.counts()
	return waitAll == 0
}

func (g *Get) counts() (replies, primary, waitAll, waitPrimary int) {
	for i, s := range g.st {
		switch s {
		case acked:
			replies++
			if g.targets[i].Primary {
				primary++
			}
		case waiting:
			waitAll++
			if g.targets[i].Primary {
				waitPrimary++
			}
		}
	}
	return
}

func (g *Get) mergeReplies() {
	var m version.Object
	for i, s := range g.st {
		if s == acked {
			m = version.Merge(m, g.objs[i])
		}
	}
	if g.spec.LWW && len(m.Siblings) > 1 {
		m = m.LWW()
	}
	g.merged = m
}

// staleRepairs queues repairs for replied replicas behind the merge; it reports whether any
// replica was behind.
func (g *Get) staleRepairs() bool {
	stale := false
	for i, s := range g.st {
		if s != acked || g.inRepair[i] || g.repair[i] == acked || g.merged.Empty() {
			continue
		}
		if g.objs[i].Equal(g.merged) {
			continue
		}
		stale = true
		if g.spec.Repair == RepairNone {
			continue
		}
		g.inRepair[i] = true
		g.repair[i] = acked // at most one repair per replica per read
		g.out.Repairs = append(g.out.Repairs, Repair{Node: g.targets[i].Node, Object: g.merged})
	}
	return stale
}

func (g *Get) step() {
	replies, primary, waitAll, waitPrimary := g.counts()
	if g.answered || g.decided != nil {
		// Late replies, including those that arrive while a blocking read waits for its
		// repairs: repair them too, unless repairs are off or the read failed. The answer
		// stays the merge taken when the quorum was met; a blocking read also waits for
		// these repairs.
		if g.failed {
			return
		}
		g.mergeReplies()
		g.staleRepairs()
		if g.decided != nil && !g.blockingPending() {
			g.answer(g.decided)
		}
		return
	}
	met := replies >= g.spec.R && primary >= g.spec.PR
	if !met {
		var qe *QuorumError
		switch {
		case replies < g.spec.R && (g.timedOut || replies+waitAll < g.spec.R):
			qe = &QuorumError{Kind: "r", Required: g.spec.R, Acks: replies, Timeout: g.timedOut}
		case primary < g.spec.PR && (g.timedOut || primary+waitPrimary < g.spec.PR):
			qe = &QuorumError{Kind: "pr", Required: g.spec.PR, Acks: primary, Timeout: g.timedOut}
		}
		if qe != nil {
			g.failed = true
			g.answer(&Answer{Err: qe, Replies: replies})
		}
		return
	}
	g.mergeReplies()
	a := &Answer{Object: g.merged, Replies: replies}
	a.Stale = g.staleRepairs()
	if g.spec.Repair == RepairBlocking && g.blockingPending() {
		g.decided = a
		return
	}
	g.answer(a)
}

func (g *Get) blockingPending() bool {
	for _, r := range g.inRepair {
		if r {
			return true
		}
	}
	return false
}

func (g *Get) answer(a *Answer) {
	g.answered = true
	g.decided = nil
	g.out.Answer = a
}
