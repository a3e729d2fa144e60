package core_test

import (
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/core"
)

// TestRestartsAddNoClockEntries is defect 2 of issue 9: every process run used to be its
// own actor, so each restart added a permanent entry to every key the node wrote
// afterwards (6 restarts, 6 entries). A key written after each of 100 restarts — kill -9
// and clean stops mixed — now carries one entry for the node, and no write is lost.
func TestRestartsAddNoClockEntries(t *testing.T) {
	w := newWorld(t, 3, fixedBuckets{}, nil)
	n1 := w.node("n1")
	for i := range 100 {
		if i%2 == 0 {
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
	for _, nd := range w.nodes {
		obj, _, err := nd.core.Local("b", "k")
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Siblings) != 1 || obj.Siblings[0].Value[0] != 99 {
			t.Fatalf("%s holds %v, want the last write alone", nd.id, obj)
		}
		entries := 0
		for _, e := range obj.Clock {
			if strings.HasPrefix(e.Actor, "n1.") {
				entries++
			}
		}
		if entries != 1 || len(obj.Clock) != 1 {
			t.Fatalf("%s: clock %v after 100 restarts of n1: want one entry", nd.id, obj.Clock)
		}
		if s := obj.Size(); s > 64 {
			t.Fatalf("%s: the object is %d bytes for a 1-byte value", nd.id, s)
		}
	}
}
