/* cloud_cost.c — the cloud's pass-time model in the run: probe, sharing, online refits
 * (cloud_cost.h). */
#include "run/cloud_cost.h"

#include "core/common.h"
#include "net/comm.h"
#include "net/emul.h"

#include <stdlib.h>
#include <string.h>

double cloud_cost_context(const backend_seq *seqs, int n_seq) {
    double s = 0;
    for (int i = 0; i < n_seq; i++) s += cost_fit_context(seqs[i].pos0, seqs[i].n_tok);
    return s;
}

/* one probe pass of n tokens at position pos on slot 0 (synthetic inputs), its charged time added
 * to the fit unless it is the warm-up */
static int probe_pass(run_ctx *r, int pos, int n, int add, char *err, size_t errlen) {
    backend *be = r->be;
    const int dim = r->mc.dim;
    float *io = backend_io(be);
    for (size_t k = 0; k < (size_t)n * dim; k++) io[k] = 0.01f * (float)((k * 2654435761u) % 200) - 1.0f;
    const backend_seq seq = {.slot = 0, .pos0 = pos, .n_tok = n, .decode = 0};
    const double t0 = comm_now();
    int rc = backend_forward(be, &seq, 1, err, errlen);
    if (rc) return rc;
    double pred;
    int distorted;
    const double t = cloud_cost_charge(r, &seq, 1, comm_now() - t0, &pred, &distorted);
    if (add) cost_fit_add(r->fit, n, cost_fit_context(pos, n), t);
    return HAT_OK;
}

/* the probe's passes on slot 0, one after the other: a warm-up pass, then each shape that fits the
 * backend's step and the context. Single-token passes at growing positions pin c0 and the
 * attention term c2; passes of 16..256 tokens the per-token terms c1 and c3. Then, where the
 * devices' prompts are longer than what that reached, a single-token and a 32-token pass at the
 * longest prompt's end (the context marked held, not computed: backend_pretend), so that the
 * attention term is measured where long prompts need it, not extrapolated. */
static int probe(run_ctx *r, char *err, size_t errlen) {
    static const int shape[] = {1, 32, 1, 64, 2, 128, 1, 16, 256, 1, 8, 1};
    backend *be = r->be;
    const int nsh = (int)(sizeof shape / sizeof shape[0]);
    int pos = 0, rc;
    for (int i = -1; i < nsh; i++) {
        const int n = i < 0 ? 4 : shape[i];
        if (n > be->max_tok || pos + n > r->cfg.ctx) continue;
        if ((rc = probe_pass(r, pos, n, i >= 0, err, errlen))) return rc;
        pos += n;
    }
    int longest = 0;
    for (int i = 0; i < r->cfg.n_devices; i++)
        if (r->prompt_len && r->prompt_len[i] > longest) longest = r->prompt_len[i];
    const int far = (longest < r->cfg.ctx ? longest : r->cfg.ctx) - 33;
    if (far > pos + 64 && be->max_tok >= 32) {
        backend_pretend(be, 0, far);
        if ((rc = probe_pass(r, far, 1, 1, err, errlen)) || (rc = probe_pass(r, far + 1, 32, 1, err, errlen))) return rc;
    }
    backend_truncate(be, 0, 0);
    cost_fit_refit(r->fit);
    return HAT_OK;
}

int cloud_cost_probe(run_ctx *r, int want_probe, char *err, size_t errlen) {
    if (r->role != ROLE_CLOUD) return HAT_OK;
    r->fit = xmalloc(sizeof *r->fit);
    cost_fit_init(r->fit);
    return want_probe && r->be ? probe(r, err, errlen) : HAT_OK;
}

void cloud_cost_share(run_ctx *r) {
    double mine[4] = {0, 0, 0, 0}, *all = xcalloc((size_t)r->size * 4, sizeof *all);
    if (r->fit) {
        mine[0] = r->fit->coef.c0;
        mine[1] = r->fit->coef.c1;
        mine[2] = r->fit->coef.c2;
        mine[3] = r->fit->coef.c3;
    }
    comm_allgather_doubles(mine, 4, all);
    if (r->role == ROLE_DEVICE) {
        const int cloud = partition_cloud_of_device(&r->part, r->device);
        memcpy(r->cost0, all + (size_t)cloud * 4, sizeof r->cost0);
    }
    free(all);
}

double cloud_cost_charge(const run_ctx *r, const backend_seq *seqs, int ns, double real_s, double *pred, int *distorted) {
    const hw_profile *hw = &r->cfg.cloud_compute;
    *pred = run_timing_cloud(&r->tm, hw, seqs, ns, r->be && r->be->embed, NULL);
    *distorted = hw_enabled(hw) && real_s > *pred;
    return hw_enabled(hw) ? emul_compute(real_s, *pred) : real_s;
}

void cloud_cost_pass(run_ctx *r, double n, double s, double t) {
    cost_fit *f = r->fit;
    if (!f) return;
    cost_fit_add(f, n, s, t);
    if (f->total % COST_REFIT_EVERY == 0) cost_fit_refit(f);
}
