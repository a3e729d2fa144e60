package membership

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestGossipKey: members sharing a gossip key join and spread metadata; a host with
// another key, or none, cannot join, is never listed, never sees the metadata, and what
// it sends is refused and counted.
func TestGossipKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	other := bytes.Repeat([]byte{9}, 32)
	var logs syncBuffer
	c1 := testConfig("n1", nil)
	c1.GossipKeys = [][]byte{key}
	c1.Logger = testLogger(&logs)
	n1 := start(t, c1)
	c2 := testConfig("n2", nil, n1.GossipAddr())
	c2.GossipKeys = [][]byte{key, other} // rotation, step 1: a new key installed beside the one in use
	n2 := start(t, c2)
	waitFor(t, 5*time.Second, "n1 and n2 joined", viewIs(map[string]State{"n1": Alive, "n2": Alive}, n1, n2))
	if err := n1.SetMeta("user/alice", []byte("secret-record")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "metadata on n2", metaIs("user/alice", "secret-record", n2))

	for name, keys := range map[string][][]byte{"wrong key": {other[:16]}, "no key": nil} {
		c := testConfig("intruder", nil, n1.GossipAddr())
		c.GossipKeys = keys
		before := n1.GossipRejected()
		in := start(t, c)
		// Give gossip its chance: a few push-pull and probe rounds.
		waitFor(t, 5*time.Second, name+": n1 refuses and counts", func() (bool, string) {
			return n1.GossipRejected() > before, ""
		})
		time.Sleep(3 * c.PushPullInterval)
		for _, m := range []*Membership{n1, n2} {
			if strings.Contains(states(m), "intruder") {
				t.Errorf("%s: %s lists the intruder: %s", name, m.ID(), states(m))
			}
		}
		if _, ok := in.GetMeta("user/alice"); ok {
			t.Errorf("%s: the intruder got the cluster metadata", name)
		}
		if strings.Contains(states(in), "n1") {
			t.Errorf("%s: the intruder sees n1: %s", name, states(in))
		}
		stop(t, in)
	}
	if !strings.Contains(logs.String(), "gossip refused") {
		t.Errorf("refused gossip not logged")
	}
}

func TestGossipKeyValidate(t *testing.T) {
	c := testConfig("n1", nil)
	c.GossipKeys = [][]byte{make([]byte, 10)}
	if c.Validate() == nil {
		t.Fatal("a 10-byte gossip key validated")
	}
}
