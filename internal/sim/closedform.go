package sim

// ClosedFormStale is the probability that a read quorum of r replicas, chosen uniformly
// among n, misses every one of the w replicas a write reached, when nothing else propagates
// the write: C(n-w, r) / C(n, r) (Bailis et al., PBS, equation 1). It is 0 when r+w > n and
// for arguments out of range (r or w outside 0..n, n < 1).
func ClosedFormStale(n, r, w int) float64 {
	if n < 1 || r < 0 || w < 0 || r > n || w > n {
		return 0
	}
	return binom(n-w, r) / binom(n, r)
}

// binom is C(n, k) as a float64 (0 when k > n).
func binom(n, k int) float64 {
	if k < 0 || k > n {
		return 0
	}
	if k > n-k {
		k = n - k
	}
	c := 1.0
	for i := 1; i <= k; i++ {
		c = c * float64(n-k+i) / float64(i)
	}
	return c
}

// ClosedFormStaleStoring is ClosedFormStale for a coordinator that is itself one of the N
// replicas, stores the write at once, and acknowledges the write only once its own
// acknowledgement (which, like every replica's, comes after a write and an acknowledgement
// latency) is among the W: quorumkv's node core as the simulator models it (every replica's
// acknowledgement after a write latency; the server's own comes at once, docs/sim.md) and
// Riak's vnode-coordinated put. The coordinator's
// acknowledgement is the k-th of N with probability 1/N each (latencies are alike), and
// the write is acknowledged with the later of the W-th and the k-th, when max(W, k)
// replicas hold it. So
//
//	P(stale) = 1/N · Σ_{k=1..N} C(N−max(W, k), R) / C(N, R).
//
// It is 0 for arguments out of range, as ClosedFormStale.
func ClosedFormStaleStoring(n, r, w int) float64 {
	if n < 1 || r < 0 || w < 0 || r > n || w > n {
		return 0
	}
	p := 0.0
	for k := 1; k <= n; k++ {
		p += binom(n-max(w, k), r)
	}
	return p / float64(n) / binom(n, r)
}
