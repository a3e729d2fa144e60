package main

import (
	"fmt"
	"time"

	"github.com/quorumkv/quorumkv/internal/pki"
)

func init() {
	register(&command{name: "certs", group: "Tools", args: "--out DIR --nodes n1,n2,n3 [--hosts H,...] [--valid-for D]",
		summary: "write a cluster CA, node certificates and a gossip key", run: runCerts})
}

func runCerts(e *env, args []string) int {
	c := lookup("certs")
	fs := e.flags(c, `
Writes into DIR, for development and the container setup:

  ca.pem, ca-key.pem        the cluster CA (keep ca-key.pem off the nodes)
  NODE.pem, NODE-key.pem    each node's certificate, valid for NODE, localhost,
                            127.0.0.1, ::1 and --hosts; it serves clients and peers
  gossip.key                a random 32-byte gossip key (base64)

Start each node with --tls-cert NODE.pem --tls-key NODE-key.pem --tls-ca ca.pem
--gossip-key gossip.key --auth; clients use --tls-ca ca.pem (curl --cacert ca.pem,
redis-cli --tls --cacert ca.pem). Existing files are never overwritten.`)
	out := fs.String("out", "", "`dir`ectory to write into (required)")
	nodes := fs.String("nodes", "", "comma-separated node `names` (required)")
	hosts := fs.String("hosts", "", "comma-separated extra DNS `names` or IP addresses for every node certificate")
	validFor := fs.Duration("valid-for", 365*24*time.Hour, "how long the certificates last")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageErr(fs, "unexpected argument %q", pos[0])
	}
	if *out == "" || len(splitList(*nodes)) == 0 {
		return usageErr(fs, "--out and --nodes are required")
	}
	files, err := pki.Generate(*out, pki.Options{Nodes: splitList(*nodes), Hosts: splitList(*hosts), ValidFor: *validFor})
	if err != nil {
		return e.fail("certs: %v", err)
	}
	for _, f := range files {
		fmt.Fprintln(e.stdout, f)
	}
	return exitOK
}
