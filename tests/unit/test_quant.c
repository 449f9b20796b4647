/* Fast paths in quant.c against their scalar references, and format round trips. */
#include "engine/quant.h"
#include "engine/vecmath.h"
#include "support/testutil.h"

#include <math.h>
#include <string.h>

static void test_fp16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {          /* every half, NaNs compared as NaN */
        float a = fp16_to_fp32((uint16_t)h), b = fp16_to_fp32_ref((uint16_t)h);
        if (!(a == b || (isnan(a) && isnan(b))) || (a == 0 && signbit(a) != signbit(b))) bad++;
    }
    EXPECT(bad == 0, "fp16->fp32 differs from the reference for %d of 65536 halves", bad);
    bad = 0;
    for (int i = 0; i < 2000000; i++) {             /* random floats over the half range and beyond */
        float x = (float)((t_uniform() - 0.5) * pow(2.0, (t_uniform() * 44.0) - 26.0));
        if (fp32_to_fp16(x) != fp32_to_fp16_ref(x)) bad++;
    }
    const float edge[] = {0.0f, -0.0f, 65504.0f, 65520.0f, 1e9f, -1e9f, 5.96e-8f, 2.98e-8f, 2.99e-8f,
                          6.1e-5f, 6.09e-5f, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        if (fp32_to_fp16(edge[i]) != fp32_to_fp16_ref(edge[i])) bad++;
    EXPECT(bad == 0, "fp32->fp16 differs from the reference for %d values", bad);
    EXPECT(fp32_to_fp16(1.0f) == 0x3c00 && fp16_to_fp32(0xc000) == -2.0f, "fp16 known values");
}

/* make a random weight row of type t with n elements, by quantising random floats */
static void make_row(ggml_type t, int n, void *row, float *deq) {
    float x[4096];
    for (int i = 0; i < n; i++) x[i] = t_normalish() * 0.1f;
    if (t == GGML_TYPE_Q8_0) {
        quantize_act_row(GGML_TYPE_Q8_0, x, row, n);       /* Q8_0 weights = Q8_0 format */
    } else if (t == GGML_TYPE_Q4_0 || t == GGML_TYPE_Q4_1) {
        for (int b = 0; b < n / QK; b++) {                 /* random nibbles, random scales */
            uint8_t *blk = (uint8_t *)row + (size_t)b * (t == GGML_TYPE_Q4_0 ? 18 : 20);
            uint16_t d = fp32_to_fp16(0.01f + 0.02f * (float)t_uniform());
            memcpy(blk, &d, 2);
            int off = 2;
            if (t == GGML_TYPE_Q4_1) { uint16_t m = fp32_to_fp16(-0.1f * (float)t_uniform()); memcpy(blk + 2, &m, 2); off = 4; }
            for (int j = 0; j < 16; j++) blk[off + j] = (uint8_t)(t_uniform() * 256);
        }
    } else if (t == GGML_TYPE_F16) {
        fp32_to_fp16_row(x, row, n);
    } else {
        memcpy(row, x, (size_t)n * 4);
    }
    dequantize_row(t, row, deq, n);
}

