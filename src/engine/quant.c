/* quant.c — see quant.h. SIMD paths need AVX2+FMA+F16C (x86-64-v3); scalar fallbacks otherwise. */
#include "engine/quant.h"
#include "core/common.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define HAT_AVX2 1
#endif

/* ---- half precision ---------------------------------------------------------------------- */
float fp16_to_fp32_ref(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
uint16_t fp32_to_fp16_ref(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);                 /* overflow -> inf */
    if (ax < 0x38800000u) {                                                  /* subnormal half */
        float a;
        memcpy(&a, &ax, 4);
        /* scale so the half ulp (2^-24) becomes 1 and round to nearest even in float */
        uint32_t r = (uint32_t)nearbyintf(a * 16777216.0f);
        return (uint16_t)(sign | r);
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);                             /* RNE */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float fp16_to_fp32(uint16_t h) {
#ifdef HAT_AVX2
    return _cvtsh_ss(h);
#else
    return fp16_to_fp32_ref(h);
#endif
}
uint16_t fp32_to_fp16(float f) {
#ifdef HAT_AVX2
    return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
#else
    return fp32_to_fp16_ref(f);
#endif
}
void fp16_to_fp32_row(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
#ifdef HAT_AVX2
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
#endif
    for (; i < n; i++) y[i] = fp16_to_fp32(x[i]);
}
void fp32_to_fp16_row(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
#ifdef HAT_AVX2
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
    for (; i < n; i++) y[i] = fp32_to_fp16(x[i]);
}
float bf16_to_fp32(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* ---- dequantisation ------------------------------------------------------------------------ */
void dequantize_row(ggml_type t, const void *x, float *y, int64_t n) {
    switch (t) {
    case GGML_TYPE_F32: memcpy(y, x, (size_t)n * 4); return;
    case GGML_TYPE_F16: fp16_to_fp32_row(x, y, n); return;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = bf16_to_fp32(((const uint16_t *)x)[i]);
        return;
    case GGML_TYPE_Q4_0:
        for (int64_t b = 0; b < n / QK; b++) {
            const block_q4_0 *blk = (const block_q4_0 *)x + b;
            float d = fp16_to_fp32(blk->d);
            for (int j = 0; j < QK / 2; j++) {
                y[b * QK + j] = d * (float)((blk->qs[j] & 0xf) - 8);
                y[b * QK + j + QK / 2] = d * (float)((blk->qs[j] >> 4) - 8);
            }
        }
        return;
    case GGML_TYPE_Q4_1:
        for (int64_t b = 0; b < n / QK; b++) {
            const block_q4_1 *blk = (const block_q4_1 *)x + b;
            float d = fp16_to_fp32(blk->d), m = fp16_to_fp32(blk->m);
            for (int j = 0; j < QK / 2; j++) {
                y[b * QK + j] = d * (float)(blk->qs[j] & 0xf) + m;
                y[b * QK + j + QK / 2] = d * (float)(blk->qs[j] >> 4) + m;
            }
        }
        return;
    case GGML_TYPE_Q8_0:
        for (int64_t b = 0; b < n / QK; b++) {
            const block_q8_0 *blk = (const block_q8_0 *)x + b;
            float d = fp16_to_fp32(blk->d);
            for (int j = 0; j < QK; j++) y[b * QK + j] = d * (float)blk->qs[j];
        }
        return;
    case GGML_TYPE_Q8_1:
        for (int64_t b = 0; b < n / QK; b++) {
            const block_q8_1 *blk = (const block_q8_1 *)x + b;
            float d = fp16_to_fp32(blk->d);
            for (int j = 0; j < QK; j++) y[b * QK + j] = d * (float)blk->qs[j];
        }
        return;
    }
    fatal("dequantize_row: unsupported type %d", (int)t);
}

/* ---- activation quantisation (round half to even, like ggml's AVX2 path) ------------------ */
static void quantize_row_q8(const float *x, void *vy, int64_t n, int with_sum) {
    for (int64_t b = 0; b < n / QK; b++) {
        const float *xb = x + b * QK;
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int8_t *qs;
        if (with_sum) qs = ((block_q8_1 *)vy)[b].qs;
        else qs = ((block_q8_0 *)vy)[b].qs;
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            int q = (int)nearbyintf(fminf(127.0f, fmaxf(-127.0f, xb[j] * id)));   /* NaN -> -127: no UB */
            qs[j] = (int8_t)q;
            sum += q;
        }
        if (with_sum) {
            ((block_q8_1 *)vy)[b].d = fp32_to_fp16(d);
            ((block_q8_1 *)vy)[b].s = fp32_to_fp16((float)sum * d);
        } else {
            ((block_q8_0 *)vy)[b].d = fp32_to_fp16(d);
        }
    }
}

/* the exponent bits all set: Inf or NaN */
static int f16_bad(uint16_t h) { return (h & 0x7c00u) == 0x7c00u; }
static int bf16_bad(uint16_t h) { return (h & 0x7f80u) == 0x7f80u; }

int64_t quant_first_nonfinite(ggml_type t, const void *data, size_t nbytes) {
    const uint8_t *p = data;
    size_t stride = 0, n;
    int two = 0;   /* Q4_1: the minimum too */
    switch (t) {
    case GGML_TYPE_Q4_0: stride = sizeof(block_q4_0); break;
    case GGML_TYPE_Q4_1: stride = sizeof(block_q4_1); two = 1; break;
    case GGML_TYPE_Q8_0: stride = sizeof(block_q8_0); break;
    case GGML_TYPE_F16: case GGML_TYPE_BF16: {
        const int bf = t == GGML_TYPE_BF16;
        n = nbytes / 2;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if (bf ? bf16_bad(h) : f16_bad(h)) return (int64_t)i;
        }
        return -1;
    }
    case GGML_TYPE_F32:
        n = nbytes / 4;
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, p + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return (int64_t)i;
        }
        return -1;
    default: return -1;
    }
    n = nbytes / stride;
    for (size_t i = 0; i < n; i++) {
        uint16_t d[2];
        memcpy(d, p + i * stride, 4);
        if (f16_bad(d[0]) || (two && f16_bad(d[1]))) return (int64_t)i;
    }
    return -1;
}

