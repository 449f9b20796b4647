/* adapter.c — see adapter.h. */
#include "split/adapter.h"

#include "core/build_info.h"
#include "core/common.h"
#include "core/bytes.h"
#include "core/crc32c.h"

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every GSL matrix header includes gsl_cblas.h, whose declarations clash with OpenBLAS's cblas.h, so this file
 * takes the (standard, identical) CBLAS prototypes from GSL's header. The calls still go to OpenBLAS: hat_core
 * links OpenBLAS before GSL's own CBLAS, so the loader binds cblas_* to OpenBLAS. */

#define MAGIC "HATADPT"            /* 8 bytes with the NUL */
#define HDR_FIXED 268              /* bytes before the corpus text */
#define APPLY_BLOCK 64             /* rows per product in adapter_apply (scratch = APPLY_BLOCK x dim) */
#define STATS_BLOCK 256            /* rows converted to double per syrk/gemm in adapter_stats_add */
#define MAX_DIM (1 << 16)

struct adapter {
    adapter_info info;
    float *w;        /* linear: W (dim, dim); lowrank: Vt (rank, dim) */
    float *u;        /* lowrank: U (dim, rank) */
    float *c;        /* (dim) */
    float *scratch;  /* (APPLY_BLOCK, dim): products of one block of rows */
};

const char *adapter_form_name(adapter_form f) {
    switch (f) {
    case ADAPTER_IDENTITY: return "identity";
    case ADAPTER_LINEAR: return "linear";
    case ADAPTER_LOWRANK: return "lowrank";
    }
    return "unknown";
}

int adapter_form_parse(const char *s) {
    for (int f = ADAPTER_IDENTITY; f <= ADAPTER_LOWRANK; f++)
        if (!strcmp(s, adapter_form_name((adapter_form)f))) return f;
    return -1;
}

void adapter_model_fingerprint(const gguf_file *f, uint64_t *size, uint32_t *crc) {
    *size = f->size;
    *crc = crc32c(0, f->map, f->size);
}

static adapter *adapter_alloc(adapter_form form, int dim, int rank) {
    adapter *ad = xcalloc(1, sizeof *ad);
    ad->info.form = form;
    ad->info.dim = dim;
    ad->info.rank = form == ADAPTER_LOWRANK ? rank : 0;
    ad->info.lambda = NAN;
    ad->info.r2_train = ad->info.r2_heldout = ad->info.r2_target_train = ad->info.r2_target_heldout = NAN;
    ad->info.r2_identity_heldout = ad->info.rms_heldout = ad->info.rel_err_heldout = NAN;
    ad->info.agree_heldout = ad->info.agree_identity_heldout = NAN;
    snprintf(ad->info.hat_version, sizeof ad->info.hat_version, "%s", HAT_VERSION);
    snprintf(ad->info.hat_git, sizeof ad->info.hat_git, "%s", HAT_GIT_HASH);
    if (form == ADAPTER_LINEAR) ad->w = xcalloc((size_t)dim * dim, sizeof(float));
    if (form == ADAPTER_LOWRANK) {
        ad->w = xcalloc((size_t)rank * dim, sizeof(float));
        ad->u = xcalloc((size_t)dim * rank, sizeof(float));
    }
    if (form != ADAPTER_IDENTITY) {
        ad->c = xcalloc((size_t)dim, sizeof(float));
        ad->scratch = xcalloc((size_t)APPLY_BLOCK * dim, sizeof(float));
    }
    return ad;
}

adapter *adapter_identity(int dim, int a, int b) {
    adapter *ad = adapter_alloc(ADAPTER_IDENTITY, dim, 0);
    ad->info.a = a;
    ad->info.b = b;
    return ad;
}

void adapter_free(adapter *ad) {
    if (!ad) return;
    free(ad->w);
    free(ad->u);
    free(ad->c);
    free(ad->scratch);
    free(ad);
}

