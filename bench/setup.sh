#!/usr/bin/env bash
# setup.sh — installs the benchmark's reference tools into git-ignored folders
# inside the repo. Idempotent: does nothing that is already done.
#
#   .bench/venv        Python venv (python3 -m venv) holding the PyPI package
#                      `sling-linux-amd64`, which ships the Sling CLI as a plain
#                      binary (no console script): it lands at
#                      .bench/venv/lib/python3.X/site-packages/sling_linux_amd64/bin/sling-linux-amd64
#                      and its path is also exposed as sling_linux_amd64.SLING_BIN.
#   .bench/sling-home  SLING_HOME_DIR for the benchmark (keeps Sling's state
#                      out of ~/.sling).
#
# Also checks that the sqlite3 CLI is there (it is not installed from here:
# `apt-get install sqlite3` if it is missing) and that /.bench/ is in .gitignore.
# Prints the Sling binary's path on its last line of stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_DIR="$ROOT/.bench"
VENV="$BENCH_DIR/venv"
SLING_PKG="sling-linux-amd64"
# Pinned so reference figures stay comparable across runs; override with
# SLING_VERSION=x.y.z bench/setup.sh.
SLING_VERSION="${SLING_VERSION:-1.4.11}"

log() { echo "setup: $*" >&2; }

# .gitignore entry for the bench folder.
if ! grep -qxF '/.bench/' "$ROOT/.gitignore" 2>/dev/null; then
    log "adding /.bench/ to .gitignore"
    printf '/.bench/\n' >> "$ROOT/.gitignore"
fi

mkdir -p "$BENCH_DIR/sling-home" "$BENCH_DIR/work"

if ! command -v sqlite3 >/dev/null; then
    log "WARNING: sqlite3 CLI not found; install it with: apt-get install -y sqlite3"
fi

if [ "$(uname -m)" != "x86_64" ]; then
    log "WARNING: $SLING_PKG is built for x86_64, this machine is $(uname -m); Sling will be skipped"
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv at $VENV"
    python3 -m venv "$VENV"
fi

sling_bin() {
    "$VENV/bin/python" -c 'import sling_linux_amd64 as s; print(s.SLING_BIN)' 2>/dev/null
}
sling_version() {
    "$VENV/bin/python" -c 'import sling_linux_amd64 as s; print(s.SLING_VERSION)' 2>/dev/null
}

BIN="$(sling_bin || true)"
if [ -z "$BIN" ] || [ ! -x "$BIN" ] || [ "$(sling_version || true)" != "$SLING_VERSION" ]; then
    log "installing $SLING_PKG==$SLING_VERSION into $VENV (the wheel is ~100 MB)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SLING_PKG==$SLING_VERSION"
    BIN="$(sling_bin)"
fi

if [ ! -x "$BIN" ]; then
    log "ERROR: Sling binary not found after installing $SLING_PKG (expected at '$BIN')"
    exit 1
fi
log "sling: $BIN ($("$BIN" --version 2>/dev/null | tr -d '\n'))"
echo "$BIN"
