package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/quorumkv/quorumkv/client"
)

// TestAcknowledgedWriteIsOnItsCoordinatorsDisk: a write the coordinator acknowledged is
// on the coordinator's own disk, whatever the other replicas answered first. n1's disk is
// made slow (every fsync waits 300 ms), n1 coordinates a W=2 write and is killed with -9
// the moment the client hears "ok"; after the restart n1's own copy must hold the write.
// This is what lets a node keep its actor across crashes: had it lost the write, its next
// write of the key would carry a dot covering it, and every replica would drop an
// acknowledged write as superseded (Riak's kv679). When two other replicas' acks could
// answer the client before the coordinator's sync, n1's copy was missing after every kill.
func TestAcknowledgedWriteIsOnItsCoordinatorsDisk(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	n1 := c.node("n1")
	const rounds = 4
	for i := range rounds {
		key, value := fmt.Sprint("k", i), fmt.Sprint("v", i)
		if _, err := n1.client().SetFaults(ctx, client.Faults{SyncDelayMs: 300}); err != nil {
			t.Fatal(err)
		}
		// Blind (no context), as a Redis SET; n1 is a primary of every key with 3 nodes,
		// so it coordinates.
		if _, err := n1.client().Put(ctx, "b", key, []byte(value), "", client.Quorum{W: "2"}); err != nil {
			t.Fatalf("round %d: put: %v", i, err)
		}
		n1.kill()
		n1.start()
		lc, err := n1.client().Local(ctx, "b", key)
		if err != nil {
			t.Fatalf("round %d: n1's copy: %v", i, err)
		}
		if !lc.Found || len(lc.Values) != 1 || string(lc.Values[0]) != value {
			t.Fatalf("round %d: n1 acknowledged %s=%s and then held %+v after a kill -9", i, key, value, lc)
		}
	}
}
