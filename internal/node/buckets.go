package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/quorumkv/quorumkv/internal/quorum"
)

// BucketProps are a bucket's properties, the same on every node (kept in the gossiped,
// persisted cluster metadata). Quorum fields hold "one", "quorum", "all" or a number.
type BucketProps struct {
	N          int    `json:"n"`
	R          Quorum `json:"r"`
	W          Quorum `json:"w"`
	PR         Quorum `json:"pr"`
	PW         Quorum `json:"pw"`
	DW         Quorum `json:"dw"`
	Conflict   string `json:"conflict"`
	ReadRepair string `json:"read_repair"`
	Type       string `json:"type"`
	GCGraceS   int64  `json:"gc_grace_s"`
}

// Quorum is a quorum setting: "one", "quorum", "all" or a number. In JSON it may be a
// string or a number ({"w": 2} and {"w": "2"} mean the same).
type Quorum string

// UnmarshalJSON accepts a JSON string or a whole number.
func (q *Quorum) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*q = Quorum(s)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("quorum value %s: want a string (one, quorum, all, 1..n) or a whole number", b)
	}
	*q = Quorum(strconv.Itoa(n))
	return nil
}

// DefaultBucketProps are the contract's defaults: N=3, R=W=quorum, siblings, blocking read
// repair; PR=PW=DW=0 (Riak's defaults: a fallback's ack counts, and an ack means applied to
// the store, not yet fsynced — ask dw for fsync); gc_grace 10 days as Cassandra.
func DefaultBucketProps() BucketProps {
	return BucketProps{N: 3, R: "quorum", W: "quorum", PR: "0", PW: "0", DW: "0",
		Conflict: "siblings", ReadRepair: "blocking", Type: "kv", GCGraceS: 864000}
}

// ErrBadRequest marks client mistakes (HTTP 400).
var ErrBadRequest = errors.New("bad request")

// Validate checks the properties.
func (p BucketProps) Validate() error {
	if p.N < 1 || p.N > 16 {
		return fmt.Errorf("%w: n=%d is outside 1..16", ErrBadRequest, p.N)
	}
	for _, q := range []struct {
		name string
		v    Quorum
		min  int
	}{{"r", p.R, 1}, {"w", p.W, 1}, {"pr", p.PR, 0}, {"pw", p.PW, 0}, {"dw", p.DW, 0}} {
		if _, err := quorum.Parse(string(q.v), p.N, q.min, 0); err != nil || q.v == "" {
			return fmt.Errorf("%w: %s=%q: want %d..n, one, quorum or all", ErrBadRequest, q.name, q.v, q.min)
		}
	}
	if p.Conflict != "siblings" && p.Conflict != "lww" {
		return fmt.Errorf("%w: conflict %q is not siblings or lww", ErrBadRequest, p.Conflict)
	}
	if _, err := quorum.ParseRepairMode(p.ReadRepair); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	switch p.Type {
	case "kv", "counter", "set", "map":
	default:
		return fmt.Errorf("%w: type %q is not kv, counter, set or map", ErrBadRequest, p.Type)
	}
	if p.GCGraceS < 0 {
		return fmt.Errorf("%w: gc_grace_s must be >= 0", ErrBadRequest)
	}
	return nil
}

// ApplyJSON updates p with the fields present in a JSON document; unknown fields are an error.
func (p BucketProps) ApplyJSON(b []byte) (BucketProps, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	out := p
	if err := dec.Decode(&out); err != nil {
		return p, fmt.Errorf("%w: bucket properties: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return p, fmt.Errorf("%w: bucket properties: trailing data after the JSON object", ErrBadRequest)
	}
	if err := out.Validate(); err != nil {
		return p, err
	}
	return out, nil
}

const metaBucketPrefix = "bucket/"

// bucketCache decodes bucket properties from the cluster metadata once per change.
type bucketCache struct {
	n  *Node
	mu sync.Mutex
	m  map[string]cachedProps
}

type cachedProps struct {
	raw   string
	props BucketProps
}

func newBucketCache(n *Node) *bucketCache { return &bucketCache{n: n, m: map[string]cachedProps{}} }

// Bucket returns bucket's properties (defaults when never set).
func (n *Node) Bucket(bucket string) BucketProps {
	raw, ok := n.ms.GetMeta(metaBucketPrefix + bucket)
	if !ok {
		return DefaultBucketProps()
	}
	c := n.buckets
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[bucket]; ok && e.raw == string(raw) {
		return e.props
	}
	p := DefaultBucketProps()
	if err := json.Unmarshal(raw, &p); err != nil || p.Validate() != nil {
		n.log.Error("bad bucket properties in cluster metadata; using defaults", "bucket", bucket, "err", err)
		p = DefaultBucketProps()
	}
	c.m[bucket] = cachedProps{raw: string(raw), props: p}
	return p
}

// SetBucket updates bucket's properties from a JSON document of the fields to change.
func (n *Node) SetBucket(bucket string, patch []byte) (BucketProps, error) {
	if err := validBucket(bucket); err != nil {
		return BucketProps{}, err
	}
	p, err := n.Bucket(bucket).ApplyJSON(patch)
	if err != nil {
		return BucketProps{}, err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return BucketProps{}, fmt.Errorf("encode bucket properties: %w", err)
	}
	if err := n.ms.SetMeta(metaBucketPrefix+bucket, raw); err != nil {
		return BucketProps{}, fmt.Errorf("store bucket properties: %w", err)
	}
	return p, nil
}
