#!/usr/bin/env bash
# Memory and time of parse + clean + chunk on one huge text file (generated: ~145 MB of English
# sentences), to watch how peak RSS grows with file size. Not part of the test suite.
#   bench/huge-text.sh [lines]     (default 2,000,000 lines, ~145 MB)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
[ -x /usr/bin/time ] || as_root apt-get install -y -qq time >/dev/null
install_system_packages
build_zhiku
install_models "$CACHE/test-data"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/data"
ln -s "$CACHE/test-data/models" "$WORK/data/models"
python3 - "$WORK/huge.txt" "${1:-2000000}" <<'PY'
import random, sys
random.seed(1)
words = "alpha beta gamma delta server policy leave budget network storage".split()
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(" ".join(random.choice(words) for _ in range(12)) + ".\n" if i % 10 else "\n")
PY
size=$(stat -c %s "$WORK/huge.txt")
/usr/bin/time -f '%e %M' -o "$WORK/time" "$ZHIKU_BIN" --data-dir "$WORK/data" parse "$WORK/huge.txt" >/dev/null
read -r secs kb < "$WORK/time"
python3 -c "
size, secs, kb = $size, $secs, $kb
print('| file | seconds | MB/s | peak RSS | RSS / file size |')
print('|---|---|---|---|---|')
print(f'| {size/1e6:.0f} MB text | {secs:.1f} | {size/1e6/secs:.1f} | {kb/1024:.0f} MiB | {kb*1024/size:.1f}x |')
"
