package api

import (
	"strconv"

	"github.com/quorumkv/quorumkv/internal/node"
)

// bucketJSON is a bucket's properties as the API answers them: a quorum field is a number
// when it holds one ("pr": 0, "w": 2) and a string otherwise ("r": "quorum"), so that
// numbers look alike in every field. Input takes both forms (core.Quorum).
type bucketJSON struct {
	N          int    `json:"n"`
	R          any    `json:"r"`
	W          any    `json:"w"`
	PR         any    `json:"pr"`
	PW         any    `json:"pw"`
	DW         any    `json:"dw"`
	Conflict   string `json:"conflict"`
	ReadRepair string `json:"read_repair"`
	Type       string `json:"type"`
	GCGraceS   int64  `json:"gc_grace_s"`
}

func bucketView(p node.BucketProps) bucketJSON {
	return bucketJSON{N: p.N, R: quorumValue(p.R), W: quorumValue(p.W), PR: quorumValue(p.PR), PW: quorumValue(p.PW),
		DW: quorumValue(p.DW), Conflict: p.Conflict, ReadRepair: p.ReadRepair, Type: p.Type, GCGraceS: p.GCGraceS}
}

func quorumValue(q node.Quorum) any {
	if n, err := strconv.Atoi(string(q)); err == nil && strconv.Itoa(n) == string(q) {
		return n
	}
	return string(q)
}
