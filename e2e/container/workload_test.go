package container

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumkv/quorumkv/client"
)

// The workloads' keys. Redis keys live in the bucket "redis".
const (
	setKey     = "jepsen-set"
	counterKey = "jepsen-counter"
	redisBkt   = "redis"
	regBucket  = "jepsen"
)

var regKeys = []string{"reg-a", "reg-b", "reg-c"}

// ledger is what the clients know of their operations' outcomes. An operation that
// returned an error may or may not have taken effect: it is "unknown", never lost.
type ledger struct {
	mu sync.Mutex

	setAcked, setUnknown map[string]bool // elements added
	setUnsent            int             // adds refused before anything was sent

	incAcked, incUnknown int64 // sums of increments (all positive)
	incOps, incAckedOps  int
	incUnsent            int // increments refused before anything was sent

	// Register writes by value: what the write's read had seen (its context covers
	// those values, so writing it supersedes them), and whether it was acknowledged.
	regWrites map[string]*regWrite

	errs map[string]int // error samples, for the report
}

type regWrite struct {
	key   string
	read  []string
	acked bool
}

func newLedger() *ledger {
	return &ledger{setAcked: map[string]bool{}, setUnknown: map[string]bool{}, regWrites: map[string]*regWrite{}, errs: map[string]int{}}
}

// sample counts an error by its last clause ("connection refused", "EOF", "w=2
// required, 0 acknowledged (timed out)"), which leaves addresses out.
func (l *ledger) sample(err error) {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	l.errs[msg]++
}

// unsent reports whether err means the request never left: the connection was refused
// (a killed or stopped container publishes no port), so the operation had no effect.
func unsent(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// workload drives the three workloads against random nodes until ctx ends.
type workload struct {
	nodes []*node
	l     *ledger
	redis map[string]*redis.Client
	http  map[string]*client.Client
}

func newWorkload(nodes []*node) *workload {
	w := &workload{nodes: nodes, l: newLedger(), redis: map[string]*redis.Client{}, http: map[string]*client.Client{}}
	for _, n := range nodes {
		o := &redis.Options{
			Addr: n.resp, DialTimeout: 2 * time.Second, ReadTimeout: 8 * time.Second, WriteTimeout: 8 * time.Second,
			// No retries: a retried INCRBY whose first try took effect would count twice.
			MaxRetries: -1, PoolSize: 8,
		}
		if clientTLS != nil {
			o.TLSConfig, o.Username, o.Password = clientTLS, "admin", adminPassword
		}
		w.redis[n.name] = redis.NewClient(o)
		w.http[n.name] = n.clientWith(8 * time.Second)
	}
	return w
}

func (w *workload) close() {
	for _, r := range w.redis {
		_ = r.Close()
	}
}

// run starts the workers, paced so the keys stay small enough to check (each worker
// about 25 operations a second), and returns when ctx ends and every operation in flight
// has its outcome.
func (w *workload) run(ctx context.Context, seed uint64) {
	var wg sync.WaitGroup
	worker := func(id int, op func(r *rand.Rand, i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(id)))
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				op(r, i)
			}
		}()
	}
	for id := range 3 {
		worker(id, func(r *rand.Rand, i int) { w.setAdd(r, fmt.Sprintf("e%d-%d", id, i)) })
	}
	for id := 3; id < 5; id++ {
		worker(id, func(r *rand.Rand, i int) { w.increment(r) })
	}
	for id := 5; id < 8; id++ {
		worker(id, func(r *rand.Rand, i int) { w.readModifyWrite(r, fmt.Sprintf("w%d-%d", id, i)) })
	}
	wg.Wait()
}

func (w *workload) pick(r *rand.Rand) *node { return w.nodes[r.IntN(len(w.nodes))] }

// opContext bounds one operation; the workload's own end does not cut operations short
// (an operation cut short is unknown, which would only blur the figures).
func opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (w *workload) setAdd(r *rand.Rand, elem string) {
	ctx, cancel := opContext()
	defer cancel()
	err := w.redis[w.pick(r).name].SAdd(ctx, setKey, elem).Err()
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	if err != nil {
		w.l.sample(err)
		if unsent(err) {
			w.l.setUnsent++
			return
		}
		w.l.setUnknown[elem] = true
		return
	}
	w.l.setAcked[elem] = true
}

