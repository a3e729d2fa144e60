package membership

import (
	"bytes"
	"errors"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// maxBroadcast is the largest message queued for gossip. memberlist packs
// broadcasts into UDP packets of ~1400 bytes; larger writes are left to the
// push-pull sync (within PushPullInterval).
const maxBroadcast = 1200

// delegate implements memberlist.Delegate. Methods are called from
// memberlist's goroutines, some while memberlist holds its node lock: they
// take m.mu only briefly and never call back into memberlist.
type delegate Membership

func (d *delegate) m() *Membership { return (*Membership)(d) }

// NodeMeta announces our own member record.
func (d *delegate) NodeMeta(limit int) []byte {
	m := d.m()
	m.mu.Lock()
	r := m.st.members[m.self]
	m.mu.Unlock()
	b, err := m.signedMeta(r)
	if err != nil {
		m.log.Error("signing node meta", "err", err)
		return nil
	}
	if len(b) > limit {
		// Start checked the size; a later record only changes epoch/status.
		m.log.Error("node meta exceeds memberlist limit", "size", len(b), "limit", limit)
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) {
	m := d.m()
	if m.adm != nil {
		if b = m.openMsg(b); b == nil {
			return // a certificate, or refused
		}
	}
	r, e, err := decodeMsg(b) // decodeMsg copies what it keeps
	if err != nil {
		m.log.Warn("ignoring corrupt gossip message", "err", err)
		return
	}
	if r != nil {
		m.applyRecord(*r)
	}
	if e != nil {
		m.applyEntry(*e, true)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m().queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	m := d.m()
	if m.adm == nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.st.encode()
	}
	certs := m.adm.wire()
	m.mu.Lock()
	b := m.st.encodeWith(certs)
	m.mu.Unlock()
	sb, err := m.adm.self.sign(domainState, b)
	if err != nil {
		m.log.Error("signing push-pull state", "err", err)
		return nil
	}
	return sb
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	m := d.m()
	var st *state
	var err error
	if m.adm != nil {
		st, err = m.openState(buf, join)
		if errors.Is(err, errUnverified) {
			m.refused(err, "push-pull", "")
			return
		}
	} else {
		st, err = decodeState(buf)
	}
	if err != nil {
		m.log.Warn("ignoring corrupt remote state from push-pull", "join", join, "err", err)
		return
	}
	ids := make([]string, 0, len(st.members))
	for id := range st.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		m.applyRecord(st.members[id])
	}
	// Push-pull repairs in bulk: merge without re-broadcasting every key.
	changed := false
	m.mu.Lock()
	m.st.clock = max(m.st.clock, st.clock)
	for _, e := range st.meta {
		if m.st.mergeEntry(e) {
			changed = true
		}
	}
	if changed {
		m.metaGen.Add(1)
	}
	metaSubs := slices.Clone(m.metaSubs)
	m.mu.Unlock()
	if changed {
		for _, ch := range metaSubs {
			signal(ch)
		}
		signal(m.persistCh)
	}
}

// applyRecord merges a member record received by gossip, push-pull or a
// memberlist event. A newer record about ourselves is refuted with a higher
// epoch (like memberlist's incarnation refutation), so a node whose persisted
// state was lost still ends with its current addresses everywhere.
func (m *Membership) applyRecord(r record) {
	m.mu.Lock()
	if r.ID == m.self {
		cur := m.st.members[m.self]
		if r == cur || !newerRecord(r, cur) {
			m.mu.Unlock()
			return
		}
		cur.Epoch = r.Epoch + 1
		m.st.members[m.self] = cur
		m.mu.Unlock()
		m.log.Info("refuting a newer record about this node", "their_epoch", r.Epoch, "their_status", r.Status, "new_epoch", cur.Epoch)
		m.broadcast(msgRecord, "member:"+cur.ID, cur)
		signal(m.selfCh)
		signal(m.persistCh)
		return
	}
	changed := m.st.mergeRecord(r)
	m.mu.Unlock()
	if changed {
		m.log.Debug("member record updated", "member", r.ID, "epoch", r.Epoch, "status", r.Status, "gossip", r.Gossip)
		m.broadcast(msgRecord, "member:"+r.ID, r)
		signal(m.persistCh)
		m.signalView()
	}
}

// applyEntry merges a metadata entry; relay re-broadcasts it when it was new
// to us, so gossip spreads epidemically.
func (m *Membership) applyEntry(e entry, relay bool) {
	m.mu.Lock()
	changed := m.st.mergeEntry(e)
	if changed {
		m.metaGen.Add(1)
	}
	metaSubs := slices.Clone(m.metaSubs)
	m.mu.Unlock()
	if !changed {
		return
	}
	if relay {
		m.broadcast(msgEntry, "meta:"+e.Key, e)
	}
	for _, ch := range metaSubs {
		signal(ch)
	}
	signal(m.persistCh)
}

// broadcast queues v for gossip; a newer message with the same name replaces
// a queued older one.
func (m *Membership) broadcast(typ byte, name string, v any) {
	msg := encodeMsg(typ, v)
	if m.adm != nil {
		sb, err := m.adm.self.sign(domainMsg, msg)
		if err != nil {
			m.log.Error("signing a gossip message; left to push-pull", "name", name, "err", err)
			return
		}
		msg = sb
	}
	m.queueMsg(name, msg)
}

// queueMsg queues an encoded message for gossip, unless it is too large for a packet.
func (m *Membership) queueMsg(name string, msg []byte) {
	if len(msg) > maxBroadcast {
		m.log.Debug("message too large for gossip; left to push-pull", "name", name, "size", len(msg))
		return
	}
	m.queue.QueueBroadcast(&bcast{name: name, msg: msg})
}

type bcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*bcast)(nil)

