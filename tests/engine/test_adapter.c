/* The draft adapter (split/adapter.h, calib/adapter_fit.h) and `hat calibrate`:
 *  1. fits on synthetic data with a known map + small noise: linear recovers W and c, lowrank recovers a rank-r
 *     map, R^2 near 1; the training R^2 computed from the statistics equals a direct evaluation; ridge shrinks;
 *     bad fits (too few tokens, bad rank, singular without ridge) are errors;
 *  2. save/load round trip is bit-exact (same file again, same outputs); adapter_apply against a naive
 *     double-precision loop for 1..150 rows, in place and out of place;
 *  3. every damaged or mismatched file is refused with a message that names the problem;
 *  4. with the real model (argv[1]): a tiny `hat calibrate` run (cli_calibrate: the command's own option parsing
 *     and calib_run), reuse of its corpus gives the same adapter, so does the corpus rewritten in format version 1;
 *     the adapter loads for its split only; --samples 2 (greedy + sampled generations) records prompt, sample,
 *     temperature and seed per sequence and its corpus reused gives the same adapter; bad invocations fail.
 * usage: test_adapter [MODEL.gguf] */
#include "split/adapter.h"
#include "calib/adapter_fit.h"
#include "cli/cli.h"
#include "core/common.h"
#include "core/crc32c.h"
#include "engine/gguf.h"
#include "support/testutil.h"
#include "net/wire.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* x (n, d): per-dimension offset + spread, so the bias matters; t = x + W0 x + c0 + noise */
static void synth(float *x, float *t, size_t n, int d, const double *W0, const double *c0, double noise) {
    for (size_t r = 0; r < n; r++) {
        for (int j = 0; j < d; j++) x[r * d + j] = (float)(0.5 * j / d + (1.0 + (j % 5)) * t_normalish());
        for (int i = 0; i < d; i++) {
            double acc = x[r * d + i] + c0[i];
            for (int j = 0; j < d; j++) acc += W0[(size_t)i * d + j] * x[r * d + j];
            t[r * d + i] = (float)(acc + noise * t_normalish());
        }
    }
}

/* dense W of a fitted adapter, from its response to basis vectors: W e_j = apply(e_j) - e_j - c */
static void dense_of(const adapter *ad, int d, double *W, double *c) {
    float *z = calloc((size_t)d, sizeof(float)), *o = malloc(sizeof(float) * d);
    adapter_apply(ad, z, o, 1);
    for (int i = 0; i < d; i++) c[i] = o[i];
    for (int j = 0; j < d; j++) {
        memset(z, 0, sizeof(float) * d);
        z[j] = 1.0f;
        adapter_apply(ad, z, o, 1);
        for (int i = 0; i < d; i++) W[(size_t)i * d + j] = (double)o[i] - z[i] - c[i];
    }
    free(z);
    free(o);
}

/* bad fits are errors: too few tokens, bad rank, negative lambda, singular without ridge (n rows of x, t, dim d) */
static void check_fit_errors(const float *x, const float *t, size_t n, int d) {
    char err[HAT_ERRLEN];
    adapter *bad = NULL;
    EXPECT(adapter_fit(&bad, x, t, 1, d, ADAPTER_LINEAR, 0, 1e-3, err, sizeof err) != HAT_OK && strstr(err, "1 token"),
           "one token: %s", err);
    int rc = adapter_fit(&bad, x, t, n, d, ADAPTER_LOWRANK, 0, 1e-3, err, sizeof err);
    EXPECT(rc == HAT_ERR_ARG && strstr(err, "rank"), "rank 0: %s", err);
    rc = adapter_fit(&bad, x, t, n, d, ADAPTER_LOWRANK, d + 1, 1e-3, err, sizeof err);
    EXPECT(rc == HAT_ERR_ARG, "rank > dim: %s", err);
    rc = adapter_fit(&bad, x, t, n, d, ADAPTER_LINEAR, 0, -1, err, sizeof err);
    EXPECT(rc == HAT_ERR_ARG, "negative lambda: %s", err);
    rc = adapter_fit(&bad, x, t, 10, d, ADAPTER_LINEAR, 0, 0, err, sizeof err);
    EXPECT(rc != HAT_OK && strstr(err, "positive definite"), "10 tokens in dim 48 without ridge is singular: %s", err);
    EXPECT(bad == NULL, "no adapter on error");
    rc = adapter_fit(&bad, x, t, 10, d, ADAPTER_LINEAR, 0, 1e-3, err, sizeof err);
    EXPECT(rc == HAT_OK, "ridge makes it solvable: %s", err);
    adapter_free(bad);
    EXPECT(adapter_form_parse("lowrank") == ADAPTER_LOWRANK && adapter_form_parse("Linear") < 0, "form names");
}

