package api_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRESPExpiryGoRedis: SET EX/PX/KEEPTTL, SETEX, PSETEX, EXPIRE (with NX/XX/GT/LT),
// PEXPIRE, TTL, PTTL and PERSIST through go-redis, across nodes; bad arguments answer
// Redis's errors and change nothing.
func TestRESPExpiryGoRedis(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1})
	defer c.Close()
	other := redis.NewClient(&redis.Options{Addr: rs[1].Addr(), MaxRetries: -1})
	defer other.Close()
	ttlIn := func(what string, got time.Duration, err error, lo, hi time.Duration) {
		t.Helper()
		if err != nil || got < lo || got > hi {
			t.Fatalf("%s = %v, %v; want %v..%v", what, got, err, lo, hi)
		}
	}
	intIs := func(what string, got int64, err error, want int64) {
		t.Helper()
		if err != nil || got != want {
			t.Fatalf("%s = %d, %v; want %d", what, got, err, want)
		}
	}
	errIs := func(what string, err error, prefix string) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), prefix) {
			t.Fatalf("%s: err %v, want %q...", what, err, prefix)
		}
	}

	if err := c.Set(ctx, "s", "v", 100*time.Second).Err(); err != nil { // SET s v EX 100
		t.Fatal(err)
	}
	d, err := other.TTL(ctx, "s").Result()
	ttlIn("TTL after SET EX 100", d, err, 99*time.Second, 100*time.Second)
	d, err = other.PTTL(ctx, "s").Result()
	ttlIn("PTTL", d, err, 98*time.Second, 100*time.Second)
	if err := c.Set(ctx, "s", "w", 5*time.Millisecond*1000).Err(); err != nil { // SET s w PX 5000
		t.Fatal(err)
	}
	d, err = other.PTTL(ctx, "s").Result()
	ttlIn("PTTL after SET PX 5000", d, err, 4*time.Second, 5*time.Second)
	// SET KEEPTTL keeps it; a plain SET drops it.
	if err := c.SetArgs(ctx, "s", "x", redis.SetArgs{KeepTTL: true}).Err(); err != nil {
		t.Fatal(err)
	}
	d, err = other.PTTL(ctx, "s").Result()
	ttlIn("PTTL after SET KEEPTTL", d, err, 3*time.Second, 5*time.Second)
	c.Set(ctx, "s", "y", 0)
	d, err = other.TTL(ctx, "s").Result()
	ttlIn("TTL after a plain SET", d, err, -1, -1)
	d, err = other.TTL(ctx, "absent").Result()
	ttlIn("TTL of an absent key", d, err, -2, -2)

	// EXPIRE and its conditions; INCR keeps a counter's TTL; PERSIST removes it.
	c.Incr(ctx, "ctr")
	ok, err := c.Expire(ctx, "ctr", 50*time.Second).Result()
	if err != nil || !ok {
		t.Fatalf("EXPIRE ctr 50 = %v, %v", ok, err)
	}
	c.Incr(ctx, "ctr")
	d, err = other.TTL(ctx, "ctr").Result()
	ttlIn("TTL after EXPIRE and INCR", d, err, 49*time.Second, 50*time.Second)
	for _, tc := range []struct {
		what string
		run  func() (bool, error)
		want bool
	}{
		{"EXPIRE NX with a TTL", func() (bool, error) { return c.ExpireNX(ctx, "ctr", time.Hour).Result() }, false},
		{"EXPIRE XX with a TTL", func() (bool, error) { return c.ExpireXX(ctx, "ctr", 60*time.Second).Result() }, true},
		{"EXPIRE GT shorter", func() (bool, error) { return c.ExpireGT(ctx, "ctr", 10*time.Second).Result() }, false},
		{"EXPIRE LT shorter", func() (bool, error) { return c.ExpireLT(ctx, "ctr", 40*time.Second).Result() }, true},
		{"EXPIRE absent", func() (bool, error) { return c.Expire(ctx, "absent", time.Hour).Result() }, false},
		{"PEXPIRE", func() (bool, error) { return c.PExpire(ctx, "ctr", 30*time.Second).Result() }, true},
		{"PERSIST", func() (bool, error) { return c.Persist(ctx, "ctr").Result() }, true},
		{"PERSIST again", func() (bool, error) { return c.Persist(ctx, "ctr").Result() }, false},
		{"EXPIRE NX without a TTL", func() (bool, error) { return c.ExpireNX(ctx, "ctr", time.Hour).Result() }, true},
	} {
		got, err := tc.run()
		if err != nil || got != tc.want {
			t.Fatalf("%s = %v, %v; want %v", tc.what, got, err, tc.want)
		}
	}
	d, err = other.TTL(ctx, "ctr").Result()
	ttlIn("TTL after EXPIRE NX 3600", d, err, 3599*time.Second, 3600*time.Second)
	n, err := other.Get(ctx, "ctr").Int64()
	intIs("the counter through it all", n, err, 2)

	// A TTL runs out: the key is gone on every node, and INCR starts again from 0.
	c.SetEx(ctx, "brief", "b", time.Second)
	c.Do(ctx, "PSETEX", "briefer", "300", "b")
	c.Do(ctx, "PEXPIRE", "ctr", "300")
	waitFor(t, 5*time.Second, "the keys to expire", func() bool {
		for _, k := range []string{"brief", "briefer", "ctr"} {
			if err := other.Get(ctx, k).Err(); !errors.Is(err, redis.Nil) {
				return false
			}
		}
		return true
	})
	n, err = c.Exists(ctx, "brief", "briefer", "ctr").Result()
	intIs("EXISTS of expired keys", n, err, 0)
	n, err = c.Incr(ctx, "ctr").Result()
	intIs("INCR after expiry", n, err, 1)
	// EXPIRE with a TTL <= 0 deletes, as in Redis.
	c.Set(ctx, "gone", "g", 0)
	ok, err = c.Expire(ctx, "gone", -time.Second).Result()
	if err != nil || !ok {
		t.Fatalf("EXPIRE gone -1 = %v, %v", ok, err)
	}
	if err := other.Get(ctx, "gone").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after EXPIRE -1: %v, want nil", err)
	}

	// Bad arguments: Redis's errors, nothing written.
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"SET", "bad", "v", "EX", "0"}, "ERR invalid expire time in 'set' command"},
		{[]any{"SET", "bad", "v", "EX", "-5"}, "ERR invalid expire time in 'set' command"},
		{[]any{"SET", "bad", "v", "EX", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"SET", "bad", "v", "EX"}, "ERR syntax error"},
		{[]any{"SET", "bad", "v", "EX", "5", "PX", "5000"}, "ERR syntax error"},
		{[]any{"SET", "bad", "v", "EX", "5", "KEEPTTL"}, "ERR syntax error"},
		{[]any{"SET", "bad", "v", "FOO"}, "ERR syntax error"},
		{[]any{"SET", "bad", "v", "PX", "99999999999999999"}, "ERR invalid expire time in 'set' command"},
		{[]any{"SETEX", "bad", "0", "v"}, "ERR invalid expire time in 'setex' command"},
		{[]any{"SETEX", "bad", "x", "v"}, "ERR value is not an integer or out of range"},
		{[]any{"PSETEX", "bad", "-1", "v"}, "ERR invalid expire time in 'psetex' command"},
		{[]any{"SETEX", "bad", "5"}, "ERR wrong number of arguments for 'setex' command"},
		{[]any{"EXPIRE", "s", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"EXPIRE", "s", "5", "NX", "XX"}, "ERR NX and XX, GT or LT options at the same time are not compatible"},
		{[]any{"EXPIRE", "s", "5", "GT", "LT"}, "ERR GT and LT options at the same time are not compatible"},
		{[]any{"EXPIRE", "s", "5", "SOON"}, "ERR Unsupported option SOON"},
		{[]any{"EXPIRE", "s"}, "ERR wrong number of arguments for 'expire' command"},
		{[]any{"TTL"}, "ERR wrong number of arguments for 'ttl' command"},
		{[]any{"PERSIST", "a", "b"}, "ERR wrong number of arguments for 'persist' command"},
	} {
		errIs(strings.TrimSpace(fmtArgs(tc.args)), c.Do(ctx, tc.args...).Err(), tc.want)
	}
	if err := other.Get(ctx, "bad").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("a refused SET wrote: %v", err)
	}
	d, err = other.TTL(ctx, "s").Result()
	ttlIn("TTL of s after refused EXPIREs", d, err, -1, -1)
}

