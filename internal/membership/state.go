package membership

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// This file holds the pure part of the package: the durable state (ring
// member records and the metadata map), its merge rules and its encoding.
// Nothing here touches the network, the clock or the disk.

// ErrCorruptState reports a persisted or received state that cannot be
// decoded or violates the format's invariants.
var ErrCorruptState = errors.New("membership: corrupt state")

// stateVersion is the format version of the encoded state.
const stateVersion = 1

// status is a ring member's membership status (not its liveness).
type status string

const (
	statusMember  status = ""        // in the ring
	statusLeaving status = "leaving" // announced it is leaving; still in the ring until forgotten
	statusRemoved status = "removed" // tombstone: no longer in the ring
)

// rank orders statuses at equal epoch so that a tombstone or a leave
// announcement beats a stale "member" record carrying the same epoch.
func (s status) rank() int {
	switch s {
	case statusMember:
		return 0
	case statusLeaving:
		return 1
	case statusRemoved:
		return 2
	default:
		return -1
	}
}

// record is what every node knows about one ring member. The owning node
// bumps Epoch on every Start (and whenever it must refute a record about
// itself), so the newest addresses win everywhere.
type record struct {
	ID     string `json:"id"`
	Zone   string `json:"zone,omitempty"`
	HTTP   string `json:"http,omitempty"`
	RESP   string `json:"resp,omitempty"`
	RPC    string `json:"rpc,omitempty"`
	Gossip string `json:"g,omitempty"`
	Epoch  uint64 `json:"e"`
	Joined int64  `json:"j,omitempty"` // unix milliseconds of the node's first start
	Status status `json:"st,omitempty"`
}

func (r record) meta() NodeMeta {
	return NodeMeta{ID: r.ID, Zone: r.Zone, HTTP: r.HTTP, RESP: r.RESP, RPC: r.RPC}
}

func (r record) validate() error {
	if r.ID == "" {
		return errors.New("member record without id")
	}
	if r.Status.rank() < 0 {
		return fmt.Errorf("member %q: unknown status %q", r.ID, r.Status)
	}
	return nil
}

// newerRecord reports whether a should replace b (same ID assumed): higher
// epoch, then the more final status, then a deterministic byte order so that
// every node picks the same winner even for conflicting records.
func newerRecord(a, b record) bool {
	if a.Epoch != b.Epoch {
		return a.Epoch > b.Epoch
	}
	if ra, rb := a.Status.rank(), b.Status.rank(); ra != rb {
		return ra > rb
	}
	ea, _ := json.Marshal(a)
	eb, _ := json.Marshal(b)
	return bytes.Compare(ea, eb) > 0
}

// entry is one key of the cluster metadata map. Entries are ordered by
// (Clock, Node): Clock is a Lamport counter (the writer's max seen + 1), so a
// write made after seeing another one always wins; Node breaks ties between
// concurrent writes. Deleted entries are tombstones and are kept so that a
// delete is not undone by a stale replica.
type entry struct {
	Key     string `json:"k"`
	Value   []byte `json:"v,omitempty"`
	Clock   uint64 `json:"c"`
	Node    string `json:"n"`
	Deleted bool   `json:"d,omitempty"`
}

func (e entry) validate() error {
	if e.Key == "" {
		return errors.New("metadata entry without key")
	}
	if e.Node == "" {
		return fmt.Errorf("metadata entry %q without writer", e.Key)
	}
	if e.Deleted && len(e.Value) != 0 {
		return fmt.Errorf("metadata tombstone %q carries a value", e.Key)
	}
	return nil
}

// newerEntry reports whether a should replace b (same key assumed).
func newerEntry(a, b entry) bool {
	if a.Clock != b.Clock {
		return a.Clock > b.Clock
	}
	if a.Node != b.Node {
		return a.Node > b.Node
	}
	// Same version, different content: only possible after corruption or a
	// lost clock; pick deterministically so replicas still converge.
	if a.Deleted != b.Deleted {
		return a.Deleted
	}
	return bytes.Compare(a.Value, b.Value) > 0
}

// state is the durable, mergeable state of one node's view of the cluster.
// Merge is commutative, associative and idempotent per record and per entry.
type state struct {
	clock   uint64 // Lamport clock: max entry clock seen
	members map[string]record
	meta    map[string]entry
}

func newState() *state {
	return &state{members: map[string]record{}, meta: map[string]entry{}}
}

// mergeRecord applies r and reports whether it changed the state.
func (s *state) mergeRecord(r record) bool {
	cur, ok := s.members[r.ID]
	if ok && !newerRecord(r, cur) {
		return false
	}
	s.members[r.ID] = r
	return true
}

