package quorum

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// primaries returns primary targets named by nodes.
func primaries(nodes ...string) []Target {
	ts := make([]Target, len(nodes))
	for i, n := range nodes {
		ts[i] = Target{Node: n, Primary: true}
	}
	return ts
}

// fallbacks returns fallback (non-primary) targets named by nodes.
func fallbacks(nodes ...string) []Target {
	ts := make([]Target, len(nodes))
	for i, n := range nodes {
		ts[i] = Target{Node: n}
	}
	return ts
}

func (o Outcome) letter() string { return string("PSF"[o]) }

// applyPut feeds one scripted event to p: "a" is a plain ack from a, "a!" a durable ack,
// "-a" a failure, "T" the deadline.
func applyPut(p *Put, ev string) Outcome {
	switch {
	case ev == "T":
		return p.Timeout()
	case strings.HasPrefix(ev, "-"):
		return p.Fail(ev[1:])
	case strings.HasSuffix(ev, "!"):
		return p.Ack(strings.TrimSuffix(ev, "!"), true)
	default:
		return p.Ack(ev, false)
	}
}

func TestPut(t *testing.T) {
	abc := primaries("a", "b", "c")
	abFallbackX := append(primaries("a", "b"), fallbacks("x")...)
	tests := []struct {
		name    string
		spec    PutSpec
		targets []Target
		events  string // space separated, see applyPut
		// outcomes is the outcome at start, then after each event, one letter each.
		outcomes string
		err      *QuorumError // when the write fails
	}{
		{name: "w1 first ack", spec: PutSpec{W: 1}, targets: abc,
			events: "b", outcomes: "PS"},
		{name: "w2 after two acks", spec: PutSpec{W: 2}, targets: abc,
			events: "a c b", outcomes: "PPSS"},
		{name: "w3 all", spec: PutSpec{W: 3}, targets: abc,
			events: "a b c", outcomes: "PPPS"},
		{name: "w2 survives one failure", spec: PutSpec{W: 2}, targets: abc,
			events: "-a b c", outcomes: "PPPS"},
		{name: "w2 fails early when two fail", spec: PutSpec{W: 2}, targets: abc,
			events: "-a -c", outcomes: "PPF",
			err: &QuorumError{Kind: "w", Required: 2, Acks: 0}},
		{name: "w3 fails on the first failure", spec: PutSpec{W: 3}, targets: abc,
			events: "a -b", outcomes: "PPF",
			err: &QuorumError{Kind: "w", Required: 3, Acks: 1}},
		{name: "w2 timeout", spec: PutSpec{W: 2}, targets: abc,
			events: "a T", outcomes: "PPF",
			err: &QuorumError{Kind: "w", Required: 2, Acks: 1, Timeout: true}},
		{name: "timeout with no acks", spec: PutSpec{W: 1}, targets: abc,
			events: "T", outcomes: "PF",
			err: &QuorumError{Kind: "w", Required: 1, Acks: 0, Timeout: true}},
		{name: "no targets cannot meet w", spec: PutSpec{W: 1}, targets: nil,
			outcomes: "F", err: &QuorumError{Kind: "w", Required: 1, Acks: 0}},
		{name: "w above the targets fails at once", spec: PutSpec{W: 4}, targets: abc,
			outcomes: "F", err: &QuorumError{Kind: "w", Required: 4, Acks: 0}},
		{name: "nothing required succeeds at once", spec: PutSpec{}, targets: abc,
			outcomes: "S"},

		// Durable writes.
		{name: "dw waits for durable acks", spec: PutSpec{W: 1, DW: 2}, targets: abc,
			events: "a b! c!", outcomes: "PPPS"},
		{name: "dw plain acks do not count", spec: PutSpec{W: 1, DW: 1}, targets: abc,
			events: "a b c", outcomes: "PPPF",
			err: &QuorumError{Kind: "dw", Required: 1, Acks: 0}},
		{name: "dw fails early", spec: PutSpec{W: 2, DW: 2}, targets: abc,
			events: "a b", outcomes: "PPF",
			err: &QuorumError{Kind: "dw", Required: 2, Acks: 0}},
		{name: "dw timeout", spec: PutSpec{W: 2, DW: 2}, targets: abc,
			events: "a! b T", outcomes: "PPPF",
			err: &QuorumError{Kind: "dw", Required: 2, Acks: 1, Timeout: true}},
		{name: "durable acks count toward w", spec: PutSpec{W: 2, DW: 2}, targets: abc,
			events: "a! c!", outcomes: "PPS"},

		// Fallbacks count toward W, not PW.
		{name: "fallback counts toward w", spec: PutSpec{W: 2}, targets: abFallbackX,
			events: "x a", outcomes: "PPS"},
		{name: "pw waits for primaries", spec: PutSpec{W: 2, PW: 2}, targets: abFallbackX,
			events: "x a b", outcomes: "PPPS"},
		{name: "pw fails early on primary failure", spec: PutSpec{W: 1, PW: 2}, targets: abFallbackX,
			events: "x -a", outcomes: "PPF",
			err: &QuorumError{Kind: "pw", Required: 2, Acks: 0}},
		{name: "pw cannot be met by fallbacks alone", spec: PutSpec{W: 1, PW: 1}, targets: fallbacks("x", "y"),
			outcomes: "F", err: &QuorumError{Kind: "pw", Required: 1, Acks: 0}},
		{name: "pw timeout", spec: PutSpec{W: 2, PW: 2}, targets: abFallbackX,
			events: "x a T", outcomes: "PPPF",
			err: &QuorumError{Kind: "pw", Required: 2, Acks: 1, Timeout: true}},
		{name: "durable fallback counts toward dw", spec: PutSpec{W: 1, DW: 1}, targets: abFallbackX,
			events: "x!", outcomes: "PS"},
		// On timeout the first unmet requirement in the order w, pw, dw is reported.
		{name: "timeout reports w before pw and dw", spec: PutSpec{W: 3, PW: 2, DW: 1}, targets: abFallbackX,
			events: "x a T", outcomes: "PPPF",
			err: &QuorumError{Kind: "w", Required: 3, Acks: 2, Timeout: true}},

		// The coordinator's own ack (Own) is needed, however many others came first.
		{name: "own waits for its ack", spec: PutSpec{W: 2, Own: "a"}, targets: abc,
			events: "b c a", outcomes: "PPPS"},
		{name: "own counts toward w", spec: PutSpec{W: 1, Own: "a"}, targets: abc,
			events: "a", outcomes: "PS"},
		{name: "w1 with own does not take another ack", spec: PutSpec{W: 1, Own: "a"}, targets: abc,
			events: "b a", outcomes: "PPS"},
		{name: "own failed fails the write", spec: PutSpec{W: 2, Own: "a"}, targets: abc,
			events: "b -a c", outcomes: "PPFF",
			err: &QuorumError{Kind: "local", Required: 1, Acks: 0}},
		{name: "own timeout", spec: PutSpec{W: 2, Own: "a"}, targets: abc,
			events: "b c T", outcomes: "PPPF",
			err: &QuorumError{Kind: "local", Required: 1, Acks: 0, Timeout: true}},
		{name: "w is reported before own", spec: PutSpec{W: 3, Own: "a"}, targets: abc,
			events: "b T", outcomes: "PPF",
			err: &QuorumError{Kind: "w", Required: 3, Acks: 1, Timeout: true}},
		{name: "own not a target fails at once", spec: PutSpec{W: 1, Own: "z"}, targets: abc,
			outcomes: "F", err: &QuorumError{Kind: "local", Required: 1, Acks: 0}},

		// Duplicates and strangers.
		{name: "duplicate acks count once", spec: PutSpec{W: 2}, targets: abc,
			events: "a a a", outcomes: "PPPP"},
		{name: "duplicate durable ack does not upgrade", spec: PutSpec{W: 1, DW: 1}, targets: primaries("a", "b"),
			events: "a a! b", outcomes: "PPPF",
			err: &QuorumError{Kind: "dw", Required: 1, Acks: 0}},
		{name: "unknown nodes ignored", spec: PutSpec{W: 2}, targets: abc,
			events: "z y! a -q", outcomes: "PPPPP"},
		{name: "unknown failures ignored", spec: PutSpec{W: 3}, targets: abc,
			events: "-z a b c", outcomes: "PPPPS"},
		{name: "ack after fail ignored", spec: PutSpec{W: 3}, targets: abc,
			events: "a -b b", outcomes: "PPFF",
			err: &QuorumError{Kind: "w", Required: 3, Acks: 1}},
		{name: "fail after ack ignored", spec: PutSpec{W: 2}, targets: abc,
			events: "a -a b", outcomes: "PPPS"},

		// Outcomes are final.
		{name: "success survives failures and timeout", spec: PutSpec{W: 1}, targets: abc,
			events: "a -b -c T", outcomes: "PSSSS"},
		{name: "failure survives late acks", spec: PutSpec{W: 2}, targets: abc,
			events: "-a -b c! T", outcomes: "PPFFF",
			err: &QuorumError{Kind: "w", Required: 2, Acks: 0}},
		{name: "timeout failure survives late acks", spec: PutSpec{W: 2}, targets: abc,
			events: "T a b c", outcomes: "PFFFF",
			err: &QuorumError{Kind: "w", Required: 2, Acks: 0, Timeout: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPut(tt.spec, tt.targets)
			got := p.Outcome().letter()
			for _, ev := range strings.Fields(tt.events) {
				o := applyPut(p, ev)
				if o != p.Outcome() {
					t.Fatalf("event %q returned %v, Outcome() = %v", ev, o, p.Outcome())
				}
				got += o.letter()
			}
			if got != tt.outcomes {
				t.Fatalf("outcomes over %q = %s, want %s", tt.events, got, tt.outcomes)
			}
			err := p.Err()
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Err() = %v, want nil", err)
				}
				return
			}
			var qe *QuorumError
			if !errors.As(err, &qe) {
				t.Fatalf("Err() = %v, want a *QuorumError", err)
			}
			if *qe != *tt.err {
				t.Fatalf("Err() = %+v, want %+v", *qe, *tt.err)
			}
		})
	}
}

