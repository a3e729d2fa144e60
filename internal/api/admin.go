package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

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
		s.fail(w, fmt.Errorf("%w: faults: %v", node.ErrBadRequest, err))
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
