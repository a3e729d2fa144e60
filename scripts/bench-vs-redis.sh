#!/usr/bin/env bash
# End-to-end figures, side by side in one run: a 3-node quorumkv dev cluster (N=3,
# R=W=quorum) under `quorumkv bench` (32 concurrent HTTP clients, 100-byte values), and a
# local Redis under redis-benchmark (50 and 32 clients, 100-byte values). Also prints the
# server CPU the quorumkv nodes spent per request.
#
# Needs redis-server and redis-benchmark (Debian: apt-get install redis-server redis-tools).
# Usage: scripts/bench-vs-redis.sh [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-50000}
for tool in redis-server redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-server redis-tools" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'kill $devpid $redispid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/quorumkv" ./cmd/quorumkv

"$work/quorumkv" dev --data "$work/dev" --base-port 0 >"$work/dev.out" 2>&1 &
devpid=$!
for _ in $(seq 100); do grep -q 'Ctrl-C stops' "$work/dev.out" && break; sleep 0.2; done
addr=$(awk '$1=="n1"{print $2}' "$work/dev.out")
[ -n "$addr" ] || { cat "$work/dev.out"; exit 1; }

cpu_ticks() { local s=0; for p in $(pgrep -f "$work/quorumkv server"); do read -ra f <"/proc/$p/stat"; s=$((s + f[13] + f[14])); done; echo "$s"; }

echo "== quorumkv: 3 nodes, N=3, R=W=quorum, 32 HTTP clients, 100-byte values, $requests requests per op"
for op in put get; do
  before=$(cpu_ticks)
  "$work/quorumkv" bench --addr "$addr" --requests "$requests" --ops "$op" 2>/dev/null
  after=$(cpu_ticks)
  hz=$(getconf CLK_TCK)
  echo "   server CPU per $op (all nodes): $(( (after - before) * 1000000 / hz / requests )) us"
done

port=$(( 20000 + RANDOM % 20000 ))
redis-server --port "$port" --save '' --appendonly no >"$work/redis.log" 2>&1 &
redispid=$!
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "== redis $(redis-server --version | awk '{print $3}'): one node, redis-benchmark, 100-byte values, $requests requests"
for c in 32 50; do
  redis-benchmark -p "$port" -c "$c" -n "$requests" -d 100 -t set,get --csv 2>/dev/null |
    awk -F'"?,"?' -v c="$c" 'NR>1 {gsub(/"/,""); printf "%-4s c=%d %9.0f ops/s  p50 %7.3f ms  p99 %7.3f ms\n", $1, c, $2, $5, $7}'
done
