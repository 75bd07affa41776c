#!/usr/bin/env bash
# run.sh — the one entry point of the whole-pipeline export benchmark.
#
#   bench/run.sh [--rows N] [--runs K] [--sluice PATH] [--only a,b] [--workdir DIR]
#
# 1. bench/setup.sh: installs the reference tools (Sling in .bench/venv) if
#    missing; if that fails the run goes on and Sling is skipped with a reason.
# 2. Builds nothing: if the sluice binary is missing it prints the cargo
#    command that builds it (sluice is then skipped, or the run stops with
#    status 2 when --only names it).
# 3. Runs bench/export_bench.py with all arguments passed through; results go
#    to .bench/work/results-<rows>.json. See bench/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! bash bench/setup.sh >/dev/null; then
    echo "run.sh: WARNING: bench/setup.sh failed; reference tools it installs will be skipped" >&2
fi

# Find --sluice in the arguments (both "--sluice PATH" and "--sluice=PATH").
SLUICE="target/release/sluice"
prev=""
for a in "$@"; do
    case "$a" in
        --sluice=*) SLUICE="${a#--sluice=}" ;;
    esac
    if [ "$prev" = "--sluice" ]; then SLUICE="$a"; fi
    prev="$a"
done
case "$SLUICE" in /*) ;; *) SLUICE="$ROOT/$SLUICE" ;; esac
if [ ! -x "$SLUICE" ]; then
    echo "run.sh: sluice binary not found at $SLUICE" >&2
    echo "run.sh: build it first with:  cargo build --release -p sluice-cli" >&2
fi

exec python3 bench/export_bench.py "$@"
