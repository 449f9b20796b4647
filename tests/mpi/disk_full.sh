#!/bin/sh
# A disk that fills during a run: the trace stays readable with what was written before, says
# failed, and every rank exits non-zero (no hang). Needs a small tmpfs: mounted here when the
# test may mount (root in a container or VM); otherwise it is skipped (exit 77).
# usage: disk_full.sh HAT MODEL SRC_DIR PYTHON
set -u
hat=$1 model=$2 src=$3 python=$4
dir=$(mktemp -d "${TMPDIR:-/tmp}/hat_diskfull.XXXXXX")
cleanup() { umount "$dir/fs" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
mkdir "$dir/fs"
if ! mount -t tmpfs -o size=1400k tmpfs "$dir/fs" 2>/dev/null; then
  echo "disk_full: cannot mount a small tmpfs here (not root?): skipped"; exit 77
fi
cat >"$dir/run.ini" <<INI
[run]
mode = ushape
trace = $dir/fs/t.h5
[model]
path = $model
[profiles]
links = $src/configs/links.ini
devices = $src/configs/devices.ini
[devices]
count = 2
link = ethernet
prompt = "Write a long story about a lighthouse keeper and the sea."
max_tokens = 400
INI
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader \
OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 \
  timeout 120 mpiexec -n 3 "$hat" run --config "$dir/run.ini" >"$dir/out" 2>&1
rc=$?
if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then cat "$dir/out"; echo "disk_full: exit $rc (expected a failure, no hang)"; exit 1; fi
grep -q "disk full" "$dir/out" || { cat "$dir/out"; echo "disk_full: no message names the full disk"; exit 1; }
"$python" - "$dir/fs/t.h5" <<'PY' || exit 1
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    st, n = f.attrs["status"], len(f["tokens"])
    print(f"disk_full: trace readable, status {st!r}, {n} tokens, {len(f['steps'])} steps")
    if not st.startswith("failed") or n == 0:
        sys.exit("disk_full: expected a failed trace holding the tokens written before")
PY
ls "$dir/fs" | grep -q reserve && { echo "disk_full: the reserve file was left behind"; exit 1; }
echo "disk_full OK (exit $rc)"
