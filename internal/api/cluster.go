package api

import (
	"fmt"
	"net/http"

	"github.com/quorumkv/quorumkv/internal/node"
)

// Cluster changes: GET /v1/cluster/transfers, POST /v1/cluster/leave and
// POST /v1/cluster/remove with {"node":"n2"}.

func (s *server) transfers(w http.ResponseWriter, r *http.Request) {
	if _, err := params(r); err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.n.Transfers())
}

// clusterChange answers a leave (remove false) or a removal.
func (s *server) clusterChange(remove bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := s.smallBody(w, r)
		if !ok {
			return
		}
		var req struct {
			Node string `json:"node"`
		}
		if err := decodeStrict(body, &req); err != nil {
			s.fail(w, err)
			return
		}
		if req.Node == "" {
			s.fail(w, fmt.Errorf("%w: name the node: {\"node\":\"n2\"}", node.ErrBadRequest))
			return
		}
		change := s.n.Leave
		if remove {
			change = s.n.Remove
		}
		if err := change(r.Context(), req.Node); err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, s.n.Transfers())
	}
}
