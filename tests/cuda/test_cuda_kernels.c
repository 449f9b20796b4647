/* test_cuda_kernels.c — every op of kernels/hat_kernels.h against a naive CPU reference.
 *
 * Method: fresh random inputs for every case (seeded xorshift), the output poisoned with 0xFF
 * bytes (NaN in fp32/fp16/bf16) before every launch, every element checked (a NaN never passes),
 * and per case the relative error ||out - ref|| / ||ref|| and the largest absolute error printed.
 * References are fp64 computations on the same inputs the kernel sees (for attention: the same
 * fp16-rounded K/V); where the op is exact (conversions, embedding, kv_store, add, synth) the
 * check is bit-identity. Thresholds: fp32 outputs 1e-5 (attention 2e-5 overall and 1e-4 for the
 * worst single (token, head) row), fp16 outputs 1e-3, bf16 outputs 1e-2 (one rounding is at
 * most 2^-11 resp. 2^-8 relative).
 *
 * The thresholds are tight enough to catch an off-by-one in positions: attending to one key too
 * many or too few changes a row's output by about 1/npos * |v| / |out| ~ 1/sqrt(npos), i.e. ~2e-2
 * at npos = 2500, far over the 1e-4 per-row threshold; keys past pos[t] in each slot's cache are
 * NaN (poisoned), so a read past the last stored position gives NaN; a RoPE angle off by one
 * position changes the high-frequency pairs by O(1).
 *
 * Without a CUDA GPU the test prints SKIP and exits 77 (CTest: skipped). Exit 1 on any failure.
 */
#include "hat_kernels.h"
#include "engine/synth.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_fail = 0;

#define CK(call)                                                                                        \
    do {                                                                                                \
        const cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                        \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));      \
            exit(1);                                                                                    \
        }                                                                                               \
    } while (0)

/* an op call that must succeed, then its completion (errors of the kernel itself show here) */
#define OK(call)                                                                                        \
    do {                                                                                                \
        const int rc_ = (call);                                                                         \
        if (rc_ != 0) {                                                                                 \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, rc_, hk_last_error()); \
            exit(1);                                                                                    \
        }                                                                                               \
        CK(cudaDeviceSynchronize());                                                                    \
    } while (0)

/* ---- random numbers ---- */
static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545F4914F6CDD1Dull;
}
static double urand(double lo, double hi) { return lo + (hi - lo) * (double)(rnd() >> 11) * (1.0 / 9007199254740992.0); }
static void fill_uniform(float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)urand(lo, hi);
}

/* ---- host fp16 / bf16 (round to nearest even) ---- */
static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static float h2f(uint16_t h) {
    const uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu;
    if (e == 0x1f) return u2f(s | 0x7f800000u | (m << 13));
    if (e == 0) { /* zero or subnormal: m * 2^-24 */
        const float v = (float)m * 5.9604644775390625e-8f;
        return s ? -v : v;
    }
    return u2f(s | ((e + 112u) << 23) | (m << 13));
}

static uint16_t f2h(float f) {
    const uint32_t u = f2u(f), s = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(s | 0x7e00u);   /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(s | 0x7c00u);  /* >= 65520: rounds to inf */
    if (a < 0x38800000u) {                                  /* below 2^-14: subnormal half */
        /* value * 2^24 rounded to an integer, ties to even (exact in double) */
        const double v = (double)u2f(a) * 16777216.0;
        double r = floor(v);
        const double d = v - r;
        if (d > 0.5 || (d == 0.5 && fmod(r, 2.0) != 0.0)) r += 1.0;
        return (uint16_t)(s | (uint32_t)r); /* r == 1024 gives the smallest normal: correct */
    }
    const uint32_t e = (a >> 23) - 112u, m = a & 0x7fffffu;
    uint32_t h = (e << 10) | (m >> 13);
    const uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* carries into the exponent correctly */
    return (uint16_t)(s | h);
}

static float b2f(uint16_t b) { return u2f((uint32_t)b << 16); }
static uint16_t f2b(float f) {
    const uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays NaN */
    const uint32_t lsb = (u >> 16) & 1u;
    return (uint16_t)((u + 0x7fffu + lsb) >> 16);
}

static float round_to(hk_dtype t, float v) {
    return t == HK_F16 ? h2f(f2h(v)) : t == HK_BF16 ? b2f(f2b(v)) : v;
}

