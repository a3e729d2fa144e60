package sim

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// The latency models of Bailis, Venkataraman, Franklin, Hellerstein and Stoica,
// "Probabilistically Bounded Staleness for Practical Partial Quorums" (VLDB 2012), Table 3
// ("Distribution fits for production latency distributions"). Each one-way message latency
// is a mixture of a Pareto body (scale x_m, shape alpha) and an exponential tail (rate
// lambda, per millisecond, so mean 1/lambda ms):
//
//	LNKD-SSD   W = A = R = S: 91.22% Pareto(x_m=.235 ms, alpha=10), 8.78% Exp(lambda=1.66)
//	LNKD-DISK  W:             38%    Pareto(x_m=1.05 ms, alpha=1.51), 62% Exp(lambda=.183)
//	           A = R = S:     as LNKD-SSD
//	YMMR       W:             93.9%  Pareto(x_m=3 ms, alpha=3.35),   6.1% Exp(lambda=.0028)
//	           A = R = S:     98.2%  Pareto(x_m=1.5 ms, alpha=3.8),  1.8% Exp(lambda=.0217)
//	WAN        LNKD-DISK, plus 75 ms each way for every replica but the one in the
//	           coordinator's datacenter.
//
// The values are those of the paper's table (as kept in the authors' repository
// pbailis/pbs-vldb-historical-paper-material, writeup/ernst.tex). The authors' Monte Carlo
// simulator in the same repository (nrw_solver/src/Simulator.java) uses alpha=3.5 for the
// YMMR write Pareto instead of the table's 3.35; we follow the published table.
//
// WAN is an approximation here: the paper routes each operation to a random datacenter so
// that exactly one of the N=3 replicas is local and the other two are 75 ms away each way.
// A Model draws every message independently, so a message is local with probability 1/3
// (WANLocalShare) and remote (75 ms more) otherwise; the expected number of local
// replicas per operation is still one, but an operation may see zero or several.

// PBSModels lists the names PBSModel knows.
var PBSModels = []string{"lnkd-ssd", "lnkd-disk", "ymmr", "wan"}

// WANDelay is the one-way inter-datacenter delay of the PBS WAN model.
const WANDelay = 75 * time.Millisecond

// WANLocalShare is the probability that a message of the WAN model stays in its datacenter
// (one replica of N=3).
const WANLocalShare = 1.0 / 3

// Shifted adds a constant to another distribution.
type Shifted struct {
	By time.Duration
	D  Dist
}

func (s Shifted) Sample(r *rand.Rand) time.Duration { return s.By + s.D.Sample(r) }
func (s Shifted) String() string                    { return fmt.Sprintf("shift:%s:(%s)", s.By, s.D) }

// ms converts fractional milliseconds to a Duration.
func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// paretoExp is the PBS fit: with probability p a Pareto(xm ms, alpha), else an exponential
// of rate lambda per ms.
func paretoExp(p, xm, alpha, lambda float64) Dist {
	return Mixture{P: p, A: Pareto{Xm: ms(xm), Alpha: alpha}, B: Exponential{Mean: ms(1 / lambda)}}
}

var (
	pbsLnkdSSD   = paretoExp(0.9122, 0.235, 10, 1.66)
	pbsLnkdDiskW = paretoExp(0.38, 1.05, 1.51, 0.183)
	pbsYmmrW     = paretoExp(0.939, 3, 3.35, 0.0028)
	pbsYmmrARS   = paretoExp(0.982, 1.5, 3.8, 0.0217)
)

func wan(d Dist) Dist {
	return Mixture{P: WANLocalShare, A: d, B: Shifted{By: WANDelay, D: d}}
}

// PBSModel returns one of the PBS paper's latency models: "lnkd-ssd", "lnkd-disk", "ymmr" or
// "wan" (case-insensitive).
func PBSModel(name string) (Model, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "lnkd-ssd":
		return Model{Name: "lnkd-ssd", W: pbsLnkdSSD, A: pbsLnkdSSD, R: pbsLnkdSSD, S: pbsLnkdSSD}, nil
	case "lnkd-disk":
		return Model{Name: "lnkd-disk", W: pbsLnkdDiskW, A: pbsLnkdSSD, R: pbsLnkdSSD, S: pbsLnkdSSD}, nil
	case "ymmr":
		return Model{Name: "ymmr", W: pbsYmmrW, A: pbsYmmrARS, R: pbsYmmrARS, S: pbsYmmrARS}, nil
	case "wan":
		return Model{Name: "wan", W: wan(pbsLnkdDiskW), A: wan(pbsLnkdSSD), R: wan(pbsLnkdSSD), S: wan(pbsLnkdSSD)}, nil
	}
	names := append([]string(nil), PBSModels...)
	sort.Strings(names)
	return Model{}, fmt.Errorf("sim: unknown PBS latency model %q (%s)", name, strings.Join(names, ", "))
}

// ParseModel reads a latency model: a PBS model name (see PBSModel) or a ParseDist spec used
// for every kind of message.
func ParseModel(spec string) (Model, error) {
	if m, err := PBSModel(spec); err == nil {
		return m, nil
	}
	d, err := ParseDist(spec)
	if err != nil {
		return Model{}, fmt.Errorf("%w; or a PBS model: %s", err, strings.Join(PBSModels, ", "))
	}
	return Uniform(d), nil
}
