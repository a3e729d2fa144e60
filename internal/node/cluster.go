package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/core"
	"github.com/quorumkv/quorumkv/internal/membership"
	"github.com/quorumkv/quorumkv/internal/ring"
	"github.com/quorumkv/quorumkv/internal/storage"
)

// Cluster changes (join, leave, replace, remove). Every member has a state in the
// cluster metadata (gossiped, persisted): joining, active, leaving or left; a member
// without one is joining. The ring in force is made of the active and leaving members;
// the ring after the pending changes of the active and joining ones. While they differ,
// the cores stream the partitions their node gains (core/transfer.go) and this node
// publishes which it has completed; a partition moves to the new ring once every node
// gaining it has (core.MovedPartitions), so every node decides the same from the same
// reports. When every partition has moved, a joining node marks itself active and any
// node marks a leaving one left: the next ring is then the ring in force.

// MemberState is a member's place in the ring.
type MemberState string

// The member states.
const (
	StateJoining MemberState = "joining" // streaming the partitions it will own
	StateActive  MemberState = "active"
	StateLeaving MemberState = "leaving" // handing its partitions to the others
	StateLeft    MemberState = "left"    // owns nothing
)

const (
	metaMemberPrefix   = "member/"   // member/<id> → memberRecord
	metaTransferPrefix = "transfer/" // transfer/<id> → transferRecord
)

type memberRecord struct {
	State MemberState `json:"state"`
	// Epoch orders the records that start changes. A record made joining or leaving
	// takes an epoch above every one known (and at least the wall clock, in ms); records
	// written as a change ends keep theirs. A change is named by its next ring and the
	// highest epoch of all records (clusterView.change), so no two changes share a name,
	// even two that lead to the same ring (3 nodes, then 5, then the same 3 again).
	Epoch int64 `json:"epoch,omitempty"`
	// Ended is, on a record made active (from joining) or left (from leaving) as a change
	// ended, that change's name. Its writer saw every member report the change settled,
	// so a node that reads it knows the change is over, even before those reports reach
	// it: it does not derive a ring from records partly updated (one joining node marked
	// active, another not yet), a ring no partition was transferred to.
	Ended string `json:"ended,omitempty"`
}

// transferRecord is what a node has taken over of a change.
type transferRecord struct {
	Change string `json:"change"` // the change's name (clusterView.change)
	// Done is the bitmap of the partitions complete (bit p%8 of byte p/8), base64 in
	// JSON: 44 characters for 256 partitions, small enough to travel in one gossip
	// packet (a list of numbers did not, and waited seconds for a push-pull).
	Done []byte `json:"done"`
	// Settled: this node sees every partition moved to Next. The change ends (Next
	// becomes the ring, and writes go to its replicas only) once every member seen up
	// has said so, so that no coordinator still reads a partition's old replicas then.
	Settled bool `json:"settled,omitempty"`
}

func (r transferRecord) done(p int) bool { return p/8 < len(r.Done) && r.Done[p/8]&(1<<(p%8)) != 0 }

// stateOf is id's state in the view in force: its member record's, or where a change is
// over by every member's report while the records are still being written, the state it
// ends in (clusterView.completed).
func (n *Node) stateOf(id string) MemberState {
	if v := n.view.Load(); v != nil {
		if st, ok := v.states[id]; ok {
			return st
		}
	}
	return n.memberState(id)
}

// memberState is id's state (joining when it has none yet).
func (n *Node) memberState(id string) MemberState { return n.memberRecord(id).State }

// memberRecord is id's record (joining when it has none yet).
func (n *Node) memberRecord(id string) memberRecord {
	raw, ok := n.ms.GetMeta(metaMemberPrefix + id)
	if !ok {
		return memberRecord{State: StateJoining}
	}
	var r memberRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		n.log.Error("bad member record in cluster metadata", "member", id, "err", err)
		return memberRecord{State: StateActive} // as before records existed: a member is in the ring
	}
	return r
}

