package api

import (
	"context"
	"sync"

	"github.com/quorumkv/quorumkv/internal/core"
)

// cmdType answers TYPE key: string (a register or a counter, as Redis calls an INCR key),
// set, hash, or none.
func cmdType(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	if !checkKey(w, args[1]) {
		return
	}
	res, err := r.readAny(ctx, c, args[1])
	switch {
	case err != nil:
		r.fail(w, err)
	case !res.Found:
		w.WriteString("none")
	default:
		w.WriteString(scanType(res.State))
	}
}

// msetParallel bounds the keys of one MSET written at once.
const msetParallel = 16

// cmdMSet runs MSET key value [key value ...]: a SET of each key (its expiry the bucket's
// ttl_s), run concurrently; OK once every write is acknowledged. It is not atomic: each
// key is its own quorum write, so a failure leaves the keys written before it, and a
// reader may see some keys new and others not yet. A key named twice gets its last value.
// Every argument is checked before anything is written.
func cmdMSet(r *RESP, ctx context.Context, c *client, w *reply, args [][]byte) {
	pairs := args[1:]
	if len(pairs)%2 != 0 {
		w.WriteError("ERR wrong number of arguments for 'mset' command")
		return
	}
	last := map[string]int{}
	for i := 0; i < len(pairs); i += 2 {
		if !checkKey(w, pairs[i]) || !r.checkValue(w, pairs[i+1]) {
			return
		}
		last[string(pairs[i])] = i
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, msetParallel)
	)
	for i := 0; i < len(pairs); i += 2 {
		if last[string(pairs[i])] != i {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, _, err := r.set(ctx, c, pairs[i], pairs[i+1], setArgs{exp: core.Expiry{Mode: core.ExpiryBucket}})
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		r.fail(w, first)
		return
	}
	w.WriteString("OK")
}