func TestPutCountsAndSettled(t *testing.T) {
	p := NewPut(PutSpec{W: 1}, abFallback())
	check := func(wantAcks, wantPrimary, wantDurable int, wantSettled bool) {
		t.Helper()
		acks, primary, durable := p.Counts()
		if acks != wantAcks || primary != wantPrimary || durable != wantDurable {
			t.Fatalf("Counts() = %d, %d, %d; want %d, %d, %d", acks, primary, durable, wantAcks, wantPrimary, wantDurable)
		}
		if p.Settled() != wantSettled {
			t.Fatalf("Settled() = %v, want %v", p.Settled(), wantSettled)
		}
	}
	check(0, 0, 0, false)
	p.Ack("x", true)
	check(1, 0, 1, false)
	p.Ack("a", false)
	check(2, 1, 1, false)
	p.Ack("a", true) // duplicate: ignored
	check(2, 1, 1, false)
	p.Fail("b")
	check(2, 1, 1, true)
	// The outcome was decided at the first ack, but acks keep being counted for the
	// caller's metrics.
	if p.Outcome() != Succeeded || p.Err() != nil {
		t.Fatalf("Outcome() = %v, Err() = %v", p.Outcome(), p.Err())
	}
}

func abFallback() []Target { return append(primaries("a", "b"), fallbacks("x")...) }