static void test_fit(void) {
    const int d = 48, r = 4;
    const size_t n = 4000;
    double *W0 = calloc((size_t)d * d, sizeof(double)), *c0 = malloc(sizeof(double) * d);
    double *A = malloc(sizeof(double) * d * r), *B = malloc(sizeof(double) * d * r);
    for (int i = 0; i < d; i++) c0[i] = 3.0 * t_normalish();
    for (int i = 0; i < d * r; i++) { A[i] = 0.5 * t_normalish(); B[i] = 0.5 * t_normalish(); }
    for (int i = 0; i < d; i++)   /* rank-r truth W0 = A B^T */
        for (int j = 0; j < d; j++)
            for (int k = 0; k < r; k++) W0[(size_t)i * d + j] += A[i * r + k] * B[j * r + k];
    float *x = malloc(sizeof(float) * n * d), *t = malloc(sizeof(float) * n * d);
    float *xv = malloc(sizeof(float) * n * d), *tv = malloc(sizeof(float) * n * d);
    synth(x, t, n, d, W0, c0, 0.01);
    synth(xv, tv, n, d, W0, c0, 0.01);
    char err[HAT_ERRLEN];
    double *W = malloc(sizeof(double) * d * d), *c = malloc(sizeof(double) * d);

    adapter *lin = NULL, *low = NULL, *low2 = NULL, *id = NULL, *big = NULL;
    EXPECT(adapter_fit(&lin, x, t, n, d, ADAPTER_LINEAR, 0, 1e-9, err, sizeof err) == HAT_OK, "linear fit: %s", err);
    EXPECT(adapter_fit(&low, x, t, n, d, ADAPTER_LOWRANK, r, 1e-9, err, sizeof err) == HAT_OK, "lowrank fit: %s", err);
    EXPECT(adapter_fit(&low2, x, t, n, d, ADAPTER_LOWRANK, 2, 1e-9, err, sizeof err) == HAT_OK, "rank-2 fit: %s", err);
    EXPECT(adapter_fit(&id, x, t, n, d, ADAPTER_IDENTITY, 0, 0, err, sizeof err) == HAT_OK, "identity fit: %s", err);
    EXPECT(adapter_fit(&big, x, t, n, d, ADAPTER_LINEAR, 0, 10.0, err, sizeof err) == HAT_OK, "ridge fit: %s", err);
    if (!lin || !low || !low2 || !id || !big) return;

    adapter *fits[2] = {lin, low};
    for (int f = 0; f < 2; f++) {
        dense_of(fits[f], d, W, c);
        double ew = 0, ec = 0;
        for (int i = 0; i < d * d; i++) ew = fmax(ew, fabs(W[i] - W0[i]));
        for (int i = 0; i < d; i++) ec = fmax(ec, fabs(c[i] - c0[i]));
        EXPECT(ew < 2e-3 && ec < 5e-3, "%s recovers W (max err %.2e) and c (max err %.2e)",
               adapter_form_name(adapter_get_form(fits[f])), ew, ec);
        const adapter_info *in = adapter_get_info(fits[f]);
        adapter_metrics m, mt;
        adapter_eval(fits[f], xv, tv, n, &m);
        adapter_eval(fits[f], x, t, n, &mt);
        EXPECT(in->r2_train > 0.9999 && m.r2 > 0.9999 && m.r2_target > 0.9999, "%s R^2 train %.6f held-out %.6f",
               adapter_form_name(in->form), in->r2_train, m.r2);
        /* the training figures from the sufficient statistics equal a direct evaluation */
        EXPECT(fabs(in->r2_train - mt.r2) < 1e-9 && fabs(in->r2_target_train - mt.r2_target) < 1e-9,
               "%s: R^2 from statistics %.12f / %.12f, direct %.12f / %.12f", adapter_form_name(in->form), in->r2_train,
               in->r2_target_train, mt.r2, mt.r2_target);
        EXPECT(in->n_train == n && in->dim == d, "info n_train %llu dim %d", (unsigned long long)in->n_train, in->dim);
        /* the noise floor: per-dimension noise 0.01 (t_normalish has unit variance), so rms 0.01 sqrt(d) */
        EXPECT(m.rms < 1.1 * 0.01 * sqrt(d) && m.rel_err < 0.01, "per-token error rms %.4f (noise %.4f) rel %.5f",
               m.rms, 0.01 * sqrt(d), m.rel_err);
    }
    EXPECT(adapter_get_info(low)->rank == r, "rank stored");
    adapter_metrics m2, m4, mi;
    adapter_eval(low2, xv, tv, n, &m2);
    adapter_eval(low, xv, tv, n, &m4);
    adapter_eval(id, xv, tv, n, &mi);
    EXPECT(m2.r2 < m4.r2 - 0.05, "rank 2 (R^2 %.4f) is worse than the true rank 4 (%.4f)", m2.r2, m4.r2);
    EXPECT(fabs(mi.r2_target - m4.r2_identity) < 1e-12 &&
           fabs(adapter_get_info(id)->r2_target_train - mi.r2_identity) < 0.01,
           "identity: R^2 %.6f vs %.6f", mi.r2_target, m4.r2_identity);
    double nl = 0, nb = 0, *Wb = malloc(sizeof(double) * d * d);
    dense_of(lin, d, W, c);
    dense_of(big, d, Wb, c);
    for (int i = 0; i < d * d; i++) { nl += W[i] * W[i]; nb += Wb[i] * Wb[i]; }
    EXPECT(nb < 0.5 * nl, "ridge lambda 10 shrinks |W|^2 (%.3f vs %.3f)", nb, nl);
    free(Wb);

    check_fit_errors(x, t, n, d);

    adapter_free(lin); adapter_free(low); adapter_free(low2); adapter_free(id); adapter_free(big);
    free(W0); free(c0); free(A); free(B); free(x); free(t); free(xv); free(tv); free(W); free(c);
}

