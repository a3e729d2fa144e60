#!/usr/bin/env bash
# Memory of a node, idle and holding many keys, side by side in one run: one or more
# quorumkv builds, each as a 3-node `quorumkv dev` cluster (N=3, R=W=quorum, so every node
# holds every key), loaded through n1's RESP port with distinct keys of 100-byte values
# (key:000000000000, key:000000000001, ...) by parallel `redis-cli --pipe` streams. For
# each node it reads VmRSS at idle (after a settling pause), after the first half of the
# keys, and at the end, and VmHWM (the peak) at the end, from /proc/PID/status; it also
# times both halves of the load (keys/s and the three nodes' CPU per key). The builds take
# turns within each round, the first one rotating from round to round; the table gives medians over rounds of the largest of the three
# nodes' figures.
#
# Needs redis-cli (Debian: redis-tools).
# Usage: scripts/bench-memory.sh [-k KEYS] [-r ROUNDS] [-p STREAMS] [LABEL=BINARY ...]
#   KEYS (default 1000000) is the total; the middle reading is at KEYS/2.
#   With no LABEL=BINARY, the quorumkv of this checkout is built and measured.
#   PROFILES=DIR saves every node's /debug/pprof/heap (and ?debug=1, which ends with the
#   runtime's MemStats) at each reading, as DIR/LABEL-ROUND-nN-STAGE.pb.gz.
#   Environment variables reach the servers (GOGC=200, QUORUMKV_... flags).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-lib.sh
keys=1000000
rounds=3
streams=32
settle=${SETTLE:-8}
while getopts "k:r:p:" o; do
  case $o in
    k) keys=$OPTARG ;;
    r) rounds=$OPTARG ;;
    p) streams=$OPTARG ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
need_tools redis-cli
bench_init

systems=()
declare -A bin
add_builds "$@"

# start_dev BINARY DIR: like start_quorumkv, with pprof served (--debug-faults).
start_dev() {
  local b=$1 dir=$2 resp
  mkdir -p "$dir"
  "$b" dev --data "$dir/dev" --base-port 0 --debug-faults >"$dir/dev.out" 2>&1 &
  pids+=($!)
  pattern="server --id n[0-9]* --data $dir/dev/"
  for _ in $(seq 300); do grep -q 'Ctrl-C stops' "$dir/dev.out" 2>/dev/null && break; sleep 0.1; done
  resp=$(awk '$1=="n1"{print $3}' "$dir/dev.out")
  port=${resp##*:}
  [ -n "$port" ] || { cat "$dir/dev.out" >&2; exit 1; }
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "$b: RESP port $port does not answer" >&2
  exit 1
}

# kib FIELD PID: a field of /proc/PID/status in KiB.
kib() { awk -v f="$1:" '$1==f {print $2}' "/proc/$2/status"; }

# reading LABEL ROUND STAGE: the largest VmRSS (and VmHWM) of the three nodes, in MB;
# with PROFILES set, their heap profiles.
reading() {
  local label=$1 round=$2 stage=$3 p rss=0 hwm=0 r h id httpaddr
  for p in $(pgrep -f "$pattern"); do
    r=$(kib VmRSS "$p")
    h=$(kib VmHWM "$p")
    ((r > rss)) && rss=$r
    ((h > hwm)) && hwm=$h
    if [ -n "${PROFILES:-}" ]; then
      mkdir -p "$PROFILES"
      id=$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{for (i = 1; i < NF; i++) if ($i == "--id") print $(i+1)}')
      httpaddr=$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{for (i = 1; i < NF; i++) if ($i == "--http") print $(i+1)}')
      curl -sf "http://$httpaddr/debug/pprof/heap" -o "$PROFILES/$label-$round-$id-$stage.pb.gz" || true
      curl -sf "http://$httpaddr/debug/pprof/heap?debug=1" -o "$PROFILES/$label-$round-$id-$stage.txt" || true
    fi
  done
  echo "$label $round $stage rss $((rss / 1024)) hwm $((hwm / 1024))" >>"$results"
}

# load LABEL ROUND STAGE FROM TO: writes keys FROM..TO-1 in $streams parallel pipes.
load() {
  local label=$1 round=$2 stage=$3 from=$4 to=$5 i a b t0 t1 before after
  local per=$(((to - from + streams - 1) / streams)) loaders=()
  before=$(cpu_ticks "$pattern")
  t0=$(date +%s.%N)
  for ((i = 0; i < streams; i++)); do
    a=$((from + i * per))
    b=$((a + per < to ? a + per : to))
    ((a < b)) || continue
    awk -v a="$a" -v b="$b" 'BEGIN {
      v = sprintf("%100s", ""); gsub(/ /, "x", v)
      for (i = a; i < b; i++) {
        k = sprintf("key:%012d", i)
        printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n", length(k), k, v
      }
    }' | redis-cli -p "$port" --pipe >"$work/pipe-$i.out" 2>&1 &
    loaders+=($!)
  done
  wait "${loaders[@]}" || true
  t1=$(date +%s.%N)
  after=$(cpu_ticks "$pattern")
  if grep -L 'errors: 0,' "$work"/pipe-*.out | grep -q .; then
    echo "$label round $round: load $from..$to had errors:" >&2
    cat "$work"/pipe-*.out >&2
    exit 1
  fi
  rm -f "$work"/pipe-*.out
  echo "$label $round $stage keys_per_s $(awk -v n=$((to - from)) -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')" >>"$results"
  echo "$label $round $stage cpu_us_per_key $(awk -v c=$(((after - before) * 1000000 / hz)) -v n=$((to - from)) 'BEGIN {printf "%.1f", c / n}')" >>"$results"
}

results=$work/results
half=$((keys / 2))
for round in $(seq "$rounds"); do
  for sys in $(rotated "$round" "${systems[@]}"); do
    start_dev "${bin[$sys]}" "$work/$sys-$round"
    sleep "$settle"
    reading "$sys" "$round" idle
    load "$sys" "$round" first 0 "$half"
    reading "$sys" "$round" half
    load "$sys" "$round" second "$half" "$keys"
    sleep "$settle"
    reading "$sys" "$round" full
    stop_last
    rm -rf "$work/$sys-$round"
    echo "round $round: $sys done ($(grep "^$sys $round " "$results" | tr '\n' ';'))" >&2
  done
done

get() { awk -v s="$1" -v st="$2" -v f="$3" '$1==s && $3==st {for (i = 4; i < NF; i++) if ($i == f) print $(i+1)}' "$results" | median; }
echo
echo "3-node quorumkv dev, $keys distinct keys of 100 bytes via RESP SET ($streams redis-cli --pipe streams), median of $rounds rounds; RSS and peak of the largest node"
echo
printf '| system | idle RSS MB | RSS MB at %d keys | RSS MB at %d keys | peak RSS MB | load keys/s (1st, 2nd half) | server CPU µs/key (1st, 2nd half) |\n|---|---|---|---|---|---|---|\n' "$half" "$keys"
for sys in "${systems[@]}"; do
  printf '| %s | %s | %s | %s | %s | %s, %s | %s, %s |\n' "$sys" \
    "$(get "$sys" idle rss)" "$(get "$sys" half rss)" "$(get "$sys" full rss)" "$(get "$sys" full hwm)" \
    "$(get "$sys" first keys_per_s)" "$(get "$sys" second keys_per_s)" \
    "$(get "$sys" first cpu_us_per_key)" "$(get "$sys" second cpu_us_per_key)"
done
