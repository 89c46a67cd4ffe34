#!/usr/bin/env bash
# PDF benchmark: pages per second of parse + clean + chunk (no embedding) with `zhiku parse`,
# side by side in one run with poppler's `pdftotext` on the same files (the Debian Reference PDFs,
# English and Simplified Chinese), and the peak RSS of each. Not part of the test suite; prints a
# Markdown table. The floor in the ingestion issue: zhiku >= 0.5x pdftotext's pages/s.
#
#   bench/pdf.sh              # the dev build scripts/test.sh makes
#   PROFILE=release bench/pdf.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
DOCS="$CACHE/debian-reference/usr/share/debian-reference"
[ -f "$DOCS/debian-reference.en.pdf" ] || { echo "run scripts/test.sh once first (it fetches the documents)" >&2; exit 1; }
command -v pdftotext >/dev/null || as_root apt-get install -y -qq poppler-utils >/dev/null
[ -x /usr/bin/time ] || as_root apt-get install -y -qq time >/dev/null
install_system_packages
PROFILE="${PROFILE:-debug}"
if [ "$PROFILE" = release ]; then
  (cd "$ROOT" && cargo build --locked --release -p zhiku-cli)
  BIN="$CARGO_TARGET_DIR/release/zhiku"
else
  build_zhiku
  BIN="$ZHIKU_BIN"
fi
install_models "$CACHE/test-data"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/data"
ln -s "$CACHE/test-data/models" "$WORK/data/models"
PDFS=("$DOCS/debian-reference.en.pdf" "$DOCS/debian-reference.zh-cn.pdf")
RUNS=5

pages=0
for pdf in "${PDFS[@]}"; do pages=$((pages + $(pdfinfo "$pdf" | awk '/^Pages:/ {print $2}'))); done

# Best of $RUNS wall times and the peak RSS, over all files in one process per tool and run.
measure() { # name command...
  local best="" rss=0
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    read -r secs kb < "$WORK/time"
    best=$(python3 -c "print(min(float('$secs'), float('${best:-inf}')))")
    rss=$(( kb > rss ? kb : rss ))
  done
  echo "$best $rss"
}
export PDFS_LIST="${PDFS[*]}"
read -r p_secs p_rss < <(measure bash -c 'for pdf in $PDFS_LIST; do pdftotext "$pdf" -; done')
read -r z_secs z_rss < <(measure "$BIN" --data-dir "$WORK/data" parse "${PDFS[@]}")

python3 - "$pages" "$p_secs" "$p_rss" "$z_secs" "$z_rss" "$PROFILE" "$(nproc)" <<'PY'
import sys
pages, p_s, p_rss, z_s, z_rss, profile, cores = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
print(f"Debian Reference PDFs (en + zh-cn), {pages} pages; best of 5 runs; zhiku {profile} build, {cores} cores\n")
print("| tool | seconds | pages/s | peak RSS |")
print("|---|---|---|---|")
print(f"| pdftotext (poppler, text only) | {p_s:.2f} | {pages/p_s:.0f} | {p_rss/1024:.0f} MiB |")
print(f"| zhiku parse (text, clean, chunk with the WordPiece tokenizer) | {z_s:.2f} | {pages/z_s:.0f} | {z_rss/1024:.0f} MiB |")
print(f"\nzhiku / pdftotext pages/s: **{p_s/z_s:.2f}x** (floor 0.5x)")
PY
