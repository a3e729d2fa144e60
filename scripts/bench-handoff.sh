#!/usr/bin/env bash
# Sloppy quorum and hinted handoff figures, in one run on a 5-node cluster (N=3, quorum):
#  1. write throughput with all nodes up, then with one node killed (kill -9): fallbacks
#     take its writes as hints;
#  2. the hints pending and the fallbacks' memory;
#  3. handoff rate when the node returns: keys/s and bytes/s until every hint is delivered.
# Usage: scripts/bench-handoff.sh [KEYS] [HINT_RATE_BYTES_PER_S]   (defaults 100000, 0 = unthrottled)
set -euo pipefail
cd "$(dirname "$0")/.."
keys=${1:-100000}
rate=${2:-0}
work=$(mktemp -d)
pids=()
trap 'kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/quorumkv" ./cmd/quorumkv
q="$work/quorumkv"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
declare -A HTTP RPC GOSSIP RESP
for i in 1 2 3 4 5; do HTTP[$i]=127.0.0.1:$(port); RPC[$i]=127.0.0.1:$(port); GOSSIP[$i]=127.0.0.1:$(port); RESP[$i]=127.0.0.1:$(port); done
start() {
  local i=$1 join=()
  [ "$i" != 1 ] && join=(--join "${GOSSIP[1]}")
  "$q" server --id "n$i" --data "$work/n$i" --http "${HTTP[$i]}" --resp "${RESP[$i]}" --rpc "${RPC[$i]}" \
    --gossip "${GOSSIP[$i]}" --hint-rate "$rate" --handoff-interval 1s "${join[@]}" >"$work/n$i.out" 2>"$work/n$i.log" &
  pids[$i]=$!
  for _ in $(seq 100); do grep -q 'quorumkv ready' "$work/n$i.out" 2>/dev/null && return; sleep 0.1; done
  echo "n$i did not start"; cat "$work/n$i.log"; exit 1
}
for i in 1 2 3 4 5; do start $i; done
alive() { curl -s "http://${HTTP[1]}/v1/cluster" | grep -o '"state":"alive"' | wc -l; }
for _ in $(seq 100); do [ "$(alive)" = 5 ] && break; sleep 0.1; done

addrs="${HTTP[1]},${HTTP[2]},${HTTP[4]},${HTTP[5]}"   # clients never talk to n3, the one we kill
echo "== write throughput, 5 nodes, N=3, W=quorum, 32 clients, 100-byte values"
echo -n "all up:       "; "$q" bench --addrs "$addrs" --requests 30000 --ops put 2>/dev/null
kill -9 "${pids[3]}"
echo -n "n3 killed:    "; "$q" bench --addrs "$addrs" --requests 30000 --ops put 2>/dev/null

pending() { local s=0; for i in 1 2 4 5; do s=$((s + $(curl -s "http://${HTTP[$i]}/v1/admin/hints" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending"])'))); done; echo $s; }
heap() { local s=0; for i in 1 2 4 5; do s=$((s + $(curl -s "http://${HTTP[$i]}/metrics" | awk '$1=="go_memstats_heap_inuse_bytes"{printf "%d", $2}'))); done; echo $s; }
rss() { local s=0; for i in 1 2 4 5; do s=$((s + $(awk '/VmRSS/{print $2}' "/proc/${pids[$i]}/status"))); done; echo $s; }
heap0=$(heap); rss0=$(rss)
echo "== $keys more writes with n3 down (W=2)"
"$q" bench --addrs "$addrs" --requests "$keys" --ops put --w 2 2>/dev/null
p=$(pending)
bytes=0; for i in 1 2 4 5; do bytes=$((bytes + $(curl -s "http://${HTTP[$i]}/v1/admin/hints" | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes"])'))); done
echo "hints pending on the fallbacks: $p ($bytes bytes on disk)"
echo "fallbacks' Go heap in use: $(( $(heap) / 1048576 )) MiB (was $(( heap0 / 1048576 )) MiB before the $keys writes); RSS $(( $(rss) / 1024 )) MiB (was $(( rss0 / 1024 )) MiB)"

echo "== handoff: restart n3 (hint rate ${rate} B/s, 0 = unthrottled)"
t0=$(date +%s.%N)
start 3
while [ "$(pending)" != 0 ]; do sleep 0.1; done
t1=$(date +%s.%N)
python3 -c "d=$t1-$t0; print(f'{$p} hints, {$bytes} bytes delivered in {d:.2f} s (restart included): {$p/d:,.0f} keys/s, {$bytes/d/1048576:.1f} MiB/s')"
