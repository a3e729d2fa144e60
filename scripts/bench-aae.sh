#!/usr/bin/env bash
# Anti-entropy figures, in one run:
#  1. write throughput of a 3-node dev cluster with hash trees on, then off (--no-aae),
#     alternated twice so that drift of the machine shows;
#  2. a partitioned replica misses writes (read repair off); one `quorumkv repair` run
#     then reports exchanges, segments differed, keys repaired and bytes sent, and a second
#     run (nothing left to repair) shows the cost of comparing equal replicas.
# Usage: scripts/bench-aae.sh [REQUESTS] [DIVERGENT_KEYS]   (defaults 40000, 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-40000}
divergent=${2:-1000}
work=$(mktemp -d)
devpid=""
trap '[ -n "$devpid" ] && kill "$devpid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/quorumkv" ./cmd/quorumkv
q="$work/quorumkv"

dev() { # dev NAME [server flags] : starts a 3-node cluster, sets $addr and $devpid
  "$q" dev --data "$work/$1" --base-port 0 --debug-faults --server-flags "${2:-}" >"$work/$1.out" 2>&1 &
  devpid=$!
  for _ in $(seq 150); do grep -q 'Ctrl-C stops' "$work/$1.out" && break; sleep 0.2; done
  addr=$(awk '$1=="n1"{print $2}' "$work/$1.out")
  [ -n "$addr" ] || { cat "$work/$1.out"; exit 1; }
}
stopdev() { kill "$devpid"; wait "$devpid" 2>/dev/null || true; devpid=""; }

echo "== write throughput, 3 nodes, N=3, W=quorum, 32 clients, 100-byte values, $requests puts"
for round in 1 2; do
  dev "on$round"
  echo -n "trees on:  "; "$q" bench --addr "$addr" --requests "$requests" --ops put 2>/dev/null
  stopdev
  dev "off$round" "--no-aae"
  echo -n "trees off: "; "$q" bench --addr "$addr" --requests "$requests" --ops put 2>/dev/null
  stopdev
done

echo "== repair after $divergent writes missed by one replica"
dev repair
addr3=$(awk '$1=="n3"{print $2}' "$work/repair.out")
others=$(awk '$1=="n1"||$1=="n2"{print $2}' "$work/repair.out")
curl -sf -X PUT -d '{"read_repair":"none"}' "http://$addr/v1/buckets/bench" >/dev/null
"$q" bench --addr "$addr" --requests "$requests" --ops put 2>/dev/null >/dev/null   # data every replica has
for h in $others; do curl -sf -X POST -d '{"drop":["n3"]}' "http://$h/v1/debug/faults" >/dev/null; done
curl -sf -X POST -d '{"drop":["n1","n2"]}' "http://$addr3/v1/debug/faults" >/dev/null
"$q" bench --addrs "$(echo $others | tr ' ' ',')" --requests "$divergent" --ops put --w 2 2>/dev/null >/dev/null
for h in $others $addr3; do curl -sf -X POST -d '{"drop":[]}' "http://$h/v1/debug/faults" >/dev/null; done
echo -n "first run:  "; "$q" repair --addr "$addr3" 2>/dev/null
echo -n "second run: "; "$q" repair --addr "$addr3" 2>/dev/null
curl -sf "http://$addr3/v1/admin/aae" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("tree memory on n3: %.1f MiB for %d partitions" % (d["tree_bytes"]/1048576, len(d["roots"])))'
