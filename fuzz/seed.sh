#!/usr/bin/env bash
# Builds the seed corpus for the `prepare` fuzz target from the repository's own fixtures: each
# file once per parser-selecting first byte that fits its format, so the fuzzer starts from valid
# PDFs, Office packages, e-mails, archives and text. Then runs the fuzzer:
#   fuzz/seed.sh [seconds]        (default 600; needs `cargo install cargo-fuzz`)
set -euo pipefail
cd "$(dirname "$0")"
corpus=corpus/prepare
mkdir -p "$corpus"
seed() { # selector-byte file
  local out="$corpus/$(basename "$2").$1"
  { printf "\\x$(printf %02x "$1")"; cat "$2"; } > "$out"
}
# Selector indices follow NAMES in fuzz_targets/prepare.rs.
for f in ../crates/zhiku-ingest/tests/fixtures/office/* ../crates/zhiku-ingest/tests/fixtures/pdf/*; do
  case "$f" in
    *.docx) seed 8 "$f" ;; *.xlsx) seed 9 "$f" ;; *.pptx) seed 10 "$f" ;;
    *.odt) seed 11 "$f" ;; *.ods) seed 12 "$f" ;; *.odp) seed 13 "$f" ;; *.pdf) seed 7 "$f" ;;
  esac
done
for f in ../crates/zhiku-cli/tests/fixtures/mail/*; do seed 14 "$f"; seed 17 "$f"; done
printf '# Title\n\nSome *text* with a | table | here |\n|---|---|\n| a | b |\n' > "$corpus/md.seed"; seed 1 "$corpus/md.seed"; rm "$corpus/md.seed"
printf '<html><body><nav>x</nav><h1>T</h1><p>Body.</p><table><tr><td>a</td><td>b</td></tr></table></body></html>' > "$corpus/h.seed"; seed 2 "$corpus/h.seed"; rm "$corpus/h.seed"
printf 'name,team\nalice,ops\n' > "$corpus/c.seed"; seed 3 "$corpus/c.seed"; rm "$corpus/c.seed"
printf '[{"a":1,"b":"x"}]' > "$corpus/j.seed"; seed 5 "$corpus/j.seed"; rm "$corpus/j.seed"
pdf="${ZHIKU_TEST_DEBIAN_REFERENCE:-$HOME/.cache/zhiku/debian-reference/usr/share/debian-reference}/debian-reference.en.pdf"
if [ -f "$pdf" ]; then head -c 200000 "$pdf" > "$corpus/pdf.seed"; seed 7 "$corpus/pdf.seed"; rm "$corpus/pdf.seed"; fi
# The fuzzing instrumentation needs unstable rustc flags; the stable toolchain allows them this way.
# -O: release build as shipped (without it, debug_assert!s inside dependencies, e.g. mail-parser's
# "Invalid part ID", abort on inputs the release build handles).
RUSTC_BOOTSTRAP=1 cargo fuzz run -O --sanitizer none prepare "$corpus" -- -max_total_time="${1:-600}" -rss_limit_mb=2048 -timeout=20
