package ring

import "slices"

// mix64 is the xxhash64 / murmur3 finaliser: a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// score is the rendezvous weight of the pair (partition p, member with ID
// hash h). Pairs are ranked by score descending, then partition ascending,
// then member ID ascending (member index ascending, members being sorted by
// ID): a strict total order, so the stable assignment is unique.
func score(h uint64, p int) uint64 {
	return mix64(h ^ mix64(uint64(p)+0x9e3779b97f4a7c15))
}

// capacities gives every member floor(q/n) partitions, and one more to the
// q mod n members with the highest capacity hash (ties by index, that is by
// ID).
func capacities(q int, hashes []uint64) []int {
	n := len(hashes)
	caps := make([]int, n)
	for i := range caps {
		caps[i] = q / n
	}
	extra := q % n
	if extra == 0 {
		return caps
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	key := func(i int) uint64 { return mix64(hashes[i] + 0x632be59bd9b4e019) }
	slices.SortFunc(order, func(a, b int) int {
		ka, kb := key(a), key(b)
		switch {
		case ka > kb:
			return -1
		case ka < kb:
			return 1
		}
		return a - b
	})
	for _, i := range order[:extra] {
		caps[i]++
	}
	return caps
}

// offer is a partition held by a member, with the pair's score.
type offer struct {
	score uint64
	p     int32
}

// worse reports whether a ranks below b for the same member.
func worse(a, b offer) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return a.p > b.p
}

// assign returns the owner (index into hashes) of each of q partitions: the
// unique stable assignment under score and caps, equal to the greedy over all
// pairs in descending rank. sum(caps) must be q.
//
// It runs deferred acceptance: each free partition proposes to its best
// member not yet tried; a member keeps its caps[m] best proposals (a min-heap
// by rank) and rejects the rest, which propose again. With rankings derived
// from one global order of pairs the stable matching is unique, so this gives
// the same answer as the global greedy in O(proposals * n) time and O(q + n)
// memory instead of sorting q*n pairs.
func assign(q int, hashes []uint64, caps []int) []int32 {
	n := len(hashes)
	held := make([][]offer, n) // per member, a min-heap by rank
	for m := range held {
		held[m] = make([]offer, 0, caps[m]+1)
	}
	// last[p] is the member p proposed to last, -1 if none.
	last := make([]int32, q)
	lastScore := make([]uint64, q)
	free := make([]int32, q)
	for p := range q {
		last[p] = -1
		free[p] = int32(q - 1 - p)
	}
	for len(free) > 0 {
		p := free[len(free)-1]
		free = free[:len(free)-1]
		// Next member in p's ranking after (lastScore[p], last[p]).
		best, bestScore := int32(-1), uint64(0)
		for m := range n {
			s := score(hashes[m], int(p))
			if last[p] >= 0 && (s > lastScore[p] || s == lastScore[p] && int32(m) <= last[p]) {
				continue // already tried
			}
			if best < 0 || s > bestScore {
				best, bestScore = int32(m), s
			}
		}
		if best < 0 {
			panic("ring: assign: partition rejected by every member") // sum(caps) < q
		}
		last[p], lastScore[p] = best, bestScore
		h := heapPush(held[best], offer{bestScore, p})
		if len(h) > caps[best] {
			var out offer
			h, out = heapPop(h)
			free = append(free, out.p)
		}
		held[best] = h
	}
	owners := make([]int32, q)
	for m, h := range held {
		for _, o := range h {
			owners[o.p] = int32(m)
		}
	}
	return owners
}

func heapPush(h []offer, o offer) []offer {
	h = append(h, o)
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !worse(h[i], h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	return h
}

// heapPop removes and returns the lowest-ranked offer.
func heapPop(h []offer) ([]offer, offer) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < len(h) && worse(h[l], h[small]) {
			small = l
		}
		if r := l + 1; r < len(h) && worse(h[r], h[small]) {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	return h, top
}
