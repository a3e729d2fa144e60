package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// countingCreds wraps the TLS credentials of one side so that every handshake it refuses
// (a peer whose certificate the cluster CA did not sign, a plaintext peer) is counted and
// logged once, with the remote address and the reason, never key material.
type countingCreds struct {
	credentials.TransportCredentials
	log      *slog.Logger
	rejected *atomic.Uint64
	side     string
	expect   string // dialing side: the node id the peer's certificate must name
}

func (c *countingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		c.rejected.Add(1)
		c.log.Warn("internode TLS handshake refused", "side", c.side, "remote", raw.RemoteAddr().String(), "err", err)
	}
	return conn, info, err
}

func (c *countingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err == nil && c.expect != "" {
		if err = namesNode(info, c.expect); err != nil {
			_ = conn.Close()
		}
	}
	if err != nil && ctx.Err() == nil {
		c.rejected.Add(1)
		c.log.Warn("internode TLS handshake refused", "side", c.side, "remote", authority, "err", err)
	}
	return conn, info, err
}

func (c *countingCreds) Clone() credentials.TransportCredentials {
	return &countingCreds{TransportCredentials: c.TransportCredentials.Clone(), log: c.log, rejected: c.rejected, side: c.side, expect: c.expect}
}

// errWrongNode: a peer's certificate, though the cluster CA signed it, does not name the
// node the peer claims to be (or the one dialled).
var errWrongNode = errors.New("transport: the peer's certificate does not name its node id")

// namesNode checks that the peer certificate of a TLS connection names node id, as its
// common name or one of its DNS names ('quorumkv certs' puts the node name in both): a
// member cannot speak for another.
func namesNode(info credentials.AuthInfo, id string) error {
	ti, ok := info.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no peer certificate", errWrongNode)
	}
	cert := ti.State.PeerCertificates[0]
	if cert.Subject.CommonName == id || slices.Contains(cert.DNSNames, id) {
		return nil
	}
	return fmt.Errorf("%w: node %q, certificate %q", errWrongNode, id, cert.Subject.CommonName)
}

// checkSender refuses a stream whose claimed sender the peer's certificate does not name
// (with TLS on; without it there is nothing to check).
func (t *Transport) checkSender(ctx context.Context, from string) error {
	if t.cfg.ServerTLS == nil {
		return nil
	}
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return fmt.Errorf("%w: no peer information", errWrongNode)
	}
	if err := namesNode(p.AuthInfo, from); err != nil {
		t.Stats.TLSRejected.Add(1)
		t.log.Warn("internode stream refused", "remote", p.Addr.String(), "claimed", from, "err", err)
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

// serverCreds are the credentials of the listening side: mutual TLS with cfg.ServerTLS,
// or none.
func (t *Transport) serverCreds() credentials.TransportCredentials {
	if t.cfg.ServerTLS == nil {
		return insecure.NewCredentials()
	}
	return &countingCreds{TransportCredentials: credentials.NewTLS(t.cfg.ServerTLS), log: t.log, rejected: &t.Stats.TLSRejected, side: "server"}
}

// clientCreds are the credentials of the dialing side towards node id.
func (t *Transport) clientCreds(id string) credentials.TransportCredentials {
	if t.cfg.ClientTLS == nil {
		return insecure.NewCredentials()
	}
	return &countingCreds{TransportCredentials: credentials.NewTLS(t.cfg.ClientTLS), log: t.log, rejected: &t.Stats.TLSRejected, side: "client", expect: id}
}
