package sim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FaultKind names a fault.
type FaultKind string

const (
	// Partition cuts every link between the groups (both ways), or only from Groups[0] to
	// Groups[1] when OneWay.
	Partition FaultKind = "partition"
	// Crash kills the nodes; they restart after For (0: at the end of the workload),
	// having lost every write they had not synced.
	Crash FaultKind = "crash"
	// Pause freezes the nodes for For: their events wait (SIGSTOP).
	Pause FaultKind = "pause"
	// Skew offsets the nodes' clocks by Skew (from At on).
	Skew FaultKind = "skew"
	// Join starts the nodes at At as new members: they stream the partitions they gain and
	// take them over once complete. A node named in a join is not a member before.
	Join FaultKind = "join"
	// Leave has the nodes hand their partitions to the others, then leave the ring.
	Leave FaultKind = "leave"
)

// Fault is one scheduled fault.
type Fault struct {
	Kind   FaultKind
	Groups [][]int // node indexes (0-based); one group except for partitions
	OneWay bool
	At     time.Duration // when it starts
	For    time.Duration // how long it lasts; 0 until the end of the workload
	Skew   time.Duration
}

func (f Fault) allNodes() []int {
	var out []int
	for _, g := range f.Groups {
		out = append(out, g...)
	}
	return out
}

func (f Fault) String() string {
	var gs []string
	for _, g := range f.Groups {
		var ns []string
		for _, n := range g {
			ns = append(ns, "n"+strconv.Itoa(n+1))
		}
		gs = append(gs, strings.Join(ns, ","))
	}
	sep := "|"
	if f.OneWay {
		sep = ">"
	}
	s := string(f.Kind) + " " + strings.Join(gs, sep)
	switch f.Kind {
	case Skew:
		s += " " + f.Skew.String()
	default:
		if f.For > 0 {
			s += " " + f.For.String()
		}
	}
	return s + "@" + f.At.String()
}

// ParseFaults reads a fault schedule: faults separated by ";", each one of
//
//	partition n1,n2|n3,n4,n5 10s@20s   both ways, for 10 s from 20 s (no duration: to the end)
//	partition n1>n2 5s@3s             one way: n1's messages to n2 are lost
//	crash n3@30s  /  crash n3 10s@30s  kill -9 at 30 s; restart at the end, or after 10 s
//	pause n2 5s@12s                    SIGSTOP for 5 s
//	skew n2 500ms  /  skew n2 -500ms@10s
//	join n6@20s                        n6 starts and joins the ring (streaming its partitions)
//	leave n2@40s                       n2 hands its partitions away, then leaves the ring
func ParseFaults(spec string) ([]Fault, error) {
	var out []Fault
	for _, part := range strings.Split(spec, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f, err := parseFault(part)
		if err != nil {
			return nil, fmt.Errorf("sim: fault %q: %w", part, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func parseFault(s string) (Fault, error) {
	var f Fault
	body, at, hasAt := strings.Cut(s, "@")
	if hasAt {
		d, err := time.ParseDuration(strings.TrimSpace(at))
		if err != nil || d < 0 {
			return f, fmt.Errorf("bad start time %q", at)
		}
		f.At = d
	}
	fields := strings.Fields(body)
	if len(fields) < 2 || len(fields) > 3 {
		return f, fmt.Errorf("want KIND NODES [DURATION][@START]")
	}
	f.Kind = FaultKind(fields[0])
	switch f.Kind {
	case Partition, Crash, Pause, Skew, Join, Leave:
	default:
		return f, fmt.Errorf("unknown kind %q (partition, crash, pause, skew, join, leave)", fields[0])
	}
	groups := []string{fields[1]}
	if f.Kind == Partition {
		switch {
		case strings.Contains(fields[1], ">"):
			f.OneWay = true
			groups = strings.Split(fields[1], ">")
		default:
			groups = strings.Split(fields[1], "|")
		}
		if len(groups) != 2 {
			return f, fmt.Errorf("a partition needs two groups: A|B or A>B")
		}
	} else if strings.ContainsAny(fields[1], "|>") {
		return f, fmt.Errorf("only partitions take groups")
	}
	seen := map[int]bool{}
	for _, g := range groups {
		var ids []int
		for _, name := range strings.Split(g, ",") {
			name = strings.TrimSpace(name)
			n, err := strconv.Atoi(strings.TrimPrefix(name, "n"))
			if !strings.HasPrefix(name, "n") || err != nil || n < 1 {
				return f, fmt.Errorf("bad node name %q (n1, n2, ...)", name)
			}
			if seen[n-1] {
				return f, fmt.Errorf("node %s named twice", name)
			}
			seen[n-1] = true
			ids = append(ids, n-1)
		}
		f.Groups = append(f.Groups, ids)
	}
	if len(fields) == 3 && (f.Kind == Join || f.Kind == Leave) {
		return f, fmt.Errorf("%s takes no duration: a membership change lasts until it is done", f.Kind)
	}
	if len(fields) == 3 {
		d, err := time.ParseDuration(fields[2])
		if err != nil {
			return f, fmt.Errorf("bad duration %q", fields[2])
		}
		if f.Kind == Skew {
			f.Skew = d
		} else {
			if d <= 0 {
				return f, fmt.Errorf("duration must be positive")
			}
			f.For = d
		}
	} else if f.Kind == Skew || f.Kind == Pause {
		return f, fmt.Errorf("%s needs a duration", f.Kind)
	}
	return f, nil
}
