/* elementwise.cu — SwiGLU, the residual add, the embedding lookup and dtype conversion.
 * All memory-bound, coalesced, with 64-bit element indices. */
#include "common.cuh"

#include <math.h>

#define EW_THREADS 256
#define EW_MAX_BLOCKS 8192u /* grid-stride loops cover the rest */

/* ---- SwiGLU: out[r, j] = silu(g) * u with g = gu[r, j], u = gu[r, ffn + j] ---- */
template <int OT>
static __global__ void __launch_bounds__(EW_THREADS)
swiglu_kernel(void *__restrict__ out, const float *__restrict__ gu, int n_rows, int ffn) {
    const int j = blockIdx.x * EW_THREADS + threadIdx.x;
    if (j >= ffn) return;
    for (int r = blockIdx.y; r < n_rows; r += gridDim.y) {
        const float *row = gu + (size_t)r * 2 * (size_t)ffn;
        const float g = row[j], u = row[ffn + j];
        /* silu(g) = g / (1 + exp(-g)); precise expf; exp(-g) = inf gives -0 */
        const float s = g / (1.0f + expf(-g));
        hk_store<OT>(out, (size_t)r * (size_t)ffn + (size_t)j, s * u);
    }
}

static int swiglu_launch(cudaStream_t stream, void *out, hk_dtype out_t, const float *gu, int n_rows, int ffn) {
    static const char *const op = "hk_swiglu";
    HK_CHECK(op, hk_dtype_ok(out_t), "out_t %d", (int)out_t);
    HK_CHECK(op, n_rows >= 0, "n_rows %d", n_rows);
    HK_CHECK(op, ffn > 0 && ffn <= INT32_MAX / 2, "ffn %d", ffn);
    if (n_rows == 0) return 0;
    HK_CHECK(op, out != NULL && gu != NULL, "out %p, gu %p", out, (const void *)gu);
    const dim3 grid((unsigned)((ffn + EW_THREADS - 1) / EW_THREADS), (unsigned)(n_rows < 65535 ? n_rows : 65535));
    switch (out_t) {
    case HK_F32: swiglu_kernel<HK_F32><<<grid, EW_THREADS, 0, stream>>>(out, gu, n_rows, ffn); break;
    case HK_F16: swiglu_kernel<HK_F16><<<grid, EW_THREADS, 0, stream>>>(out, gu, n_rows, ffn); break;
    case HK_BF16: swiglu_kernel<HK_BF16><<<grid, EW_THREADS, 0, stream>>>(out, gu, n_rows, ffn); break;
    }
    return hk_launch_check(op, "swiglu_kernel");
}

extern "C" int hk_swiglu(void *stream, void *out, hk_dtype out_t, const float *gu, int n_rows, int ffn) {
    return swiglu_launch((cudaStream_t)stream, out, out_t, gu, n_rows, ffn);
}

