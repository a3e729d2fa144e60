#!/usr/bin/env bash
# Two quorumkv builds side by side, both 3-node clusters up at once, in many short runs
# that alternate between them: the comparison to trust on a machine whose speed drifts
# within minutes, where bench-resp.sh's few long rounds (one cluster at a time, several
# minutes apart) can disagree with each other by more than the change being measured.
# Each round runs the same redis-benchmark test (50 clients, 100-byte values, keys from
# 100,000 written first) once on each build, the order swapped every round. It prints
# every round, how many rounds the second build spent less server CPU per op (summed
# over its three nodes, from /proc), and the medians.
#
# Needs redis-benchmark and redis-cli (Debian: redis-tools).
# Usage: scripts/bench-ab.sh [-r ROUNDS] [-n REQUESTS] [-t set|get] [-P PIPELINE] [-k PREFILL_KEYS] A=BINARY B=BINARY
#   e.g. scripts/bench-ab.sh -r 8 -n 60000 -t set -P 16 main=/tmp/qkv-main new=/tmp/qkv-new
# -k writes that many keys first (default 100000, the runs' keys): 400000 fills the
# servers' row caches (32 MiB each) past what the runs touch.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
rounds=8
requests=60000
test=set
pipeline=1
usage() { sed -n '2,16p' "$0"; exit 2; }
while getopts "r:n:t:P:k:" o; do
  case $o in
    r) rounds=$OPTARG ;;
    n) requests=$OPTARG ;;
    t) test=$OPTARG ;;
    P) pipeline=$OPTARG ;;
    k) prefill_keys=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || usage
need_tools redis-benchmark redis-cli
bench_init

systems=()
declare -A bin portof patternof
add_builds "$@"
for s in "${systems[@]}"; do
  start_quorumkv "${bin[$s]}" "$work/$s"
  prefill
  portof[$s]=$port
  patternof[$s]=$pattern
done

a=${systems[0]}
b=${systems[1]}
echo "$test -P $pipeline, $requests requests a run, $rounds rounds: ops/s, server CPU µs/op, p50/p99 ms"
# Lines of $work/results: round system ops/s p50_ms p99_ms cpu_us_per_op
for r in $(seq "$rounds"); do
  for s in $(rotated "$r" "${systems[@]}"); do
    port=${portof[$s]}
    pattern=${patternof[$s]}
    echo "$r $s $(resp_bench "$test" "$pipeline" "$requests")" >>"$work/results"
  done
  awk -v r="$r" -v a="$a" -v b="$b" '$1==r && $2==a {ao=$3; ac=$6; al=$4 "/" $5} $1==r && $2==b {bo=$3; bc=$6; bl=$4 "/" $5}
    END {printf "round %d: %s %s/s %s µs/op %s ms, %s %s/s %s µs/op %s ms\n", r, a, ao, ac, al, b, bo, bc, bl}' "$work/results"
done
wins=$(awk -v a="$a" -v b="$b" '$2==a {ac[$1]=$6} $2==b {bc[$1]=$6} END {n=0; for (r in ac) if (bc[r] < ac[r]) n++; print n}' "$work/results")
for s in "$a" "$b"; do
  ops=$(awk -v s="$s" '$2==s {print $3}' "$work/results" | median)
  cpu=$(awk -v s="$s" '$2==s {print $6}' "$work/results" | median)
  p50=$(awk -v s="$s" '$2==s {print $4}' "$work/results" | median)
  p99=$(awk -v s="$s" '$2==s {print $5}' "$work/results" | median)
  echo "$s: median $ops ops/s, $cpu µs of server CPU per op, p50 $p50 ms, p99 $p99 ms"
done
echo "$b spent less CPU per op than $a in $wins of $rounds rounds"
