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
// replicas and stores the write at once, before its own acknowledgement (which, like every
// replica's, comes after a write and an acknowledgement latency): quorumkv's node core,
// and Dynamo's coordinator (section 4.5 of its paper). When the write is acknowledged the
// coordinator's acknowledgement is among the first W with probability W/N (latencies are
// alike), and then exactly W replicas hold the write; otherwise W+1 do. So
//
//	P(stale) = W/N · C(N-W, R)/C(N, R) + (1 - W/N) · C(N-W-1, R)/C(N, R).
//
// It is 0 for arguments out of range, as ClosedFormStale.
func ClosedFormStaleStoring(n, r, w int) float64 {
	if n < 1 || r < 0 || w < 0 || r > n || w > n {
		return 0
	}
	pw := float64(w) / float64(n)
	return pw*binom(n-w, r)/binom(n, r) + (1-pw)*binom(n-w-1, r)/binom(n, r)
}