/* device buffer of type t (n elements) to host floats */
static void download(float *dst, const void *dsrc, hk_dtype t, size_t n) {
    if (t == HK_F32) {
        CK(cudaMemcpy(dst, dsrc, n * 4, cudaMemcpyDeviceToHost));
        return;
    }
    uint16_t *h = malloc(n * 2);
    CK(cudaMemcpy(h, dsrc, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) dst[i] = t == HK_F16 ? h2f(h[i]) : b2f(h[i]);
    free(h);
}

static void *dalloc(size_t bytes) {
    void *p = NULL;
    CK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}
static void *dupload(const void *h, size_t bytes) {
    void *p = dalloc(bytes);
    CK(cudaMemcpy(p, h, bytes, cudaMemcpyHostToDevice));
    return p;
}
static void poison(void *d, size_t bytes) { CK(cudaMemset(d, 0xFF, bytes)); }

static const char *tname(hk_dtype t) { return t == HK_F32 ? "f32" : t == HK_F16 ? "f16" : "bf16"; }
static double thr_of(hk_dtype t) { return t == HK_F32 ? 1e-5 : t == HK_F16 ? 1e-3 : 1e-2; }

/* relative error of out against ref over n elements (rows of row_len for the worst-row figure);
 * prints one line, returns 1 when it passes */
static int compare(const char *name, const float *out, const double *ref, size_t n, size_t row_len, double thr,
                   double row_thr) {
    double num = 0, den = 0, maxabs = 0, worst_row = 0;
    size_t nan = 0;
    double rn = 0, rd = 0;
    for (size_t i = 0; i < n; i++) {
        const double o = out[i], r = ref[i];
        if (isnan(o) || isnan(r)) { nan++; continue; }
        const double d = o - r;
        num += d * d; den += r * r;
        rn += d * d; rd += r * r;
        if (fabs(d) > maxabs) maxabs = fabs(d);
        if (row_len && (i + 1) % row_len == 0) {
            const double re = rd > 0 ? sqrt(rn / rd) : sqrt(rn);
            if (re > worst_row) worst_row = re;
            rn = rd = 0;
        }
    }
    const double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    const int pass = nan == 0 && rel <= thr && (!row_len || worst_row <= row_thr);
    if (row_len)
        printf("%-4s %-58s rel %.3e (thr %.0e)  worst row %.3e (thr %.0e)  max abs %.3e  NaN %zu\n",
               pass ? "ok" : "FAIL", name, rel, thr, worst_row, row_thr, maxabs, nan);
    else
        printf("%-4s %-58s rel %.3e (thr %.0e)  max abs %.3e  NaN %zu\n", pass ? "ok" : "FAIL", name, rel, thr,
               maxabs, nan);
    if (!pass) g_fail++;
    return pass;
}

static void report_exact(const char *name, size_t n, size_t bad, size_t first_bad) {
    const int pass = bad == 0;
    if (pass)
        printf("%-4s %-58s %zu elements bit-identical\n", "ok", name, n);
    else
        printf("%-4s %-58s %zu of %zu elements differ (first at %zu)\n", "FAIL", name, bad, n, first_bad);
    if (!pass) g_fail++;
}

static const hk_dtype all_t[3] = {HK_F32, HK_F16, HK_BF16};

/* ---- RMSNorm ---- */
static void test_rmsnorm(void) {
    const int shapes[][2] = {{1, 576}, {37, 576}, {5, 4096}, {3, 100}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ti = 0; ti < 3; ti++) {
            const int rows = shapes[s][0], dim = shapes[s][1];
            const hk_dtype ot = all_t[ti];
            const size_t n = (size_t)rows * dim;
            const float eps = 1e-5f;
            float *x = malloc(n * 4), *w = malloc((size_t)dim * 4), *out = malloc(n * 4);
            double *ref = malloc(n * 8);
            fill_uniform(x, n, -2, 2);
            fill_uniform(w, dim, 0.9, 1.1);
            for (int r = 0; r < rows; r++) {
                double ss = 0;
                for (int i = 0; i < dim; i++) ss += (double)x[(size_t)r * dim + i] * x[(size_t)r * dim + i];
                const double sc = 1.0 / sqrt(ss / dim + (double)eps);
                for (int i = 0; i < dim; i++) ref[(size_t)r * dim + i] = x[(size_t)r * dim + i] * sc * w[i];
            }
            float *dx = dupload(x, n * 4), *dw = dupload(w, (size_t)dim * 4);
            void *dout = dalloc(n * hk_dtype_size(ot));
            poison(dout, n * hk_dtype_size(ot));
            OK(hk_rmsnorm(NULL, dout, ot, dx, dw, rows, dim, eps));
            download(out, dout, ot, n);
            char name[128];
            snprintf(name, sizeof name, "rmsnorm rows %d dim %d out %s", rows, dim, tname(ot));
            compare(name, out, ref, n, 0, thr_of(ot), 0);
            CK(cudaFree(dx)); CK(cudaFree(dw)); CK(cudaFree(dout));
            free(x); free(w); free(out); free(ref);
        }
}

/* ---- RoPE: the reference builds the angles exactly as the CPU engine (fp32 recurrence from a
 * host powf), then rotates in fp64 ---- */
static void rope_ref(double *ref, const float *x, const int *pos, int n_tok, int nh, int hd, int rd, float base) {
    const float ts = powf(base, -2.0f / (float)rd);
    for (int t = 0; t < n_tok; t++) {
        for (size_t i = 0; i < (size_t)nh * hd; i++) ref[(size_t)t * nh * hd + i] = x[(size_t)t * nh * hd + i];
        float theta = (float)pos[t];
        for (int i = 0; i < rd / 2; i++) {
            const double c = cos((double)theta), s = sin((double)theta);
            for (int h = 0; h < nh; h++) {
                const size_t o = ((size_t)t * nh + h) * hd + 2 * (size_t)i;
                const double x0 = x[o], x1 = x[o + 1];
                ref[o] = x0 * c - x1 * s;
                ref[o + 1] = x0 * s + x1 * c;
            }
            theta = theta * ts;
        }
    }
}

static void test_rope(void) {
    const struct { int nh, nkv, hd, rd; float base; } cs[] = {
        {9, 3, 64, 64, 10000.0f}, {32, 32, 128, 128, 10000.0f}, {32, 8, 128, 128, 500000.0f}, {9, 3, 64, 32, 10000.0f},
        {4, 2, 256, 256, 10000.0f}};
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const int nh = cs[c].nh, nkv = cs[c].nkv, hd = cs[c].hd, rd = cs[c].rd, n_tok = 40;
        const size_t nq = (size_t)n_tok * nh * hd, nk = (size_t)n_tok * nkv * hd;
        int pos[40];
        for (int t = 0; t < n_tok; t++) pos[t] = (int)(rnd() % 4096);
        pos[0] = 0; pos[1] = 1; pos[2] = 4095; pos[3] = 3999; pos[4] = 0;
        float *q = malloc(nq * 4), *k = malloc(nk * 4), *oq = malloc(nq * 4), *ok = malloc(nk * 4);
        double *rq = malloc(nq * 8), *rk = malloc(nk * 8);
        fill_uniform(q, nq, -1, 1);
        fill_uniform(k, nk, -1, 1);
        rope_ref(rq, q, pos, n_tok, nh, hd, rd, cs[c].base);
        rope_ref(rk, k, pos, n_tok, nkv, hd, rd, cs[c].base);
        float *dq = dupload(q, nq * 4), *dk = dupload(k, nk * 4);
        int32_t *dpos = dupload(pos, sizeof pos);
        OK(hk_rope(NULL, dq, dk, dpos, n_tok, nh, nkv, hd, rd, cs[c].base));
        CK(cudaMemcpy(oq, dq, nq * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(ok, dk, nk * 4, cudaMemcpyDeviceToHost));
        char name[128];
        snprintf(name, sizeof name, "rope q heads %d/%d hd %d rope_dim %d base %.0f", nh, nkv, hd, rd, (double)cs[c].base);
        compare(name, oq, rq, nq, (size_t)hd, 1e-5, 1e-5);
        snprintf(name, sizeof name, "rope k heads %d/%d hd %d rope_dim %d base %.0f", nh, nkv, hd, rd, (double)cs[c].base);
        compare(name, ok, rk, nk, (size_t)hd, 1e-5, 1e-5);
        CK(cudaFree(dq)); CK(cudaFree(dk)); CK(cudaFree(dpos));
        free(q); free(k); free(oq); free(ok); free(rq); free(rk);
    }
}

/* ---- KV store ---- */
static void test_kv_store(void) {
    const int kvds[] = {192, 1024};
    for (int c = 0; c < 2; c++) {
        const int kv_dim = kvds[c], n_slots = 3, n_ctx = 64, n_layers = 2, li = 1, n_tok = 10;
        const size_t per = (size_t)n_layers * n_ctx * kv_dim;
        int32_t tslot[10], pos[10];
        for (int t = 0; t < n_tok; t++) { tslot[t] = t % n_slots; pos[t] = (t / n_slots) * 7 + (t % 2); }
        pos[9] = n_ctx - 1; pos[0] = 0;
        float *k = malloc((size_t)n_tok * kv_dim * 4), *v = malloc((size_t)n_tok * kv_dim * 4);
        fill_uniform(k, (size_t)n_tok * kv_dim, -3, 3);
        fill_uniform(v, (size_t)n_tok * kv_dim, -3, 3);
        /* exact ties of fp16 rounding: 1 + 2^-11 (to 1), 1 + 3*2^-11 (up, to even) */
        k[0] = 1.0f + 0x1p-11f; k[1] = 1.0f + 3 * 0x1p-11f; v[0] = -(1.0f + 0x1p-11f); v[1] = 70000.0f;
        uint16_t *dkc[3], *dvc[3];
        for (int s = 0; s < n_slots; s++) {
            dkc[s] = dalloc(per * 2); dvc[s] = dalloc(per * 2);
            poison(dkc[s], per * 2); poison(dvc[s], per * 2);
        }
        uint16_t **dkp = dupload(dkc, sizeof dkc), **dvp = dupload(dvc, sizeof dvc);
        float *dk = dupload(k, (size_t)n_tok * kv_dim * 4), *dv = dupload(v, (size_t)n_tok * kv_dim * 4);
        int32_t *dts = dupload(tslot, sizeof tslot), *dpos = dupload(pos, sizeof pos);
        OK(hk_kv_store(NULL, dkp, dvp, dk, dv, dts, dpos, n_tok, li, n_ctx, kv_dim));
        uint16_t *hk = malloc(per * 2), *hv = malloc(per * 2);
        size_t bad = 0, first = 0, total = 0;
        for (int s = 0; s < n_slots; s++) {
            CK(cudaMemcpy(hk, dkc[s], per * 2, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(hv, dvc[s], per * 2, cudaMemcpyDeviceToHost));
            for (size_t i = 0; i < per; i++) {
                uint16_t ek = 0xFFFF, ev = 0xFFFF; /* untouched: still poisoned */
                const int l = (int)(i / ((size_t)n_ctx * kv_dim)), p = (int)(i / kv_dim % n_ctx), d = (int)(i % kv_dim);
                for (int t = 0; t < n_tok; t++)
                    if (tslot[t] == s && pos[t] == p && l == li) {
                        ek = f2h(k[(size_t)t * kv_dim + d]);
                        ev = f2h(v[(size_t)t * kv_dim + d]);
                    }
                total += 2;
                if (hk[i] != ek || hv[i] != ev) { if (!bad) first = (size_t)s * per + i; bad++; }
            }
        }
        char name[128];
        snprintf(name, sizeof name, "kv_store kv_dim %d, 3 slots x 2 layers (whole caches)", kv_dim);
        report_exact(name, total, bad, first);
        for (int s = 0; s < n_slots; s++) { CK(cudaFree(dkc[s])); CK(cudaFree(dvc[s])); }
        CK(cudaFree(dkp)); CK(cudaFree(dvp)); CK(cudaFree(dk)); CK(cudaFree(dv)); CK(cudaFree(dts)); CK(cudaFree(dpos));
        free(k); free(v); free(hk); free(hv);
    }
}

/* ---- attention ---- */
typedef struct { int len; int p0, n; } att_run; /* slot with `len` cached positions; tokens at p0..p0+n-1 */

static void attention_case(int nh, int nkv, int hd, const att_run *runs, int n_slots, int misalign_slot,
                           const char *label) {
    const int n_layers = 2, li = 1;
    const int kv_dim = nkv * hd, dim = nh * hd, group = nh / nkv;
    int n_ctx = 1, n_tok = 0;
    for (int s = 0; s < n_slots; s++) {
        if (runs[s].len > n_ctx) n_ctx = runs[s].len;
        n_tok += runs[s].n;
    }
    n_ctx += 16; /* room past the longest slot, all poisoned */
    int32_t *tslot = malloc((size_t)n_tok * 4), *pos = malloc((size_t)n_tok * 4);
    int max_pos = 0;
    for (int s = 0, t = 0; s < n_slots; s++)
        for (int j = 0; j < runs[s].n; j++, t++) {
            tslot[t] = s; pos[t] = runs[s].p0 + j;
            if (pos[t] + 1 > max_pos) max_pos = pos[t] + 1;
        }
    for (int t = n_tok - 1; t > 0; t--) { /* tokens of different slots interleaved */
        const int u = (int)(rnd() % (uint64_t)(t + 1));
        int32_t a = tslot[t]; tslot[t] = tslot[u]; tslot[u] = a;
        a = pos[t]; pos[t] = pos[u]; pos[u] = a;
    }
    /* caches: layer li positions [0, len) random fp16, everything else NaN */
    const size_t per = (size_t)n_layers * n_ctx * kv_dim;
    uint16_t **hk = malloc((size_t)n_slots * sizeof *hk), **hv = malloc((size_t)n_slots * sizeof *hv);
    uint16_t **dkalloc = malloc((size_t)n_slots * sizeof *dkalloc), **dvalloc = malloc((size_t)n_slots * sizeof *dvalloc);
    uint16_t **dk = malloc((size_t)n_slots * sizeof *dk), **dv = malloc((size_t)n_slots * sizeof *dv);
    for (int s = 0; s < n_slots; s++) {
        const size_t nv = (size_t)runs[s].len * kv_dim;
        hk[s] = malloc(nv * 2); hv[s] = malloc(nv * 2);
        for (size_t i = 0; i < nv; i++) {
            hk[s][i] = f2h((float)urand(-1, 1));
            hv[s][i] = f2h((float)urand(-1, 1));
        }
        dkalloc[s] = dalloc(per * 2 + 16); dvalloc[s] = dalloc(per * 2 + 16);
        poison(dkalloc[s], per * 2 + 16); poison(dvalloc[s], per * 2 + 16);
        /* one slot's pointers off by one element: the kernel's unaligned (scalar load) path */
        dk[s] = dkalloc[s] + (s == misalign_slot); dv[s] = dvalloc[s] + (s == misalign_slot);
        const size_t off = (size_t)li * n_ctx * kv_dim;
        CK(cudaMemcpy(dk[s] + off, hk[s], nv * 2, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dv[s] + off, hv[s], nv * 2, cudaMemcpyHostToDevice));
    }
    /* q scaled so that the softmax is far from uniform (scores of std ~2) */
    const size_t nq = (size_t)n_tok * dim;
    float *q = malloc(nq * 4), *out = malloc(nq * 4);
    double *ref = malloc(nq * 8);
    fill_uniform(q, nq, -3.5, 3.5);
    /* the reference reads the same fp16 values, widened once */
    float **fk = malloc((size_t)n_slots * sizeof *fk), **fv = malloc((size_t)n_slots * sizeof *fv);
    for (int s = 0; s < n_slots; s++) {
        const size_t nv = (size_t)runs[s].len * kv_dim;
        fk[s] = malloc(nv * 4); fv[s] = malloc(nv * 4);
        for (size_t i = 0; i < nv; i++) { fk[s][i] = h2f(hk[s][i]); fv[s][i] = h2f(hv[s][i]); }
    }
    double *sc = malloc((size_t)n_ctx * 8), *acc = malloc((size_t)hd * 8);
    const double scale = 1.0 / sqrt((double)hd);
    for (int t = 0; t < n_tok; t++)
        for (int h = 0; h < nh; h++) {
            const int kvh = h / group, s = tslot[t], np = pos[t] + 1;
            const float *qr = q + (size_t)t * dim + (size_t)h * hd;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p < np; p++) {
                const float *kr = fk[s] + (size_t)p * kv_dim + (size_t)kvh * hd;
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)qr[i] * kr[i];
                sc[p] = d * scale;
                if (sc[p] > mx) mx = sc[p];
            }
            for (int i = 0; i < hd; i++) acc[i] = 0;
            for (int p = 0; p < np; p++) {
                const double e = exp(sc[p] - mx);
                sum += e;
                const float *vr = fv[s] + (size_t)p * kv_dim + (size_t)kvh * hd;
                for (int i = 0; i < hd; i++) acc[i] += e * vr[i];
            }
            for (int i = 0; i < hd; i++) ref[(size_t)t * dim + (size_t)h * hd + i] = acc[i] / sum;
        }
    uint16_t **dkp = dupload(dk, (size_t)n_slots * sizeof *dk), **dvp = dupload(dv, (size_t)n_slots * sizeof *dv);
    float *dq = dupload(q, nq * 4), *dout = dalloc(nq * 4);
    int32_t *dts = dupload(tslot, (size_t)n_tok * 4), *dpos = dupload(pos, (size_t)n_tok * 4);
    poison(dout, nq * 4);
    OK(hk_attention(NULL, dout, dq, dkp, dvp, dts, dpos, n_tok, max_pos, li, n_ctx, nh, nkv, hd));
    CK(cudaMemcpy(out, dout, nq * 4, cudaMemcpyDeviceToHost));
    char name[160];
    snprintf(name, sizeof name, "attention heads %d/%d hd %d: %s (%d tok)", nh, nkv, hd, label, n_tok);
    compare(name, out, ref, nq, (size_t)hd, 2e-5, 1e-4);

    /* the same launch again: the result must not move (a race would) */
    float *out2 = malloc(nq * 4);
    poison(dout, nq * 4);
    OK(hk_attention(NULL, dout, dq, dkp, dvp, dts, dpos, n_tok, max_pos, li, n_ctx, nh, nkv, hd));
    CK(cudaMemcpy(out2, dout, nq * 4, cudaMemcpyDeviceToHost));
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < nq; i++)
        if (f2u(out[i]) != f2u(out2[i])) { if (!bad) first = i; bad++; }
    snprintf(name, sizeof name, "attention heads %d/%d hd %d: %s, rerun", nh, nkv, hd, label);
    report_exact(name, nq, bad, first);

    CK(cudaFree(dkp)); CK(cudaFree(dvp)); CK(cudaFree(dq)); CK(cudaFree(dout)); CK(cudaFree(dts)); CK(cudaFree(dpos));
    for (int s = 0; s < n_slots; s++) {
        CK(cudaFree(dkalloc[s])); CK(cudaFree(dvalloc[s]));
        free(hk[s]); free(hv[s]); free(fk[s]); free(fv[s]);
    }
    free(hk); free(hv); free(fk); free(fv); free(dkalloc); free(dvalloc); free(dk); free(dv);
    free(q); free(out); free(out2); free(ref); free(sc); free(acc); free(tslot); free(pos);
}

