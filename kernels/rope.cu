/* rope.cu — rotary position embedding, "normal" mode (adjacent pairs), in place on q and k.
 *
 * One block per token. The block first builds the token's (cos, sin) table in shared memory,
 * then rotates pair i of every q head and every k head with it.
 *
 * Angles: theta_i = pos * base^(-2i/rope_dim), computed as the CPU engine (and ggml) builds its
 * cache: theta_scale = powf(base, -2/rope_dim) once on the host (the same C library call as
 * src/engine/forward.c), then theta_0 = (float)pos and theta_{i+1} = theta_i * theta_scale in fp32 —
 * the same sequence of roundings, so the angles are bit-identical to the CPU's. cos/sin are CUDA's
 * precise cosf/sinf (full range reduction; a few ulp from glibc's). The rotation keeps the CPU's
 * grouping: x0' = fma(x0, c, -(x1*s)), x1' = fma(x0, s, x1*c) with the inner products rounded. */
#include "common.cuh"

#include <math.h>

#define ROPE_THREADS 256
#define ROPE_MAX_PAIRS 128 /* rope_dim <= head_dim <= 256 */

static __global__ void __launch_bounds__(ROPE_THREADS)
rope_kernel(float *q, float *k, const int32_t *__restrict__ pos, int n_head, int n_head_kv, int head_dim, int rope_dim,
            float theta_scale) {
    __shared__ float s_cos[ROPE_MAX_PAIRS], s_sin[ROPE_MAX_PAIRS];
    const int t = blockIdx.x;
    const int half = rope_dim / 2;
    if (threadIdx.x < half) {
        float theta = (float)pos[t];
        for (int i = 0; i < (int)threadIdx.x; i++) theta = __fmul_rn(theta, theta_scale);
        s_cos[threadIdx.x] = cosf(theta);
        s_sin[threadIdx.x] = sinf(theta);
    }
    __syncthreads();
    const int n_pairs = (n_head + n_head_kv) * half;
    for (int j = threadIdx.x; j < n_pairs; j += ROPE_THREADS) {
        const int h = j / half, i = j - h * half;
        float *p = h < n_head ? q + ((size_t)t * n_head + h) * head_dim
                              : k + ((size_t)t * n_head_kv + (h - n_head)) * head_dim;
        p += 2 * i;
        const float x0 = p[0], x1 = p[1], c = s_cos[i], s = s_sin[i];
        p[0] = __fmaf_rn(x0, c, -__fmul_rn(x1, s));
        p[1] = __fmaf_rn(x0, s, __fmul_rn(x1, c));
    }
}

static int rope_launch(cudaStream_t stream, float *q, float *k, const int32_t *pos, int n_tok, int n_head,
                       int n_head_kv, int head_dim, int rope_dim, float base) {
    static const char *const op = "hk_rope";
    HK_CHECK(op, n_tok >= 0, "n_tok %d", n_tok);
    HK_CHECK(op, n_head > 0 && n_head_kv >= 0, "n_head %d, n_head_kv %d", n_head, n_head_kv);
    HK_CHECK(op, head_dim > 0 && head_dim <= 256 && head_dim % 2 == 0, "head_dim %d", head_dim);
    HK_CHECK(op, rope_dim > 0 && rope_dim % 2 == 0 && rope_dim <= head_dim, "rope_dim %d, head_dim %d", rope_dim,
             head_dim);
    HK_CHECK(op, base > 0.0f && isfinite(base), "base %g", (double)base);
    HK_CHECK(op, (size_t)(n_head + n_head_kv) * head_dim <= (size_t)INT32_MAX, "n_head %d, n_head_kv %d", n_head,
             n_head_kv);
    if (n_tok == 0) return 0;
    HK_CHECK(op, q != NULL && pos != NULL && (k != NULL || n_head_kv == 0), "q %p, k %p, pos %p", (void *)q, (void *)k,
             (const void *)pos);
    /* host powf, as the CPU engine's rope_table */
    const float theta_scale = powf(base, -2.0f / (float)rope_dim);
    rope_kernel<<<(unsigned)n_tok, ROPE_THREADS, 0, stream>>>(q, k, pos, n_head, n_head_kv, head_dim, rope_dim,
                                                               theta_scale);
    return hk_launch_check(op, "rope_kernel");
}

extern "C" int hk_rope(void *stream, float *q, float *k, const int32_t *pos, int n_tok, int n_head, int n_head_kv,
                       int head_dim, int rope_dim, float base) {
    return rope_launch((cudaStream_t)stream, q, k, pos, n_tok, n_head, n_head_kv, head_dim, rope_dim, base);
}
