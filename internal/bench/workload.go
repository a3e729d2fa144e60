package bench

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Op is one YCSB operation type.
type Op int

// The YCSB operation types, in the order YCSB's CoreWorkload adds them to its operation
// chooser (the order decides which op a uniform draw maps to).
const (
	OpRead Op = iota
	OpUpdate
	OpInsert
	OpScan
	OpReadModifyWrite
	numOps
)

var opNames = [numOps]string{"read", "update", "insert", "scan", "read_modify_write"}

// String is the op's name in JSON ("read_modify_write").
func (o Op) String() string { return opNames[o] }

// Label is the op's name in YCSB's own output ("READ-MODIFY-WRITE").
func (o Op) Label() string { return strings.ReplaceAll(strings.ToUpper(opNames[o]), "_", "-") }

// Distribution is how a workload picks the record an op touches.
type Distribution string

// The request distributions of the core workloads.
const (
	// DistZipfian is YCSB's scrambled Zipfian (constant 0.99) over the loaded records.
	DistZipfian Distribution = "zipfian"
	// DistLatest favours the most recently inserted records (YCSB's skewed latest).
	DistLatest Distribution = "latest"
)

// Workload is one of YCSB's core workloads: the proportions of each op type and the
// request distribution, as in YCSB's workloads/workload[a-f] files.
type Workload struct {
	Name         string
	Mix          [numOps]float64
	Distribution Distribution
}

// MaxScanLength is workload e's longest scan (YCSB's maxscanlength); each scan's length is
// uniform in 1..MaxScanLength.
const MaxScanLength = 100

// Workloads are YCSB's core workloads a to f. Workload e's scans are listing pages: they
// read up to the scan's length of keys from the start key's position in the store's order
// (by key hash; quorumkv keeps no key order), keys only, where YCSB reads records in key
// order.
var Workloads = map[string]Workload{
	"a": {Name: "a", Mix: [numOps]float64{OpRead: 0.5, OpUpdate: 0.5}, Distribution: DistZipfian},
	"b": {Name: "b", Mix: [numOps]float64{OpRead: 0.95, OpUpdate: 0.05}, Distribution: DistZipfian},
	"c": {Name: "c", Mix: [numOps]float64{OpRead: 1}, Distribution: DistZipfian},
	"d": {Name: "d", Mix: [numOps]float64{OpRead: 0.95, OpInsert: 0.05}, Distribution: DistLatest},
	"e": {Name: "e", Mix: [numOps]float64{OpInsert: 0.05, OpScan: 0.95}, Distribution: DistZipfian},
	"f": {Name: "f", Mix: [numOps]float64{OpRead: 0.5, OpReadModifyWrite: 0.5}, Distribution: DistZipfian},
}

// LookupWorkload returns the core workload named name (a to f; case-insensitive).
func LookupWorkload(name string) (Workload, error) {
	w, ok := Workloads[strings.ToLower(name)]
	if !ok {
		return Workload{}, fmt.Errorf("unknown workload %q (a, b, c, d, e, f)", name)
	}
	return w, nil
}

// Choose draws the next op type as YCSB's DiscreteGenerator does: one uniform draw
// walked over the proportions in op order.
func (w Workload) Choose(r *rand.Rand) Op {
	sum := 0.0
	last := OpRead
	for op, p := range w.Mix {
		if p > 0 {
			sum += p
			last = Op(op)
		}
	}
	u := r.Float64()
	for op, p := range w.Mix {
		if p <= 0 {
			continue
		}
		if u < p/sum {
			return Op(op)
		}
		u -= p / sum
	}
	return last // rounding left u just above the last share
}

// String describes the mix: "read 0.50, update 0.50; zipfian".
func (w Workload) String() string {
	var parts []string
	for op, p := range w.Mix {
		if p > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", strings.ToLower(Op(op).Label()), p))
		}
	}
	return strings.Join(parts, ", ") + "; " + string(w.Distribution)
}