adapter_form adapter_get_form(const adapter *ad) { return ad->info.form; }
const adapter_info *adapter_get_info(const adapter *ad) { return &ad->info; }

/* ---------------------------------------------------------------- apply */

void adapter_apply(const adapter *ad, const float *in, float *out, int n_tok) {
    const int d = ad->info.dim, r = ad->info.rank;
    if (ad->info.form == ADAPTER_IDENTITY) {
        if (out != in) memcpy(out, in, sizeof(float) * (size_t)n_tok * d);
        return;
    }
    float *s = ad->scratch;
    for (int r0 = 0; r0 < n_tok; r0 += APPLY_BLOCK) {
        const int nb = n_tok - r0 < APPLY_BLOCK ? n_tok - r0 : APPLY_BLOCK;
        const float *x = in + (size_t)r0 * d;
        float *y = out + (size_t)r0 * d;
        if (ad->info.form == ADAPTER_LINEAR) {
            /* s = x W^T, then y = x + s + c: x is read before y (possibly the same row) is written */
            if (nb == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, d, d, 1.0f, ad->w, d, x, 1, 0.0f, s, 1);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, d, d, 1.0f, x, d, ad->w, d, 0.0f, s, d);
            for (size_t i = 0; i < (size_t)nb * d; i++) y[i] = x[i] + s[i] + ad->c[i % d];
        } else {
            /* s = x Vt^T (nb, rank) first, so y may overwrite x; then y = x + c + s U^T */
            if (nb == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, r, d, 1.0f, ad->w, d, x, 1, 0.0f, s, 1);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, r, d, 1.0f, x, d, ad->w, d, 0.0f, s, r);
            for (size_t i = 0; i < (size_t)nb * d; i++) y[i] = x[i] + ad->c[i % d];
            if (nb == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, d, r, 1.0f, ad->u, r, s, 1, 1.0f, y, 1);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, d, r, 1.0f, s, r, ad->u, r, 1.0f, y, d);
        }
    }
}

/* ---------------------------------------------------------------- statistics */

struct adapter_stats {
    int dim;
    uint64_t n;
    double *sxx;         /* (dim, dim) sum x x^T, upper triangle (syrk) */
    double *sxy;         /* (dim, dim) sum x y^T, y = t - x */
    double *sx, *sy;     /* (dim) */
    double syy;          /* sum |y|^2 */
    double *bx, *by;     /* (STATS_BLOCK, dim) rows in double */
};

adapter_stats *adapter_stats_new(int dim) {
    adapter_stats *s = xcalloc(1, sizeof *s);
    s->dim = dim;
    s->sxx = xcalloc((size_t)dim * dim, sizeof(double));
    s->sxy = xcalloc((size_t)dim * dim, sizeof(double));
    s->sx = xcalloc((size_t)dim, sizeof(double));
    s->sy = xcalloc((size_t)dim, sizeof(double));
    s->bx = xmalloc((size_t)STATS_BLOCK * dim * sizeof(double));
    s->by = xmalloc((size_t)STATS_BLOCK * dim * sizeof(double));
    return s;
}

void adapter_stats_free(adapter_stats *s) {
    if (!s) return;
    free(s->sxx); free(s->sxy); free(s->sx); free(s->sy); free(s->bx); free(s->by);
    free(s);
}

uint64_t adapter_stats_count(const adapter_stats *s) { return s->n; }

void adapter_stats_add(adapter_stats *s, const float *x, const float *t, size_t n) {
    const int d = s->dim;
    for (size_t r0 = 0; r0 < n; r0 += STATS_BLOCK) {
        const int nb = n - r0 < STATS_BLOCK ? (int)(n - r0) : STATS_BLOCK;
        for (size_t i = 0; i < (size_t)nb * d; i++) {
            const size_t k = r0 * d + i;
            const double xv = x[k], yv = (double)t[k] - xv;   /* exact: both are floats */
            s->bx[i] = xv;
            s->by[i] = yv;
            s->sx[i % d] += xv;
            s->sy[i % d] += yv;
            s->syy += yv * yv;
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, nb, 1.0, s->bx, d, 1.0, s->sxx, d);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, nb, 1.0, s->bx, d, s->by, d, 1.0, s->sxy, d);
        s->n += (uint64_t)nb;
    }
}

