/* cost_fit.h — the cloud's pass-time model, fitted by least squares (GSL) and refitted online.
 *
 * A forward pass of n tokens whose tokens attend to a total context of s positions (the sum over
 * its tokens of the positions each one attends to, itself included) is modelled as
 *     t = c0 + c1 n + c2 s + c3 n^2
 * c0: fixed cost per pass (launching, the weights read once per pass when they do not stay in
 * cache); c1: per-token cost (the matmuls); c2: per-attended-position cost (attention); c3: a
 * per-token cost that grows with the pass's size (its activations and outputs outgrow the caches:
 * on a 2-core test machine the linear model under-predicted passes of 128 and 256 tokens by 15 and
 * 22 %, the quadratic one by 8 and 4 %: experiments/fit_pass_cost.py). Samples
 * come from a start-up probe (the cloud runs a few passes of chosen shapes) and then from every
 * pass the rank runs; the fit uses gsl_multifit_wlinear_tsvd over a window of the most recent
 * samples, each weighted 1/t^2 (relative errors: a 2 ms pass counts as much as a 2 s one), and
 * reports the residuals. The coefficients are clamped to be >= 0 (a negative cost would make the
 * chunk chooser favour absurd plans: the most negative one's column is dropped and the rest
 * refitted); the clamp is reported.
 */
#ifndef HAT_COST_FIT_H
#define HAT_COST_FIT_H

#include <stddef.h>
#include <stdint.h>

#define COST_FIT_WINDOW 256   /* samples the fit uses (the most recent ones) */
#define COST_FIT_TERMS 4       /* 1, n, s, n^2 */

typedef struct {
    double c0, c1, c2, c3;    /* seconds; per token; per attended position; per token squared */
    double rms_rel;           /* root mean square of (t_pred - t) / t over the fitted samples */
    double max_rel;           /* largest |t_pred - t| / t */
    int n_samples;            /* samples fitted */
    int clamped;              /* 1: a coefficient came out negative and was refitted without it */
} cost_coef;

typedef struct cost_fit_ws cost_fit_ws;   /* the GSL matrices and workspace, allocated once */

typedef struct {
    double n[COST_FIT_WINDOW], s[COST_FIT_WINDOW], t[COST_FIT_WINDOW];
    int count;                /* samples held (<= COST_FIT_WINDOW) */
    int head;                 /* next slot to overwrite */
    uint64_t total;           /* samples ever added */
    cost_coef coef;           /* the latest fit (all 0 before the first) */
    cost_fit_ws *ws;          /* sized for the whole window at init: a refit allocates nothing */
} cost_fit;

void cost_fit_init(cost_fit *f);
void cost_fit_free(cost_fit *f);
/* one pass: n tokens, total attended context s, measured seconds t (> 0) */
void cost_fit_add(cost_fit *f, double n, double s, double t);
/* refits from the window; returns 0 and updates f->coef, or -1 (and keeps the old fit) when the
 * samples cannot determine the model (fewer than 3, or all of one shape) */
int cost_fit_refit(cost_fit *f);
/* the model's prediction for a pass of n tokens over total context s (t = c0 + c1 n + c2 s + c3 n^2) */
double cost_fit_predict(const cost_coef *c, double n, double s);
/* the attended context of a chunk of l tokens from position p: l p + l (l + 1) / 2 */
static inline double cost_fit_context(double p, double l) { return l * p + l * (l + 1) / 2; }

#endif
