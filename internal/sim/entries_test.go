package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/internal/version"
)

// TestCheckEntries proves the clock-entry checker can fail: more actors of one node in a
// clock than the node has had lives (what every restart used to add) is a violation; one
// actor per life, and the one-off actors of sloppy coordination, are not.
func TestCheckEntries(t *testing.T) {
	for _, tc := range []struct {
		actors []string
		lives  int // of n1
		bad    bool
	}{
		{[]string{"n1.e1", "n2.e2"}, 1, false},
		{[]string{"n1.e1", "n1.e1#7", "n1.e1#9"}, 1, false},
		{[]string{"n1.e1", "n1.e1~2s"}, 1, true},
		{[]string{"n1.e1", "n1.e1c1"}, 2, false},
		{[]string{"n1.e1", "n1.e1c1", "n1.e1c2"}, 2, true},
	} {
		var entries []version.Entry
		for i, a := range tc.actors {
			entries = append(entries, version.Entry{Actor: a, Counter: uint64(i + 1)})
		}
		clk, err := version.NewClock(entries...)
		if err != nil {
			t.Fatal(err)
		}
		h := &history{}
		lives := func(node string) int {
			if node == "n1" {
				return tc.lives
			}
			return 1
		}
		checkEntries(h, "n3", "k", clk, lives)
		if got := len(h.violations) > 0; got != tc.bad {
			t.Fatalf("%v: violation %v, want %v (%s)", tc.actors, got, tc.bad, strings.Join(h.violations, "; "))
		}
	}
}

// TestManyRestartsOneActor is defect 2 of the node-core issue, shown in the simulator: one
// node is killed (its unsynced writes lost) and restarted twenty times under load; every
// clock any replica stores keeps at most one entry per life of each node (checkEntries
// runs on every write: a crash adds one, nothing else does), and every invariant holds:
// no acknowledged write lost, no dot covering a write its coordinator never saw (kv679),
// counters within bounds.
func TestManyRestartsOneActor(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seed = 11
	cfg.Duration, cfg.Rate, cfg.Keys = 10*time.Second, 400, 50
	cfg.HealBudget = 30 * time.Second
	var spec []string
	for i := range 20 {
		spec = append(spec, fmt.Sprintf("crash n1 200ms@%dms", 300+i*450))
	}
	f, err := ParseFaults(strings.Join(spec, "; "))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Faults = f
	rep, err := Run(cfg, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(rep.Violations, "\n"))
	}
	t.Logf("%d writes, %d reads, converged %v; faults: %s", rep.Writes, rep.Reads, rep.Converged, rep.Faults)
	if rep.Writes == 0 || !rep.Converged {
		t.Fatalf("writes %d, converged %v", rep.Writes, rep.Converged)
	}
}