static void test_attention(void) {
    /* mixed batch: single-position slot (pos 0), speculative verification (consecutive decode
     * positions of one slot), plain decode, a prefill chunk ending at 1000, decode at ~2500,
     * and a prefill chunk from position 0 */
    const att_run mixed[] = {{1, 0, 1}, {7, 4, 3}, {130, 129, 1}, {1000, 904, 96}, {2500, 2496, 4}, {64, 0, 64}};
    const att_run shortb[] = {{1, 0, 1}, {7, 3, 4}, {3, 2, 1}};
    const struct { int nh, nkv, hd; } cfg[] = {{9, 3, 64}, {32, 32, 128}, {32, 8, 128}, {12, 2, 96}, {8, 8, 256}, {4, 4, 32}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        attention_case(cfg[c].nh, cfg[c].nkv, cfg[c].hd, mixed, 6, 2, "mixed slots 1/7/130/1000/2500/64, slot 2 unaligned");
        attention_case(cfg[c].nh, cfg[c].nkv, cfg[c].hd, shortb, 3, -1, "short decode batch, max_pos 7");
    }

    /* a token whose position is outside the cache gets a NaN row; the others are unaffected */
    {
        const int nh = 4, nkv = 2, hd = 64, n_ctx = 8, kv_dim = nkv * hd;
        uint16_t *h = malloc((size_t)n_ctx * kv_dim * 2);
        for (int i = 0; i < n_ctx * kv_dim; i++) h[i] = f2h((float)urand(-1, 1));
        uint16_t *dkc = dupload(h, (size_t)n_ctx * kv_dim * 2), *dvc = dupload(h, (size_t)n_ctx * kv_dim * 2);
        uint16_t **dkp = dupload(&dkc, sizeof dkc), **dvp = dupload(&dvc, sizeof dvc);
        const int32_t tslot[3] = {0, 0, -1}, pos[3] = {n_ctx, 2, 1};
        float q[3 * 4 * 64], out[3 * 4 * 64];
        fill_uniform(q, 3 * 4 * 64, -1, 1);
        float *dq = dupload(q, sizeof q), *dout = dalloc(sizeof out);
        int32_t *dts = dupload(tslot, sizeof tslot), *dpos = dupload(pos, sizeof pos);
        poison(dout, sizeof out);
        OK(hk_attention(NULL, dout, dq, dkp, dvp, dts, dpos, 3, n_ctx + 1, 0, n_ctx, nh, nkv, hd));
        CK(cudaMemcpy(out, dout, sizeof out, cudaMemcpyDeviceToHost));
        int pass = 1;
        for (int i = 0; i < 4 * 64; i++) pass &= isnan(out[i]) && !isnan(out[256 + i]) && isnan(out[512 + i]);
        printf("%-4s %-58s\n", pass ? "ok" : "FAIL", "attention: pos >= n_ctx and slot < 0 give NaN rows");
        if (!pass) g_fail++;
        CK(cudaFree(dkc)); CK(cudaFree(dvc)); CK(cudaFree(dkp)); CK(cudaFree(dvp)); CK(cudaFree(dq)); CK(cudaFree(dout));
        CK(cudaFree(dts)); CK(cudaFree(dpos));
        free(h);
    }
}

