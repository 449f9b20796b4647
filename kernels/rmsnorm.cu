/* rmsnorm.cu — out = x * rsqrt(mean(x^2) + eps) * w, one block per row.
 *
 * Numerics as the CPU engine: the sum of squares of the fp32 products x*x (fp32 partial sums per
 * thread, a tree over the block; the CPU sums in double: both are far inside fp32 output
 * tolerance), scale = 1 / sqrtf(mean + eps) with IEEE sqrt and division, then (x * scale) * w
 * rounded once to the output type. In place (out == x, F32) is allowed: each element is read
 * and then written by the same thread, after the block's reduction. */
#include "common.cuh"

#define RMS_THREADS 256

template <int OT>
static __global__ void __launch_bounds__(RMS_THREADS)
rmsnorm_kernel(void *out, const float *x, const float *__restrict__ w, int dim, float eps) {
    __shared__ float partial[RMS_THREADS / 32];
    __shared__ float s_scale;
    const size_t row = blockIdx.x;
    const float *xr = x + row * (size_t)dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += RMS_THREADS) {
        const float v = xr[i];
        ss += __fmul_rn(v, v); /* the product rounded on its own, as the CPU's (float)(x*x) */
    }
    ss = hk_warp_sum(ss);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = ss;
    __syncthreads();
    if (warp == 0) {
        float v = lane < RMS_THREADS / 32 ? partial[lane] : 0.0f;
        v = hk_warp_sum(v);
        if (lane == 0) s_scale = 1.0f / sqrtf(v / (float)dim + eps);
    }
    __syncthreads();
    const float scale = s_scale;
    for (int i = threadIdx.x; i < dim; i += RMS_THREADS)
        hk_store<OT>(out, row * (size_t)dim + (size_t)i, __fmul_rn(__fmul_rn(xr[i], scale), w[i]));
}

static int rmsnorm_launch(cudaStream_t stream, void *out, hk_dtype out_t, const float *x, const float *w, int n_rows,
                          int dim, float eps) {
    static const char *const op = "hk_rmsnorm";
    HK_CHECK(op, hk_dtype_ok(out_t), "out_t %d", (int)out_t);
    HK_CHECK(op, n_rows >= 0, "n_rows %d", n_rows);
    HK_CHECK(op, dim > 0, "dim %d", dim);
    HK_CHECK(op, eps >= 0.0f, "eps %g", (double)eps);
    if (n_rows == 0) return 0;
    HK_CHECK(op, out != NULL && x != NULL && w != NULL, "out %p, x %p, w %p", out, (const void *)x, (const void *)w);
    const dim3 grid((unsigned)n_rows), block(RMS_THREADS);
    switch (out_t) {
    case HK_F32: rmsnorm_kernel<HK_F32><<<grid, block, 0, stream>>>(out, x, w, dim, eps); break;
    case HK_F16: rmsnorm_kernel<HK_F16><<<grid, block, 0, stream>>>(out, x, w, dim, eps); break;
    case HK_BF16: rmsnorm_kernel<HK_BF16><<<grid, block, 0, stream>>>(out, x, w, dim, eps); break;
    }
    return hk_launch_check(op, "rmsnorm_kernel");
}

extern "C" int hk_rmsnorm(void *stream, void *out, hk_dtype out_t, const float *x, const float *w, int n_rows, int dim,
                          float eps) {
    return rmsnorm_launch((cudaStream_t)stream, out, out_t, x, w, n_rows, dim, eps);
}
