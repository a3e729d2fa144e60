package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisPipelineThroughAKill: pipelines of SETs, INCRs and HSETs through one node's
// Redis port while another node is killed with SIGKILL and restarted. Every pipeline is
// answered in order, every command acknowledged with OK stays readable (through every
// node, after the restart too), and the counters and hashes add up exactly.
func TestRedisPipelineThroughAKill(t *testing.T) {
	if secureMode {
		t.Skip("the Redis front end's TLS and AUTH are covered in internal/api; this test runs the open cluster")
	}
	c := startClusterMode(t, 3, false)
	ctx := context.Background()
	rdb := func(p *proc) *redis.Client {
		cl := redis.NewClient(&redis.Options{Addr: p.resp, MaxRetries: -1, ReadTimeout: 10 * time.Second})
		t.Cleanup(func() { _ = cl.Close() })
		return cl
	}
	n1 := rdb(c.node("n1"))
	acked := map[string]string{}
	incrs := 0
	fields := map[string]string{}
	batch := func(b int) {
		t.Helper()
		pipe := n1.Pipeline()
		sets := make([]*redis.StatusCmd, 0, 200)
		for i := range 200 {
			k := fmt.Sprintf("k%d.%d", b, i)
			sets = append(sets, pipe.Set(ctx, k, fmt.Sprintf("v%d.%d", b, i), 0))
		}
		incr := pipe.IncrBy(ctx, "counter", 3)
		hset := pipe.HSet(ctx, "hash", fmt.Sprint("f", b), fmt.Sprint(b))
		get := pipe.Get(ctx, fmt.Sprintf("k%d.%d", b, 199))
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("pipeline %d: %v", b, err)
		}
		for i, s := range sets {
			if s.Val() != "OK" {
				t.Fatalf("pipeline %d: SET %d answered %q", b, i, s.Val())
			}
			acked[fmt.Sprintf("k%d.%d", b, i)] = fmt.Sprintf("v%d.%d", b, i)
		}
		incrs++
		if incr.Val() != int64(3*incrs) {
			t.Fatalf("pipeline %d: INCRBY answered %d, want %d", b, incr.Val(), 3*incrs)
		}
		if hset.Val() != 1 {
			t.Fatalf("pipeline %d: HSET answered %d, want 1", b, hset.Val())
		}
		fields[fmt.Sprint("f", b)] = fmt.Sprint(b)
		if want := fmt.Sprintf("v%d.%d", b, 199); get.Val() != want {
			t.Fatalf("pipeline %d: GET after the SET in the same pipeline = %q, want %q", b, get.Val(), want)
		}
	}
	for b := range 5 {
		batch(b)
	}
	n3 := c.node("n3")
	killed := make(chan struct{})
	go func() { // while a pipeline runs
		defer close(killed)
		n3.kill()
	}()
	for b := 5; b < 10; b++ { // n1 and n2 make W=2; reads at R=2 too
		batch(b)
	}
	<-killed
	n3.start()
	c.waitAlive(3)
	for b := 10; b < 12; b++ {
		batch(b)
	}
	for _, p := range c.procs {
		cl := rdb(p)
		pipe := cl.Pipeline()
		gets := map[string]*redis.StringCmd{}
		for k := range acked {
			gets[k] = pipe.Get(ctx, k)
		}
		counter := pipe.Get(ctx, "counter")
		all := pipe.HGetAll(ctx, "hash")
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("reading back through %s: %v", p.id, err)
		}
		for k, want := range acked {
			if got := gets[k].Val(); got != want {
				t.Fatalf("GET %s through %s = %q, want %q (acknowledged)", k, p.id, got, want)
			}
		}
		if got := counter.Val(); got != fmt.Sprint(3*incrs) {
			t.Fatalf("counter through %s = %s, want %d", p.id, got, 3*incrs)
		}
		if got := all.Val(); fmt.Sprint(got) != fmt.Sprint(fields) {
			t.Fatalf("HGETALL through %s = %v, want %v", p.id, got, fields)
		}
	}
}
