/* chunk_plan.c — the predicted pipeline of a prompt's chunks and the exact chooser on a grid
 * (chunk_plan.h has the model). */
#include "timing/chunk_plan.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static double dmax(double a, double b) { return a > b ? a : b; }

double chunk_plan_cloud(const chunk_cost *c, int p, int l) {
    double dl = l, dp = p;
    return c->cl_c0 + c->cl_c1 * dl + c->cl_c2 * (dl * dp + dl * (dl + 1) / 2) + c->cl_c3 * dl * dl + c->cl_other;
}

static double dev_time(const chunk_cost *c, int l) { return dmax(c->dev_c0 + c->dev_c1 * l, c->dev_floor); }

/* the three stage clocks after the chunks so far */
typedef struct {
    double d, u, c;
    int prev_pt, prev_st;     /* back pointer: grid point and state index the chunk started from */
} st_t;

static void step(const chunk_cost *c, const st_t *s, int p, int l, st_t *o) {
    o->d = dmax(s->d, c->dev_free) + dev_time(c, l);
    o->u = dmax(dmax(o->d, s->u), c->link_free) + c->tx_c0 + c->tx_c1 * l;
    o->c = dmax(dmax(o->u + c->lat, s->c), c->cloud_free) + chunk_plan_cloud(c, p, l);
}

double chunk_plan_eval(const chunk_cost *c, int pos0, const int *len, int k, double *done) {
    st_t s = {c->dev_free, c->link_free, c->cloud_free, -1, -1}, o;
    int p = pos0;
    for (int i = 0; i < k; i++) {
        step(c, &s, p, len[i], &o);
        s = o;
        p += len[i];
        if (done) done[i] = s.c;
    }
    return k > 0 ? s.c + c->tail_c0 + c->tail_c1 * len[k - 1] : 0.0;
}

/* --------------------------------------------------------------------------- the chooser */

#define STATE_CAP 96   /* non-dominated states kept per grid point (exceeding it: the plan is
                        * still valid, its optimality no longer guaranteed: plan.pruned = 1) */

typedef struct {
    st_t *st;          /* [npt][STATE_CAP] */
    int *cnt;          /* states per grid point */
    int npt;           /* grid points: 0 .. npt-1, point j at offset off(j) */
    int g, n;
    int pruned;
} dp_t;

static int off(const dp_t *dp, int j) { return j == dp->npt - 1 ? dp->n : j * dp->g; }

/* inserts o into point j's set unless dominated; drops the states it dominates */
static void insert(dp_t *dp, int j, const st_t *o) {
    st_t *set = dp->st + (size_t)j * STATE_CAP;
    int n = dp->cnt[j], w = 0;
    for (int i = 0; i < n; i++)
        if (set[i].d <= o->d && set[i].u <= o->u && set[i].c <= o->c) return;
    for (int i = 0; i < n; i++)
        if (!(o->d <= set[i].d && o->u <= set[i].u && o->c <= set[i].c)) set[w++] = set[i];
    if (w < STATE_CAP) {
        set[w++] = *o;
    } else { /* full: replace the state with the latest cloud finish if o beats it there */
        int worst = 0;
        for (int i = 1; i < w; i++)
            if (set[i].c > set[worst].c) worst = i;
        if (o->c < set[worst].c) set[worst] = *o;
        dp->pruned = 1;
    }
    dp->cnt[j] = w;
}

/* whether a chunk of l tokens from offset a may be used; mode 0: every limit, 1: the stall bound
 * waived for chunks shorter than twice the smallest (when nothing meets it: the plan of smallest
 * chunks, the last one merged into its neighbour if too short, is then always allowed), 2: the
 * stall bound ignored */
static int allowed(const chunk_cost *c, const chunk_req *r, int a, int l, int smallest, int mode) {
    if (l < r->min_chunk && l != r->n) return 0;
    if (r->max_chunk > 0 && l > r->max_chunk) return 0;
    if (r->max_stall_s > 0 && mode != 2 && chunk_plan_cloud(c, r->pos0 + a, l) > r->max_stall_s)
        return mode == 1 && l < 2 * smallest;
    return 1;
}