/* ---------------------------------------------------------------- files */

static int same(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

static gguf_file fake_model(const uint8_t *buf, size_t n) {
    gguf_file f;
    memset(&f, 0, sizeof f);
    f.map = buf;
    f.size = n;
    return f;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) { free(b); b = NULL; }
    fclose(f);
    return b;
}
static uint32_t get_le32(const uint8_t *p) {
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void spit(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* naive reference: out = x + W x + c in double */
static void naive(const adapter *ad, const double *W, const double *c, const float *x, double *out, int n, int d) {
    (void)ad;
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++) {
            double acc = (double)x[(size_t)r * d + i] + c[i];
            for (int j = 0; j < d; j++) acc += W[(size_t)i * d + j] * x[(size_t)r * d + j];
            out[(size_t)r * d + i] = acc;
        }
}

/* apply of ld (ad loaded) gives the bits of ad's, in place too, and matches a naive loop */
static void check_apply(const adapter *ad, const adapter *ld, const char *name, const float *x, int d) {
    float *o1 = malloc(sizeof(float) * 150 * d), *o2 = malloc(sizeof(float) * 150 * d);
    float *xc = malloc(sizeof(float) * 150 * d);
    double *ref = malloc(sizeof(double) * 150 * d), *W = malloc(sizeof(double) * d * d);
    double *c = malloc(sizeof(double) * d);
    /* apply: loaded == original bits, both == naive reference; 1..150 rows cross the internal block size */
    if (adapter_get_form(ad) != ADAPTER_IDENTITY) dense_of(ad, d, W, c);
    else { memset(W, 0, sizeof(double) * d * d); memset(c, 0, sizeof(double) * d); }
    const int counts[] = {1, 3, 64, 65, 150};
    for (int q = 0; q < 5; q++) {
        const int m = counts[q];
        adapter_apply(ad, x, o1, m);
        adapter_apply(ld, x, o2, m);
        EXPECT(!memcmp(o1, o2, sizeof(float) * m * d), "%s: loaded adapter gives the same bits (%d rows)",
               name, m);
        memcpy(xc, x, sizeof(float) * m * d);
        adapter_apply(ld, xc, xc, m);   /* in place */
        EXPECT(!memcmp(o1, xc, sizeof(float) * m * d), "%s: in place == out of place (%d rows)", name, m);
        naive(ld, W, c, x, ref, m, d);
        double emax = 0, vmax = 0;
        for (int i = 0; i < m * d; i++) {
            emax = fmax(emax, fabs(o1[i] - ref[i]));
            vmax = fmax(vmax, fabs(ref[i]));
        }
        EXPECT(emax <= 1e-5 * vmax, "%s: apply vs naive loop, %d rows: max err %.3g of %.3g", name, m, emax,
               vmax);
    }
    free(o1); free(o2); free(xc); free(ref); free(W); free(c);
}

/* Provenance, save and load of ad (fitted for model fa, split 2,2 of 30 layers, dim d): the round trip is bit-exact
 * and keeps the info; then check_apply on rows of x (150 at least). */
static void check_round_trip(adapter *ad, const char *name, const gguf_file *fa, const float *x, int d) {
    char err[HAT_ERRLEN];
    adapter_metrics held = {.n = 77, .r2 = 0.5, .r2_target = 0.9, .r2_identity = 0.7, .rms = 3.0, .rel_err = 0.1};
    adapter_set_provenance(ad, fa, 30, 2, 2, 1, "corpus: test \xc3\xa9t\xc3\xa9 (UTF-8)", &held);
    adapter_set_agreement(ad, 0.25, 0.01, 500);
    const char *p = tmp_path(name);
    EXPECT(adapter_save(ad, p, err, sizeof err) == HAT_OK, "save %s: %s", p, err);
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", p);
    EXPECT(access(tmpname, F_OK) != 0, "no %s left behind", tmpname);
    adapter *ld = NULL;
    EXPECT(adapter_load(&ld, p, fa, 30, d, 2, 2, err, sizeof err) == HAT_OK, "load %s: %s", p, err);
    if (!ld) return;
    /* bit-exact: saving the loaded adapter gives the same file, and outputs are the same bits */
    size_t n1, n2;
    const char *p2 = tmp_path("again.adapter");
    EXPECT(adapter_save(ld, p2, err, sizeof err) == HAT_OK, "%s", err);
    uint8_t *b1 = slurp(p, &n1), *b2 = slurp(p2, &n2);
    EXPECT(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "%s: save(load(file)) is the same file", name);
    free(b1);
    free(b2);
    const adapter_info *i0 = adapter_get_info(ad), *i1 = adapter_get_info(ld);
    EXPECT(i1->form == i0->form && i1->a == 2 && i1->b == 2 && i1->n_layer == 30 && i1->dim == d &&
           i1->rank == i0->rank && i1->min_pos == 1 && i1->n_heldout == 77 && i1->r2_heldout == 0.5 &&
           same(i1->r2_train, i0->r2_train) && same(i1->r2_target_train, i0->r2_target_train) &&
           same(i1->lambda, i0->lambda) && i1->rms_heldout == 3.0 && i1->agree_heldout == 0.25 &&
           i1->agree_identity_heldout == 0.01 && i1->n_agree == 500 && i1->model_crc == i0->model_crc &&
           i1->model_size == fa->size && !strcmp(i1->corpus, i0->corpus) && i1->created == i0->created &&
           !strcmp(i1->hat_git, i0->hat_git),
           "%s: info survives the round trip", name);
    char desc[2048];
    adapter_describe(ld, desc, sizeof desc);
    EXPECT(strstr(desc, adapter_form_name(i0->form)) && strstr(desc, "a=2 b=2") && strstr(desc, "0.5000") &&
           strstr(desc, "25.0%") &&
           strstr(desc, "test \xc3\xa9t\xc3\xa9"), "describe: %s", desc);
    check_apply(ad, ld, name, x, d);
    adapter_free(ld);
}

/* every damaged or mismatched file is refused with a message that names the problem; lin was saved as lin.adapter
 * for model fa (fb is another model of the same size), split 2,2 of 30 layers, dim d */
static void check_rejections(const adapter *lin, const gguf_file *fa, const gguf_file *fb, int d) {
    char err[HAT_ERRLEN];
    const char *good = tmp_path("lin.adapter");
    size_t n0;
    uint8_t *b0 = slurp(good, &n0), *b = malloc(n0);
    adapter *ld = NULL;
    struct { const char *what, *expect1, *expect2; int code; } cases[] = {
        {"truncated by one byte", "truncated", NULL, HAT_ERR_FORMAT},
        {"cut inside the header", "truncated", NULL, HAT_ERR_FORMAT},
        {"one flipped bit in the weights", "corrupt", "checksum", HAT_ERR_FORMAT},
        {"one flipped bit in the corpus text", "corrupt", "checksum", HAT_ERR_FORMAT},
        {"bad magic", "not a HAT adapter", NULL, HAT_ERR_FORMAT},
        {"format version 2", "format version 2", "reads version 1", HAT_ERR_UNSUPPORTED},
        {"unknown form", "unknown form", NULL, HAT_ERR_FORMAT},
        {"appended byte", "too long", NULL, HAT_ERR_FORMAT},
        {"empty file", "not a HAT adapter", NULL, HAT_ERR_FORMAT},
    };
    const char *bp = tmp_path("bad.adapter");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, b0, n0);
        size_t nb = n0;
        switch (k) {
        case 0: nb = n0 - 1; break;
        case 1: nb = 100; break;
        case 2: b[n0 - 40] ^= 0x10; break;
        case 3: b[270] ^= 0x01; break;
        case 4: b[0] = 'X'; break;
        case 5: b[8] = 2; break;
        case 6: b[12] = 7; break;
        case 7: b = realloc(b, n0 + 1); b[n0] = 0; nb = n0 + 1; break;
        case 8: nb = 0; break;
        }
        spit(bp, b, nb);
        int rc = adapter_load(&ld, bp, fa, 30, d, 2, 2, err, sizeof err);
        EXPECT(rc == cases[k].code && ld == NULL && strstr(err, bp) && strstr(err, cases[k].expect1) &&
               (!cases[k].expect2 || strstr(err, cases[k].expect2)), "%s: rc %d, '%s'", cases[k].what, rc, err);
    }
    free(b);
    free(b0);
    int rc = adapter_load(&ld, good, fa, 30, d, 3, 2, err, sizeof err);
    EXPECT(rc == HAT_ERR_ARG && strstr(err, good) && strstr(err, "fitted for split a=2 b=2, the run uses a=3 b=2"),
           "other a: %s", err);
    rc = adapter_load(&ld, good, fa, 30, d, 2, 5, err, sizeof err);
    EXPECT(rc == HAT_ERR_ARG && strstr(err, "fitted for split a=2 b=2, the run uses a=2 b=5"), "other b: %s", err);
    rc = adapter_load(&ld, good, fb, 30, d, 2, 2, err, sizeof err);
    uint32_t crc_a = crc32c(0, fa->map, fa->size), crc_b = crc32c(0, fb->map, fb->size);
    char ca[32], cb[32];
    snprintf(ca, sizeof ca, "crc 0x%08x, 4096 bytes", crc_a);
    snprintf(cb, sizeof cb, "crc 0x%08x, 4096 bytes", crc_b);
    EXPECT(rc == HAT_ERR_ARG && strstr(err, "was fitted for model") && strstr(err, ca) &&
           strstr(err, "this model file is") && strstr(err, cb), "other model: %s", err);
    rc = adapter_load(&ld, good, fa, 30, 576, 2, 2, err, sizeof err);
    EXPECT(rc == HAT_ERR_ARG && strstr(err, "dim 64, the run uses 30 layers of dim 576"), "other dim: %s", err);
    rc = adapter_load(&ld, good, fa, 24, d, 2, 2, err, sizeof err);
    EXPECT(rc == HAT_ERR_ARG && strstr(err, "30 layers") && strstr(err, "24 layers"), "other n_layer: %s", err);
    rc = adapter_load(&ld, tmp_path("missing.adapter"), fa, 30, d, 2, 2, err, sizeof err);
    EXPECT(rc == HAT_ERR_IO && strstr(err, "missing.adapter"), "missing file: %s", err);
    rc = adapter_save(lin, tmp_path("no/such/dir.adapter"), err, sizeof err);
    EXPECT(rc == HAT_ERR_IO && strstr(err, "cannot write"), "unwritable: %s", err);
    EXPECT(ld == NULL, "nothing loaded on errors");
}