static void test_dots(void) {
    const ggml_type types[] = {GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q8_0, GGML_TYPE_F16, GGML_TYPE_F32};
    static uint8_t w[4096 * 4], act[4096 * 4];
    static float wd[4096], x[4096], ad[4096];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        ggml_type t = types[ti];
        double worst_fast = 0, worst_model = 0;
        for (int trial = 0; trial < 200; trial++) {
            int n = 32 * (1 + (int)(t_uniform() * 100));
            make_row(t, n, w, wd);
            for (int i = 0; i < n; i++) x[i] = t_normalish();
            quantize_act_row(t, x, act, n);
            float fast = quant_dot(t, n, w, act), ref = quant_dot_ref(t, n, w, act);
            /* the exact value of the same integer/fp arithmetic, in double */
            ggml_type at = quant_vec_dot_type(t);
            dequantize_row(at, act, ad, n);
            double exact = 0, mag = 0;
            for (int i = 0; i < n; i++) { exact += (double)wd[i] * ad[i]; mag += fabs((double)wd[i] * ad[i]); }
            double ef = fabs(fast - ref) / (mag + 1e-30), em = fabs(ref - exact) / (mag + 1e-30);
            if (ef > worst_fast) worst_fast = ef;
            if (em > worst_model) worst_model = em;
        }
        /* SIMD vs scalar: only the order of float additions differs */
        EXPECT(worst_fast < 1e-5, "%s dot: SIMD vs scalar reference rel. error %.2e", gguf_type_name(t), worst_fast);
        /* scalar vs exact dot of the dequantised rows (Q4_1 uses the fp16-rounded s term) */
        EXPECT(worst_model < 2e-3, "%s dot: reference vs exact dequantised dot rel. error %.2e", gguf_type_name(t), worst_model);
        /* the multi-row kernel is bit-identical to one quant_dot per row */
        {
            static uint8_t rows[7 * 4096 * 4];
            float o7[7], wd7[4096];
            int n = 32 * 18;
            size_t rb = gguf_row_size(t, n);
            for (int r = 0; r < 7; r++) make_row(t, n, rows + r * rb, wd7);
            for (int i = 0; i < n; i++) x[i] = t_normalish();
            quantize_act_row(t, x, act, n);
            quant_dot_rows(t, n, rows, rb, 7, act, o7);
            int same = 1;
            for (int r = 0; r < 7; r++) { float one = quant_dot(t, n, rows + r * rb, act); same &= memcmp(&one, &o7[r], 4) == 0; }
            EXPECT(same, "%s: quant_dot_rows differs from quant_dot", gguf_type_name(t));
        }
        printf("%-5s dot: SIMD-vs-ref %.1e, ref-vs-exact %.1e\n", gguf_type_name(t), worst_fast, worst_model);
    }
}

static void test_act_quant(void) {
    float x[256], y[256];
    uint8_t q[512];
    for (int i = 0; i < 256; i++) x[i] = t_normalish() * 3.0f;
    x[5] = 0.0f;
    quantize_act_row(GGML_TYPE_Q4_1, x, q, 256);                 /* -> Q8_1 */
    dequantize_row(GGML_TYPE_Q8_1, q, y, 256);
    double worst = 0;
    for (int b = 0; b < 8; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        for (int j = 0; j < 32; j++) worst = fmax(worst, fabs(x[b * 32 + j] - y[b * 32 + j]) / amax);
        const block_q8_1 *blk = (const block_q8_1 *)q + b;
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += blk->qs[j];
        EXPECT(fabsf(fp16_to_fp32(blk->s) - fp16_to_fp32(blk->d) * sum) <= 1e-3f * fabsf(fp16_to_fp32(blk->d) * sum) + 1e-6f,
               "Q8_1 block %d: s != d * sum(q)", b);
    }
    /* error <= half a quantum (1/254 of the block max) plus the fp16 rounding of d */
    EXPECT(worst <= 1.0 / 254 + 2e-3, "Q8_1 round trip worst error %.4f of the block max", worst);
    float zeros[32] = {0};
    quantize_act_row(GGML_TYPE_Q8_0, zeros, q, 32);
    dequantize_row(GGML_TYPE_Q8_0, q, y, 32);
    int nz = 0;
    for (int j = 0; j < 32; j++) nz += y[j] != 0.0f;
    EXPECT(nz == 0, "an all-zero block must quantise to zeros (no division by zero)");
    /* Q4_1 dequantisation formula, checked on a hand-made block */
    block_q4_1 b41 = {fp32_to_fp16(0.5f), fp32_to_fp16(-1.0f), {0}};
    b41.qs[0] = 0x3f;                                            /* element 0 -> 15, element 16 -> 3 */
    dequantize_row(GGML_TYPE_Q4_1, &b41, y, 32);
    EXPECT(y[0] == 6.5f && y[16] == 0.5f && y[1] == -1.0f, "Q4_1 dequantisation: got %g %g %g", y[0], y[16], y[1]);
    block_q4_0 b40 = {fp32_to_fp16(2.0f), {0}};
    b40.qs[1] = 0xf0;                                            /* element 1 -> 0-8, element 17 -> 15-8 */
    dequantize_row(GGML_TYPE_Q4_0, &b40, y, 32);
    EXPECT(y[1] == -16.0f && y[17] == 14.0f, "Q4_0 dequantisation: got %g %g", y[1], y[17]);
}

