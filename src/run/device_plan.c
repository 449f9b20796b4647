/* device_plan.c — the device's pipeline model and its next chunk (device_plan.h). */
#include "run/device_plan.h"

#include "core/common.h"
#include "net/wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EWMA 0.5   /* weight of the newest observation */

static double jitter_mean(const link_params *l) {
    if (l->jitter == JITTER_NORMAL) return l->jitter_s * sqrt(2.0 / 3.14159265358979323846);   /* |N(0, s)| */
    if (l->jitter == JITTER_EXPONENTIAL) return l->jitter_s;
    return 0;
}

void device_plan_init(device_plan *p, double dev_c1, double mem_floor, int a, int b, int L, const link_params *up, const link_params *down, int emulate, int dim,
                      int wire_bytes, int n_prompt, int max_chunk, double max_stall_s, const double cost0[4],
                      double share0, double ahead0) {
    memset(p, 0, sizeof *p);
    p->share0 = share0 > 0 ? share0 : 1;
    p->ahead0 = ahead0 > 0 ? ahead0 : 0;
    p->cap = n_prompt > 0 ? n_prompt : 1;
    p->len = xmalloc(sizeof *p->len * (size_t)p->cap);
    p->done = xmalloc(sizeof *p->done * (size_t)p->cap);
    p->flop_c1 = dev_c1;
    p->mem_floor = mem_floor;
    p->layer_ratio = L - a - b > 0 ? (double)(a + b) / (L - a - b) : 1;
    p->emulate = emulate;
    if (emulate) {
        const double row = 8.0 * dim * wire_bytes;
        p->tx_c0 = up->bw_bps > 0 ? 8.0 * WIRE_HEADER_BYTES / up->bw_bps : 0;
        p->tx_c1 = up->bw_bps > 0 ? row / up->bw_bps : 0;
        p->lat = up->latency_s + jitter_mean(up);
        p->down_c0 = down->bw_bps > 0 ? 8.0 * WIRE_HEADER_BYTES / down->bw_bps : 0;
        p->down_c1 = down->bw_bps > 0 ? row / down->bw_bps : 0;
        p->down_lat = down->latency_s + jitter_mean(down);
    }
    p->min_chunk = 2;   /* chunk_next's rule: a one-token chunk would run the decode kernels */
    p->max_chunk = max_chunk;
    p->max_stall_s = max_stall_s;
    memcpy(p->c, cost0, sizeof p->c);
}

void device_plan_free(device_plan *p) {
    free(p->len);
    free(p->done);
    p->len = NULL;
    p->done = NULL;
}

double device_plan_prompt_cost(const double c[4], int n, int pass) {
    double t = 0;
    for (int p = 0; p < n; p += pass) {
        const double l = n - p < pass ? n - p : pass;
        t += c[0] + c[1] * l + c[2] * (l * p + l * (l + 1) / 2) + c[3] * l * l;
    }
    return t;
}

/* seconds per token of the device's two submodels, from the best source it has */
static double dev_per_token(const device_plan *p) {
    if (p->n_obs) return p->dev_tok;
    if (p->flop_c1 > 0) return p->flop_c1;
    return p->c[1] * p->layer_ratio;
}

