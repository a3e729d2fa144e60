package api_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRESPScan: SCAN (with MATCH, COUNT, TYPE) visits every key exactly once across calls,
// each through another node; KEYS and DBSIZE agree; deleted and expired keys are left out;
// bad arguments answer Redis's errors.
func TestRESPScan(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	ctx := context.Background()
	cls := make([]*redis.Client, len(rs))
	for i, r := range rs {
		cls[i] = redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
		defer cls[i].Close()
	}
	c := cls[0]
	var want []string
	for i := range 150 {
		k := fmt.Sprintf("user:%03d", i)
		if err := cls[i%3].Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		want = append(want, k)
	}
	for i := range 20 {
		c.SAdd(ctx, fmt.Sprintf("set:%02d", i), "m")
	}
	c.Incr(ctx, "counter")
	c.Set(ctx, "gone", "x", 0)
	c.Del(ctx, "gone")
	c.SAdd(ctx, "emptied", "m")
	c.SRem(ctx, "emptied", "m")

	// A full iteration, COUNT 7, every call through another node.
	seen := map[string]int{}
	var cursor uint64
	calls := 0
	for {
		keys, next, err := cls[calls%3].Scan(ctx, cursor, "user:*", 7).Result()
		if err != nil {
			t.Fatalf("SCAN %d: %v", cursor, err)
		}
		for _, k := range keys {
			seen[k]++
		}
		calls++
		if next == 0 {
			break
		}
		cursor = next
	}
	for _, k := range want {
		if seen[k] != 1 {
			t.Errorf("SCAN returned %s %d times", k, seen[k])
		}
	}
	if len(seen) != len(want) || calls < 150/7/2 {
		t.Fatalf("SCAN MATCH user:* found %d keys in %d calls, want %d", len(seen), calls, len(want))
	}
	// go-redis's iterator, with TYPE.
	var sets []string
	it := cls[1].ScanType(ctx, 0, "", 5, "set").Iterator()
	for it.Next(ctx) {
		sets = append(sets, it.Val())
	}
	if err := it.Err(); err != nil || len(sets) != 20 {
		t.Fatalf("SCAN TYPE set: %d keys %v, %v", len(sets), sets, err)
	}
	keys, err := cls[2].Keys(ctx, "*").Result()
	if err != nil || len(keys) != 150+20+1 || slices.Contains(keys, "gone") || slices.Contains(keys, "emptied") {
		t.Fatalf("KEYS *: %d keys, %v", len(keys), err)
	}
	keys, err = c.Keys(ctx, "user:1[0-4]?").Result()
	slices.Sort(keys)
	if err != nil || len(keys) != 50 || keys[0] != "user:100" || keys[49] != "user:149" {
		t.Fatalf("KEYS user:1[0-4]?: %v, %v", keys, err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 171 {
		t.Fatalf("DBSIZE = %d, %v; want 171 (exact below the sample size)", n, err)
	}

	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"SCAN", "x"}, "ERR invalid cursor"},
		{[]any{"SCAN", "-1"}, "ERR invalid cursor"},
		{[]any{"SCAN", "99999999999"}, "ERR invalid cursor"},
		{[]any{"SCAN", "0", "COUNT", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"SCAN", "0", "COUNT", "0"}, "ERR syntax error"},
		{[]any{"SCAN", "0", "MATCH"}, "ERR syntax error"},
		{[]any{"SCAN", "0", "FOO", "1"}, "ERR syntax error"},
		{[]any{"KEYS"}, "ERR wrong number of arguments for 'keys' command"},
		{[]any{"DBSIZE", "x"}, "ERR wrong number of arguments for 'dbsize' command"},
	} {
		if err := c.Do(ctx, tc.args...).Err(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestRESPScanRedisCLI: redis-cli --scan and KEYS, as an operator would run them.
func TestRESPScanRedisCLI(t *testing.T) {
	cli := needTool(t, "redis-cli", "redis-tools")
	_, rs := startRESPCluster(t, 3)
	_, port, _ := net.SplitHostPort(rs[0].Addr())
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[1].Addr(), MaxRetries: -1})
	defer c.Close()
	for i := range 40 {
		c.Set(ctx, fmt.Sprintf("k%02d", i), "v", 0)
	}
	c.Set(ctx, "other", "v", 0)
	out, err := exec.Command(cli, "-p", port, "--scan", "--pattern", "k*").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --scan: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	slices.Sort(got)
	if len(got) != 40 || got[0] != "k00" || got[39] != "k39" {
		t.Fatalf("redis-cli --scan --pattern k*: %d keys %v", len(got), got)
	}
	out, err = exec.Command(cli, "-p", port, "DBSIZE").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "41" {
		t.Fatalf("redis-cli DBSIZE: %q %v", out, err)
	}
	out, err = exec.Command(cli, "-p", port, "KEYS", "oth*").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "other" {
		t.Fatalf("redis-cli KEYS oth*: %q %v", out, err)
	}
}

// TestRESPDBSizeEstimate: past its sample DBSIZE extrapolates from the partitions it read;
// keys spread evenly over partitions, so it lands near the true count.
func TestRESPDBSizeEstimate(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1})
	defer c.Close()
	const keys = 6000
	for b := 0; b < keys; b += 500 {
		p := c.Pipeline()
		for i := b; i < b+500; i++ {
			p.Set(ctx, fmt.Sprintf("e%05d", i), "v", 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.DBSize(ctx).Result()
	if err != nil || n < keys*8/10 || n > keys*12/10 {
		t.Fatalf("DBSIZE = %d, %v; want within 20%% of %d", n, err, keys)
	}
	t.Logf("DBSIZE estimates %d keys of %d", n, keys)
}
