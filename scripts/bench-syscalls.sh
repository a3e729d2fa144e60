#!/usr/bin/env bash
# Per node of a 3-node `quorumkv dev` cluster: read and write syscalls and server CPU per
# operation during one redis-benchmark run through n1 (syscr and syscw of /proc/PID/io,
# utime+stime of /proc/PID/stat), for each build given, taking turns over the rounds. What
# a change does to the syscalls of a path shows here exactly, where the throughput and CPU
# figures of a shared machine scatter.
#
# Needs redis-cli and redis-benchmark (Debian: apt-get install redis-tools).
# Usage: scripts/bench-syscalls.sh [-t set|get] [-P PIPELINE] [-n REQUESTS] [-r ROUNDS] [LABEL=BINARY ...]
#   with no build given, this checkout, built.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
test=set pipeline=1 requests=100000 rounds=1
while getopts "t:P:n:r:" o; do
  case $o in
    t) test=$OPTARG ;;
    P) pipeline=$OPTARG ;;
    n) requests=$OPTARG ;;
    r) rounds=$OPTARG ;;
    *) sed -n 2,10p "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
need_tools redis-cli redis-benchmark
bench_init
systems=()
declare -A bin
add_builds "$@"

# snap: "syscr syscw cpu_ticks" of each server process, one line per node, in node order.
snap() {
  local n p
  for n in n1 n2 n3; do
    p=$(pgrep -f "server --id $n --data $work/" | head -1)
    awk '/^syscr|^syscw/{printf "%s ", $2}' "/proc/$p/io"
    awk '{print $14 + $15}' "/proc/$p/stat"
  done
}

echo "redis-benchmark -c 50 -n $requests -d 100 -r 100000 -P $pipeline -t $test through n1, keys written first; per node: read and write syscalls and server CPU µs per op"
for round in $(seq "$rounds"); do
  for sys in "${systems[@]}"; do
    start_quorumkv "${bin[$sys]}" "$work/$sys-$round"
    prefill
    before=$(snap)
    ops=$(redis-benchmark -p "$port" -c 50 -n "$requests" -d 100 -r 100000 -P "$pipeline" -t "$test" --csv | tail -1 | cut -d, -f2 | tr -d '"')
    after=$(snap)
    stop_last
    paste <(echo "$before") <(echo "$after") | awk -v n="$requests" -v hz="$hz" -v sys="$sys" -v r="$round" -v ops="$ops" '
      { printf "%s round %s n%d: reads %.3f writes %.3f cpu %.1f µs/op\n", sys, r, NR, ($4-$1)/n, ($5-$2)/n, ($6-$3)*1e6/hz/n }
      END { printf "%s round %s: %s ops/s\n", sys, r, ops }'
  done
done