/* ---------------------------------------------------------------- fit */

/* Training figures from the statistics for the weights as stored (float), with W (d, d) dense in double:
 * SSE = sum |y - W x - c|^2 expanded in centred sums plus the bias term n |mean y - W mean x - c|^2. */
static void train_metrics(adapter *ad, const adapter_stats *s, const double *C, const double *Cxy, const double *mx,
                          const double *my, const double *W) {
    const int d = s->dim;
    const double n = (double)s->n;
    double tr_c = 0, tr_cxy = 0, my2 = 0;
    for (int i = 0; i < d; i++) {
        tr_c += C[(size_t)i * d + i];
        tr_cxy += Cxy[(size_t)i * d + i];
        my2 += my[i] * my[i];
    }
    const double tr_cyy = s->syy - n * my2;
    double sse;
    if (ad->info.form == ADAPTER_IDENTITY) {
        sse = s->syy;
    } else {
        double *G = xmalloc(sizeof(double) * (size_t)d * d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, W, d, C, d, 0.0, G, d);   /* W C */
        double t_wcxy = 0, t_wcw = 0, bias2 = 0;
        for (int i = 0; i < d; i++) {
            double e = my[i] - ad->c[i];
            for (int j = 0; j < d; j++) {
                t_wcxy += W[(size_t)i * d + j] * Cxy[(size_t)j * d + i];
                t_wcw += G[(size_t)i * d + j] * W[(size_t)i * d + j];
                e -= W[(size_t)i * d + j] * mx[j];
            }
            bias2 += e * e;
        }
        free(G);
        sse = tr_cyy - 2.0 * t_wcxy + t_wcw + n * bias2;
    }
    ad->info.n_train = s->n;
    ad->info.r2_train = 1.0 - sse / tr_cyy;
    ad->info.r2_target_train = 1.0 - sse / (tr_c + 2.0 * tr_cxy + tr_cyy);
}

