#!/usr/bin/env bash
# The Redis-protocol benchmark, side by side in one run: a local Redis and one or more
# quorumkv builds, each as a 3-node `quorumkv dev` cluster (N=3, R=W=quorum) driven through
# one node's RESP port by redis-benchmark — SET and GET, 50 clients, 100-byte values,
# keys drawn from 100,000 that are written first — with and without -P 16. Systems take
# turns within each round, the first one rotating from round to round; the table gives the median of the rounds, and the server CPU
# per operation summed over every quorumkv node (from /proc).
#
# Needs redis-server, redis-cli and redis-benchmark (Debian: redis-server redis-tools).
# Usage: scripts/bench-resp.sh [-n REQUESTS] [-r ROUNDS] [LABEL=BINARY ...]
#   with no LABEL=BINARY, the quorumkv of this checkout is built and measured as "quorumkv".
#   Example, before and after a change:
#     git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/qkv-old ./cmd/quorumkv)
#     scripts/bench-resp.sh before=/tmp/qkv-old after=./quorumkv
# scripts/bench-vs-redis.sh prints the same runs as issue 11's one-line-per-system table.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
requests=200000
rounds=3
while getopts "n:r:" o; do
  case $o in
    n) requests=$OPTARG ;;
    r) rounds=$OPTARG ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
need_tools redis-server redis-cli redis-benchmark
bench_init

systems=(redis)
declare -A bin
add_builds "$@"

results=$work/results
for round in $(seq "$rounds"); do
  for sys in $(rotated "$round" "${systems[@]}"); do
    start_system "$sys" "$work/$sys-$round"
    prefill
    for p in 1 16; do
      for t in set get; do
        echo "$sys $t $p $(resp_bench "$t" "$p" "$requests")" >>"$results"
      done
    done
    stop_last
    echo "round $round: $sys done" >&2
  done
done

echo
echo "redis-benchmark -c 50 -n $requests -d 100 -r 100000 (keys written first), median of $rounds rounds"
echo
printf '| system | op | pipeline | ops/s | p50 ms | p99 ms | server CPU µs/op | vs Redis |\n|---|---|---|---|---|---|---|---|\n'
for p in 1 16; do
  for t in set get; do
    ref=$(awk -v t=$t -v p=$p '$1=="redis" && $2==t && $3==p {print $4}' "$results" | median)
    for sys in "${systems[@]}"; do
      ops=$(awk -v s=$sys -v t=$t -v p=$p '$1==s && $2==t && $3==p {print $4}' "$results" | median)
      p50=$(awk -v s=$sys -v t=$t -v p=$p '$1==s && $2==t && $3==p {print $5}' "$results" | median)
      p99=$(awk -v s=$sys -v t=$t -v p=$p '$1==s && $2==t && $3==p {print $6}' "$results" | median)
      cpu=$(awk -v s=$sys -v t=$t -v p=$p '$1==s && $2==t && $3==p {print $7}' "$results" | median)
      [ "$sys" = redis ] && cpu="-"
      printf '| %s | %s | %s | %.0f | %s | %s | %s | %.0f%% |\n' "$sys" "${t^^}" "$p" "$ops" "$p50" "$p99" "$cpu" \
        "$(awk -v a="$ops" -v b="$ref" 'BEGIN {print 100 * a / b}')"
    done
  done
done
