#!/usr/bin/env bash
# Fine-tuning end to end on real documents: SmolLM2-135M writes question/answer pairs from
# Debian Reference chapters (how many chunks per second it reads, how many pairs survive the
# checks and why the others do not), then a rank-8 LoRA is trained on the CPU: tokens per
# second of training (forward and backward over whole sequences) and the loss on the held-out
# pairs before and after.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
set -euo pipefail
CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
DOCS="${ZHIKU_TEST_DEBIAN_REFERENCE:-$CACHE/debian-reference/usr/share/debian-reference}"
MODELS="${ZHIKU_TEST_MODELS:-$CACHE/test-data/models}"
CHUNKS="${CHUNKS:-150}"
EPOCHS="${EPOCHS:-2}"
LR="${LR:-5e-4}"
[ -f "$DOCS/ch02.en.html" ] || { echo "run scripts/test.sh first (it fetches the Debian Reference)"; exit 1; }
cd "$ROOT"
cargo build --release -q -p zhiku-cli
Z="${CARGO_TARGET_DIR:-$ROOT/target}/release/zhiku"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
export ZHIKU_MODELS_EMBEDDING="$MODELS/all-MiniLM-L6-v2" ZHIKU_MODELS_LLM="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
zk() { "$Z" --data-dir "$work/data" "$@"; }
zk ingest "$DOCS"/ch0[2-4].en.html --kb deb --json > /dev/null

start=$(date +%s.%N)
zk finetune dataset --kb deb --out "$work/train.jsonl" --max-chunks "$CHUNKS" --json > "$work/dataset.json"
took=$(python3 -c "print($(date +%s.%N) - $start)")
echo "## Dataset generation (release, 2 cores, SmolLM2-135M Q4_1, one pair per chunk, JSON grammar)"
echo
python3 - "$work/dataset.json" "$took" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); took = float(sys.argv[2]); g = d["generated"]
print("| chunks read | seconds | chunks/s | pairs kept | train / validation | rejected |")
print("|---|---|---|---|---|---|")
rejected = ", ".join(f"{k} {v}" for k, v in sorted(g["rejected"].items()))
print(f"| {g['read']} | {took:.0f} | {g['read']/took:.2f} | {g['kept']} ({100*g['kept']/max(g['read'],1):.0f}%) | {d['train']} / {d['validation']} | {rejected} |")
PY
echo
train_count=$(wc -l < "$work/train.jsonl")
STEPS=$(( (EPOCHS * train_count + 3) / 4 ))
echo "## LoRA training (release, 2 cores, rank 8 on all 7 projections, batch 4, lr $LR, $EPOCHS epochs = $STEPS steps)"
echo
start=$(date +%s.%N)
zk finetune train --data "$work/train.jsonl" --eval "$work/train.validation.jsonl" --steps "$STEPS" --batch 4 \
  --learning-rate "$LR" --out "$work/adapter.gguf" --json > "$work/train.json"
took=$(python3 -c "print($(date +%s.%N) - $start)")
python3 - "$work/train.json" "$took" "$(stat -c %s "$work/adapter.gguf")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); took = float(sys.argv[2]); size = int(sys.argv[3])
print("| steps | seconds (all) | training tokens/s | train loss first → last | validation loss before → after | adapter |")
print("|---|---|---|---|---|---|")
print(f"| {r['steps']} | {took:.0f} | {r['tokens_per_second']:.0f} | {r['train_loss_first']:.3f} → {r['train_loss_last']:.3f} | "
      f"{r['eval_loss_before']:.3f} → {r['eval_loss_after']:.3f} ({100*(r['eval_loss_after']/r['eval_loss_before']-1):+.0f}%) | {size/2**20:.1f} MiB |")
PY
