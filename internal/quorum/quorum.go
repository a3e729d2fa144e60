// Package quorum holds the coordinator's request state machines for reads and writes.
//
// Model: a coordinator sends a request to every target replica of a key and feeds the
// machine what happens — replies, failures, timer expiry — through its methods. The machine
// never does I/O: it decides when the read or write quorum is met (R, W, and how many of
// those must be primaries, PR and PW, or durable, DW), when it can no longer be met, and,
// for reads, which replicas must be repaired with the merged object. The server shell and
// the simulator drive the same machines.
//
// Invariants: an outcome, once decided, never changes; a failed quorum reports how many acks
// it had and how many it needed; a read answers with the merge of every reply it has seen,
// so it never returns less than any replica that answered in time.
package quorum

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadQuorum reports a quorum value that is not 0..N, "one", "quorum" or "all".
var ErrBadQuorum = errors.New("quorum: bad quorum value")

// QuorumError reports a request that did not get enough acknowledgements.
type QuorumError struct {
	Kind     string // "r", "pr", "w", "pw", "dw" or "local" (PutSpec.Own): the first requirement not met
	Required int
	Acks     int
	Timeout  bool // true when the deadline passed, false when the replies ruled it out
}

func (e *QuorumError) Error() string {
	how := "replicas failed"
	if e.Timeout {
		how = "timed out"
	}
	return fmt.Sprintf("quorum not reached: %s=%d required, %d acknowledged (%s)", e.Kind, e.Required, e.Acks, how)
}

// Parse reads a quorum value for a bucket of n replicas: "" gives def; "one", "quorum"
// (n/2+1), "all", or a number 0..n. min is the smallest number allowed (1 for R and W, 0 for
// PR, PW and DW).
func Parse(s string, n, min, def int) (int, error) {
	var v int
	switch strings.ToLower(s) {
	case "":
		return def, nil
	case "one":
		v = 1
	case "quorum":
		v = n/2 + 1
	case "all":
		v = n
	default:
		x, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("%w: %q (want %d..%d, one, quorum or all)", ErrBadQuorum, s, min, n)
		}
		v = x
	}
	if v < min || v > n {
		return 0, fmt.Errorf("%w: %q is outside %d..%d for n=%d", ErrBadQuorum, s, min, n, n)
	}
	return v, nil
}

// Target is one replica a request goes to.
type Target struct {
	Node    string
	Primary bool // a primary of the key (not a fallback)
}

// Outcome is the state of a request.
type Outcome int

const (
	Pending Outcome = iota
	Succeeded
	Failed
)

type status uint8

const (
	waiting status = iota
	acked
	failedStatus
)

// PutSpec says what a write needs.
type PutSpec struct {
	W, PW, DW int
	// Own, when set, is a target whose ack the write needs besides the counts: the
	// coordinator's own primary copy, so that the client's "ok" means the coordinator holds
	// the write (durable only if DW asks, or with W=1; see core's coordinate). It counts
	// toward W like any ack; a write it failed fails with kind "local".
	Own string
}

// Put tracks one write's acknowledgements. The coordinator's own local write is fed like
// any other ack; PutSpec.Own makes it one the write cannot succeed without.
type Put struct {
	spec    PutSpec
	targets []Target
	st      []status
	durable []bool
	outcome Outcome
	err     *QuorumError

	// Room for the acks of the usual N (3) and a stand-in: a write's state machine is one
	// allocation.
	stBuf  [inlineTargets]status
	durBuf [inlineTargets]bool
}

// NewPut starts a write to targets.
func NewPut(spec PutSpec, targets []Target) *Put {
	p := &Put{spec: spec, targets: targets}
	if n := len(targets); n <= inlineTargets {
		p.st, p.durable = p.stBuf[:n], p.durBuf[:n] // AddTarget appends into the room left
	} else {
		p.st, p.durable = make([]status, n), make([]bool, n)
	}
	p.decide(false)
	return p
}

func index(targets []Target, node string) int {
	for i, t := range targets {
		if t.Node == node {
			return i
		}
	}
	return -1
}

// AddTarget adds a replica to a write in flight: a fallback that stands in for a primary
// that failed. Add it before failing the primary, so the write does not fail in between.
// A target already present, or a write already decided, is left as it is.
func (p *Put) AddTarget(t Target) {
	if p.outcome != Pending || index(p.targets, t.Node) >= 0 {
		return
	}
	p.targets = append(p.targets, t)
	p.st = append(p.st, waiting)
	p.durable = append(p.durable, false)
}

// Ack records that node stored the object; durable when it synced to disk first.
func (p *Put) Ack(node string, durable bool) Outcome {
	if i := index(p.targets, node); i >= 0 && p.st[i] == waiting {
		p.st[i] = acked
		p.durable[i] = durable
		p.decide(false)
	}
	return p.outcome
}

// Fail records that node will not acknowledge (error or unreachable).
func (p *Put) Fail(node string) Outcome {
	if i := index(p.targets, node); i >= 0 && p.st[i] == waiting {
		p.st[i] = failedStatus
		p.decide(false)
	}
	return p.outcome
}

// Timeout records that the deadline passed; a pending write fails.
func (p *Put) Timeout() Outcome {
	p.decide(true)
	return p.outcome
}

// Outcome is the decision so far.
func (p *Put) Outcome() Outcome { return p.outcome }

// Err is the *QuorumError of a failed write, nil otherwise.
func (p *Put) Err() error {
	if p.err == nil {
		return nil
	}
	return p.err
}

// Counts returns acks so far: all, from primaries, durable.
func (p *Put) Counts() (acks, primary, durable int) {
	for i, s := range p.st {
		if s != acked {
			continue
		}
		acks++
		if p.targets[i].Primary {
			primary++
		}
		if p.durable[i] {
			durable++
		}
	}
	return
}

// Waiting reports whether node is a target that has neither acked nor failed.
func (p *Put) Waiting(node string) bool {
	i := index(p.targets, node)
	return i >= 0 && p.st[i] == waiting
}

// Settled reports whether every target has answered or failed.
func (p *Put) Settled() bool {
	for _, s := range p.st {
		if s == waiting {
			return false
		}
	}
	return true
}

func (p *Put) decide(timeout bool) {
	if p.outcome != Pending {
		return
	}
	acks, primary, durable := p.Counts()
	var waitAll, waitPrimary int
	for i, s := range p.st {
		if s == waiting {
			waitAll++
			if p.targets[i].Primary {
				waitPrimary++
			}
		}
	}
	type req struct {
		kind            string
		need, have, max int
	}
	reqs := [...]req{
		{"w", p.spec.W, acks, acks + waitAll},
		{"pw", p.spec.PW, primary, primary + waitPrimary},
		{"dw", p.spec.DW, durable, durable + waitAll},
		{"local", 0, 0, 0},
	}
	if p.spec.Own != "" {
		own := &reqs[3]
		own.need = 1
		if i := index(p.targets, p.spec.Own); i >= 0 {
			switch p.st[i] {
			case acked:
				own.have, own.max = 1, 1
			case waiting:
				own.max = 1
			}
		}
	}
	met := true
	for _, r := range reqs {
		if r.have >= r.need {
			continue
		}
		met = false
		if timeout || r.max < r.need {
			p.outcome = Failed
			p.err = &QuorumError{Kind: r.kind, Required: r.need, Acks: r.have, Timeout: timeout}
			return
		}
	}
	if met {
		p.outcome = Succeeded
	}
}