static void test_files(void) {
    const int d = 64, n = 600;
    char err[HAT_ERRLEN];
    float *x = malloc(sizeof(float) * n * d), *t = malloc(sizeof(float) * n * d);
    for (int i = 0; i < n * d; i++) x[i] = 10.0f * t_normalish();
    for (int r = 0; r < n; r++)
        for (int i = 0; i < d; i++)
            t[r * d + i] = 2.0f * x[r * d + i] - 0.5f * x[r * d + (i + 1) % d] + 1.0f + t_normalish();
    uint8_t bufA[4096], bufB[4096];
    for (int i = 0; i < 4096; i++) bufA[i] = bufB[i] = (uint8_t)(i * 7);
    bufB[100] ^= 1;
    gguf_file fa = fake_model(bufA, sizeof bufA), fb = fake_model(bufB, sizeof bufB);

    adapter *ads[3] = {NULL, NULL, NULL};
    EXPECT(adapter_fit(&ads[0], x, t, n, d, ADAPTER_LINEAR, 0, 1e-3, err, sizeof err) == HAT_OK, "%s", err);
    EXPECT(adapter_fit(&ads[1], x, t, n, d, ADAPTER_LOWRANK, 8, 1e-3, err, sizeof err) == HAT_OK, "%s", err);
    ads[2] = adapter_identity(d, 2, 2);
    if (!ads[0] || !ads[1]) return;
    check_round_trip(ads[0], "lin.adapter", &fa, x, d);
    check_round_trip(ads[1], "low.adapter", &fa, x, d);
    check_round_trip(ads[2], "id.adapter", &fa, x, d);
    check_rejections(ads[0], &fa, &fb, d);
    for (int k = 0; k < 3; k++) adapter_free(ads[k]);
    free(x);
    free(t);
}

