package main

import (
	"fmt"
	"io"
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

func (m *meter) show(now time.Time) {
	m.last, m.drawn = now, true
	if m.tty {
		n := int(m.frac * meterWidth)
		fmt.Fprintf(m.w, "\r%s [%s%s] %s", m.label, strings.Repeat("#", n), strings.Repeat(" ", meterWidth-n), m.detail)
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
