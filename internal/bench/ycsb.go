package bench

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/core"
)

// YCSBConfig configures a YCSB run (RunYCSB).
type YCSBConfig struct {
	Addrs    []string // HTTP host:port of the nodes; client goroutine i talks to Addrs[i mod len]
	Bucket   string
	Workload Workload
	// Records is YCSB's recordcount: the records loaded, and the key space the run draws
	// from (keys "user"+fnvhash64(n), n in [0, Records)).
	Records int64
	// Operations is YCSB's operationcount: the ops of the run phase, over all clients.
	Operations int64
	// RecordBytes is the size of each written record: YCSB's fieldcount × fieldlength.
	// quorumkv stores a record as one value, so every update and insert writes all of it
	// (YCSB's writeallfields=true), and every read reads all of it.
	RecordBytes int
	Clients     int  // YCSB's threadcount
	Load        bool // run the load phase (insert every record) before the run phase
	// LWW sets the bucket's conflict mode to lww before the run: YCSB's updates are blind
	// overwrites, which on a siblings bucket would each add a sibling and grow the objects.
	// Read-modify-writes pass the read's causal context either way.
	LWW    bool
	Prefix string // prepended to every key
	Seed   uint64 // client goroutine i draws from a PCG seeded with (Seed, i)
	R, W   string // quorum query values; "" = the bucket's default
	// Progress, when set, gets a progress line (ops done, current rate, elapsed):
	// redrawn in place, or with ProgressLines one plain line every 2 s (a file or pipe).
	Progress      io.Writer
	ProgressLines bool
	HTTPTimeout   time.Duration
}

// DefaultYCSBConfig: YCSB's record shape (10 fields of 100 bytes), 32 clients (the HTTP
// benchmark's figure), 10,000 records and 100,000 operations — YCSB's workload files say
// 1,000 and 1,000, too few to measure a p99.9 from; these take well under a minute on a
// 3-node dev cluster.
func DefaultYCSBConfig() YCSBConfig {
	return YCSBConfig{Bucket: "ycsb", Workload: Workloads["a"], Records: 10_000, Operations: 100_000,
		RecordBytes: 10 * 100, Clients: 32, Load: true, LWW: true, Seed: 1, HTTPTimeout: 10 * time.Second}
}

// Validate reports a configuration error.
func (c YCSBConfig) Validate() error {
	switch {
	case len(c.Addrs) == 0:
		return errors.New("bench: no node addresses")
	case c.Workload.Name == "":
		return errors.New("bench: no workload")
	case c.Clients <= 0 || c.Records <= 0 || c.Operations < 0:
		return errors.New("bench: clients and records must be positive")
	case c.RecordBytes < 0:
		return errors.New("bench: record size must not be negative")
	case c.Bucket == "":
		return errors.New("bench: no bucket")
	}
	return nil
}

// ErrLoadFailed is returned, with the report of the load phase, when every insert of the
// load phase failed: the run phase would only count errors.
var ErrLoadFailed = errors.New("bench: every insert of the load phase failed")

// Store is what a YCSB run needs of the cluster, one per node: reads with their causal
// context, and writes that pass one ("" = a blind write). Safe for concurrent use.
type Store interface {
	Get(ctx context.Context, key string) (found bool, causal string, err error)
	Put(ctx context.Context, key string, value []byte, causal string) error
	// Scan reads up to n keys from key's position in the store's order (workload e), and
	// says how many it read.
	Scan(ctx context.Context, key string, n int) (int, error)
}

// clientStore is a Store over the public Go client.
type clientStore struct {
	c      *client.Client
	bucket string
	q      client.Quorum
}

func (s clientStore) Get(ctx context.Context, key string) (bool, string, error) {
	obj, err := s.c.Get(ctx, s.bucket, key, s.q)
	if err != nil {
		return false, "", err
	}
	return obj.Found, obj.Context, nil
}

func (s clientStore) Put(ctx context.Context, key string, value []byte, causal string) error {
	_, err := s.c.Put(ctx, s.bucket, key, value, causal, s.q)
	return err
}

// Scan is one listing page of n keys starting at key's store position (a cursor made
// here: the store's order is by key hash, core.DataKey).
func (s clientStore) Scan(ctx context.Context, key string, n int) (int, error) {
	cursor := base64.RawURLEncoding.EncodeToString(core.DataKey(s.bucket, key))
	p, err := s.c.Keys(ctx, s.bucket, client.KeysOptions{Cursor: cursor, Limit: n, R: s.q.R})
	return len(p.Keys), err
}

