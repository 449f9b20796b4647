/* adapter_fit.h — fitting and measuring the device's draft adapter (split/adapter.h), off the device.
 *
 * Fitting (adapter_fit*): ridge regression in closed form on Y = h_{L-b} - h_a with X = [h_a, 1],
 * in double precision. The bias is not regularised, which is the same as centring X and Y:
 *     (Cxx + lam I) W^T = Cxy,   c = mean(Y) - W mean(X),   Cxx, Cxy = centred sums of products,
 *     lam = lambda * trace(Cxx) / dim
 * so `lambda` is relative to the mean eigenvalue of the data's covariance and does not depend on
 * the scale of the hidden states or on the number of tokens. Solved by Cholesky (GSL).
 * lowrank = reduced-rank regression: the ridge solution projected onto the top-`rank` right singular
 * vectors V_r of the centred fitted values (eigenvectors of W Cxx W^T):  W_r = V_r V_r^T W,
 * U = V_r, Vt = V_r^T W, c = mean(Y) - W_r mean(X).
 *
 * What goes into the fit (the calibration command decides; see calib/calibrate.h and calib/hidden.h):
 * every position of self-generated sequences except position 0, the attention sink, whose h_{L-b} has
 * a norm of ~25,000 against ~600 elsewhere on SmolLM2 (one such row outweighs ~1,500 others), and
 * except positions whose token prefix already occurred in an earlier sequence (identical hidden
 * states: the chat template's shared system prefix would otherwise count once per prompt).
 *
 * This is the project's only user of GSL linear algebra; the device (split/) only applies adapters.
 */
#ifndef HAT_ADAPTER_FIT_H
#define HAT_ADAPTER_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "split/adapter.h"

#define ADAPTER_DEFAULT_RANK 64
#define ADAPTER_DEFAULT_LAMBDA 0.3

/* Sufficient statistics of (h_a, h_{L-b}) pairs, accumulated in double: the data need not stay in memory. */
typedef struct adapter_stats adapter_stats;
adapter_stats *adapter_stats_new(int dim);
/* Adds n pairs: x = h_a rows (n, dim), t = h_{L-b} rows (n, dim). */
void adapter_stats_add(adapter_stats *s, const float *x, const float *t, size_t n);
uint64_t adapter_stats_count(const adapter_stats *s);
void adapter_stats_free(adapter_stats *s);

/* Fits form (rank for lowrank; lambda relative, see the top) and sets info: form, dim, rank, lambda, n_train,
 * r2_train and r2_target_train (computed from the statistics with the float weights as stored). */
int adapter_fit_stats(adapter **out, const adapter_stats *s, adapter_form form, int rank, double lambda,
                      char *err, size_t errlen);
/* Same from n pairs in memory: x = h_a (n, dim), t = h_{L-b} (n, dim). */
int adapter_fit(adapter **out, const float *x, const float *t, size_t n, int dim, adapter_form form, int rank,
                double lambda, char *err, size_t errlen);

typedef struct {
    uint64_t n;
    double r2;           /* of Y = t - x: 1 - SSE / sum |Y - mean Y|^2 */
    double r2_target;    /* of t:         1 - SSE / sum |t - mean t|^2 */
    double r2_identity;  /* of t by the identity adapter (SSE = sum |t - x|^2) */
    double rms;          /* sqrt(SSE / n): per-token error */
    double rel_err;      /* sqrt(SSE / sum |t|^2) */
} adapter_metrics;

/* Applies the adapter to n pairs and measures the fit (SSE = sum over rows of |x + f(x) - t|^2). */
void adapter_eval(const adapter *ad, const float *x, const float *t, size_t n, adapter_metrics *m);

/* Records the model, split and corpus the adapter belongs to (computes the model's fingerprint), the
 * held-out figures (NULL: none held out) and the creation time (the build's version is set by the fit). */
void adapter_set_provenance(adapter *ad, const gguf_file *model_file, int n_layer, int a, int b, int min_pos,
                            const char *corpus, const adapter_metrics *heldout);
/* Records the draft agreement measured by the caller (fractions in [0,1]) on n_positions positions. */
void adapter_set_agreement(adapter *ad, double agree, double agree_identity, uint64_t n_positions);

#endif