/* ulps between two floats of the same sign */
static long ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    long d = (long)ia - (long)ib;
    return d < 0 ? -d : d;
}

static void test_vecmath(void) {
    /* the approximate exp against libm's correctly rounded expf over the range the engine
     * feeds it (softmax: <= 0; SiLU: -x for activations); the algorithm's bound is 1.5 ulp */
    long worst = 0;
    int special = 0;
    for (int i = 0; i < 2000000; i++) {
        float x = (float)(-87.0 + 175.0 * t_uniform());
        float a = vm_expf(x), r = expf(x);
        if (a > 0 && r > 0 && isfinite(a) && isfinite(r)) { long u = ulps(a, r); if (u > worst) worst = u; }
        else if (!(a == r)) special++;
    }
    EXPECT(worst <= 2, "vm_expf differs from expf by %ld ulp", worst);
    EXPECT(special == 0, "vm_expf: %d special-case mismatches", special);
    EXPECT(vm_expf(-INFINITY) == 0.0f && vm_expf(0.0f) == 1.0f && isinf(vm_expf(200.0f)) && vm_expf(-200.0f) == 0.0f &&
           isnan(vm_expf(NAN)), "vm_expf special values");
    printf("vm_expf vs libm expf: max %ld ulp over [-87, 88]\n", worst);

    /* lane-ordered fp16 dots and PV accumulation against plain double sums */
    uint16_t a[256], b[256];
    for (int i = 0; i < 256; i++) { a[i] = fp32_to_fp16(t_normalish()); b[i] = fp32_to_fp16(t_normalish()); }
    for (int lanes = VM_LANES_BATCH; lanes <= VM_LANES_SINGLE; lanes *= 4) {
        for (int k = lanes; k <= 256; k += lanes) {
            double ref = 0, mag = 0;
            for (int i = 0; i < k; i++) { ref += (double)fp16_to_fp32(a[i]) * fp16_to_fp32(b[i]); mag += fabs((double)fp16_to_fp32(a[i]) * fp16_to_fp32(b[i])); }
            float got = vm_dot_f16_lanes(lanes, k, a, b);
            EXPECT(fabs(got - ref) <= 1e-6 * mag + 1e-6, "vm_dot_f16_lanes(%d, %d) = %g, exact %g", lanes, k, got, ref);
        }
        static float acc[64 * 64], out[64];
        memset(acc, 0, sizeof acc);
        double ref[64] = {0};
        float probs[100];
        for (int p = 0; p < 100; p++) {
            probs[p] = (float)t_uniform();
            vm_lane_fma_f16(64, acc + (size_t)(p % lanes) * 64, a + (p % 4) * 64, probs[p]);
            for (int i = 0; i < 64; i++) ref[i] += (double)fp16_to_fp32(a[(p % 4) * 64 + i]) * probs[p];
        }
        vm_lanes_reduce(lanes, 64, acc, out);
        int bad = 0;
        for (int i = 0; i < 64; i++) bad += fabs(out[i] - ref[i]) > 1e-4 * (1 + fabs(ref[i]));
        EXPECT(bad == 0, "lane PV accumulation (%d lanes) differs from the exact sum in %d elements", lanes, bad);
    }
    /* softmax sum: the chunked lane-tree sum equals the plain sum to float precision */
    float x[300], y[300];
    for (int i = 0; i < 300; i++) x[i] = y[i] = t_normalish() * 4;
    double s = vm_softmax_exp(300, x, 10.0f), r = 0;
    for (int i = 0; i < 300; i++) r += expf(y[i] - 10.0f);
    EXPECT(fabs(s - r) <= 1e-5 * r, "vm_softmax_exp sum %g vs %g", s, r);
    float g[40], u[40], o[40];
    for (int i = 0; i < 40; i++) { g[i] = t_normalish() * 6; u[i] = t_normalish(); }
    vm_swiglu(40, o, g, u);
    int bad = 0;
    for (int i = 0; i < 40; i++) bad += fabsf(o[i] - g[i] / (1.0f + expf(-g[i])) * u[i]) > 1e-6f * (1 + fabsf(o[i]));
    EXPECT(bad == 0, "vm_swiglu differs from silu(g)*u in %d elements", bad);
}

