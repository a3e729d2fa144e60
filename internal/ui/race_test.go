//go:build race

package ui_test

// raceDetector: the race detector slows the nodes several times over, so wall-clock
// bounds are logged rather than held.
const raceDetector = true
