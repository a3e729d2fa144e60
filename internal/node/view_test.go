package node

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/membership"
	"github.com/quorumkv/quorumkv/internal/ring"
)

// viewWorld builds deriveView's inputs: members n1..nN, all up, with the records given.
type viewWorld struct {
	t       *testing.T
	rings   ringSet
	in      viewInputs
	members int
}

func newViewWorld(t *testing.T, members int) *viewWorld {
	w := &viewWorld{t: t, members: members}
	for i := 1; i <= members; i++ {
		w.in.members = append(w.in.members, membership.Member{NodeMeta: membership.NodeMeta{ID: fmt.Sprintf("n%d", i)}})
	}
	w.in.records = map[string]memberRecord{}
	w.in.reports = map[string]transferRecord{}
	w.in.alive = func(string) bool { return true }
	w.in.partitions, w.in.ns = 64, []int{3}
	return w
}

// set records id in state st; joining and leaving take the next epoch, as
// setMemberState does.
func (w *viewWorld) set(id string, st MemberState, ended string) {
	rec := memberRecord{State: st, Epoch: w.in.records[id].Epoch, Ended: ended}
	if st == StateJoining || st == StateLeaving {
		w.in.epoch++
		rec.Epoch, rec.Ended = w.in.epoch, ""
	}
	w.in.records[id] = rec
}

func (w *viewWorld) view() clusterView {
	w.t.Helper()
	v, err := deriveView(w.in, &w.rings)
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}

// reportAll has every member report every partition of v's change complete and settled.
func (w *viewWorld) reportAll(v clusterView) {
	done := make([]byte, (w.in.partitions+7)/8)
	for i := range done {
		done[i] = 0xff
	}
	for _, m := range w.in.members {
		w.in.reports[m.ID] = transferRecord{Change: v.change, Done: done, Settled: true}
	}
}

func members(r *ring.Ring) string {
	if r == nil {
		return "none"
	}
	return core.MembersKey(r)
}

// TestViewOfPartlyEndedChange: two nodes join; one has marked itself active (the change is
// over: its writer saw every member settled) and the other not yet. A node that reads the
// records before the settled reports puts the ring of all five in force — not a ring of
// four that no partition was transferred to.
func TestViewOfPartlyEndedChange(t *testing.T) {
	w := newViewWorld(t, 5)
	for _, id := range []string{"n1", "n2", "n3"} {
		w.set(id, StateActive, "")
	}
	w.set("n4", StateJoining, "")
	w.set("n5", StateJoining, "")
	v := w.view()
	if members(v.cur) != "n1,n2,n3" || members(v.next) != "n1,n2,n3,n4,n5" || v.over || v.heard {
		t.Fatalf("during the change: cur %s next %s over %v heard %v", members(v.cur), members(v.next), v.over, v.heard)
	}
	name := v.change
	w.set("n5", StateActive, name) // n5 saw every member settled; n4's record is not written yet

	v = w.view()
	if !v.over || members(v.cur) != "n1,n2,n3" || members(v.next) != "n1,n2,n3,n4,n5" || v.change != name {
		t.Fatalf("n5 marked active: over %v, cur %s next %s, change %q (want %q)", v.over, members(v.cur), members(v.next), v.change, name)
	}
	if c := v.completed(); members(c.cur) != "n1,n2,n3,n4,n5" || c.next != nil || c.states["n4"] != StateActive {
		t.Fatalf("completed: cur %s next %s n4 %s", members(c.cur), members(c.next), c.states["n4"])
	}

	// Without the record naming the change it ended, the same records gave a ring of four.
	w.in.records["n5"] = memberRecord{State: StateActive, Epoch: w.in.records["n5"].Epoch}
	if v := w.view(); v.over || members(v.cur) != "n1,n2,n3,n5" {
		t.Fatalf("a plain active record: over %v cur %s", v.over, members(v.cur))
	}
}

// TestViewNamesEveryChangeAnew: the cluster goes from 3 nodes to 5 and back to the same 3.
// The shrink has a name of its own: the reports every node made for the cluster's start
// (the change to the same ring) count for nothing, so nobody has heard of it and nothing
// has moved.
func TestViewNamesEveryChangeAnew(t *testing.T) {
	w := newViewWorld(t, 5)
	w.set("n1", StateActive, "")
	w.set("n2", StateJoining, "")
	w.set("n3", StateJoining, "")
	w.in.members = w.in.members[:3] // n4 and n5 are not started yet
	start := w.view()
	if members(start.next) != "n1,n2,n3" {
		t.Fatalf("start: next %s", members(start.next))
	}
	w.reportAll(start)
	if v := w.view(); !v.heard || slices.Contains(v.moved, false) {
		t.Fatalf("start: every report in, yet heard %v, moved %v", v.heard, v.moved)
	}
	w.set("n2", StateActive, start.change)
	w.set("n3", StateActive, start.change)

	w.in.members = newViewWorld(t, 5).in.members
	w.set("n4", StateJoining, "")
	w.set("n5", StateJoining, "")
	grow := w.view()
	w.reportAll(grow)
	w.set("n4", StateActive, grow.change)
	w.set("n5", StateActive, grow.change)
	if v := w.view(); !v.over || members(v.completed().cur) != "n1,n2,n3,n4,n5" {
		t.Fatalf("after the grow: over %v, cur %s next %s", v.over, members(v.cur), members(v.next))
	}

	w.set("n4", StateLeaving, "")
	w.set("n5", StateLeaving, "")
	// The reports of n1..n3 for the cluster's start name the same next ring.
	for _, id := range []string{"n1", "n2", "n3"} {
		w.in.reports[id] = transferRecord{Change: start.change, Done: w.in.reports[id].Done, Settled: true}
	}
	shrink := w.view()
	if members(shrink.next) != "n1,n2,n3" || shrink.change == start.change || !strings.HasPrefix(shrink.change, "n1,n2,n3#") {
		t.Fatalf("the shrink is named %q, the start %q", shrink.change, start.change)
	}
	if shrink.heard || slices.Contains(shrink.moved, true) || len(shrink.reports) != 0 {
		t.Fatalf("the shrink counted the start's reports: heard %v, reports %v", shrink.heard, shrink.reports)
	}
}