/* the load-time integrity scan: the first block with a non-finite scale, the first bad element */
static void test_nonfinite(void) {
    block_q4_1 q41[4];
    block_q8_0 q80[3];
    memset(q41, 0, sizeof q41);
    memset(q80, 0, sizeof q80);
    for (int i = 0; i < 4; i++) q41[i].d = q41[i].m = fp32_to_fp16(0.25f);
    EXPECT(quant_first_nonfinite(GGML_TYPE_Q4_1, q41, sizeof q41) == -1, "Q4_1: finite blocks flagged");
    q41[2].m = 0x7e00;   /* NaN minimum */
    EXPECT(quant_first_nonfinite(GGML_TYPE_Q4_1, q41, sizeof q41) == 2, "Q4_1: NaN minimum of block 2 missed");
    q41[1].d = 0x7c00;   /* +Inf scale */
    EXPECT(quant_first_nonfinite(GGML_TYPE_Q4_1, q41, sizeof q41) == 1, "Q4_1: Inf scale of block 1 missed");
    q41[0].qs[0] = 0xff; /* quants are never non-finite */
    q80[2].d = 0xfc00;   /* -Inf */
    EXPECT(quant_first_nonfinite(GGML_TYPE_Q8_0, q80, sizeof q80) == 2, "Q8_0: -Inf scale missed");
    EXPECT(quant_first_nonfinite(GGML_TYPE_Q4_0, q80, 2 * sizeof(block_q4_0)) == -1, "Q4_0: zero blocks flagged");
    uint16_t h[5] = {0x3c00, 0x7bff, 0x0001, 0x7c01, 0};   /* 1, max finite, subnormal, NaN */
    EXPECT(quant_first_nonfinite(GGML_TYPE_F16, h, sizeof h) == 3, "F16: NaN element 3 missed");
    uint16_t bf[3] = {0x3f80, 0x7f7f, 0xff80};             /* 1, max finite, -Inf */
    EXPECT(quant_first_nonfinite(GGML_TYPE_BF16, bf, sizeof bf) == 2, "BF16: -Inf element 2 missed");
    float f[4] = {1.0f, -3.0e38f, 0.0f, NAN};
    EXPECT(quant_first_nonfinite(GGML_TYPE_F32, f, sizeof f) == 3, "F32: NaN element 3 missed");
    f[3] = 2.0f;
    EXPECT(quant_first_nonfinite(GGML_TYPE_F32, f, sizeof f) == -1, "F32: finite values flagged");
    /* a NaN activation quantises without undefined behaviour (the scan keeps it from happening) */
    float x[32];
    uint8_t q[64];
    for (int j = 0; j < 32; j++) x[j] = (float)j;
    x[7] = NAN;
    quantize_act_row(GGML_TYPE_Q8_0, x, q, 32);
}

int main(void) {
    test_nonfinite();
    test_vecmath();
    test_fp16();
    test_dots();
    test_act_quant();
    return test_summary();
}
