#!/usr/bin/env bash
# The Python used by the tests and analysis scripts (h5py + numpy) in the project's virtual
# environment .venv/ (created if missing; the reference tools of setup_reference.sh share it).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c "import h5py, numpy" 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "h5py==3.16.0" "numpy>=1.26"
fi
.venv/bin/python -c "import h5py, numpy; print('python env: h5py', h5py.__version__, 'numpy', numpy.__version__)"
