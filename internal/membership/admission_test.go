package membership

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/quorumkv/quorumkv/internal/pki"
)

// testPKI is a CA and certificates for nodes, from pki.Generate.
type testPKI struct{ dir string }

func newTestPKI(t *testing.T, nodes ...string) testPKI {
	t.Helper()
	dir := t.TempDir()
	if _, err := pki.Generate(dir, pki.Options{Nodes: nodes}); err != nil {
		t.Fatal(err)
	}
	return testPKI{dir}
}

func (p testPKI) bundle(t *testing.T, id string) *pki.Bundle {
	t.Helper()
	cf, kf := pki.NodeFiles(id)
	b, err := pki.Load(filepath.Join(p.dir, cf), filepath.Join(p.dir, kf), filepath.Join(p.dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secured is testConfig with the gossip key and node id's certificate from p.
func secured(t *testing.T, p testPKI, key []byte, id string, seeds ...string) Config {
	t.Helper()
	c := testConfig(id, nil, seeds...)
	c.GossipKeys = [][]byte{key}
	b := p.bundle(t, id)
	c.Cert, c.CAs = &b.Cert, b.CAs
	return c
}

// neverLists fails the test at once when one of ms lists a member named in ids.
func neverLists(t *testing.T, ids []string, ms ...*Membership) {
	t.Helper()
	for _, m := range ms {
		for _, mb := range m.Members() {
			for _, id := range ids {
				if mb.ID == id {
					t.Fatalf("%s lists %s: %s", m.ID(), id, states(m))
				}
			}
		}
	}
}

func refusals(m *Membership) uint64 {
	var n uint64
	for _, c := range m.Unverified() {
		n += c
	}
	return n
}

// TestAdmissionRefusesForeignCA: with the cluster's gossip key but a certificate of
// another CA (or none), a host gets into memberlist but never into Members() of the
// legitimate nodes, and its metadata writes (a user record, a member state) are never
// applied on them, while a legitimate newcomer is admitted and metadata flows.
func TestAdmissionRefusesForeignCA(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	cluster := newTestPKI(t, "n1", "n2", "n3")
	foreign := newTestPKI(t, "n4")
	var logs syncBuffer
	c1 := secured(t, cluster, key, "n1")
	c1.Logger = testLogger(&logs)
	n1 := start(t, c1)
	n2 := start(t, secured(t, cluster, key, "n2", n1.GossipAddr()))
	waitFor(t, 10*time.Second, "n1 and n2 admit each other", viewIs(map[string]State{"n1": Alive, "n2": Alive}, n1, n2))
	if err := n1.SetMeta("user/alice", []byte("alice-record")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "signed metadata reaches n2", metaIs("user/alice", "alice-record", n2))

	// n4: the gossip key, a certificate of its own CA. eve: the gossip key, no TLS.
	n4 := start(t, secured(t, foreign, key, "n4", n1.GossipAddr()))
	ce := testConfig("eve", nil, n1.GossipAddr())
	ce.GossipKeys = [][]byte{key}
	eve := start(t, ce)
	strangers := []string{"n4", "eve"}
	for _, s := range []*Membership{n4, eve} {
		for _, kv := range [][2]string{{"user/mallory", "admin-grant"}, {"member/" + s.ID(), "joining"}, {"bucket/b", "stranger-props"}} {
			if err := s.SetMeta(kv[0], []byte(kv[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Both strangers are in memberlist: n1 probes them and hears their gossip.
	waitFor(t, 10*time.Second, "memberlist on n1 to see the strangers", func() (bool, string) {
		neverLists(t, strangers, n1, n2)
		got := n1.list.Load().NumMembers()
		return got == 4, fmt.Sprint(got, " memberlist nodes")
	})
	waitFor(t, 10*time.Second, "n1 to refuse the foreign certificate and the unsigned state", func() (bool, string) {
		neverLists(t, strangers, n1, n2)
		u := n1.Unverified()
		return u[ReasonBadCertificate] > 0 && u[ReasonUnsigned] > 0, fmt.Sprint(u)
	})

	// A legitimate newcomer after them is admitted everywhere, and its write spreads.
	n3 := start(t, secured(t, cluster, key, "n3", n2.GossipAddr()))
	all := map[string]State{"n1": Alive, "n2": Alive, "n3": Alive}
	waitFor(t, 10*time.Second, "n3 admitted", func() (bool, string) {
		neverLists(t, strangers, n1, n2, n3)
		return viewIs(all, n1, n2, n3)()
	})
	if err := n3.SetMeta("member/n3", []byte("joining")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n3's member state everywhere", metaIs("member/n3", "joining", n1, n2, n3))

	// Let the strangers gossip for a while: every legitimate node goes on refusing them
	// (their broadcasts and push-pulls keep coming: the counters grow) and applies none
	// of it.
	for _, m := range []*Membership{n1, n2, n3} {
		base := refusals(m)
		waitFor(t, 30*time.Second, m.ID()+" to refuse more of the strangers' gossip", func() (bool, string) {
			neverLists(t, strangers, n1, n2, n3)
			return refusals(m) >= base+3, fmt.Sprint(m.Unverified())
		})
	}
	for _, m := range []*Membership{n1, n2, n3} {
		for _, k := range []string{"user/mallory", "member/n4", "member/eve"} {
			if v, ok := m.GetMeta(k); ok {
				t.Errorf("%s applied the stranger's %s = %q", m.ID(), k, v)
			}
		}
		if v, ok := m.GetMeta("bucket/b"); ok {
			t.Errorf("%s applied the stranger's bucket/b = %q", m.ID(), v)
		}
		if m.liveSet()["n4"] || m.liveSet()["eve"] {
			t.Errorf("%s counts a stranger live", m.ID())
		}
	}
	// The strangers got nothing signed by a member either: n4 checks against its own CA.
	if _, ok := n4.GetMeta("user/alice"); ok {
		t.Error("n4 applied the cluster's metadata")
	}
	out := logs.String()
	if !strings.Contains(out, "gossip from an unverified member refused") || !strings.Contains(out, "reason=bad_certificate") {
		t.Errorf("n1 did not log the refusal:\n%s", out)
	}
	if strings.Contains(out, "admin-grant") {
		t.Error("n1's log holds a refused message's content")
	}
}

// TestAdmissionNameTakeover: a host with the gossip key and no certificate of the CA
// cannot pass for a member that is down, even when it replays that member's signed node
// meta: the meta announces the member's own address, not the one the host gossips from.
func TestAdmissionNameTakeover(t *testing.T) {
	key := bytes.Repeat([]byte{3}, 32)
	cluster := newTestPKI(t, "n1", "n2")
	n1 := start(t, secured(t, cluster, key, "n1"))
	n2 := start(t, secured(t, cluster, key, "n2", n1.GossipAddr()))
	waitFor(t, 10*time.Second, "n1 and n2 admitted", viewIs(map[string]State{"n1": Alive, "n2": Alive}, n1, n2))
	n2.mu.Lock()
	rec2 := n2.st.members["n2"]
	n2.mu.Unlock()
	n2meta, err := n2.signedMeta(rec2)
	if err != nil {
		t.Fatal(err)
	}
	stop(t, n2)
	waitFor(t, 10*time.Second, "n2 down on n1", viewIs(map[string]State{"n1": Alive, "n2": Down}, n1))

	// An impostor named n2, without a certificate, whose node meta is n2's signed meta
	// replayed: a bare memberlist with the gossip key.
	mc := memberlist.DefaultLANConfig()
	mc.Name, mc.BindAddr, mc.BindPort = "n2", "127.0.0.1", 0
	mc.Delegate = replayMeta(n2meta)
	mc.Logger = log.New(io.Discard, "", 0)
	mc.ProbeInterval, mc.ProbeTimeout, mc.GossipInterval = 100*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond
	kr, err := memberlist.NewKeyring(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	mc.Keyring = kr
	imp, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Shutdown()
	if _, err := imp.Join([]string{n1.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n1 to see the impostor in memberlist and refuse its meta", func() (bool, string) {
		if got := n1.Members(); len(got) != 2 || got[1].State != Down {
			t.Fatalf("n1 counts the impostor as n2: %s", states(n1))
		}
		return n1.Unverified()[ReasonBadSignature] > 0, fmt.Sprint(n1.Unverified())
	})
}

// replayMeta is a memberlist delegate that announces a fixed node meta and nothing else.
type replayMeta []byte

func (r replayMeta) NodeMeta(int) []byte           { return r }
func (replayMeta) NotifyMsg([]byte)                {}
func (replayMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (replayMeta) LocalState(bool) []byte          { return nil }
func (replayMeta) MergeRemoteState([]byte, bool)   {}

// TestAdmissionMigratesUnsignedState: a persisted state from before TLS (unsigned entries)
// loads, and its entries spread signed by the node that holds them.
func TestAdmissionMigratesUnsignedState(t *testing.T) {
	key := bytes.Repeat([]byte{5}, 32)
	cluster := newTestPKI(t, "n1", "n2")
	s1 := &MemStore{}
	c := testConfig("n1", s1)
	c.GossipKeys = [][]byte{key}
	old := start(t, c)
	if err := old.SetMeta("user/alice", []byte("from-before")); err != nil {
		t.Fatal(err)
	}
	stop(t, old)

	c1 := secured(t, cluster, key, "n1")
	c1.Store = s1
	n1 := start(t, c1)
	if v, ok := n1.GetMeta("user/alice"); !ok || string(v) != "from-before" {
		t.Fatalf("persisted unsigned entry not loaded: %q %v", v, ok)
	}
	n2 := start(t, secured(t, cluster, key, "n2", n1.GossipAddr()))
	waitFor(t, 10*time.Second, "the old entry on n2", metaIs("user/alice", "from-before", n2))
	// The certificates persist with the state: a restart knows its peers' at once.
	if b, _ := s1.Load(); !bytes.Contains(b, []byte(`"certs"`)) {
		t.Error("n1's persisted state holds no certificate")
	}
}

// TestAdmissionConfig: a certificate that does not name the node or that another CA
// signed is refused at start; Cert and CAs go together.
func TestAdmissionConfig(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	cluster := newTestPKI(t, "n1", "n2")
	foreign := newTestPKI(t, "n1")
	c := secured(t, cluster, key, "n1")
	c.Meta.ID = "n2"
	if _, err := Start(t.Context(), c); !errors.Is(err, ErrInvalidInput) || !errors.Is(err, pki.ErrWrongNode) {
		t.Errorf("a certificate naming n1 for node n2: %v", err)
	}
	c = secured(t, cluster, key, "n1")
	c.CAs = foreign.bundle(t, "n1").CAs
	if _, err := Start(t.Context(), c); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("a certificate another CA signed: %v", err)
	}
	c = secured(t, cluster, key, "n1")
	c.CAs = nil
	if err := c.Validate(); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Cert without CAs: %v", err)
	}
}

// TestSignedMessages: what verify accepts and refuses, and why.
func TestSignedMessages(t *testing.T) {
	cluster := newTestPKI(t, "n1", "n2")
	foreign := newTestPKI(t, "n2")
	ident := func(p testPKI, id string) *identity {
		b := p.bundle(t, id)
		i, err := newIdentity(id, &b.Cert, b.CAs)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	n1, n2, f2 := ident(cluster, "n1"), ident(cluster, "n2"), ident(foreign, "n2")
	a := newAdmission(n1)
	if _, err := a.addCert("n2", f2.chain); err == nil {
		t.Fatal("a foreign CA's certificate was kept")
	}
	if _, err := a.addCert("n1", n2.chain); !errors.Is(err, pki.ErrWrongNode) {
		t.Fatalf("n2's certificate kept for n1: %v", err)
	}
	payload := []byte("payload")
	reason := func(err error) Reason {
		var ue *unverifiedError
		if errors.As(err, &ue) {
			return ue.reason
		}
		if err != nil {
			return Reason("other: " + err.Error())
		}
		return ""
	}
	check := func(name string, b []byte, domain string, want Reason) {
		t.Helper()
		sm, ok, err := parseSigned(b)
		if err != nil || !ok {
			t.Fatalf("%s: parse: %v %v", name, ok, err)
		}
		if got := reason(a.verify(domain, sm, nil)); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
	b2, _ := n2.sign(domainMsg, payload)
	check("n2 before its certificate is known", b2, domainMsg, ReasonUnknownSender)
	if added, err := a.addCert("n2", n2.chain); !added || err != nil {
		t.Fatalf("n2's certificate: %v %v", added, err)
	}
	check("n2", b2, domainMsg, "")
	check("n2 replayed for another use", b2, domainState, ReasonBadSignature)
	tampered := bytes.Clone(b2)
	tampered[len(tampered)-1] ^= 1
	check("n2 tampered", tampered, domainMsg, ReasonBadSignature)
	bf, _ := f2.sign(domainMsg, payload)
	check("foreign n2", bf, domainMsg, ReasonBadSignature)
	// A certificate that expired since it was kept speaks no more.
	a.mu.Lock()
	expired := *a.certs["n2"][0].leaf
	expired.NotAfter = time.Now().Add(-time.Minute)
	a.certs["n2"] = []verifiedCert{{chain: n2.chain, leaf: &expired, key: a.certs["n2"][0].key}}
	a.mu.Unlock()
	check("n2 with an expired certificate", b2, domainMsg, ReasonBadSignature)
	if _, ok, _ := parseSigned(encodeMsg(msgEntry, entry{Key: "k", Node: "n1"})); ok {
		t.Error("an unsigned message parsed as signed")
	}
	for _, bad := range [][]byte{{msgSigned}, {msgSigned, 5, 'n'}, {msgSigned, 2, 'n', '1', 0}, {msgSigned, 2, 'n', '1', 0, 0}} {
		if _, _, err := parseSigned(bad); err == nil {
			t.Errorf("truncated frame %v parsed", bad)
		}
	}
}

// FuzzParseSigned: no frame crashes the parser.
func FuzzParseSigned(f *testing.F) {
	f.Add([]byte{msgSigned, 2, 'n', '1', 0, 1, 9, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		sm, ok, err := parseSigned(b)
		if ok && err == nil && (sm.sender == "" || len(sm.sig) == 0) {
			t.Fatalf("accepted a frame without sender or signature: %v", b)
		}
	})
}
