package main

import (
	"context"
	"net"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

func init() {
	register(&command{
		name:    "healthcheck",
		group:   "Running",
		args:    "[--addr ADDR] [--timeout D]",
		summary: "exit 0 when the local node answers /healthz (a container's health check)",
		run:     runHealthcheck,
	})
}

func runHealthcheck(e *env, args []string) int {
	c := lookup("healthcheck")
	fs := e.flags(c, `
Asks a node's GET /healthz and exits 0 when it answers 200, 1 otherwise: the image's
HEALTHCHECK runs it. Without --addr it asks the server configured in the same
environment: the address of $QUORUMKV_HTTP (or "http" in the file $QUORUMKV_CONFIG),
with a wildcard host (0.0.0.0, ::) replaced by loopback; else $QUORUMKV_ADDR, else
127.0.0.1:8080. With $QUORUMKV_TLS_CA set (as for a server started with TLS) it asks
over HTTPS.`)
	addr := fs.String("addr", "", "`host:port` or URL of the node's HTTP API (default: see above)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	tlsCA := fs.String("tls-ca", e.getenv(tlsCAEnv), "PEM `file` of the cluster CA: ask over HTTPS ($"+tlsCAEnv+" sets the default; /healthz needs no password)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	if *timeout <= 0 {
		return usageErr(fs, "--timeout must be positive")
	}
	target := *addr
	if target == "" {
		target = e.localServerAddr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cf := clientFlags{tlsCA: tlsCA, getenv: e.getenv}
	opts, err := cf.securityOptions()
	if err != nil {
		return e.fail("healthcheck: %v", err)
	}
	if err := client.New(target, opts...).Health(ctx); err != nil {
		return e.fail("healthcheck %s: %v", target, err)
	}
	return exitOK
}

// localServerAddr is the HTTP address of the server configured by this environment,
// as runHealthcheck documents.
func (e *env) localServerAddr() string {
	httpAddr := e.getenv(envName("http"))
	if httpAddr == "" {
		if path := e.getenv(envName(configFlag)); path != "" {
			// Only the "http" key matters here; the server reports a bad file itself.
			if raw, err := readTOML(path); err == nil {
				httpAddr, _ = raw["http"].(string)
			}
		}
	}
	if httpAddr == "" {
		if v := e.getenv(addrEnv); v != "" {
			return v
		}
		return defaultAddr
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return httpAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
