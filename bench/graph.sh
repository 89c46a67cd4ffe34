#!/usr/bin/env bash
# Knowledge-graph extraction: the local extractor's throughput over real chunks (the Debian
# Reference, English and Simplified Chinese, as `zhiku parse` chunks it), and what building the
# graph adds to a whole ingestion (the same files ingested with the graph on and off, in one run).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
set -euo pipefail
CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
DOCS="${ZHIKU_TEST_DEBIAN_REFERENCE:-$CACHE/debian-reference/usr/share/debian-reference}"
MODELS="${ZHIKU_TEST_MODELS:-$CACHE/test-data/models}"
[ -f "$DOCS/ch04.en.html" ] || { echo "run scripts/test.sh first (it fetches the Debian Reference)"; exit 1; }
cd "$ROOT"
cargo build --release -q -p zhiku-cli
cargo build --release -q -p zhiku-graph --example extract
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/release"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
export ZHIKU_MODELS_EMBEDDING="$MODELS/all-MiniLM-L6-v2"

for lang in en zh-cn; do
  "$TARGET/zhiku" --data-dir "$work/parse" parse "$DOCS"/*."$lang".html --json > "$work/$lang.json"
done
echo "## Local extractor throughput (release, best of 3 per document)"
echo
"$TARGET/examples/extract" "$work/en.json" "$work/zh-cn.json" --rounds 3
echo

echo "## Ingestion with and without the graph (release, English and Chinese HTML)"
echo
echo "| graph | seconds | chunks | entities | relations |"
echo "|---|---|---|---|---|"
declare -A took
for graph in false true; do
  start=$(date +%s.%N)
  out=$(ZHIKU_GRAPH_ENABLED=$graph "$TARGET/zhiku" --data-dir "$work/$graph" ingest "$DOCS"/*.html --kb ref --json)
  took[$graph]=$(python3 -c "print($(date +%s.%N) - $start)")
  chunks=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chunks"])')
  counts='{"entities":0,"relations":0}'
  if [ "$graph" = true ]; then counts=$("$TARGET/zhiku" --data-dir "$work/$graph" graph build --kb ref --json); fi
  ents=$(echo "$counts" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("entities",0))')
  rels=$(echo "$counts" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("relations",0))')
  printf '| %s | %.1f | %s | %s | %s |\n' "$graph" "${took[$graph]}" "$chunks" "$ents" "$rels"
done
printf '\nwith graph / without: **%.2f×** the time\n' "$(python3 -c "print(${took[true]} / ${took[false]})")"
