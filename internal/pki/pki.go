// Package pki makes and loads the certificates and keys that secure a quorumkv cluster:
// a cluster CA, one certificate per node, and the gossip key.
//
// Model: one CA per cluster. A node's certificate serves clients (HTTP and Redis over
// TLS, checked by name as any TLS client does) and authenticates the node to its peers
// (mutual TLS on the internode port). Between nodes the check is the chain (here) and the
// node id the certificate names (the transport's), not the address it is dialled at, so
// the CA must be the cluster's own and its key kept off the nodes. The gossip key is a
// separate, symmetric secret (memberlist's keyring): a file of base64 keys, one a line,
// the first used to send, all tried to receive, which is how a key is rotated. The node
// certificate also admits a node to the gossip: the membership layer signs what it
// gossips with the node's key and checks senders with VerifyNode (the gossip key alone
// does not make a member).
//
// Invariants: private keys are written 0600 and never logged; Generate never overwrites
// an existing file; TLS is 1.2 at least.
package pki

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Files written by Generate, in its out directory.
const (
	CAFile     = "ca.pem"
	CAKeyFile  = "ca-key.pem"
	GossipFile = "gossip.key"
)

// NodeFiles are the certificate and key file names of node name.
func NodeFiles(name string) (cert, key string) { return name + ".pem", name + "-key.pem" }

// Options configure Generate.
type Options struct {
	// Nodes are the node names; each gets a certificate valid for its name, localhost,
	// 127.0.0.1, ::1 and Hosts.
	Nodes []string
	// Hosts are further DNS names or IP addresses put in every node certificate.
	Hosts []string
	// ValidFor: how long the certificates last (default one year: for development and
	// container setups; production CAs set their own policy).
	ValidFor time.Duration
	// Now is the issue time (time.Now when zero).
	Now time.Time
}

// Generate writes a CA, a certificate and key per node and a gossip key into dir (made if
// missing). It refuses to overwrite any file and returns the paths written.
func Generate(dir string, o Options) ([]string, error) {
	if len(o.Nodes) == 0 {
		return nil, errors.New("pki: no node names")
	}
	if o.ValidFor <= 0 {
		o.ValidFor = 365 * 24 * time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	files := map[string][]byte{}
	caCert, caKey, caPEM, caKeyPEM, err := newCA(o)
	if err != nil {
		return nil, err
	}
	files[CAFile], files[CAKeyFile] = caPEM, caKeyPEM
	for _, n := range o.Nodes {
		if n == "" || strings.ContainsAny(n, "/\\ \t") {
			return nil, fmt.Errorf("pki: bad node name %q", n)
		}
		c, k, err := newLeaf(o, caCert, caKey, n)
		if err != nil {
			return nil, err
		}
		cf, kf := NodeFiles(n)
		files[cf], files[kf] = c, k
	}
	gk := make([]byte, 32)
	if _, err := rand.Read(gk); err != nil {
		return nil, fmt.Errorf("pki: gossip key: %w", err)
	}
	files[GossipFile] = []byte(base64.StdEncoding.EncodeToString(gk) + "\n")

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	for name := range files {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return nil, fmt.Errorf("pki: %s exists already; choose another --out or remove it", filepath.Join(dir, name))
		}
	}
	var written []string
	for _, name := range sortedNames(files) {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "-key.pem") || name == GossipFile {
			mode = 0o600
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, files[name], mode); err != nil {
			return written, fmt.Errorf("pki: %w", err)
		}
		written = append(written, p)
	}
	return written, nil
}

func sortedNames(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func serial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s, nil
}

