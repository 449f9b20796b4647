#!/usr/bin/env bash
# The independent reference (llama.cpp through llama-cpp-python, built from source: several
# minutes) and the Python tools used to regenerate golden data and run the speed benchmark,
# in a project virtual environment .venv/. Not needed to build or test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
CMAKE_ARGS="-DGGML_NATIVE=ON" .venv/bin/python -m pip install -q \
  llama-cpp-python==0.3.36 gguf==0.19.0 numpy jinja2 unicodedata2==15.1.0
.venv/bin/python -c "import llama_cpp; print('reference: llama-cpp-python', llama_cpp.__version__)"
