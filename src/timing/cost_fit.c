/* cost_fit.c — the cloud's pass-time model t = c0 + c1 n + c2 s + c3 n^2, weighted least squares
 * with GSL over a window of recent passes (cost_fit.h). */
#include "timing/cost_fit.h"

#include "core/common.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct cost_fit_ws {
    gsl_matrix *X, *cov;
    gsl_vector *y, *w, *b;
    gsl_multifit_linear_workspace *lin;
};

void cost_fit_init(cost_fit *f) {
    memset(f, 0, sizeof *f);
    cost_fit_ws *w = xcalloc(1, sizeof *w);
    w->X = gsl_matrix_alloc(COST_FIT_WINDOW, COST_FIT_TERMS);
    w->cov = gsl_matrix_alloc(COST_FIT_TERMS, COST_FIT_TERMS);
    w->y = gsl_vector_alloc(COST_FIT_WINDOW);
    w->w = gsl_vector_alloc(COST_FIT_WINDOW);
    w->b = gsl_vector_alloc(COST_FIT_TERMS);
    w->lin = gsl_multifit_linear_alloc(COST_FIT_WINDOW, COST_FIT_TERMS);
    CHECK(w->X && w->cov && w->y && w->w && w->b && w->lin, "cost_fit: out of memory");
    f->ws = w;
}

void cost_fit_free(cost_fit *f) {
    cost_fit_ws *w = f->ws;
    if (!w) return;
    gsl_multifit_linear_free(w->lin);
    gsl_vector_free(w->b);
    gsl_vector_free(w->w);
    gsl_vector_free(w->y);
    gsl_matrix_free(w->cov);
    gsl_matrix_free(w->X);
    free(w);
    f->ws = NULL;
}

void cost_fit_add(cost_fit *f, double n, double s, double t) {
    if (!(t > 0) || !(n > 0)) return;
    f->n[f->head] = n;
    f->s[f->head] = s;
    f->t[f->head] = t;
    f->head = (f->head + 1) % COST_FIT_WINDOW;
    if (f->count < COST_FIT_WINDOW) f->count++;
    f->total++;
}

double cost_fit_predict(const cost_coef *c, double n, double s) { return c->c0 + c->c1 * n + c->c2 * s + c->c3 * n * n; }

static double feature(const cost_fit *f, int i, int col) {
    return col == 0 ? 1.0 : col == 1 ? f->n[i] : col == 2 ? f->s[i] : f->n[i] * f->n[i];
}

/* fits the columns in use[] (the others held at 0); returns 0 or -1. Views into the workspace
 * allocated at init (GSL's workspace serves any problem up to its allocated size). */
static int fit_cols(const cost_fit *f, const int use[COST_FIT_TERMS], double coef[COST_FIT_TERMS]) {
    int p = 0, cols[COST_FIT_TERMS];
    for (int j = 0; j < COST_FIT_TERMS; j++)
        if (use[j]) cols[p++] = j;
    if (p == 0 || f->count < p) return -1;
    const size_t n = (size_t)f->count, np = (size_t)p;
    cost_fit_ws *ws = f->ws;
    gsl_matrix_view X = gsl_matrix_submatrix(ws->X, 0, 0, n, np), cov = gsl_matrix_submatrix(ws->cov, 0, 0, np, np);
    gsl_vector_view y = gsl_vector_subvector(ws->y, 0, n), w = gsl_vector_subvector(ws->w, 0, n);
    gsl_vector_view b = gsl_vector_subvector(ws->b, 0, np);
    for (size_t i = 0; i < n; i++) {
        for (size_t q = 0; q < np; q++) gsl_matrix_set(&X.matrix, i, q, feature(f, (int)i, cols[q]));
        gsl_vector_set(&y.vector, i, f->t[i]);
        gsl_vector_set(&w.vector, i, 1.0 / (f->t[i] * f->t[i]));
    }
    double chisq;
    size_t rank = 0;
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    int e = gsl_multifit_wlinear_tsvd(&X.matrix, &w.vector, &y.vector, 1e-12, &b.vector, &cov.matrix, &chisq, &rank,
                                      ws->lin);
    gsl_set_error_handler(old);
    if (e != GSL_SUCCESS || rank != np) return -1;
    memset(coef, 0, COST_FIT_TERMS * sizeof(double));
    for (size_t q = 0; q < np; q++) coef[cols[q]] = gsl_vector_get(&b.vector, q);
    return 0;
}

int cost_fit_refit(cost_fit *f) {
    if (f->count < 3) return -1;
    int use[COST_FIT_TERMS] = {1, 1, 1, 1}, clamped = 0;
    double coef[COST_FIT_TERMS];
    /* a negative coefficient: drop its column and refit, at most COST_FIT_TERMS - 1 times; too few
     * distinct shapes for every column: drop the last ones (n^2, then s) until the fit is determined */
    for (int round = 0;; round++) {
        if (fit_cols(f, use, coef)) {
            int last = COST_FIT_TERMS - 1;
            while (last > 0 && !use[last]) last--;
            if (last < 2) return -1;
            use[last] = 0;
            continue;
        }
        int neg = -1;
        for (int j = 0; j < COST_FIT_TERMS; j++)
            if (use[j] && coef[j] < 0 && (neg < 0 || coef[j] < coef[neg])) neg = j;
        if (neg < 0) break;
        if (round >= COST_FIT_TERMS + 1) return -1;
        use[neg] = 0;
        clamped = 1;
    }
    cost_coef c = {coef[0], coef[1], coef[2], coef[3], 0, 0, f->count, clamped};
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
