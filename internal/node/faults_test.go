package node

import (
	"context"
	"testing"
	"time"
)

// TestSlowDiskHealed: with n1's fsyncs made to wait a minute (sync_delay_ms), a write
// coordinated by n1 waits for its own durable copy, however soon the other replicas ack;
// healing the fault ends the wait under way, and the write completes.
func TestSlowDiskHealed(t *testing.T) {
	nodes := startNodes(t, 3)
	n1 := nodes[0]
	if err := n1.SetFaults(Faults{SyncDelayMs: 60_000}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := n1.Put(ctx, "b", "k", []byte("v"), WriteOptions{W: "2", Timeout: 30 * time.Second})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the write was answered (%v) while n1's own copy waited for its fsync", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := n1.SetFaults(Faults{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after healing: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("healing did not end the fsync wait under way")
	}
	lc, err := n1.Local("b", "k")
	if err != nil || !lc.Found {
		t.Fatalf("n1's copy: %+v %v", lc, err)
	}
}
