package node

import (
	"context"
	"time"

	"github.com/quorumkv/quorumkv/internal/core"
)

// ListOptions are a listing page's settings (core.ListOptions).
type ListOptions = core.ListOptions

// ListPage is a page of a bucket's keys.
type ListPage struct {
	Keys []core.ListedKey // in the store's order (by key hash), each with its merged object
	Next []byte           // the cursor of the next page; nil when the listing is complete
	At   int64            // the time (Unix ms) the page judged expiry at
}

// List reads one page of bucket's keys by a coverage query (core/list.go). Any node can
// go on from any page's Next.
func (n *Node) List(ctx context.Context, bucket string, o ListOptions) (ListPage, error) {
	start := time.Now()
	// The first loop coordinates: a listing spans every partition, so no shard is its own.
	r, err := n.loops[0].request(ctx, core.ClientRequest{Op: core.OpList, Bucket: bucket, List: &o})
	n.metrics.latency.WithLabelValues("list", quorumOf(o.R, n.Bucket(bucket).R, n.Bucket(bucket).N)).Observe(time.Since(start).Seconds())
	if err != nil {
		return ListPage{}, err
	}
	return ListPage{Keys: r.Keys, Next: r.Next, At: r.At}, nil
}

// Partitions is the ring's number of partitions (Q).
func (n *Node) Partitions() int { return n.coreCfg.Partitions }
