package node

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/quorumkv/quorumkv/internal/core"
)

// BucketProps are a bucket's properties (see core.BucketProps), the same on every node:
// kept in the gossiped, persisted cluster metadata.
type BucketProps = core.BucketProps

// Quorum is a quorum setting: "one", "quorum", "all" or a number.
type Quorum = core.Quorum

// DefaultBucketProps are the contract's defaults.
func DefaultBucketProps() BucketProps { return core.DefaultBucketProps() }

const metaBucketPrefix = "bucket/"

// bucketCache decodes bucket properties from the cluster metadata once per change of it:
// several lookups a request (the core asks for the bucket's N at each step) cost a read
// lock and a map probe, not a metadata copy.
type bucketCache struct {
	n  *Node
	mu sync.RWMutex
	m  map[string]cachedProps
}

// maxCachedBuckets bounds the cache: clients name buckets freely, and every name read
// is cached (defaults too).
const maxCachedBuckets = 4096

type cachedProps struct {
	gen   uint64 // the metadata generation (membership.MetaGen) it was read at
	props BucketProps
}

func newBucketCache(n *Node) *bucketCache { return &bucketCache{n: n, m: map[string]cachedProps{}} }

// Bucket returns bucket's properties (defaults when never set). It implements
// core.Buckets; safe from any goroutine.
func (n *Node) Bucket(bucket string) BucketProps {
	c := n.buckets
	gen := n.ms.MetaGen() // before the read: a change after it makes the entry stale
	c.mu.RLock()
	e, ok := c.m[bucket]
	c.mu.RUnlock()
	if ok && e.gen == gen {
		return e.props
	}
	p := DefaultBucketProps()
	if raw, ok := n.ms.GetMeta(metaBucketPrefix + bucket); ok {
		if err := json.Unmarshal(raw, &p); err != nil || p.Validate() != nil {
			n.log.Error("bad bucket properties in cluster metadata; using defaults", "bucket", bucket, "err", err)
			p = DefaultBucketProps()
		}
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedBuckets {
		clear(c.m)
	}
	c.m[bucket] = cachedProps{gen: gen, props: p}
	c.mu.Unlock()
	return p
}

// SetBucket updates bucket's properties from a JSON document of the fields to change.
func (n *Node) SetBucket(bucket string, patch []byte) (BucketProps, error) {
	if err := core.ValidBucket(bucket); err != nil {
		return BucketProps{}, err
	}
	p, err := n.Bucket(bucket).ApplyJSON(patch)
	if err != nil {
		return BucketProps{}, err
	}
	if members := len(n.Members()); p.N > members {
		return BucketProps{}, fmt.Errorf("%w: n=%d but the cluster has %d node(s): a key cannot have more replicas than there are nodes",
			ErrBadRequest, p.N, members)
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

// Ns lists the replica counts in use: the default's and every configured bucket's
// (core.Buckets).
func (n *Node) Ns() []int {
	ns := []int{DefaultBucketProps().N}
	for _, k := range n.ms.MetaKeys(metaBucketPrefix) {
		if p := n.Bucket(strings.TrimPrefix(k, metaBucketPrefix)); !slices.Contains(ns, p.N) {
			ns = append(ns, p.N)
		}
	}
	slices.Sort(ns)
	return ns
}
