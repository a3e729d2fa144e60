package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/internal/api"
	"github.com/quorumkv/quorumkv/internal/auth"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/pki"
	"github.com/quorumkv/quorumkv/internal/testcluster"
)

// TestServerRefusesExposedWithoutSecurity: a server with a listener off loopback refuses
// to start, in one line, unless TLS, a gossip key and --auth are on, or --insecure.
func TestServerRefusesExposedWithoutSecurity(t *testing.T) {
	dir := t.TempDir()
	base := []string{"server", "--id", "n1", "--data", filepath.Join(dir, "d"), "--rpc", "127.0.0.1:0", "--gossip", "127.0.0.1:0"}
	e, out, errb := testEnv("", nil)
	code := e.run(append(base, "--http", "0.0.0.0:0"))
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; stderr %q", code, exitUsage, errb)
	}
	msg := errb.String()
	if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "refusing to listen on 0.0.0.0:0") ||
		!strings.Contains(msg, "--insecure") || !strings.Contains(msg, "--auth") || !strings.Contains(msg, "--gossip-key") {
		t.Errorf("refusal: %q, want one line naming the address, what is missing and --insecure", msg)
	}
	if out.String() != "" {
		t.Errorf("stdout %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); err == nil {
		t.Error("the refused server made its data directory")
	}

	// The check itself, address by address.
	s := &security{}
	for _, c := range []struct {
		addrs []string
		ok    bool
	}{
		{[]string{"127.0.0.1:8080", "[::1]:1", "localhost:7"}, true},
		{[]string{"127.0.0.1:8080", ":6379"}, false},
		{[]string{"[::]:1"}, false},
		{[]string{"n1:7946"}, false},
		{[]string{"10.1.2.3:80"}, false},
	} {
		if err := s.check(false, c.addrs...); (err == nil) != c.ok {
			t.Errorf("%v: %v, want ok=%v", c.addrs, err, c.ok)
		}
		if err := s.check(true, c.addrs...); err != nil {
			t.Errorf("%v with --insecure: %v", c.addrs, err)
		}
	}
	full := &security{bundle: &pki.Bundle{}, gossipKeys: [][]byte{make([]byte, 32)}, auth: true}
	if err := full.check(false, "0.0.0.0:1"); err != nil {
		t.Errorf("fully secured: %v", err)
	}
	noAuth := &security{bundle: &pki.Bundle{}, gossipKeys: [][]byte{make([]byte, 32)}}
	if err := noAuth.check(false, "0.0.0.0:1"); err == nil || !strings.Contains(err.Error(), "--auth") {
		t.Errorf("without --auth: %v", err)
	}

	// Half a TLS configuration is a usage error.
	e, _, errb = testEnv("", nil)
	if code := e.run(append(base, "--http", "127.0.0.1:0", "--tls-cert", "x.pem")); code != exitUsage || !strings.Contains(errb.String(), "go together") {
		t.Errorf("--tls-cert alone: exit %d, %q", code, errb)
	}
}

