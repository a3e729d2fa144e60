package quorum

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/quorumkv/quorumkv/internal/version"
	"pgregory.net/rapid"
)

// genReplicaObjects draws what n replicas of one key hold: a short history of writes, each
// made on top of an earlier version with the context of an earlier version (so there are
// supersessions and siblings), and each replica holding the merge of a random subset of it.
func genReplicaObjects(t *rapid.T, n int) []version.Object {
	counters := map[string]uint64{}
	pool := []version.Object{{}}
	pick := func(label string) version.Object {
		return pool[rapid.IntRange(0, len(pool)-1).Draw(t, label)]
	}
	writes := rapid.IntRange(0, 6).Draw(t, "writes")
	for w := range writes {
		base, ctx := pick("base"), pick("ctx").Clock
		actor := rapid.SampledFrom([]string{"p", "q", "r"}).Draw(t, "actor")
		counters[actor] = base.NextCounter(actor, counters[actor])
		pool = append(pool, base.Update(ctx, version.Sibling{
			Dot:       version.Dot{Actor: actor, Counter: counters[actor]},
			Value:     fmt.Appendf(nil, "v%d", w),
			Tombstone: rapid.IntRange(0, 4).Draw(t, "tombstone") == 4,
			Timestamp: version.HLC{Wall: rapid.Int64Range(0, 5).Draw(t, "wall")},
		}))
	}
	objs := make([]version.Object, n)
	for i := range objs {
		for j, o := range pool {
			if rapid.Bool().Draw(t, fmt.Sprintf("replica%d.has%d", i, j)) {
				objs[i] = version.Merge(objs[i], o)
			}
		}
	}
	return objs
}

// getModel is the reference for a read: what it must answer and repair, computed from the
// replies in arrival order.
type getModel struct {
	spec    GetSpec
	targets []Target
	objs    []version.Object

	st        []status
	order     []int // targets in reply order
	inRepair  map[string]bool
	repaired  map[string]bool
	timedOut  bool
	decided   bool    // the quorum was met (or ruled out)
	want      *Answer // the answer the read must give
	answered  bool    // the machine gave its answer
	decidedAt []int   // the replies the answer is the merge of
}

// merge is version.Merge of the replies of idx, in the order given, resolved for LWW.
func (m *getModel) merge(idx []int) version.Object {
	var o version.Object
	for _, i := range idx {
		o = version.Merge(o, m.objs[i])
	}
	if m.spec.LWW {
		o = o.LWW()
	}
	return o
}

func (m *getModel) counts() (replies, primary, waitAll, waitPrimary int) {
	for i, s := range m.st {
		switch s {
		case acked:
			replies++
			if m.targets[i].Primary {
				primary++
			}
		case waiting:
			waitAll++
			if m.targets[i].Primary {
				waitPrimary++
			}
		}
	}
	return
}

// decide works out the answer once the replies allow it.
func (m *getModel) decide() {
	if m.decided {
		return
	}
	replies, primary, waitAll, waitPrimary := m.counts()
	switch {
	case replies >= m.spec.R && primary >= m.spec.PR:
		m.decidedAt = slices.Clone(m.order)
		obj := m.merge(m.order)
		a := &Answer{Object: obj, Replies: replies}
		for _, i := range m.order {
			if !obj.Empty() && !m.objs[i].Equal(obj) {
				a.Stale = true
			}
		}
		m.want = a
	case replies < m.spec.R && (m.timedOut || replies+waitAll < m.spec.R):
		m.want = &Answer{Replies: replies, Err: &QuorumError{Kind: "r", Required: m.spec.R, Acks: replies, Timeout: m.timedOut}}
	case primary < m.spec.PR && (m.timedOut || primary+waitPrimary < m.spec.PR):
		m.want = &Answer{Replies: replies, Err: &QuorumError{Kind: "pr", Required: m.spec.PR, Acks: primary, Timeout: m.timedOut}}
	default:
		return
	}
	m.decided = true
}