func fmtArgs(args []any) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(" ")
		b.WriteString(a.(string))
	}
	return b.String()
}

// redis-cli speaks the expiry commands as an operator would type them.
const redisCLIExpiryScript = `SET k v EX 100
TTL k
PERSIST k
TTL k
EXPIRE k 50
EXPIRE k 10 GT
TTL k
SETEX s 20 v
GET s
TTL nothing
EXPIRE nothing 5
SET k v EX 0
SET k v PX 1
SET nx1 a NX
SET nx1 b NX
GET nx1
SET nx2 a XX
SETNX nx1 c
SET nx1 d XX EX 100
TTL nx1
`

const redisCLIExpiryWant = `OK
100
1
-1
1
0
50
OK
v
-2
0
ERR invalid expire time in 'set' command

OK
OK

a

0
OK
100
`

func TestRESPExpiryRedisCLI(t *testing.T) {
	cli := needTool(t, "redis-cli", "redis-tools")
	_, rs := startRESPCluster(t, 3)
	_, port, _ := net.SplitHostPort(rs[2].Addr())
	cmd := exec.Command(cli, "-h", "127.0.0.1", "-p", port)
	cmd.Stdin = strings.NewReader(redisCLIExpiryScript)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	if string(out) != redisCLIExpiryWant {
		t.Fatalf("redis-cli output:\n%s\nwant:\n%s", out, redisCLIExpiryWant)
	}
}

