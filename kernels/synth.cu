/* synth.cu — the synthetic weights of src/engine/synth.h generated on the device. synth_value is the
 * same inline __host__ __device__ function the CPU uses: integer hashing, an exact int->float
 * conversion and scaling by 2^-23, then one fmaf, so the fp32 values are bit-identical to the
 * CPU's; F16/BF16 outputs are those values rounded to nearest even. */
#include "common.cuh"

#include "engine/synth.h"

#define SYN_THREADS 256
#define SYN_MAX_BLOCKS 8192u

template <int OT>
static __global__ void __launch_bounds__(SYN_THREADS)
synth_kernel(void *out, size_t n, uint64_t i0, uint64_t seed, uint32_t tensor, float scale, float offset) {
    for (size_t i = (size_t)blockIdx.x * SYN_THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * SYN_THREADS)
        hk_store<OT>(out, i, synth_value(seed, tensor, i0 + (uint64_t)i, scale, offset));
}

static int synth_launch(cudaStream_t stream, void *out, hk_dtype out_t, uint64_t i0, size_t n, uint64_t seed,
                        uint32_t tensor, float scale, float offset) {
    static const char *const op = "hk_synth_fill";
    HK_CHECK(op, hk_dtype_ok(out_t), "out_t %d", (int)out_t);
    if (n == 0) return 0;
    HK_CHECK(op, out != NULL, "out %p", out);
    const unsigned grid = hk_grid_1d(n, SYN_THREADS, SYN_MAX_BLOCKS);
    switch (out_t) {
    case HK_F32: synth_kernel<HK_F32><<<grid, SYN_THREADS, 0, stream>>>(out, n, i0, seed, tensor, scale, offset); break;
    case HK_F16: synth_kernel<HK_F16><<<grid, SYN_THREADS, 0, stream>>>(out, n, i0, seed, tensor, scale, offset); break;
    case HK_BF16: synth_kernel<HK_BF16><<<grid, SYN_THREADS, 0, stream>>>(out, n, i0, seed, tensor, scale, offset); break;
    }
    return hk_launch_check(op, "synth_kernel");
}

extern "C" int hk_synth_fill(void *stream, void *out, hk_dtype out_t, size_t n, uint64_t seed, uint32_t tensor,
                             float scale, float offset) {
    return synth_launch((cudaStream_t)stream, out, out_t, 0, n, seed, tensor, scale, offset);
}

extern "C" int hk_synth_fill_range(void *stream, void *out, hk_dtype out_t, uint64_t i0, size_t n, uint64_t seed,
                                   uint32_t tensor, float scale, float offset) {
    return synth_launch((cudaStream_t)stream, out, out_t, i0, n, seed, tensor, scale, offset);
}
