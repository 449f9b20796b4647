/* gemv.cu — hk_gemv: the matrix products of small steps (decode) as weight streaming.
 *
 * out (n, d_out) fp32, row stride ldc, = X (n, d_in) @ W^T + beta * out, with W (d_out, d_in) and
 * X in fp16 or bf16, fp32 accumulation, n in [1, HK_GEMV_MAX_N]. A step of a few tokens reads
 * every weight once and does n multiply-adds with it, so the product is bound by the weight read:
 *  - one warp per output row (8 rows per 256-thread block), reading the row as 16-byte vectors
 *    (8 elements per lane per load, a warp covers 256 contiguous elements), four loads issued
 *    before their multiply-adds to keep bytes in flight;
 *  - each W vector is used for all n tokens (X rows are small and shared by every warp: read
 *    through the read-only cache);
 *  - per-lane fp32 partial sums, then a butterfly across the warp; lane 0 writes the n results.
 * Products of fp16 (bf16) values are exact in fp32; only the summation order differs from
 * cuBLAS (both accumulate in fp32). beta = 0 never reads out (it may hold NaN).
 * Needs W, X 16-byte aligned and d_in a multiple of 8 (checked). The backend uses it only where
 * it has been checked against cuBLAS and timed faster on the GPU at hand (src/backends/cuda/cuda_gemm.c). */
#include "common.cuh"

#define GEMV_THREADS 256
#define GEMV_UNROLL 4

template <int T> static __device__ __forceinline__ float gv_cvt(uint32_t bits16) {
    if constexpr (T == HK_F16) return __half2float(__ushort_as_half((unsigned short)bits16));
    else return __uint_as_float(bits16 << 16);
}

/* the 8 elements of a 16-byte vector as floats */
template <int T> static __device__ __forceinline__ void gv_unpack(const uint4 &v, float (&f)[8]) {
    f[0] = gv_cvt<T>(v.x & 0xffffu); f[1] = gv_cvt<T>(v.x >> 16);
    f[2] = gv_cvt<T>(v.y & 0xffffu); f[3] = gv_cvt<T>(v.y >> 16);
    f[4] = gv_cvt<T>(v.z & 0xffffu); f[5] = gv_cvt<T>(v.z >> 16);
    f[6] = gv_cvt<T>(v.w & 0xffffu); f[7] = gv_cvt<T>(v.w >> 16);
}

template <int T, int N>
static __global__ void __launch_bounds__(GEMV_THREADS)
gemv_kernel(float *__restrict__ out, int ldc, const uint4 *__restrict__ W, const uint4 *__restrict__ X, int d_out,
            int nv, float beta) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (GEMV_THREADS / 32) + (threadIdx.x >> 5);
    if (row >= d_out) return; /* no barrier below */
    const uint4 *w = W + (size_t)row * nv;
    float acc[N];
#pragma unroll
    for (int t = 0; t < N; t++) acc[t] = 0.0f;
    for (int v0 = lane; v0 < nv; v0 += 32 * GEMV_UNROLL) {
        uint4 wv[GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            const int v = v0 + 32 * u;
            wv[u] = v < nv ? __ldg(w + v) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            const int v = v0 + 32 * u;
            if (v >= nv) break;
            float wf[8];
            gv_unpack<T>(wv[u], wf);
#pragma unroll
            for (int t = 0; t < N; t++) {
                float xf[8];
                gv_unpack<T>(__ldg(X + (size_t)t * nv + v), xf);
                float a = acc[t];
#pragma unroll
                for (int e = 0; e < 8; e++) a = fmaf(wf[e], xf[e], a);
                acc[t] = a;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < N; t++) {
        float a = acc[t];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
        acc[t] = a;
    }
    if (lane == 0) {
#pragma unroll
        for (int t = 0; t < N; t++) {
            float *o = out + (size_t)t * (size_t)ldc + row;
            *o = beta == 0.0f ? acc[t] : fmaf(beta, *o, acc[t]);
        }
    }
}

template <int T>
static void gemv_dispatch(cudaStream_t st, unsigned grid, int n, float *out, int ldc, const uint4 *W, const uint4 *X,
                          int d_out, int nv, float beta) {
    switch (n) {
#define HK_GV(K) case K: gemv_kernel<T, K><<<grid, GEMV_THREADS, 0, st>>>(out, ldc, W, X, d_out, nv, beta); break
        HK_GV(1); HK_GV(2); HK_GV(3); HK_GV(4); HK_GV(5); HK_GV(6); HK_GV(7); HK_GV(8);
#undef HK_GV
    }
}

extern "C" int hk_gemv(void *stream, float *out, int ldc, const void *W, const void *X, hk_dtype t, int n, int d_out,
                       int d_in, float beta) {
    static const char *const op = "hk_gemv";
    HK_CHECK(op, t == HK_F16 || t == HK_BF16, "dtype %d", (int)t);
    HK_CHECK(op, n >= 1 && n <= HK_GEMV_MAX_N, "n %d (1..%d)", n, HK_GEMV_MAX_N);
    HK_CHECK(op, d_out >= 1 && d_in >= 8 && d_in % 8 == 0, "d_out %d, d_in %d (a multiple of 8)", d_out, d_in);
    HK_CHECK(op, ldc >= d_out, "ldc %d < d_out %d", ldc, d_out);
    HK_CHECK(op, out != NULL && W != NULL && X != NULL, "out %p, W %p, X %p", (void *)out, W, X);
    HK_CHECK(op, ((uintptr_t)W % 16) == 0 && ((uintptr_t)X % 16) == 0, "W %p, X %p not 16-byte aligned", W, X);
    const unsigned grid = (unsigned)((d_out + GEMV_THREADS / 32 - 1) / (GEMV_THREADS / 32));
    const cudaStream_t st = (cudaStream_t)stream;
    if (t == HK_F16) gemv_dispatch<HK_F16>(st, grid, n, out, ldc, (const uint4 *)W, (const uint4 *)X, d_out, d_in / 8, beta);
    else gemv_dispatch<HK_BF16>(st, grid, n, out, ldc, (const uint4 *)W, (const uint4 *)X, d_out, d_in / 8, beta);
    return hk_launch_check(op, "gemv_kernel");
}
