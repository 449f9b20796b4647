/* test_chunk_plan.c — the dynamic chunking chooser (src/timing/chunk_plan.h) and the cloud's
 * pass-time fit (src/timing/cost_fit.h).
 *   eval    the pipeline recurrence on hand-worked plans (and the last chunk's tail)
 *   brute   the chooser's plan against enumerating every composition of n (n <= 14, random
 *           costs with and without a tail, size limits and the stall bound, grid 1 and coarser grids)
 *   closed  three identical linear stages: the optimum is min_k (k a + b n + 2 (a + b ceil(n/k))),
 *           reached by (near-)equal chunks
 *   stall   max_stall_s: every chunk within it; binds / cannot be met are reported
 *   limits  min_chunk, max_chunk, a prompt shorter than min_chunk, a too-small cap
 *   speed   prints the time of a 4096-token plan (no timing is asserted here; the target
 *           "under 1 ms" is reported by experiments/bench_chunking.py)
 *   fit     cost_fit recovers known coefficients, reports residuals, clamps a negative one
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "support/testutil.h"
#include "timing/chunk_plan.h"
#include "timing/cost_fit.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static chunk_cost random_cost(void) {
    chunk_cost c;
    memset(&c, 0, sizeof c);
    c.dev_c0 = t_uniform() * 0.02;
    c.dev_c1 = t_uniform() * 0.01;
    c.dev_floor = t_uniform() < 0.3 ? t_uniform() * 0.05 : 0;
    c.tx_c0 = t_uniform() * 0.01;
    c.tx_c1 = t_uniform() * 0.01;
    c.lat = t_uniform() * 0.05;
    c.cl_c0 = t_uniform() * 0.03;
    c.cl_c1 = t_uniform() * 0.005;
    c.cl_c2 = t_uniform() * 0.0005;
    c.cl_c3 = t_uniform() < 0.5 ? t_uniform() * 0.001 : 0;
    c.cl_other = t_uniform() < 0.5 ? t_uniform() * 0.01 : 0;
    c.dev_free = t_uniform() < 0.3 ? t_uniform() * 0.05 : 0;
    c.link_free = t_uniform() < 0.3 ? t_uniform() * 0.05 : 0;
    c.cloud_free = t_uniform() < 0.3 ? t_uniform() * 0.2 : 0;
    if (t_uniform() < 0.5) {   /* the reply of the last chunk and the output submodel on it */
        c.tail_c0 = t_uniform() * 0.05;
        c.tail_c1 = t_uniform() * 0.01;
    }
    return c;
}

static void test_eval(void) {
    chunk_cost c;
    memset(&c, 0, sizeof c);
    c.dev_c1 = 1; c.tx_c1 = 1; c.cl_c1 = 1; c.lat = 0.5;
    int len[2] = {2, 3};
    double done[2];
    /* D = 2, 5; U = 4, 8; A = 4.5, 8.5; C = 6.5, 11.5 */
    double t = chunk_plan_eval(&c, 0, len, 2, done);
    EXPECT(fabs(done[0] - 6.5) < 1e-12 && fabs(t - 11.5) < 1e-12, "eval: %g %g", done[0], t);
    c.cl_c2 = 0.1; /* chunk 2 from position 2, 3 tokens: context 3*2 + 6 = 12 -> +1.2; chunk 1: 3 -> +0.3 */
    t = chunk_plan_eval(&c, 0, len, 2, done);
    EXPECT(fabs(done[0] - 6.8) < 1e-12 && fabs(t - 12.7) < 1e-12, "eval attention: %g %g", done[0], t);
    c.cloud_free = 20; /* the cloud busy until 20: C = 22.3, 26.5 */
    t = chunk_plan_eval(&c, 0, len, 2, done);
    EXPECT(fabs(done[0] - 22.3) < 1e-12 && fabs(t - 26.5) < 1e-12, "eval cloud_free: %g %g", done[0], t);
    c.cloud_free = 0; c.dev_floor = 4; /* device: max(l, 4): D = 4, 8; U = 6, 11; C = 8.8, 15.7 */
    t = chunk_plan_eval(&c, 0, len, 2, done);
    EXPECT(fabs(done[0] - 8.8) < 1e-12 && fabs(t - 15.7) < 1e-12, "eval floor: %g %g", done[0], t);
    c.tail_c0 = 0.25; c.tail_c1 = 0.5; /* T = C_k + 0.25 + 0.5 * 3 */
    t = chunk_plan_eval(&c, 0, len, 2, done);
    EXPECT(fabs(done[0] - 8.8) < 1e-12 && fabs(t - 17.45) < 1e-12, "eval tail: %g %g", done[0], t);
    c.tail_c0 = c.tail_c1 = 0;
    EXPECT(fabs(chunk_plan_cloud(&c, 10, 4) - (4 + 0.1 * (40 + 10))) < 1e-12, "cloud cost");
    c.cl_c3 = 0.01;
    EXPECT(fabs(chunk_plan_cloud(&c, 10, 4) - (4 + 0.1 * (40 + 10) + 0.16)) < 1e-12, "cloud cost, n^2 term");
}

