package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// meter shows the progress of a long command on w (stderr). On a terminal it redraws one
// line ("\r" frames, at most every ttyEvery); anywhere else (a file, a pipe, a CI log) it
// writes a plain line at most every plainEvery, and always the last state, so that
// "repair 2>log" holds a few readable lines instead of hundreds of frames. Commands with a
// progress display create one with newMeter(e.stderr, ...), call update as work is done
// and finish once at the end.
type meter struct {
	w     io.Writer
	label string
	tty   bool
	now   func() time.Time
	every time.Duration

	last    time.Time // when a frame or line was last written
	drawn   bool      // anything written
	frac    float64   // the latest state
	detail  string
	shown   string // the latest line written (plain mode: not repeated)
	stopped bool
}

const (
	meterWidth = 30
	ttyEvery   = 100 * time.Millisecond
	plainEvery = 2 * time.Second
)

// newMeter returns a meter labelled label writing to w, in terminal mode when w is a
// terminal.
func newMeter(w io.Writer, label string) *meter {
	m := &meter{w: w, label: label, tty: isTerminal(w), now: time.Now}
	m.every = plainEvery
	if m.tty {
		m.every = ttyEvery
	}
	return m
}

// update records progress frac (0..1) with a detail ("3/10 exchanges") and shows it if
// its time has come (or when frac reaches 1).
func (m *meter) update(frac float64, detail string) {
	m.frac, m.detail = min(max(frac, 0), 1), detail
	if now := m.now(); !m.drawn || m.frac == 1 || now.Sub(m.last) >= m.every {
		m.show(now)
	}
}

// bar draws frac (0..1) as a bar of meterWidth characters.
func bar(frac float64) string {
	n := int(min(max(frac, 0), 1) * meterWidth)
	return "[" + strings.Repeat("#", n) + strings.Repeat(" ", meterWidth-n) + "]"
}

func (m *meter) show(now time.Time) {
	m.last, m.drawn = now, true
	if m.tty {
		fmt.Fprintf(m.w, "\r%s %s %s", m.label, bar(m.frac), m.detail)
		return
	}
	line := fmt.Sprintf("%s: %3.0f%% %s", m.label, 100*m.frac, m.detail)
	if line != m.shown {
		fmt.Fprintln(m.w, line)
		m.shown = line
	}
}

// finish shows the last state and ends the terminal line. It is safe to call twice.
func (m *meter) finish() {
	if m.stopped || !m.drawn {
		m.stopped = true
		return
	}
	m.stopped = true
	m.show(m.now())
	if m.tty {
		fmt.Fprintln(m.w)
	}
}

// board shows several progress lines at once (one per transfer, say) on w: on a terminal
// it redraws them in place, at most every ttyEvery; anywhere else it writes the lines that
// changed, at most every plainEvery, and always the last state.
type board struct {
	w     io.Writer
	tty   bool
	now   func() time.Time
	every time.Duration

	last  time.Time
	drawn int      // terminal lines written by the last frame
	shown []string // plain mode: the lines last written
	rows  []string
}

func newBoard(w io.Writer) *board {
	b := &board{w: w, tty: isTerminal(w), now: time.Now, every: plainEvery}
	if b.tty {
		b.every = ttyEvery
	}
	return b
}

// update records the lines of the latest state and shows them if their time has come.
func (b *board) update(rows []string) {
	b.rows = rows
	if now := b.now(); b.last.IsZero() || now.Sub(b.last) >= b.every {
		b.show(now)
	}
}

func (b *board) show(now time.Time) {
	b.last = now
	if b.tty {
		if b.drawn > 0 {
			fmt.Fprintf(b.w, "\x1b[%dA", b.drawn) // back to the first line of the last frame
		}
		for _, r := range b.rows {
			fmt.Fprintf(b.w, "\x1b[2K%s\n", r)
		}
		for i := len(b.rows); i < b.drawn; i++ {
			fmt.Fprint(b.w, "\x1b[2K\n") // a line the last frame had and this one has not
		}
		b.drawn = max(b.drawn, len(b.rows))
		return
	}
	for i, r := range b.rows {
		if i >= len(b.shown) || b.shown[i] != r {
			fmt.Fprintln(b.w, r)
		}
	}
	b.shown = slices.Clone(b.rows)
}

// finish shows the last state.
func (b *board) finish() {
	if b.rows != nil {
		b.show(b.now())
	}
}
