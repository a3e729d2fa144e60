package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Ptr returns a pointer to v, for filling BucketProps: BucketProps{N: client.Ptr(5)}.
func Ptr[T any](v T) *T { return &v }

// BucketProps are a bucket's properties. Every field is optional: in SetBucket a nil
// field keeps its current value, so partial updates work; GetBucket and SetBucket
// return the full properties.
type BucketProps struct {
	N          *int    `json:"n,omitempty"`           // replicas per key
	R          *string `json:"r,omitempty"`           // default read quorum
	W          *string `json:"w,omitempty"`           // default write quorum
	PR         *string `json:"pr,omitempty"`          // default primary read quorum
	PW         *string `json:"pw,omitempty"`          // default primary write quorum
	DW         *string `json:"dw,omitempty"`          // default durable write quorum
	Conflict   *string `json:"conflict,omitempty"`    // "siblings" or "lww"
	ReadRepair *string `json:"read_repair,omitempty"` // "blocking", "async" or "none"
	Type       *string `json:"type,omitempty"`        // "kv", "counter", "set", "map"
	GCGraceS   *int    `json:"gc_grace_s,omitempty"`  // seconds before a tombstone may be reaped
	TTLS       *int    `json:"ttl_s,omitempty"`       // seconds a value lives when written without a TTL (0: forever)
}

