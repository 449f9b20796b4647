/* adapter_fit.c — see adapter_fit.h: sufficient statistics, the ridge and reduced-rank fits, evaluation and the
 * adapter's provenance. */
#include "calib/adapter_fit.h"

#include "core/common.h"
#include "split/adapter_internal.h"

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every GSL matrix header includes gsl_cblas.h, whose declarations clash with OpenBLAS's cblas.h, so this file
 * takes the (standard, identical) CBLAS prototypes from GSL's header. The calls still go to OpenBLAS: hat_calib
 * links OpenBLAS before GSL's own CBLAS, so the loader binds cblas_* to OpenBLAS. */

#define STATS_BLOCK 256            /* rows converted to double per syrk/gemm in adapter_stats_add */

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

/* Centred sums: C = Sxx - n mx mx^T (made symmetric), Cxy = Sxy - n mx my^T; returns trace(C). */
static double centre(const adapter_stats *s, double *mx, double *my, double *C, double *Cxy) {
    const int d = s->dim;
    const double n = (double)s->n;
    for (int i = 0; i < d; i++) { mx[i] = s->sx[i] / n; my[i] = s->sy[i] / n; }
    double tr = 0;
    for (int i = 0; i < d; i++) {
        for (int j = i; j < d; j++)
            C[(size_t)i * d + j] = C[(size_t)j * d + i] = s->sxx[(size_t)i * d + j] - n * mx[i] * mx[j];
        for (int j = 0; j < d; j++) Cxy[(size_t)i * d + j] = s->sxy[(size_t)i * d + j] - n * mx[i] * my[j];
        tr += C[(size_t)i * d + i];
    }
    return tr;
}

/* Ridge: (C + lam I) B = Cxy, B (d, d) = W^T, by Cholesky A = L L^T then two triangular solves. */
static int ridge_solve(double *B, const double *C, const double *Cxy, const adapter_stats *s, double lam,
                       double lambda, char *err, size_t errlen) {
    const int d = s->dim;
    double *A = xmalloc(sizeof(double) * (size_t)d * d);
    memcpy(A, C, sizeof(double) * (size_t)d * d);
    memcpy(B, Cxy, sizeof(double) * (size_t)d * d);
    for (int i = 0; i < d; i++) A[(size_t)i * d + i] += lam;
    gsl_matrix_view Av = gsl_matrix_view_array(A, (size_t)d, (size_t)d);
    gsl_error_handler_t *old = gsl_set_error_handler_off();   /* GSL's default handler aborts */
    int st = gsl_linalg_cholesky_decomp1(&Av.matrix);
    gsl_set_error_handler(old);
    if (st) {
        free(A);
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "X^T X + lambda I is not positive definite (%llu tokens, dim %d, lambda %g): "
                       "use more data or a larger lambda",
                       (unsigned long long)s->n, d, lambda);
    }
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, d, d, 1.0, A, d, B, d);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, d, d, 1.0, A, d, B, d);
    free(A);
    return HAT_OK;
}

/* linear: W = B^T as stored (float), and W (d, d) in double from the stored floats */
static void set_linear(adapter *ad, const double *B, double *W) {
    const int d = ad->info.dim;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            ad->w[(size_t)i * d + j] = (float)B[(size_t)j * d + i];
            W[(size_t)i * d + j] = ad->w[(size_t)i * d + j];
        }
}

/* lowrank: the ridge solution B = W^T projected onto the top-rank eigenvectors of the fitted values' covariance
 * M = B^T C B = W C W^T; U, Vt as stored (float) and W = U Vt (d, d) in double from the stored floats */
static void set_lowrank(adapter *ad, const double *C, const double *B, double *W) {
    const int d = ad->info.dim, rank = ad->info.rank;
    double *M = xmalloc(sizeof(double) * (size_t)d * d), *T = xmalloc(sizeof(double) * (size_t)d * d);
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
    free(M);
    free(T);
}

int adapter_fit_stats(adapter **out, const adapter_stats *s, adapter_form form, int rank, double lambda,
                      char *err, size_t errlen) {
    const int d = s->dim;
    *out = NULL;
    if (form < ADAPTER_IDENTITY || form > ADAPTER_LOWRANK)
        return hat_err(err, errlen, HAT_ERR_ARG, "unknown adapter form %d", form);
    if (form == ADAPTER_LOWRANK && (rank < 1 || rank > d))
        return hat_err(err, errlen, HAT_ERR_ARG, "lowrank adapter: rank must be in [1, %d], got %d", d, rank);
    if (!(lambda >= 0) || !isfinite(lambda))
        return hat_err(err, errlen, HAT_ERR_ARG, "lambda must be >= 0, got %g", lambda);
    if (s->n < 2)
        return hat_err(err, errlen, HAT_ERR_ARG, "cannot fit an adapter on %llu token(s)", (unsigned long long)s->n);

    double *mx = xmalloc(sizeof(double) * d), *my = xmalloc(sizeof(double) * d);
    double *C = xmalloc(sizeof(double) * (size_t)d * d), *Cxy = xmalloc(sizeof(double) * (size_t)d * d);
    const double tr = centre(s, mx, my, C, Cxy);
    int rc = HAT_OK;
    double *B = NULL, *W = NULL;
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
    B = xmalloc(sizeof(double) * (size_t)d * d);
    if ((rc = ridge_solve(B, C, Cxy, s, lambda * tr / d, lambda, err, errlen))) goto done;
    W = xmalloc(sizeof(double) * (size_t)d * d);   /* the weights as stored (float-rounded), dense */
    if (form == ADAPTER_LINEAR) set_linear(ad, B, W);
    else set_lowrank(ad, C, B, W);
    /* bias from the stored weights, so the training residual has mean zero */
    for (int i = 0; i < d; i++) {
        double acc = my[i];
        for (int j = 0; j < d; j++) acc -= W[(size_t)i * d + j] * mx[j];
        ad->c[i] = (float)acc;
    }
    train_metrics(ad, s, C, Cxy, mx, my, W);
done:
    free(mx); free(my); free(C); free(Cxy); free(B); free(W);
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
    float *o = xmalloc(sizeof(float) * ADAPTER_APPLY_BLOCK * d);
    double sse = 0, sse_id = 0, sst_y = 0, sst_t = 0, st2 = 0;
    for (size_t r0 = 0; r0 < n; r0 += ADAPTER_APPLY_BLOCK) {
        const int nb = n - r0 < ADAPTER_APPLY_BLOCK ? (int)(n - r0) : ADAPTER_APPLY_BLOCK;
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
