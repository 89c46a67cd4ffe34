#!/usr/bin/env bash
# Installs what zhiku needs (system packages, models), builds it, ingests the bundled sample
# corpus and answers a sample question — all on the embedded default store.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA_DIR="${ZHIKU_DATA_DIR:-$HOME/.local/share/zhiku}"
install_system_packages
build_zhiku
install_models "$DATA_DIR"

log "ingesting examples/corpus into knowledge base 'demo'"
"$ZHIKU_BIN" --data-dir "$DATA_DIR" ingest "$ROOT/examples/corpus" --kb demo --acl group:staff
question="${1:-How many days of annual leave do full-time employees get?}"
log "zhiku ask \"$question\" --kb demo"
"$ZHIKU_BIN" --data-dir "$DATA_DIR" ask "$question" --kb demo
log "done. Try: $ZHIKU_BIN --data-dir $DATA_DIR search \"VPN\" --kb demo"
