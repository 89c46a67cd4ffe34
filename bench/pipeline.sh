#!/usr/bin/env bash
# Pipeline benchmark: ingest throughput (files, chunks/s), embedding throughput (sentences/s) and
# hybrid-search latency on a few thousand chunks of real documents (the Debian Reference, English
# and Simplified Chinese HTML). Not part of the test suite; prints a Markdown table.
#
#   bench/pipeline.sh            # uses ~/.cache/zhiku (models, documents) like scripts/test.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
DOCS="$CACHE/debian-reference/usr/share/debian-reference"
[ -f "$DOCS/ch04.en.html" ] || { echo "run scripts/test.sh once first (it fetches the documents)" >&2; exit 1; }
install_system_packages
build_zhiku
install_models "$CACHE/test-data"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
DATA="$WORK/data"
mkdir -p "$DATA"
ln -s "$CACHE/test-data/models" "$DATA/models"
Z=("$ZHIKU_BIN" --data-dir "$DATA")

mapfile -t FILES < <(ls "$DOCS"/ch*.en.html "$DOCS"/ch*.zh-cn.html)
start=$(date +%s.%N)
"${Z[@]}" ingest "${FILES[@]}" --kb bench --json > "$WORK/report.json"
end=$(date +%s.%N)
read -r files chunks < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["ingested"], r["chunks"])' "$WORK/report.json")
ingest_s=$(python3 -c "print(f'{$end-$start:.1f}')")

# Embedding alone: the first 2,000 chunk-sized lines of the English text.
python3 - "$DOCS" > "$WORK/lines.txt" <<'PY'
import gzip, sys, textwrap
text = gzip.open(sys.argv[1] + "/debian-reference.en.txt.gz", "rt", encoding="utf-8").read()
words = text.split()
for i in range(0, min(len(words), 2000 * 120), 120):
    print(" ".join(words[i:i + 120]))
PY
emb=$("${Z[@]}" embed --input "$WORK/lines.txt" --out "$WORK/vecs.npy" --json)

# Search questions about the Debian Reference, English and Chinese.
for i in 1 2 3 4 5; do cat "$ROOT/bench/debian-reference-questions.txt"; done > "$WORK/queries5.txt"
lat=$("$CARGO_TARGET_DIR/debug/examples/query_latency" "$DATA" bench "$WORK/queries5.txt")

python3 - "$files" "$chunks" "$ingest_s" "$emb" "$lat" <<'PY'
import json, sys
files, chunks, ingest_s, emb, lat = sys.argv[1:]
emb = json.loads(emb)
lat = dict(kv.split("=") for kv in lat.split())
print("| measure | value |")
print("|---|---|")
print(f"| files ingested (Debian Reference en + zh-cn HTML) | {files} |")
print(f"| chunks | {chunks} |")
print(f"| ingest wall time (parse+chunk+embed+store+index) | {ingest_s} s |")
print(f"| ingest throughput | {int(chunks)/float(ingest_s):.1f} chunks/s, {int(files)*60/float(ingest_s):.1f} docs/min (chapters of ~90 chunks) |")
print(f"| embedding throughput (120-word lines) | {emb['count']/emb['seconds']:.1f} sentences/s |")
print(f"| hybrid search latency over {chunks} chunks (n={lat['queries']}) | mean {lat['mean_ms']} ms, p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms |")
PY