/* ---- SwiGLU ---- */
static void test_swiglu(void) {
    const int shapes[][2] = {{3, 1536}, {17, 11008}, {1, 100}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ti = 0; ti < 3; ti++) {
            const int rows = shapes[s][0], ffn = shapes[s][1];
            const hk_dtype ot = all_t[ti];
            const size_t n = (size_t)rows * ffn;
            float *gu = malloc(2 * n * 4), *out = malloc(n * 4);
            double *ref = malloc(n * 8);
            fill_uniform(gu, 2 * n, -6, 6);
            gu[0] = -100.0f; gu[1] = 90.0f; /* exp overflow on either side */
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < ffn; j++) {
                    const double g = gu[(size_t)r * 2 * ffn + j], u = gu[(size_t)r * 2 * ffn + ffn + j];
                    ref[(size_t)r * ffn + j] = g / (1.0 + exp(-g)) * u;
                }
            float *dgu = dupload(gu, 2 * n * 4);
            void *dout = dalloc(n * hk_dtype_size(ot));
            poison(dout, n * hk_dtype_size(ot));
            OK(hk_swiglu(NULL, dout, ot, dgu, rows, ffn));
            download(out, dout, ot, n);
            char name[128];
            snprintf(name, sizeof name, "swiglu rows %d ffn %d out %s", rows, ffn, tname(ot));
            compare(name, out, ref, n, 0, thr_of(ot), 0);
            CK(cudaFree(dgu)); CK(cudaFree(dout));
            free(gu); free(out); free(ref);
        }
}