// OpReport is one op type's figures in a phase. Latencies are in microseconds, from an
// HDR histogram (3 significant digits) of the ops that completed; errors are counted
// apart and not in the percentiles.
type OpReport struct {
	Op       string  `json:"op"`
	Ops      int64   `json:"ops"` // completed + errors
	Errors   int64   `json:"errors"`
	NotFound int64   `json:"not_found"` // reads that found no value (completed)
	OpsPerS  float64 `json:"ops_per_s"`
	MeanUS   float64 `json:"mean_us"`
	P50US    int64   `json:"p50_us"`
	P95US    int64   `json:"p95_us"`
	P99US    int64   `json:"p99_us"`
	P999US   int64   `json:"p999_us"`
	MaxUS    int64   `json:"max_us"`
}

// PhaseReport is one phase (load or run): each op type that occurred, in YCSB's op
// order, and their sum.
type PhaseReport struct {
	Phase      string     `json:"phase"`
	ElapsedS   float64    `json:"elapsed_s"`
	ByOp       []OpReport `json:"by_op"`
	Total      OpReport   `json:"total"`
	FirstError string     `json:"first_error,omitempty"`
}

// YCSBReport is the outcome of RunYCSB.
type YCSBReport struct {
	Workload     string             `json:"workload"`
	Mix          map[string]float64 `json:"mix"`
	Distribution Distribution       `json:"request_distribution"`
	Records      int64              `json:"records"`
	Operations   int64              `json:"operations"`
	RecordBytes  int                `json:"record_bytes"`
	Clients      int                `json:"clients"`
	Nodes        int                `json:"nodes"`
	Bucket       string             `json:"bucket"`
	Seed         uint64             `json:"seed"`
	Load         *PhaseReport       `json:"load"` // nil when the load phase was skipped
	Run          PhaseReport        `json:"run"`
}

// RunYCSB sets up the bucket (cfg.LWW), runs the load phase (cfg.Load) and then the run
// phase against the nodes' HTTP APIs. A cancelled ctx stops it with ctx's error; failed
// ops are counted, not returned, except that a load phase whose every insert failed
// stops the run with ErrLoadFailed.
func RunYCSB(ctx context.Context, cfg YCSBConfig) (*YCSBReport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConns: cfg.Clients * 2, MaxIdleConnsPerHost: cfg.Clients, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var clients []*client.Client
	var stores []Store
	for _, a := range cfg.Addrs {
		c := client.New(a, client.WithHTTPClient(hc), client.WithTimeout(cfg.HTTPTimeout))
		clients = append(clients, c)
		stores = append(stores, clientStore{c: c, bucket: cfg.Bucket, q: client.Quorum{R: cfg.R, W: cfg.W}})
	}
	if cfg.LWW {
		if err := setLWW(ctx, clients, cfg.Bucket); err != nil {
			return nil, err
		}
	}
	return runYCSB(ctx, cfg, stores)
}