func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	e, out, errb := testEnv("", nil)
	if code := e.run([]string{"certs", "--out", dir, "--nodes", "n1,n2", "--hosts", "db.example,10.0.0.5"}); code != 0 {
		t.Fatalf("certs: exit %d: %s", code, errb)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "n1.pem", "n1-key.pem", "n2.pem", "n2-key.pem", "gossip.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if secret := strings.HasSuffix(f, "-key.pem") || f == "gossip.key"; secret && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
		if !strings.Contains(out.String(), f) {
			t.Errorf("%s not listed in %q", f, out)
		}
	}
	b, err := pki.Load(filepath.Join(dir, "n2.pem"), filepath.Join(dir, "n2-key.pem"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := b.Cert.Leaf
	if leaf == nil || leaf.VerifyHostname("n2") != nil || leaf.VerifyHostname("db.example") != nil || leaf.VerifyHostname("10.0.0.5") != nil ||
		leaf.VerifyHostname("127.0.0.1") != nil || leaf.VerifyHostname("n1") == nil {
		t.Errorf("n2's certificate names: %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if _, err := pki.LoadGossipKeys(filepath.Join(dir, "gossip.key")); err != nil {
		t.Error(err)
	}
	e, _, errb = testEnv("", nil)
	if code := e.run([]string{"certs", "--out", dir, "--nodes", "n3"}); code != exitFail || !strings.Contains(errb.String(), "exists already") {
		t.Errorf("second run into the same dir: exit %d %q", code, errb)
	}
}

// TestUserVerbsAndClientFlags: the user verbs and --user/--tls-ca of the client verbs
// against a cluster with TLS and --auth.
func TestUserVerbsAndClientFlags(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Generate(dir, pki.Options{Nodes: []string{"n1"}}); err != nil {
		t.Fatal(err)
	}
	b, err := pki.Load(filepath.Join(dir, "n1.pem"), filepath.Join(dir, "n1-key.pem"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var a *auth.Authenticator
	nodes := testcluster.Start(t, 1, func(cfg *node.Config) {
		cfg.HTTPTLS = b.ClientFacing()
		cfg.HTTPHandler = func(n *node.Node) http.Handler {
			a, _ = auth.New(auth.Config{Store: n})
			return api.NewWithOptions(n, api.Options{MaxValue: cfg.MaxValueBytes, Auth: a, RequireAuth: true})
		}
	})
	if _, err := a.Bootstrap("admin", "admin-password"); err != nil {
		t.Fatal(err)
	}
	addr := nodes[0].HTTPAddr()
	ca := filepath.Join(dir, "ca.pem")
	admin := map[string]string{"QUORUMKV_USER": "admin", "QUORUMKV_PASSWORD": "admin-password", "QUORUMKV_TLS_CA": ca}
	run := func(vars map[string]string, stdin string, args ...string) (int, string, string) {
		e, out, errb := testEnv(stdin, vars)
		code := e.run(append(args, "--addr", addr))
		return code, out.String(), errb.String()
	}
	if code, _, errs := run(admin, "", "user", "add", "bob", "--role", "write", "--bucket", "b", "--password", "bob-password"); code != 0 {
		t.Fatalf("user add: %d %s", code, errs)
	}
	if code, _, errs := run(admin, "carol-password\n", "user", "add", "carol", "--role", "read"); code != 0 {
		t.Fatalf("user add with the password on stdin: %d %s", code, errs)
	}
	code, out, _ := run(admin, "", "user", "list")
	if code != 0 || !regexp.MustCompile(`bob +write on b\n`).MatchString(out) || !regexp.MustCompile(`carol +read\n`).MatchString(out) || strings.Contains(out, "password") {
		t.Errorf("user list: %d\n%s", code, out)
	}
	bob := map[string]string{"QUORUMKV_PASSWORD": "bob-password"}
	if code, _, errs := run(bob, "", "put", "b", "k", "v", "--user", "bob", "--tls-ca", ca, "--w", "1"); code != 0 {
		t.Fatalf("bob put: %d %s", code, errs)
	}
	if code, _, errs := run(bob, "", "put", "other", "k", "v", "--user", "bob", "--tls-ca", ca); code != exitFail || !strings.Contains(errs, "forbidden") {
		t.Errorf("bob put elsewhere: %d %s", code, errs)
	}
	if code, _, errs := run(bob, "", "user", "list", "--user", "bob", "--tls-ca", ca); code != exitFail || !strings.Contains(errs, "HTTP 403") {
		t.Errorf("bob user list: %d %s", code, errs)
	}
	if code, _, errs := run(map[string]string{}, "", "get", "b", "k", "--user", "bob", "--tls-ca", ca); code != exitFail || !strings.Contains(errs, "QUORUMKV_PASSWORD") {
		t.Errorf("--user without a password: %d %s", code, errs)
	}
	if code, _, errs := run(map[string]string{}, "", "get", "b", "k", "--tls-ca", ca); code != exitFail || !strings.Contains(errs, "HTTP 401") {
		t.Errorf("no user: %d %s", code, errs)
	}
	if code, _, errs := run(admin, "", "user", "grant", "carol", "--role", "write"); code != 0 {
		t.Errorf("grant: %d %s", code, errs)
	}
	if code, _, errs := run(admin, "", "user", "revoke", "carol", "--role", "write"); code != 0 {
		t.Errorf("revoke: %d %s", code, errs)
	}
	if code, _, errs := run(admin, "", "user", "remove", "carol"); code != 0 {
		t.Errorf("remove: %d %s", code, errs)
	}
	if _, err := a.Lookup("carol"); err == nil {
		t.Error("carol still exists")
	}
	// The healthcheck finds a TLS node through $QUORUMKV_TLS_CA, without a password.
	e, _, errb := testEnv("", map[string]string{"QUORUMKV_TLS_CA": ca})
	if code := e.run([]string{"healthcheck", "--addr", addr}); code != 0 {
		t.Errorf("healthcheck over TLS: %d %s", code, errb)
	}
	// A plaintext client against the TLS port is told what to do.
	if code, _, errs := run(bob, "", "get", "b", "k", "--user", "bob"); code != exitFail || !strings.Contains(errs, "--tls-ca") {
		t.Errorf("plaintext against TLS: %d %s", code, errs)
	}
}
