#!/usr/bin/env bash
# Every target for SECONDS (default 600), one after another, at the lowest priority, over a
# working copy of its committed corpus; then the new inputs that add coverage are merged
# into fuzz/corpus/TARGET (libFuzzer -merge=1: the committed seeds stay, only new coverage
# is added). Logs in fuzz/logs/, crash/hang/OOM inputs in fuzz/artifacts/TARGET/.
# Build first: `cargo +nightly fuzz build -s none` (in fuzz/).
# Usage: fuzz/run_all.sh [SECONDS] [TARGET...] (several at once: one call per target)
set -u
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=${*:-model_dir adapter_dir sprite_sheet captions tokenizer image}
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p logs work artifacts
for t in $targets; do
  rm -rf "work/$t" && mkdir -p "work/$t" "artifacts/$t"
  cp corpus/"$t"/* "work/$t/"
  echo "== $t start $(date -u +%H:%M:%S)" | tee -a logs/summary.txt
  # -fork=1: one child at a time; a crash, hang or OOM is saved and fuzzing goes on, so
  # one run shows every failure class it meets in its time.
  nice -n 19 "$bin/$t" "work/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"logs/$t.log" 2>&1
  echo "== $t end $(date -u +%H:%M:%S) rc=$?" | tee -a logs/summary.txt
  tail -n 3 "logs/$t.log" | tee -a logs/summary.txt
  ls "artifacts/$t" | sed 's/^/artifact: /' | tee -a logs/summary.txt
  before=$(ls "corpus/$t" | wc -l)
  nice -n 19 "$bin/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 "corpus/$t" "work/$t" >"logs/$t.merge.log" 2>&1
  echo "== $t corpus: $before -> $(ls "corpus/$t" | wc -l) files, $(du -sh "corpus/$t" | cut -f1)" | tee -a logs/summary.txt
done
