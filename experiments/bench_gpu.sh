#!/usr/bin/env bash
# The GPU benchmark in one call, for a machine with a CUDA GPU and only CUDA + CMake installed
# (no MPI, HDF5, GSL or OpenBLAS needed): builds the GPU-only configuration, runs the CUDA tests
# (every kernel against CPU references; the backend's whole forward against the plain reference on
# synthetic models), then times the two ceilings, the kernels and the cloud step (bench_gpu).
#   experiments/bench_gpu.sh [--arch 90] [--out DIR] [--real DIR] [bench_gpu options: --shape --layers --ctx --reps --dtype]
# --real DIR: also the CUDA backend on the real model's middle layers (DIR from experiments/gpu_real.sh
# prep, carried to the GPU machine); its outputs (real_out.bin) go back for experiments/gpu_real.sh check.
# Results: DIR/bench_gpu.json and DIR/*.log (DIR defaults to $OUT when set, else results/gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=90 out=${OUT:-results/gpu} real=
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --real) real=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem --format=csv > "$out/gpu.txt" 2>&1 || true
cmake -S . -B build-gpu -DHAT_GPU_ONLY=ON -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" > "$out/configure.log" 2>&1 \
  || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" > "$out/build.log" 2>&1 || { grep -E "error" "$out/build.log" | head -30; exit 1; }
echo "== tests"
ctest --test-dir build-gpu -L cuda --output-on-failure > "$out/tests.log" 2>&1 && tests=passed || tests=FAILED
grep -E "cuda vs reference|cuda graphs|cuda tensor|a 4-token|Test +#|tests passed|FAIL" "$out/tests.log" | head -40 || true
if [ -n "$real" ]; then
  echo "== the real model's middle layers ($real: experiments/gpu_real.sh prep)"
  set +e
  ./build-gpu/tests/cuda/test_cuda_real "$real/middle.gguf" "$real/ref.bin" "$out/real_out.bin" 2>&1 | tee "$out/real.log"
  rc=${PIPESTATUS[0]}
  set -e
  case $rc in 0) realt=passed ;; 77) realt="skipped (no GPU)" ;; *) realt=FAILED; tests=FAILED ;; esac
  echo "real model: $realt; then on the CPU machine: experiments/gpu_real.sh check --out real_out.bin"
fi
echo "== benchmark"
./build-gpu/experiments/gpu/bench_gpu --json "$out/bench_gpu.json" "${args[@]}" 2>&1 | tee "$out/bench.log"
# a short context too: the 30 x 5 step reads every session's K/V, so its ratio to batch 1 grows with the context
echo "== benchmark, context 128"
./build-gpu/experiments/gpu/bench_gpu --json "$out/bench_gpu_ctx128.json" "${args[@]}" --ctx 128 2>&1 | tee "$out/bench_ctx128.log"
echo "tests: $tests"
[ "$tests" = passed ]
