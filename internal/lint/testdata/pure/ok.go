package pure

// What pure code may do with the watched packages: take time and a seeded source as
// arguments, build a source from a seed, keep a context it was given.

import (
	"context"
	"math/rand/v2"
	t "time"
)

type state struct {
	rng  *rand.Rand
	rand *rand.Rand // a field named like the package
}

func ok(ctx context.Context, now t.Time, seed uint64, r *rand.Rand) (t.Duration, error) {
	s := state{rng: rand.New(rand.NewPCG(seed, seed)), rand: r}
	_ = s.rng.IntN(10) + s.rand.IntN(10) + r.Perm(3)[0]
	deadline := now.Add(5 * t.Second)
	{
		t := clock{} // a local variable shadowing the import's name
		_ = t.Now()
	}
	return deadline.Sub(now), ctx.Err()
}

type clock struct{}

func (clock) Now() int { return 0 }