/* ---------------------------------------------------------------- real model, CLI path */

static int run_cli(const char **args) {
    int argc = 0;
    char *argv[64];
    argv[argc++] = (char *)"calibrate";
    for (; args[argc - 1] && argc < 63; argc++) argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    fflush(stdout);
    return cli_calibrate(argc, argv);
}

/* a fresh calibration and one from its saved corpus give the same adapter, which loads for its split only;
 * returns the second one */
static adapter *model_fresh_and_reuse(const char *model_path, const char *prompts, const char *corpus,
                                      const gguf_file *gf) {
    char err[HAT_ERRLEN];
    char out1[512], out2[512];   /* tmp_path's buffers are reused */
    snprintf(out1, sizeof out1, "%s", tmp_path("m1.adapter"));
    snprintf(out2, sizeof out2, "%s", tmp_path("m2.adapter"));
    double t0 = hat_now();
    int rc = run_cli((const char *[]){"--model", model_path, "--prompts", prompts, "--gen", "8", "--split", "2,2",
                                      "--out", out1, "--corpus-out", corpus, "--holdout", "1", NULL});
    EXPECT(rc == 0, "hat calibrate (fresh corpus) exits 0, got %d", rc);
    fprintf(stderr, "tiny calibration: %.1f s\n", hat_now() - t0);
    rc = run_cli((const char *[]){"--model", model_path, "--corpus", corpus, "--split", "2,2", "--out", out2,
                                  "--holdout", "1", NULL});
    EXPECT(rc == 0, "hat calibrate (saved corpus) exits 0, got %d", rc);

    adapter *a1 = NULL, *a2 = NULL, *a3 = NULL;
    EXPECT(adapter_load(&a1, out1, gf, 30, 576, 2, 2, err, sizeof err) == HAT_OK, "load: %s", err);
    EXPECT(adapter_load(&a2, out2, gf, 30, 576, 2, 2, err, sizeof err) == HAT_OK, "load: %s", err);
    EXPECT(adapter_load(&a3, out1, gf, 30, 576, 2, 3, err, sizeof err) == HAT_ERR_ARG && strstr(err, "a=2 b=2") &&
           strstr(err, "a=2 b=3"), "other split refused: %s", err);
    if (a1 && a2) {
        const adapter_info *in = adapter_get_info(a1);
        /* measured 0.92 with the default lambda (fewer tokens than dims: the fit nearly interpolates); a broken fit
         * (W = 0, c = mean) gives 0 */
        EXPECT(in->r2_train > 0.5 && in->r2_target_train > 0.5, "training R^2 %.4f (of h_{L-b}: %.4f)", in->r2_train,
               in->r2_target_train);
        EXPECT(in->n_train > 50 && in->n_heldout > 10 && isfinite(in->r2_heldout),
               "tokens %llu + %llu held out, R^2 %.4f", (unsigned long long)in->n_train,
               (unsigned long long)in->n_heldout, in->r2_heldout);
        EXPECT(strstr(in->corpus, "4 prompts") && strstr(in->corpus, "greedy") && strstr(in->corpus, "prompts.txt"),
               "corpus recorded: %s", in->corpus);
        /* the reused corpus gives the same weights */
        float *x = malloc(sizeof(float) * 4 * 576), *o1 = malloc(sizeof(float) * 4 * 576);
        float *o2 = malloc(sizeof(float) * 4 * 576);
        for (int i = 0; i < 4 * 576; i++) x[i] = 30.0f * t_normalish();
        adapter_apply(a1, x, o1, 4);
        adapter_apply(a2, x, o2, 4);
        EXPECT(!memcmp(o1, o2, sizeof(float) * 4 * 576), "a reused corpus gives the same adapter");
        EXPECT(adapter_get_info(a2)->r2_train == in->r2_train && adapter_get_info(a2)->r2_heldout == in->r2_heldout,
               "same figures from the reused corpus");
        free(x); free(o1); free(o2);
    }
    adapter_free(a1);
    return a2;
}

