package ui

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/quorumkv/quorumkv/internal/node"
	"github.com/quorumkv/quorumkv/internal/ring"
)

// ClusterView is GET /ui/api/cluster: the members as the answering node sees them, the
// ring, and each member's own view (GET /ui/api/node?series=0) as far as it answered.
type ClusterView struct {
	Node        string        `json:"node"` // the node that answered
	GeneratedAt int64         `json:"generated_at"`
	Partitions  int           `json:"partitions"`
	Nodes       []ClusterNode `json:"nodes"`
	// Owners gives each partition's owner as an index into Nodes (-1: not a member this
	// node knows; empty while the node has no ring yet).
	Owners []int `json:"owners"`
}

// ClusterNode is a member: its gossip state and, when it answered, its own view.
type ClusterNode struct {
	node.NodeInfo
	Reachable bool            `json:"reachable"`
	Error     string          `json:"error,omitempty"`
	View      json.RawMessage `json:"view,omitempty"` // a NodeView without series
}

// fanCache shares one fan-out among the callers of a CacheFor period: the first caller
// runs it, the others wait for its result.
type fanCache struct {
	mu       sync.Mutex
	at       time.Time
	val      []byte
	inflight chan struct{}
}

// get returns a value built at most maxAge ago, building it when there is none. A caller
// whose context ends stops waiting; the build goes on for the others.
func (c *fanCache) get(ctx context.Context, maxAge time.Duration, build func() []byte) ([]byte, error) {
	c.mu.Lock()
	if c.val != nil && time.Since(c.at) <= maxAge {
		v := c.val
		c.mu.Unlock()
		return v, nil
	}
	ch := c.inflight
	if ch == nil {
		ch = make(chan struct{})
		c.inflight = ch
		c.mu.Unlock()
		v := build()
		c.mu.Lock()
		c.val, c.at, c.inflight = v, time.Now(), nil
		c.mu.Unlock()
		close(ch)
		return v, nil
	}
	c.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.val, nil
}