int adapter_fit_stats(adapter **out, const adapter_stats *s, adapter_form form, int rank, double lambda,
                      char *err, size_t errlen) {
    const int d = s->dim;
    const double n = (double)s->n;
    *out = NULL;
    if (form < ADAPTER_IDENTITY || form > ADAPTER_LOWRANK)
        return hat_err(err, errlen, HAT_ERR_ARG, "unknown adapter form %d", form);
    if (form == ADAPTER_LOWRANK && (rank < 1 || rank > d))
        return hat_err(err, errlen, HAT_ERR_ARG, "lowrank adapter: rank must be in [1, %d], got %d", d, rank);
    if (!(lambda >= 0) || !isfinite(lambda))
        return hat_err(err, errlen, HAT_ERR_ARG, "lambda must be >= 0, got %g", lambda);
    if (s->n < 2)
        return hat_err(err, errlen, HAT_ERR_ARG, "cannot fit an adapter on %llu token(s)", (unsigned long long)s->n);

    /* centred sums: C = Sxx - n mx mx^T (made symmetric), Cxy = Sxy - n mx my^T */
    double *mx = xmalloc(sizeof(double) * d), *my = xmalloc(sizeof(double) * d);
    double *C = xmalloc(sizeof(double) * (size_t)d * d), *Cxy = xmalloc(sizeof(double) * (size_t)d * d);
    for (int i = 0; i < d; i++) { mx[i] = s->sx[i] / n; my[i] = s->sy[i] / n; }
    double tr = 0;
    for (int i = 0; i < d; i++) {
        for (int j = i; j < d; j++)
            C[(size_t)i * d + j] = C[(size_t)j * d + i] = s->sxx[(size_t)i * d + j] - n * mx[i] * mx[j];
        for (int j = 0; j < d; j++) Cxy[(size_t)i * d + j] = s->sxy[(size_t)i * d + j] - n * mx[i] * my[j];
        tr += C[(size_t)i * d + i];
    }
    int rc = HAT_OK;
    double *A = NULL, *B = NULL, *W = NULL, *M = NULL, *T = NULL;
    adapter *ad = adapter_alloc(form, d, rank);
    ad->info.lambda = lambda;
    if (form == ADAPTER_IDENTITY) {
        train_metrics(ad, s, C, Cxy, mx, my, NULL);
        goto done;
    }
    if (!(tr > 0)) {
        rc = hat_err(err, errlen, HAT_ERR_ARG, "the inputs have no variance (%llu tokens)", (unsigned long long)s->n);
        goto done;
    }

    /* ridge: (C + lam I) B = Cxy, B = W^T, by Cholesky A = L L^T then two triangular solves */
    const double lam = lambda * tr / d;
    A = xmalloc(sizeof(double) * (size_t)d * d);
    B = xmalloc(sizeof(double) * (size_t)d * d);
    memcpy(A, C, sizeof(double) * (size_t)d * d);
    memcpy(B, Cxy, sizeof(double) * (size_t)d * d);
    for (int i = 0; i < d; i++) A[(size_t)i * d + i] += lam;
    gsl_matrix_view Av = gsl_matrix_view_array(A, (size_t)d, (size_t)d);
    gsl_error_handler_t *old = gsl_set_error_handler_off();   /* GSL's default handler aborts */
    int st = gsl_linalg_cholesky_decomp1(&Av.matrix);
    gsl_set_error_handler(old);
    if (st) {
        rc = hat_err(err, errlen, HAT_ERR_ARG,
                     "X^T X + lambda I is not positive definite (%llu tokens, dim %d, lambda %g): "
                     "use more data or a larger lambda",
                     (unsigned long long)s->n, d, lambda);
        goto done;
    }
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, d, d, 1.0, A, d, B, d);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, d, d, 1.0, A, d, B, d);

    W = xmalloc(sizeof(double) * (size_t)d * d);   /* the weights as stored (float-rounded), dense */
    if (form == ADAPTER_LINEAR) {
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                ad->w[(size_t)i * d + j] = (float)B[(size_t)j * d + i];
                W[(size_t)i * d + j] = ad->w[(size_t)i * d + j];
            }
    } else {
        /* reduced rank: eigenvectors of the fitted values' covariance M = B^T C B = W C W^T */
        M = xmalloc(sizeof(double) * (size_t)d * d);
        T = xmalloc(sizeof(double) * (size_t)d * d);
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, d, d, 1.0, C, d, B, d, 0.0, T, d);        /* C B */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, d, 1.0, B, d, T, d, 0.0, M, d);  /* B^T C B */
        gsl_matrix_view Mv = gsl_matrix_view_array(M, (size_t)d, (size_t)d);
        gsl_matrix *evec = gsl_matrix_alloc((size_t)d, (size_t)d);
        gsl_vector *eval = gsl_vector_alloc((size_t)d);
        gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc((size_t)d);
        gsl_eigen_symmv(&Mv.matrix, eval, evec, ws);
        gsl_eigen_symmv_sort(eval, evec, GSL_EIGEN_SORT_VAL_DESC);
        /* U = V_r (d, r); Vt = V_r^T W = (B V_r)^T (r, d) */
        for (int i = 0; i < d; i++)
            for (int k = 0; k < rank; k++)
                ad->u[(size_t)i * rank + k] = (float)gsl_matrix_get(evec, (size_t)i, (size_t)k);
        for (int k = 0; k < rank; k++)
            for (int j = 0; j < d; j++) {
                double acc = 0;
                for (int i = 0; i < d; i++) acc += B[(size_t)j * d + i] * gsl_matrix_get(evec, (size_t)i, (size_t)k);
                ad->w[(size_t)k * d + j] = (float)acc;
            }
        gsl_eigen_symmv_free(ws);
        gsl_vector_free(eval);
        gsl_matrix_free(evec);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                double acc = 0;
                for (int k = 0; k < rank; k++) acc += (double)ad->u[(size_t)i * rank + k] * ad->w[(size_t)k * d + j];
                W[(size_t)i * d + j] = acc;
            }
    }
    /* bias from the stored weights, so the training residual has mean zero */
    for (int i = 0; i < d; i++) {
        double acc = my[i];
        for (int j = 0; j < d; j++) acc -= W[(size_t)i * d + j] * mx[j];
        ad->c[i] = (float)acc;
    }
    train_metrics(ad, s, C, Cxy, mx, my, W);