// maxEpoch is the highest epoch of every member record known.
func (n *Node) maxEpoch() int64 {
	var e int64
	for _, k := range n.ms.MetaKeys(metaMemberPrefix) {
		e = max(e, n.memberRecord(strings.TrimPrefix(k, metaMemberPrefix)).Epoch)
	}
	return e
}

// setMemberState records id in state st. Joining and leaving start a change: the record
// takes a new epoch. Any other state keeps the record's epoch, and ended names the
// change it ends ("" for none).
func (n *Node) setMemberState(id string, st MemberState, ended string) error {
	rec := memberRecord{State: st, Epoch: n.memberRecord(id).Epoch, Ended: ended}
	if st == StateJoining || st == StateLeaving {
		rec.Epoch, rec.Ended = max(n.maxEpoch()+1, time.Now().UnixMilli()), ""
	}
	raw, _ := json.Marshal(rec)
	if err := n.ms.SetMeta(metaMemberPrefix+id, raw); err != nil {
		return fmt.Errorf("record %s as %s: %w", id, st, err)
	}
	n.log.Info("member state", "member", id, "state", string(st))
	return nil
}

// initMemberState gives this node its state when it has none: a node with data of its
// own (a restart, or a cluster from before member states) or none to join is active at
// once; a fresh node joining a cluster is joining, active once it holds its partitions
// (at once, if the cluster holds nothing).
func (n *Node) initMemberState(fresh bool) error {
	if _, ok := n.ms.GetMeta(metaMemberPrefix + n.cfg.ID); ok {
		return nil
	}
	st := StateActive
	if fresh && len(n.cfg.Join) > 0 {
		st = StateJoining
	}
	if n.cfg.Replace != "" {
		if err := n.checkReplace(n.cfg.Replace); err != nil {
			return err
		}
		st = StateJoining
		if err := n.setMemberState(n.cfg.Replace, StateLeaving, ""); err != nil {
			return err
		}
	}
	return n.setMemberState(n.cfg.ID, st, "")
}

// ringSet caches the rings built for member lists (building one costs a pass over
// every partition).
type ringSet struct {
	mu    sync.Mutex
	rings map[string]*ring.Ring
}

func (rs *ringSet) get(partitions int, ms []ring.Member) (*ring.Ring, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	key := ringKey(ms)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r := rs.rings[key]; r != nil {
		return r, nil
	}
	r, err := ring.New(ring.Config{Partitions: partitions}, ms)
	if err != nil {
		return nil, err
	}
	if rs.rings == nil || len(rs.rings) > 8 {
		rs.rings = map[string]*ring.Ring{}
	}
	rs.rings[key] = r
	return r, nil
}

func ringKey(ms []ring.Member) string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = string(m.ID)
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// clusterView is the ownership as this node sees it now.
type clusterView struct {
	cur, next *ring.Ring
	moved     []bool
	states    map[string]MemberState
	nextKey   string                    // the members of next
	change    string                    // the pending change's name: nextKey#epoch
	over      bool                      // a member's record says the change has ended (memberRecord.Ended)
	heard     bool                      // every member has reported on the change (core.View.Heard)
	reports   map[string]transferRecord // the gainers' reports for change, by node
}

// computeView derives the rings from the members and their states, and which partitions
// have moved from the transfer reports.
func (n *Node) computeView(ms []membership.Member) (clusterView, error) {
	in := viewInputs{members: ms, records: map[string]memberRecord{}, epoch: n.maxEpoch(),
		reports: map[string]transferRecord{}, alive: n.alive, partitions: n.cfg.Partitions, ns: n.Ns()}
	for _, m := range ms {
		in.records[m.ID] = n.memberRecord(m.ID)
	}
	for _, k := range n.ms.MetaKeys(metaTransferPrefix) {
		raw, _ := n.ms.GetMeta(k)
		var r transferRecord
		if json.Unmarshal(raw, &r) == nil {
			in.reports[strings.TrimPrefix(k, metaTransferPrefix)] = r
		}
	}
	return deriveView(in, &n.rings)
}