/* ---- GEMV (weight streaming for small steps) ---- */
/* out rows t of stride ldc, columns [0, d_out): ref = X W^T + beta * prior (fp64 on the rounded
 * inputs); the columns [d_out, ldc) between rows must keep their prior values (never written) */
static void test_gemv(void) {
    const int shapes[][3] = {/* n, d_out, d_in */ {1, 576, 576}, {3, 192, 576}, {8, 1536, 576}, {1, 577, 1536},
                             {5, 4096, 11008}, {8, 1003, 4104}, {2, 9, 8}};
    const hk_dtype ts[2] = {HK_F16, HK_BF16};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ti = 0; ti < 2; ti++)
            for (int bi = 0; bi < 2; bi++) {
                const int n = shapes[s][0], d_out = shapes[s][1], d_in = shapes[s][2], ldc = d_out + 3 * (int)(s % 2);
                const hk_dtype t = ts[ti];
                const float beta = bi ? 1.0f : 0.0f;
                const size_t nw = (size_t)d_out * d_in, nx = (size_t)n * d_in, no = (size_t)n * ldc;
                float *w = malloc(nw * 4), *x = malloc(nx * 4), *prior = malloc(no * 4), *out = malloc(no * 4);
                uint16_t *hw = malloc(nw * 2), *hx = malloc(nx * 2);
                double *ref = malloc((size_t)n * d_out * 8);
                fill_uniform(w, nw, -1, 1);
                fill_uniform(x, nx, -2, 2);
                fill_uniform(prior, no, -3, 3);
                for (size_t i = 0; i < nw; i++) { hw[i] = t == HK_F16 ? f2h(w[i]) : f2b(w[i]); w[i] = round_to(t, w[i]); }
                for (size_t i = 0; i < nx; i++) { hx[i] = t == HK_F16 ? f2h(x[i]) : f2b(x[i]); x[i] = round_to(t, x[i]); }
                for (int r = 0; r < n; r++)
                    for (int o = 0; o < d_out; o++) {
                        double a = 0;
                        for (int k = 0; k < d_in; k++) a += (double)w[(size_t)o * d_in + k] * x[(size_t)r * d_in + k];
                        ref[(size_t)r * d_out + o] = a + (bi ? prior[(size_t)r * ldc + o] : 0.0);
                    }
                void *dw = dupload(hw, nw * 2), *dx = dupload(hx, nx * 2);
                float *dout = dupload(prior, no * 4);
                if (!bi) /* beta 0: out must not be read: poison the columns it writes */
                    for (int r = 0; r < n; r++) poison(dout + (size_t)r * ldc, (size_t)d_out * 4);
                OK(hk_gemv(NULL, dout, ldc, dw, dx, t, n, d_out, d_in, beta));
                CK(cudaMemcpy(out, dout, no * 4, cudaMemcpyDeviceToHost));
                float *packed = malloc((size_t)n * d_out * 4);
                size_t kept_bad = 0, first = 0;
                for (int r = 0; r < n; r++) {
                    memcpy(packed + (size_t)r * d_out, out + (size_t)r * ldc, (size_t)d_out * 4);
                    for (int o = d_out; o < ldc; o++)
                        if (f2u(out[(size_t)r * ldc + o]) != f2u(prior[(size_t)r * ldc + o]) && !kept_bad++) first = (size_t)r * ldc + o;
                }
                char name[128];
                snprintf(name, sizeof name, "gemv n %d d_out %d d_in %d ldc %d %s beta %g", n, d_out, d_in, ldc, tname(t), beta);
                compare(name, packed, ref, (size_t)n * d_out, (size_t)d_out, 1e-5, 1e-5);
                if (ldc > d_out) {
                    snprintf(name, sizeof name, "gemv n %d ldc %d: columns past d_out untouched", n, ldc);
                    report_exact(name, (size_t)n * (ldc - d_out), kept_bad, first);
                }
                CK(cudaFree(dw)); CK(cudaFree(dx)); CK(cudaFree(dout));
                free(w); free(x); free(prior); free(out); free(hw); free(hx); free(ref); free(packed);
            }
}