func (w *workload) increment(r *rand.Rand) {
	n := int64(1 + r.IntN(5))
	ctx, cancel := opContext()
	defer cancel()
	err := w.redis[w.pick(r).name].IncrBy(ctx, counterKey, n).Err()
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	w.l.incOps++
	if err != nil {
		w.l.sample(err)
		if unsent(err) {
			w.l.incUnsent++
			return
		}
		w.l.incUnknown += n
		return
	}
	w.l.incAcked += n
	w.l.incAckedOps++
}

// readModifyWrite reads a register and writes a new value with the read's context, so
// the write supersedes exactly what was read; concurrent ones leave siblings.
func (w *workload) readModifyWrite(r *rand.Rand, value string) {
	key := regKeys[r.IntN(len(regKeys))]
	c := w.http[w.pick(r).name]
	ctx, cancel := opContext()
	defer cancel()
	obj, err := c.Get(ctx, regBucket, key, client.Quorum{})
	if err != nil && !client.IsNotFound(err) {
		w.l.mu.Lock()
		w.l.sample(err)
		w.l.mu.Unlock()
		return
	}
	rw := &regWrite{key: key}
	var wctx string
	if err == nil {
		wctx = obj.Context
		for _, v := range obj.Values {
			rw.read = append(rw.read, string(v))
		}
	}
	w.l.mu.Lock()
	w.l.regWrites[value] = rw
	w.l.mu.Unlock()
	_, err = c.Put(ctx, regBucket, key, []byte(value), wctx, client.Quorum{})
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	if err != nil {
		w.l.sample(err)
		if unsent(err) {
			delete(w.l.regWrites, value) // never written: it must not appear
		}
		return
	}
	rw.acked = true
}

// figures are one run's results.
type figures struct {
	setAcked, setUnknown, setUnsent, setLost, setPhantom int
	incAckedOps, incUnsent, incOps                       int
	incAcked, incUnknown, counter                        int64
	regAcked, regWrites, regLost, regPhantom             int
	regSiblings                                          int // values left on the registers
}

func (f figures) String() string {
	return fmt.Sprintf("set: %d adds acked, %d unknown, %d refused, %d lost, %d phantom; "+
		"counter: %d of %d increments acked (%d refused), value %d in [%d, %d]; "+
		"register: %d of %d writes acked, %d lost, %d phantom, %d values left",
		f.setAcked, f.setUnknown, f.setUnsent, f.setLost, f.setPhantom,
		f.incAckedOps, f.incOps, f.incUnsent, f.counter, f.incAcked, f.incAcked+f.incUnknown,
		f.regAcked, f.regWrites, f.regLost, f.regPhantom, f.regSiblings)
}

// check reads every key through every node and returns the figures and the problems
// found (empty when every invariant holds).
func (w *workload) check() (figures, []string) {
	l := w.l
	l.mu.Lock()
	defer l.mu.Unlock()
	f := figures{setAcked: len(l.setAcked), setUnknown: len(l.setUnknown), setUnsent: l.setUnsent,
		incAckedOps: l.incAckedOps, incUnsent: l.incUnsent, incOps: l.incOps,
		incAcked: l.incAcked, incUnknown: l.incUnknown, regWrites: len(l.regWrites)}
	for _, rw := range l.regWrites {
		if rw.acked {
			f.regAcked++
		}
	}
	var problems []string
	lost, phantom := map[string]bool{}, map[string]bool{}
	for _, n := range w.nodes {
		ctx, cancel := opContext()
		members, err := w.redis[n.name].SMembers(ctx, setKey).Result()
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: SMEMBERS: %v", n.name, err))
			continue
		}
		have := map[string]bool{}
		for _, m := range members {
			have[m] = true
			if !l.setAcked[m] && !l.setUnknown[m] {
				phantom[m] = true
			}
		}
		missing := 0
		for e := range l.setAcked {
			if !have[e] {
				lost[e] = true
				missing++
			}
		}
		if missing > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d acknowledged set elements missing", n.name, missing))
		}
	}
	f.setLost, f.setPhantom = len(lost), len(phantom)
	if len(phantom) > 0 {
		problems = append(problems, fmt.Sprintf("set elements never added: %v", firstKeys(phantom, 5)))
	}

	counters := map[int64]bool{}
	for _, n := range w.nodes {
		ctx, cancel := opContext()
		v, err := w.redis[n.name].Get(ctx, counterKey).Int64()
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: GET counter: %v", n.name, err))
			continue
		}
		counters[v] = true
		f.counter = v
		if v < l.incAcked || v > l.incAcked+l.incUnknown {
			problems = append(problems, fmt.Sprintf("%s: counter %d outside [%d, %d]", n.name, v, l.incAcked, l.incAcked+l.incUnknown))
		}
	}
	if len(counters) > 1 {
		problems = append(problems, fmt.Sprintf("nodes read different counter values %v", counters))
	}

	rl, rp, left, p := w.checkRegisters()
	f.regLost, f.regPhantom, f.regSiblings = rl, rp, left
	problems = append(problems, p...)
	problems = append(problems, w.checkReplicas()...)
	return f, problems
}