// viewInputs is what a view is derived from: the members, their records, the highest
// epoch of every record known, every node's transfer report, and the failure detector.
type viewInputs struct {
	members    []membership.Member
	records    map[string]memberRecord // by member
	epoch      int64
	reports    map[string]transferRecord // by node, whatever change each is for
	alive      func(id string) bool
	partitions int
	ns         []int
}

// deriveView is the view the inputs give. The newest change may have ended on some
// records and not yet on others: those records are read as they were while it ran. Only a
// name with the highest epoch can be the newest change's, and it is, when the records read
// so lead to it; the view then says the change is over.
func deriveView(in viewInputs, rings *ringSet) (clusterView, error) {
	suffix := fmt.Sprintf("#%d", in.epoch)
	var ended []string
	for _, r := range in.records {
		if strings.HasSuffix(r.Ended, suffix) && !slices.Contains(ended, r.Ended) {
			ended = append(ended, r.Ended)
		}
	}
	slices.Sort(ended)
	for _, name := range ended {
		if v, err := viewOf(in, rings, name); err != nil || v.change == name {
			v.over = true
			return v, err
		}
	}
	return viewOf(in, rings, "")
}

// viewOf is the view of the members in the states of their records, with the records
// that ended change read as they were while it ran.
func viewOf(in viewInputs, rings *ringSet, change string) (clusterView, error) {
	v := clusterView{states: map[string]MemberState{}}
	var cur, next []ring.Member
	for _, m := range in.members {
		r := in.records[m.ID]
		st := r.State
		if change != "" && r.Ended == change {
			switch st {
			case StateActive:
				st = StateJoining
			case StateLeft:
				st = StateLeaving
			}
		}
		v.states[m.ID] = st
		rm := ring.Member{ID: ring.NodeID(m.ID), Zone: m.Zone}
		switch st {
		case StateActive:
			cur, next = append(cur, rm), append(next, rm)
		case StateLeaving:
			cur = append(cur, rm)
		case StateJoining:
			next = append(next, rm)
		}
	}
	var err error
	if v.cur, err = rings.get(in.partitions, cur); err != nil {
		return v, err
	}
	if v.cur == nil || ringKey(cur) == ringKey(next) {
		return v, nil
	}
	if v.next, err = rings.get(in.partitions, next); err != nil {
		return v, err
	}
	v.nextKey = core.MembersKey(v.next)
	v.change = fmt.Sprintf("%s#%d", v.nextKey, in.epoch)
	v.reports = map[string]transferRecord{}
	for id, r := range in.reports {
		if r.Change == v.change { // reports about other changes count for nothing
			v.reports[id] = r
		}
	}
	heard := func(node string) bool { _, ok := v.reports[node]; return ok || !in.alive(node) }
	v.heard = core.EveryMemberHeard(v.cur, v.next, heard)
	v.moved = core.MovedPartitions(v.cur, v.next, in.ns, nil, heard, func(node string, p int) bool { return v.reports[node].done(p) })
	return v, nil
}

