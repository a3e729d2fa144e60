package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Dist is a latency distribution. Sample draws one latency from r.
type Dist interface {
	Sample(r *rand.Rand) time.Duration
	String() string
}

// Constant is a fixed latency.
type Constant time.Duration

func (c Constant) Sample(*rand.Rand) time.Duration { return time.Duration(c) }
func (c Constant) String() string                  { return "const:" + time.Duration(c).String() }

// Exponential has the given mean.
type Exponential struct{ Mean time.Duration }

func (e Exponential) Sample(r *rand.Rand) time.Duration {
	return time.Duration(r.ExpFloat64() * float64(e.Mean))
}
func (e Exponential) String() string { return "exp:" + e.Mean.String() }

// Pareto has scale Xm (the minimum) and shape Alpha.
type Pareto struct {
	Xm    time.Duration
	Alpha float64
}

func (p Pareto) Sample(r *rand.Rand) time.Duration {
	u := 1 - r.Float64() // (0, 1]
	return time.Duration(float64(p.Xm) / math.Pow(u, 1/p.Alpha))
}
func (p Pareto) String() string {
	return fmt.Sprintf("pareto:%s:%g", p.Xm, p.Alpha)
}

// Mixture draws from A with probability P, else from B.
type Mixture struct {
	P    float64
	A, B Dist
}

func (m Mixture) Sample(r *rand.Rand) time.Duration {
	if r.Float64() < m.P {
		return m.A.Sample(r)
	}
	return m.B.Sample(r)
}
func (m Mixture) String() string { return fmt.Sprintf("mix:%g:(%s):(%s)", m.P, m.A, m.B) }

// Model gives the latency of each kind of message, as the PBS paper splits them: W a
// write reaching a replica, A its acknowledgement back, R a read request reaching a
// replica, S its response back. Other messages (handoff, repair) use W and A. Remote is
// added to every message between two different nodes (each node its own datacenter: the
// WAN model); a node's messages to itself never pay it.
type Model struct {
	Name       string
	W, A, R, S Dist
	Remote     time.Duration
}

// Uniform uses one distribution for every kind of message.
func Uniform(d Dist) Model { return Model{Name: d.String(), W: d, A: d, R: d, S: d} }

// ParseDist reads "const:1ms", "exp:2ms", "pareto:1ms:1.5" or "mix:0.9:(exp:1ms):(const:50ms)".
func ParseDist(s string) (Dist, error) {
	s = strings.TrimSpace(s)
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case "const":
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("sim: latency %q: want const:DURATION", s)
		}
		return Constant(d), nil
	case "exp":
		d, err := time.ParseDuration(rest)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("sim: latency %q: want exp:MEAN", s)
		}
		return Exponential{Mean: d}, nil
	case "pareto":
		xs, as, ok := strings.Cut(rest, ":")
		xm, err1 := time.ParseDuration(xs)
		alpha, err2 := strconv.ParseFloat(as, 64)
		if !ok || err1 != nil || err2 != nil || xm <= 0 || alpha <= 0 {
			return nil, fmt.Errorf("sim: latency %q: want pareto:XM:ALPHA", s)
		}
		return Pareto{Xm: xm, Alpha: alpha}, nil
	case "mix":
		ps, rest2, ok := strings.Cut(rest, ":")
		p, err := strconv.ParseFloat(ps, 64)
		if !ok || err != nil || p < 0 || p > 1 {
			return nil, fmt.Errorf("sim: latency %q: want mix:P:(A):(B)", s)
		}
		a, b, err := splitPair(rest2)
		if err != nil {
			return nil, fmt.Errorf("sim: latency %q: %w", s, err)
		}
		da, err := ParseDist(a)
		if err != nil {
			return nil, err
		}
		db, err := ParseDist(b)
		if err != nil {
			return nil, err
		}
		return Mixture{P: p, A: da, B: db}, nil
	}
	return nil, fmt.Errorf("sim: unknown latency %q (const:, exp:, pareto:, mix:)", s)
}

// splitPair splits "(a):(b)" at the top-level colon.
func splitPair(s string) (string, string, error) {
	depth := 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ':':
			if depth == 0 {
				return unparen(s[:i]), unparen(s[i+1:]), nil
			}
		}
	}
	return "", "", fmt.Errorf("want (A):(B), got %q", s)
}

// unparen removes one pair of enclosing parentheses.
func unparen(s string) string {
	if len(s) >= 2 && s[0] == '(' && s[len(s)-1] == ')' {
		return s[1 : len(s)-1]
	}
	return s
}
