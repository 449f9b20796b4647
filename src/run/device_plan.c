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
                      const plan_prior *pr) {
    memset(p, 0, sizeof *p);
    p->share0 = pr->share > 0 ? pr->share : 1;
    p->ahead0 = pr->ahead > 0 ? pr->ahead : 0;
    p->other_c = pr->other > 0 ? pr->other : 0;
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
    p->prior_d0 = dev_c1 > 0 ? 0 : p->c[0] * p->layer_ratio;   /* a profile's floor stands for it */
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

double device_plan_round_cost(const double c[4], int rows, int ctx) {
    const double r = rows;
    return c[1] * r + c[2] * (r * ctx + r * (r + 1) / 2) + c[3] * r * r;
}

#define MARGIN0 0.1    /* the stall margin before the errors of 2 chunks are known */
#define MARGIN_MAX 0.5

double device_plan_margin(const device_plan *p) {
    const int n = p->n_err < 8 ? p->n_err : 8;
    if (n < 2) return MARGIN0;
    double e1 = -1e300, e2 = -1e300;   /* the largest two */
    for (int i = 0; i < n; i++) {
        if (p->err[i] > e1) { e2 = e1; e1 = p->err[i]; }
        else if (p->err[i] > e2) e2 = p->err[i];
    }
    return fmin(MARGIN_MAX, fmax(0, e2));
}

/* the line t = *d0 + *d1 n through the observed (n, t) sums; with one chunk size (or a line that
 * would go negative) d0 is kept at most `prior` and d1 fits the mean */
static void dev_line(const double *sn, const double *st, double prior, double *d0, double *d1) {
    const double mn = sn[1] / sn[0], mt = st[0] / sn[0], var = sn[2] / sn[0] - mn * mn;
    if (sn[0] >= 2 && var > 0.25) {
        *d1 = (st[1] / sn[0] - mn * mt) / var;
        *d0 = mt - *d1 * mn;
        if (*d0 >= 0 && *d1 >= 0) return;
    }
    *d0 = fmin(prior, 0.5 * mt);
    *d1 = fmax(0, (mt - *d0) / mn);
}

/* the device's time for l tokens of both submodels, d0 + d1 l (and of the output one, o0 + o1 l),
 * from the best source it has (device_plan.h) */
static void dev_model(const device_plan *p, double *d0, double *d1, double *o0, double *o1) {
    if (p->n_obs) {
        dev_line(p->fit_n, p->fit_t, p->prior_d0, d0, d1);
        dev_line(p->fit_n, p->fit_o, 0.5 * p->prior_d0, o0, o1);
        return;
    }
    *d0 = p->prior_d0;
    *d1 = p->flop_c1 > 0 ? p->flop_c1 : p->c[1] * p->layer_ratio;
    *o0 = 0.5 * *d0;
    *o1 = 0.5 * *d1;
}

double device_plan_cost(const device_plan *p, const link_state *ls, double now, chunk_cost *out) {
    chunk_cost c = {0};
    double o0, o1;
    dev_model(p, &c.dev_c0, &c.dev_c1, &o0, &o1);
    c.dev_floor = p->mem_floor;
    c.tx_c0 = p->tx_c0;
    c.tx_c1 = p->tx_c1;
    c.lat = p->lat + p->lat_corr;
    const double f = p->n_obs ? 1.0 : p->share0;   /* before the first reply: the devices prefilling at once */
    c.cl_c0 = f * p->c[0];
    c.cl_c1 = f * p->c[1];
    c.cl_c2 = f * p->c[2];
    c.cl_c3 = f * p->c[3];
    c.cl_other = p->other_c + p->other_q;
    c.link_free = p->emulate && ls->busy_until > now ? ls->busy_until - now : 0;
    c.tail_c0 = p->down_lat + p->down_c0 + o0;   /* the reply's way down and the output submodel */
    c.tail_c1 = p->down_c1 + o1;
    c.cloud_free = p->outstanding_done > now ? p->outstanding_done - now : 0;
    if (!p->n_plans && p->ahead0 > c.cloud_free) c.cloud_free = p->ahead0;   /* the prompts before it */
    *out = c;
    /* the bound on (own + other_c) (1 + margin) + other_q, as one on the chooser's cld = own + other_c + other_q */
    if (!(p->max_stall_s > 0)) return 0;
    return fmax(1e-9, (p->max_stall_s - p->other_q) / (1 + device_plan_margin(p))) + p->other_q;
}

plan_step device_plan_next(device_plan *p, const link_state *ls, double now, int pos, int n) {
    chunk_cost c;
    const double bound = device_plan_cost(p, ls, now, &c);
    p->n_plans++;
    const chunk_req rq = {.n = n, .pos0 = pos, .gran = 0, .min_chunk = p->min_chunk, .max_chunk = p->max_chunk,
                          .max_stall_s = bound};
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
    if (bound > 0)
        while (first > p->min_chunk && chunk_plan_cloud(&c, pos, first) > bound) first--;
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
    /* arrival against the link model: the transport's own overhead */
    const double corr = (st->t_cloud_ready - st->t_up_send) - (p->emulate ? st->up_model_s : 0);
    /* the others' share: the pass over the model for this chunk alone, and the wait behind them */
    const double own = p->c[0] + p->c[1] * n + p->c[2] * (n * st->pos0 + n * (n + 1) / 2) + p->c[3] * n * n;
    const double self_wait = p->prev_cloud_done > st->t_cloud_ready ? p->prev_cloud_done - st->t_cloud_ready : 0;
    const double pred = own + p->other_c;   /* the pass as predicted before this reply */
    if (pred > 0) p->err[p->n_err++ % 8] = st->cloud_compute_s / pred - 1;
    const double w = p->n_obs ? EWMA : 1.0, wc = p->n_obs || p->other_c > 0 ? EWMA : 1.0;
    p->fit_n[0] += 1;
    p->fit_n[1] += n;
    p->fit_n[2] += n * n;
    p->fit_t[0] += in + out;
    p->fit_t[1] += n * (in + out);
    p->fit_o[0] += out;
    p->fit_o[1] += n * out;
    p->lat_corr = w * fmax(0, corr) + (1 - w) * p->lat_corr;
    p->other_c = wc * fmax(0, st->cloud_compute_s - own) + (1 - wc) * p->other_c;
    p->other_q = w * fmax(0, st->cloud_queue_s - self_wait) + (1 - w) * p->other_q;
    p->n_obs++;
    p->prev_cloud_done = st->t_down_send;
    if (cf[0] > 0 || cf[1] > 0 || cf[2] > 0 || cf[3] > 0)
        for (int i = 0; i < 4; i++) p->c[i] = cf[i];
}
