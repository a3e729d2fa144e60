package e2e

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestPausedNode: a replica frozen with SIGSTOP accepts connections but answers nothing.
// Quorum writes and reads must go on without it (W=2, R=2), W=3 must fail with acks=2 when
// its deadline passes, and once the node resumes a read with R=all repairs it.
func TestPausedNode(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	n3 := c.node("n3")
	if err := n3.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = n3.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()

	const keys = 20
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("p%d", i)
		cl := c.procs[i%2].client() // n1 or n2
		if _, err := cl.Put(ctx, "b", key, []byte("v-"+key), "", client.Quorum{W: "2"}); err != nil {
			t.Fatalf("W=2 put %s with n3 paused: %v", key, err)
		}
		obj, err := c.procs[(i+1)%2].client().Get(ctx, "b", key, client.Quorum{R: "2"})
		if err != nil || !obj.Found || string(obj.Values[0]) != "v-"+key {
			t.Fatalf("R=2 get %s with n3 paused: %+v %v", key, obj, err)
		}
	}
	_, err := c.node("n1").client().Put(ctx, "b", "all", []byte("x"), "", client.Quorum{W: "3", Timeout: 500 * time.Millisecond})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || ae.Acks != 2 || ae.Required != 3 {
		t.Fatalf("W=3 put with n3 paused: want 503 acks=2 required=3, got %v", err)
	}

	if err := n3.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	c.waitAlive(3)
	for i := 0; i < keys; i++ {
		key := fmt.Sprintf("p%d", i)
		// The writes queued while it was frozen, or else the blocking read repair of this
		// read, must have reached n3 by the time the read returns.
		c.waitFor(10*time.Second, "an R=all read of "+key, func() bool {
			obj, err := c.node("n1").client().Get(ctx, "b", key, client.Quorum{R: "all"})
			return err == nil && obj.Found
		})
		lc, err := n3.client().Local(ctx, "b", key)
		if err != nil || !lc.Found || string(lc.Values[0]) != "v-"+key {
			t.Fatalf("after resume and an R=all read, n3's copy of %s: %+v %v", key, lc, err)
		}
	}
}
