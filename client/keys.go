package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// KeysOptions select a page of a bucket's keys.
type KeysOptions struct {
	Prefix string // only keys starting with it
	Cursor string // a previous page's Next ("": from the start)
	Limit  int    // keys per page at most (0: the server's default, 1000)
	R      string // replicas read per partition ("": the bucket's R)
}

// KeysPage is one page of a listing.
type KeysPage struct {
	Keys []string `json:"keys"`
	Next string   `json:"next"` // the cursor of the next page; "" when the listing is complete
}

// Keys reads one page of bucket's keys (GET /v1/keys/{bucket}): every live key appears
// exactly once over the pages, deleted and expired keys never; keys come in the store's
// order (by hash), not sorted. Any node can serve the next page: on failover the client
// goes on with the same cursor.
func (c *Client) Keys(ctx context.Context, bucket string, o KeysOptions) (KeysPage, error) {
	if bucket == "" {
		return KeysPage{}, errors.New("client: empty bucket name")
	}
	q := url.Values{}
	setIf(q, "prefix", o.Prefix)
	setIf(q, "cursor", o.Cursor)
	setIf(q, "r", o.R)
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	resp, body, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/keys/" + url.PathEscape(bucket), query: q, accept: "application/json"})
	if err != nil {
		return KeysPage{}, err
	}
	if !ok(resp) {
		return KeysPage{}, apiError(resp, body)
	}
	var p KeysPage
	if err := json.Unmarshal(body, &p); err != nil {
		return KeysPage{}, fmt.Errorf("client: keys of %s: bad response: %w", bucket, err)
	}
	return p, nil
}

// EachKey calls fn with every key of bucket, page after page, until the listing is
// complete, fn returns false, or an error.
func (c *Client) EachKey(ctx context.Context, bucket string, o KeysOptions, fn func(key string) bool) error {
	for {
		p, err := c.Keys(ctx, bucket, o)
		if err != nil {
			return err
		}
		for _, k := range p.Keys {
			if !fn(k) {
				return nil
			}
		}
		if p.Next == "" {
			return nil
		}
		o.Cursor = p.Next
	}
}