/* brute force over every composition of n whose boundaries lie on the grid */
static double brute(const chunk_cost *c, const chunk_req *r, int g, int mode_stall, int *bestk) {
    int n = r->n, pts = (n + g - 1) / g - 1; /* inner grid points */
    double best = INFINITY;
    for (unsigned mask = 0; mask < (1u << pts); mask++) {
        int len[64], k = 0, a = 0, ok = 1;
        for (int j = 1; j <= pts + 1 && ok; j++) {
            int b = j == pts + 1 ? n : j * g;
            if (j <= pts && !(mask & (1u << (j - 1)))) continue;
            int l = b - a;
            if (l < r->min_chunk && l != n) ok = 0;
            if (r->max_chunk > 0 && l > r->max_chunk) ok = 0;
            if (mode_stall && r->max_stall_s > 0 && chunk_plan_cloud(c, r->pos0 + a, l) > r->max_stall_s) ok = 0;
            len[k++] = l;
            a = b;
        }
        if (!ok) continue;
        double t = chunk_plan_eval(c, r->pos0, len, k, NULL);
        if (t < best) { best = t; *bestk = k; }
    }
    return best;
}

static void test_brute(void) {
    int cases = 0, worst_pruned = 0;
    for (int it = 0; it < 400; it++) {
        chunk_cost c = random_cost();
        chunk_req r = {0};
        r.n = 1 + (int)(t_uniform() * 14);
        r.pos0 = t_uniform() < 0.5 ? 0 : (int)(t_uniform() * 200);
        r.gran = t_uniform() < 0.7 ? 1 : 1 + (int)(t_uniform() * 4);
        r.min_chunk = t_uniform() < 0.5 ? 1 : 1 + (int)(t_uniform() * 3);
        if (r.gran < r.min_chunk && t_uniform() < 0.5) r.gran = r.min_chunk;
        r.max_chunk = t_uniform() < 0.7 ? 0 : r.gran + (int)(t_uniform() * 8);
        int len[64], bk = 0;
        double want_free = brute(&c, &r, r.gran, 0, &bk);
        if (t_uniform() < 0.4 && isfinite(want_free)) /* a bound somewhere inside the range */
            r.max_stall_s = chunk_plan_cloud(&c, r.pos0, r.n) * (0.3 + 0.6 * t_uniform());
        double want = brute(&c, &r, r.gran, 1, &bk);
        chunk_plan pl;
        int k = chunk_plan_solve(&c, &r, len, 64, &pl);
        worst_pruned |= pl.pruned;
        if (!isfinite(want)) { /* no plan meets the limits with the stall bound */
            if (r.max_stall_s > 0 && isfinite(brute(&c, &r, r.gran, 0, &bk))) {
                EXPECT(k > 0 && pl.stall_bound == 2, "brute %d: an unmeetable bound must give a plan saying so (k %d, %d)",
                       it, k, pl.stall_bound);
            }
            continue;
        }
        cases++;
        int sum = 0;
        for (int i = 0; i < k; i++) sum += len[i];
        double got = k > 0 ? chunk_plan_eval(&c, r.pos0, len, k, NULL) : INFINITY;
        EXPECT(k > 0 && sum == r.n, "brute %d: plan covers %d of %d tokens (k %d)", it, sum, r.n, k);
        EXPECT(fabs(got - want) <= 1e-12 * (1 + want), "brute %d: n %d g %d min %d max %d stall %g: plan %.15g, optimum %.15g",
               it, r.n, r.gran, r.min_chunk, r.max_chunk, r.max_stall_s, got, want);
        EXPECT(fabs(pl.done - got) <= 1e-12 * (1 + got), "brute %d: plan.done %.15g, eval %.15g", it, pl.done, got);
        for (int i = 0, a = 0; i < k; a += len[i], i++) {
            EXPECT(r.max_stall_s <= 0 || chunk_plan_cloud(&c, r.pos0 + a, len[i]) <= r.max_stall_s * (1 + 1e-12),
                   "brute %d: chunk %d over the stall bound", it, i);
        }
        if (r.max_stall_s > 0)
            EXPECT(pl.stall_bound == (want > want_free * (1 + 1e-12) ? 1 : pl.stall_bound), "brute %d: binds flag", it);
    }
    EXPECT(cases > 250, "brute: only %d feasible cases", cases);
    EXPECT(!worst_pruned, "brute: the state cap was reached");
    printf("brute: %d cases equal to enumeration\n", cases);
}