// UnmarshalJSON accepts the quorum fields as JSON strings ("quorum", "2") or numbers (2).
func (p *BucketProps) UnmarshalJSON(b []byte) error {
	type plain BucketProps
	var aux struct {
		plain
		R  flexString `json:"r,omitempty"`
		W  flexString `json:"w,omitempty"`
		PR flexString `json:"pr,omitempty"`
		PW flexString `json:"pw,omitempty"`
		DW flexString `json:"dw,omitempty"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*p = BucketProps(aux.plain)
	p.R, p.W, p.PR, p.PW, p.DW = aux.R.s, aux.W.s, aux.PR.s, aux.PW.s, aux.DW.s
	return nil
}

// MarshalJSON writes the quorum fields as numbers when they hold one ("pr": 0, "w": 2) and
// as strings otherwise ("r": "quorum"), as the server answers them.
func (p BucketProps) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		N          *int    `json:"n,omitempty"`
		R          any     `json:"r,omitempty"`
		W          any     `json:"w,omitempty"`
		PR         any     `json:"pr,omitempty"`
		PW         any     `json:"pw,omitempty"`
		DW         any     `json:"dw,omitempty"`
		Conflict   *string `json:"conflict,omitempty"`
		ReadRepair *string `json:"read_repair,omitempty"`
		Type       *string `json:"type,omitempty"`
		GCGraceS   *int    `json:"gc_grace_s,omitempty"`
		TTLS       *int    `json:"ttl_s,omitempty"`
	}{p.N, quorumJSON(p.R), quorumJSON(p.W), quorumJSON(p.PR), quorumJSON(p.PW), quorumJSON(p.DW),
		p.Conflict, p.ReadRepair, p.Type, p.GCGraceS, p.TTLS})
}

// quorumJSON is a quorum value as JSON: nil (omitted) when unset, a number when it is a
// whole number, else the string.
func quorumJSON(s *string) any {
	if s == nil {
		return nil
	}
	if n, err := strconv.Atoi(*s); err == nil && strconv.Itoa(n) == *s {
		return n
	}
	return *s
}

// flexString decodes a JSON string or number into a *string (nil for null/absent).
type flexString struct{ s *string }

func (f *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		f.s = &s
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("quorum value %s: want a string or a number", b)
	}
	s = n.String()
	f.s = &s
	return nil
}

// GetBucket returns the bucket's properties (the defaults for a bucket never set).
func (c *Client) GetBucket(ctx context.Context, bucket string) (BucketProps, error) {
	path, err := bucketPath(bucket)
	if err != nil {
		return BucketProps{}, err
	}
	var p BucketProps
	err = c.getJSON(ctx, path, &p)
	return p, err
}

// SetBucket updates the properties set (non-nil) in props and returns the bucket's full
// properties afterwards.
func (c *Client) SetBucket(ctx context.Context, bucket string, props BucketProps) (BucketProps, error) {
	path, err := bucketPath(bucket)
	if err != nil {
		return BucketProps{}, err
	}
	var p BucketProps
	err = c.sendJSON(ctx, http.MethodPut, path, props, &p)
	return p, err
}

// Cluster is the answer of GET /v1/cluster.
type Cluster struct {
	Node       string     `json:"node"`       // the node that answered
	Partitions int        `json:"partitions"` // Q
	Nodes      []NodeInfo `json:"nodes"`
}

// NodeInfo describes one member of the cluster.
type NodeInfo struct {
	ID         string `json:"id"`
	Zone       string `json:"zone"`
	HTTP       string `json:"http"`
	RESP       string `json:"resp"`
	RPC        string `json:"rpc"`
	Gossip     string `json:"gossip"`
	State      string `json:"state"`      // "alive", "suspect", "down" or "leaving"
	Partitions int    `json:"partitions"` // partitions it owns
}

// Cluster returns the membership as the answering node sees it.
func (c *Client) Cluster(ctx context.Context) (*Cluster, error) {
	var cl Cluster
	if err := c.getJSON(ctx, "/v1/cluster", &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// Endpoints is a key's partition and preference list.
type Endpoints struct {
	Bucket    string         `json:"bucket"`
	Key       string         `json:"key"`
	Partition int            `json:"partition"`
	N         int            `json:"n"`
	Primaries []EndpointNode `json:"primaries"`
	Fallbacks []EndpointNode `json:"fallbacks"` // fallbacks in use now
}

// EndpointNode is a node of a preference list.
type EndpointNode struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	HintFor string `json:"hint_for,omitempty"` // for a fallback: the primary it stands in for
}

// Endpoints returns the partition and preference list of bucket/key.
func (c *Client) Endpoints(ctx context.Context, bucket, key string) (*Endpoints, error) {
	path, err := kvPath("admin/endpoints", bucket, key)
	if err != nil {
		return nil, err
	}
	var e Endpoints
	if err := c.getJSON(ctx, path, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// LocalCopy is one node's own stored copy of a key.
type LocalCopy struct {
	Found     bool           `json:"found"`
	Values    [][]byte       `json:"values"` // live values (not tombstones)
	Context   string         `json:"context"`
	Tombstone bool           `json:"tombstone"` // every sibling is a tombstone
	Siblings  []LocalSibling `json:"siblings"`
	HintedFor string         `json:"hinted_for"` // the primary this copy is held for, if a hint
}

// LocalSibling is one stored version of a key.
type LocalSibling struct {
	Value     []byte `json:"value"`
	Tombstone bool   `json:"tombstone"`
	Dot       string `json:"dot"`        // the write that made it, "node.epoch:counter"
	Timestamp string `json:"timestamp"`  // HLC timestamp
	ExpiresMs int64  `json:"expires_ms"` // expiry, Unix ms (0: none); expired values show until reaped
}

// Local returns the answering node's own copy of bucket/key, asking no other node.
// A node that holds nothing gives Found == false and a nil error.
func (c *Client) Local(ctx context.Context, bucket, key string) (*LocalCopy, error) {
	path, err := kvPath("admin/local", bucket, key)
	if err != nil {
		return nil, err
	}
	var l LocalCopy
	err = c.getJSON(ctx, path, &l)
	if IsNotFound(err) {
		return &LocalCopy{}, nil
	}
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// HintTarget is the hints one node keeps for one target node.
type HintTarget struct {
	Target     string  `json:"target"`
	State      string  `json:"state"`
	Pending    int     `json:"pending"`
	Bytes      int64   `json:"bytes"`
	OldestAgeS float64 `json:"oldest_age_s"`
	Delivered  uint64  `json:"delivered"`
	Expired    uint64  `json:"expired"`
	Dropped    uint64  `json:"dropped"`
	Handoff    bool    `json:"handoff_running"`
}

// Hints is GET /v1/admin/hints: the hints a node keeps for nodes that were down.
type Hints struct {
	Node     string       `json:"node"`
	Pending  int          `json:"pending"`
	Bytes    int64        `json:"bytes"`
	WindowS  float64      `json:"window_s"`
	MaxBytes int64        `json:"max_bytes_per_target"`
	Targets  []HintTarget `json:"targets"`
}

// Hints returns the hints the node keeps for other nodes.
func (c *Client) Hints(ctx context.Context) (*Hints, error) {
	var h Hints
	if err := c.getJSON(ctx, "/v1/admin/hints", &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Faults is a node's fault injection state (only on nodes started with --debug-faults).
type Faults struct {
	Drop        []string `json:"drop"`          // nodes whose internode traffic is dropped
	DelayMs     int      `json:"delay_ms"`      // delay added to outbound internode messages
	ClockSkewMs int      `json:"clock_skew_ms"` // skew of this node's clock
	SyncDelayMs int      `json:"sync_delay_ms"` // wait before each fsync (a slow disk)
}

// SetFaults replaces the node's fault state (Faults{} heals everything) and returns
// the state now in force. A node without --debug-faults answers 404 (an *APIError).
func (c *Client) SetFaults(ctx context.Context, f Faults) (Faults, error) {
	if f.Drop == nil {
		f.Drop = []string{}
	}
	var out Faults
	err := c.sendJSON(ctx, http.MethodPost, "/v1/debug/faults", f, &out)
	return out, err
}

// GetFaults returns the node's fault state.
func (c *Client) GetFaults(ctx context.Context) (Faults, error) {
	var out Faults
	err := c.getJSON(ctx, "/v1/debug/faults", &out)
	return out, err
}
