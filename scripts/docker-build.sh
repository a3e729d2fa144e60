#!/usr/bin/env bash
# Builds the quorumkv image without pulling any image: a static binary on the host into
# dist/, then the FROM scratch Dockerfile around it.
# Usage: scripts/docker-build.sh [TAG]   (default quorumkv)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-quorumkv}
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o dist/quorumkv ./cmd/quorumkv
docker build -t "$tag" .
