#!/usr/bin/env bash
# Embedding throughput (the model runtime issue): all-MiniLM-L6-v2 sentences/s, `zhiku embed`
# against onnxruntime running the same weights (bench/embedding_peer.py), same lines, same
# threads, in one run, best of 3 each, interleaved; the peer also checks that both give the same
# vectors. Not part of the test suite; prints Markdown.
#
#   bench/embedding.sh [LINES] [THREADS]    # default 1000 lines of 120 words, 2 threads
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
set -euo pipefail
CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
LINES="${1:-1000}"
THREADS="${2:-2}"
DOCS="${ZHIKU_TEST_DEBIAN_REFERENCE:-$CACHE/debian-reference/usr/share/debian-reference}"
MODELS="${ZHIKU_TEST_MODELS:-$CACHE/test-data/models}"
[ -f "$DOCS/debian-reference.en.txt.gz" ] || { echo "run scripts/test.sh first (it fetches the Debian Reference)"; exit 1; }
VENV="$CACHE/bench-venv"
"$VENV/bin/python" -c 'import onnx, onnxruntime, safetensors, tokenizers' 2>/dev/null || {
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy onnx onnxruntime safetensors tokenizers
}
(cd "$ROOT" && cargo build --locked --release -q -p zhiku-cli)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/zhiku"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
python3 - "$DOCS" "$LINES" > "$work/lines.txt" <<'PY'
import gzip, sys
words = gzip.open(sys.argv[1] + "/debian-reference.en.txt.gz", "rt", encoding="utf-8").read().split()
for i in range(0, min(len(words), int(sys.argv[2]) * 120), 120):
    print(" ".join(words[i:i + 120]))
PY
MODEL="$MODELS/all-MiniLM-L6-v2"
best_zhiku=999999; best_peer=999999; cosine=0
for round in 1 2 3; do
  s=$(RAYON_NUM_THREADS=$THREADS "$BIN" --data-dir "$work/data" embed --model "$MODEL" --input "$work/lines.txt" --threads "$THREADS" --out "$work/zhiku.npy" --json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
  best_zhiku=$(python3 -c "print(min($best_zhiku, $s))")
  peer=$("$VENV/bin/python" "$ROOT/bench/embedding_peer.py" "$MODEL" "$work/lines.txt" "$THREADS" "$work/zhiku.npy")
  p=$(echo "$peer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')
  cosine=$(echo "$peer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cosine_min"])')
  best_peer=$(python3 -c "print(min($best_peer, $p))")
done
n=$(wc -l < "$work/lines.txt")
python3 - "$n" "$best_zhiku" "$best_peer" "$cosine" "$THREADS" <<'PY'
import sys
n, z, p, c, t = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print(f"| engine ({t} threads, {n} lines of 120 words) | seconds | sentences/s |")
print("|---|---|---|")
print(f"| onnxruntime (same weights, graph optimisations on) | {p:.2f} | {n / p:.1f} |")
print(f"| zhiku embed | {z:.2f} | {n / z:.1f} |")
print(f"\nzhiku / onnxruntime: **{p / z:.2f}×** (floor in the model runtime issue: ≥ 0.8×); lowest cosine between their vectors: {c:.6f}")
PY