// mergeEntry applies e and reports whether it changed the state.
func (s *state) mergeEntry(e entry) bool {
	s.clock = max(s.clock, e.Clock)
	cur, ok := s.meta[e.Key]
	if ok && !newerEntry(e, cur) {
		return false
	}
	e.Value = slices.Clone(e.Value)
	s.meta[e.Key] = e
	return true
}

// put makes a local write of key by node and returns the new entry.
func (s *state) put(node, key string, value []byte, deleted bool) entry {
	c := s.clock
	if cur, ok := s.meta[key]; ok {
		c = max(c, cur.Clock)
	}
	e := entry{Key: key, Clock: c + 1, Node: node, Deleted: deleted}
	if !deleted {
		e.Value = slices.Clone(value)
		if e.Value == nil {
			e.Value = []byte{}
		}
	}
	s.clock = e.Clock
	s.meta[key] = e
	return e
}

// wireState is the encoding of state used both for persistence and for
// memberlist's push-pull exchange. Slices are sorted so that the encoding is
// deterministic.
//
// Certs, only with TLS on, are the node certificates the encoding node checked against
// the cluster CA (see admission.go); they are not part of the merged state: a receiver
// checks each again before it keeps it.
type wireState struct {
	V       int        `json:"v"`
	Clock   uint64     `json:"clock"`
	Members []record   `json:"members"`
	Meta    []entry    `json:"meta"`
	Certs   []certWire `json:"certs,omitempty"`
}

func (s *state) encode() []byte { return s.encodeWith(nil) }

// encodeWith encodes the state with certificates (sorted by the caller).
func (s *state) encodeWith(certs []certWire) []byte {
	w := wireState{V: stateVersion, Clock: s.clock, Certs: certs,
		Members: make([]record, 0, len(s.members)), Meta: make([]entry, 0, len(s.meta))}
	for _, r := range s.members {
		w.Members = append(w.Members, r)
	}
	for _, e := range s.meta {
		w.Meta = append(w.Meta, e)
	}
	slices.SortFunc(w.Members, func(a, b record) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(w.Meta, func(a, b entry) int { return strings.Compare(a.Key, b.Key) })
	b, err := json.Marshal(w)
	if err != nil {
		panic(fmt.Sprintf("membership: encoding state: %v", err)) // only plain types: cannot fail
	}
	return b
}

// decodeState parses an encoded state. Duplicate records or entries are
// merged as if received one after the other. Every failure wraps
// ErrCorruptState.
func decodeState(b []byte) (*state, error) {
	s, _, err := decodeStateCerts(b)
	return s, err
}

// decodeStateCerts is decodeState that also returns the certificates the state carried,
// not yet checked.
func decodeStateCerts(b []byte) (*state, []certWire, error) {
	var w wireState
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: trailing data", ErrCorruptState)
	}
	if w.V != stateVersion {
		return nil, nil, fmt.Errorf("%w: unsupported version %d", ErrCorruptState, w.V)
	}
	s := newState()
	s.clock = w.Clock
	for _, r := range w.Members {
		if err := r.validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
		}
		s.mergeRecord(r)
	}
	for _, e := range w.Meta {
		if err := e.validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
		}
		s.mergeEntry(e)
	}
	for _, c := range w.Certs {
		if c.ID == "" || len(c.Chain) == 0 {
			return nil, nil, fmt.Errorf("%w: certificate without node id or chain", ErrCorruptState)
		}
	}
	return s, w.Certs, nil
}

// Broadcast messages: one type byte, then JSON.
const (
	msgRecord byte = 1
	msgEntry  byte = 2
)

func encodeMsg(typ byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("membership: encoding message: %v", err))
	}
	return append([]byte{typ}, b...)
}

// decodeMsg parses a broadcast message into exactly one of record or entry.
func decodeMsg(b []byte) (*record, *entry, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: empty message", ErrCorruptState)
	}
	switch b[0] {
	case msgRecord:
		var r record
		if err := json.Unmarshal(b[1:], &r); err != nil {
			return nil, nil, fmt.Errorf("%w: member message: %w", ErrCorruptState, err)
		}
		if err := r.validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
		}
		return &r, nil, nil
	case msgEntry:
		var e entry
		if err := json.Unmarshal(b[1:], &e); err != nil {
			return nil, nil, fmt.Errorf("%w: metadata message: %w", ErrCorruptState, err)
		}
		if err := e.validate(); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrCorruptState, err)
		}
		return nil, &e, nil
	default:
		return nil, nil, fmt.Errorf("%w: unknown message type %d", ErrCorruptState, b[0])
	}
}