ggml_type quant_vec_dot_type(ggml_type wt) {
    switch (wt) {
    case GGML_TYPE_Q4_1: return GGML_TYPE_Q8_1;
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q8_0: return GGML_TYPE_Q8_0;
    default: return GGML_TYPE_F32;
    }
}
size_t quant_act_row_size(ggml_type wt, int64_t n) { return gguf_row_size(quant_vec_dot_type(wt), n); }

void quantize_act_row(ggml_type wt, const float *x, void *y, int64_t n) {
    switch (quant_vec_dot_type(wt)) {
    case GGML_TYPE_Q8_1: quantize_row_q8(x, y, n, 1); return;
    case GGML_TYPE_Q8_0: quantize_row_q8(x, y, n, 0); return;
    default: memcpy(y, x, (size_t)n * 4); return;
    }
}

/* ---- dot products: scalar references ------------------------------------------------------- */
static float dot_q4_1_q8_1_ref(int64_t n, const block_q4_1 *w, const block_q8_1 *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++)
            sumi += (w[b].qs[j] & 0xf) * a[b].qs[j] + (w[b].qs[j] >> 4) * a[b].qs[j + QK / 2];
        sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * (float)sumi +
               fp16_to_fp32(w[b].m) * fp16_to_fp32(a[b].s);
    }
    return sum;
}
static float dot_q4_0_q8_0_ref(int64_t n, const block_q4_0 *w, const block_q8_0 *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        int sumi = 0;
        for (int j = 0; j < QK / 2; j++)
            sumi += ((w[b].qs[j] & 0xf) - 8) * a[b].qs[j] + ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + QK / 2];
        sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * (float)sumi;
    }
    return sum;
}
static float dot_q8_0_q8_0_ref(int64_t n, const block_q8_0 *w, const block_q8_0 *a) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        int sumi = 0;
        for (int j = 0; j < QK; j++) sumi += w[b].qs[j] * a[b].qs[j];
        sum += fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d) * (float)sumi;
    }
    return sum;
}
static float dot_f32_ref(ggml_type wt, int64_t n, const void *w, const float *a) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float wi = wt == GGML_TYPE_F32 ? ((const float *)w)[i]
                 : wt == GGML_TYPE_F16 ? fp16_to_fp32(((const uint16_t *)w)[i])
                                       : bf16_to_fp32(((const uint16_t *)w)[i]);
        sum += wi * a[i];
    }
    return sum;
}

float quant_dot_ref(ggml_type wt, int64_t n, const void *w, const void *a) {
    switch (wt) {
    case GGML_TYPE_Q4_1: return dot_q4_1_q8_1_ref(n, w, a);
    case GGML_TYPE_Q4_0: return dot_q4_0_q8_0_ref(n, w, a);
    case GGML_TYPE_Q8_0: return dot_q8_0_q8_0_ref(n, w, a);
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16: return dot_f32_ref(wt, n, w, a);
    default: fatal("quant_dot: unsupported weight type %s", gguf_type_name(wt));
    }
}