// TestPutExhaustive checks every order of every event for small write specs against the
// definition: a write succeeds when W, PW and DW are met, fails as soon as one can no longer
// be met (or at the deadline), and never changes its mind.
func TestPutExhaustive(t *testing.T) {
	targets := abFallback()
	// Per target: 0 ack, 1 durable ack, 2 fail, 3 silent (only the timeout ends it).
	perms := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for w := 1; w <= 3; w++ {
		for pw := 0; pw <= 2; pw++ {
			for dw := 0; dw <= 3; dw++ {
				spec := PutSpec{W: w, PW: pw, DW: dw}
				for k := 0; k < 64; k++ {
					kinds := [3]int{k % 4, k / 4 % 4, k / 16 % 4}
					for _, order := range perms {
						checkPutRun(t, spec, targets, kinds, order)
					}
				}
			}
		}
	}
}

func checkPutRun(t *testing.T, spec PutSpec, targets []Target, kinds, order [3]int) {
	t.Helper()
	p := NewPut(spec, targets)
	var acks, primary, durable, waitAll, waitPrimary int
	waitAll = len(targets)
	for _, tg := range targets {
		if tg.Primary {
			waitPrimary++
		}
	}
	var trace []string
	want := Pending
	var wantErr *QuorumError
	decide := func(timeout bool) {
		if want != Pending {
			return
		}
		reqs := []struct {
			kind            string
			need, have, max int
		}{
			{"w", spec.W, acks, acks + waitAll},
			{"pw", spec.PW, primary, primary + waitPrimary},
			{"dw", spec.DW, durable, durable + waitAll},
		}
		met := true
		for _, r := range reqs {
			if r.have < r.need {
				met = false
				if timeout || r.max < r.need {
					want = Failed
					wantErr = &QuorumError{Kind: r.kind, Required: r.need, Acks: r.have, Timeout: timeout}
					return
				}
			}
		}
		if met {
			want = Succeeded
		}
	}
	decide(false)
	for _, i := range order {
		tg := targets[i]
		var got Outcome
		switch kinds[i] {
		case 0, 1:
			d := kinds[i] == 1
			trace = append(trace, fmt.Sprintf("ack(%s,%v)", tg.Node, d))
			got = p.Ack(tg.Node, d)
			acks++
			if tg.Primary {
				primary++
			}
			if d {
				durable++
			}
		case 2:
			trace = append(trace, "fail("+tg.Node+")")
			got = p.Fail(tg.Node)
		default:
			continue
		}
		waitAll--
		if tg.Primary {
			waitPrimary--
		}
		prev := want
		decide(false)
		if prev != Pending && want != prev {
			t.Fatalf("model changed its mind") // the model itself is broken
		}
		if got != want {
			t.Fatalf("%+v %v: outcome %v, want %v", spec, trace, got, want)
		}
	}
	trace = append(trace, "timeout")
	decide(true)
	if got := p.Timeout(); got != want {
		t.Fatalf("%+v %v: outcome %v, want %v", spec, trace, got, want)
	}
	if want == Succeeded {
		if p.Err() != nil {
			t.Fatalf("%+v %v: succeeded with Err() = %v", spec, trace, p.Err())
		}
		return
	}
	var qe *QuorumError
	if !errors.As(p.Err(), &qe) || *qe != *wantErr {
		t.Fatalf("%+v %v: Err() = %v, want %+v", spec, trace, p.Err(), *wantErr)
	}
}