// check compares what the machine did after one event with the model.
func (m *getModel) check(t *rapid.T, rd Ready, event string) {
	wasAnswered := m.answered
	m.decide()
	merged := m.merge(m.order)
	for _, r := range rd.Repairs {
		i := index(m.targets, r.Node)
		switch {
		case m.spec.Repair == RepairNone:
			t.Fatalf("%s: repair %s=%v with read repair off", event, r.Node, r.Object)
		case m.want == nil || m.want.Err != nil:
			t.Fatalf("%s: repair %s=%v without a successful quorum", event, r.Node, r.Object)
		case i < 0 || m.st[i] != acked:
			t.Fatalf("%s: repair of %s, which has not replied", event, r.Node)
		case m.repaired[r.Node]:
			t.Fatalf("%s: second repair of %s", event, r.Node)
		case !r.Object.Equal(merged):
			t.Fatalf("%s: repair %s=%v, want the merge of the replies so far %v", event, r.Node, r.Object, merged)
		case m.objs[i].Equal(r.Object):
			t.Fatalf("%s: repair of %s, which already holds %v", event, r.Node, r.Object)
		}
		{
			// A later merge than the answer: it contains every reply the answer merged.
			if !r.Object.Clock.Descends(m.want.Object.Clock) {
				t.Fatalf("%s: repair %v does not descend the answer %v", event, r.Object, m.want.Object)
			}
			if !m.spec.LWW && !version.Merge(m.want.Object, r.Object).Equal(r.Object) {
				t.Fatalf("%s: repair %v loses part of the answer %v", event, r.Object, m.want.Object)
			}
		}
		m.repaired[r.Node] = true
		m.inRepair[r.Node] = true
	}
	// Every replica that replied behind the merge is repaired, once the read succeeded.
	if m.spec.Repair != RepairNone && m.want != nil && m.want.Err == nil && !merged.Empty() {
		for _, i := range m.order {
			if n := m.targets[i].Node; !m.repaired[n] && !m.objs[i].Equal(merged) {
				t.Fatalf("%s: %s holds %v, behind %v, and was not repaired", event, n, m.objs[i], merged)
			}
		}
	}

	if rd.Answer != nil {
		if m.answered {
			t.Fatalf("%s: a second answer", event)
		}
		m.answered = true
		a, w := rd.Answer, m.want
		if w == nil {
			t.Fatalf("%s: answered %+v before the quorum was decided", event, *a)
		}
		if (a.Err == nil) != (w.Err == nil) {
			t.Fatalf("%s: answer error %v, want %v", event, a.Err, w.Err)
		}
		if w.Err != nil {
			var qe *QuorumError
			if !errors.As(a.Err, &qe) || *qe != *w.Err.(*QuorumError) {
				t.Fatalf("%s: answer error %v, want %v", event, a.Err, w.Err)
			}
		} else if !a.Object.Equal(w.Object) {
			t.Fatalf("%s: answer %v, want the merge %v of the replies %v", event, a.Object, w.Object, m.decidedAt)
		}
		if a.Stale != w.Stale || a.Replies != w.Replies {
			t.Fatalf("%s: answer Stale=%v Replies=%d, want Stale=%v Replies=%d", event, a.Stale, a.Replies, w.Stale, w.Replies)
		}
	}
	// When the answer comes: as soon as it is decided, except that a successful blocking
	// read holds it until its repairs are done or the deadline passes.
	holding := m.spec.Repair == RepairBlocking && m.want != nil && m.want.Err == nil && len(m.inRepair) > 0
	if shouldHave := wasAnswered || m.decided && !holding; shouldHave != m.answered {
		t.Fatalf("%s: answered=%v, want %v (decided=%v, repairs in flight %v)", event, m.answered, shouldHave, m.decided, m.inRepair)
	}
	_, _, waitAll, _ := m.counts()
	if done := m.answered && waitAll == 0 && len(m.inRepair) == 0; rd.Done != done {
		t.Fatalf("%s: Done=%v, want %v", event, rd.Done, done)
	}
}

// TestPropGet drives reads over random replica states with random orders of replies,
// failures, repair acks and deadlines, and checks every step against getModel: the answer is
// the merge of the replies in when the quorum was met, every repair is a later merge sent
// once to a replica that is behind it, blocking reads hold the answer until their repairs are
// done, and Done comes exactly when nothing is left to wait for.
func TestPropGet(t *testing.T) {
	for _, mode := range []RepairMode{RepairBlocking, RepairAsync, RepairNone} {
		t.Run(mode.String(), func(t *testing.T) { rapid.Check(t, propGet(mode)) })
	}
}