static void test_closed(void) {
    const double a_s[] = {0.01, 0.05, 0.002}, b_s[] = {0.001, 0.0002, 0.003};
    const int ns[] = {37, 100, 256, 1000};
    for (int ia = 0; ia < 3; ia++)
        for (int in = 0; in < 4; in++) {
            double a = a_s[ia], b = b_s[ia];
            int n = ns[in];
            chunk_cost c;
            memset(&c, 0, sizeof c);
            c.dev_c0 = c.tx_c0 = c.cl_c0 = a;
            c.dev_c1 = c.tx_c1 = c.cl_c1 = b;
            double opt = INFINITY;
            int kopt = 0;
            for (int k = 1; k <= n; k++) {
                double t = k * a + b * n + 2 * (a + b * ((n + k - 1) / k));
                if (t < opt - 1e-15) { opt = t; kopt = k; }
            }
            chunk_req r = {n, 0, 1, 1, 0, 0};
            int len[1024];
            chunk_plan pl;
            int k = chunk_plan_solve(&c, &r, len, 1024, &pl);
            double got = chunk_plan_eval(&c, 0, len, k, NULL);
            int mx = 0, mn = n;
            for (int i = 0; i < k; i++) { mx = len[i] > mx ? len[i] : mx; mn = len[i] < mn ? len[i] : mn; }
            EXPECT(fabs(got - opt) < 1e-9, "closed a %g b %g n %d: plan %.12g (k %d), optimum %.12g (k %d)", a, b, n,
                   got, k, opt, kopt);
            EXPECT(mx == (n + k - 1) / k, "closed n %d: largest chunk %d, ceil(n/k) %d", n, mx, (n + k - 1) / k);
            double kstar = sqrt(2 * b * n / a);
            EXPECT(fabs(k - kstar) <= kstar * 0.5 + 2, "closed n %d: k %d far from sqrt(2bn/a) = %.2f", n, k, kstar);
        }
}

