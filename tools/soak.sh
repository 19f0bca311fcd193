#!/usr/bin/env bash
# The long soak: the CI soak test (tests/soak.rs: concurrent training runs killed with
# SIGKILL/SIGTERM at seeded points and resumed, compared byte for byte with an
# uninterrupted run) repeated with more kills per run and a new seed each round, until
# the time budget is spent.
#   tools/soak.sh [SECONDS=180] [WORKERS=4] [KILLS=8]
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-180}
workers=${2:-4}
kills=${3:-8}
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
cargo build --release --bin cliptune --test soak >/dev/null
start=$(date +%s)
round=0
while (( $(date +%s) - start < budget )); do
  round=$((round + 1))
  echo "[soak] round $round: $workers runs x $kills kills, seed $round"
  if ! out=$(CLIPTUNE_SOAK_WORKERS=$workers CLIPTUNE_SOAK_KILLS=$kills CLIPTUNE_SOAK_SEED=$round \
      cargo test --release --test soak -- --quiet 2>&1); then
    echo "$out" | grep -vE "^\[train\]" | tail -40
    echo "[soak] round $round FAILED"
    exit 1
  fi
  echo "$out" | grep -E "test result" || true
done
echo "[soak] $round rounds in $(( $(date +%s) - start )) s: every run whole and byte-identical"
