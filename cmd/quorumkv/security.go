package main

// The server's security flags (docs/security.md): TLS on the HTTP and Redis ports, mutual
// TLS between nodes, encrypted gossip, and authentication. Safe by default: a server with
// a listener off loopback refuses to start unless all of them are on, or --insecure says
// that running open is meant.

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/pki"
)

// adminPasswordEnv gives the first admin's password when no user exists yet.
const adminPasswordEnv = "QUORUMKV_ADMIN_PASSWORD"

// firstAdmin is the name of the user made from $QUORUMKV_ADMIN_PASSWORD.
const firstAdmin = "admin"

type securityFlags struct {
	tlsCert, tlsKey, tlsCA, gossipKey *string
	auth, insecure                    *bool
}

func addSecurityFlags(fs *flag.FlagSet) securityFlags {
	return securityFlags{
		tlsCert:   fs.String("tls-cert", "", "PEM certificate `file` of this node: TLS on the HTTP and Redis ports, and its identity to other nodes, so it must name --id as common name or DNS name (with --tls-key and --tls-ca)"),
		tlsKey:    fs.String("tls-key", "", "PEM private key `file` of --tls-cert"),
		tlsCA:     fs.String("tls-ca", "", "PEM `file` of the cluster CA: nodes talk mutual TLS and accept only peers whose certificate it signed"),
		gossipKey: fs.String("gossip-key", "", "`file` of base64 gossip keys, one a line (first sends, all receive): encrypts gossip; 'quorumkv certs' writes one"),
		auth:      fs.Bool("auth", false, "require a user and password on every client request (HTTP basic auth, Redis AUTH); the first admin comes from $"+adminPasswordEnv),
		insecure:  fs.Bool("insecure", false, "allow listening off loopback without TLS, --gossip-key and --auth (anyone who reaches the ports can read, write and join)"),
	}
}

// security is what the flags loaded.
type security struct {
	bundle     *pki.Bundle // nil without TLS
	gossipKeys [][]byte
	auth       bool
}

// load reads the files the flags name. Errors name files, never their contents.
func (sf securityFlags) load() (*security, error) {
	s := &security{auth: *sf.auth}
	some := *sf.tlsCert != "" || *sf.tlsKey != "" || *sf.tlsCA != ""
	if some && (*sf.tlsCert == "" || *sf.tlsKey == "" || *sf.tlsCA == "") {
		return nil, errors.New("--tls-cert, --tls-key and --tls-ca go together: TLS for clients and mutual TLS between nodes use the same certificate ('quorumkv certs' writes all three)")
	}
	if some {
		b, err := pki.Load(*sf.tlsCert, *sf.tlsKey, *sf.tlsCA)
		if err != nil {
			return nil, err
		}
		s.bundle = b
	}
	if *sf.gossipKey != "" {
		keys, err := pki.LoadGossipKeys(*sf.gossipKey)
		if err != nil {
			return nil, err
		}
		s.gossipKeys = keys
	}
	return s, nil
}

// exposed lists the addresses that are not on loopback.
func exposed(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		if a == "" {
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		if host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			continue
		}
		out = append(out, a)
	}
	return out
}

// check refuses an exposed server that is not fully secured, unless insecure; the error
// is the one line the server prints.
func (s *security) check(insecure bool, addrs ...string) error {
	ex := exposed(addrs...)
	if len(ex) == 0 || insecure {
		return nil
	}
	var missing []string
	if s.bundle == nil {
		missing = append(missing, "TLS (--tls-cert, --tls-key, --tls-ca)")
	}
	if s.gossipKeys == nil {
		missing = append(missing, "--gossip-key")
	}
	if !s.auth {
		missing = append(missing, "--auth")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s (not loopback) without %s: anyone who reaches it could read, write and join; "+
		"run 'quorumkv certs' for certificates and a gossip key, or pass --insecure to run open anyway",
		strings.Join(ex, ", "), strings.Join(missing, ", "))
}

// apply puts the TLS configurations and gossip keys into cfg and returns the Redis
// port's TLS configuration (nil: plaintext).
func (s *security) apply(cfg *node.Config) *tls.Config {
	cfg.GossipKeys = s.gossipKeys
	if s.bundle == nil {
		return nil
	}
	cfg.HTTPTLS = s.bundle.ClientFacing()
	cfg.InternodeServerTLS = s.bundle.InternodeServer()
	cfg.InternodeClientTLS = s.bundle.InternodeClient()
	return s.bundle.ClientFacing()
}

// Client-side security settings: the environment variables behind --user and --tls-ca,
// and the password's (never a flag: a flag shows in ps and shell history).
const (
	userEnv     = "QUORUMKV_USER"
	passwordEnv = "QUORUMKV_PASSWORD"
	tlsCAEnv    = "QUORUMKV_TLS_CA"
)

// securityOptions are the client options of --user and --tls-ca.
func (cf clientFlags) securityOptions() ([]client.Option, error) {
	var opts []client.Option
	if cf.tlsCA != nil && *cf.tlsCA != "" {
		pool, err := pki.LoadCAs(*cf.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		opts = append(opts, client.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}))
	}
	if cf.user != nil && *cf.user != "" {
		pw := cf.getenv(passwordEnv)
		if pw == "" {
			return nil, fmt.Errorf("--user %s needs the password in $%s", *cf.user, passwordEnv)
		}
		opts = append(opts, client.WithCredentials(*cf.user, pw))
	}
	return opts, nil
}

// failingClient is an HTTP client whose every request fails with err.
func failingClient(err error) *http.Client {
	return &http.Client{Transport: failingTransport{setupError{err}}}
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// setupError is a client configuration the user got wrong (no password, an unreadable
// CA file): nothing was sent, so there is no port to look at.
type setupError struct{ err error }

func (e setupError) Error() string { return e.err.Error() }
func (e setupError) Unwrap() error { return e.err }

// tlsHint explains the 400 a plaintext client gets from a TLS port.
func tlsHint(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest && strings.Contains(ae.Message, "HTTPS server") {
		return "the node speaks HTTPS: give the cluster CA with --tls-ca FILE (or $" + tlsCAEnv + ")"
	}
	return ""
}

// peerTLS is how the dashboard asks the other nodes' HTTP APIs (nil: plain HTTP).
func (s *security) peerTLS() *tls.Config {
	if s.bundle == nil {
		return nil
	}
	return s.bundle.InternodeClient()
}
