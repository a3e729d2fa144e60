package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/quorumkv/quorumkv/internal/quorum"
)

// BucketProps are a bucket's properties, the same on every node (the server keeps them in
// the gossiped, persisted cluster metadata). Quorum fields hold "one", "quorum", "all" or a
// number.
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
	// TTLS: every value written without its own TTL expires this many seconds after its
	// write (0: never).
	TTLS int64 `json:"ttl_s"`
}

// Conflict modes.
const (
	ConflictSiblings = "siblings"
	ConflictLWW      = "lww"
)

// LWW reports whether the bucket resolves concurrent writes by last-write-wins.
func (p BucketProps) LWW() bool { return p.Conflict == ConflictLWW }

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
		Conflict: ConflictSiblings, ReadRepair: "blocking", Type: "kv", GCGraceS: 864000}
}

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
	if p.Conflict != ConflictSiblings && p.Conflict != ConflictLWW {
		return fmt.Errorf("%w: conflict %q is not siblings or lww", ErrBadRequest, p.Conflict)
	}
	if _, err := quorum.ParseRepairMode(p.ReadRepair); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	switch p.Type {
	case "kv", "counter", "set", "map":
	default:
		return fmt.Errorf("%w: type %q is not kv, counter, set or map", ErrBadRequest, p.Type)
	}
	if p.GCGraceS < 0 {
		return fmt.Errorf("%w: gc_grace_s must be >= 0", ErrBadRequest)
	}
	if p.TTLS < 0 || time.Duration(p.TTLS)*time.Second > MaxTTL {
		return fmt.Errorf("%w: ttl_s must be 0 (never) or 1..%d", ErrBadRequest, int64(MaxTTL/time.Second))
	}
	return nil
}

// ApplyJSON updates p with the fields present in a JSON document; unknown fields are an error.
func (p BucketProps) ApplyJSON(b []byte) (BucketProps, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	out := p
	if err := dec.Decode(&out); err != nil {
		return p, fmt.Errorf("%w: bucket properties: %w", ErrBadRequest, err)
	}
	if dec.More() {
		return p, fmt.Errorf("%w: bucket properties: trailing data after the JSON object", ErrBadRequest)
	}
	if err := out.Validate(); err != nil {
		return p, err
	}
	return out, nil
}

// Buckets gives a bucket's properties (defaults when never set). The server reads them
// from the cluster metadata; the simulator from its configuration.
type Buckets interface {
	Bucket(bucket string) BucketProps
	// Ns lists the replica counts n in use: the default's and every configured bucket's
	// (anti-entropy keeps one tree per partition and n, and exchanges each with the nodes
	// of that n's replica set, even where this node holds nothing yet).
	Ns() []int
}

// putSpec is a write's quorum requirements from its options and the bucket's defaults.
func putSpec(props BucketProps, o WriteOptions) (quorum.PutSpec, error) {
	var s quorum.PutSpec
	var err error
	def := DefaultBucketProps()
	parse := func(name, v string, bucketV, fallback Quorum, min int) int {
		if err != nil {
			return 0
		}
		v = pick(v, string(bucketV), string(fallback))
		x, perr := quorum.Parse(v, props.N, min, 0)
		if perr != nil {
			err = fmt.Errorf("%w: %s: %w", ErrBadRequest, name, perr)
		}
		return x
	}
	s.W = parse("w", o.W, props.W, def.W, 1)
	s.PW = parse("pw", o.PW, props.PW, def.PW, 0)
	s.DW = parse("dw", o.DW, props.DW, def.DW, 0)
	return s, err
}

// getSpec is a read's quorum requirements from its options and the bucket's defaults.
func getSpec(props BucketProps, o ReadOptions) (quorum.GetSpec, error) {
	s := quorum.GetSpec{LWW: props.LWW()}
	var err error
	def := DefaultBucketProps()
	if s.R, err = quorum.Parse(pick(o.R, string(props.R), string(def.R)), props.N, 1, 0); err != nil {
		return s, fmt.Errorf("%w: r: %w", ErrBadRequest, err)
	}
	if s.PR, err = quorum.Parse(pick(o.PR, string(props.PR), string(def.PR)), props.N, 0, 0); err != nil {
		return s, fmt.Errorf("%w: pr: %w", ErrBadRequest, err)
	}
	if s.Repair, err = quorum.ParseRepairMode(props.ReadRepair); err != nil {
		return s, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return s, nil
}

func pick(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