// checkRegisters reads every register through every node. All must read the same values,
// none of them unwritten, and every acknowledged write must be among them or superseded:
// read by a write that took effect (one whose value was read or is still there).
func (w *workload) checkRegisters() (lost, phantom, left int, problems []string) {
	l := w.l
	final := map[string][]string{}
	for _, key := range regKeys {
		var first []string
		for i, n := range w.nodes {
			ctx, cancel := opContext()
			obj, err := w.http[n.name].Get(ctx, regBucket, key, client.Quorum{})
			cancel()
			var vals []string
			switch {
			case client.IsNotFound(err):
			case err != nil:
				problems = append(problems, fmt.Sprintf("%s: GET %s: %v", n.name, key, err))
				continue
			default:
				for _, v := range obj.Values {
					vals = append(vals, string(v))
				}
			}
			sort.Strings(vals)
			if i == 0 {
				first = vals
			} else if !slices.Equal(first, vals) {
				problems = append(problems, fmt.Sprintf("%s: %s reads %v, %s read %v", n.name, key, vals, w.nodes[0].name, first))
			}
		}
		final[key] = first
		left += len(first)
	}
	// Applied: a value some read saw, or a final one. Superseded: read by an applied write.
	applied, superseded := map[string]bool{}, map[string]bool{}
	for _, vals := range final {
		for _, v := range vals {
			applied[v] = true
		}
	}
	for _, rw := range l.regWrites {
		for _, v := range rw.read {
			applied[v] = true
		}
	}
	for v, rw := range l.regWrites {
		if applied[v] {
			for _, old := range rw.read {
				superseded[old] = true
			}
		}
	}
	for v := range applied {
		if _, ok := l.regWrites[v]; !ok {
			phantom++
			problems = append(problems, fmt.Sprintf("register value %q was never written", v))
		}
	}
	for v, rw := range l.regWrites {
		if !rw.acked || superseded[v] || slices.Contains(final[rw.key], v) {
			continue
		}
		lost++
		if lost <= 5 {
			problems = append(problems, fmt.Sprintf("acknowledged write %q to %s is neither there nor superseded", v, rw.key))
		}
	}
	return lost, phantom, left, problems
}

// checkReplicas compares every key's own copy on each of its primaries (GET
// /v1/admin/local): converged replicas hold the same versions.
func (w *workload) checkReplicas() []string {
	var problems []string
	keys := [][2]string{{redisBkt, setKey}, {redisBkt, counterKey}}
	for _, k := range regKeys {
		keys = append(keys, [2]string{regBucket, k})
	}
	byName := map[string]*node{}
	for _, n := range w.nodes {
		byName[n.name] = n
	}
	for _, k := range keys {
		ctx, cancel := opContext()
		ep, err := w.http[w.nodes[0].name].Endpoints(ctx, k[0], k[1])
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("endpoints of %s/%s: %v", k[0], k[1], err))
			continue
		}
		copies := map[string][]string{}
		for _, p := range ep.Primaries {
			n := byName[p.ID]
			if n == nil {
				problems = append(problems, fmt.Sprintf("%s/%s: unknown primary %s", k[0], k[1], p.ID))
				continue
			}
			ctx, cancel := opContext()
			lc, err := w.http[n.name].Local(ctx, k[0], k[1])
			cancel()
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: local copy of %s/%s: %v", n.name, k[0], k[1], err))
				continue
			}
			var vs []string
			for _, s := range lc.Siblings {
				vs = append(vs, fmt.Sprintf("%s=%x/%v", s.Dot, s.Value, s.Tombstone))
			}
			sort.Strings(vs)
			copies[strings.Join(vs, " ")] = append(copies[strings.Join(vs, " ")], n.name)
		}
		if len(copies) > 1 {
			var holders []string
			for _, ns := range copies {
				holders = append(holders, strings.Join(ns, ","))
			}
			sort.Strings(holders)
			problems = append(problems, fmt.Sprintf("%s/%s: primaries hold %d different copies (%s)", k[0], k[1], len(copies), strings.Join(holders, " | ")))
		}
	}
	return problems
}

func firstKeys(m map[string]bool, n int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) > n {
		ks = ks[:n]
	}
	return ks
}