/* the same corpus in format version 1 (8-byte sequence records, no samples) is still read, same adapter as a2 */
static void model_corpus_v1(const char *model_path, const char *corpus, const gguf_file *gf, const adapter *a2) {
    char err[HAT_ERRLEN];
    adapter *a3 = NULL;
    int rc;
    size_t n1;
    uint8_t *v2 = slurp(corpus, &n1);
    if (v2 && a2 && n1 > 300) {
        const uint32_t nseq = get_le32(v2 + 12);
        const size_t ids_at = 296 + 32 * (size_t)nseq, n_ids = (n1 - 4 - ids_at) / 4;
        const size_t nv1 = 296 + 8 * (size_t)nseq + 4 * n_ids + 4;
        uint8_t *v1 = calloc(1, nv1);
        memcpy(v1, v2, 296);
        v1[8] = 1;
        memset(v1 + 132, 0, 4);
        for (uint32_t i = 0; i < nseq; i++) memcpy(v1 + 296 + 8 * i, v2 + 296 + 32 * i + 24, 8);
        memcpy(v1 + 296 + 8 * (size_t)nseq, v2 + ids_at, 4 * n_ids);
        const uint32_t crc = crc32c(0, v1, nv1 - 4);
        for (int i = 0; i < 4; i++) v1[nv1 - 4 + i] = (uint8_t)(crc >> (8 * i));
        const char *c1 = tmp_path("v1.tok"), *o3 = tmp_path("m3.adapter");
        spit(c1, v1, nv1);
        free(v1);
        rc = run_cli((const char *[]){"--model", model_path, "--corpus", c1, "--split", "2,2", "--out", o3,
                                      "--holdout", "1", NULL});
        EXPECT(rc == 0, "hat calibrate (version 1 corpus) exits 0, got %d", rc);
        EXPECT(adapter_load(&a3, o3, gf, 30, 576, 2, 2, err, sizeof err) == HAT_OK, "load: %s", err);
        if (a3) {
            EXPECT(adapter_get_info(a3)->r2_train == adapter_get_info(a2)->r2_train &&
                   adapter_get_info(a3)->r2_heldout == adapter_get_info(a2)->r2_heldout,
                   "a version 1 corpus gives the same adapter");
            adapter_free(a3);
            a3 = NULL;
        }
    }
    free(v2);
}

