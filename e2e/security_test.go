package e2e

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/pki"
	"github.com/quorumkv/quorumkv/internal/transport"
	"github.com/quorumkv/quorumkv/internal/transport/pb"
	"github.com/quorumkv/quorumkv/internal/version"
)

// memberTLS loads node id's certificate from a certs directory as internode TLS.
func memberTLS(t *testing.T, dir, id string) (server, client *tls.Config) {
	t.Helper()
	cf, kf := pki.NodeFiles(id)
	b, err := pki.Load(filepath.Join(dir, cf), filepath.Join(dir, kf), filepath.Join(dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return b.InternodeServer(), b.InternodeClient()
}

// TestForeignCACannotJoinOrHandOff runs a secured cluster (TLS, mutual TLS, gossip key,
// --auth) and a node whose certificates and gossip key come from another 'quorumkv
// certs' run. The stranger cannot join (no member lists it), its handoff batch never
// reaches a member (the handshake is refused, logged and counted), and nothing changes.
func TestForeignCACannotJoinOrHandOff(t *testing.T) {
	c := startClusterMode(t, 3, true)
	ctx := context.Background()
	n1 := c.node("n1")
	if _, err := n1.client().Put(ctx, "b", "k", []byte("good"), "", client.Quorum{W: "all"}); err != nil {
		t.Fatal(err)
	}

	// A stranger process with its own CA and gossip key tries to join through n1.
	foreign := t.TempDir()
	if _, err := pki.Generate(foreign, pki.Options{Nodes: []string{"n4"}}); err != nil {
		t.Fatal(err)
	}
	stranger := &proc{t: t, id: "n4", data: filepath.Join(t.TempDir(), "n4"), http: freePort(t), resp: freePort(t),
		rpc: freePort(t), gossip: freePort(t), join: []string{n1.gossip}, sec: &secure{dir: foreign}}
	stranger.logPath = filepath.Join(t.TempDir(), "n4.log")
	stranger.start()
	t.Cleanup(stranger.kill)

	// The stranger's handoff of a hint for key b/k, over its own CA's certificate.
	cfg := transport.DefaultConfig()
	cfg.NodeID, cfg.ListenAddr, cfg.Handler = "n4", "127.0.0.1:0", noHandler{}
	cfg.Resolve = func(string) (string, bool) { return n1.rpc, true }
	cfg.ServerTLS, cfg.ClientTLS = memberTLS(t, foreign, "n4")
	cfg.DialTimeout = time.Second
	evil, err := transport.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	obj := version.Object{}.Update(nil, version.Sibling{Dot: version.Dot{Actor: "n4.1", Counter: 99}, Value: []byte("injected")})
	done := make(chan error, 1)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	evil.Call(cctx, "n1", &pb.Envelope{Body: &pb.Envelope_Handoff{Handoff: &pb.HandoffRequest{
		Items: []*pb.HandoffItem{{Bucket: "b", Key: "k", Object: obj.AppendBinary(nil)}}}}}, func(e *pb.Envelope, err error) {
		done <- err
	})
	if err := <-done; err == nil {
		t.Fatal("a handoff over a foreign CA's certificate was answered")
	}

	c.waitFor(10*time.Second, "n1 to count and log the refused handshake", func() bool {
		return n1.metrics(t, "quorumkv_internode_tls_rejected_total")[""] > 0 && n1.logHas("internode TLS handshake refused")
	})
	c.waitFor(10*time.Second, "n1 to refuse the stranger's gossip", func() bool {
		return n1.metrics(t, "quorumkv_gossip_rejected_total")[""] > 0
	})
	for _, p := range c.procs {
		ci, err := p.client().Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ci.Nodes {
			if m.ID == "n4" {
				t.Errorf("%s lists the stranger: %+v", p.id, m)
			}
		}
	}
	obj2, err := n1.client().Get(ctx, "b", "k", client.Quorum{R: "all"})
	if err != nil || len(obj2.Values) != 1 || string(obj2.Values[0]) != "good" {
		t.Errorf("b/k after the refused handoff: %+v %v", obj2, err)
	}
	// No log line of any node holds the admin's password.
	for _, p := range append(c.procs, stranger) {
		b, _ := os.ReadFile(p.logPath)
		if strings.Contains(string(b), e2eAdminPassword) {
			t.Errorf("%s's log holds the admin password", p.id)
		}
	}
}
