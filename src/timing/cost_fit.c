/* cost_fit.c — the cloud's pass-time model t = c0 + c1 n + c2 s, weighted least squares with
 * GSL over a window of recent passes (cost_fit.h). */
#include "timing/cost_fit.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit.h>
#include <math.h>
#include <string.h>

void cost_fit_init(cost_fit *f) { memset(f, 0, sizeof *f); }

void cost_fit_add(cost_fit *f, double n, double s, double t) {
    if (!(t > 0) || !(n > 0)) return;
    f->n[f->head] = n;
    f->s[f->head] = s;
    f->t[f->head] = t;
    f->head = (f->head + 1) % COST_FIT_WINDOW;
    if (f->count < COST_FIT_WINDOW) f->count++;
    f->total++;
}

double cost_fit_predict(const cost_coef *c, double n, double s) { return c->c0 + c->c1 * n + c->c2 * s; }

static double feature(const cost_fit *f, int i, int col) {
    return col == 0 ? 1.0 : col == 1 ? f->n[i] : f->s[i];
}

/* fits the columns in use[] (the others held at 0); returns 0 or -1 */
static int fit_cols(const cost_fit *f, const int use[3], double coef[3]) {
    int p = 0, cols[3];
    for (int j = 0; j < 3; j++)
        if (use[j]) cols[p++] = j;
    if (p == 0 || f->count < p) return -1;
    gsl_matrix *X = gsl_matrix_alloc((size_t)f->count, (size_t)p);
    gsl_vector *y = gsl_vector_alloc((size_t)f->count), *w = gsl_vector_alloc((size_t)f->count);
    gsl_vector *b = gsl_vector_alloc((size_t)p);
    gsl_matrix *cov = gsl_matrix_alloc((size_t)p, (size_t)p);
    gsl_multifit_linear_workspace *ws = gsl_multifit_linear_alloc((size_t)f->count, (size_t)p);
    int rc = -1;
    if (X && y && w && b && cov && ws) {
        for (int i = 0; i < f->count; i++) {
            for (int q = 0; q < p; q++) gsl_matrix_set(X, (size_t)i, (size_t)q, feature(f, i, cols[q]));
            gsl_vector_set(y, (size_t)i, f->t[i]);
            gsl_vector_set(w, (size_t)i, 1.0 / (f->t[i] * f->t[i]));
        }
        double chisq;
        size_t rank = 0;
        gsl_error_handler_t *old = gsl_set_error_handler_off();
        int e = gsl_multifit_wlinear_tsvd(X, w, y, 1e-12, b, cov, &chisq, &rank, ws);
        gsl_set_error_handler(old);
        if (e == GSL_SUCCESS && rank == (size_t)p) {
            memset(coef, 0, 3 * sizeof(double));
            for (int q = 0; q < p; q++) coef[cols[q]] = gsl_vector_get(b, (size_t)q);
            rc = 0;
        }
    }
    gsl_multifit_linear_free(ws);
    gsl_matrix_free(cov);
    gsl_vector_free(b);
    gsl_vector_free(w);
    gsl_vector_free(y);
    gsl_matrix_free(X);
    return rc;
}

int cost_fit_refit(cost_fit *f) {
    if (f->count < 3) return -1;
    int use[3] = {1, 1, 1}, clamped = 0;
    double coef[3];
    /* a negative coefficient: drop its column and refit, at most twice */
    for (int round = 0;; round++) {
        if (fit_cols(f, use, coef)) return -1;
        int neg = -1;
        for (int j = 0; j < 3; j++)
            if (use[j] && coef[j] < 0 && (neg < 0 || coef[j] < coef[neg])) neg = j;
        if (neg < 0) break;
        if (round == 2) return -1;
        use[neg] = 0;
        clamped = 1;
    }
    cost_coef c = {coef[0], coef[1], coef[2], 0, 0, f->count, clamped};
    double ss = 0;
    for (int i = 0; i < f->count; i++) {
        double rel = (cost_fit_predict(&c, f->n[i], f->s[i]) - f->t[i]) / f->t[i];
        ss += rel * rel;
        if (fabs(rel) > c.max_rel) c.max_rel = fabs(rel);
    }
    c.rms_rel = sqrt(ss / f->count);
    f->coef = c;
    return 0;
}