static void test_stall(void) {
    chunk_cost c;
    memset(&c, 0, sizeof c);
    c.dev_c1 = 1e-4; c.tx_c1 = 1e-4; c.lat = 0.02;
    c.cl_c0 = 0.005; c.cl_c1 = 5e-4; c.cl_c2 = 2e-7;
    chunk_req r = {4096, 0, 0, 2, 0, 0};
    int len[512];
    chunk_plan free_pl, pl;
    int k0 = chunk_plan_solve(&c, &r, len, 512, &free_pl);
    int big = 0;
    for (int i = 0; i < k0; i++) big = len[i] > big ? len[i] : big;
    r.max_stall_s = 0.1;
    int k = chunk_plan_solve(&c, &r, len, 512, &pl);
    EXPECT(k > 0, "stall: a plan");
    for (int i = 0, p = 0; i < k; p += len[i], i++)
        EXPECT(chunk_plan_cloud(&c, p, len[i]) <= 0.1 + 1e-12, "stall: chunk %d at %d of %d: %g s", i, p, len[i],
               chunk_plan_cloud(&c, p, len[i]));
    EXPECT(chunk_plan_cloud(&c, 0, big) > 0.1 ? pl.stall_bound == 1 : pl.stall_bound == 0,
           "stall: binds flag %d (unbounded largest chunk %d)", pl.stall_bound, big);
    EXPECT(pl.done >= free_pl.done - 1e-12, "stall: a bound cannot make it faster");
    r.max_stall_s = 1e-4; /* below one pass: cannot be met */
    k = chunk_plan_solve(&c, &r, len, 512, &pl);
    EXPECT(k > 0 && pl.stall_bound == 2, "stall: unmeetable bound: k %d flag %d", k, pl.stall_bound);
    printf("stall: unbounded %d chunks (largest %d) done %.3f s; bounded to 0.1 s: done %.3f s\n", k0, big,
           free_pl.done, pl.done);
}

static void test_limits(void) {
    chunk_cost c;
    memset(&c, 0, sizeof c);
    c.dev_c1 = 1e-3; c.tx_c1 = 1e-3; c.cl_c0 = 1e-3; c.cl_c1 = 1e-3;
    int len[4096];
    chunk_plan pl;
    chunk_req r = {1, 0, 0, 2, 0, 0};
    EXPECT(chunk_plan_solve(&c, &r, len, 8, &pl) == 1 && len[0] == 1, "limits: a one-token prompt is one chunk");
    r = (chunk_req){1000, 0, 0, 2, 40, 0};
    int k = chunk_plan_solve(&c, &r, len, 4096, &pl);
    int ok = k > 0, sum = 0;
    for (int i = 0; i < k; i++) { ok &= len[i] >= 2 && len[i] <= 40; sum += len[i]; }
    EXPECT(ok && sum == 1000, "limits: every chunk in [2, 40] (k %d, sum %d)", k, sum);
    EXPECT(chunk_plan_solve(&c, &r, len, 3, &pl) == -1, "limits: cap too small is -1");
    c.cl_c0 = 10; /* a huge per-pass cost: one chunk */
    r = (chunk_req){500, 0, 0, 2, 0, 0};
    EXPECT(chunk_plan_solve(&c, &r, len, 8, &pl) == 1 && len[0] == 500, "limits: costly passes give one chunk");
    r.n = 5000;
    k = chunk_plan_solve(&c, &r, len, 4096, &pl);
    EXPECT(k == 1 && pl.gran >= 5000 / CHUNK_PLAN_GRID, "limits: automatic grid %d", pl.gran);
}

