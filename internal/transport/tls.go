package transport

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// countingCreds wraps the TLS credentials of one side so that every handshake it refuses
// (a peer whose certificate the cluster CA did not sign, a plaintext peer) is counted and
// logged once, with the remote address and the reason, never key material.
type countingCreds struct {
	credentials.TransportCredentials
	log      *slog.Logger
	rejected *atomic.Uint64
	side     string
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
	if err != nil && ctx.Err() == nil {
		c.rejected.Add(1)
		c.log.Warn("internode TLS handshake refused", "side", c.side, "remote", authority, "err", err)
	}
	return conn, info, err
}

func (c *countingCreds) Clone() credentials.TransportCredentials {
	return &countingCreds{TransportCredentials: c.TransportCredentials.Clone(), log: c.log, rejected: c.rejected, side: c.side}
}

// serverCreds are the credentials of the listening side: mutual TLS with cfg.ServerTLS,
// or none.
func (t *Transport) serverCreds() credentials.TransportCredentials {
	if t.cfg.ServerTLS == nil {
		return insecure.NewCredentials()
	}
	return &countingCreds{TransportCredentials: credentials.NewTLS(t.cfg.ServerTLS), log: t.log, rejected: &t.Stats.TLSRejected, side: "server"}
}

// clientCreds are the credentials of the dialing side.
func (t *Transport) clientCreds() credentials.TransportCredentials {
	if t.cfg.ClientTLS == nil {
		return insecure.NewCredentials()
	}
	return &countingCreds{TransportCredentials: credentials.NewTLS(t.cfg.ClientTLS), log: t.log, rejected: &t.Stats.TLSRejected, side: "client"}
}
