#!/usr/bin/env bash
# The real-model check of the GPU backend, split over two machines (tests/cuda/real_ref.h): the
# whole model (98 MB) does not fit in what a GPU test machine accepts, its middle layers do.
#   experiments/gpu_real.sh prep     [--split A,B]   here: DIR/middle.gguf (layers [A, L-B), pruned)
#                                                    and DIR/ref.bin (greedy tokens, inputs, CPU outputs)
#   (GPU machine)  experiments/bench_gpu.sh --real DIR   -> real_out.bin beside bench_gpu.json
#   experiments/gpu_real.sh check    --out FILE      here: greedy tokens after the GPU middle vs the
#                                                    monolithic CPU engine's (exit 1 on a difference
#                                                    where the CPU engine's own margin is >= 0.5;
#                                                    near-ties are listed: see experiments/gpu/gpu_real.c)
#   experiments/gpu_real.sh pipeline                 all three here, the CPU backend in the GPU's place
# Common options: --build DIR [build] --model FILE [models/SmolLM2-135M-Instruct.Q4_1.gguf] --dir DIR [gpu-real]
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}; shift || true
build=build model=models/SmolLM2-135M-Instruct.Q4_1.gguf dir=gpu-real split=2,2 out=
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --split) split=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "gpu_real.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
tool=$build/experiments/gpu/gpu_real
[ -x "$tool" ] || { echo "gpu_real.sh: $tool not built (cmake --build $build)" >&2; exit 1; }
[ -f "$model" ] || { echo "gpu_real.sh: no model at $model (scripts/fetch_model.sh)" >&2; exit 1; }

prep() {
  mkdir -p "$dir"
  "$tool" prep "$model" "$dir/ref.bin" --split "$split"
  local a=${split%,*} b=${split#*,} L
  L=$(python3 -c "import sys; sys.path.insert(0, 'experiments'); import gguf_prune as g; print(g.block_count(sys.argv[1]))" "$model")
  python3 experiments/gguf_prune.py "$model" --layers "$a" $((L - b)) -o "$dir/middle.gguf"
  du -sh "$dir"
}

case $cmd in
  prep)
    prep
    echo "next, on the GPU machine: experiments/bench_gpu.sh --real $dir (carry $dir), then: $0 check --out real_out.bin" ;;
  check)
    [ -n "$out" ] || { echo "gpu_real.sh check: --out FILE (the GPU run's real_out.bin)" >&2; exit 2; }
    "$tool" check "$model" "$dir/ref.bin" "$out" ;;
  pipeline)
    prep
    echo "== the CPU engine's middle from the pruned file: bit-identical, every greedy token equal"
    "$tool" run "$dir/middle.gguf" "$dir/ref.bin" "$dir/out_cpu.bin" --backend cpu --expect-exact
    "$tool" check "$model" "$dir/ref.bin" "$dir/out_cpu.bin" --exact
    echo "== the middle with exact fp32 weights (what a GPU computes with): equal but for the CPU engine's near-ties"
    "$tool" run "$dir/middle.gguf" "$dir/ref.bin" "$dir/out_f32.bin" --backend cpu --f32
    "$tool" check "$model" "$dir/ref.bin" "$dir/out_f32.bin" ;;
  *) echo "usage: experiments/gpu_real.sh prep|check|pipeline [options] (see the header)" >&2; exit 2 ;;
esac
