package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// CRDT buckets (type "counter", "set" or "map"; see SetBucket) hold convergent data
// types instead of plain values: concurrent updates merge, so no acknowledged update is
// lost and there are no siblings to resolve. Updates are operations (POST
// /v1/crdt/{bucket}/{key}); reads return the merged value and a causal context to send
// back with removes, so that an add the reader had not seen wins over the remove.
//
// A failed update (an *APIError with CodeQuorumFailed, a timeout, a transport error)
// may still have been applied by some replicas: it is not rolled back. Retrying an
// increment whose outcome is unknown may therefore count it twice; set adds and removes
// are safe to retry.

// CRDTValue is the result of GetCRDT.
type CRDTValue struct {
	// Value is the merged value as JSON: a number for a counter, a sorted array of
	// strings for a set, an object of the fields' values for a map. Nil when !Found.
	Value json.RawMessage
	// Context is the causal context of the read: pass it to removes based on this read
	// (SetRemove, or "context" in a map op). "" for counters.
	Context string
	// Found is false when the key holds nothing (HTTP 404).
	Found bool
}

// Int decodes a counter's value. A missing key (Found == false) counts as 0.
func (v *CRDTValue) Int() (int64, error) {
	if !v.Found {
		return 0, nil
	}
	var n int64
	if err := strictUnmarshal(v.Value, &n); err != nil {
		return 0, fmt.Errorf("client: CRDT value %s is not a counter: %w", clip(v.Value), err)
	}
	return n, nil
}

// Strings decodes a set's members (sorted). A missing key gives an empty set.
func (v *CRDTValue) Strings() ([]string, error) {
	if !v.Found {
		return []string{}, nil
	}
	var s []string
	if err := strictUnmarshal(v.Value, &s); err != nil || s == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, fmt.Errorf("client: CRDT value %s is not a set: %w", clip(v.Value), err)
	}
	return s, nil
}

// Map decodes a map's fields, each value left as JSON. A missing key gives an empty map.
func (v *CRDTValue) Map() (map[string]json.RawMessage, error) {
	if !v.Found {
		return map[string]json.RawMessage{}, nil
	}
	var m map[string]json.RawMessage
	if err := strictUnmarshal(v.Value, &m); err != nil || m == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, fmt.Errorf("client: CRDT value %s is not a map: %w", clip(v.Value), err)
	}
	return m, nil
}

func strictUnmarshal(b []byte, out any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("empty value")
	}
	return json.Unmarshal(b, out)
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// UpdateCRDT applies one operation to a CRDT key. op is marshalled to JSON (a
// json.RawMessage is sent as is); the operations are those of docs/http-api.md:
//
//	{"increment": 5}                                   counter (negative decrements)
//	{"add": ["a","b"], "remove": ["c"], "context": C}  set
//	{"update": {"visits": {"type": "counter", "increment": 1}},
//	 "remove": ["old"], "context": C}                  map
//
// W, PW, DW and Timeout of q apply. A nil error means the write quorum acknowledged the
// operation; an operation the bucket's type does not take is a 400 *APIError and changes
// nothing.
func (c *Client) UpdateCRDT(ctx context.Context, bucket, key string, op any, q Quorum) error {
	path, err := kvPath("crdt", bucket, key)
	if err != nil {
		return err
	}
	var body []byte
	if raw, ok := op.(json.RawMessage); ok {
		body = raw
	} else if body, err = json.Marshal(op); err != nil {
		return fmt.Errorf("client: encoding the CRDT operation: %w", err)
	}
	resp, rb, err := c.do(ctx, request{
		method: http.MethodPost, path: path, query: q.writeQuery(), body: body,
		ctype: "application/json", accept: "application/json",
	})
	if err != nil {
		return err
	}
	if !ok(resp) {
		return apiError(resp, rb)
	}
	return nil
}

// Increment adds n (negative: subtracts) to the counter bucket/key.
func (c *Client) Increment(ctx context.Context, bucket, key string, n int64, q Quorum) error {
	return c.UpdateCRDT(ctx, bucket, key, struct {
		Increment int64 `json:"increment"`
	}{n}, q)
}

// SetAdd adds members to the set bucket/key.
func (c *Client) SetAdd(ctx context.Context, bucket, key string, members []string, q Quorum) error {
	if len(members) == 0 {
		return errors.New("client: SetAdd: no members")
	}
	return c.UpdateCRDT(ctx, bucket, key, struct {
		Add []string `json:"add"`
	}{members}, q)
}

// SetRemove removes members from the set bucket/key. context is the Context of the
// read the remove is based on (GetCRDT): adds it had not seen survive (add wins). With
// context "" the coordinating node removes what its own copy has observed.
func (c *Client) SetRemove(ctx context.Context, bucket, key string, members []string, context string, q Quorum) error {
	if len(members) == 0 {
		return errors.New("client: SetRemove: no members")
	}
	return c.UpdateCRDT(ctx, bucket, key, struct {
		Remove  []string `json:"remove"`
		Context string   `json:"context,omitempty"`
	}{members, context}, q)
}

// GetCRDT reads a CRDT key: the merge of the replicas' states. R, PR and Timeout of q
// apply. A missing key gives Found == false and a nil error.
func (c *Client) GetCRDT(ctx context.Context, bucket, key string, q Quorum) (*CRDTValue, error) {
	path, err := kvPath("crdt", bucket, key)
	if err != nil {
		return nil, err
	}
	resp, body, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q.readQuery(), accept: "application/json"})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		if e := apiError(resp, body); e.Code == "" || e.Code == CodeNotFound {
			return &CRDTValue{}, nil
		}
	}
	if !ok(resp) {
		return nil, apiError(resp, body)
	}
	var j struct {
		Value   json.RawMessage `json:"value"`
		Context string          `json:"context"`
	}
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, fmt.Errorf("client: GET %s: bad response: %w", path, err)
	}
	if len(j.Value) == 0 {
		return nil, fmt.Errorf("client: GET %s: response without a value", path)
	}
	return &CRDTValue{Value: j.Value, Context: j.Context, Found: true}, nil
}