done:
    free(mx); free(my); free(C); free(Cxy); free(A); free(B); free(W); free(M); free(T);
    if (rc) adapter_free(ad);
    else *out = ad;
    return rc;
}

int adapter_fit(adapter **out, const float *x, const float *t, size_t n, int dim, adapter_form form, int rank,
                double lambda, char *err, size_t errlen) {
    adapter_stats *s = adapter_stats_new(dim);
    adapter_stats_add(s, x, t, n);
    int rc = adapter_fit_stats(out, s, form, rank, lambda, err, errlen);
    adapter_stats_free(s);
    return rc;
}

void adapter_eval(const adapter *ad, const float *x, const float *t, size_t n, adapter_metrics *m) {
    const int d = ad->info.dim;
    memset(m, 0, sizeof *m);
    m->n = n;
    if (!n) { m->r2 = m->r2_target = m->r2_identity = m->rms = m->rel_err = NAN; return; }
    /* two passes (means, then deviations): the sums of squares stay accurate */
    double *mt = xcalloc((size_t)d, sizeof(double)), *my = xcalloc((size_t)d, sizeof(double));
    for (size_t r = 0; r < n; r++)
        for (int j = 0; j < d; j++) {
            const size_t k = r * d + j;
            mt[j] += t[k];
            my[j] += (double)t[k] - x[k];
        }
    for (int j = 0; j < d; j++) { mt[j] /= (double)n; my[j] /= (double)n; }
    float *o = xmalloc(sizeof(float) * APPLY_BLOCK * d);
    double sse = 0, sse_id = 0, sst_y = 0, sst_t = 0, st2 = 0;
    for (size_t r0 = 0; r0 < n; r0 += APPLY_BLOCK) {
        const int nb = n - r0 < APPLY_BLOCK ? (int)(n - r0) : APPLY_BLOCK;
        adapter_apply(ad, x + r0 * d, o, nb);
        for (size_t i = 0; i < (size_t)nb * d; i++) {
            const size_t k = r0 * d + i;
            const int j = (int)(i % d);
            const double tv = t[k], yv = tv - x[k], e = (double)o[i] - tv;
            sse += e * e;
            sse_id += yv * yv;
            sst_y += (yv - my[j]) * (yv - my[j]);
            sst_t += (tv - mt[j]) * (tv - mt[j]);
            st2 += tv * tv;
        }
    }
    m->r2 = 1.0 - sse / sst_y;
    m->r2_target = 1.0 - sse / sst_t;
    m->r2_identity = 1.0 - sse_id / sst_t;
    m->rms = sqrt(sse / (double)n);
    m->rel_err = sqrt(sse / st2);
    free(o); free(mt); free(my);
}

