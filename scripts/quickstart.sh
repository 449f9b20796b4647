#!/usr/bin/env bash
# One command on a fresh machine: install dependencies, build, fetch the bundled real model,
# and run the main job: the whole model on this machine, greedy, with load/speed statistics.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/fetch_model.sh
./scripts/build.sh
mkdir -p results
echo "== hat generate (SmolLM2-135M-Instruct Q4_1, 2 threads, greedy) =="
./build/hat generate --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
  --chat "Explain in two sentences why splitting a language model between a phone and a server can protect privacy." \
  --max-tokens 96 --threads 2 2> >(tee results/quickstart.log >&2)
