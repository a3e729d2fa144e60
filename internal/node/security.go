package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/internal/membership"
	"github.com/quorumkv/quorumkv/internal/transport"
)

// securityCollector exports what the transport and the gossip refused: internode TLS
// handshakes (a peer without a certificate of the cluster CA) and gossip no key of the
// keyring opened. Both are read at scrape time.
type securityCollector struct {
	n         *Node
	tlsRej    *prometheus.Desc
	gossipRej *prometheus.Desc
	unverif   *prometheus.Desc
}

func newSecurityCollector(n *Node) *securityCollector {
	return &securityCollector{
		n: n,
		tlsRej: prometheus.NewDesc("quorumkv_internode_tls_rejected_total",
			"Internode TLS handshakes refused (either side): a peer whose certificate the cluster CA did not sign, or a plaintext peer.", nil, nil),
		gossipRej: prometheus.NewDesc("quorumkv_gossip_rejected_total",
			"Gossip messages and streams refused because no key of the gossip keyring opened them.", nil, nil),
		unverif: prometheus.NewDesc("quorumkv_gossip_unverified_total",
			"Gossip refused because its sender did not prove a certificate of the cluster CA naming it (membership admission), by reason.", []string{"reason"}, nil),
	}
}

func (c *securityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tlsRej
	ch <- c.gossipRej
	ch <- c.unverif
}

func (c *securityCollector) Collect(ch chan<- prometheus.Metric) {
	var tlsRej, gossipRej uint64
	if t, ok := c.n.tr.(*transport.Transport); ok && t != nil {
		tlsRej = t.Stats.TLSRejected.Load()
	}
	if c.n.ms != nil {
		gossipRej = c.n.ms.GossipRejected()
		for _, r := range membership.Reasons {
			ch <- prometheus.MustNewConstMetric(c.unverif, prometheus.CounterValue, float64(c.n.ms.Unverified()[r]), string(r))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.tlsRej, prometheus.CounterValue, float64(tlsRej))
	ch <- prometheus.MustNewConstMetric(c.gossipRej, prometheus.CounterValue, float64(gossipRej))
}

// InternodeTLSRejected is how many internode TLS handshakes this node refused.
func (n *Node) InternodeTLSRejected() uint64 {
	if t, ok := n.tr.(*transport.Transport); ok && t != nil {
		return t.Stats.TLSRejected.Load()
	}
	return 0
}

// GossipRejected is how many gossip messages this node refused for want of its key.
func (n *Node) GossipRejected() uint64 { return n.ms.GossipRejected() }