void adapter_set_provenance(adapter *ad, const gguf_file *model_file, int n_layer, int a, int b, int min_pos,
                            const char *corpus, const adapter_metrics *heldout) {
    adapter_info *in = &ad->info;
    if (model_file) {
        adapter_model_fingerprint(model_file, &in->model_size, &in->model_crc);
        gguf_model_name(model_file, in->model_name, sizeof in->model_name);
    }
    in->n_layer = n_layer;
    in->a = a;
    in->b = b;
    in->min_pos = min_pos;
    snprintf(in->corpus, sizeof in->corpus, "%s", corpus ? corpus : "");
    if (heldout && heldout->n) {
        in->n_heldout = heldout->n;
        in->r2_heldout = heldout->r2;
        in->r2_target_heldout = heldout->r2_target;
        in->r2_identity_heldout = heldout->r2_identity;
        in->rms_heldout = heldout->rms;
        in->rel_err_heldout = heldout->rel_err;
    }
    in->created = (int64_t)time(NULL);
}

void adapter_set_agreement(adapter *ad, double agree, double agree_identity, uint64_t n_positions) {
    ad->info.agree_heldout = agree;
    ad->info.agree_identity_heldout = agree_identity;
    ad->info.n_agree = n_positions;
}

void adapter_describe(const adapter *ad, char *buf, size_t len) {
    const adapter_info *in = &ad->info;
    char rank[32] = "";
    if (in->form == ADAPTER_LOWRANK) snprintf(rank, sizeof rank, " rank %d", in->rank);
    snprintf(buf, len,
             "%s%s adapter (dim %d, lambda %g), split a=%d b=%d of %d layers, %llu calibration tokens, "
             "held-out R^2 %.4f (of h_{L-b}: %.4f; identity %.4f) on %llu tokens, draft agreement %.1f%% "
             "(identity %.1f%%) on %llu positions; corpus: %s",
             adapter_form_name(in->form), rank, in->dim, in->lambda, in->a, in->b, in->n_layer,
             (unsigned long long)in->n_train, in->r2_heldout, in->r2_target_heldout, in->r2_identity_heldout,
             (unsigned long long)in->n_heldout, 100 * in->agree_heldout, 100 * in->agree_identity_heldout,
             (unsigned long long)in->n_agree, in->corpus[0] ? in->corpus : "none");
}

/* ---------------------------------------------------------------- file */

/* floats of weights for a form (0 for a bad form) */
static uint64_t weight_count(adapter_form form, uint64_t dim, uint64_t rank) {
    switch (form) {
    case ADAPTER_IDENTITY: return 0;
    case ADAPTER_LINEAR: return dim * dim + dim;
    case ADAPTER_LOWRANK: return 2 * rank * dim + dim;
    }
    return 0;
}