// TestRESPSetNXXX: SET NX writes only an absent key (nil otherwise), SET XX only a present
// one; an expired key is absent; NX with XX is a syntax error.
func TestRESPSetNXXX(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1})
	defer c.Close()
	other := redis.NewClient(&redis.Options{Addr: rs[1].Addr(), MaxRetries: -1})
	defer other.Close()
	setNX := func(cl *redis.Client, k, v string, ttl time.Duration) bool {
		t.Helper()
		ok, err := cl.SetNX(ctx, k, v, ttl).Result()
		if err != nil {
			t.Fatalf("SET %s %s NX: %v", k, v, err)
		}
		return ok
	}
	if !setNX(c, "lock", "a", 0) {
		t.Fatal("SET NX of an absent key: not set")
	}
	if setNX(other, "lock", "b", 0) {
		t.Fatal("SET NX of a present key: set")
	}
	if v, err := other.Get(ctx, "lock").Result(); err != nil || v != "a" {
		t.Fatalf("GET lock = %q, %v; want a", v, err)
	}
	if ok, err := c.SetXX(ctx, "nothing", "x", 0).Result(); err != nil || ok {
		t.Fatalf("SET XX of an absent key = %v, %v; want not set", ok, err)
	}
	if err := other.Get(ctx, "nothing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("SET XX wrote an absent key: %v", err)
	}
	if ok, err := c.SetXX(ctx, "lock", "c", 0).Result(); err != nil || !ok {
		t.Fatalf("SET XX of a present key = %v, %v; want set", ok, err)
	}
	// NX with a TTL: a lease that runs out, after which the next NX takes it.
	if !setNX(c, "lease", "holder1", 300*time.Millisecond) {
		t.Fatal("SET lease NX PX 300: not set")
	}
	if setNX(other, "lease", "holder2", time.Second) {
		t.Fatal("SET NX of a live lease: set")
	}
	waitFor(t, 5*time.Second, "the lease to expire", func() bool { return errors.Is(other.Get(ctx, "lease").Err(), redis.Nil) })
	if !setNX(other, "lease", "holder2", time.Second) {
		t.Fatal("SET NX of an expired lease: not set")
	}
	if err := c.Do(ctx, "SET", "lock", "d", "NX", "XX").Err(); err == nil || err.Error() != "ERR syntax error" {
		t.Fatalf("SET NX XX: %v, want ERR syntax error", err)
	}
	if v, _ := other.Get(ctx, "lock").Result(); v != "c" {
		t.Fatalf("GET lock after refused SET = %q, want c", v)
	}
}
