package client

import (
	"context"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/quorumkv/quorumkv/internal/ring"
)

// Routing to a key's primaries (WithRouting): the client fetches the cluster's members
// (GET /v1/cluster), builds the same ring the nodes do, and sends a key's reads and
// writes to its first primary it knows an address of, so that no node has to forward
// them (Dynamo's client-driven coordination, which halved its p99.9). The ring is fetched
// again every RouteRefresh, and the request goes to the configured addresses whenever the
// ring is not known yet or the primary cannot be reached. Members that are joining or
// have left own nothing yet (or any more) and are skipped; during a cluster change the
// ring may be a moment behind, which costs a forward, never a wrong answer.

// RouteRefresh is how old the client's copy of the ring may get.
const RouteRefresh = 10 * time.Second

// WithRouting sends each key's requests to one of its primaries (see above).
func WithRouting() Option { return func(c *Client) { c.routing = true } }

type routeTable struct {
	ring    *ring.Ring
	addrs   map[string]*url.URL // HTTP address by member
	fetched time.Time
}

type router struct {
	table    atomic.Pointer[routeTable]
	fetching atomic.Bool
}

// Routed reports whether the client holds the ring (WithRouting, once fetched).
func (c *Client) Routed() bool {
	t := c.router.table.Load()
	return t != nil && t.ring != nil
}

// routeTo is the primary to send (bucket, key) to, or nil for the configured addresses.
func (c *Client) routeTo(bucket, key string) *url.URL {
	if !c.routing {
		return nil
	}
	t := c.router.table.Load()
	if t == nil || time.Since(t.fetched) > RouteRefresh {
		c.refreshRoutes()
	}
	if t == nil || t.ring == nil {
		return nil
	}
	p := t.ring.PartitionOf(bucket, key)
	for _, id := range t.ring.Preference(p, 3) {
		if u := t.addrs[string(id)]; u != nil {
			return u
		}
	}
	return nil
}

// refreshRoutes fetches the ring in the background, once at a time.
func (c *Client) refreshRoutes() {
	if !c.router.fetching.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.router.fetching.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		t := &routeTable{addrs: map[string]*url.URL{}, fetched: time.Now()}
		defer func() { c.router.table.Store(t) }() // even a failure waits RouteRefresh to retry
		cl, err := c.Cluster(ctx)
		if err != nil {
			return
		}
		var members []ring.Member
		for _, n := range cl.Nodes {
			if n.State == "joining" || n.State == "left" {
				continue
			}
			members = append(members, ring.Member{ID: ring.NodeID(n.ID), Zone: n.Zone})
			if n.State == "alive" || n.State == "suspect" {
				if u, err := c.parseAddr(n.HTTP); err == nil && n.HTTP != "" {
					t.addrs[n.ID] = u
				}
			}
		}
		if r, err := ring.New(ring.Config{Partitions: cl.Partitions}, members); err == nil {
			t.ring = r
		}
	}()
}
