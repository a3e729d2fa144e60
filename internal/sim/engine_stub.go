package sim

import (
	"errors"
	"time"
)

func runSim(cfg Config, progress func(done, total time.Duration)) (*Report, error) {
	return nil, errors.New("sim: not built yet")
}
