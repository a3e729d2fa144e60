package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
)

// The TLS side of the transport. Every handshake refused (a peer whose certificate the
// cluster CA did not sign, a plaintext peer, a certificate that does not name the node it
// should) is counted in Stats.TLSRejected and logged once, with the remote address and the
// reason, never key material.

// errWrongNode: a peer's certificate, though the cluster CA signed it, does not name the
// node the peer claims to be (or the one dialled).
var errWrongNode = errors.New("transport: the peer's certificate does not name its node id")

// namesNode checks that the peer certificate of a TLS connection names node id, as its
// common name or one of its DNS names ('quorumkv certs' puts the node name in both): a
// member cannot speak for another.
func namesNode(certs []*x509.Certificate, id string) error {
	if len(certs) == 0 {
		return fmt.Errorf("%w: no peer certificate", errWrongNode)
	}
	cert := certs[0]
	if cert.Subject.CommonName == id || slices.Contains(cert.DNSNames, id) {
		return nil
	}
	return fmt.Errorf("%w: node %q, certificate %q", errWrongNode, id, cert.Subject.CommonName)
}

// serverHandshake runs the listening side's TLS handshake on an accepted connection (its
// deadline already set); on failure the connection is closed and the refusal counted.
func (t *Transport) serverHandshake(ctx context.Context, raw net.Conn) (net.Conn, error) {
	tc := tls.Server(raw, t.cfg.ServerTLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		if ctx.Err() == nil {
			t.Stats.TLSRejected.Add(1)
			t.log.Warn("internode TLS handshake refused", "side", "server", "remote", raw.RemoteAddr().String(), "err", err)
		}
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// clientHandshake runs the dialing side's TLS handshake towards node id at addr, and
// checks that the certificate shown names id.
func (t *Transport) clientHandshake(ctx context.Context, raw net.Conn, id, addr string) (net.Conn, error) {
	cfg := t.cfg.ClientTLS
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		// A configuration that checks host names checks the one dialled (pki's
		// configuration checks the chain and leaves the name to namesNode).
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(raw, cfg)
	err := tc.HandshakeContext(ctx)
	if err == nil {
		err = namesNode(tc.ConnectionState().PeerCertificates, id)
	}
	if err != nil {
		_ = raw.Close()
		if ctx.Err() == nil {
			t.Stats.TLSRejected.Add(1)
			t.log.Warn("internode TLS handshake refused", "side", "client", "remote", addr, "peer", id, "err", err)
		}
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// checkSender refuses a connection whose hello claims a sender the peer's certificate does
// not name (with TLS on; without it there is nothing to check).
func (t *Transport) checkSender(nc net.Conn, from, remote string) error {
	if t.cfg.ServerTLS == nil {
		return nil
	}
	var certs []*x509.Certificate
	if tc, ok := nc.(*tls.Conn); ok {
		certs = tc.ConnectionState().PeerCertificates
	}
	if err := namesNode(certs, from); err != nil {
		t.Stats.TLSRejected.Add(1)
		t.log.Warn("internode stream refused", "remote", remote, "claimed", from, "err", err)
		return err
	}
	return nil
}