/* ---- residual add: x += y ---- */
static __global__ void __launch_bounds__(EW_THREADS) add4_kernel(float4 *x, const float4 *y, size_t n4) {
    for (size_t i = (size_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n4; i += (size_t)gridDim.x * EW_THREADS) {
        float4 a = x[i];
        const float4 b = y[i];
        a.x += b.x; a.y += b.y; a.z += b.z; a.w += b.w;
        x[i] = a;
    }
}

static __global__ void __launch_bounds__(EW_THREADS) add_kernel(float *x, const float *y, size_t n) {
    for (size_t i = (size_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * EW_THREADS)
        x[i] += y[i];
}

static int add_launch(cudaStream_t stream, float *x, const float *y, size_t n) {
    static const char *const op = "hk_add";
    if (n == 0) return 0;
    HK_CHECK(op, x != NULL && y != NULL, "x %p, y %p", (void *)x, (const void *)y);
    const bool aligned = (((uintptr_t)x | (uintptr_t)y) & 15) == 0;
    const size_t n4 = aligned ? n / 4 : 0, tail = n - 4 * n4;
    if (n4) {
        add4_kernel<<<hk_grid_1d(n4, EW_THREADS, EW_MAX_BLOCKS), EW_THREADS, 0, stream>>>((float4 *)x,
                                                                                           (const float4 *)y, n4);
        if (hk_launch_check(op, "add4_kernel")) return 2;
    }
    if (tail) {
        add_kernel<<<hk_grid_1d(tail, EW_THREADS, EW_MAX_BLOCKS), EW_THREADS, 0, stream>>>(x + 4 * n4, y + 4 * n4, tail);
        if (hk_launch_check(op, "add_kernel")) return 2;
    }
    return 0;
}

extern "C" int hk_add(void *stream, float *x, const float *y, size_t n) {
    return add_launch((cudaStream_t)stream, x, y, n);
}

/* ---- embedding: out[t] = table[tokens[t]] as fp32, a NaN row for an id out of range ---- */
template <int TT>
static __global__ void __launch_bounds__(EW_THREADS)
embed_kernel(float *__restrict__ out, const void *__restrict__ table, const int32_t *__restrict__ tokens, int dim,
             int n_vocab) {
    const size_t t = blockIdx.x;
    const int id = tokens[t];
    float *o = out + t * (size_t)dim;
    if (id < 0 || id >= n_vocab) {
        for (int i = threadIdx.x; i < dim; i += EW_THREADS) o[i] = __int_as_float(0x7fc00000);
        return;
    }
    const size_t base = (size_t)id * (size_t)dim;
    for (int i = threadIdx.x; i < dim; i += EW_THREADS) o[i] = hk_load<TT>(table, base + (size_t)i);
}

static int embed_launch(cudaStream_t stream, float *out, const void *table, hk_dtype table_t, const int32_t *tokens,
                        int n_tok, int dim, int n_vocab) {
    static const char *const op = "hk_embed";
    HK_CHECK(op, hk_dtype_ok(table_t), "table_t %d", (int)table_t);
    HK_CHECK(op, n_tok >= 0, "n_tok %d", n_tok);
    HK_CHECK(op, dim > 0, "dim %d", dim);
    HK_CHECK(op, n_vocab > 0, "n_vocab %d", n_vocab);
    if (n_tok == 0) return 0;
    HK_CHECK(op, out != NULL && table != NULL && tokens != NULL, "out %p, table %p, tokens %p", (void *)out, table,
             (const void *)tokens);
    switch (table_t) {
    case HK_F32: embed_kernel<HK_F32><<<(unsigned)n_tok, EW_THREADS, 0, stream>>>(out, table, tokens, dim, n_vocab); break;
    case HK_F16: embed_kernel<HK_F16><<<(unsigned)n_tok, EW_THREADS, 0, stream>>>(out, table, tokens, dim, n_vocab); break;
    case HK_BF16: embed_kernel<HK_BF16><<<(unsigned)n_tok, EW_THREADS, 0, stream>>>(out, table, tokens, dim, n_vocab); break;
    }
    return hk_launch_check(op, "embed_kernel");
}

extern "C" int hk_embed(void *stream, float *out, const void *table, hk_dtype table_t, const int32_t *tokens, int n_tok,
                        int dim, int n_vocab) {
    return embed_launch((cudaStream_t)stream, out, table, table_t, tokens, n_tok, dim, n_vocab);
}

/* ---- conversion: every path goes through fp32, which holds F16 and BF16 exactly, so the one
 * rounding (to nearest even, in the store) is the only one ---- */
template <int IT, int OT>
static __global__ void __launch_bounds__(EW_THREADS) convert_kernel(void *out, const void *in, size_t n) {
    for (size_t i = (size_t)blockIdx.x * EW_THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * EW_THREADS)
        hk_store<OT>(out, i, hk_load<IT>(in, i));
}

template <int IT>
static void convert_dispatch(cudaStream_t stream, void *out, hk_dtype out_t, const void *in, size_t n) {
    const unsigned grid = hk_grid_1d(n, EW_THREADS, EW_MAX_BLOCKS);
    switch (out_t) {
    case HK_F32: convert_kernel<IT, HK_F32><<<grid, EW_THREADS, 0, stream>>>(out, in, n); break;
    case HK_F16: convert_kernel<IT, HK_F16><<<grid, EW_THREADS, 0, stream>>>(out, in, n); break;
    case HK_BF16: convert_kernel<IT, HK_BF16><<<grid, EW_THREADS, 0, stream>>>(out, in, n); break;
    }
}

static int convert_launch(cudaStream_t stream, void *out, hk_dtype out_t, const void *in, hk_dtype in_t, size_t n) {
    static const char *const op = "hk_convert";
    HK_CHECK(op, hk_dtype_ok(out_t) && hk_dtype_ok(in_t), "out_t %d, in_t %d", (int)out_t, (int)in_t);
    if (n == 0) return 0;
    HK_CHECK(op, out != NULL && in != NULL, "out %p, in %p", out, in);
    switch (in_t) {
    case HK_F32: convert_dispatch<HK_F32>(stream, out, out_t, in, n); break;
    case HK_F16: convert_dispatch<HK_F16>(stream, out, out_t, in, n); break;
    case HK_BF16: convert_dispatch<HK_BF16>(stream, out, out_t, in, n); break;
    }
    return hk_launch_check(op, "convert_kernel");
}

extern "C" int hk_convert(void *stream, void *out, hk_dtype out_t, const void *in, hk_dtype in_t, size_t n) {
    return convert_launch((cudaStream_t)stream, out, out_t, in, in_t, n);
}