func propGet(mode RepairMode) func(*rapid.T) {
	return func(t *rapid.T) {
		n := rapid.IntRange(1, 5).Draw(t, "n")
		targets := make([]Target, n)
		primaries := 0
		for i := range targets {
			targets[i] = Target{Node: fmt.Sprintf("n%d", i), Primary: rapid.IntRange(0, 3).Draw(t, "fallback") > 0}
			if targets[i].Primary {
				primaries++
			}
		}
		spec := GetSpec{
			R:      rapid.IntRange(1, n).Draw(t, "r"),
			PR:     rapid.IntRange(0, min(primaries+1, n)).Draw(t, "pr"),
			Repair: mode,
			LWW:    rapid.Bool().Draw(t, "lww"),
		}
		m := &getModel{
			spec: spec, targets: targets, objs: genReplicaObjects(t, n),
			st: make([]status, n), inRepair: map[string]bool{}, repaired: map[string]bool{},
		}
		g := NewGet(spec, targets)
		m.check(t, g.Ready(), "start")

		for step := 0; step < 4*n+4; step++ {
			var pending []int
			for i, s := range m.st {
				if s == waiting {
					pending = append(pending, i)
				}
			}
			var repairing []string
			for node := range m.inRepair {
				repairing = append(repairing, node)
			}
			slices.Sort(repairing)
			if len(pending) == 0 && len(repairing) == 0 {
				break
			}
			var event string
			switch action := rapid.IntRange(0, 9).Draw(t, "action"); {
			case action == 0:
				event = "timeout"
				g.Timeout()
				m.timedOut = true
				for i := range m.st {
					if m.st[i] == waiting {
						m.st[i] = failedStatus
					}
				}
				clear(m.inRepair)
			case action == 1:
				// Noise: a stranger, a second reply, a repair that is not in flight.
				i := rapid.IntRange(0, n-1).Draw(t, "noise")
				node := targets[i].Node
				switch {
				case m.st[i] != waiting:
					event = "second reply from " + node
					g.Reply(node, m.objs[(i+1)%n])
					g.Fail(node)
				default:
					event = "stranger"
					g.Reply("stranger", m.objs[i])
				}
				if !m.inRepair[node] {
					g.RepairDone(node)
				}
			case action <= 3 && len(repairing) > 0:
				node := rapid.SampledFrom(repairing).Draw(t, "repaired")
				event = "repair done " + node
				g.RepairDone(node)
				delete(m.inRepair, node)
			case len(pending) > 0:
				i := rapid.SampledFrom(pending).Draw(t, "target")
				if rapid.IntRange(0, 3).Draw(t, "fails") == 0 {
					event = "fail " + targets[i].Node
					g.Fail(targets[i].Node)
					m.st[i] = failedStatus
				} else {
					event = fmt.Sprintf("reply %s=%v", targets[i].Node, m.objs[i])
					g.Reply(targets[i].Node, m.objs[i])
					m.st[i] = acked
					m.order = append(m.order, i)
				}
			default:
				continue
			}
			m.check(t, g.Ready(), event)
		}
		// The deadline ends every read.
		g.Timeout()
		m.timedOut = true
		for i := range m.st {
			if m.st[i] == waiting {
				m.st[i] = failedStatus
			}
		}
		clear(m.inRepair)
		rd := g.Ready()
		m.check(t, rd, "final timeout")
		if !m.answered || !rd.Done {
			t.Fatalf("after the deadline: answered=%v Done=%v", m.answered, rd.Done)
		}
	}
}

// TestPropPut checks random write specs and ack orders: the outcome is decided by the counts
// alone, is reached as soon as the counts allow, and never changes.
func TestPropPut(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 5).Draw(t, "n")
		targets := make([]Target, n)
		for i := range targets {
			targets[i] = Target{Node: fmt.Sprintf("n%d", i), Primary: rapid.Bool().Draw(t, "primary")}
		}
		spec := PutSpec{
			W:  rapid.IntRange(1, n+1).Draw(t, "w"),
			PW: rapid.IntRange(0, n+1).Draw(t, "pw"),
			DW: rapid.IntRange(0, n+1).Draw(t, "dw"),
		}
		p := NewPut(spec, targets)
		first := p.Outcome()
		nodes := rapid.SliceOfN(rapid.IntRange(0, n), 0, 3*n+1).Draw(t, "events")
		for _, i := range nodes {
			node := "stranger"
			if i < n {
				node = targets[i].Node
			}
			before := p.Outcome()
			if rapid.IntRange(0, 3).Draw(t, "fails") == 0 {
				p.Fail(node)
			} else {
				p.Ack(node, rapid.Bool().Draw(t, "durable"))
			}
			if before != Pending && p.Outcome() != before {
				t.Fatalf("outcome changed from %v to %v", before, p.Outcome())
			}
			acks, primary, durable := p.Counts()
			met := acks >= spec.W && primary >= spec.PW && durable >= spec.DW
			if met && first == Pending && before == Pending && p.Outcome() != Succeeded {
				t.Fatalf("requirements met (%d,%d,%d for %+v) but outcome %v", acks, primary, durable, spec, p.Outcome())
			}
			if p.Outcome() == Succeeded && !met {
				t.Fatalf("succeeded with %d,%d,%d for %+v", acks, primary, durable, spec)
			}
			if p.Settled() && p.Outcome() == Pending {
				t.Fatalf("every target answered and the outcome is still pending")
			}
		}
		p.Timeout()
		if p.Outcome() == Pending {
			t.Fatal("pending after the deadline")
		}
		var qe *QuorumError
		if p.Outcome() == Failed && !errors.As(p.Err(), &qe) {
			t.Fatalf("failed with Err() = %v", p.Err())
		}
		if p.Outcome() == Succeeded && p.Err() != nil {
			t.Fatalf("succeeded with Err() = %v", p.Err())
		}
	})
}
