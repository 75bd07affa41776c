#!/usr/bin/env bash
# The one test command (README, .ci/run): sets up what the tests need, then checks formatting,
# lints with warnings as errors, and runs every test of the workspace.
#
# Tests start their own stand-ins (moto's server, from .tools/ which setup.sh fills); nothing
# has to be running first. They mount small tmpfs
# folders to simulate a full and a read-only disk, so they run as root (as CI does here).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup (stand-ins into .tools/)"
bash scripts/setup.sh

step "toolchain"
cargo --version
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "cargo-nextest not found: falling back to cargo test"
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --locked --no-fail-fast
else
    cargo test --workspace --all-features --locked --no-fail-fast
fi
