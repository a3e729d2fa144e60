package quorum

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		s           string
		n, min, def int
		want        int
		bad         bool
	}{
		{s: "", n: 3, min: 1, def: 2, want: 2},
		{s: "", n: 3, min: 0, def: 0, want: 0},
		{s: "one", n: 3, min: 1, want: 1},
		{s: "ONE", n: 3, min: 1, want: 1},
		{s: "quorum", n: 3, min: 1, want: 2},
		{s: "Quorum", n: 4, min: 1, want: 3},
		{s: "quorum", n: 5, min: 1, want: 3},
		{s: "quorum", n: 1, min: 1, want: 1},
		{s: "all", n: 3, min: 1, want: 3},
		{s: "ALL", n: 5, min: 0, want: 5},
		{s: "0", n: 3, min: 0, want: 0},
		{s: "2", n: 3, min: 1, want: 2},
		{s: "3", n: 3, min: 1, want: 3},
		// Below min: R and W need at least one replica.
		{s: "0", n: 3, min: 1, bad: true},
		// R > N.
		{s: "4", n: 3, min: 1, bad: true},
		{s: "-1", n: 3, min: 0, bad: true},
		{s: "two", n: 3, min: 1, bad: true},
		{s: "1.5", n: 3, min: 1, bad: true},
		{s: " 1", n: 3, min: 1, bad: true},
		{s: "0x2", n: 3, min: 1, bad: true},
		{s: "99999999999999999999999", n: 3, min: 1, bad: true},
		// Named values are checked against min and n too.
		{s: "all", n: 0, min: 1, bad: true},
		{s: "one", n: 0, min: 0, bad: true},
		{s: "quorum", n: 0, min: 1, bad: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q/n=%d/min=%d", tt.s, tt.n, tt.min), func(t *testing.T) {
			got, err := Parse(tt.s, tt.n, tt.min, tt.def)
			if tt.bad {
				if !errors.Is(err, ErrBadQuorum) {
					t.Fatalf("Parse = %d, %v; want an error wrapping ErrBadQuorum", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Parse = %d, %v; want %d, nil", got, err, tt.want)
			}
		})
	}
}

func TestParseRepairMode(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want RepairMode
	}{
		{"blocking", RepairBlocking}, {"BLOCKING", RepairBlocking},
		{"async", RepairAsync}, {"Async", RepairAsync},
		{"none", RepairNone}, {"NONE", RepairNone},
	} {
		got, err := ParseRepairMode(tt.s)
		if err != nil || got != tt.want {
			t.Errorf("ParseRepairMode(%q) = %v, %v; want %v", tt.s, got, err, tt.want)
		}
		// String round-trips.
		if back, err := ParseRepairMode(got.String()); err != nil || back != got {
			t.Errorf("ParseRepairMode(%v.String()) = %v, %v", got, back, err)
		}
	}
	for _, s := range []string{"", "sync", "blocking ", "off"} {
		if _, err := ParseRepairMode(s); err == nil {
			t.Errorf("ParseRepairMode(%q) accepted a bad mode", s)
		}
	}
}

func TestQuorumErrorMessage(t *testing.T) {
	var err error = fmt.Errorf("put: %w", &QuorumError{Kind: "pw", Required: 2, Acks: 1, Timeout: true})
	var qe *QuorumError
	if !errors.As(err, &qe) || qe.Kind != "pw" || qe.Required != 2 || qe.Acks != 1 || !qe.Timeout {
		t.Fatalf("errors.As(%v) = %+v", err, qe)
	}
	// The message is for people; check it names the requirement and the cause.
	for _, want := range []string{"pw=2", "1 acknowledged", "timed out"} {
		if !strings.Contains(qe.Error(), want) {
			t.Errorf("Error() = %q, missing %q", qe.Error(), want)
		}
	}
	qe.Timeout = false
	if !strings.Contains(qe.Error(), "replicas failed") {
		t.Errorf("Error() = %q, want it to say replicas failed", qe.Error())
	}
}
