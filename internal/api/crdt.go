package api

import (
	"fmt"
	"net/http"

	"github.com/quorumkv/quorumkv/internal/crdt"
	"github.com/quorumkv/quorumkv/internal/node"
)

// crdtType is the data type of a CRDT bucket; a kv bucket is refused.
func (s *server) crdtType(bucket string) (crdt.Type, error) {
	props := s.n.Bucket(bucket)
	if props.Type == "kv" {
		return "", fmt.Errorf("%w: bucket %q holds plain values (type kv); set its type to counter, set or map first", node.ErrBadRequest, bucket)
	}
	t, err := crdt.ParseType(props.Type)
	if err != nil {
		return "", fmt.Errorf("%w: %v", node.ErrBadRequest, err)
	}
	return t, nil
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
		s.fail(w, fmt.Errorf("%w: %v", node.ErrBadRequest, err))
		return
	}
	if _, _, err := s.n.UpdateCRDT(r.Context(), bucket, key, t, op, false, o); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getCRDT answers {"value": ..., "context": ...}: the merge of the replicas' states, and
// the causal context to send back with removes.
func (s *server) getCRDT(w http.ResponseWriter, r *http.Request) {
	o, err := readOptions(r)
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
	res, err := s.n.GetCRDT(r.Context(), bucket, key, o)
	if err != nil {
		s.fail(w, err)
		return
	}
	if !res.Found {
		writeError(w, http.StatusNotFound, "not_found", "not found")
		return
	}
	if res.State.Type() != t {
		s.fail(w, fmt.Errorf("%w: the key holds a %s, the bucket's type is %s", node.ErrWrongType, res.State.Type(), t))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": res.State.Value(), "context": res.State.Context()})
}
