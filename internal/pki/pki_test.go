package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func load(t *testing.T, dir, node string) *Bundle {
	t.Helper()
	cf, kf := NodeFiles(node)
	b, err := Load(filepath.Join(dir, cf), filepath.Join(dir, kf), filepath.Join(dir, CAFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateAndVerify(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := Generate(a, Options{Nodes: []string{"n1", "n2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(b, Options{Nodes: []string{"n1"}}); err != nil {
		t.Fatal(err)
	}
	n1, n2, foreign := load(t, a, "n1"), load(t, a, "n2"), load(t, b, "n1")
	if err := VerifyChain(nil, n1.CAs, x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("no certificate verified")
	}
	if err := VerifyChain([]*x509.Certificate{n2.Cert.Leaf}, n1.CAs, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("a member's certificate: %v", err)
	}
	err := VerifyChain([]*x509.Certificate{foreign.Cert.Leaf}, n1.CAs, x509.ExtKeyUsageServerAuth)
	if err == nil || !strings.Contains(err.Error(), "not signed by the cluster CA") {
		t.Errorf("another CA's certificate: %v", err)
	}
	if _, err := Generate(a, Options{Nodes: []string{"n3"}}); err == nil {
		t.Error("Generate overwrote an existing CA")
	}
	if _, err := Generate(t.TempDir(), Options{Nodes: []string{"a/b"}}); err == nil {
		t.Error("a node name with a slash")
	}
}

// TestGossipKeys: a bad key file is refused with its line number, never its content.
func TestGossipKeys(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	good := "AAECAwQFBgcICQoLDA0ODw==" // 16 bytes
	if err := os.WriteFile(p, []byte("# keys\n\n"+good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadGossipKeys(p)
	if err != nil || len(keys) != 1 || len(keys[0]) != 16 {
		t.Fatalf("%v %v", keys, err)
	}
	for _, bad := range []string{"c2VjcmV0LXNob3J0", "not base64 at all: secret-xyz", ""} {
		if err := os.WriteFile(p, []byte(good+"\n"+bad+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadGossipKeys(p)
		if bad == "" {
			if err != nil {
				t.Errorf("a blank line: %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "line 2") || strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), good) {
			t.Errorf("bad key %q: %v", bad, err)
		}
	}
}
