package core_test

import (
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/core"
)

// TestRestartsAddNoClockEntries is defect 2 of issue 9: every process run used to be its
// own actor, so each restart added a permanent entry to every key the node wrote
// afterwards (6 restarts, 6 entries). A clean stop keeps the node's actor: a key written
// after each of 100 clean restarts carries one entry for the node. A crash (kill -9) may
// lose writes the node had not synced, so the node restarts under a new actor (kv679;
// Identity.load): each crash adds exactly one entry, never more, and no write is lost.
func TestRestartsAddNoClockEntries(t *testing.T) {
	for _, c := range []struct {
		name     string
		restarts int
		crash    bool
		entries  int // n1's entries in the key's clock at the end
	}{
		{"clean stops", 100, false, 1},
		{"crashes", 20, true, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, 3, fixedBuckets{}, nil)
			n1 := w.node("n1")
			for i := range c.restarts {
				if c.crash {
					w.crash("n1")
				} else {
					if err := n1.core.Stop(); err != nil {
						t.Fatal(err)
					}
					n1.up = false
				}
				w.restart("n1")
				w.run(10 * hop)
				ctx := ""
				w.request("r", "n1", core.ClientRequest{Op: core.OpGet, Bucket: "b", Key: "k", Read: core.ReadOptions{R: "all"}})
				w.run(50 * hop)
				if r := w.replies["r"]; r == nil || r.Err != nil {
					t.Fatalf("restart %d: read %+v", i, r)
				} else {
					ctx = contextOf(r)
				}
				w.request("w", "n1", core.ClientRequest{Op: core.OpPut, Bucket: "b", Key: "k", Value: []byte{byte(i)},
					Write: core.WriteOptions{W: "all", Context: ctx}})
				w.run(50 * hop)
				if r := w.replies["w"]; r == nil || r.Err != nil {
					t.Fatalf("restart %d: write %+v", i, r)
				}
			}
			last := byte(c.restarts - 1)
			for _, nd := range w.nodes {
				obj, _, err := nd.core.Local("b", "k")
				if err != nil {
					t.Fatal(err)
				}
				if len(obj.Siblings) != 1 || obj.Siblings[0].Value[0] != last {
					t.Fatalf("%s holds %v, want the last write alone", nd.id, obj)
				}
				entries := 0
				for _, e := range obj.Clock {
					if strings.HasPrefix(e.Actor, "n1.") {
						entries++
					}
				}
				if entries != c.entries || len(obj.Clock) != c.entries {
					t.Fatalf("%s: clock %v after %d restarts of n1: want %d entries", nd.id, obj.Clock, c.restarts, c.entries)
				}
				if s := obj.Size(); s > 64*c.entries {
					t.Fatalf("%s: the object is %d bytes for a 1-byte value", nd.id, s)
				}
			}
		})
	}
}
