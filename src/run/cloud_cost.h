/* cloud_cost.h — a cloud rank's pass-time model during a run (the fit itself: timing/cost_fit.h).
 *
 * Start-up (cloud_cost_probe, then cloud_cost_share once every rank agreed): when some device
 * chunks dynamically, every cloud rank runs a short probe on its backend — passes of a few shapes
 * (1 to 256 tokens at growing positions of slot 0, 515 tokens in all when the step and the context
 * allow, a warm-up pass first; about 4 s on one core of a 2-core test machine; the slot is emptied
 * afterwards) — and fits the model to it; every rank then learns every cloud rank's coefficients
 * (one all-gather), so a device plans its first chunk with its own cloud rank's model. A
 * tensor-parallel group probes in step (every rank of it runs the same passes).
 * With [cloud] compute every pass (the probe's too) is charged the server profile's time
 * (cloud_cost_charge), so the model fits the modelled server, not this host.
 * During the run (cloud_cost_pass): every pass of the serving loop is a sample (its tokens, the
 * context they attend to, its time); the model is refitted every COST_REFIT_EVERY passes, carried
 * in every reply (wire.h cost_c0..3) and recorded with every pass in /batches.
 */
#ifndef HAT_CLOUD_COST_H
#define HAT_CLOUD_COST_H

#include "run/roles.h"

#define COST_REFIT_EVERY 4   /* a refit of the 256-sample window takes ~40 us on a 2-core test machine */

/* cloud ranks: the model, and the probe when `probe`; HAT_OK or an error (a failed probe pass) */
int cloud_cost_probe(run_ctx *r, int probe, char *err, size_t errlen);
/* every rank (collective, after the probe's agreement): devices get their cloud rank's model into
 * r->cost0 */
void cloud_cost_share(run_ctx *r);
/* the context a pass's sequences attend to, summed over its tokens */
double cloud_cost_context(const backend_seq *seqs, int n_seq);
/* [cloud] compute: a pass's real compute time padded up to the server profile's prediction for its
 * sequences (timing_run.h; the whole model in the cloud-only baseline); returns the seconds charged,
 * *pred the prediction (0 without a profile), *distorted 1 when the real compute took longer */
double cloud_cost_charge(const run_ctx *r, const backend_seq *seqs, int ns, double real_s, double *pred, int *distorted);
/* one pass of the serving loop: n tokens over context s took t seconds (charged) */
void cloud_cost_pass(run_ctx *r, double n, double s, double t);

#endif