/* ---- dot products: AVX2 -------------------------------------------------------------------- */
#ifdef HAT_AVX2
static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15) then high (16..31) */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
}
/* sum of u8 x i8 products in pairs of 4, as 8 floats. The integer sums are exact either way
 * (u8 <= 255 here only as nibbles or |i8|, so maddubs never saturates): VNNI is only faster. */
static inline __m256 mul_sum_us8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s));
#else
    __m256i p16 = _mm256_maddubs_epi16(u, s);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
#endif
}
static inline __m256 mul_sum_i8(__m256i x, __m256i y) {
    return mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}
static float dot_q4_1_q8_1(int64_t n, const block_q4_1 *w, const block_q8_1 *a) {
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t b = 0; b < n / QK; b++) {
        summs += fp16_to_fp32(w[b].m) * fp16_to_fp32(a[b].s);
        __m256 d = _mm256_set1_ps(fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d));
        __m256i qw = unpack_nibbles(w[b].qs);
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[b].qs);
        acc = _mm256_fmadd_ps(d, mul_sum_us8(qw, qa), acc);
    }
    return hsum_ps(acc) + summs;
}
static float dot_q4_0_q8_0(int64_t n, const block_q4_0 *w, const block_q8_0 *a) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++) {
        __m256 d = _mm256_set1_ps(fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d));
        __m256i qw = _mm256_sub_epi8(unpack_nibbles(w[b].qs), _mm256_set1_epi8(8));
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[b].qs);
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qw, qa), acc);
    }
    return hsum_ps(acc);
}
static float dot_q8_0_q8_0(int64_t n, const block_q8_0 *w, const block_q8_0 *a) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++) {
        __m256 d = _mm256_set1_ps(fp16_to_fp32(w[b].d) * fp16_to_fp32(a[b].d));
        __m256i qw = _mm256_loadu_si256((const __m256i *)w[b].qs);
        __m256i qa = _mm256_loadu_si256((const __m256i *)a[b].qs);
        acc = _mm256_fmadd_ps(d, mul_sum_i8(qw, qa), acc);
    }
    return hsum_ps(acc);
}
static float dot_f32(int64_t n, const float *w, const float *a) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(a + i + 8), acc1);
    }
    float s = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += w[i] * a[i];
    return s;
}
static float dot_f16_f32(int64_t n, const uint16_t *w, const float *a) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i))), _mm256_loadu_ps(a + i), acc);
    float s = hsum_ps(acc);
    for (; i < n; i++) s += fp16_to_fp32(w[i]) * a[i];
    return s;
}

/* four weight rows against one activation row: each output keeps exactly the accumulation
 * sequence of dot_q4_1_q8_1 (so results are bit-identical); the activation block is loaded once */
static void dot4_q4_1_q8_1(int64_t n, const uint8_t *w, size_t wrow, const block_q8_1 *a, float *out) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float summs[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < n / QK; b++) {
        const __m256i qa = _mm256_loadu_si256((const __m256i *)a[b].qs);
        const float da = fp16_to_fp32(a[b].d), sa = fp16_to_fp32(a[b].s);
        for (int r = 0; r < 4; r++) {
            const block_q4_1 *blk = (const block_q4_1 *)(w + (size_t)r * wrow) + b;
            summs[r] += fp16_to_fp32(blk->m) * sa;
            const __m256 d = _mm256_set1_ps(fp16_to_fp32(blk->d) * da);
            acc[r] = _mm256_fmadd_ps(d, mul_sum_us8(unpack_nibbles(blk->qs), qa), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) out[r] = hsum_ps(acc[r]) + summs[r];
}
#endif

void quant_dot_rows(ggml_type wt, int64_t n, const void *w, size_t wrow, int64_t nrows, const void *a, float *out) {
    int64_t r = 0;
#ifdef HAT_AVX2
    if (wt == GGML_TYPE_Q4_1)
        for (; r + 4 <= nrows; r += 4) dot4_q4_1_q8_1(n, (const uint8_t *)w + (size_t)r * wrow, wrow, a, out + r);
#endif
    for (; r < nrows; r++) out[r] = quant_dot(wt, n, (const uint8_t *)w + (size_t)r * wrow, a);
}

float quant_dot(ggml_type wt, int64_t n, const void *w, const void *a) {
#ifdef HAT_AVX2
    switch (wt) {
    case GGML_TYPE_Q4_1: return dot_q4_1_q8_1(n, w, a);
    case GGML_TYPE_Q4_0: return dot_q4_0_q8_0(n, w, a);
    case GGML_TYPE_Q8_0: return dot_q8_0_q8_0(n, w, a);
    case GGML_TYPE_F32: return dot_f32(n, w, a);
    case GGML_TYPE_F16: return dot_f16_f32(n, w, a);
    default: break;
    }
#endif
    return quant_dot_ref(wt, n, w, a);
}