func TestPutAddTargetStandsInForAFailedPrimary(t *testing.T) {
	p := NewPut(PutSpec{W: 3}, []Target{{Node: "a", Primary: true}, {Node: "b", Primary: true}, {Node: "c", Primary: true}})
	p.Ack("a", false)
	p.Ack("b", false)
	// c is unreachable: a fallback d takes its place before c is failed.
	p.AddTarget(Target{Node: "d"})
	if got := p.Fail("c"); got != Pending {
		t.Fatalf("after failing c with a fallback in flight: %v, want Pending", got)
	}
	if got := p.Ack("d", false); got != Succeeded {
		t.Fatalf("after the fallback's ack: %v, want Succeeded", got)
	}
	acks, primary, _ := p.Counts()
	if acks != 3 || primary != 2 {
		t.Fatalf("counts %d acks, %d primary", acks, primary)
	}
	// Adding to a decided write, or adding a known target, changes nothing.
	p.AddTarget(Target{Node: "e"})
	p.AddTarget(Target{Node: "a"})
	if acks, _, _ := p.Counts(); acks != 3 || len(p.targets) != 4 {
		t.Fatalf("targets %v after late adds", p.targets)
	}
}

func TestPutAddTargetDoesNotRescuePW(t *testing.T) {
	p := NewPut(PutSpec{W: 3, PW: 3}, []Target{{Node: "a", Primary: true}, {Node: "b", Primary: true}, {Node: "c", Primary: true}})
	p.Ack("a", false)
	p.Ack("b", false)
	p.AddTarget(Target{Node: "d"})
	if got := p.Fail("c"); got != Failed {
		t.Fatalf("pw=3 with a primary failed: %v, want Failed", got)
	}
	var qe *QuorumError
	if !errors.As(p.Err(), &qe) || qe.Kind != "pw" || qe.Required != 3 || qe.Acks != 2 {
		t.Fatalf("err %v", p.Err())
	}
}
