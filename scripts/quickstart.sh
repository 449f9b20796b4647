#!/usr/bin/env bash
# One command on a fresh machine: install dependencies, fetch the bundled real model, build, fit
# the devices' draft adapter (once: a few minutes; skipped when up to date) and run the main job: a
# small HAT run under mpirun (configs/quickstart.ini: one cloud rank and two emulated edge devices
# on Wi-Fi and 4G links drafting tokens that the cloud verifies, different prompts at once). It
# prints each device's text, TTFT/TBT, acceptance and tokens per round per device and overall,
# bytes per token, the cloud's batch sizes, and writes the HDF5 trace results/quickstart.h5
# (checked with analysis/check_trace.py).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/fetch_model.sh
./scripts/python_env.sh
./scripts/build.sh
./scripts/calibrate.sh --forms linear
mkdir -p results
# As root, Open MPI needs these two; more ranks than cores needs oversubscription, and idle ranks
# must yield the CPU (see docs/running.md, "On one machine").
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ob1 OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
echo "== mpiexec -n 3 hat run --config configs/quickstart.ini (1 cloud rank + 2 devices) =="
mpiexec -n 3 ./build/hat run --config configs/quickstart.ini --overwrite
.venv/bin/python analysis/check_trace.py results/quickstart.h5 --expect-devices 2