static void test_speed(void) {
    chunk_cost c;
    memset(&c, 0, sizeof c);
    c.dev_c1 = 2e-3; c.dev_floor = 0.01; c.tx_c0 = 1e-4; c.tx_c1 = 2.4e-4; c.lat = 0.05;
    c.cl_c0 = 0.02; c.cl_c1 = 1.5e-3; c.cl_c2 = 4e-8; c.cloud_free = 0.1;
    chunk_req r = {4096, 0, 0, 2, 0, 0.2};
    int len[4096];
    chunk_plan pl;
    const int reps = 20;
    double t0 = now_s();
    for (int i = 0; i < reps; i++) chunk_plan_solve(&c, &r, len, 4096, &pl);
    double dt = (now_s() - t0) / reps;
    EXPECT(pl.k > 1 && !pl.pruned, "speed: plan k %d pruned %d", pl.k, pl.pruned);
    printf("speed: a 4096-token plan (grid %d, %d chunks): %.1f us (this machine; not asserted)\n", pl.gran, pl.k,
           dt * 1e6);
}

static void test_fit(void) {
    cost_fit f;
    cost_fit_init(&f);
    EXPECT(cost_fit_refit(&f) == -1, "fit: no samples");
    const double c0 = 0.004, c1 = 6e-4, c2 = 3e-8, c3 = 2e-6;
    for (int i = 0; i < 300; i++) { /* the window keeps the last 256 */
        double n = 1 + (i * 37) % 200, p = (i * 101) % 3000, s = cost_fit_context(p, n);
        double noise = 1 + 0.01 * (t_uniform() - 0.5);
        cost_fit_add(&f, n, s, (c0 + c1 * n + c2 * s + c3 * n * n) * noise);
    }
    EXPECT(f.count == COST_FIT_WINDOW && f.total == 300, "fit: window %d total %llu", f.count,
           (unsigned long long)f.total);
    EXPECT(cost_fit_refit(&f) == 0, "fit: refit");
    EXPECT(fabs(f.coef.c0 - c0) < 0.05 * c0 && fabs(f.coef.c1 - c1) < 0.03 * c1 && fabs(f.coef.c2 - c2) < 0.1 * c2 &&
           fabs(f.coef.c3 - c3) < 0.1 * c3, "fit: %g %g %g %g", f.coef.c0, f.coef.c1, f.coef.c2, f.coef.c3);
    EXPECT(f.coef.rms_rel < 0.01 && f.coef.max_rel < 0.006 && !f.coef.clamped, "fit: residuals %g %g",
           f.coef.rms_rel, f.coef.max_rel);
    /* one shape only: undetermined, the old fit kept */
    cost_fit g;
    cost_fit_init(&g);
    for (int i = 0; i < 10; i++) cost_fit_add(&g, 4, 100, 0.01);
    EXPECT(cost_fit_refit(&g) == -1 && g.coef.c1 == 0, "fit: one shape is undetermined");
    /* data with a negative intercept: clamped to 0, the others refitted, still non-negative */
    cost_fit_free(&g);
    cost_fit_init(&g);
    for (int i = 3; i <= 52; i++) cost_fit_add(&g, i, cost_fit_context(0, i), -0.002 + 1e-3 * i);
    EXPECT(cost_fit_refit(&g) == 0 && g.coef.clamped && g.coef.c0 == 0 && g.coef.c1 >= 0 && g.coef.c2 >= 0,
           "fit: clamp %d c0 %g c1 %g c2 %g", g.coef.clamped, g.coef.c0, g.coef.c1, g.coef.c2);
    cost_fit_add(&g, 5, 5, 0);     /* ignored: not a time */
    cost_fit_add(&g, 0, 5, 1);     /* ignored: no tokens */
    EXPECT(g.count == 50, "fit: bad samples ignored (%d)", g.count);
    cost_fit_free(&g);
    cost_fit_free(&f);
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "all";
    int all = !strcmp(part, "all");
    if (all || !strcmp(part, "eval")) test_eval();
    if (all || !strcmp(part, "brute")) test_brute();
    if (all || !strcmp(part, "closed")) test_closed();
    if (all || !strcmp(part, "stall")) test_stall();
    if (all || !strcmp(part, "limits")) test_limits();
    if (all || !strcmp(part, "speed")) test_speed();
    if (all || !strcmp(part, "fit")) test_fit();
    return test_summary();
}
