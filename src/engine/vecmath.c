/* vecmath.c — see vecmath.h. Every fused multiply-add is an explicit fmaf; the project is
 * compiled in ISO C mode, where GCC does not contract other expressions into FMAs. */
#include "engine/vecmath.h"

#include <math.h>
#include <string.h>

/* 16 lanes -> 1, the association of a 512-bit horizontal add: (l[j] + l[j+8]) for 8, then
 * (+4), then (0+2) + (1+3). IEEE addition is commutative, so only the grouping matters. */
static inline float tree16(const float *l) {
    float a8[8], a4[4];
    for (int j = 0; j < 8; j++) a8[j] = l[j] + l[j + 8];
    for (int j = 0; j < 4; j++) a4[j] = a8[j] + a8[j + 4];
    return (a4[0] + a4[2]) + (a4[1] + a4[3]);
}

float vm_expf(float x) {
    /* Polynomial coefficients and the split of ln 2 of the Arm optimized-routines vector expf */
    const float shift = 0x1.8p23f, log2e = 0x1.715476p+0f, ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f;
    const float c1 = 0x1.ffffecp-1f, c2 = 0x1.fffdb6p-2f, c3 = 0x1.555e66p-3f, c4 = 0x1.573e2ep-5f,
                c5 = 0x1.0e4020p-7f;
    const float z = fmaf(x, log2e, shift);      /* round(x log2e) lands in z's low mantissa bits */
    const float n = z - shift;
    const float b = fmaf(-n, ln2_lo, fmaf(-n, ln2_hi, x));
    if (isnan(x)) return x;
    if (fabsf(n) > 192.0f) return n > 0 ? INFINITY : 0.0f;   /* far outside float's range */
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(c5, b, c4), u, fmaf(c3, b, c2)), u, fmaf(c1, b, 1.0f));
    const int e = (int)n;
    if (e >= -126 && e <= 127) {                 /* 2^e is a normal float: j * 2^e rounds once */
        const uint32_t bits = (uint32_t)(e + 127) << 23;
        float p2;
        memcpy(&p2, &bits, 4);
        return j * p2;
    }
    return ldexpf(j, e);                         /* j * 2^n, one rounding (as vscalefps) */
}

void vm_swiglu(int64_t n, float *y, const float *g, const float *u) {
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i];
        y[i] = x / (1.0f + vm_expf(-x)) * u[i];
    }
}

double vm_softmax_exp(int64_t n, float *x, float max) {
    double sum = 0.0;
    for (int64_t c = 0; c < n; c += 16) {
        float l[16] = {0};
        for (int j = 0; j < 16 && c + j < n; j++) l[j] = x[c + j] = vm_expf(x[c + j] - max);
        sum += (double)tree16(l);
    }
    return sum;
}

/* (0+2)+(1+3) of four 16-lane groups, then the lane tree */
static inline float reduce_lanes(int lanes, const float *l) {
    if (lanes == VM_LANES_BATCH) return tree16(l);
    float c[16];
    for (int j = 0; j < 16; j++) c[j] = (l[j] + l[j + 32]) + (l[j + 16] + l[j + 48]);
    return tree16(c);
}

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
static inline __m256 ld16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
float vm_dot_f16_lanes(int lanes, int64_t k, const uint16_t *a, const uint16_t *b) {
    __m256 acc[8];                                       /* 8-wide pieces of the lanes */
    const int np = lanes / 8;
    for (int j = 0; j < np; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t c = 0; c < k; c += lanes)
        for (int j = 0; j < np; j++) acc[j] = _mm256_fmadd_ps(ld16(a + c + 8 * j), ld16(b + c + 8 * j), acc[j]);
    float l[64];
    for (int j = 0; j < np; j++) _mm256_storeu_ps(l + 8 * j, acc[j]);
    return reduce_lanes(lanes, l);
}
void vm_lane_fma_f16(int64_t d, float *acc, const uint16_t *v, float prob) {
    const __m256 p = _mm256_set1_ps(prob);
    int64_t i = 0;
    for (; i + 8 <= d; i += 8) _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(ld16(v + i), p, _mm256_loadu_ps(acc + i)));
    for (; i < d; i++) acc[i] = fmaf(_cvtsh_ss(v[i]), prob, acc[i]);
}
#else
#include "engine/quant.h"
float vm_dot_f16_lanes(int lanes, int64_t k, const uint16_t *a, const uint16_t *b) {
    float l[64] = {0};
    for (int64_t c = 0; c < k; c += lanes)
        for (int j = 0; j < lanes; j++) l[j] = fmaf(fp16_to_fp32(a[c + j]), fp16_to_fp32(b[c + j]), l[j]);
    return reduce_lanes(lanes, l);
}
void vm_lane_fma_f16(int64_t d, float *acc, const uint16_t *v, float prob) {
    for (int64_t i = 0; i < d; i++) acc[i] = fmaf(fp16_to_fp32(v[i]), prob, acc[i]);
}
#endif

void vm_lanes_reduce(int lanes, int64_t d, const float *acc, float *out) {
    for (int64_t i = 0; i < d; i++) {
        float l[64];
        for (int j = 0; j < lanes; j++) l[j] = acc[(size_t)j * d + i];
        out[i] = reduce_lanes(lanes, l);
    }
}
