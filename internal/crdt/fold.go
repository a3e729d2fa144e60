package crdt

import (
	"fmt"

	"github.com/quorumkv/quorumkv/internal/version"
)

// Fold merges the live siblings of a DVV object whose values are encoded states into one
// state; found is false when the object holds no live value. Concurrent coordinators'
// updates are siblings until folded, and folding is a join, so nothing is lost. Siblings
// of different types (a Redis SET racing an SADD) resolve to the type of the latest-written
// sibling (by HLC), whose type's siblings are merged.
func Fold(obj version.Object) (s State, found bool, err error) {
	live := obj.Live()
	if len(live) == 0 {
		return State{}, false, nil
	}
	if len(live) == 1 { // the usual case: no states to keep aside
		st, err := Decode(live[0].Value)
		if err != nil {
			return State{}, false, fmt.Errorf("crdt: sibling %s: %w", live[0].Dot, err)
		}
		if s, err = Merge(New(st.Type()), st); err != nil {
			return State{}, false, err
		}
		return s, true, nil
	}
	states := make([]State, len(live))
	latest := 0
	for i, sib := range live {
		if states[i], err = Decode(sib.Value); err != nil {
			return State{}, false, fmt.Errorf("crdt: sibling %s: %w", sib.Dot, err)
		}
		if live[latest].Timestamp.Less(sib.Timestamp) {
			latest = i
		}
	}
	t := states[latest].Type()
	s = New(t)
	for _, st := range states {
		if st.Type() != t {
			continue
		}
		if s, err = Merge(s, st); err != nil {
			return State{}, false, err
		}
	}
	return s, true, nil
}