int adapter_save(const adapter *ad, const char *path, char *err, size_t errlen) {
    const adapter_info *in = &ad->info;
    const size_t nc = strlen(in->corpus), nw = (size_t)weight_count(in->form, (uint64_t)in->dim, (uint64_t)in->rank);
    const size_t size = HDR_FIXED + nc + 4 * nw + 4;
    uint8_t *buf = xcalloc(1, size);
    memcpy(buf, MAGIC, 8);
    put_u32(buf + 8, ADAPTER_FORMAT_VERSION);
    put_u32(buf + 12, (uint32_t)in->form);
    put_u32(buf + 16, (uint32_t)in->a);
    put_u32(buf + 20, (uint32_t)in->b);
    put_u32(buf + 24, (uint32_t)in->n_layer);
    put_u32(buf + 28, (uint32_t)in->dim);
    put_u32(buf + 32, (uint32_t)in->rank);
    put_u32(buf + 36, (uint32_t)in->min_pos);
    put_u64(buf + 40, in->model_size);
    put_u32(buf + 48, in->model_crc);
    memcpy(buf + 56, in->model_name, strnlen(in->model_name, 63));
    put_f64(buf + 120, in->lambda);
    put_u64(buf + 128, in->n_train);
    put_u64(buf + 136, in->n_heldout);
    put_f64(buf + 144, in->r2_train);
    put_f64(buf + 152, in->r2_heldout);
    put_f64(buf + 160, in->r2_target_train);
    put_f64(buf + 168, in->r2_target_heldout);
    put_f64(buf + 176, in->r2_identity_heldout);
    put_f64(buf + 184, in->rms_heldout);
    put_f64(buf + 192, in->rel_err_heldout);
    put_f64(buf + 200, in->agree_heldout);
    put_f64(buf + 208, in->agree_identity_heldout);
    put_u64(buf + 216, in->n_agree);
    put_u64(buf + 224, (uint64_t)in->created);
    memcpy(buf + 232, in->hat_version, strnlen(in->hat_version, 15));
    memcpy(buf + 248, in->hat_git, strnlen(in->hat_git, 15));
    put_u32(buf + 264, (uint32_t)nc);
    memcpy(buf + HDR_FIXED, in->corpus, nc);
    uint8_t *p = buf + HDR_FIXED + nc;
    const int d = in->dim, r = in->rank;
    if (in->form == ADAPTER_LINEAR)
        for (size_t i = 0; i < (size_t)d * d; i++, p += 4) put_f32(p, ad->w[i]);
    if (in->form == ADAPTER_LOWRANK) {
        for (size_t i = 0; i < (size_t)r * d; i++, p += 4) put_f32(p, ad->w[i]);
        for (size_t i = 0; i < (size_t)d * r; i++, p += 4) put_f32(p, ad->u[i]);
    }
    if (in->form != ADAPTER_IDENTITY)
        for (int i = 0; i < d; i++, p += 4) put_f32(p, ad->c[i]);
    put_u32(p, crc32c(0, buf, size - 4));

    const int rc = hat_write_file(path, buf, size, err, errlen);
    free(buf);
    return rc;
}

