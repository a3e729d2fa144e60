package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// RepairOptions selects what POST /v1/admin/repair compares: every partition this node is
// a primary of with every other primary, or one partition, or one peer.
type RepairOptions struct {
	Partition *int   `json:"partition,omitempty"`
	Node      string `json:"node,omitempty"`
}

// RepairProgress is one step of a running repair.
type RepairProgress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// RepairSummary is what a repair compared, found and repaired.
type RepairSummary struct {
	Exchanges          int     `json:"exchanges"`
	PartitionsCompared int     `json:"partitions_compared"`
	PartitionsDiffered int     `json:"partitions_differed"`
	SegmentsCompared   int     `json:"segments_compared"`
	SegmentsDiffered   int     `json:"segments_differed"`
	KeysRepaired       int     `json:"keys_repaired"`
	BytesSent          int     `json:"bytes_sent"`
	Errors             int     `json:"errors"`
	ElapsedS           float64 `json:"elapsed_s"`
	FailedExchanges    []struct {
		Partition int    `json:"partition"`
		Peer      string `json:"peer"`
		Error     string `json:"error"`
	} `json:"failed_exchanges,omitempty"`
}

// Repair runs anti-entropy on the node now and returns its summary. progress, when set,
// is called after each partition exchange. The client's timeout does not apply: a repair of
// a large node takes long; bound it with ctx.
func (c *Client) Repair(ctx context.Context, opts RepairOptions, progress func(RepairProgress)) (*RepairSummary, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	body, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	u := *c.base
	u.Path += "/v1/admin/repair"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/x-ndjson")
	if c.creds {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	defer resp.Body.Close()
	if !ok(resp) {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, apiError(resp, data)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line struct {
			Progress *RepairProgress `json:"progress"`
			Summary  *RepairSummary  `json:"summary"`
			Error    string          `json:"error"`
			Code     string          `json:"code"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("client: repair: bad progress line: %w", err)
		}
		switch {
		case line.Summary != nil:
			return line.Summary, nil
		case line.Error != "":
			return nil, &APIError{Status: resp.StatusCode, Code: line.Code, Message: line.Error}
		case line.Progress != nil && progress != nil:
			progress(*line.Progress)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("client: repair: %w", err)
	}
	return nil, fmt.Errorf("client: repair: the node closed the stream without a summary")
}

// PartitionRoot is one partition's hash tree root.
type PartitionRoot struct {
	Partition int    `json:"partition"`
	Root      string `json:"root"`
}

// AAE is GET /v1/admin/aae: the node's hash trees.
type AAE struct {
	Node            string          `json:"node"`
	Ready           bool            `json:"ready"`
	RebuildProgress float64         `json:"rebuild_progress"`
	Rebuilds        int64           `json:"rebuilds"`
	Segments        int             `json:"segments"`
	TreeBytes       int             `json:"tree_bytes"`
	Roots           []PartitionRoot `json:"roots"`
}

// AAE returns the node's hash tree state and the root of every partition holding data.
func (c *Client) AAE(ctx context.Context) (*AAE, error) {
	var a AAE
	if err := c.getJSON(ctx, "/v1/admin/aae", &a); err != nil {
		return nil, err
	}
	return &a, nil
}