// setLWW makes bucket a last-write-wins bucket and waits until every node says so (bucket
// properties travel by gossip).
func setLWW(ctx context.Context, clients []*client.Client, bucket string) error {
	lww := "lww"
	if _, err := clients[0].SetBucket(ctx, bucket, client.BucketProps{Conflict: &lww}); err != nil {
		return fmt.Errorf("bench: set bucket %s to lww: %w", bucket, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, c := range clients {
		for {
			p, err := c.GetBucket(ctx, bucket)
			if err == nil && p.Conflict != nil && *p.Conflict == lww {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("bench: waiting for bucket %s: %w", bucket, ctx.Err())
			}
			if time.Now().After(deadline) {
				if err != nil {
					return fmt.Errorf("bench: node %s does not see bucket %s as lww after 15 s: %w", c.Addr(), bucket, err)
				}
				return fmt.Errorf("bench: node %s does not see bucket %s as lww after 15 s", c.Addr(), bucket)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// runYCSB runs the phases over stores (client goroutine i uses stores[i mod len]).
func runYCSB(ctx context.Context, cfg YCSBConfig, stores []Store) (*YCSBReport, error) {
	rep := &YCSBReport{Workload: cfg.Workload.Name, Mix: map[string]float64{}, Distribution: cfg.Workload.Distribution,
		Records: cfg.Records, Operations: cfg.Operations, RecordBytes: cfg.RecordBytes, Clients: cfg.Clients,
		Nodes: len(stores), Bucket: cfg.Bucket, Seed: cfg.Seed}
	for op, p := range cfg.Workload.Mix {
		if p > 0 {
			rep.Mix[Op(op).String()] = p
		}
	}
	ack := NewAckCounter(cfg.Records)
	if cfg.Load {
		// The load phase inserts record n as op n, like YCSB's load with insertorder=hashed.
		load, err := runPhase(ctx, cfg, stores, "load", cfg.Records, func(w *worker, n int64) (Op, outcome) {
			return OpInsert, w.put(ctx, cfg.Prefix+KeyName(n))
		})
		if err != nil {
			return nil, err
		}
		rep.Load = &load
		if load.Total.Ops > 0 && load.Total.Errors == load.Total.Ops {
			return rep, fmt.Errorf("%w; the first error: %s", ErrLoadFailed, load.FirstError)
		}
	}
	// YCSB sizes the scrambled Zipfian for the keys expected to exist by the end (twice
	// the expected inserts), and redraws a key not yet inserted.
	insertShare := cfg.Workload.Mix[OpInsert] / sumMix(cfg.Workload.Mix)
	zipfMax := cfg.Records + int64(float64(cfg.Operations)*insertShare*2)
	run, err := runPhase(ctx, cfg, stores, "run", cfg.Operations, func(w *worker, _ int64) (Op, outcome) {
		if w.keys == nil {
			if cfg.Workload.Distribution == DistLatest {
				l := NewLatest(ack)
				w.keys = l.Next
			} else {
				z := NewScrambledZipfian(0, zipfMax)
				w.keys = func(r *rand.Rand) int64 {
					for {
						if k := z.Next(r); k <= ack.Last() {
							return k
						}
					}
				}
			}
		}
		op := cfg.Workload.Choose(w.r)
		switch op {
		case OpInsert:
			n := ack.Next()
			defer ack.Ack(n) // YCSB acknowledges a failed insert too
			return op, w.put(ctx, cfg.Prefix+KeyName(n))
		case OpUpdate:
			return op, w.put(ctx, cfg.Prefix+KeyName(w.keys(w.r)))
		case OpScan:
			key, n := cfg.Prefix+KeyName(w.keys(w.r)), 1+w.r.IntN(MaxScanLength)
			return op, timed(func() (bool, error) {
				got, err := w.store.Scan(ctx, key, n)
				return got > 0, err
			})
		case OpReadModifyWrite:
			key, v := cfg.Prefix+KeyName(w.keys(w.r)), w.value()
			return op, timed(func() (bool, error) {
				found, causal, err := w.store.Get(ctx, key)
				if err != nil {
					return false, err
				}
				return found, w.store.Put(ctx, key, v, causal)
			})
		default:
			key := cfg.Prefix + KeyName(w.keys(w.r))
			return OpRead, timed(func() (bool, error) {
				found, _, err := w.store.Get(ctx, key)
				return found, err
			})
		}
	})
	if err != nil {
		return nil, err
	}
	rep.Run = run
	return rep, nil
}

func sumMix(m [numOps]float64) float64 {
	s := 0.0
	for _, p := range m {
		s += p
	}
	return s
}

// worker is one client goroutine's state.
type worker struct {
	store Store
	r     *rand.Rand
	keys  func(*rand.Rand) int64 // the request distribution, made on first use
	size  int
}

// outcome is one op's: its latency counts the store calls only, not drawing the key or
// making the value (YCSB times the database calls).
type outcome struct {
	err      error
	notFound bool
	lat      time.Duration
}

// timed runs the store calls of one op; found false is a read that found no value.
func timed(f func() (found bool, err error)) outcome {
	t0 := time.Now()
	found, err := f()
	return outcome{err: err, notFound: err == nil && !found, lat: time.Since(t0)}
}

// value makes a record of random printable bytes, as YCSB's RandomByteIterator does.
func (w *worker) value() []byte {
	v := make([]byte, w.size)
	for i := 0; i < len(v); i += 8 {
		x := w.r.Uint64()
		for j := i; j < min(i+8, len(v)); j++ {
			v[j] = ' ' + byte(x%95)
			x /= 95
		}
	}
	return v
}

// put writes a fresh record blindly (no causal context).
func (w *worker) put(ctx context.Context, key string) outcome {
	v := w.value()
	return timed(func() (bool, error) { return true, w.store.Put(ctx, key, v, "") })
}

// opStats accumulates one op type's outcomes over all workers of a phase.
type opStats struct {
	mu       sync.Mutex
	hist     *hdrhistogram.Histogram
	ops      int64
	errors   int64
	notFound int64
}

// maxLatencyUS is the highest latency the histograms hold; slower ops count as this.
const maxLatencyUS = int64(10 * time.Minute / time.Microsecond)

func (s *opStats) record(o outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops++
	if o.err != nil {
		s.errors++
		return
	}
	if o.notFound {
		s.notFound++
	}
	if s.hist == nil {
		s.hist = hdrhistogram.New(1, maxLatencyUS, 3)
	}
	us := min(max(o.lat.Microseconds(), 1), maxLatencyUS)
	_ = s.hist.RecordValue(us) // within the trackable range by the clamp above
}

// runPhase runs total ops over cfg.Clients workers; do performs op number n.
func runPhase(ctx context.Context, cfg YCSBConfig, stores []Store, phase string, total int64,
	do func(w *worker, n int64) (Op, outcome)) (PhaseReport, error) {
	var stats [numOps]opStats
	var next, done atomic.Int64
	var firstErr atomic.Pointer[error]
	label := fmt.Sprintf("%s %s", phase, cfg.Workload.Name)
	stop := rateProgress(cfg.Progress, cfg.ProgressLines, label, total, &done)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range cfg.Clients {
		w := &worker{store: stores[c%len(stores)], size: cfg.RecordBytes,
			r: rand.New(rand.NewPCG(cfg.Seed, uint64(c)<<1|phaseBit(phase)))}
		wg.Go(func() {
			for ctx.Err() == nil {
				n := next.Add(1) - 1
				if n >= total {
					return
				}
				op, o := do(w, n)
				if o.err != nil && ctx.Err() != nil {
					return // cancelled mid-op: not a failure of the store
				}
				stats[op].record(o)
				if o.err != nil {
					firstErr.CompareAndSwap(nil, &o.err)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	if err := ctx.Err(); err != nil {
		return PhaseReport{}, fmt.Errorf("bench: %s phase: %w", phase, err)
	}
	rep := PhaseReport{Phase: phase, ElapsedS: elapsed.Seconds()}
	all := hdrhistogram.New(1, maxLatencyUS, 3)
	for op := range stats {
		s := &stats[op]
		if s.ops == 0 {
			continue
		}
		rep.ByOp = append(rep.ByOp, opReport(Op(op).String(), s, elapsed))
		rep.Total.Ops += s.ops
		rep.Total.Errors += s.errors
		rep.Total.NotFound += s.notFound
		if s.hist != nil {
			all.Merge(s.hist)
		}
	}
	tot := opStats{hist: all, ops: rep.Total.Ops, errors: rep.Total.Errors, notFound: rep.Total.NotFound}
	rep.Total = opReport("total", &tot, elapsed)
	if e := firstErr.Load(); e != nil {
		rep.FirstError = (*e).Error()
	}
	return rep, nil
}

func phaseBit(phase string) uint64 {
	if phase == "load" {
		return 1
	}
	return 0
}

func opReport(name string, s *opStats, elapsed time.Duration) OpReport {
	r := OpReport{Op: name, Ops: s.ops, Errors: s.errors, NotFound: s.notFound}
	if elapsed > 0 {
		r.OpsPerS = float64(s.ops) / elapsed.Seconds()
	}
	if s.hist != nil && s.hist.TotalCount() > 0 {
		v := s.hist.ValueAtPercentiles([]float64{50, 95, 99, 99.9})
		r.MeanUS = s.hist.Mean()
		r.P50US, r.P95US, r.P99US, r.P999US = v[50], v[95], v[99], v[99.9]
		r.MaxUS = s.hist.Max()
	}
	return r
}

// WriteText writes the report as a table, one row per phase and op type.
func (r *YCSBReport) WriteText(w io.Writer) {
	desc := string(r.Distribution)
	if wl, err := LookupWorkload(r.Workload); err == nil {
		desc = wl.String()
	}
	fmt.Fprintf(w, "YCSB workload %s (%s): %d records of %d bytes, %d operations, %d clients over %d nodes, bucket %s\n",
		r.Workload, desc, r.Records, r.RecordBytes, r.Operations, r.Clients, r.Nodes, r.Bucket)
	fmt.Fprintf(w, "%-5s %-17s %9s %7s %9s %10s %9s %9s %9s %9s %9s\n",
		"phase", "op", "ops", "errors", "not found", "ops/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms")
	row := func(phase string, o OpReport) {
		label := o.Op
		if label == "total" {
			label = "TOTAL"
		} else {
			label = opLabel(o.Op)
		}
		fmt.Fprintf(w, "%-5s %-17s %9d %7d %9d %10.0f %9.3f %9.3f %9.3f %9.3f %9.3f\n",
			phase, label, o.Ops, o.Errors, o.NotFound, o.OpsPerS,
			usToMS(o.P50US), usToMS(o.P95US), usToMS(o.P99US), usToMS(o.P999US), usToMS(o.MaxUS))
	}
	for _, p := range []*PhaseReport{r.Load, &r.Run} {
		if p == nil {
			continue
		}
		for _, o := range p.ByOp {
			row(p.Phase, o)
		}
		row(p.Phase, p.Total)
	}
	for _, p := range []*PhaseReport{r.Load, &r.Run} {
		if p != nil && p.FirstError != "" {
			fmt.Fprintf(w, "%s: %d errors, the first: %s\n", p.Phase, p.Total.Errors, p.FirstError)
		}
	}
}

func usToMS(us int64) float64 { return float64(us) / 1000 }

func opLabel(name string) string {
	for op := range numOps {
		if op.String() == name {
			return op.Label()
		}
	}
	return name
}