func newCA(o Options) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("pki: CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "quorumkv cluster CA", Organization: []string{"quorumkv"}},
		NotBefore:             o.Now.Add(-time.Hour),
		NotAfter:              o.Now.Add(o.ValidFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kp, nil
}

func newLeaf(o Options, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: key of %s: %w", name, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"quorumkv"}},
		NotBefore:    o.Now.Add(-time.Hour),
		NotAfter:     o.Now.Add(o.ValidFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Server for clients and peers, client for the peers it dials.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range append([]string{name, "localhost", "127.0.0.1", "::1"}, o.Hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: certificate of %s: %w", name, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kp, nil
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Bundle is a node's loaded TLS material.
type Bundle struct {
	Cert tls.Certificate
	CAs  *x509.CertPool // nil when no CA was given
}

// Load reads a node's certificate and key and, when caFile is not empty, the cluster CA.
func Load(certFile, keyFile, caFile string) (*Bundle, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// LoadX509KeyPair names files and PEM problems, never key bytes.
		return nil, fmt.Errorf("pki: --tls-cert/--tls-key: %w", err)
	}
	b := &Bundle{Cert: cert}
	if caFile != "" {
		if b.CAs, err = LoadCAs(caFile); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// LoadCAs reads a PEM file of CA certificates.
func LoadCAs(file string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("pki: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("pki: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ClientFacing is the server configuration of the HTTP and Redis ports: the node's
// certificate, no client certificate asked (clients log in with a password).
func (b *Bundle) ClientFacing() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{b.Cert}}
}

// InternodeServer is the server configuration of the internode port: a client
// certificate signed by the cluster CA is required.
func (b *Bundle) InternodeServer() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    b.CAs,
	}
}

// InternodeClient is the configuration a node dials its peers with: its certificate, and
// the peer's chain checked against the cluster CA (not its address: the transport checks
// that it names the node dialled; see the package doc).
func (b *Bundle) InternodeClient() *tls.Config {
	cas := b.CAs
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.Cert},
		// The default check is replaced by VerifyConnection below, which checks the chain
		// against the cluster CA and skips only the host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return VerifyChain(cs.PeerCertificates, cas, x509.ExtKeyUsageServerAuth)
		},
	}
}

// VerifyChain checks that certs (leaf first) chain up to a certificate of cas.
func VerifyChain(certs []*x509.Certificate, cas *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(certs) == 0 {
		return errors.New("pki: peer sent no certificate")
	}
	if cas == nil {
		return errors.New("pki: no cluster CA configured")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: cas, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("pki: peer certificate %q is not signed by the cluster CA: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// ErrWrongNode: a certificate, though the cluster CA may have signed it, does not name the
// node it is shown for.
var ErrWrongNode = errors.New("pki: the certificate does not name the node")

// NamesNode checks that cert names node id, as its common name or one of its DNS names
// ('quorumkv certs' puts the node name in both): the same rule the internode transport
// applies, so a member cannot speak for another.
func NamesNode(cert *x509.Certificate, id string) error {
	if cert == nil {
		return fmt.Errorf("%w: no certificate", ErrWrongNode)
	}
	if id != "" && (cert.Subject.CommonName == id || slices.Contains(cert.DNSNames, id)) {
		return nil
	}
	return fmt.Errorf("%w: node %q, certificate %q", ErrWrongNode, id, cert.Subject.CommonName)
}

// VerifyNode parses a DER certificate chain (leaf first), checks that it chains up to a
// certificate of cas for server and client use (a node serves and dials its peers with
// one certificate) and that the leaf names node id, and returns the leaf.
func VerifyNode(chain [][]byte, cas *x509.CertPool, id string) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("pki: empty certificate chain")
	}
	certs := make([]*x509.Certificate, 0, len(chain))
	for _, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("pki: certificate of %q: %w", id, err)
		}
		certs = append(certs, c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if err := VerifyChain(certs, cas, usage); err != nil {
			return nil, err
		}
	}
	if err := NamesNode(certs[0], id); err != nil {
		return nil, err
	}
	return certs[0], nil
}

// LoadGossipKeys reads a gossip key file: base64 keys of 16, 24 or 32 bytes, one a line
// (blank lines and lines starting with # skipped). The first is the one gossip is sent
// with; all are tried on what arrives.
func LoadGossipKeys(file string) ([][]byte, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("pki: --gossip-key: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
			// The line number, never the line: it is a secret.
			return nil, fmt.Errorf("pki: --gossip-key %s line %d: want base64 of 16, 24 or 32 bytes", file, line)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("pki: --gossip-key %s holds no key", file)
	}
	return keys, nil
}
