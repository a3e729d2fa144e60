package impure

// math/rand/v2's package-level functions draw from the global source; a seeded *rand.Rand
// is fine.

import (
	"math/rand/v2"
	r2 "math/rand/v2"
)

func random(xs []int, seeded *rand.Rand) int {
	rand.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	_ = rand.N[int64](10)
	_ = r2.Int64()
	own := rand.New(rand.NewPCG(1, 2)) // allowed
	return rand.IntN(10) + seeded.IntN(10) + own.IntN(10)
}
