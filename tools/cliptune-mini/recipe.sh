#!/usr/bin/env bash
# The whole cliptune-mini recipe, from nothing to assets/cliptune-mini/:
#   1. fetch the emoji packages from the npm registry (tools/fetch_emoji.sh),
#   2. build the corpus: train captions + the held-out art style (tools/emoji-corpus),
#   3. pretrain with `cliptune pretrain` on the CPU backend,
#   4. evaluate on the held-out set with `cliptune eval` (the model card's numbers),
#   5. install the model files into assets/cliptune-mini/ (f16, ~11 MB).
# Run from the repository root:  tools/cliptune-mini/recipe.sh
# WORK (default /tmp/cliptune-mini) holds the downloads, corpus and model; EPOCHS and
# BATCH change the schedule (the shipped model: 25 epochs of 128, 50 min on 2 cores).
set -euo pipefail
WORK=${WORK:-/tmp/cliptune-mini}
EPOCHS=${EPOCHS:-25}
BATCH=${BATCH:-128}
INSTALL=${INSTALL:-assets/cliptune-mini}
mkdir -p "$WORK"

[ -d "$WORK/google" ] && [ -d "$WORK/fluent" ] || tools/fetch_emoji.sh "$WORK"
[ -f "$WORK/corpus/manifest.json" ] || cargo run --release --manifest-path tools/emoji-corpus/Cargo.toml -- \
    --google "$WORK/google" --fluent "$WORK/fluent" --out "$WORK/corpus"
cargo build --release
start=$(date +%s)
target/release/cliptune pretrain --data "$WORK/corpus/train.csv" --config cliptune-mini \
    --vocab-texts tools/cliptune-mini/vocab_texts.txt --template "an emoji of {}." \
    --epochs "$EPOCHS" --batch "$BATCH" --lr 1e-3 --weight-decay 0.1 --warmup 200 \
    --checkpoint-every 250 --heldout "$WORK/corpus/heldout.json" --device cpu --out "$WORK/model"
echo "pretrain wall time: $(( $(date +%s) - start )) s"
cp "$WORK/corpus/heldout.png" "$WORK/corpus/heldout.json" "$WORK/corpus/reference.png" "$WORK/corpus/reference.json" "$WORK/model/"
target/release/cliptune eval --model "$WORK/model" --device cpu --templates "$WORK/model/templates.txt" \
    --zero-shot "$WORK/model/heldout.json" --retrieval "$WORK/model/heldout.json" --json \
    --out "$WORK/model/heldout_eval.json"
mkdir -p "$INSTALL"
for f in config.json model.safetensors tokenizer.json preprocessor_config.json templates.txt \
         heldout.png heldout.json reference.png reference.json loss_curve.png pretrain_log.jsonl metrics.json heldout_eval.json; do  # + README.md (the card, by hand)
    cp "$WORK/model/$f" "$INSTALL/$f"
done
cp "$WORK/corpus/manifest.json" "$INSTALL/corpus_manifest.json"
echo "installed into $INSTALL"
