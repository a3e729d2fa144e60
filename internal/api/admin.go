package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/quorumkv/quorumkv/internal/node"
)

func (s *server) cluster(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.n.Cluster())
}

func (s *server) endpoints(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	bucket, key := pathKey(r)
	ei, err := s.n.Endpoints(bucket, key)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ei)
}

func (s *server) local(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	bucket, key := pathKey(r)
	lc, err := s.n.Local(bucket, key)
	if err != nil {
		s.fail(w, err)
		return
	}
	status := http.StatusOK
	if !lc.Found {
		status = http.StatusNotFound
	}
	writeJSON(w, status, lc)
}

func (s *server) setFaults(w http.ResponseWriter, r *http.Request) {
	body, ok := s.smallBody(w, r)
	if !ok {
		return
	}
	var f node.Faults
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		s.fail(w, fmt.Errorf("%w: faults: %w", node.ErrBadRequest, err))
		return
	}
	if err := s.n.SetFaults(f); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.n.CurrentFaults())
}

func (s *server) getFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.n.CurrentFaults())
}

func (s *server) hints(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.n.Hints())
}

// repairRequest is POST /v1/admin/repair's optional body.
type repairRequest struct {
	Partition *int   `json:"partition"`
	Node      string `json:"node"`
}

// repair runs anti-entropy now. With Accept: application/x-ndjson it streams one progress
// line per exchange ({"done":n,"total":m}) and then the summary; otherwise it answers the
// summary when done.
func (s *server) repair(w http.ResponseWriter, r *http.Request) {
	body, ok := s.smallBody(w, r)
	if !ok {
		return
	}
	var req repairRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			s.fail(w, fmt.Errorf("%w: repair request: %w", node.ErrBadRequest, err))
			return
		}
	}
	partition := -1
	if req.Partition != nil {
		if *req.Partition < 0 {
			s.fail(w, fmt.Errorf("%w: partition must be >= 0", node.ErrBadRequest))
			return
		}
		partition = *req.Partition
	}
	if !strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
		sum, err := s.n.Repair(r.Context(), partition, req.Node, nil)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, sum)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	started := false
	sum, err := s.n.Repair(r.Context(), partition, req.Node, func(p node.RepairProgress) {
		if !started {
			w.WriteHeader(http.StatusOK)
			started = true
		}
		_ = enc.Encode(map[string]any{"progress": p})
		if flusher != nil {
			flusher.Flush()
		}
	})
	if err != nil && !started {
		s.fail(w, err)
		return
	}
	if err != nil {
		_ = enc.Encode(errorBody{Error: err.Error(), Code: node.ErrorCode(err)})
		return
	}
	_ = enc.Encode(map[string]any{"summary": sum})
}

func (s *server) aae(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.n.AAE())
}
