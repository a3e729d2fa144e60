#!/usr/bin/env bash
# The YCSB core workloads a, b, c, d and f (`quorumkv bench --workload`) against a 3-node
# `quorumkv dev` cluster (N=3, R=W=quorum) of this checkout, over HTTP. Each round starts a
# fresh cluster and runs the five workloads in turn (the first one rotates from round to
# round), each on a bucket of its own: the load phase (RECORDS records of 10 fields × 100
# bytes), then the run phase (OPERATIONS ops from CLIENTS clients, Zipfian keys; d: latest),
# with the servers' CPU time read from /proc around the run phase. The table gives, per
# workload and op type, the medians over the rounds, the lowest and highest throughput
# beside the median, and each workload's run throughput as a ratio to workload c's (all
# reads) in the same round, the median of those ratios.
#
# Needs jq. Usage: [ROUNDS=3] [RECORDS=10000] [OPERATIONS=50000] [CLIENTS=32]
#   [QUORUMKV=binary] [KEEP=file-for-the-raw-figures] scripts/bench-ycsb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
rounds=${ROUNDS:-3}
records=${RECORDS:-10000}
operations=${OPERATIONS:-50000}
clients=${CLIENTS:-32}
workloads=(a b c d f)
command -v jq >/dev/null || { echo "missing jq: apt-get install jq" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "missing redis-cli (to see the cluster answer): apt-get install redis-tools" >&2; exit 1; }
bench_init
if [ -n "${QUORUMKV:-}" ]; then qkv=$(realpath "$QUORUMKV"); else build_quorumkv; qkv=$work/quorumkv; fi

# Lines of $results: workload round op ops/s p50 p95 p99 p99.9 max (ms) cpu_us_per_op
results=$work/results
for round in $(seq "$rounds"); do
  start_quorumkv "$qkv" "$work/round-$round"
  for i in $(seq 0 $((${#workloads[@]} - 1))); do
    wl=${workloads[$(((i + round - 1) % ${#workloads[@]}))]}
    common=(bench --addr "$http" --workload "$wl" --bucket "ycsb-$wl" --records "$records" --clients "$clients" --json)
    "$qkv" "${common[@]}" --operations 0 >"$work/load-$wl-$round.json"
    before=$(cpu_ticks "$pattern")
    "$qkv" "${common[@]}" --operations "$operations" --no-load >"$work/run-$wl-$round.json"
    after=$(cpu_ticks "$pattern")
    cpu=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$operations" 'BEGIN {printf "%.1f", t * 1000000 / hz / n}')
    jq -r --arg wl "$wl" --arg r "$round" '.load.total | [$wl, $r, "insert (load)", .ops_per_s, .p50_us, .p95_us, .p99_us, .p999_us, .max_us, "-"] | @tsv' \
      "$work/load-$wl-$round.json" >>"$results"
    jq -r --arg wl "$wl" --arg r "$round" --arg cpu "$cpu" \
      '(.run.by_op[] | [$wl, $r, .op, .ops_per_s, .p50_us, .p95_us, .p99_us, .p999_us, .max_us, "-"]),
       (.run.total | [$wl, $r, "total", .ops_per_s, .p50_us, .p95_us, .p99_us, .p999_us, .max_us, $cpu]) | @tsv' \
      "$work/run-$wl-$round.json" >>"$results"
    errors=$(jq '.run.total.errors + .load.total.errors' "$work/load-$wl-$round.json" "$work/run-$wl-$round.json" | paste -sd+ | bc)
    [ "$errors" = 0 ] || echo "workload $wl, round $round: $errors errors (see the JSON reports)" >&2
    echo "round $round of $rounds: workload $wl done" >&2
  done
  stop_last
done

# fig WORKLOAD OP COLUMN: the median over the rounds.
fig() { awk -F'\t' -v w="$1" -v o="$2" -v c="$3" '$1==w && $3==o {print $c}' "$results" | median; }
range() { awk -F'\t' -v w="$1" -v o="$2" '$1==w && $3==o {print $4}' "$results" | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.0f–%.0f", lo, hi}'; }
ms() { awk -v us="$1" 'BEGIN {printf "%.2f", us / 1000}'; }
# vs_c WORKLOAD: the median over the rounds of the workload's run throughput over workload
# c's (all reads) in the same round and cluster.
vs_c() {
  awk -F'\t' -v w="$1" '$3=="total" && $1==w {a[$2]=$4} $3=="total" && $1=="c" {c[$2]=$4}
    END {for (r in a) if (c[r] > 0) print a[r] / c[r]}' "$results" | median | awk '{printf "%.2f", $1}'
}

echo
echo "quorumkv bench --workload W --records $records --operations $operations --clients $clients (load phase run first);"
echo "3-node quorumkv dev cluster, N=3, R=W=quorum, lww buckets; medians of $rounds rounds"
echo
echo "| workload | op | ops/s | lowest–highest | ops/s vs c | p50 ms | p95 ms | p99 ms | p99.9 ms | max ms | server CPU µs/op |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for wl in "${workloads[@]}"; do
  for op in "insert (load)" read update insert read_modify_write total; do
    awk -F'\t' -v w="$wl" -v o="$op" '$1==w && $3==o {f=1} END {exit !f}' "$results" || continue
    cpu=- ratio=-
    [ "$op" = total ] && cpu=$(fig "$wl" total 10) && ratio=$(vs_c "$wl")
    printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$wl" "$op" "$(fig "$wl" "$op" 4)" "$(range "$wl" "$op")" "$ratio" \
      "$(ms "$(fig "$wl" "$op" 5)")" "$(ms "$(fig "$wl" "$op" 6)")" "$(ms "$(fig "$wl" "$op" 7)")" \
      "$(ms "$(fig "$wl" "$op" 8)")" "$(ms "$(fig "$wl" "$op" 9)")" "$cpu"
  done
done
