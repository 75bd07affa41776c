#!/usr/bin/env bash
# Builds bench/floor.c (the read floor) against the SQLite source that the sluice binary bundles:
# the libsqlite3-sys version Cargo.lock pins, from Cargo's registry source folder (a `cargo
# build` has unpacked it). Prints the binary's path. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
version="$(awk '/^name = "libsqlite3-sys"/{getline; gsub(/"/, "", $3); print $3}' "$root/Cargo.lock")"
src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/libsqlite3-sys-"$version"/sqlite3 2>/dev/null | head -1)"
if [ -z "$src" ] || [ ! -f "$src/sqlite3.c" ]; then
    echo "floor: the SQLite source of libsqlite3-sys $version is not unpacked; run cargo build -p sluice-cli first" >&2
    exit 2
fi
out="$root/.bench/floor"
mkdir -p "$out"
bin="$out/floor-$version"
if [ ! -x "$bin" ]; then
    # The flags libsqlite3-sys's build script compiles the bundled source with (rusqlite's
    # "bundled" feature), at the release profile's optimisation (-O3, as cc-rs gives it).
    cc -O3 -DSQLITE_CORE -DSQLITE_DEFAULT_FOREIGN_KEYS=1 -DSQLITE_ENABLE_API_ARMOR \
       -DSQLITE_ENABLE_COLUMN_METADATA -DSQLITE_ENABLE_DBSTAT_VTAB -DSQLITE_ENABLE_FTS3 \
       -DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_JSON1 \
       -DSQLITE_ENABLE_LOAD_EXTENSION=1 -DSQLITE_ENABLE_MEMORY_MANAGEMENT -DSQLITE_ENABLE_RTREE \
       -DSQLITE_ENABLE_STAT4 -DSQLITE_SOUNDEX -DSQLITE_THREADSAFE=1 -DSQLITE_USE_URI \
       -I "$src" "$root/bench/floor.c" "$src/sqlite3.c" -o "$bin" -lpthread -ldl -lm
fi
echo "$bin"