/* ---- residual add (exact) ---- */
static void test_add(void) {
    const size_t n = 1000003;
    for (int mis = 0; mis < 2; mis++) {
        float *x = malloc((n + 1) * 4), *y = malloc((n + 1) * 4), *o = malloc((n + 1) * 4);
        fill_uniform(x, n + 1, -10, 10);
        fill_uniform(y, n + 1, -10, 10);
        float *dx = dupload(x, (n + 1) * 4), *dy = dupload(y, (n + 1) * 4);
        OK(hk_add(NULL, dx + mis, dy + mis, n));
        CK(cudaMemcpy(o, dx, (n + 1) * 4, cudaMemcpyDeviceToHost));
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n + 1; i++) {
            const float e = (i >= (size_t)mis && i < n + (size_t)mis) ? x[i] + y[i] : x[i];
            if (f2u(o[i]) != f2u(e)) { if (!bad) first = i; bad++; }
        }
        report_exact(mis ? "add n 1000003, unaligned (scalar path), untouched ends" : "add n 1000003 (float4 + tail)",
                     n + 1, bad, first);
        CK(cudaFree(dx)); CK(cudaFree(dy));
        free(x); free(y); free(o);
    }
}

/* ---- embedding (exact, NaN rows for ids out of range) ---- */
static void test_embed(void) {
    const int n_vocab = 1000, dim = 576, n_tok = 9;
    const int32_t tok[9] = {0, 999, 17, 500, 999, 0, -1, 1000, 3};
    for (int ti = 0; ti < 3; ti++) {
        const hk_dtype tt = all_t[ti];
        const size_t nt = (size_t)n_vocab * dim, es = hk_dtype_size(tt);
        void *table = malloc(nt * es);
        float *tf = malloc(nt * 4), *out = malloc((size_t)n_tok * dim * 4);
        for (size_t i = 0; i < nt; i++) {
            const float v = (float)urand(-1, 1);
            if (tt == HK_F32) { ((float *)table)[i] = v; tf[i] = v; }
            else if (tt == HK_F16) { ((uint16_t *)table)[i] = f2h(v); tf[i] = h2f(f2h(v)); }
            else { ((uint16_t *)table)[i] = f2b(v); tf[i] = b2f(f2b(v)); }
        }
        void *dt = dupload(table, nt * es);
        int32_t *dtok = dupload(tok, sizeof tok);
        float *dout = dalloc((size_t)n_tok * dim * 4);
        poison(dout, (size_t)n_tok * dim * 4);
        OK(hk_embed(NULL, dout, dt, tt, dtok, n_tok, dim, n_vocab));
        CK(cudaMemcpy(out, dout, (size_t)n_tok * dim * 4, cudaMemcpyDeviceToHost));
        size_t bad = 0, first = 0;
        for (int t = 0; t < n_tok; t++)
            for (int i = 0; i < dim; i++) {
                const float o = out[(size_t)t * dim + i];
                const int ok = (tok[t] < 0 || tok[t] >= n_vocab) ? isnan(o)
                                                                : f2u(o) == f2u(tf[(size_t)tok[t] * dim + i]);
                if (!ok) { if (!bad) first = (size_t)t * dim + i; bad++; }
            }
        char name[128];
        snprintf(name, sizeof name, "embed table %s, ids 0 and n_vocab-1, -1 and n_vocab -> NaN", tname(tt));
        report_exact(name, (size_t)n_tok * dim, bad, first);
        CK(cudaFree(dt)); CK(cudaFree(dtok)); CK(cudaFree(dout));
        free(table); free(tf); free(out);
    }
}

