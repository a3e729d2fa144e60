package api

import (
	"context"
	"sync"
)

// Pipelined commands run on worker goroutines that outlive them.
//
// A fresh goroutine starts with a small stack, and a command's call chain (the command,
// the node's request, its wait for the loop) grows it two or three times: under
// redis-benchmark -P 16 GET, copying stacks was a tenth of the answering node's CPU and
// starting and ending goroutines another twentieth (docs/benchmarks.md). A worker keeps
// its grown stack from one command to the next.
//
// Model: a worker runs one job, then parks on its own channel, most recently parked
// first out (its stack and caches are the warmest); a job finds a parked worker or
// starts one. At most maxIdleWorkers wait parked; a worker that finds that many ends.
//
// Invariants: every worker goroutine is counted in RESP.wg; once close has run, no worker
// parks again and every parked one ends, so RESP.Close's wait ends once the running jobs
// have (their connections' contexts are cancelled by then).

// maxIdleWorkers bounds the parked workers: 50 connections pipelining 16 commands each
// keep 800 running, and a parked worker holds a few KiB of stack.
const maxIdleWorkers = 1024

// jobRun is one pipelined command for a worker.
type jobRun struct {
	p   *pipe
	ctx context.Context
	j   *job
}

type jobWorker struct{ next chan jobRun }

type jobWorkers struct {
	mu      sync.Mutex
	idle    []*jobWorker
	maxIdle int // maxIdleWorkers; set by NewRESP (tests lower it)
	closed  bool
}

// run runs the job on a parked worker, or on a new one. r.wg counts the new worker.
func (ws *jobWorkers) run(r *RESP, jr jobRun) {
	ws.mu.Lock()
	if n := len(ws.idle); n > 0 {
		w := ws.idle[n-1]
		ws.idle[n-1] = nil
		ws.idle = ws.idle[:n-1]
		ws.mu.Unlock()
		w.next <- jr // never blocks: a parked worker's channel is empty, with room for one
		return
	}
	ws.mu.Unlock()
	w := &jobWorker{next: make(chan jobRun, 1)}
	r.wg.Add(1)
	go w.loop(r, ws, jr)
}

func (w *jobWorker) loop(r *RESP, ws *jobWorkers, jr jobRun) {
	defer r.wg.Done()
	for {
		jr.p.runJob(jr.ctx, jr.j)
		jr = jobRun{} // keep nothing of the job reachable while parked
		ws.mu.Lock()
		if ws.closed || len(ws.idle) >= ws.maxIdle {
			ws.mu.Unlock()
			return
		}
		ws.idle = append(ws.idle, w)
		ws.mu.Unlock()
		var ok bool
		if jr, ok = <-w.next; !ok {
			return
		}
	}
}

// close ends the parked workers, and every other one once its job has run.
func (ws *jobWorkers) close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.closed = true
	for _, w := range ws.idle {
		close(w.next)
	}
	ws.idle = nil
}
