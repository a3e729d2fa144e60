package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/node"
)

// crdtType is the data type of a CRDT bucket; a kv bucket, and the Redis keys (whose type
// is each key's own), are refused.
func (s *server) crdtType(bucket string) (crdt.Type, error) {
	if bucket == RedisBucket {
		return "", fmt.Errorf("%w: bucket %q holds the Redis keys, each of its own type: update them with Redis commands (GET and DELETE /v1/crdt/%s/{key} work)",
			node.ErrBadRequest, bucket, bucket)
	}
	props := s.n.Bucket(bucket)
	if props.Type == "kv" {
		return "", fmt.Errorf("%w: bucket %q holds plain values (type kv); set its type to counter, set or map first", node.ErrBadRequest, bucket)
	}
	t, err := crdt.ParseType(props.Type)
	if err != nil {
		return "", fmt.Errorf("%w: %w", node.ErrBadRequest, err)
	}
	return t, nil
}

// isCRDTBucket reports whether bucket's values are CRDT states: a bucket of type counter,
// set or map, or the Redis keys.
func (s *server) isCRDTBucket(bucket string) bool {
	return bucket == RedisBucket || s.n.Bucket(bucket).Type != "kv"
}

// readCRDT is a quorum read of a CRDT key. A key whose values are not CRDT states (plain
// values written before the bucket's type was set) is ErrWrongType, not a 500: the key is
// fine, it is read with GET /v1/kv.
// withContext false leaves the result's Context empty (node.GetCRDTState).
func readCRDT(ctx context.Context, n *node.Node, bucket, key string, o node.ReadOptions, withContext bool) (node.CRDTResult, error) {
	get := n.GetCRDT
	if !withContext {
		get = n.GetCRDTState
	}
	res, err := get(ctx, bucket, key, o)
	if errors.Is(err, crdt.ErrCorrupt) {
		return res, fmt.Errorf("%w: the key holds plain values, not CRDT states (written before the bucket's type was set?): "+
			"read them with GET /v1/kv/{bucket}/{key}, or delete the key", node.ErrWrongType)
	}
	return res, err
}

// updateCRDT applies one operation (JSON) to a CRDT key: 204 when the write quorum is met.
func (s *server) updateCRDT(w http.ResponseWriter, r *http.Request) {
	o, err := s.writeOptions(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	body, err := readBody(r, s.maxValue)
	if err != nil {
		s.fail(w, err)
		return
	}
	bucket, key := pathKey(r)
	t, err := s.crdtType(bucket)
	if err != nil {
		s.fail(w, err)
		return
	}
	op, err := crdt.ParseOp(t, body)
	if err != nil {
		s.fail(w, fmt.Errorf("%w: %w", node.ErrBadRequest, err))
		return
	}
	if err := s.n.ApplyCRDT(r.Context(), bucket, key, t, op, false, o); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getCRDT answers {"value": ..., "context": ..., "type": ...}: the merge of the replicas'
// states, and the causal context to send back with removes; the X-Quorumkv-Context header
// is the key's version context (for DELETE). The Redis keys are read whatever their type.
func (s *server) getCRDT(w http.ResponseWriter, r *http.Request) {
	o, err := readOptions(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	bucket, key := pathKey(r)
	var t crdt.Type
	if bucket != RedisBucket {
		if t, err = s.crdtType(bucket); err != nil {
			s.fail(w, err)
			return
		}
	}
	res, err := readCRDT(r.Context(), s.n, bucket, key, o, true)
	if err != nil {
		s.fail(w, err)
		return
	}
	if res.Context != "" {
		w.Header().Set(ContextHeader, res.Context)
	}
	if !res.Found || (bucket == RedisBucket && emptyCollection(res.State)) {
		writeError(w, http.StatusNotFound, "not_found", "not found")
		return
	}
	if t != "" && res.State.Type() != t {
		s.fail(w, fmt.Errorf("%w: the key holds a %s, the bucket's type is %s", node.ErrWrongType, res.State.Type(), t))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": res.State.Value(), "context": res.State.Context(), "type": res.State.Type()})
}

// deleteCRDT deletes a CRDT key: a tombstone superseding the version context in
// X-Quorumkv-Context (from GET /v1/crdt or /v1/kv), or, without one, what a read (at the
// bucket's R) sees first. An update the context had not seen survives the delete. 204
// whether or not the key existed, as DELETE /v1/kv.
func (s *server) deleteCRDT(w http.ResponseWriter, r *http.Request) {
	o, err := s.writeOptions(r)
	if err != nil {
		s.fail(w, err)
		return
	}
	if _, err := readBody(r, 64<<10); err != nil {
		s.fail(w, err)
		return
	}
	bucket, key := pathKey(r)
	if !s.isCRDTBucket(bucket) {
		s.fail(w, fmt.Errorf("%w: bucket %q holds plain values (type kv): delete with DELETE /v1/kv/%s/{key}", node.ErrBadRequest, bucket, bucket))
		return
	}
	if o.Context == "" {
		res, err := s.n.Get(r.Context(), bucket, key, node.ReadOptions{Timeout: o.Timeout})
		if err != nil {
			s.fail(w, err)
			return
		}
		if !res.Found {
			if res.Context != "" {
				w.Header().Set(ContextHeader, res.Context)
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		o.Context = res.Context
	}
	ctx, err := s.n.Delete(r.Context(), bucket, key, o)
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set(ContextHeader, ctx)
	w.WriteHeader(http.StatusNoContent)
}

// getKVCRDT answers GET /v1/kv on a CRDT bucket or the Redis keys with the value, not its
// binary encoding: a register's string as it is, any other type as JSON (a counter's
// number, a set's sorted members, a map's fields), with X-Quorumkv-Type naming the type.
// With Accept: application/json it is the usual {"values":[base64],"context"} form (the
// value encoded as above) plus "type" and "value". A key holding plain values (written
// before the bucket's type was set) is answered as a plain key.
func (s *server) getKVCRDT(w http.ResponseWriter, r *http.Request, o node.ReadOptions) bool {
	bucket, key := pathKey(r)
	res, err := readCRDT(r.Context(), s.n, bucket, key, o, true)
	if errors.Is(err, node.ErrWrongType) {
		return false // plain values: the caller reads them as such
	}
	if err != nil {
		s.fail(w, err)
		return true
	}
	if res.Context != "" {
		w.Header().Set(ContextHeader, res.Context)
	}
	if !res.Found || (bucket == RedisBucket && emptyCollection(res.State)) {
		writeError(w, http.StatusNotFound, "not_found", "not found")
		return true
	}
	v := res.State.Value()
	var body []byte
	ctype := "application/json"
	if str, ok := v.(string); ok && res.State.Type() == crdt.Register {
		body, ctype = []byte(str), "application/octet-stream"
	} else if body, err = json.Marshal(v); err != nil {
		s.fail(w, fmt.Errorf("encode the value: %w", err))
		return true
	}
	w.Header().Set("X-Quorumkv-Type", string(res.State.Type()))
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, map[string]any{"values": []string{base64.StdEncoding.EncodeToString(body)},
			"context": res.Context, "type": res.State.Type(), "value": v})
		return true
	}
	w.Header().Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return true
}