func (u *UI) clusterView(w http.ResponseWriter, r *http.Request) {
	// The view is shared by the callers of one CacheFor window, built with the
	// credentials of the one who asked first: every caller passed the same gate.
	authz := withCaller(context.Background(), r)
	b, err := u.fan.get(r.Context(), u.cfg.CacheFor, func() []byte { return u.buildClusterView(authz) })
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// buildClusterView asks every other member concurrently. It uses its own context (ctx
// carries only the caller's credentials, no deadline): a closed browser tab must not fail
// the fan-out the other callers share.
func (u *UI) buildClusterView(ctx context.Context) []byte {
	ci := u.src.Cluster()
	cv := ClusterView{Node: ci.Node, GeneratedAt: time.Now().UnixMilli(), Partitions: ci.Partitions,
		Nodes: make([]ClusterNode, len(ci.Nodes)), Owners: []int{}}
	var wg sync.WaitGroup
	for i, ni := range ci.Nodes {
		cv.Nodes[i].NodeInfo = ni
		if ni.ID == u.src.ID() {
			cv.Nodes[i].Reachable = true
			cv.Nodes[i].View = u.view.load().brief
			continue
		}
		wg.Add(1)
		go func(cn *ClusterNode) {
			defer wg.Done()
			var raw json.RawMessage
			if err := u.getJSON(ctx, cn.HTTP, "/ui/api/node?series=0", &raw, false); err != nil {
				cn.Error = err.Error()
				return
			}
			cn.Reachable, cn.View = true, raw
		}(&cv.Nodes[i])
	}
	wg.Wait()
	if rg := u.src.Ring(); rg != nil {
		cv.Owners = owners(rg, cv.Nodes)
	}
	b, err := json.Marshal(cv)
	if err != nil {
		// Only a peer's malformed RawMessage can get here; getJSON decoded it, so it is JSON.
		u.log.Error("dashboard cluster view not encoded", "err", err)
		b, _ = json.Marshal(map[string]string{"error": err.Error(), "code": "internal"})
	}
	return b
}

// owners maps each partition to the index of its owner in nodes.
func owners(rg *ring.Ring, nodes []ClusterNode) []int {
	idx := make(map[ring.NodeID]int, len(nodes))
	for i, n := range nodes {
		idx[ring.NodeID(n.ID)] = i
	}
	out := make([]int, rg.Partitions())
	for p := range out {
		i, ok := idx[rg.Owner(p)]
		if !ok {
			i = -1
		}
		out[p] = i
	}
	return out
}

// KeyView is GET /ui/api/key?bucket=B&key=K: where a key lives and what every member
// stores of it.
type KeyView struct {
	Endpoints node.EndpointsInfo `json:"endpoints"`
	Replicas  []ReplicaView      `json:"replicas"`
}

// ReplicaView is one member's own copy of a key (GET /v1/admin/local on that member).
type ReplicaView struct {
	Node      string          `json:"node"`
	State     string          `json:"state"`              // gossip state as the answering node sees it
	Role      string          `json:"role"`               // "primary", "fallback" or "" (neither)
	HintFor   string          `json:"hint_for,omitempty"` // a fallback: the primary it stands in for
	Reachable bool            `json:"reachable"`
	Error     string          `json:"error,omitempty"`
	Copy      *node.LocalCopy `json:"copy,omitempty"`
}

func (u *UI) keyView(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	bucket, key := q.Get("bucket"), q.Get("key")
	if bucket == "" || key == "" {
		writeError(w, http.StatusBadRequest, "bad_request", "bucket and key are required")
		return
	}
	ep, err := u.src.Endpoints(bucket, key)
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, node.ErrBadRequest):
			status = http.StatusBadRequest
		case errors.Is(err, node.ErrTooLarge):
			status = http.StatusRequestEntityTooLarge
		case errors.Is(err, node.ErrUnavailable):
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, node.ErrorCode(err), err.Error())
		return
	}
	kv := KeyView{Endpoints: ep, Replicas: replicaOrder(ep, u.src.Cluster().Nodes)}
	path := "/v1/admin/local/" + pathSegment(bucket) + "/" + pathSegment(key)
	var wg sync.WaitGroup
	for i := range kv.Replicas {
		rv := &kv.Replicas[i]
		if rv.Node == u.src.ID() {
			lc, err := u.src.Local(bucket, key)
			if err != nil {
				rv.Error = err.Error()
				continue
			}
			rv.Reachable, rv.Copy = true, &lc
			continue
		}
		m, ok := u.member(rv.Node)
		if !ok {
			rv.Error = "not a member"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lc node.LocalCopy
			if err := u.getJSON(withCaller(r.Context(), r), m.HTTP, path, &lc, true); err != nil {
				rv.Error = err.Error()
				return
			}
			rv.Reachable, rv.Copy = true, &lc
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, kv)
}

// replicaOrder lists every member once: the primaries in preference order, then the
// fallbacks in use, then the others by id (a member may keep a stale hint or an old copy).
func replicaOrder(ep node.EndpointsInfo, members []node.NodeInfo) []ReplicaView {
	state := map[string]string{}
	for _, m := range members {
		state[m.ID] = m.State
	}
	seen := map[string]bool{}
	var out []ReplicaView
	add := func(id, role, hintFor, st string) {
		if seen[id] {
			return
		}
		seen[id] = true
		if s, ok := state[id]; ok {
			st = s
		}
		out = append(out, ReplicaView{Node: id, State: st, Role: role, HintFor: hintFor})
	}
	for _, e := range ep.Primaries {
		add(e.ID, "primary", "", e.State)
	}
	for _, e := range ep.Fallbacks {
		add(e.ID, "fallback", e.HintFor, e.State)
	}
	rest := slices.Clone(members)
	slices.SortFunc(rest, func(a, b node.NodeInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	for _, m := range rest {
		add(m.ID, "", "", m.State)
	}
	return out
}

// pathSegment escapes s as one path segment of the HTTP API, including "." and "..",
// which the API refuses unescaped.
func pathSegment(s string) string {
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}
