package node

import (
	"context"
	"testing"
	"time"
)

// TestSlowDiskHealed: with n1's fsyncs made to wait a minute (sync_delay_ms), a plain
// write coordinated by n1 is answered at once (no ack waits for an fsync without dw),
// while a write asking for durability (dw=2) waits for n1's own durable copy, however soon
// the other replicas ack; healing the fault ends the wait under way, and it completes.
func TestSlowDiskHealed(t *testing.T) {
	nodes := startNodes(t, 3)
	n1 := nodes[0]
	if err := n1.SetFaults(Faults{SyncDelayMs: 60_000}); err != nil {
		t.Fatal(err)
	}
	plain, cancelPlain := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelPlain()
	if _, err := n1.Put(plain, "b", "plain", []byte("v"), WriteOptions{W: "2", Timeout: 10 * time.Second}); err != nil {
		t.Fatalf("a plain write with n1's disk slow: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := n1.Put(ctx, "b", "k", []byte("v"), WriteOptions{W: "2", DW: "2", Timeout: 30 * time.Second})
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