/* --samples 2: greedy + one sampled generation per prompt; --holdout counts prompts (both of its sequences) */
static void model_samples(const char *model_path, const char *prompts, const gguf_file *gf) {
    char err[HAT_ERRLEN];
    int rc;
    char cs[512], os1[512], os2[512];
    snprintf(cs, sizeof cs, "%s", tmp_path("s.tok"));
    snprintf(os1, sizeof os1, "%s", tmp_path("s1.adapter"));
    snprintf(os2, sizeof os2, "%s", tmp_path("s2.adapter"));
    rc = run_cli((const char *[]){"--model", model_path, "--prompts", prompts, "--gen", "6", "--samples", "2",
                                  "--temp", "0.8", "--seed", "5", "--split", "2,2", "--out", os1, "--corpus-out",
                                  cs, "--holdout", "1", NULL});
    EXPECT(rc == 0, "hat calibrate --samples 2 exits 0, got %d", rc);
    rc = run_cli((const char *[]){"--model", model_path, "--corpus", cs, "--split", "2,2", "--out", os2,
                                  "--holdout", "1", NULL});
    EXPECT(rc == 0, "hat calibrate (saved --samples corpus) exits 0, got %d", rc);
    size_t ns;
    uint8_t *cb = slurp(cs, &ns);
    if (cb && ns > 296 + 8 * 32) {
        EXPECT(get_le32(cb + 8) == 2 && get_le32(cb + 12) == 8 && get_le32(cb + 132) == 2,
               "version 2, 8 sequences, 2 samples: %u %u %u", get_le32(cb + 8), get_le32(cb + 12),
               get_le32(cb + 132));
        /* sequence 2: prompt 1, sample 0, greedy, seed 5 + 2; sequence 3: prompt 1, sample 1, temp 0.8, seed 8 */
        const uint8_t *r2 = cb + 296 + 64, *r3 = cb + 296 + 96;
        float t2, t3;
        uint32_t u2 = get_le32(r2 + 8), u3 = get_le32(r3 + 8);
        memcpy(&t2, &u2, 4);
        memcpy(&t3, &u3, 4);
        EXPECT(get_le32(r2) == 1 && get_le32(r2 + 4) == 0 && t2 == 0.0f && get_le32(r2 + 16) == 7 &&
               get_le32(r3) == 1 && get_le32(r3 + 4) == 1 && t3 == 0.8f && get_le32(r3 + 16) == 8,
               "sequence records: prompt, sample, temperature, seed");
    }
    free(cb);
    adapter *s1 = NULL, *s2 = NULL;
    EXPECT(adapter_load(&s1, os1, gf, 30, 576, 2, 2, err, sizeof err) == HAT_OK, "load: %s", err);
    EXPECT(adapter_load(&s2, os2, gf, 30, 576, 2, 2, err, sizeof err) == HAT_OK, "load: %s", err);
    if (s1 && s2) {
        const adapter_info *in = adapter_get_info(s1);
        EXPECT(strstr(in->corpus, "4 prompts") && strstr(in->corpus, "2 generations each") &&
               strstr(in->corpus, "8 sequences") && strstr(in->corpus, "last 1 prompts held out"),
               "corpus recorded: %s", in->corpus);
        EXPECT(in->r2_train == adapter_get_info(s2)->r2_train && in->r2_heldout == adapter_get_info(s2)->r2_heldout,
               "a reused --samples corpus gives the same adapter");
    }
    adapter_free(s1);
    adapter_free(s2);
    const char *bad_s[][14] = {
        {"--model", model_path, "--prompts", prompts, "--samples", "2", "--corpus-out", cs, NULL},  /* no --temp */
        {"--model", model_path, "--corpus", cs, "--samples", "2", "--split", "2,2", "--out", os2, NULL},
        {"--model", model_path, "--prompts", prompts, "--samples", "0", "--temp", "1", "--corpus-out", cs, NULL},
    };
    for (size_t k = 0; k < sizeof bad_s / sizeof bad_s[0]; k++)
        EXPECT(run_cli(bad_s[k]) != 0, "bad --samples invocation %zu exits non-zero", k);
}

