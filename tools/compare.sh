#!/usr/bin/env bash
# Side-by-side: cliptune bench vs tools/bench_torch.py, alternating A B A B over ROUNDS rounds.
#
#   tools/compare.sh                                  # default set on vit-b-32
#   tools/compare.sh lora-step:32 embed-text:64       # chosen workload:batch pairs
#   CONFIG=vit-b-16 ROUNDS=3 ITERS=5 WARMUP=1 DEVICE=cpu tools/compare.sh
#
# Needs target/release/cliptune (cargo build --release) and a Python with torch, transformers,
# peft and scikit-learn (PYTHON, default /work/venv/bin/python if present, else python3).
# Prints a table: medians (median over rounds of each run's median), the time ratio ours/torch
# (median over rounds, with min-max over rounds) and the peak-RSS ratio. Raw JSON lines are kept
# in $OUT (default target/compare-<date>.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/cliptune}
CONFIG=${CONFIG:-vit-b-32}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
WARMUP=${WARMUP:-1}
DEVICE=${DEVICE:-cpu}
if [ -z "${PYTHON:-}" ]; then
  if [ -x /work/venv/bin/python ]; then PYTHON=/work/venv/bin/python; else PYTHON=python3; fi
fi
OUT=${OUT:-target/compare-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
[ -x "$BIN" ] || { echo "error: $BIN not found: run cargo build --release first" >&2; exit 1; }
TORCH_DEVICE=$DEVICE
[ "$DEVICE" = gpu ] && TORCH_DEVICE=cuda
[ "$DEVICE" = auto ] && TORCH_DEVICE=cpu

if [ $# -gt 0 ]; then PAIRS=("$@"); else
  PAIRS=(embed-image:32 embed-text:32 lora-step:32 coop-step:32 linear-probe:0)
fi
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(uname -m) $(nproc) cores; config $CONFIG; rounds $ROUNDS; iters $ITERS; warmup $WARMUP; device $DEVICE" >&2

run_one() { # side workload batch round
  local side=$1 w=$2 b=$3 r=$4 line
  if [ "$side" = ours ]; then
    line=$("$BIN" bench --workload "$w" --config "$CONFIG" --batch "$b" --device "$DEVICE" \
      --iters "$ITERS" --warmup "$WARMUP" --json 2>/dev/null | tail -1) || true
  else
    line=$("$PYTHON" tools/bench_torch.py --workload "$w" --config "$CONFIG" --batch "$b" \
      --device "$TORCH_DEVICE" --iters "$ITERS" --warmup "$WARMUP" --json 2>/dev/null | tail -1) || true
  fi
  [ -n "$line" ] || line='{"error":"no output"}'
  echo "{\"side\":\"$side\",\"round\":$r,\"w\":\"$w\",\"b\":$b,\"r\":$line}" >> "$OUT"
  echo "  round $r $side $w batch $b: $(echo "$line" | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(d.get("median_s"), "s", d.get("error",""))')" >&2
}

for r in $(seq 1 "$ROUNDS"); do
  for p in "${PAIRS[@]}"; do
    w=${p%%:*}; b=${p##*:}
    run_one ours "$w" "$b" "$r"
    run_one torch "$w" "$b" "$r"
  done
done

"$PYTHON" - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = []
for x in rows:
    k = (x["w"], x["b"])
    if k not in keys:
        keys.append(k)
def med(v):
    return statistics.median(v) if v else float("nan")
print(f"| workload | batch | ours median s | torch median s | time ratio ours/torch (min-max) | RSS ours MiB | RSS torch MiB | RSS ratio |")
print("|---|---|---|---|---|---|---|---|")
for k in keys:
    by = {}
    for x in rows:
        if (x["w"], x["b"]) == k and x["r"].get("median_s"):
            by.setdefault(x["round"], {})[x["side"]] = x["r"]
    pairs = [v for v in by.values() if "ours" in v and "torch" in v]
    o = [v["ours"]["median_s"] for v in by.values() if "ours" in v]
    t = [v["torch"]["median_s"] for v in by.values() if "torch" in v]
    ratio = [p["ours"]["median_s"] / p["torch"]["median_s"] for p in pairs]
    ro = [v["ours"]["peak_rss_mib"] for v in by.values() if "ours" in v]
    rt = [v["torch"]["peak_rss_mib"] for v in by.values() if "torch" in v]
    rr = [p["ours"]["peak_rss_mib"] / p["torch"]["peak_rss_mib"] for p in pairs]
    span = f"{med(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})" if ratio else "n/a"
    print(f"| {k[0]} | {k[1]} | {med(o):.4f} | {med(t):.4f} | {span} | {med(ro):.0f} | {med(rt):.0f} | {med(rr):.2f} |")
errs = [x for x in rows if x["r"].get("error")]
for x in errs:
    print(f"\nNOTE: {x['side']} {x['w']} round {x['round']}: {x['r']['error']}")
PY
