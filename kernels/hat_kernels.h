/* hat_kernels.h — C entry points of the CUDA kernels of the GPU cloud backend.
 *
 * Each op is: `static __global__` kernel(s) in kernels/<op>.cu, a launcher taking a stream and
 * explicit dimensions that checks its shapes and the launch, and the one C entry point declared
 * here. Every entry point returns 0 on success, or a non-zero code after writing a message naming
 * the op, the bad argument or the CUDA error into the thread's last-error buffer (hk_last_error()).
 * Nothing allocates; all pointers are device pointers unless named h_*. Row-major everywhere.
 *
 * Numerics follow the CPU engine (src/engine/forward.c), which is what these kernels are tested against
 * (tests/cuda/test_cuda_kernels.c): RMSNorm scale = 1/sqrt(mean(x^2) + eps) then (x*scale)*w; RoPE in
 * "normal" mode (adjacent pairs (x[2i], x[2i+1]), theta_i = pos * base^(-2i/rope_dim)); causal
 * attention with softmax(q k^T / sqrt(head_dim)) over the fp16 KV cache, GQA (query head h reads
 * kv head h / (n_head / n_head_kv)); SwiGLU silu(g) * u; residual adds in fp32.
 *
 * Element types of matrices and GEMM inputs: HK_F16 (IEEE half) or HK_BF16; activations between
 * ops and the residual stream are fp32. The KV cache is fp16, layout per sequence slot:
 * (layer - l0, n_ctx, kv_dim), as the CPU cache (src/engine/kvcache.h).
 *
 * This header is plain C (no CUDA headers): streams are passed as void * (a cudaStream_t; NULL is
 * the default stream), so src/backends/cuda/ and tests include it without nvcc.
 */
#ifndef HAT_KERNELS_H
#define HAT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { HK_F32 = 0, HK_F16 = 1, HK_BF16 = 2 } hk_dtype;

/* bytes of one element of t */
size_t hk_dtype_size(hk_dtype t);
/* the message of the last failed call on this thread ("" when none) */
const char *hk_last_error(void);

/* out (n_rows, dim) [type out_t: F32, F16 or BF16] = x (n_rows, dim) * rsqrt(mean(x^2) + eps) * w (dim) */
int hk_rmsnorm(void *stream, void *out, hk_dtype out_t, const float *x, const float *w, int n_rows, int dim,
               float eps);

/* In place on q (n_tok, n_head*head_dim) and k (n_tok, n_head_kv*head_dim), both fp32: rotate
 * the first rope_dim dims of every head of token t by angles pos[t] * base^(-2i/rope_dim)
 * (adjacent pairs). pos: (n_tok) device int32. */
int hk_rope(void *stream, float *q, float *k, const int32_t *pos, int n_tok, int n_head, int n_head_kv,
            int head_dim, int rope_dim, float base);

/* Writes k, v (n_tok, kv_dim) fp32 into the fp16 caches: token t goes to slot tslot[t], position
 * pos[t], layer index li (= layer - l0): cache base k_cache[slot] + (li * n_ctx + pos) * kv_dim.
 * k_cache, v_cache: (n_slots) device arrays of device pointers to each slot's cache. */
int hk_kv_store(void *stream, uint16_t *const *k_cache, uint16_t *const *v_cache, const float *k, const float *v,
                const int32_t *tslot, const int32_t *pos, int n_tok, int li, int n_ctx, int kv_dim);

/* Causal attention for a batch of tokens from many sequences (decode rounds and prefill chunks
 * mixed, one launch): token t (query q row t) of slot tslot[t] at position pos[t] attends to that
 * slot's cache positions [0, pos[t]] of layer index li (its own K/V must already be stored).
 * out (n_tok, n_head*head_dim) fp32 = softmax(q k^T * scale) v, scale = 1/sqrt(head_dim).
 * max_pos: an upper bound of max(pos)+1 (sizes the launch). head_dim <= 256, a multiple of 32. */
int hk_attention(void *stream, float *out, const float *q, uint16_t *const *k_cache, uint16_t *const *v_cache,
                 const int32_t *tslot, const int32_t *pos, int n_tok, int max_pos, int li, int n_ctx, int n_head,
                 int n_head_kv, int head_dim);
/* the threads per block hk_attention launches with for this max_pos and head_dim: the only part
 * of a launch, besides the token count, that depends on the step (keys of captured CUDA graphs) */
int hk_attention_threads(int max_pos, int head_dim);

/* out (n_rows, ffn) [F32, F16 or BF16] = silu(gu[:, :ffn]) * gu[:, ffn:], gu (n_rows, 2*ffn) fp32
 * (gate and up projections side by side, from one fused GEMM) */
int hk_swiglu(void *stream, void *out, hk_dtype out_t, const float *gu, int n_rows, int ffn);

/* out (n, d_out) fp32 with row stride ldc = X (n, d_in) @ W^T + beta * out (beta 0: out is not
 * read), W (d_out, d_in) and X of type t (F16 or BF16), fp32 accumulation, n <= HK_GEMV_MAX_N:
 * the weight-streaming product of decode steps (kernels/gemv.cu). W and X 16-byte aligned,
 * d_in a multiple of 8. */
#define HK_GEMV_MAX_N 8
int hk_gemv(void *stream, float *out, int ldc, const void *W, const void *X, hk_dtype t, int n, int d_out, int d_in,
            float beta);

/* x (n) += y (n), fp32 */
int hk_add(void *stream, float *x, const float *y, size_t n);

/* out (n_tok, dim) fp32 = table[tokens[t]] rows; table (n_vocab, dim) of type table_t; ids out of
 * [0, n_vocab) give a NaN row (caught by the caller's checks, never a wild read) */
int hk_embed(void *stream, float *out, const void *table, hk_dtype table_t, const int32_t *tokens, int n_tok,
             int dim, int n_vocab);

/* out (n) [F32, F16 or BF16] = in (n) of type in_t (F32, F16 or BF16), round to nearest even */
int hk_convert(void *stream, void *out, hk_dtype out_t, const void *in, hk_dtype in_t, size_t n);

/* out (n) [F32, F16 or BF16] = synth_value(seed, tensor, i, scale, offset) for i in [0, n), the
 * deterministic synthetic weights of src/engine/synth.h, bit-identical to the CPU generator in fp32 */
int hk_synth_fill(void *stream, void *out, hk_dtype out_t, size_t n, uint64_t seed, uint32_t tensor, float scale,
                  float offset);
/* the same for elements [i0, i0 + n) of the tensor: out[j] = synth_value(..., i0 + j, ...), for a
 * slice of a tensor (a row range of a partitioned matrix) */
int hk_synth_fill_range(void *stream, void *out, hk_dtype out_t, uint64_t i0, size_t n, uint64_t seed,
                        uint32_t tensor, float scale, float offset);

/* Device-to-device copy of bytes, timed by the caller: the bandwidth reference of the benchmark */
int hk_copy(void *stream, void *dst, const void *src, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