// refreshMembers recomputes the members, the rings and the moved partitions, gives the
// cores the new view, and finishes a change once every partition has moved.
func (n *Node) refreshMembers() {
	ms := n.ms.Members()
	n.members.Store(&ms)
	alive := map[string]bool{}
	for _, m := range ms {
		if m.State != membership.Alive {
			continue
		}
		alive[m.ID] = true
		if m.ID != n.cfg.ID && !n.wasAlive[m.ID] && n.tr != nil {
			n.tr.ResetBackoff(m.ID) // a member back up is reachable now, not after a backoff
		}
	}
	n.wasAlive = alive
	v, err := n.computeView(ms)
	if err != nil {
		n.log.Error("ring rebuild failed", "err", err)
		return
	}
	if v.cur == nil && v.states[n.cfg.ID] == StateJoining {
		// Nobody holds anything yet (every member is new): the cluster starts here.
		if err := n.setMemberState(n.cfg.ID, StateActive, ""); err != nil {
			n.log.Error("bootstrap", "err", err)
		}
		return // the metadata change brings us back
	}
	if v.next != nil && (v.over || n.everyMemberSettled(v)) {
		// Every member has seen every partition moved (this node read so in their
		// reports, or in a record written by a node that did): the change is over,
		// whatever member records have been updated so far.
		n.finishChange(v)
		v = v.completed()
	}
	if old := n.ring.Load(); v.cur != nil && (old == nil || !slices.Equal(old.Members(), v.cur.Members())) {
		n.log.Info("ring updated", "members", len(v.cur.Members()))
	}
	n.ring.Store(v.cur)
	n.view.Store(&v)
	n.pushView()
	if v.next != nil && !slices.Contains(v.moved, false) {
		n.signalTransfers() // to publish that this node sees it all moved
	}
}

// completed is the view once v's change is over: its next ring in force, joining members
// active, leaving ones left.
func (v clusterView) completed() clusterView {
	out := clusterView{cur: v.next, states: map[string]MemberState{}}
	for id, st := range v.states {
		switch st {
		case StateJoining:
			st = StateActive
		case StateLeaving:
			st = StateLeft
		}
		out.states[id] = st
	}
	return out
}

// everyMemberSettled reports whether every member of either ring seen up has published
// that it sees every partition of v's change moved.
func (n *Node) everyMemberSettled(v clusterView) bool {
	for _, id := range n.changeMembers(v) {
		if !v.reports[id].Settled {
			return false
		}
	}
	return true
}

