#!/usr/bin/env bash
# How the shipped tutor adapter (chatkit/adapters/tutor) was made. ~30-40 min on 2 CPU cores.
# 1. synthesize grounded conversations from the built-in collections, keeping evaluation questions out;
# 2. train on them plus the gold conversations; 3. compare with the base model on corpora/qa/dev.jsonl;
# 4. copy it into the package with bf16 weights and the comparison that decides whether it is the default.
set -euo pipefail
cd "$(dirname "$0")/.."
CK=".venv/bin/chatkit"
OUT="${TUTOR_WORK:-/tmp/tutor}"
LIMIT="${TUTOR_EVAL_LIMIT:-60}"
mkdir -p "$OUT"
$CK data synth --collection curriculum --collection handbook --out "$OUT/synth.jsonl" --n 320 \
    --exclude corpora/qa/dev.jsonl --exclude corpora/qa/test.jsonl --exclude corpora/conversations/val.jsonl --force
cat corpora/conversations/train.jsonl "$OUT/synth.jsonl" > "$OUT/train.jsonl"
cat corpora/conversations/val.jsonl "$OUT/synth.val.jsonl" > "$OUT/val.jsonl"
# lora_dropout 0.05 and no gradient checkpointing: how the shipped adapter was trained, before the defaults changed.
$CK --set training.max_length=768 --set training.epochs=1 --set training.learning_rate=0.0003 --set training.lora_dropout=0.05 \
    --set training.gradient_checkpointing=false \
    train sft --data "$OUT/train.jsonl" --val "$OUT/val.jsonl" --name tutor
$CK eval compare --qa corpora/qa/dev.jsonl --adapter tutor --style generative --limit "$LIMIT"
.venv/bin/python scripts/ship_adapter.py tutor
