package api_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/quorumkv/quorumkv/internal/node"
)

// goRedisChecks are the helpers of a scripted go-redis exchange.
type goRedisChecks struct {
	t *testing.T
}

func (g goRedisChecks) eq(what string, got, want any, err error) {
	g.t.Helper()
	if err != nil {
		g.t.Fatalf("%s: %v", what, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		g.t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func (g goRedisChecks) err(what string, err error, want string) {
	g.t.Helper()
	if err == nil || err.Error() != want {
		g.t.Fatalf("%s: err %v, want %q", what, err, want)
	}
}

func (g goRedisChecks) null(what string, err error) {
	g.t.Helper()
	if !errors.Is(err, redis.Nil) {
		g.t.Fatalf("%s: %v, want nil", what, err)
	}
}

const wrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"

func TestRESPHashGoRedis(t *testing.T) {
	_, rs := startRESPCluster(t, 3)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1})
	defer c.Close()
	other := redis.NewClient(&redis.Options{Addr: rs[2].Addr(), MaxRetries: -1})
	defer other.Close()
	g := goRedisChecks{t}

	n, err := c.HSet(ctx, "h", "a", "1", "b", "2").Result()
	g.eq("HSET a b", n, 2, err)
	n, err = c.HSet(ctx, "h", "b", "3", "c", "4", "c", "5").Result()
	g.eq("HSET b c c", n, 1, err)
	v, err := other.HGet(ctx, "h", "a").Result()
	g.eq("HGET a through another node", v, "1", err)
	_, err = c.HGet(ctx, "h", "nope").Result()
	g.null("HGET absent field", err)
	_, err = c.HGet(ctx, "nohash", "a").Result()
	g.null("HGET absent key", err)
	vals, err := c.HMGet(ctx, "h", "a", "nope", "c").Result()
	g.eq("HMGET", vals, []any{"1", nil, "5"}, err)
	all, err := other.HGetAll(ctx, "h").Result()
	g.eq("HGETALL", all, map[string]string{"a": "1", "b": "3", "c": "5"}, err)
	n, err = c.HLen(ctx, "h").Result()
	g.eq("HLEN", n, 3, err)
	ok, err := c.HExists(ctx, "h", "b").Result()
	g.eq("HEXISTS b", ok, true, err)
	ok, err = c.HExists(ctx, "h", "z").Result()
	g.eq("HEXISTS z", ok, false, err)

	// Counter fields.
	n, err = c.HIncrBy(ctx, "h", "n", 5).Result()
	g.eq("HINCRBY n 5", n, 5, err)
	n, err = c.HIncrBy(ctx, "h", "n", -7).Result()
	g.eq("HINCRBY n -7", n, -2, err)
	v, err = other.HGet(ctx, "h", "n").Result()
	g.eq("HGET counter field", v, "-2", err)
	g.err("HINCRBY of a string field", c.HIncrBy(ctx, "h", "a", 1).Err(), "ERR hash value is not an integer")
	g.err("HINCRBY not a number", c.Do(ctx, "HINCRBY", "h", "n", "x").Err(), "ERR value is not an integer or out of range")
	n, err = c.HSet(ctx, "h", "n", "text").Result()
	g.eq("HSET over a counter field", n, 0, err)
	v, err = c.HGet(ctx, "h", "n").Result()
	g.eq("HGET after HSET over a counter", v, "text", err)

	// HDEL, HKEYS, HVALS, HSETNX, HMSET.
	n, err = c.HDel(ctx, "h", "a", "nope", "a").Result()
	g.eq("HDEL a nope a", n, 1, err)
	keys, err := other.HKeys(ctx, "h").Result()
	g.eq("HKEYS", keys, []string{"b", "c", "n"}, err)
	hv, err := c.HVals(ctx, "h").Result()
	g.eq("HVALS", hv, []string{"3", "5", "text"}, err)
	ok, err = c.HSetNX(ctx, "h", "b", "z").Result()
	g.eq("HSETNX existing", ok, false, err)
	ok, err = c.HSetNX(ctx, "h", "d", "z").Result()
	g.eq("HSETNX new", ok, true, err)
	ok, err = c.HMSet(ctx, "h", "e", "6").Result()
	g.eq("HMSET", ok, true, err)
	typ, err := c.Type(ctx, "h").Result()
	g.eq("TYPE hash", typ, "hash", err)

	// Bad arguments answer errors and change nothing.
	before, _ := c.HGetAll(ctx, "h").Result()
	g.err("HSET odd", c.Do(ctx, "HSET", "h", "a", "1", "b").Err(), "ERR wrong number of arguments for 'hset' command")
	g.err("HSET no value", c.Do(ctx, "HSET", "h", "a").Err(), "ERR wrong number of arguments for 'hset' command")
	g.err("HGET arity", c.Do(ctx, "HGET", "h").Err(), "ERR wrong number of arguments for 'hget' command")
	g.err("HINCRBY a string field", c.HIncrBy(ctx, "h", "b", 1).Err(), "ERR hash value is not an integer")
	after, _ := c.HGetAll(ctx, "h").Result()
	g.eq("HGETALL after refused commands", after, before, nil)

	// One type per key.
	c.Set(ctx, "str", "v", 0)
	c.SAdd(ctx, "set", "m")
	g.err("HSET on a string", c.HSet(ctx, "str", "f", "v").Err(), wrongType)
	g.err("HGET on a set", c.HGet(ctx, "set", "f").Err(), wrongType)
	g.err("HINCRBY on a string", c.HIncrBy(ctx, "str", "f", 1).Err(), wrongType)
	g.err("GET on a hash", c.Get(ctx, "h").Err(), wrongType)
	g.err("SADD on a hash", c.SAdd(ctx, "h", "m").Err(), wrongType)
	g.err("INCR on a hash", c.Incr(ctx, "h").Err(), wrongType)
	vals, err = c.MGet(ctx, "h", "str").Result()
	g.eq("MGET hash string", vals, []any{nil, "v"}, err)
	v, err = c.Set(ctx, "h2", "x", 0).Result()
	g.eq("SET over a hash", v, "OK", err)

	// A hash whose every field is deleted does not exist.
	c.HSet(ctx, "gone", "f", "v")
	n, err = c.HDel(ctx, "gone", "f").Result()
	g.eq("HDEL last field", n, 1, err)
	n, err = c.Exists(ctx, "gone").Result()
	g.eq("EXISTS emptied hash", n, 0, err)
	typ, err = c.Type(ctx, "gone").Result()
	g.eq("TYPE emptied hash", typ, "none", err)
	all, err = c.HGetAll(ctx, "gone").Result()
	g.eq("HGETALL emptied hash", all, map[string]string{}, err)

	// Expiry and deletion work on hashes as on any key.
	ok, err = c.Expire(ctx, "h", time.Hour).Result()
	g.eq("EXPIRE hash", ok, true, err)
	ttl, err := c.TTL(ctx, "h").Result()
	if err != nil || ttl < 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL of a hash = %v, %v", ttl, err)
	}
	n, err = c.HIncrBy(ctx, "h", "n2", 1).Result()
	g.eq("HINCRBY keeps the expiry", n, 1, err)
	if ttl, _ = c.TTL(ctx, "h").Result(); ttl < 59*time.Minute {
		t.Fatalf("TTL after HINCRBY = %v", ttl)
	}
	n, err = c.Del(ctx, "h").Result()
	g.eq("DEL hash", n, 1, err)
	n, err = c.HLen(ctx, "h").Result()
	g.eq("HLEN deleted", n, 0, err)
}