// changeMembers are the members of either ring of v's change seen up, sorted: those whose
// reports the change waits for.
func (n *Node) changeMembers(v clusterView) []string {
	var out []string
	for _, r := range []*ring.Ring{v.cur, v.next} {
		for _, m := range r.Members() {
			if id := string(m.ID); n.alive(id) && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// signalTransfers asks watchTransfers to publish this node's transfer report.
func (n *Node) signalTransfers() {
	select {
	case n.xferSig <- struct{}{}:
	default:
	}
}

// finishChange records the end of a change whose partitions have all moved: this node
// active if it was joining, every leaving member left.
func (n *Node) finishChange(v clusterView) {
	var errs []error
	wrote := false
	set := func(id string, st MemberState) {
		if n.memberState(id) != st {
			errs = append(errs, n.setMemberState(id, st, v.change))
			wrote = true
		}
	}
	if v.states[n.cfg.ID] == StateJoining {
		set(n.cfg.ID, StateActive)
	}
	for id, st := range v.states {
		if st == StateLeaving {
			set(id, StateLeft)
		}
	}
	if err := errors.Join(errs...); err != nil {
		n.log.Error("finishing a cluster change", "err", err)
		return
	}
	if wrote {
		n.log.Info("cluster change complete", "ring", v.nextKey, "change", v.change)
	}
}

// compact compacts a store range where a cleanup deleted many keys, in the background and
// one range at a time (a compaction of a large range takes seconds of disk work).
func (n *Node) compact(r core.KeyRange) {
	c, ok := n.store.(storage.Compacter)
	if !ok {
		return
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		n.compactMu.Lock()
		defer n.compactMu.Unlock()
		if n.ctx.Err() != nil {
			return
		}
		start := time.Now()
		if err := c.Compact(r.Start, r.End); err != nil {
			n.log.Warn("compaction after ownership cleanup failed", "err", err)
			return
		}
		n.log.Info("compacted the range of deleted copies", "elapsed", time.Since(start))
	}()
}

// pushView gives the cores the rings and the failure detector's view.
func (n *Node) pushView() {
	alive := map[string]bool{}
	for _, m := range n.Members() {
		if m.State == membership.Alive || m.State == membership.Suspect {
			alive[m.ID] = true
		}
	}
	cv := core.View{Ring: n.Ring(), Alive: alive}
	if v := n.view.Load(); v != nil {
		cv.Next, cv.Moved, cv.Change, cv.Heard = v.next, v.moved, v.change, v.heard
	}
	n.broadcast(core.SetView{View: cv})
}

// publishTransfers publishes the partitions this node's cores have taken over, for the
// change they are taking them over for.
func (n *Node) publishTransfers() {
	rec := transferRecord{Done: make([]byte, (n.cfg.Partitions+7)/8)}
	for _, l := range n.loops {
		next, ts := l.transferSnapshot()
		if next == "" {
			continue
		}
		if rec.Change != "" && rec.Change != next {
			return // the shards have not all seen the same change yet: the next one will
		}
		rec.Change = next
		for _, t := range ts {
			if t.Phase == "done" {
				rec.Done[t.Partition/8] |= 1 << (t.Partition % 8)
			}
		}
	}
	if rec.Change == "" {
		return
	}
	if v := n.view.Load(); v != nil && v.change == rec.Change && !slices.Contains(v.moved, false) {
		rec.Settled = true
	}
	raw, _ := json.Marshal(rec)
	if old, ok := n.ms.GetMeta(metaTransferPrefix + n.cfg.ID); ok && string(old) == string(raw) {
		return
	}
	if err := n.ms.SetMeta(metaTransferPrefix+n.cfg.ID, raw); err != nil {
		n.log.Error("publishing transfers", "err", err)
	}
}

// watchTransfers publishes transfer progress, at most every 100 ms.
func (n *Node) watchTransfers() {
	defer n.bg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.xferSig:
		}
		n.publishTransfers()
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Transfer is one partition a node is taking over (GET /v1/cluster/transfers).
type Transfer struct {
	Partition int     `json:"partition"`
	From      string  `json:"from"` // the replica it streams from
	To        string  `json:"to"`   // this node
	Phase     string  `json:"phase"`
	KeysDone  int64   `json:"keys_done"`
	BytesDone int64   `json:"bytes_done"`
	ElapsedS  float64 `json:"elapsed_s"`
}

// TransfersInfo is GET /v1/cluster/transfers on one node.
type TransfersInfo struct {
	Node    string            `json:"node"`
	Pending bool              `json:"pending"` // a change is under way
	Ring    []string          `json:"ring"`
	Next    []string          `json:"next,omitempty"`
	Moved   int               `json:"partitions_moved"`
	Waiting int               `json:"partitions_waiting"`
	States  map[string]string `json:"states"`
	// Gainers is every node taking over partitions in the change, with its progress as
	// it published it.
	Gainers []GainerProgress `json:"gainers"`
	// HeldBy names the gainers that are down with partitions still to take: the change
	// waits for them (start them again, or remove them).
	HeldBy []string `json:"held_by,omitempty"`
	// Unheard names the members seen up that have not yet published that they heard of
	// the change: no partition moves before they have. Unsettled, once every partition
	// has moved, those that have not yet published that they see it so: the change ends
	// once they have.
	Unheard   []string `json:"unheard,omitempty"`
	Unsettled []string `json:"unsettled,omitempty"`
	// KeysDone and BytesDone sum this node's transfers.
	KeysDone  int64 `json:"keys_done"`
	BytesDone int64 `json:"bytes_done"`
	// Transfers are this node's.
	Transfers []Transfer `json:"transfers"`
}

// GainerProgress is one node's part of a cluster change: the partitions it takes over and
// how many of them it has completed.
type GainerProgress struct {
	Node       string `json:"node"`
	State      string `json:"state"` // its member state
	Up         bool   `json:"up"`    // seen up by the failure detector
	Partitions int    `json:"partitions"`
	Done       int    `json:"partitions_done"`
}

// Transfers describes the change under way, if any, and this node's part in it.
func (n *Node) Transfers() TransfersInfo {
	info := TransfersInfo{Node: n.cfg.ID, States: map[string]string{}, Gainers: []GainerProgress{}, Transfers: []Transfer{}}
	v := n.view.Load()
	if v == nil {
		return info
	}
	for id, st := range v.states {
		info.States[id] = string(st)
	}
	if v.cur != nil {
		for _, m := range v.cur.Members() {
			info.Ring = append(info.Ring, string(m.ID))
		}
	}
	if v.next != nil {
		info.Pending = true
		for _, m := range v.next.Members() {
			info.Next = append(info.Next, string(m.ID))
		}
		for _, m := range v.moved {
			if m {
				info.Moved++
			} else {
				info.Waiting++
			}
		}
		info.Gainers, info.HeldBy = n.gainers(v)
		allMoved := !slices.Contains(v.moved, false)
		for _, id := range n.changeMembers(*v) {
			if r, ok := v.reports[id]; !ok {
				info.Unheard = append(info.Unheard, id)
			} else if allMoved && !r.Settled {
				info.Unsettled = append(info.Unsettled, id)
			}
		}
	}
	for _, l := range n.loops {
		_, ts := l.transferSnapshot()
		for _, t := range ts {
			info.Transfers = append(info.Transfers, Transfer{Partition: t.Partition, From: t.Source, To: n.cfg.ID, Phase: t.Phase,
				KeysDone: t.Keys, BytesDone: t.Bytes, ElapsedS: t.Elapsed.Seconds()})
			info.KeysDone += t.Keys
			info.BytesDone += t.Bytes
		}
	}
	slices.SortFunc(info.Transfers, func(a, b Transfer) int { return a.Partition - b.Partition })
	return info
}

// gainers is every node's progress in the change of v, from the reports it published, and
// those of them that are down with partitions to take (a partition moves only once every
// node gaining it has it).
func (n *Node) gainers(v *clusterView) (progress []GainerProgress, heldBy []string) {
	by := map[string]*GainerProgress{}
	ns := n.Ns()
	for p := range v.cur.Partitions() {
		for _, g := range core.Gainers(v.cur, v.next, p, ns) {
			gp := by[g]
			if gp == nil {
				gp = &GainerProgress{Node: g, State: string(v.states[g]), Up: n.alive(g)}
				by[g] = gp
			}
			gp.Partitions++
			if v.moved[p] || v.reports[g].done(p) {
				gp.Done++
			}
		}
	}
	progress = []GainerProgress{}
	for _, gp := range by {
		progress = append(progress, *gp)
		if !gp.Up && gp.Done < gp.Partitions {
			heldBy = append(heldBy, gp.Node)
		}
	}
	slices.SortFunc(progress, func(a, b GainerProgress) int { return strings.Compare(a.Node, b.Node) })
	slices.Sort(heldBy)
	return progress, heldBy
}

// Leave starts handing node id's partitions to the others; it leaves the ring once they
// all have them. Refused when fewer active nodes would remain than a bucket's n.
func (n *Node) Leave(ctx context.Context, id string) error {
	st, err := n.changeable(id)
	if err != nil {
		return err
	}
	if st == StateLeaving {
		return nil // already leaving
	}
	return n.setMemberState(id, StateLeaving, "")
}

// Remove drops a dead node: its partitions are rebuilt on the others from the surviving
// replicas, then it leaves the ring. Refused for a node seen up (use Leave).
func (n *Node) Remove(ctx context.Context, id string) error {
	if n.alive(id) && id != n.cfg.ID {
		return fmt.Errorf("%w: %s is up: use leave, which streams its partitions from it", ErrBadRequest, id)
	}
	return n.Leave(ctx, id)
}

// changeable checks that id may leave the ring.
func (n *Node) changeable(id string) (MemberState, error) {
	if _, ok := n.member(id); !ok {
		return "", fmt.Errorf("%w: %s is not a member", ErrBadRequest, id)
	}
	st := n.memberState(id)
	if st == StateLeft {
		return st, fmt.Errorf("%w: %s has left already", ErrBadRequest, id)
	}
	remain := 0
	var before, after []string // the zones of the members now, and after id leaves
	for _, m := range n.Members() {
		s := n.memberState(m.ID)
		if s != StateActive && s != StateJoining {
			continue
		}
		before = append(before, m.Zone)
		if m.ID != id {
			remain++
			after = append(after, m.Zone)
		}
	}
	for _, nrep := range n.Ns() {
		if remain < nrep {
			return st, fmt.Errorf("%w: %s leaving would leave %d node(s), fewer than the %d replicas a bucket keeps", ErrBadRequest, id, remain, nrep)
		}
		if err := zoneSpreadLoss(before, after, nrep); err != nil {
			return st, fmt.Errorf("%w: %s leaving: %w", ErrBadRequest, id, err)
		}
	}
	return st, nil
}

// zoneSpreadLoss refuses a change that leaves a key's nrep replicas spread over fewer
// zones than before (the members' zones before and after; one zone, or none, has no
// spread to lose).
func zoneSpreadLoss(before, after []string, nrep int) error {
	distinct := func(zs []string) int {
		seen := map[string]bool{}
		for _, z := range zs {
			seen[z] = true
		}
		return len(seen)
	}
	was, will := min(distinct(before), nrep), min(distinct(after), nrep)
	if will < was {
		return fmt.Errorf("replicas of n=%d would span %d zone(s) instead of %d; add a node in that zone first", nrep, will, was)
	}
	return nil
}

// checkReplace checks that old may be replaced by this node.
func (n *Node) checkReplace(old string) error {
	if old == n.cfg.ID {
		return fmt.Errorf("%w: a node cannot replace itself", ErrBadRequest)
	}
	if _, ok := n.member(old); !ok {
		return fmt.Errorf("%w: --replace %s: not a member of the cluster joined", ErrBadRequest, old)
	}
	if n.alive(old) {
		return fmt.Errorf("%w: --replace %s: it is up; stop it first, or use cluster leave", ErrBadRequest, old)
	}
	return nil
}

// RingSettled reports whether no change is under way and the ring holds every member
// that has not left (for tests and readiness).
func (n *Node) RingSettled() bool {
	v := n.view.Load()
	if v == nil || v.cur == nil || v.next != nil {
		return false
	}
	for _, st := range v.states {
		if st == StateJoining || st == StateLeaving {
			return false
		}
	}
	return true
}

// transferCollector exports the partitions this node is taking over at scrape time.
type transferCollector struct {
	n              *Node
	active, moving *prometheus.Desc
}

func newTransferCollector(n *Node) *transferCollector {
	return &transferCollector{n: n,
		active: prometheus.NewDesc("quorumkv_transfers_active", "Partitions this node is taking over and has not completed.", nil, nil),
		moving: prometheus.NewDesc("quorumkv_partitions_pending", "Partitions of a cluster change not yet moved to their new replicas (as this node sees it).", nil, nil),
	}
}

func (c *transferCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.active; ch <- c.moving }

func (c *transferCollector) Collect(ch chan<- prometheus.Metric) {
	active := 0
	for _, l := range c.n.loops {
		_, ts := l.transferSnapshot()
		for _, t := range ts {
			if t.Phase != "done" {
				active++
			}
		}
	}
	waiting := 0
	if v := c.n.view.Load(); v != nil {
		for _, m := range v.moved {
			if !m {
				waiting++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(active))
	ch <- prometheus.MustNewConstMetric(c.moving, prometheus.GaugeValue, float64(waiting))
}