/* a corpus of another model, a corrupt one and bad invocations fail */
static void model_bad(const char *model_path, const char *prompts, const char *corpus) {
    char out2[512];
    snprintf(out2, sizeof out2, "%s", tmp_path("m2.adapter"));
    int rc;
    size_t n;
    uint8_t *b = slurp(corpus, &n);
    if (b) {
        b[24] ^= 0xff;
        uint32_t crc = crc32c(0, b, n - 4);
        for (int i = 0; i < 4; i++) b[n - 4 + i] = (uint8_t)(crc >> (8 * i));
        const char *other = tmp_path("other.tok");
        spit(other, b, n);
        b[n - 1] ^= 1;
        const char *broken = tmp_path("broken.tok");
        spit(broken, b, n);
        free(b);
        fprintf(stderr, "(the next error messages are expected)\n");
        rc = run_cli((const char *[]){"--model", model_path, "--corpus", other, "--split", "2,2", "--out", out2, NULL});
        EXPECT(rc == 1, "corpus of another model: exit %d", rc);
        rc = run_cli((const char *[]){"--model", model_path, "--corpus", broken, "--split", "2,2", "--out", out2,
                                      NULL});
        EXPECT(rc == 1, "corrupt corpus: exit %d", rc);
    }
    const char *bad[][12] = {
        {"--model", model_path, "--prompts", prompts, "--split", "15,15", "--out", out2, NULL},
        {"--model", model_path, "--prompts", tmp_path("nope.txt"), "--split", "2,2", "--out", out2, NULL},
        {"--model", tmp_path("nope.gguf"), "--corpus", corpus, "--split", "2,2", "--out", out2, NULL},
        {"--model", model_path, "--corpus", corpus, "--gen", "4", "--split", "2,2", "--out", out2, NULL},
        {"--model", model_path, "--corpus", corpus, "--out", out2, NULL},
        {"--model", model_path, "--corpus", corpus, "--split", "2,2", "--out", out2, "--holdout", "4", NULL},
        {"--model", model_path, "--corpus", corpus, "--split", "2,2", "--out", out2, "--form", "cubic", NULL},
        {"--model", model_path, "--corpus", corpus, "--split", "2", "--out", out2, NULL},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        rc = run_cli(bad[k]);
        EXPECT(rc != 0, "bad invocation %zu exits non-zero", k);
    }
}

static void test_model(const char *model_path) {
    char err[HAT_ERRLEN];
    char prompts[512];   /* tmp_path's buffers are reused */
    snprintf(prompts, sizeof prompts, "%s", tmp_path("prompts.txt"));
    FILE *f = fopen(prompts, "w");
    fprintf(f, "Describe a walk through a pine forest in early spring.\n\n"
               "How do I sort a list of numbers in C?\n"
               "Give three reasons to learn a second language.\\nBe brief.\n"
               "Write two sentences about a cat watching snow fall.\n");
    fclose(f);
    char corpus[512];
    snprintf(corpus, sizeof corpus, "%s", tmp_path("c.tok"));
    gguf_file *gf = NULL;
    EXPECT(gguf_open(&gf, model_path, err, sizeof err) == HAT_OK, "%s", err);
    if (!gf) return;
    adapter *a2 = model_fresh_and_reuse(model_path, prompts, corpus, gf);
    model_corpus_v1(model_path, corpus, gf, a2);
    adapter_free(a2);
    model_samples(model_path, prompts, gf);
    model_bad(model_path, prompts, corpus);
    gguf_close(gf);
}

int main(int argc, char **argv) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/hat_adapter_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    test_fit();
    test_files();
    if (argc > 1) test_model(argv[1]);
    else printf("no model given: the calibration run is skipped\n");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
