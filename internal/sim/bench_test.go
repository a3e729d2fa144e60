package sim

import (
	"testing"
	"time"
)

// BenchmarkSimulatedMinute: one simulated minute of the default 5-node cluster at 1,000
// ops/s (the unit of the simulator's speed: an hour is 60 of these).
func BenchmarkSimulatedMinute(b *testing.B) {
	for range b.N {
		cfg := DefaultConfig()
		cfg.Duration = time.Minute
		rep, err := Run(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.Events), "events/op")
	}
}