func (b *bcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*bcast)
	return ok && ob.name == b.name
}
func (b *bcast) Message() []byte { return b.msg }
func (b *bcast) Finished()       {}
func (b *bcast) Name() string    { return b.name }

// events implements memberlist.EventDelegate and ConflictDelegate. They are
// called with memberlist's node lock held: lock order is memberlist's node
// lock, then m.mu or the broadcast queue's lock; nothing of ours may take the
// node lock while holding either.
type events Membership

func (ev *events) m() *Membership { return (*Membership)(ev) }

func (ev *events) NotifyJoin(n *memberlist.Node) {
	ev.m().numLive.Add(1)
	ev.nodeMeta(n, "join")
}
func (ev *events) NotifyUpdate(n *memberlist.Node) { ev.nodeMeta(n, "update") }

func (ev *events) NotifyLeave(n *memberlist.Node) {
	m := ev.m()
	m.numLive.Add(-1)
	if m.adm != nil {
		m.adm.dropPeer(n.Name)
	}
	m.log.Info("member unreachable", "member", n.Name, "addr", n.Address())
	m.signalView()
}

func (ev *events) nodeMeta(n *memberlist.Node, what string) {
	m := ev.m()
	if m.adm != nil {
		// Admission: merged only once its meta proves it (here, or at a view refresh when
		// its certificate was still on its way); until then it is not reported.
		m.adm.setPeer(n.Name, peer{meta: bytes.Clone(n.Meta), addr: n.Address()})
		if rec, ok, fresh := m.checkLive(n.Name); ok && fresh {
			if n.Name != m.self {
				m.log.Info("member admitted: its certificate proved", "member", n.Name, "addr", n.Address(), "epoch", rec.Epoch, "event", what)
			}
			m.applyRecord(rec)
		}
		m.signalView()
		return
	}
	r, _, err := decodeMsg(n.Meta)
	if err != nil || r == nil || r.ID != n.Name {
		m.log.Warn("ignoring member with unreadable node meta", "member", n.Name, "addr", n.Address(), "err", err)
		return
	}
	if what == "join" && n.Name != m.self {
		m.log.Info("member reachable", "member", n.Name, "addr", n.Address(), "epoch", r.Epoch)
	}
	m.applyRecord(*r)
	m.signalView()
}

func (ev *events) NotifyConflict(existing, other *memberlist.Node) {
	ev.m().log.Debug("name conflict (waiting for the old address to be declared dead)",
		"member", existing.Name, "old", existing.Address(), "new", other.Address())
}

// slogWriter routes memberlist's standard-library logger to slog at debug
// level; a message memberlist refused because it could not decrypt it (a host
// without the gossip key, or with the wrong one) is counted in rejected and
// logged as a warning.
type slogWriter struct {
	log      *slog.Logger
	rejected *atomic.Uint64
}

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if w.rejected != nil && strings.HasPrefix(line, "[ERR]") && strings.Contains(strings.ToLower(line), "crypt") {
		w.rejected.Add(1)
		w.log.Warn("gossip refused: not encrypted with a key of this node's keyring", "detail", line, "source", "memberlist")
		return len(p), nil
	}
	w.log.Debug(line, "source", "memberlist")
	return len(p), nil
}

func newStdLogger(l *slog.Logger, rejected *atomic.Uint64) *log.Logger {
	return log.New(slogWriter{l, rejected}, "", 0)
}