/* ---- conversion (exact, round to nearest even; NaN must stay NaN) ---- */
static void test_convert(void) {
    /* inputs: F16 and BF16 all 65536 bit patterns; F32 specials, ties and random bit patterns */
    const size_t n32 = 1 << 20;
    float *f32in = malloc(n32 * 4);
    for (size_t i = 0; i < n32; i++) f32in[i] = u2f((uint32_t)rnd());
    const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65519.0f, 65520.0f,
                              70000.0f, 3.4028235e38f, 1e-8f, 5.9604645e-8f, 2.9802322e-8f, 2.98023259e-8f,
                              8.940697e-8f, 6.1035156e-5f, 6.0975552e-5f, 1e-40f, -1e-45f,
                              1.0f + 0x1p-11f,       /* fp16 tie: down to 1 (even) */
                              1.0f + 3 * 0x1p-11f,   /* fp16 tie: up to 1 + 2^-9 (even) */
                              1.0f + 0x1p-8f,        /* bf16 tie: down to 1 */
                              1.0f + 3 * 0x1p-8f,    /* bf16 tie: up to 1 + 2^-6 */
                              -(1.0f + 3 * 0x1p-11f), 2049.0f, 2051.0f, 3.0f + 0x1p-7f};
    const size_t nsp = sizeof specials / sizeof specials[0];
    memcpy(f32in, specials, sizeof specials);
    /* a stretch of values spread over the usual weight and activation range */
    for (size_t i = nsp; i < 4096; i++) f32in[i] = (float)urand(-8, 8);
    uint16_t *b16 = malloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++) b16[i] = (uint16_t)i;

    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            const hk_dtype it = all_t[a], ot = all_t[b];
            const size_t n = it == HK_F32 ? n32 : 65536;
            const void *hin = it == HK_F32 ? (const void *)f32in : (const void *)b16;
            float *inf = malloc(n * 4), *out = malloc(n * 4);
            for (size_t i = 0; i < n; i++) inf[i] = it == HK_F32 ? f32in[i] : it == HK_F16 ? h2f(b16[i]) : b2f(b16[i]);
            void *din = dupload(hin, n * hk_dtype_size(it));
            void *dout = dalloc(n * hk_dtype_size(ot));
            poison(dout, n * hk_dtype_size(ot));
            OK(hk_convert(NULL, dout, ot, din, it, n));
            download(out, dout, ot, n);
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < n; i++) {
                const float e = round_to(ot, inf[i]);
                const int ok = isnan(e) ? isnan(out[i]) : f2u(out[i]) == f2u(e);
                if (!ok) { if (!bad) first = i; bad++; }
            }
            char name[128];
            snprintf(name, sizeof name, "convert %s -> %s (%s)", tname(it), tname(ot),
                     it == HK_F32 ? "ties, specials, random bits" : "all 65536 values");
            report_exact(name, n, bad, first);
            if (bad) {
                float got; download(&got, (const char *)dout + first * hk_dtype_size(ot), ot, 1);
                printf("     first: in %.9g (0x%08x) -> %.9g, expected %.9g\n", (double)inf[first], f2u(inf[first]),
                       (double)got, (double)round_to(ot, inf[first]));
            }
            CK(cudaFree(din)); CK(cudaFree(dout));
            free(inf); free(out);
        }
    free(f32in); free(b16);
}

/* ---- synthetic weights (bit-identical to synth_value on the CPU) ---- */
static void test_synth(void) {
    const struct { uint64_t i0; size_t n; uint64_t seed; uint32_t tensor; float scale, offset; } cs[] = {
        {0, (1u << 20) + 3, 1, SYNTH_T(0, SYNTH_WQ), 0.0721f, 0.0f},
        {0, 4097, 0xDEADBEEFCAFEull, SYNTH_T_EMBED, 1.0f, 0.0f},
        {(1ull << 32) - 1000, 3000, 7, SYNTH_T(31, SYNTH_W_DOWN), 0.0165f, 0.0f}, /* crosses 2^32 */
        {5000000000ull, 2000, 42, SYNTH_T(3, SYNTH_ATTN_NORM), 0.1f, 1.0f},
        {(1ull << 40) + 12345, 1000, 9, SYNTH_T_OUTPUT, 0.03f, 0.0f}};
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++)
        for (int ti = 0; ti < 3; ti++) {
            const hk_dtype ot = all_t[ti];
            const size_t n = cs[c].n;
            void *d = dalloc(n * hk_dtype_size(ot));
            poison(d, n * hk_dtype_size(ot));
            if (cs[c].i0 == 0)
                OK(hk_synth_fill(NULL, d, ot, n, cs[c].seed, cs[c].tensor, cs[c].scale, cs[c].offset));
            else
                OK(hk_synth_fill_range(NULL, d, ot, cs[c].i0, n, cs[c].seed, cs[c].tensor, cs[c].scale, cs[c].offset));
            float *out = malloc(n * 4);
            download(out, d, ot, n);
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < n; i++) {
                const float e = round_to(ot, synth_value(cs[c].seed, cs[c].tensor, cs[c].i0 + i, cs[c].scale, cs[c].offset));
                if (f2u(out[i]) != f2u(e)) { if (!bad) first = i; bad++; }
            }
            char name[128];
            snprintf(name, sizeof name, "synth_fill %s i0 %llu n %zu tensor 0x%x", tname(ot), (unsigned long long)cs[c].i0,
                     n, cs[c].tensor);
            report_exact(name, n, bad, first);
            CK(cudaFree(d));
            free(out);
        }
}

