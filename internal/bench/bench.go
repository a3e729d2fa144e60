// Package bench is quorumkv's HTTP load generator (quorumkv bench), in two modes.
//
// Run, the put/get mode: C concurrent clients spread over the given nodes issue puts then
// gets of fixed-size values, and the run reports throughput and latency percentiles per
// operation. Every put writes a fresh key (a blind write to an existing key would add a
// sibling, and the benchmark would measure objects growing); the gets read the keys the
// puts wrote.
//
// RunYCSB, the YCSB core workloads (Cooper et al., "Benchmarking cloud serving systems
// with YCSB", SoCC 2010) as YCSB's CoreWorkload defines them, so that figures compare with
// published YCSB results: the same op mixes (workload.go), key names, and request
// distributions — the scrambled Zipfian and skewed-latest generators with YCSB's
// constants and quirks (generators.go) — a load phase inserting recordcount records, then
// operationcount ops from threadcount clients, with latency percentiles per op type from
// HDR histograms. Where a key-value store differs from YCSB's field-level model, ycsb.go
// says what it does (a record is one value; updates write all of it on an lww bucket).
// Workload e (scans) needs key listing, which quorumkv lacks yet.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a run.
type Config struct {
	Addrs      []string // HTTP host:port of the nodes; clients are spread round-robin
	Bucket     string
	Clients    int    // concurrent clients: 32 is the figure
	Requests   int    // per operation
	ValueBytes int    // 100, redis-benchmark's default is 3; 100 is the contract's figure
	Prefix     string // key prefix; the default is unique per run
	Ops        []string
	R, W       string // quorum query values; "" = bucket default
	Progress   io.Writer
	// ProgressLines writes plain progress lines every 2 s instead of redrawing one
	// terminal line ("\r" frames): for a Progress that is a file or a pipe.
	ProgressLines bool
	HTTPTimeout   time.Duration
}

// DefaultConfig: 32 clients, 20,000 requests per op, 100-byte values.
func DefaultConfig() Config {
	return Config{Bucket: "bench", Clients: 32, Requests: 20000, ValueBytes: 100,
		Ops: []string{"put", "get"}, HTTPTimeout: 10 * time.Second}
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	switch {
	case len(c.Addrs) == 0:
		return errors.New("bench: no node addresses")
	case c.Clients <= 0 || c.Requests <= 0 || c.ValueBytes < 0:
		return errors.New("bench: clients and requests must be positive")
	}
	for _, op := range c.Ops {
		if op != "put" && op != "get" {
			return fmt.Errorf("bench: unknown op %q (put, get)", op)
		}
	}
	return nil
}

// Result is one operation's figures.
type Result struct {
	Op       string        `json:"op"`
	Requests int           `json:"requests"`
	Errors   int64         `json:"errors"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	OpsPerS  float64       `json:"ops_per_s"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	P999     time.Duration `json:"p999_ns"`
}

func (r Result) String() string {
	return fmt.Sprintf("%-4s %8d req  %9.0f ops/s  p50 %7.3f ms  p99 %7.3f ms  p99.9 %7.3f ms  errors %d",
		r.Op, r.Requests, r.OpsPerS, ms(r.P50), ms(r.P99), ms(r.P999), r.Errors)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Run executes the configured operations one after the other.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// One connection per client, kept across the operations (conn.go).
	conns := make([]*conn, cfg.Clients)
	for c := range conns {
		conns[c] = newConn(cfg.Addrs[c%len(cfg.Addrs)], cfg.HTTPTimeout)
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	value := bytes.Repeat([]byte("x"), cfg.ValueBytes)
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("b%x-", time.Now().UnixNano())
	}
	var out []Result
	for _, op := range cfg.Ops {
		r, err := runOp(ctx, cfg, conns, op, value)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func runOp(ctx context.Context, cfg Config, conns []*conn, op string, value []byte) (Result, error) {
	lat := make([]time.Duration, cfg.Requests)
	var next, done, errs atomic.Int64
	var firstErr atomic.Value
	query := ""
	switch {
	case op == "put" && cfg.W != "":
		query = "?w=" + cfg.W
	case op == "get" && cfg.R != "":
		query = "?r=" + cfg.R
	}
	stopProgress := progress(cfg.Progress, cfg.ProgressLines, op, cfg.Requests, &done)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < cfg.Clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			cn := conns[c]
			base := "http://" + cn.addr + "/v1/kv/" + cfg.Bucket + "/" + cfg.Prefix
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.Requests) {
					return
				}
				url := base + strconv.FormatInt(i, 10) + query
				var req *http.Request
				if op == "put" {
					req, _ = http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(value))
				} else {
					req, _ = http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				}
				t0 := time.Now()
				status, err := cn.do(ctx, req)
				if err == nil && status >= 400 && status != http.StatusNotFound {
					err = fmt.Errorf("%s %s: status %d", op, url, status)
				}
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				done.Add(1)
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	slices.Sort(lat)
	r := Result{Op: op, Requests: cfg.Requests, Errors: errs.Load(), Elapsed: elapsed,
		OpsPerS: float64(cfg.Requests) / elapsed.Seconds(),
		P50:     pct(lat, 0.50), P99: pct(lat, 0.99), P999: pct(lat, 0.999)}
	if e, ok := firstErr.Load().(error); ok && r.Errors > 0 && cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "%s: %d errors, first: %v\n", op, r.Errors, e)
	}
	return r, nil
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// progress draws a bar on w every 200 ms until stopped.
func progress(w io.Writer, lines bool, op string, total int, done *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	every := 200 * time.Millisecond
	if lines {
		every = 2 * time.Second
	}
	return repeat(every, func(final bool) {
		d := done.Load()
		if lines {
			fmt.Fprintf(w, "%s: %d/%d\n", op, d, total)
			return
		}
		width := 30
		filled := int(int64(width) * d / int64(total))
		fmt.Fprintf(w, "\r%-4s [%s%s] %d/%d", op, strings.Repeat("#", filled), strings.Repeat(" ", width-filled), d, total)
		if final {
			fmt.Fprintln(w)
		}
	})
}

// rateProgress writes label, ops done of total, the rate since the previous line and the
// time elapsed: redrawn in place every 500 ms, or with lines one plain line every 2 s.
func rateProgress(w io.Writer, lines bool, label string, total int64, done *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	every := 500 * time.Millisecond
	if lines {
		every = 2 * time.Second
	}
	start := time.Now()
	prevT, prevD := start, int64(0)
	return repeat(every, func(final bool) {
		now, d := time.Now(), done.Load()
		rate := 0.0
		if dt := now.Sub(prevT).Seconds(); dt > 0 {
			rate = float64(d-prevD) / dt
		}
		prevT, prevD = now, d
		line := fmt.Sprintf("%s: %d/%d ops, %.0f ops/s now, %.1f s", label, d, total, rate, now.Sub(start).Seconds())
		switch {
		case lines:
			fmt.Fprintln(w, line)
		case final:
			fmt.Fprintf(w, "\r%-70s\n", line)
		default:
			fmt.Fprintf(w, "\r%-70s", line)
		}
	})
}

// repeat calls draw(false) every period from a goroutine of its own until the returned
// stop is called, which makes a last draw(true) and returns once it is done.
func repeat(every time.Duration, draw func(final bool)) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				draw(true)
				return
			case <-t.C:
				draw(false)
			}
		}
	}()
	return func() { close(quit); <-finished }
}
