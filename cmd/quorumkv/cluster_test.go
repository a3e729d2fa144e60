package main

import (
	"strings"
	"testing"
	"time"
)

func TestBoardPlainAndTerminal(t *testing.T) {
	var b strings.Builder
	bd := newBoard(&b) // a strings.Builder is not a terminal
	now := time.Unix(0, 0)
	bd.now = func() time.Time { return now }
	bd.update([]string{"change", "  n4 0/10"})
	now = now.Add(time.Second) // too soon: nothing written
	bd.update([]string{"change", "  n4 5/10"})
	now = now.Add(time.Second)
	bd.update([]string{"change", "  n4 6/10", "  n5 0/3"})
	bd.update([]string{"change", "  n4 10/10", "  n5 3/3"})
	bd.finish()
	// Only the lines that changed, the last state always.
	if got, want := b.String(), "change\n  n4 0/10\n  n4 6/10\n  n5 0/3\n  n4 10/10\n  n5 3/3\n"; got != want {
		t.Fatalf("plain board wrote\n%q\nwant\n%q", got, want)
	}

	b.Reset()
	bd = newBoard(&b)
	bd.tty, bd.every = true, ttyEvery
	bd.update([]string{"a", "b"})
	bd.update([]string{"c"}) // within ttyEvery: not drawn until finish
	bd.finish()
	// The second frame goes back up two lines, redraws the one it has and clears the other.
	if got, want := b.String(), "\x1b[2Ka\n\x1b[2Kb\n\x1b[2A\x1b[2Kc\n\x1b[2K\n"; got != want {
		t.Fatalf("terminal board wrote %q, want %q", got, want)
	}
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 125 << 20: "125.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}
