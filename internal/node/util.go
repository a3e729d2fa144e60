package node

import (
	"slices"

	"github.com/quorumkv/quorumkv/internal/ring"
)

func ringID(id string) ring.NodeID { return ring.NodeID(id) }

func sortStrings(s []string) { slices.Sort(s) }
