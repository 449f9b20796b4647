/* quant.h — ggml block formats: dequantisation, activation quantisation, dot products.
 *
 * Block layouts (ggml, 32 elements a block):
 *   Q4_0: f16 d;        u8 qs[16]   x = d * (q - 8)          q = low nibble of qs[j] for j<16,
 *   Q4_1: f16 d, f16 m; u8 qs[16]   x = d * q + m                 high nibble for j+16
 *   Q8_0: f16 d;        i8 qs[32]   x = d * q
 *   Q8_1: f16 d, f16 s; i8 qs[32]   x = d * q, s = d * sum(q)   (activations only)
 * The fast matmul path follows llama.cpp's CPU numerics: activations are quantised per
 * block of 32 to Q8_1 (for Q4_1 weights) or Q8_0 (for Q4_0/Q8_0 weights) and the dot product
 * is taken in integers, scaled per block. Every SIMD dot has a scalar *_ref beside it.
 */
#ifndef HAT_QUANT_H
#define HAT_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

#define QK 32
typedef struct { uint16_t d; uint8_t qs[QK / 2]; } block_q4_0;
typedef struct { uint16_t d, m; uint8_t qs[QK / 2]; } block_q4_1;
typedef struct { uint16_t d; int8_t qs[QK]; } block_q8_0;
typedef struct { uint16_t d, s; int8_t qs[QK]; } block_q8_1;

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);           /* round to nearest even, like F16C */
void fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n);
void fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n);
float bf16_to_fp32(uint16_t h);
/* portable bit-exact references of the F16C conversions (tested against them) */
float fp16_to_fp32_ref(uint16_t h);
uint16_t fp32_to_fp16_ref(float f);

/* y (n) = dequant(x (n elements of type t)); n a multiple of the block size. */
void dequantize_row(ggml_type t, const void *x, float *y, int64_t n);

/* Activation format used against weights of type wt (Q8_1 for Q4_1, Q8_0 for Q4_0/Q8_0,
 * F32 for F32/F16/BF16 weights), and its row size in bytes. */
ggml_type quant_vec_dot_type(ggml_type wt);
/* The first non-finite number of a tensor's data (type t, nbytes of it): for a block-quantised
 * type the index of the first block whose scale (or Q4_1 minimum) is Inf or NaN, else the index
 * of the first Inf/NaN element; -1 when every one is finite. A load-time integrity check: one
 * bad scale otherwise gives plausible but wrong tokens. */
int64_t quant_first_nonfinite(ggml_type t, const void *data, size_t nbytes);
size_t quant_act_row_size(ggml_type wt, int64_t n);
/* y = quantise x (n) into the activation format for weight type wt. */
void quantize_act_row(ggml_type wt, const float *x, void *y, int64_t n);

/* dot of one weight row (type wt, n elements) with one activation row (its vec-dot type) */
float quant_dot(ggml_type wt, int64_t n, const void *w, const void *a);
float quant_dot_ref(ggml_type wt, int64_t n, const void *w, const void *a);  /* scalar reference */
/* out[r] = quant_dot(row r) for nrows consecutive rows wrow bytes apart: bit-identical to calling
 * quant_dot per row, faster (several rows share each activation block) */
void quant_dot_rows(ggml_type wt, int64_t n, const void *w, size_t wrow, int64_t nrows, const void *a, float *out);

#endif