/* ---- copy and sizes ---- */
static void test_copy(void) {
    const size_t bytes = (3u << 20) + 7;
    unsigned char *h = malloc(bytes), *o = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) h[i] = (unsigned char)rnd();
    void *src = dupload(h, bytes), *dst = dalloc(bytes);
    poison(dst, bytes);
    OK(hk_copy(NULL, dst, src, bytes));
    CK(cudaMemcpy(o, dst, bytes, cudaMemcpyDeviceToHost));
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < bytes; i++)
        if (o[i] != h[i]) { if (!bad) first = i; bad++; }
    report_exact("copy 3 MiB + 7 bytes", bytes, bad, first);
    const int sizes_ok = hk_dtype_size(HK_F32) == 4 && hk_dtype_size(HK_F16) == 2 && hk_dtype_size(HK_BF16) == 2;
    printf("%-4s %-58s\n", sizes_ok ? "ok" : "FAIL", "dtype sizes 4/2/2");
    if (!sizes_ok) g_fail++;
    CK(cudaFree(src)); CK(cudaFree(dst));
    free(h); free(o);
}

/* ---- argument checks: a bad shape returns non-zero and the message names the op ---- */
static void expect_error(const char *what, int rc, const char *op, const char *word) {
    const char *msg = hk_last_error();
    const int pass = rc != 0 && strstr(msg, op) != NULL && (!word || strstr(msg, word) != NULL);
    printf("%-4s %-58s rc %d: %s\n", pass ? "ok" : "FAIL", what, rc, msg);
    if (!pass) g_fail++;
}

static void test_args(void) {
    float *d = dalloc(1 << 16);
    int32_t *di = dalloc(1024);
    uint16_t **dp = dalloc(64);
    expect_error("rmsnorm dim 0", hk_rmsnorm(NULL, d, HK_F32, d, d, 4, 0, 1e-5f), "hk_rmsnorm", "dim");
    expect_error("rmsnorm bad dtype", hk_rmsnorm(NULL, d, (hk_dtype)7, d, d, 4, 64, 1e-5f), "hk_rmsnorm", "out_t");
    expect_error("rmsnorm NULL x", hk_rmsnorm(NULL, d, HK_F32, NULL, d, 4, 64, 1e-5f), "hk_rmsnorm", "x");
    expect_error("rope odd rope_dim", hk_rope(NULL, d, d, di, 2, 4, 2, 64, 63, 10000.0f), "hk_rope", "rope_dim");
    expect_error("rope rope_dim > head_dim", hk_rope(NULL, d, d, di, 2, 4, 2, 64, 128, 10000.0f), "hk_rope", "rope_dim");
    expect_error("attention head_dim 48", hk_attention(NULL, d, d, dp, dp, di, di, 2, 8, 0, 16, 4, 2, 48),
                 "hk_attention", "head_dim");
    expect_error("attention head_dim 512", hk_attention(NULL, d, d, dp, dp, di, di, 2, 8, 0, 16, 4, 2, 512),
                 "hk_attention", "head_dim");
    expect_error("attention n_head 9 / n_head_kv 2", hk_attention(NULL, d, d, dp, dp, di, di, 2, 8, 0, 16, 9, 2, 64),
                 "hk_attention", "n_head");
    expect_error("attention max_pos 0", hk_attention(NULL, d, d, dp, dp, di, di, 2, 0, 0, 16, 4, 2, 64),
                 "hk_attention", "max_pos");
    expect_error("attention NULL k_cache", hk_attention(NULL, d, d, NULL, dp, di, di, 2, 8, 0, 16, 4, 2, 64),
                 "hk_attention", "k_cache");
    expect_error("kv_store kv_dim 0", hk_kv_store(NULL, dp, dp, d, d, di, di, 2, 0, 16, 0), "hk_kv_store", "kv_dim");
    expect_error("kv_store n_ctx -1", hk_kv_store(NULL, dp, dp, d, d, di, di, 2, 0, -1, 64), "hk_kv_store", "n_ctx");
    expect_error("swiglu ffn 0", hk_swiglu(NULL, d, HK_F16, d, 2, 0), "hk_swiglu", "ffn");
    expect_error("embed n_vocab 0", hk_embed(NULL, d, d, HK_F16, di, 2, 64, 0), "hk_embed", "n_vocab");
    expect_error("convert bad in_t", hk_convert(NULL, d, HK_F16, d, (hk_dtype)3, 16), "hk_convert", "in_t");
    expect_error("add NULL y", hk_add(NULL, d, NULL, 16), "hk_add", "y");
    expect_error("synth_fill bad dtype", hk_synth_fill(NULL, d, (hk_dtype)-1, 16, 1, 0, 1.0f, 0.0f), "hk_synth_fill",
                 "out_t");
    expect_error("copy NULL dst", hk_copy(NULL, NULL, d, 16), "hk_copy", "dst");
    expect_error("gemv d_in 12", hk_gemv(NULL, d, 4, d, d, HK_F16, 1, 4, 12, 0.0f), "hk_gemv", "d_in");
    expect_error("gemv n 9", hk_gemv(NULL, d, 4, d, d, HK_F16, 9, 4, 16, 0.0f), "hk_gemv", "n");
    expect_error("gemv f32", hk_gemv(NULL, d, 4, d, d, HK_F32, 1, 4, 16, 0.0f), "hk_gemv", "dtype");
    expect_error("gemv ldc < d_out", hk_gemv(NULL, d, 3, d, d, HK_F16, 1, 4, 16, 0.0f), "hk_gemv", "ldc");
    expect_error("gemv misaligned W", hk_gemv(NULL, d, 4, (const char *)d + 2, d, HK_F16, 1, 4, 16, 0.0f), "hk_gemv",
                 "aligned");
    CK(cudaFree(d)); CK(cudaFree(di)); CK(cudaFree(dp));
}

int main(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIP: no CUDA GPU\n");
        return 77;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device 0: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    test_args();
    test_rmsnorm();
    test_rope();
    test_kv_store();
    test_attention();
    test_swiglu();
    test_gemv();
    test_add();
    test_embed();
    test_convert();
    test_synth();
    test_copy();
    CK(cudaDeviceSynchronize());
    if (g_fail) {
        printf("%d case(s) FAILED\n", g_fail);
        return 1;
    }
    printf("all cases passed\n");
    return 0;
}
