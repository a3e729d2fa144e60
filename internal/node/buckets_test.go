package node

import (
	"testing"
	"time"
)

// TestBucketCacheFollowsMetadata: bucket properties are cached per metadata generation, so
// a node that has read a bucket's properties sees every later change, whether made on it
// or gossiped from another node, and a bucket never set reads as the defaults.
func TestBucketCacheFollowsMetadata(t *testing.T) {
	nodes := startNodes(t, 2)
	a, b := nodes[0], nodes[1]
	if got, want := b.Bucket("carts"), DefaultBucketProps(); got.N != want.N || got.R != want.R {
		t.Fatalf("a bucket never set: %+v, want the defaults %+v", got, want)
	}
	waitN := func(n *Node, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for n.Bucket("carts").N != want {
			if time.Now().After(deadline) {
				t.Fatalf("node %s: bucket carts has n=%d, want %d after the change", n.cfg.ID, n.Bucket("carts").N, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, n := range []int{1, 2} { // twice: the second change must replace a cached first
		if _, err := a.SetBucket("carts", []byte(`{"n":`+string(rune('0'+n))+`}`)); err != nil {
			t.Fatal(err)
		}
		if got := a.Bucket("carts").N; got != n {
			t.Fatalf("the node that set n=%d reads n=%d at once", n, got)
		}
		waitN(b, n) // gossiped
	}
	if got := b.Bucket("other").N; got != DefaultBucketProps().N {
		t.Fatalf("another bucket took the change: n=%d", got)
	}
}