int adapter_load(adapter **out, const char *path, const gguf_file *model_file, int n_layer, int dim, int a, int b,
                 char *err, size_t errlen) {
    *out = NULL;
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = hat_read_file(path, "adapter", &buf, &size, err, errlen);
    if (rc) return rc;
#define FAIL(code, ...) do { rc = hat_err(err, errlen, code, __VA_ARGS__); goto fail; } while (0)
    if (size < 12 || memcmp(buf, MAGIC, 8) != 0)
        FAIL(HAT_ERR_FORMAT, "%s is not a HAT adapter file (%s)", path, size < 8 ? "too short" : "bad magic");
    const uint32_t version = get_u32(buf + 8);
    if (version != ADAPTER_FORMAT_VERSION)
        FAIL(HAT_ERR_UNSUPPORTED, "adapter %s has format version %u, this build reads version %d", path, version,
             ADAPTER_FORMAT_VERSION);
    if (size < HDR_FIXED + 4) FAIL(HAT_ERR_FORMAT, "adapter %s is truncated (%zu bytes)", path, size);
    const uint32_t form = get_u32(buf + 12), fdim = get_u32(buf + 28), rank = get_u32(buf + 32);
    const uint32_t nc = get_u32(buf + 264);
    if (form > ADAPTER_LOWRANK) FAIL(HAT_ERR_FORMAT, "adapter %s has an unknown form %u", path, form);
    if (fdim < 1 || fdim > MAX_DIM || (form == ADAPTER_LOWRANK && (rank < 1 || rank > fdim)))
        FAIL(HAT_ERR_FORMAT, "adapter %s has bad dimensions (dim %u, rank %u)", path, fdim, rank);
    const uint64_t expect = HDR_FIXED + (uint64_t)nc + 4 * weight_count((adapter_form)form, fdim, rank) + 4;
    if ((uint64_t)size != expect)
        FAIL(HAT_ERR_FORMAT, "adapter %s is %s: %zu bytes, its header says %llu", path,
             (uint64_t)size < expect ? "truncated" : "too long", size, (unsigned long long)expect);
    const uint32_t stored = get_u32(buf + size - 4), crc = crc32c(0, buf, size - 4);
    if (stored != crc)
        FAIL(HAT_ERR_FORMAT, "adapter %s is corrupt: checksum 0x%08x, stored 0x%08x", path, crc, stored);

    adapter *ad = adapter_alloc((adapter_form)form, (int)fdim, (int)rank);
    adapter_info *in = &ad->info;
    in->a = (int)get_u32(buf + 16);
    in->b = (int)get_u32(buf + 20);
    in->n_layer = (int)get_u32(buf + 24);
    in->min_pos = (int)get_u32(buf + 36);
    in->model_size = get_u64(buf + 40);
    in->model_crc = get_u32(buf + 48);
    get_str(in->model_name, sizeof in->model_name, buf + 56, 64);
    in->lambda = get_f64(buf + 120);
    in->n_train = get_u64(buf + 128);
    in->n_heldout = get_u64(buf + 136);
    in->r2_train = get_f64(buf + 144);
    in->r2_heldout = get_f64(buf + 152);
    in->r2_target_train = get_f64(buf + 160);
    in->r2_target_heldout = get_f64(buf + 168);
    in->r2_identity_heldout = get_f64(buf + 176);
    in->rms_heldout = get_f64(buf + 184);
    in->rel_err_heldout = get_f64(buf + 192);
    in->agree_heldout = get_f64(buf + 200);
    in->agree_identity_heldout = get_f64(buf + 208);
    in->n_agree = get_u64(buf + 216);
    in->created = (int64_t)get_u64(buf + 224);
    get_str(in->hat_version, sizeof in->hat_version, buf + 232, 16);
    get_str(in->hat_git, sizeof in->hat_git, buf + 248, 16);
    get_str(in->corpus, sizeof in->corpus, buf + HDR_FIXED, nc);
    const uint8_t *p = buf + HDR_FIXED + nc;
    if (form == ADAPTER_LINEAR)
        for (size_t i = 0; i < (size_t)fdim * fdim; i++, p += 4) ad->w[i] = get_f32(p);
    if (form == ADAPTER_LOWRANK) {
        for (size_t i = 0; i < (size_t)rank * fdim; i++, p += 4) ad->w[i] = get_f32(p);
        for (size_t i = 0; i < (size_t)fdim * rank; i++, p += 4) ad->u[i] = get_f32(p);
    }
    if (form != ADAPTER_IDENTITY)
        for (uint32_t i = 0; i < fdim; i++, p += 4) ad->c[i] = get_f32(p);
    free(buf);
    buf = NULL;

    /* is it this model's and this split's? */
    if (model_file) {
        uint64_t msize;
        uint32_t mcrc;
        char mname[64];
        adapter_model_fingerprint(model_file, &msize, &mcrc);
        gguf_model_name(model_file, mname, sizeof mname);
        if (msize != in->model_size || mcrc != in->model_crc) {
            rc = hat_err(err, errlen, HAT_ERR_ARG,
                         "adapter %s was fitted for model %s (crc 0x%08x, %llu bytes), this model file is %s "
                         "(crc 0x%08x, %llu bytes)", path, in->model_name[0] ? in->model_name : "?", in->model_crc,
                         (unsigned long long)in->model_size, mname[0] ? mname : "?", mcrc, (unsigned long long)msize);
            adapter_free(ad);
            return rc;
        }
    }
    if (in->n_layer != n_layer || in->dim != dim)
        rc = hat_err(err, errlen, HAT_ERR_ARG,
                     "adapter %s was fitted for a model with %d layers of dim %d, the run uses %d layers of dim %d",
                     path, in->n_layer, in->dim, n_layer, dim);
    else if (in->a != a || in->b != b)
        rc = hat_err(err, errlen, HAT_ERR_ARG, "adapter %s was fitted for split a=%d b=%d, the run uses a=%d b=%d",
                     path, in->a, in->b, a, b);
    if (rc) {
        adapter_free(ad);
        return rc;
    }
    *out = ad;
    return HAT_OK;
fail:
    free(buf);
    return rc;
#undef FAIL
}