/* runs the dynamic program; returns the index of the best final state, or -1 (no plan) */
static int dp_run(dp_t *dp, const chunk_cost *c, const chunk_req *r, int mode) {
    int smallest = r->min_chunk > dp->g ? r->min_chunk : dp->g;
    memset(dp->cnt, 0, sizeof(int) * (size_t)dp->npt);
    dp->pruned = 0;
    st_t s0 = {c->dev_free, c->link_free, c->cloud_free, -1, -1};
    dp->st[0] = s0;
    dp->cnt[0] = 1;
    for (int j = 1; j < dp->npt; j++) {
        int b = off(dp, j);
        for (int i = j - 1; i >= 0; i--) {
            int a = off(dp, i), l = b - a;
            if (r->max_chunk > 0 && l > r->max_chunk) break;   /* longer still for smaller i */
            if (!allowed(c, r, a, l, smallest, mode)) continue;
            const st_t *set = dp->st + (size_t)i * STATE_CAP;
            for (int q = 0; q < dp->cnt[i]; q++) {
                st_t o;
                step(c, &set[q], r->pos0 + a, l, &o);
                if (j == dp->npt - 1) o.c += c->tail_c0 + c->tail_c1 * l;   /* a plan ends: T */
                o.prev_pt = i;
                o.prev_st = q;
                insert(dp, j, &o);
            }
        }
    }
    int last = dp->npt - 1, best = -1;
    for (int q = 0; q < dp->cnt[last]; q++)
        if (best < 0 || dp->st[(size_t)last * STATE_CAP + q].c < dp->st[(size_t)last * STATE_CAP + best].c)
            best = q;
    return best;
}

/* the plan ending in final state q: sizes into len (reversed walk), returns k or -1 if cap */
static int dp_plan(const dp_t *dp, int q, int *len, int cap, int check_stall, const chunk_cost *c,
                   const chunk_req *r, int *over) {
    int k = 0, j = dp->npt - 1;
    *over = 0;
    while (j > 0) {
        const st_t *s = dp->st + (size_t)j * STATE_CAP + q;
        int a = off(dp, s->prev_pt), l = off(dp, j) - a;
        if (check_stall && r->max_stall_s > 0 && chunk_plan_cloud(c, r->pos0 + a, l) > r->max_stall_s) *over = 1;
        if (len) {
            if (k >= cap) return -1;
            len[k] = l;
        }
        k++;
        j = s->prev_pt;
        q = s->prev_st;
    }
    for (int i = 0; len && i < k / 2; i++) {
        int t = len[i];
        len[i] = len[k - 1 - i];
        len[k - 1 - i] = t;
    }
    return k;
}

static int auto_gran(const chunk_req *r) {
    int g = r->gran > 0 ? r->gran : r->min_chunk;
    if (g < 1) g = 1;
    if (r->gran <= 0)
        while ((r->n + g - 1) / g > CHUNK_PLAN_GRID) g++;
    /* at most half of max_chunk: a last piece of 1 token can then join its neighbour */
    if (r->gran <= 0 && r->max_chunk > 0 && g > r->max_chunk / 2) g = r->max_chunk / 2 > 1 ? r->max_chunk / 2 : 1;
    if (r->max_chunk > 0 && g > r->max_chunk) g = r->max_chunk;
    return g;
}

int chunk_plan_solve(const chunk_cost *c, const chunk_req *r, int *len, int cap, chunk_plan *out) {
    chunk_plan pl = {0, 0.0, 0, 0, 0};
    if (r->n < 1 || cap < 1) return -1;
    dp_t dp;
    dp.n = r->n;
    dp.g = auto_gran(r);
    dp.npt = (r->n + dp.g - 1) / dp.g + 1;
    dp.st = malloc(sizeof(st_t) * (size_t)dp.npt * STATE_CAP);
    dp.cnt = malloc(sizeof(int) * (size_t)dp.npt);
    if (!dp.st || !dp.cnt) {
        free(dp.st);
        free(dp.cnt);
        return -1;
    }
    pl.gran = dp.g;
    int over = 0, k = -1, q;
    if (r->max_stall_s > 0) { /* does the bound bind: is the unconstrained best over it? */
        q = dp_run(&dp, c, r, 2);
        if (q >= 0) dp_plan(&dp, q, NULL, 0, 1, c, r, &over);
        if (over) pl.stall_bound = 1;
    }
    q = dp_run(&dp, c, r, 0);
    if (q < 0 && r->max_stall_s > 0) { /* nothing meets the bound: the smallest chunks where not */
        q = dp_run(&dp, c, r, 1);
        if (q < 0) q = dp_run(&dp, c, r, 2);   /* not even that (grid, size limits): the bound ignored */
        pl.stall_bound = 2;
    }
    if (q >= 0) {
        pl.done = dp.st[(size_t)(dp.npt - 1) * STATE_CAP + q].c;
        pl.pruned = dp.pruned;
        k = dp_plan(&dp, q, len, cap, 0, c, r, &over);
    }
    free(dp.st);
    free(dp.cnt);
    pl.k = k > 0 ? k : 0;
    if (out) *out = pl;
    return k;
}