func TestRESPMoreCommandsGoRedis(t *testing.T) {
	nodes, rs := startRESPCluster(t, 3)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1})
	defer c.Close()
	other := redis.NewClient(&redis.Options{Addr: rs[1].Addr(), MaxRetries: -1})
	defer other.Close()
	g := goRedisChecks{t}

	// TYPE
	c.Set(ctx, "s", "v", 0)
	c.Incr(ctx, "ctr")
	c.SAdd(ctx, "set", "m")
	for k, want := range map[string]string{"s": "string", "ctr": "string", "set": "set", "nope": "none"} {
		typ, err := other.Type(ctx, k).Result()
		g.eq("TYPE "+k, typ, want, err)
	}

	// MSET, UNLINK
	ok, err := c.MSet(ctx, "m1", "a", "m2", "b", "m1", "c").Result()
	g.eq("MSET", ok, "OK", err)
	vals, err := other.MGet(ctx, "m1", "m2").Result()
	g.eq("MGET after MSET", vals, []any{"c", "b"}, err)
	g.err("MSET odd", c.Do(ctx, "MSET", "m3", "x", "m4").Err(), "ERR wrong number of arguments for 'mset' command")
	g.err("MSET bad key", c.Do(ctx, "MSET", "m3", "x", "\xff", "y").Err(), "ERR keys must be valid UTF-8")
	n, err := c.Exists(ctx, "m3", "m4").Result()
	g.eq("nothing written by a refused MSET", n, 0, err)
	n, err = c.Unlink(ctx, "m1", "m2", "nope").Result()
	g.eq("UNLINK", n, 2, err)

	// SET ... GET
	v, err := c.SetArgs(ctx, "g", "a", redis.SetArgs{Get: true}).Result()
	if !errors.Is(err, redis.Nil) {
		t.Fatalf("SET GET absent = %q, %v; want nil", v, err)
	}
	v, err = c.SetArgs(ctx, "g", "b", redis.SetArgs{Get: true}).Result()
	g.eq("SET GET", v, "a", err)
	v, err = c.SetArgs(ctx, "g", "c", redis.SetArgs{Get: true, Mode: "NX"}).Result()
	g.eq("SET NX GET of a present key", v, "b", err)
	v, err = other.Get(ctx, "g").Result()
	g.eq("GET after SET NX GET", v, "b", err)
	_, err = c.SetArgs(ctx, "g2", "x", redis.SetArgs{Get: true, Mode: "XX"}).Result()
	g.null("SET XX GET of an absent key", err)
	n, err = c.Exists(ctx, "g2").Result()
	g.eq("SET XX GET wrote nothing", n, 0, err)
	g.err("SET GET of a set", c.SetArgs(ctx, "set", "x", redis.SetArgs{Get: true}).Err(), wrongType)
	typ, _ := c.Type(ctx, "set").Result()
	g.eq("the set after a refused SET GET", typ, "set", nil)
	v, err = c.SetArgs(ctx, "ctr", "x", redis.SetArgs{Get: true}).Result()
	g.eq("SET GET of a counter", v, "1", err)

	// SET EXAT / PXAT, EXPIREAT / PEXPIREAT
	now := time.Now()
	ok, err = c.SetArgs(ctx, "e", "v", redis.SetArgs{ExpireAt: now.Add(100 * time.Second)}).Result()
	g.eq("SET EXAT", ok, "OK", err)
	ttl, err := other.TTL(ctx, "e").Result()
	if err != nil || ttl < 90*time.Second || ttl > 101*time.Second {
		t.Fatalf("TTL after SET EXAT now+100 = %v %v", ttl, err)
	}
	ok, err = c.Do(ctx, "SET", "e", "v", "PXAT", strconv.FormatInt(now.Add(200*time.Second).UnixMilli(), 10)).Text()
	g.eq("SET PXAT", ok, "OK", err)
	if ttl, _ = c.PTTL(ctx, "e").Result(); ttl < 190*time.Second || ttl > 201*time.Second {
		t.Fatalf("PTTL after SET PXAT now+200s = %v", ttl)
	}
	ok, err = c.Do(ctx, "SET", "e", "v", "EXAT", "1").Text()
	g.eq("SET EXAT in the past", ok, "OK", err)
	_, err = other.Get(ctx, "e").Result()
	g.null("GET after SET EXAT in the past", err)
	g.err("SET EXAT 0", c.Do(ctx, "SET", "e", "v", "EXAT", "0").Err(), "ERR invalid expire time in 'set' command")
	g.err("SET PXAT x", c.Do(ctx, "SET", "e", "v", "PXAT", "x").Err(), "ERR value is not an integer or out of range")
	g.err("SET EX and EXAT", c.Do(ctx, "SET", "e", "v", "EX", "5", "EXAT", "9999999999").Err(), "ERR syntax error")
	g.err("SET EXAT far", c.Do(ctx, "SET", "e", "v", "EXAT", "99999999999").Err(), "ERR invalid expire time in 'set' command")
	n, err = c.Exists(ctx, "e").Result()
	g.eq("refused SETs wrote nothing", n, 0, err)

	c.Set(ctx, "x", "v", 0)
	ok2, err := c.ExpireAt(ctx, "x", now.Add(50*time.Second)).Result()
	g.eq("EXPIREAT", ok2, true, err)
	if ttl, _ = other.TTL(ctx, "x").Result(); ttl < 40*time.Second || ttl > 51*time.Second {
		t.Fatalf("TTL after EXPIREAT now+50 = %v", ttl)
	}
	ok2, err = c.Do(ctx, "PEXPIREAT", "x", strconv.FormatInt(now.Add(80*time.Second).UnixMilli(), 10), "GT").Bool()
	g.eq("PEXPIREAT GT later", ok2, true, err)
	ok2, err = c.Do(ctx, "PEXPIREAT", "x", strconv.FormatInt(now.Add(60*time.Second).UnixMilli(), 10), "GT").Bool()
	g.eq("PEXPIREAT GT earlier", ok2, false, err)
	ok2, err = c.ExpireAt(ctx, "nope", now.Add(time.Hour)).Result()
	g.eq("EXPIREAT absent", ok2, false, err)
	g.err("EXPIREAT x", c.Do(ctx, "EXPIREAT", "x", "soon").Err(), "ERR value is not an integer or out of range")
	ok2, err = c.ExpireAt(ctx, "x", time.Unix(1, 0)).Result()
	g.eq("EXPIREAT in the past", ok2, true, err)
	n, err = other.Exists(ctx, "x").Result()
	g.eq("EXISTS after EXPIREAT in the past", n, 0, err)

	// COMMAND: the table, as go-redis reads it.
	info, err := c.Command(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"get": "2 1 1 1 true", "set": "-3 1 1 1 false", "mset": "-3 1 -1 2 false", "hset": "-4 1 1 1 false",
		"ping": "-1 0 0 0 false", "mget": "-2 1 -1 1 true",
	} {
		ci := info[name]
		if ci == nil {
			t.Fatalf("COMMAND lacks %s", name)
		}
		if got := fmt.Sprint(ci.Arity, ci.FirstKeyPos, ci.LastKeyPos, ci.StepCount, ci.ReadOnly); got != want {
			t.Fatalf("COMMAND %s: %s, want %s", name, got, want)
		}
	}
	count, err := c.Do(ctx, "COMMAND", "COUNT").Int()
	g.eq("COMMAND COUNT", count, len(info), err)
	ci, err := c.Do(ctx, "COMMAND", "INFO", "hget", "nosuch").Slice()
	if err != nil || len(ci) != 2 || ci[1] != nil || fmt.Sprint(ci[0].([]any)[:2]) != "[hget 3]" {
		t.Fatalf("COMMAND INFO hget nosuch = %v, %v", ci, err)
	}
	g.err("COMMAND bogus", c.Do(ctx, "COMMAND", "BOGUS").Err(), "ERR unknown subcommand 'BOGUS'. Try COMMAND HELP.")

	// SET NX and XX check at the connection's R: with both peers cut off, R=1 W=1 works
	// through the one node left, where the bucket's R (quorum) could not be reached.
	if err := nodes[0].SetFaults(node.Faults{Drop: []string{"n2", "n3"}}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nodes[0].SetFaults(node.Faults{}) }()
	one := redis.NewClient(&redis.Options{Addr: rs[0].Addr(), MaxRetries: -1, PoolSize: 1})
	defer one.Close()
	g.eq("QKV.QUORUM 1 1", one.Do(ctx, "QKV.QUORUM", "1", "1").Val(), "OK", nil)
	ok3, err := one.SetNX(ctx, "nx", "v", 0).Result()
	g.eq("SETNX at R=1", ok3, true, err)
	ok3, err = one.SetNX(ctx, "nx", "w", 0).Result()
	g.eq("SETNX at R=1 again", ok3, false, err)
	v, err = one.SetArgs(ctx, "nx", "w", redis.SetArgs{Mode: "XX"}).Result()
	g.eq("SET XX at R=1", v, "OK", err)
	v, err = one.Get(ctx, "nx").Result()
	g.eq("GET at R=1", v, "w", err)
	if err := c.SetNX(ctx, "nx2", "v", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "QUORUM") {
		t.Fatalf("SETNX at the bucket's R with both peers cut off: %v, want -QUORUM", err)
	}
}

