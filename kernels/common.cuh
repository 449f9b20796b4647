/* common.cuh — shared machinery of the kernels: the per-thread last-error buffer and the checks
 * that fill it, launch checking, and element load/store helpers for HK_F32 / HK_F16 / HK_BF16.
 * Included by every kernels/<op>.cu; not part of the C API. */
#ifndef HAT_KERNELS_COMMON_CUH
#define HAT_KERNELS_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "hat_kernels.h"

/* Writes "op: message" into this thread's last-error buffer (core.cu). Returns 1 so that a
 * check can `return hk_fail(...)`. */
int hk_fail(const char *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Appends to the message of the last hk_fail on this thread. */
void hk_fail_append(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Argument check in a launcher or entry point: on failure the message names the op, the failed
 * condition and the values given (a printf format and its arguments), e.g.
 * "hk_attention: invalid argument: head_dim % 32 == 0 (head_dim 48)"; returns 1 from the
 * enclosing function. */
#define HK_CHECK(op, cond, ...)                                           \
    do {                                                                  \
        if (!(cond)) {                                                    \
            hk_fail((op), "invalid argument: %s (", #cond);               \
            hk_fail_append(__VA_ARGS__);                                  \
            hk_fail_append(")");                                          \
            return 1;                                                     \
        }                                                                 \
    } while (0)

/* Result of a CUDA runtime call: returns 2 from the enclosing function on error. */
#define HK_CUDA(op, call)                                                                        \
    do {                                                                                         \
        const cudaError_t hk_e_ = (call);                                                        \
        if (hk_e_ != cudaSuccess) {                                                              \
            hk_fail((op), "%s failed: %s (%s)", #call, cudaGetErrorName(hk_e_), cudaGetErrorString(hk_e_)); \
            return 2;                                                                            \
        }                                                                                        \
    } while (0)

/* After a <<<>>> launch: configuration errors (and any error left pending before it). */
static inline int hk_launch_check(const char *op, const char *kernel) {
    const cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    hk_fail(op, "launch of %s failed: %s (%s)", kernel, cudaGetErrorName(e), cudaGetErrorString(e));
    return 2;
}

static inline bool hk_dtype_ok(hk_dtype t) { return t == HK_F32 || t == HK_F16 || t == HK_BF16; }

/* A grid of at most max_blocks blocks of `threads` threads for a grid-stride loop over n items. */
static inline unsigned hk_grid_1d(size_t n, unsigned threads, unsigned max_blocks) {
    const size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < max_blocks ? (b ? b : 1) : max_blocks);
}

/* ---- element access by type (T is the hk_dtype value, a template argument) ---- */
template <int T> struct hk_elem;
template <> struct hk_elem<HK_F32> {
    typedef float type;
    static __device__ __forceinline__ float load(const void *p, size_t i) { return ((const float *)p)[i]; }
    static __device__ __forceinline__ void store(void *p, size_t i, float v) { ((float *)p)[i] = v; }
};
template <> struct hk_elem<HK_F16> {
    typedef __half type;
    static __device__ __forceinline__ float load(const void *p, size_t i) { return __half2float(((const __half *)p)[i]); }
    /* round to nearest even */
    static __device__ __forceinline__ void store(void *p, size_t i, float v) { ((__half *)p)[i] = __float2half_rn(v); }
};
template <> struct hk_elem<HK_BF16> {
    typedef __nv_bfloat16 type;
    static __device__ __forceinline__ float load(const void *p, size_t i) {
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    }
    static __device__ __forceinline__ void store(void *p, size_t i, float v) {
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    }
};

template <int T> __device__ __forceinline__ float hk_load(const void *p, size_t i) { return hk_elem<T>::load(p, i); }
template <int T> __device__ __forceinline__ void hk_store(void *p, size_t i, float v) { hk_elem<T>::store(p, i, v); }

/* fp16 bits (as stored in the KV cache) <-> float */
__device__ __forceinline__ float hk_h2f(uint16_t b) { return __half2float(__ushort_as_half(b)); }
__device__ __forceinline__ uint16_t hk_f2h(float v) { return __half_as_ushort(__float2half_rn(v)); }

/* sum over the 32 lanes of a warp, every lane gets the result */
__device__ __forceinline__ float hk_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

#endif
