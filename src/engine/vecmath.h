/* vecmath.h — the elementwise maths of the forward pass, in the exact arithmetic of
 * llama.cpp's CPU backend, so that greedy tokens agree with it token for token.
 *
 * llama.cpp computes exp in SiLU and softmax with a vectorised approximation (the Arm
 * optimized-routines expf algorithm: n = round(x log2 e), b = x - n ln2 in two parts, a
 * degree-5 polynomial for e^b, scaled by 2^n; max error about 1.5 ulp), not with libm's
 * correctly rounded expf. One-ulp differences are amplified by the Q8 activation and fp16
 * probability roundings into logit changes of up to ~1 (measured), enough to flip near-tied
 * greedy tokens; so the engine uses the same approximation. libm expf is the reference the
 * approximation is tested against (tests/unit/test_quant.c). */
#ifndef HAT_VECMATH_H
#define HAT_VECMATH_H

#include <stdint.h>

float vm_expf(float x);                         /* the approximation (scalar, fmaf) */
/* y[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u */
void vm_swiglu(int64_t n, float *y, const float *g, const float *u);
/* x[0..n) := exp(x - max) in place; returns the sum, accumulated as llama.cpp does (float
 * sums of 16-element chunks by a lane tree, added up in double) */
double vm_softmax_exp(int64_t n, float *x, float max);

#endif

/* Attention products in the accumulation orders of llama.cpp's non-flash path, whose fp16
 * matmuls take one of two kernels by the number of tokens in the batch:
 *  - 2 or more tokens, llamafile's tinyBLAS: 16 lanes, each an fma chain over chunks of 16
 *    along k, then a 16 -> 1 lane-tree sum (VM_LANES_BATCH accumulators);
 *  - one token, ggml's vec_dot_f16: 4 x 16 lanes over steps of 64 along k, combined as
 *    (0+2)+(1+3) and then the lane tree (VM_LANES_SINGLE accumulators).
 * k must be a multiple of 16 (batch) or 64 (single). */
enum { VM_LANES_BATCH = 16, VM_LANES_SINGLE = 64 };
float vm_dot_f16_lanes(int lanes, int64_t k, const uint16_t *a, const uint16_t *b);
/* acc (lanes, d): acc[p % lanes][i] = fma(v[i], prob, acc[p % lanes][i]) for position p;
 * vm_lanes_reduce writes out[i] = the reduction of the lanes in the kernel's order. */
void vm_lane_fma_f16(int64_t d, float *acc_lane, const uint16_t *v, float prob);
void vm_lanes_reduce(int lanes, int64_t d, const float *acc, float *out);