plan_step device_plan_next(device_plan *p, const link_state *ls, double now, int pos, int n) {
    chunk_cost c = {0};
    c.dev_c1 = dev_per_token(p);
    c.dev_floor = p->mem_floor;
    c.tx_c0 = p->tx_c0;
    c.tx_c1 = p->tx_c1;
    c.lat = p->lat + p->lat_corr;
    const double f = p->n_obs ? 1.0 : p->share0;   /* before the first reply: the devices prefilling at once */
    c.cl_c0 = f * p->c[0];
    c.cl_c1 = f * p->c[1];
    c.cl_c2 = f * p->c[2];
    c.cl_c3 = f * p->c[3];
    c.cl_other = p->other_s;
    c.link_free = p->emulate && ls->busy_until > now ? ls->busy_until - now : 0;
    const double out = p->n_obs ? p->out_tok : c.dev_c1 * 0.5;   /* the output submodel's share */
    c.tail_c0 = p->down_lat + p->down_c0;
    c.tail_c1 = p->down_c1 + out;
    c.cloud_free = p->outstanding_done > now ? p->outstanding_done - now : 0;
    if (!p->n_plans++ && p->ahead0 > c.cloud_free) c.cloud_free = p->ahead0;   /* the prompts before it */
    const chunk_req rq = {.n = n, .pos0 = pos, .gran = 0, .min_chunk = p->min_chunk, .max_chunk = p->max_chunk,
                          .max_stall_s = p->max_stall_s};
    int *len = p->len;
    double *done = p->done;
    chunk_plan pl;
    CHECK(n <= p->cap, "device: planning %d tokens, room for %d", n, p->cap);
    int k = chunk_plan_solve(&c, &rq, len, n, &pl);
    CHECK(k > 0, "device: no chunk plan for %d tokens from position %d (chunks %d..%d)", n, pos, p->min_chunk,
          p->max_chunk);
    /* the plan's grid may be coarser than the bound needs (16 tokens for a 2,000-token rest): the
     * chunk sent now is cut, token by token, to the largest that meets it (the rest is re-planned
     * before the next chunk), unless none of at least min_chunk tokens does */
    int first = len[0];
    if (p->max_stall_s > 0)
        while (first > p->min_chunk && chunk_plan_cloud(&c, pos, first) > p->max_stall_s) first--;
    if (k == 1 && first < n && n - first < p->min_chunk) first = n - p->min_chunk;   /* no 1-token rest */
    if (first < len[0] && first >= p->min_chunk) {
        const int cut = len[0] - first;
        if (k == 1) {
            CHECK(p->cap >= 2, "device: planning %d tokens, room for %d", n, p->cap);
            len[1] = cut;
            k = 2;
        } else {
            len[1] += cut;   /* the plan stays a plan of n tokens, for its prediction */
        }
        len[0] = first;
        if (!pl.stall_bound) pl.stall_bound = 1;
    }
    const double T = chunk_plan_eval(&c, pos, len, k, done);
    if (pl.stall_bound) p->stall_hits++;
    plan_step s = {.n = len[0], .done_t = now + done[0], .k = k};
    s.ttft_t = now + T;
    p->outstanding_done = s.done_t;
    return s;
}

void device_plan_observe(device_plan *p, const trace_step *st, const float cf[4]) {
    const double n = st->n_tok;
    const double in = fmax(st->dev_in_s, st->dev_in_pred_s), out = fmax(st->dev_out_s, st->dev_out_pred_s);
    const double tok = (in + out) / n, otok = out / n;
    /* arrival against the link model: the transport's own overhead */
    const double corr = (st->t_cloud_ready - st->t_up_send) - (p->emulate ? st->up_model_s : 0);
    /* the others' share: the pass over the model for this chunk alone, and the wait behind them */
    const double own = p->c[0] + p->c[1] * n + p->c[2] * (n * st->pos0 + n * (n + 1) / 2) + p->c[3] * n * n;
    const double self_wait = p->prev_cloud_done > st->t_cloud_ready ? p->prev_cloud_done - st->t_cloud_ready : 0;
    const double other = fmax(0, st->cloud_compute_s - own) + fmax(0, st->cloud_queue_s - self_wait);
    const double w = p->n_obs ? EWMA : 1.0;
    p->dev_tok = w * tok + (1 - w) * p->dev_tok;
    p->out_tok = w * otok + (1 - w) * p->out_tok;
    p->lat_corr = w * fmax(0, corr) + (1 - w) * p->lat_corr;
    p->other_s = w * other + (1 - w) * p->other_s;
    p->n_obs++;
    p->prev_cloud_done = st->t_down_send;
    if (cf[0] > 0 || cf[1] > 0 || cf[2] > 0 || cf[3] > 0)
        for (int i = 0; i < 4; i++) p->c[i] = cf[i];
}
