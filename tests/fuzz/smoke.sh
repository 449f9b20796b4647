#!/bin/sh
# ctest fuzz_smoke: scripts/fuzz.sh for 15 s a target; skipped (77) where clang is not installed.
command -v clang >/dev/null 2>&1 || { echo "fuzz_smoke: clang is not installed: skipped"; exit 77; }
exec "$(dirname "$0")/../../scripts/fuzz.sh" --seconds 15
