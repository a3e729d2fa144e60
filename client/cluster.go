package client

import "context"

// Transfer is one partition a node is taking over in a cluster change.
type Transfer struct {
	Partition int     `json:"partition"`
	From      string  `json:"from"`  // the replica it streams from
	To        string  `json:"to"`    // the node taking it over
	Phase     string  `json:"phase"` // waiting, streaming, checking, done
	KeysDone  int64   `json:"keys_done"`
	BytesDone int64   `json:"bytes_done"`
	ElapsedS  float64 `json:"elapsed_s"`
}

// Transfers is a node's view of the cluster change under way (GET /v1/cluster/transfers).
type Transfers struct {
	Node    string            `json:"node"`
	Pending bool              `json:"pending"` // a change is under way
	Ring    []string          `json:"ring"`    // the members owning partitions now
	Next    []string          `json:"next"`    // the members after the change
	Moved   int               `json:"partitions_moved"`
	Waiting int               `json:"partitions_waiting"`
	States  map[string]string `json:"states"` // joining, active, leaving or left, by member
	// Gainers is every node taking over partitions in the change, with its progress.
	Gainers []Gainer `json:"gainers"`
	// Unheard names the members seen up that have not yet published that they heard of
	// the change (no partition moves before); Unsettled, once every partition has moved,
	// those that have not yet published that they see it so (the change ends after).
	Unheard   []string `json:"unheard,omitempty"`
	Unsettled []string `json:"unsettled,omitempty"`
	// HeldBy names the gainers that are down with partitions still to take: the change
	// waits for them (start them again, or remove them).
	HeldBy []string `json:"held_by,omitempty"`
	// KeysDone and BytesDone sum this node's transfers.
	KeysDone  int64 `json:"keys_done"`
	BytesDone int64 `json:"bytes_done"`
	// Transfers are the partitions this node is taking over.
	Transfers []Transfer `json:"transfers"`
}

// Gainer is one node's part of a cluster change: the partitions it takes over and how many
// of them it has completed, as it published them.
type Gainer struct {
	Node       string `json:"node"`
	State      string `json:"state"` // its member state
	Up         bool   `json:"up"`    // seen up by the answering node's failure detector
	Partitions int    `json:"partitions"`
	Done       int    `json:"partitions_done"`
}

// Transfers returns the node's view of the cluster change under way, if any.
func (c *Client) Transfers(ctx context.Context) (*Transfers, error) {
	var t Transfers
	if err := c.getJSON(ctx, "/v1/cluster/transfers", &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Leave starts taking node out of the ring: it hands its partitions to the others, then
// leaves. Refused when fewer nodes would remain than a bucket keeps replicas.
func (c *Client) Leave(ctx context.Context, node string) (*Transfers, error) {
	return c.clusterChange(ctx, "/v1/cluster/leave", node)
}

// Remove drops a dead node from the ring: its partitions are rebuilt on the others from
// the surviving replicas. Refused for a node that is up (use Leave).
func (c *Client) Remove(ctx context.Context, node string) (*Transfers, error) {
	return c.clusterChange(ctx, "/v1/cluster/remove", node)
}

func (c *Client) clusterChange(ctx context.Context, path, node string) (*Transfers, error) {
	var t Transfers
	if err := c.sendJSON(ctx, "POST", path, map[string]string{"node": node}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}
