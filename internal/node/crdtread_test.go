package node

import (
	"context"
	"testing"

	"github.com/quorumkv/quorumkv/internal/crdt"
)

// TestGetCRDTState: GetCRDTState answers what GetCRDT does, without the causal context
// (whose encoding a Redis GET never uses); GetCRDT's context supersedes the key when a
// delete passes it.
func TestGetCRDTState(t *testing.T) {
	nodes := startNodes(t, 3)
	n1 := nodes[0]
	ctx := context.Background()
	v := "hello"
	if err := n1.ApplyCRDT(ctx, "redis", "k", crdt.Register, crdt.Op{Assign: &v}, true, WriteOptions{W: "all"}); err != nil {
		t.Fatal(err)
	}
	full, err := n1.GetCRDT(ctx, "redis", "k", ReadOptions{R: "all"})
	if err != nil {
		t.Fatal(err)
	}
	state, err := n1.GetCRDTState(ctx, "redis", "k", ReadOptions{R: "all"})
	if err != nil {
		t.Fatal(err)
	}
	if !full.Found || !state.Found || full.State.Value() != "hello" || state.State.Value() != "hello" {
		t.Fatalf("GetCRDT %+v, GetCRDTState %+v: want both to find hello", full, state)
	}
	if full.Context == "" || state.Context != "" {
		t.Fatalf("contexts %q and %q: want GetCRDT's set, GetCRDTState's empty", full.Context, state.Context)
	}
	if _, err := n1.Delete(ctx, "redis", "k", WriteOptions{W: "all", Context: full.Context}); err != nil {
		t.Fatal(err)
	}
	if after, err := n1.GetCRDTState(ctx, "redis", "k", ReadOptions{R: "all"}); err != nil || after.Found {
		t.Fatalf("after a delete with GetCRDT's context: %+v %v", after, err)
	}
}
