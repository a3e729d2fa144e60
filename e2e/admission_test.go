package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/pki"
)

// startSecured starts a secured cluster of the nodes ids (the first alone, the others
// joining it) with certificates from sec, which may hold more nodes than are started.
func startSecured(t *testing.T, sec *secure, ids ...string) *cluster {
	t.Helper()
	c := &cluster{t: t}
	root := t.TempDir()
	for _, id := range ids {
		c.startSecuredNode(sec, root, id)
	}
	c.stopAtCleanup()
	c.waitAlive(len(ids))
	return c
}

// startSecuredNode starts node id under root with sec's certificate for it, joining the
// cluster's first node (choosing other ports if one was taken meanwhile).
func (c *cluster) startSecuredNode(sec *secure, root, id string) *proc {
	t := c.t
	t.Helper()
	p := &proc{t: t, id: id, data: filepath.Join(root, id), http: freePort(t), resp: freePort(t),
		rpc: freePort(t), gossip: freePort(t), sec: sec}
	p.logPath = filepath.Join(root, id+".log")
	if len(c.procs) > 0 {
		p.join = []string{c.procs[0].gossip}
	}
	c.procs = append(c.procs, p)
	p.startFresh()
	return p
}

// TestGossipKeyWithoutCertificateCannotJoin: a node that has the cluster's gossip key but
// a certificate from another CA gets into the gossip, and no further: no member lists it,
// it owns no partition, it holds up neither a later join nor a leave of legitimate nodes,
// what it writes to the cluster metadata (a user, bucket properties, its member state)
// shows up on no member, and each member that hears it counts and logs the refusal.
func TestGossipKeyWithoutCertificateCannotJoin(t *testing.T) {
	root := t.TempDir()
	sec := newSecure(t, filepath.Join(root, "certs"), 4)
	c := startSecured(t, sec, "n1", "n2", "n3")
	ctx := context.Background()
	n1 := c.node("n1")
	const keys = 60
	for i := range keys {
		if _, err := n1.client().Put(ctx, "b", fmt.Sprintf("k%02d", i), []byte("v"), "", client.Quorum{W: "all"}); err != nil {
			t.Fatal(err)
		}
	}

	// The stranger: its own CA's certificate, the cluster's gossip key.
	foreign := newSecure(t, filepath.Join(root, "foreign"), 5)
	gk, err := os.ReadFile(filepath.Join(sec.dir, pki.GossipFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign.dir, pki.GossipFile), gk, 0o600); err != nil {
		t.Fatal(err)
	}
	stranger := &proc{t: t, id: "n5", data: filepath.Join(root, "n5"), http: freePort(t), resp: freePort(t),
		rpc: freePort(t), gossip: freePort(t), join: []string{n1.gossip}, sec: foreign}
	stranger.logPath = filepath.Join(root, "n5.log")
	stranger.start()
	t.Cleanup(stranger.kill)
	// It sees itself as a cluster of one and writes to the metadata it would gossip.
	const strangerPassword = "mallory-password"
	if _, err := stranger.client().PutUser(ctx, "mallory", strangerPassword, []client.Grant{{Role: client.RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	one, lww := 1, "lww"
	if _, err := stranger.client().SetBucket(ctx, "strange", client.BucketProps{N: &one, Conflict: &lww}); err != nil {
		t.Fatal(err)
	}

	strangerAbsent := func(when string) {
		t.Helper()
		for _, p := range c.procs {
			ci, err := p.client().Cluster(ctx)
			if err != nil {
				t.Fatalf("%s: cluster of %s: %v", when, p.id, err)
			}
			for _, m := range ci.Nodes {
				if m.ID == "n5" {
					t.Fatalf("%s: %s lists the stranger: %+v", when, p.id, m)
				}
			}
			tr, err := p.client().Transfers(ctx)
			if err != nil {
				t.Fatalf("%s: transfers of %s: %v", when, p.id, err)
			}
			if slices.Contains(tr.Ring, "n5") || slices.Contains(tr.Next, "n5") || tr.States["n5"] != "" {
				t.Fatalf("%s: %s counts the stranger in a ring: %+v", when, p.id, tr)
			}
		}
	}
	c.waitFor(30*time.Second, "n1 to count and log the stranger's refused gossip", func() bool {
		strangerAbsent("while the stranger gossips")
		return n1.metrics(t, "quorumkv_gossip_unverified_total")[`{reason="bad_certificate"}`] > 0 &&
			n1.logHas("gossip from an unverified member refused", "reason=bad_certificate", "sender=n5")
	})

	// A legitimate node joins, and then one leaves: neither waits for the stranger.
	c.startSecuredNode(sec, root, "n4")
	c.waitRing("n1", "n2", "n3", "n4")
	strangerAbsent("after n4 joined")
	if _, err := n1.client().Leave(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	c.waitRing("n1", "n3", "n4")
	strangerAbsent("after n2 left")

	// By now the stranger has gossiped for many push-pull rounds: none of its writes
	// shows up on a member.
	for _, p := range c.procs {
		if p.id == "n2" {
			continue // left the ring
		}
		users, err := p.client().Users(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if u.Name == "mallory" {
				t.Errorf("%s lists the stranger's user: %+v", p.id, u)
			}
		}
		if _, err := client.New(p.http, client.WithTLS(p.sec.tls), client.WithCredentials("mallory", strangerPassword)).Cluster(ctx); err == nil {
			t.Errorf("%s lets the stranger's user in", p.id)
		}
		props, err := p.client().GetBucket(ctx, "strange")
		if err != nil {
			t.Fatal(err)
		}
		if props.Conflict != nil && *props.Conflict == "lww" {
			t.Errorf("%s has the stranger's bucket properties: %+v", p.id, props)
		}
	}
	for i := range keys {
		obj, err := n1.client().Get(ctx, "b", fmt.Sprintf("k%02d", i), client.Quorum{R: "all"})
		if err != nil || len(obj.Values) != 1 {
			t.Fatalf("k%02d after the changes: %+v %v", i, obj, err)
		}
	}
	for _, p := range append(slices.Clone(c.procs), stranger) {
		b, _ := os.ReadFile(p.logPath)
		if strings.Contains(string(b), e2eAdminPassword) || strings.Contains(string(b), strangerPassword) {
			t.Errorf("%s's log holds a password", p.id)
		}
	}
}