// redisCLIMoreScript exercises the new commands through redis-cli 7 (which asks COMMAND
// DOCS at start).
const redisCLIMoreScript = `HSET user name ann age 30
HGET user name
HINCRBY user visits 2
HINCRBY user name 1
HMGET user name nope visits
HGETALL user
HKEYS user
HLEN user
HEXISTS user age
HDEL user age
HSETNX user name bob
TYPE user
MSET a 1 b 2
MGET a b
SET a 3 GET
UNLINK a b nope
TYPE a
SET t v EXAT 4000000000
EXPIREAT t 1
EXISTS t
COMMAND COUNT
`

func TestRESPMoreRedisCLI(t *testing.T) {
	cli := needTool(t, "redis-cli", "redis-tools")
	_, rs := startRESPCluster(t, 3)
	_, port, _ := net.SplitHostPort(rs[0].Addr())
	cmd := exec.Command(cli, "-h", "127.0.0.1", "-p", port)
	cmd.Stdin = strings.NewReader(redisCLIMoreScript)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	want := `2
ann
2
ERR hash value is not an integer

ann

2
age
30
name
ann
visits
2
age
name
visits
3
1
1
0
hash
OK
1
2
1
2
none
OK
1
0
` + fmt.Sprint(commandCount(t, rs[0].Addr())) + "\n"
	if string(out) != want {
		t.Fatalf("redis-cli output:\n%s\nwant:\n%s", out, want)
	}
}

func commandCount(t *testing.T, addr string) int64 {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	n, err := c.Do(context.Background(), "COMMAND", "COUNT").Int64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
