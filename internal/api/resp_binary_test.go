package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
)

// binaryBytes is a member, hash field and value no JSON string carries: invalid UTF-8
// around a NUL.
const binaryBytes = "\xff\x00\xfe"

// TestRESPBinaryForwarded: set members and hash fields and values are any bytes, also when
// the node a client talks to is not a replica of the key and forwards the operation to one
// (the redis bucket has n=1 here, so most keys live on another node than the one asked).
// What a client wrote comes back exactly, through every node; an operation that meets a
// field of another type answers as it does unforwarded.
func TestRESPBinaryForwarded(t *testing.T) {
	nodes, rs := startRESPCluster(t, 3)
	setBucket(t, nodes, "redis", `{"n":1}`)
	ctx := context.Background()
	clients := make([]*redis.Client, len(rs))
	for i, r := range rs {
		clients[i] = redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
		defer clients[i].Close()
	}
	g := goRedisChecks{t}
	forwarded := 0
	for i := range 12 {
		via := i % len(nodes)
		set, hash := fmt.Sprintf("s%d", i), fmt.Sprintf("h%d", i)
		for _, key := range []string{set, hash} {
			ep, err := nodes[via].Endpoints("redis", key)
			if err != nil {
				t.Fatal(err)
			}
			if ep.Primaries[0].ID != nodes[via].ID() {
				forwarded++
			}
		}
		c := clients[via]
		n, err := c.SAdd(ctx, set, binaryBytes, "plain", "\xe8").Result()
		g.eq("SADD binary", n, 3, err)
		n, err = c.HSet(ctx, hash, binaryBytes, binaryBytes+binaryBytes, "utf8", "\xc3\x28").Result()
		g.eq("HSET binary", n, 2, err)
		for _, other := range clients {
			// HINCRBY of a string field: the type mismatch survives forwarding.
			g.err("HINCRBY of a binary string field", other.HIncrBy(ctx, hash, binaryBytes, 1).Err(), "ERR hash value is not an integer")
			ok, err := other.SIsMember(ctx, set, binaryBytes).Result()
			g.eq("SISMEMBER binary", ok, true, err)
			ms, err := other.SMembers(ctx, set).Result()
			g.eq("SMEMBERS", len(ms), 3, err)
			v, err := other.HGet(ctx, hash, binaryBytes).Result()
			if err != nil || v != binaryBytes+binaryBytes {
				t.Fatalf("HGET %q of a binary field: %q, %v", hash, v, err)
			}
			all, err := other.HGetAll(ctx, hash).Result()
			if err != nil || len(all) != 2 || all["utf8"] != "\xc3\x28" || all[binaryBytes] != binaryBytes+binaryBytes {
				t.Fatalf("HGETALL %q: %q, %v", hash, all, err)
			}
		}
	}
	if forwarded == 0 {
		t.Fatal("no operation was forwarded: the test exercised nothing")
	}
}
