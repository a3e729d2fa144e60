package sim

import (
	"errors"
	"time"
)

// ErrViolation marks a run in which an invariant failed; the report lists them.
var ErrViolation = errors.New("sim: invariant violated")

// Run simulates cfg and reports what it measured. progress, when set, is called now and
// then with the virtual time done and the total. An invariant violation returns the report
// with an error wrapping ErrViolation.
func Run(cfg Config, progress func(done, total time.Duration)) (*Report, error) {
	return runSim(cfg, progress)
}
