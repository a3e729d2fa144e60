# Shared functions of the benchmark scripts (bench-resp.sh, bench-memory.sh, bench-vs-redis.sh,
# bench-ycsb.sh): sourced, not run. They start a local Redis or a 3-node `quorumkv dev`
# cluster, drive it with redis-benchmark, read the servers' CPU time from /proc, and take
# medians. Every server started goes into $work and is stopped when the script exits.
#
# KEEP=FILE keeps the raw per-round figures ($work/results) in FILE.
#
# After bench_init: $work (a temporary directory), $hz (clock ticks per second).
# After start_system: $port (Redis port, or RESP port of node n1), $http (HTTP address
# of n1, quorumkv only), $pattern (what pgrep -f matches for the server processes).

# need_tools TOOL...: stops the script when a tool is missing.
need_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install redis-server redis-tools" >&2; exit 1; }
  done
}

# bench_init: a work directory, removed on exit with every server still running.
bench_init() {
  work=$(mktemp -d)
  pids=()
  hz=$(getconf CLK_TCK)
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ] && [ -f "$work/results" ]; then cp "$work/results" "$KEEP"; fi
  rm -rf "$work"
}

# build_quorumkv: builds this checkout into $work/quorumkv.
build_quorumkv() { go build -o "$work/quorumkv" ./cmd/quorumkv; }

# add_builds [LABEL=BINARY ...]: appends the quorumkv builds to measure to the arrays
# systems (labels) and bin (label -> binary), which the caller declares; with none given,
# this checkout, built, as "quorumkv".
add_builds() {
  local arg label path
  if [ $# -eq 0 ]; then
    build_quorumkv
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
}

# cpu_ticks PATTERN: summed user+system clock ticks of the processes whose command line
# matches PATTERN (utime and stime, fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
  local s=0 p f
  for p in $(pgrep -f "$1" || true); do
    read -ra f <"/proc/$p/stat" 2>/dev/null || continue
    s=$((s + f[13] + f[14]))
  done
  echo "$s"
}

# start_redis DIR: a Redis without persistence on a random port.
start_redis() {
  local dir=$1
  mkdir -p "$dir"
  port=$((20000 + RANDOM % 20000))
  redis-server --port "$port" --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
  pids+=($!)
  pattern="redis-server \*:$port"
  http=
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis did not start" >&2
  exit 1
}

# start_quorumkv BINARY DIR: a 3-node `quorumkv dev` cluster (N=3, R=W=quorum) on free
# ports; $pattern matches its three server processes, not the dev supervisor.
start_quorumkv() {
  local bin=$1 dir=$2 resp
  mkdir -p "$dir"
  "$bin" dev --data "$dir/dev" --base-port 0 >"$dir/dev.out" 2>&1 &
  pids+=($!)
  pattern="server --id n[0-9]* --data $dir/dev/"
  for _ in $(seq 300); do grep -q 'Ctrl-C stops' "$dir/dev.out" 2>/dev/null && break; sleep 0.1; done
  resp=$(awk '$1=="n1"{print $3}' "$dir/dev.out")
  http=$(awk '$1=="n1"{print $2}' "$dir/dev.out")
  port=${resp##*:}
  [ -n "$port" ] || { cat "$dir/dev.out" >&2; exit 1; }
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "$bin: RESP port $port does not answer" >&2
  exit 1
}

# start_system SYSTEM DIR: "redis", or a label of the associative array bin (label → binary).
start_system() {
  if [ "$1" = redis ]; then start_redis "$2"; else start_quorumkv "${bin[$1]}" "$2"; fi
}

# stop_last: stops the server started last.
stop_last() { kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; }

# prefill: writes keys of the 100,000 that redis-benchmark -r 100000 draws from, so that
# GET finds values (100,000 random draws, pipelined: about 63% of the keys; the SET runs
# that come before the GET runs write most of the rest). With $prefill_keys above 100000
# it draws that many from that many keys instead: a store (and a row cache) holding more
# than the runs' keys, as a server's does.
prefill() {
  local k=${prefill_keys:-100000}
  redis-benchmark -p "$port" -c 50 -n "$k" -d 100 -r "$k" -P 16 -t set >/dev/null 2>&1
}

# resp_bench TEST PIPELINE REQUESTS: one redis-benchmark run (50 clients, 100-byte values,
# keys from 100,000) on $port; prints "ops/s p50_ms p99_ms server_cpu_us_per_op".
resp_bench() {
  local t=$1 p=$2 n=$3 before after line
  before=$(cpu_ticks "$pattern")
  line=$(redis-benchmark -p "$port" -c 50 -n "$n" -d 100 -r 100000 -P "$p" -t "$t" --csv 2>/dev/null | tail -1)
  after=$(cpu_ticks "$pattern")
  echo "$line" | awk -F'"?,"?' -v cpu=$(((after - before) * 1000000 / hz)) -v n="$n" \
    '{gsub(/"/,""); printf "%.0f %.3f %.3f %.1f\n", $2, $5, $7, cpu / n}'
}

# median: the median of the numbers on stdin, one a line (the mean of the middle two
# when their count is even).
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# rotated ROUND SYSTEM...: the systems in turn order for round ROUND (1-based), rotated by
# one place each round, so that no system always runs first or last in a round (a
# machine whose load drifts within a round otherwise favours one of them every time).
rotated() {
  local r=$1 i
  shift
  for ((i = 0; i < $#; i++)); do
    local j=$(((i + r - 1) % $# + 1))
    echo "${!j}"
  done
}
