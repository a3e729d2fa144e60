#!/usr/bin/env bash
# The Redis-protocol benchmark, side by side in one run: a local Redis and one or more
# quorumkv builds, each as a 3-node `quorumkv dev` cluster (N=3, R=W=quorum) driven through
# one node's RESP port by redis-benchmark — SET and GET, 50 clients, 100-byte values,
# keys drawn from 100,000 that are written first — with and without -P 16. Systems take
# turns within each round; the table gives the median of the rounds, and the server CPU
# per operation summed over every quorumkv node (from /proc).
#
# Needs redis-server, redis-cli and redis-benchmark (Debian: redis-server redis-tools).
# Usage: scripts/bench-resp.sh [-n REQUESTS] [-r ROUNDS] [LABEL=BINARY ...]
#   with no LABEL=BINARY, the quorumkv of this checkout is built and measured as "quorumkv".
#   Example, before and after a change:
#     git worktree add /tmp/old <commit> && (cd /tmp/old && go build -o /tmp/qkv-old ./cmd/quorumkv)
#     scripts/bench-resp.sh before=/tmp/qkv-old after=./quorumkv
set -euo pipefail
cd "$(dirname "$0")/.."
requests=200000
rounds=3
while getopts "n:r:" o; do
  case $o in
    n) requests=$OPTARG ;;
    r) rounds=$OPTARG ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install redis-server redis-tools" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

systems=(redis)
declare -A bin
if [ $# -eq 0 ]; then
  go build -o "$work/quorumkv" ./cmd/quorumkv
  systems+=(quorumkv)
  bin[quorumkv]=$work/quorumkv
fi
for arg in "$@"; do
  label=${arg%%=*}
  path=${arg#*=}
  [ -x "$path" ] || { echo "$path: not an executable" >&2; exit 2; }
  systems+=("$label")
  bin[$label]=$(realpath "$path")
done

cpu_ticks() { # summed user+system ticks of the processes whose command line holds $1
  local s=0 p f
  for p in $(pgrep -f "$1" || true); do
    read -ra f <"/proc/$p/stat" 2>/dev/null || continue
    s=$((s + f[13] + f[14]))
  done
  echo "$s"
}
hz=$(getconf CLK_TCK)

# start SYSTEM DIR: starts it, sets port and pattern (for cpu_ticks).
start() {
  local sys=$1 dir=$2
  mkdir -p "$dir"
  if [ "$sys" = redis ]; then
    port=$((20000 + RANDOM % 20000))
    redis-server --port "$port" --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
    pids+=($!)
    pattern="redis-server \*:$port"
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
    echo "redis did not start" >&2; exit 1
  fi
  "${bin[$sys]}" dev --data "$dir/dev" --base-port 0 >"$dir/dev.out" 2>&1 &
  pids+=($!)
  pattern="$dir/dev"
  for _ in $(seq 300); do grep -q 'Ctrl-C stops\|ready' "$dir/dev.out" 2>/dev/null && grep -q '^n1 ' "$dir/dev.out" && break; sleep 0.1; done
  local resp
  resp=$(awk '$1=="n1"{print $3}' "$dir/dev.out")
  port=${resp##*:}
  [ -n "$port" ] || { cat "$dir/dev.out" >&2; exit 1; }
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "$sys: RESP port $port does not answer" >&2; exit 1
}

stop() { kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

# bench TEST PIPELINE: one redis-benchmark run; prints "ops p50 p99 cpu_us_per_op".
bench() {
  local t=$1 p=$2 before after line
  before=$(cpu_ticks "$pattern")
  line=$(redis-benchmark -p "$port" -c 50 -n "$requests" -d 100 -r 100000 -P "$p" -t "$t" --csv 2>/dev/null | tail -1)
  after=$(cpu_ticks "$pattern")
  echo "$line" | awk -F'"?,"?' -v cpu=$(( (after - before) * 1000000 / hz )) -v n="$requests" \
    '{gsub(/"/,""); printf "%.0f %.3f %.3f %.1f\n", $2, $5, $7, cpu / n}'
}

results=$work/results
for round in $(seq "$rounds"); do
  for sys in "${systems[@]}"; do
    start "$sys" "$work/$sys-$round"
    # Fill the key space first so that GET finds values.
    redis-benchmark -p "$port" -c 50 -n 100000 -d 100 -r 100000 -P 16 -t set >/dev/null 2>&1
    for p in 1 16; do
      for t in set get; do
        echo "$sys $t $p $(bench "$t" "$p")" >>"$results"
      done
    done
    stop
    echo "round $round: $sys done" >&2
  done
done

echo
echo "redis-benchmark -c 50 -n $requests -d 100 -r 100000 (keys written first), median of $rounds rounds"
echo
printf '| system | op | pipeline | ops/s | p50 ms | p99 ms | server CPU µs/op | vs Redis |\n|---|---|---|---|---|---|---|---|\n'
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
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
