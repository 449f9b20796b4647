#!/bin/sh
# trace_py: analysis/check_trace.py on files written by the C trace writer (test_trace --keep):
# the consistent synthetic run must pass the full check, the SIGKILLed writer's file the schema
# check, and a tampered copy must fail with both tampered invariants named.
# usage: trace_py.sh TEST_TRACE PYTHON CHECK_TRACE_PY
set -eu
test_trace=$1 python=$2 check=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/hat_trace_py.XXXXXX")
trap 'rm -rf "$dir"' EXIT

"$test_trace" --keep "$dir" >/dev/null
"$python" "$check" --schema-only "$dir/new/complete.h5"
"$python" "$check" --expect-devices 3 "$dir/new/complete.h5"
"$python" "$check" --schema-only "$dir/killed.h5"

cp "$dir/new/complete.h5" "$dir/bad.h5"
"$python" - "$dir/bad.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    t = f["tokens"][...]; t["latency_s"][1] += 0.5; f["tokens"][...] = t
    s = f["steps"][...]; s["t_end"][0] = s["t_down_ready"][0] - 1.0; f["steps"][...] = s
PY
if "$python" "$check" "$dir/bad.h5" >"$dir/bad.out" 2>&1; then
    cat "$dir/bad.out"; echo "trace_py: the tampered trace passed"; exit 1
fi
if ! grep -q "latency" "$dir/bad.out" || ! grep -q "t_down_ready .* > t_end" "$dir/bad.out"; then
    cat "$dir/bad.out"; echo "trace_py: the checker missed a tampered value"; exit 1
fi
if "$python" "$check" "$dir/killed.h5" >"$dir/killed.out" 2>&1 || ! grep -q "not 'complete'" "$dir/killed.out"; then
    cat "$dir/killed.out"; echo "trace_py: the killed trace passed the full check"; exit 1
fi
echo "trace_py OK"
