#!/usr/bin/env bash
# Configures and builds into build/ (or $1), Release. Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}; shift || true
mkdir -p "$dir"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
cmake --build "$dir" -j"$(nproc)" 2>&1 | grep -E "warning|error|Error" || true
test -x "$dir/hat" || { echo "build: $dir/hat was not built" >&2; exit 1; }
