/* Speculative decoding against its specification (Leviathan et al., arXiv 2211.17192):
 *   greedy      the greedy rule on hand-made logits (all accepted + bonus, first / middle
 *               rejected, ties, gamma 0);
 *   dist_exact  the sampling rule is lossless: with a tiny target and draft "model" given as
 *               tables (context -> distribution over V = 4..5 tokens), the exact distribution
 *               of the first 3 emitted tokens, enumerated over every draft and accept/reject
 *               branch with the library's own accept probability and residual, equals the
 *               target's p(x1) p(x2|x1) p(x3|x1 x2); both deliberately broken rules do not;
 *   dist_mc     the same with the real sampling code (spec_draw drafts, spec_accept_sample
 *               verifies, continue from the emitted tokens), 200k runs per case, chi-square
 *               against the exact target: the correct rule passes (p > 1e-4), both broken rules
 *               are rejected (p < 1e-6);
 *   gamma       the adaptive draft length: E(g), the argmax rule against a brute force, larger
 *               gamma for high alpha / long links, monotone in t_fixed, bounds, the controller's
 *               acceptance estimate (unbiased over tested tokens) and determinism;
 *   sampler     sampler_dense_probs is exactly sampler_probs scattered, and what sampler_sample
 *               and spec_draw draw (chi-square);
 *   tinymodel   the synthetic GGUF (tests/support/tinymodel.h) loads (F32, F16, Q8_0), its tokenizer
 *               works, layer split [0,k)+[k,L) equals [0,L) bit for bit (and prompt chunks
 *               with Q8_0), its temperature-1
 *               distribution is non-degenerate, and greedy speculative decoding with it (a Q8_0
 *               target, its first 2 layers as the draft) gives exactly the target's greedy tokens.
 * Usage: test_speculate [greedy|dist_exact|dist_mc|gamma|sampler|tinymodel|all] */
#include "core/common.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "core/rng.h"
#include "engine/sampler.h"
#include "split/speculate.h"
#include "support/testutil.h"
#include "support/tinymodel.h"
#include "engine/tokenizer.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
static void test_greedy(void) {
    enum { V = 5, G = 3 };
    /* argmax per row: 2, 0, 4, 1 */
    const float lg[(G + 1) * V] = {
        0.1f, 0.2f, 3.0f, -1.0f, 0.0f,
        2.0f, 1.0f, 1.5f, 0.0f, -2.0f,
        0.0f, 0.0f, 0.0f, 0.0f, 0.5f,
        -1.0f, 4.0f, 3.9f, 0.0f, 0.0f,
    };
    int32_t out[G + 1];
    int n = spec_accept_greedy(lg, V, (int32_t[]){2, 0, 4}, G, out);
    EXPECT(n == 4 && out[0] == 2 && out[1] == 0 && out[2] == 4 && out[3] == 1, "all accepted + bonus: n %d", n);
    n = spec_accept_greedy(lg, V, (int32_t[]){3, 0, 4}, G, out);
    EXPECT(n == 1 && out[0] == 2, "first rejected: n %d out[0] %d", n, out[0]);
    n = spec_accept_greedy(lg, V, (int32_t[]){2, 1, 4}, G, out);
    EXPECT(n == 2 && out[0] == 2 && out[1] == 0, "middle rejected: n %d", n);
    n = spec_accept_greedy(lg, V, (int32_t[]){2, 0, 3}, G, out);
    EXPECT(n == 3 && out[0] == 2 && out[1] == 0 && out[2] == 4, "last rejected: n %d", n);
    n = spec_accept_greedy(lg, V, NULL, 0, out);
    EXPECT(n == 1 && out[0] == 2, "gamma 0: just the target's token");
    /* ties: row 0 has 1 and 3 equal: the lowest index is the target's choice */
    const float tie[2 * V] = {0.0f, 2.0f, 1.0f, 2.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    n = spec_accept_greedy(tie, V, (int32_t[]){3}, 1, out);
    EXPECT(n == 1 && out[0] == 1, "tie: the higher tied index is rejected, the lowest emitted (n %d, %d)", n, out[0]);
    n = spec_accept_greedy(tie, V, (int32_t[]){1}, 1, out);
    EXPECT(n == 2 && out[0] == 1 && out[1] == 0, "tie: the lowest tied index is accepted; all-equal row -> 0");
}

/* ---------------------------------------------------------------------------------------- */
/* table "models": a distribution over V tokens for every context of length < LMAX */
enum { VMAX = 5, LMAX = 7, GMAX = 3, K = 3 };
typedef struct {
    const char *name;
    int V;
    double spread;    /* logits uniform in [-spread, spread] */
    double lambda;    /* q = lambda p + (1 - lambda) r */
    double pz, qz;    /* chance that a context's p (q) has one token zeroed */
    uint64_t seed;
    float *p, *q;     /* (n_ctx, V) */
    int off[LMAX + 1];
} tcase;

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double u01(uint64_t *s) { *s = mix64(*s); return (double)(*s >> 11) / 9007199254740992.0; }

/* random distribution with one token zeroed with chance pz */
static void rand_dist(uint64_t *s, int V, double spread, double pz, double *out) {
    for (int i = 0; i < V; i++) out[i] = exp(spread * (2.0 * u01(s) - 1.0));
    if (u01(s) < pz) out[(int)(u01(s) * V)] = 0.0;
    double z = 0;
    for (int i = 0; i < V; i++) z += out[i];
    for (int i = 0; i < V; i++) out[i] /= z;
}

static void tcase_build(tcase *c) {
    c->off[0] = 0;
    int pw = 1;
    for (int n = 0; n < LMAX; n++) { c->off[n + 1] = c->off[n] + pw; pw *= c->V; }
    const int nctx = c->off[LMAX];
    c->p = xmalloc((size_t)nctx * c->V * sizeof(float));
    c->q = xmalloc((size_t)nctx * c->V * sizeof(float));
    for (int i = 0; i < nctx; i++) {
        uint64_t s = mix64(c->seed ^ mix64((uint64_t)i));
        double p[VMAX], r[VMAX], q[VMAX], z = 0;
        rand_dist(&s, c->V, c->spread, c->pz, p);
        rand_dist(&s, c->V, c->spread, c->qz, r);
        for (int t = 0; t < c->V; t++) z += q[t] = c->lambda * p[t] + (1.0 - c->lambda) * r[t];
        if (u01(&s) < c->qz) {   /* the draft misses a token the target may want */
            const int t = (int)(u01(&s) * c->V);
            if (z - q[t] > 0) { z -= q[t]; q[t] = 0; }
        }
        for (int t = 0; t < c->V; t++) {
            c->p[(size_t)i * c->V + t] = (float)p[t];
            c->q[(size_t)i * c->V + t] = (float)(q[t] / z);
        }
    }
}
static void tcase_free(tcase *c) { free(c->p); free(c->q); }

static int ctx_index(const tcase *c, const int32_t *ctx, int n) {
    CHECK(n < LMAX, "context %d too long", n);
    int idx = 0;
    for (int i = 0; i < n; i++) idx = idx * c->V + ctx[i];
    return c->off[n] + idx;
}
static const float *P(const tcase *c, const int32_t *ctx, int n) { return c->p + (size_t)ctx_index(c, ctx, n) * c->V; }
static const float *Q(const tcase *c, const int32_t *ctx, int n) { return c->q + (size_t)ctx_index(c, ctx, n) * c->V; }

static int cells(const tcase *c) { return c->V * c->V * c->V; }
static int seq_cell(const tcase *c, const int32_t *s) { return (s[0] * c->V + s[1]) * c->V + s[2]; }

/* the target's own distribution of the first K tokens */
static void target_joint(const tcase *c, double *t) {
    int32_t s[K];
    for (int a = 0; a < c->V; a++)
        for (int b = 0; b < c->V; b++)
            for (int d = 0; d < c->V; d++) {
                s[0] = a; s[1] = b; s[2] = d;
                t[seq_cell(c, s)] = (double)P(c, s, 0)[a] * P(c, s, 1)[b] * P(c, s, 2)[d];
            }
}

/* Enumerates the speculative process: seq[0..n) emitted so far, j = drafts already accepted in
 * the current round, w = probability of this branch. Drafts beyond the first rejection do not
 * matter, so a round is a chain: draft x ~ q(seq) and accept it (-> j+1), or reject (a mass
 * independent of which x was rejected) and emit a residual token (-> new round), or, at j ==
 * gamma, emit a bonus token from p (-> new round). */
static void enumerate(const tcase *c, int gamma, spec_rule rule, int32_t *seq, int n, int j, double w, double *hist) {
    if (w == 0.0) return;
    if (n >= K) { hist[seq_cell(c, seq)] += w; return; }
    const float *pr = P(c, seq, n);
    if (j == gamma) {
        for (int t = 0; t < c->V; t++) { seq[n] = t; enumerate(c, gamma, rule, seq, n + 1, 0, w * pr[t], hist); }
        return;
    }
    const float *qr = Q(c, seq, n);
    double rej = 0.0;
    for (int x = 0; x < c->V; x++) {
        if (!(qr[x] > 0.0f)) continue;
        const double a = spec_accept_prob(pr[x], qr[x], rule);
        seq[n] = x;
        enumerate(c, gamma, rule, seq, n + 1, j + 1, w * qr[x] * a, hist);
        rej += qr[x] * (1.0 - a);
    }
    float res[VMAX];
    spec_residual(pr, qr, c->V, rule, res);
    for (int t = 0; t < c->V; t++) { seq[n] = t; enumerate(c, gamma, rule, seq, n + 1, 0, w * rej * res[t], hist); }
}

static tcase g_cases[] = {
    {"moderate draft V5", 5, 1.5, 0.5, 0.3, 0.3, 11, NULL, NULL, {0}},
    {"independent draft V4", 4, 2.0, 0.0, 0.2, 0.2, 22, NULL, NULL, {0}},
    {"close draft V5", 5, 1.0, 0.85, 0.0, 0.0, 33, NULL, NULL, {0}},
    {"many zeros V4", 4, 2.5, 0.3, 0.6, 0.6, 44, NULL, NULL, {0}},
};
#define N_CASES (int)(sizeof g_cases / sizeof *g_cases)
static const char *const rule_name[] = {"leviathan", "broken-resample-target", "broken-accept-always"};

static void test_dist_exact(void) {
    for (int ci = 0; ci < N_CASES; ci++) {
        tcase *c = &g_cases[ci];
        tcase_build(c);
        double tgt[VMAX * VMAX * VMAX], got[VMAX * VMAX * VMAX];
        target_joint(c, tgt);
        for (int gamma = 1; gamma <= GMAX; gamma++)
            for (int rule = 0; rule < 3; rule++) {
                memset(got, 0, sizeof got);
                int32_t seq[K + 1];
                enumerate(c, gamma, (spec_rule)rule, seq, 0, 0, 1.0, got);
                double dmax = 0, sum = 0;
                for (int i = 0; i < cells(c); i++) { dmax = fmax(dmax, fabs(got[i] - tgt[i])); sum += got[i]; }
                printf("exact %-22s gamma %d %-24s max |P - target| %.2e (total %.9f)\n", c->name, gamma,
                       rule_name[rule], dmax, sum);
                EXPECT(fabs(sum - 1.0) < 1e-5, "%s gamma %d %s: total probability %.9f", c->name, gamma,
                       rule_name[rule], sum);
                if (rule == SPEC_RULE_LEVIATHAN)
                    EXPECT(dmax < 2e-6, "%s gamma %d: speculative distribution differs from the target by %.2e",
                           c->name, gamma, dmax);
                else
                    EXPECT(dmax > 1e-3, "%s gamma %d: broken rule %s not told apart (max diff %.2e)", c->name,
                           gamma, rule_name[rule], dmax);
            }
        tcase_free(c);
    }
}

/* Pearson chi-square of counts against probabilities; cells expected below 5 are pooled.
 * Counts in zero-probability cells make the p-value 0. */
static double chisq_pvalue(const long *obs, const double *prob, int n, long N, double *chi2_out, int *dof_out) {
    double chi2 = 0, pool_e = 0;
    long pool_o = 0, outside = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const double e = prob[i] * (double)N;
        if (prob[i] <= 0) { outside += obs[i]; continue; }
        if (e < 5) { pool_e += e; pool_o += obs[i]; continue; }
        chi2 += (obs[i] - e) * (obs[i] - e) / e;
        k++;
    }
    if (pool_e > 0) { chi2 += (pool_o - pool_e) * (pool_o - pool_e) / pool_e; k++; }
    *chi2_out = chi2;
    *dof_out = k - 1;
    if (outside) return 0.0;
    return k > 1 ? gsl_cdf_chisq_Q(chi2, k - 1) : 1.0;
}

static void test_dist_mc(void) {
    const long N = 200000;
    float *scratch = xmalloc(VMAX * sizeof(float));
    for (int ci = 0; ci < N_CASES; ci++) {
        tcase *c = &g_cases[ci];
        tcase_build(c);
        const int V = c->V;
        double tgt[VMAX * VMAX * VMAX];
        target_joint(c, tgt);
        for (int gamma = 1; gamma <= GMAX; gamma++)
            for (int rule = 0; rule < 3; rule++) {
                const double t0 = hat_now();
                rng *r = rng_new(1000 + 100 * (uint64_t)ci + 10 * (uint64_t)gamma + (uint64_t)rule);
                long hist[VMAX * VMAX * VMAX] = {0}, rounds = 0, emitted = 0;
                for (long it = 0; it < N; it++) {
                    int32_t seq[K + GMAX + 1], draft[GMAX], out[GMAX + 1];
                    float p[(GMAX + 1) * VMAX], q[GMAX * VMAX];
                    int n = 0;
                    while (n < K) {
                        /* the draft proposes gamma tokens after seq[0..n) */
                        for (int j = 0; j < gamma; j++) {
                            memcpy(q + j * V, Q(c, seq, n + j), (size_t)V * sizeof(float));
                            seq[n + j] = draft[j] = spec_draw(q + j * V, V, rng_uniform(r));
                        }
                        /* the target scores every prefix (seq[n..] holds the drafts) */
                        for (int j = 0; j <= gamma; j++) memcpy(p + j * V, P(c, seq, n + j), (size_t)V * sizeof(float));
                        const int m = spec_accept_sample(p, q, V, draft, gamma, r, scratch, (spec_rule)rule, out);
                        memcpy(seq + n, out, (size_t)m * sizeof(int32_t));
                        n += m;
                        rounds++;
                        emitted += m;
                    }
                    hist[seq_cell(c, seq)]++;
                }
                rng_free(r);
                double chi2;
                int dof;
                const double pv = chisq_pvalue(hist, tgt, cells(c), N, &chi2, &dof);
                printf("mc    %-22s gamma %d %-24s chi2 %10.1f dof %3d p %.3g (%.2f tokens/round, %.2f s)\n", c->name,
                       gamma, rule_name[rule], chi2, dof, pv, (double)emitted / rounds, hat_now() - t0);
                if (rule == SPEC_RULE_LEVIATHAN)
                    EXPECT(pv > 1e-4, "%s gamma %d: correct rule rejected, p = %.3g", c->name, gamma, pv);
                else
                    EXPECT(pv < 1e-6, "%s gamma %d: broken rule %s passed, p = %.3g", c->name, gamma, rule_name[rule], pv);
            }
        tcase_free(c);
    }
    free(scratch);
}

/* ---------------------------------------------------------------------------------------- */
static int brute_best(double alpha, double td, double tf, int gmin, int gmax) {
    int best = gmin;
    double br = -1;
    for (int g = gmin; g <= gmax; g++) {
        const double e = alpha < 1 ? (1 - pow(alpha, g + 1)) / (1 - alpha) : g + 1;
        const double rate = e / (tf + g * td);
        if (rate > br * (1 + 1e-9)) { br = rate; best = g; }
    }
    return best;
}

static void test_gamma(void) {
    EXPECT(fabs(spec_expected_tokens(0.8, 4) - 3.3616) < 1e-12, "E(4) at alpha 0.8 = %.6f", spec_expected_tokens(0.8, 4));
    EXPECT(spec_expected_tokens(1.0, 5) == 6.0 && spec_expected_tokens(0.0, 5) == 1.0, "E at alpha 1 and 0");
    int mismatch = 0, out_of_bounds = 0, non_monotone = 0;
    for (int ai = 0; ai <= 20; ai++) {
        const double alpha = ai / 20.0;
        int prev = 0;
        for (int ti = 0; ti <= 60; ti++) {
            const double tf = 1e-4 * pow(10.0, ti / 10.0), td = 5e-3;   /* 0.1 ms .. 100 s link+cloud */
            const int g = spec_gamma_best(alpha, td, tf, 1, 16);
            mismatch += g != brute_best(alpha, td, tf, 1, 16);
            out_of_bounds += g < 1 || g > 16;
            non_monotone += g < prev;
            prev = g;
        }
    }
    EXPECT(!mismatch, "the rule disagrees with the brute-force argmax %d times", mismatch);
    EXPECT(!out_of_bounds, "gamma out of bounds %d times", out_of_bounds);
    EXPECT(!non_monotone, "gamma decreased with a longer link %d times", non_monotone);
    const int hi_long = spec_gamma_best(0.9, 5e-3, 0.2, 1, 16), lo_long = spec_gamma_best(0.3, 5e-3, 0.2, 1, 16);
    const int hi_short = spec_gamma_best(0.9, 5e-3, 2e-3, 1, 16);
    EXPECT(hi_long > lo_long && hi_long > hi_short, "gamma: alpha 0.9 link 200 ms %d, alpha 0.3 %d, alpha 0.9 2 ms %d",
           hi_long, lo_long, hi_short);
    EXPECT(spec_gamma_best(0.0, 5e-3, 0.1, 2, 9) == 2, "alpha 0: the minimum");
    EXPECT(spec_gamma_best(1.0, 0.0, 0.1, 2, 9) == 9, "free perfect drafts: the maximum");
    EXPECT(spec_gamma_best(0.99, 5e-3, 100.0, 2, 9) == 9, "bounded above");
    EXPECT(spec_gamma_best(0.5, 1.0, 1e-3, 3, 9) == 3, "bounded below");
    printf("best gamma, t_draft 5 ms, alpha 0.5/0.7/0.8/0.9 by t_fixed:\n");
    const double tfs[] = {0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0};
    for (size_t i = 0; i < sizeof tfs / sizeof *tfs; i++)
        printf("  t_fixed %6.3f s: %2d %2d %2d %2d\n", tfs[i], spec_gamma_best(0.5, 5e-3, tfs[i], 1, 32),
               spec_gamma_best(0.7, 5e-3, tfs[i], 1, 32), spec_gamma_best(0.8, 5e-3, tfs[i], 1, 32),
               spec_gamma_best(0.9, 5e-3, tfs[i], 1, 32));

    /* the controller: a simulated draft with per-token acceptance 0.7 */
    spec_gamma_ctl c, c2;
    spec_gamma_init(&c, 1, 12);
    EXPECT(spec_gamma_next(&c) == 4, "first gamma %d", spec_gamma_next(&c));
    spec_gamma_init(&c2, 6, 12);
    EXPECT(spec_gamma_next(&c2) == 6, "first gamma clamped to the minimum");
    c.decay = 1.0;   /* keep every round: the estimate must converge to the true rate */
    spec_gamma_init(&c2, 1, 12);
    long acc_all = 0, drafted_all = 0;
    for (int round = 0; round < 4000; round++) {
        const int g = 4;
        int a = 0;
        while (a < g && t_uniform() < 0.7) a++;
        acc_all += a;
        drafted_all += g;
        spec_gamma_update(&c, g, a, 5e-3, 0.1);
        spec_gamma_update(&c2, g, a, 5e-3, 0.1);
    }
    const double est = spec_gamma_alpha(&c), naive = (double)acc_all / drafted_all;
    printf("controller: alpha 0.7 estimated %.4f (accepted/drafted would say %.4f); decayed estimate %.3f; gamma %d\n",
           est, naive, spec_gamma_alpha(&c2), spec_gamma_next(&c2));
    EXPECT(fabs(est - 0.7) < 0.02, "acceptance estimate %.4f for a true 0.7", est);
    EXPECT(naive < 0.65, "the naive estimate should be biased low (%.4f) — test premise", naive);
    EXPECT(fabs(spec_gamma_alpha(&c2) - 0.7) < 0.15, "decayed estimate %.3f", spec_gamma_alpha(&c2));
    EXPECT(spec_gamma_next(&c2) == spec_gamma_best(spec_gamma_alpha(&c2), 5e-3, 0.1, 1, 12), "next = rule(estimates)");
    /* a worse link moves gamma up, a collapsing acceptance moves it down */
    spec_gamma_ctl d = c2;
    for (int i = 0; i < 50; i++) spec_gamma_update(&d, 4, 3, 5e-3, 1.0);
    EXPECT(spec_gamma_next(&d) > spec_gamma_next(&c2), "slow link: gamma %d -> %d", spec_gamma_next(&c2),
           spec_gamma_next(&d));
    d = c2;
    for (int i = 0; i < 100; i++) spec_gamma_update(&d, 4, 0, 5e-3, 0.1);
    EXPECT(spec_gamma_next(&d) == 1, "nothing accepted: gamma %d (alpha %.3f)", spec_gamma_next(&d), spec_gamma_alpha(&d));
    /* deterministic: the same updates, the same answers */
    spec_gamma_ctl e1, e2;
    spec_gamma_init(&e1, 1, 8);
    spec_gamma_init(&e2, 1, 8);
    int same = 1;
    for (int i = 0; i < 200; i++) {
        const int a = i * 7 % 5, dt = 1 + i % 3;
        spec_gamma_update(&e1, 4, a, 1e-3 * dt, 0.02 * dt);
        spec_gamma_update(&e2, 4, a, 1e-3 * dt, 0.02 * dt);
        same &= spec_gamma_next(&e1) == spec_gamma_next(&e2);
    }
    EXPECT(same, "controller not deterministic");
    spec_gamma_update(&e1, 4, 2, NAN, -1.0);   /* bad timings are ignored */
    EXPECT(e1.t_draft == e2.t_draft && e1.t_fixed == e2.t_fixed, "bad timings must be ignored");
}

/* ---------------------------------------------------------------------------------------- */
static void test_sampler(void) {
    enum { V = 12 };
    const float l[V] = {1.0f, 2.5f, 0.3f, 2.5f, -1.0f, 0.9f, 1.7f, -0.2f, 0.0f, 3.1f, 1.2f, -2.0f};
    const sampler_params ps[] = {
        {0.0f, 0, 1.0f, 5}, {1.0f, 0, 1.0f, 6}, {0.7f, 5, 1.0f, 7}, {1.3f, 0, 0.8f, 8}, {1.0f, 3, 0.9f, 9},
    };
    char err[HAT_ERRLEN];
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) {
        sampler *s;
        CHECK(sampler_init(&s, &ps[k], V, err, sizeof err) == HAT_OK, "%s", err);
        int32_t ids[V];
        float probs[V], dense[V];
        const int n = sampler_probs(s, l, ids, probs);
        sampler_dense_probs(s, l, dense);
        int exact = 1, zeros = 0;
        for (int i = 0; i < n; i++) exact &= dense[ids[i]] == probs[i];
        for (int i = 0; i < V; i++) zeros += dense[i] == 0.0f;
        EXPECT(exact && zeros == V - n, "params %zu: dense vector is not sampler_probs scattered", k);
        EXPECT(sampler_is_greedy(s) == (ps[k].temp <= 0) && sampler_rng(s), "params %zu: greedy flag / rng", k);
        if (ps[k].temp <= 0) EXPECT(dense[9] == 1.0f && zeros == V - 1, "greedy: one-hot on the argmax");
        /* what sampler_sample and spec_draw draw, against dense */
        const long N = 100000;
        long cs[V] = {0}, cd[V] = {0};
        double pd[V];
        for (int i = 0; i < V; i++) pd[i] = dense[i];
        rng *r = rng_new(4242 + k);
        for (long i = 0; i < N; i++) { cs[sampler_sample(s, l)]++; cd[spec_draw(dense, V, rng_uniform(r))]++; }
        rng_free(r);
        double c1, c2;
        int d1, d2;
        const double p1 = chisq_pvalue(cs, pd, V, N, &c1, &d1), p2 = chisq_pvalue(cd, pd, V, N, &c2, &d2);
        printf("sampler T %.1f k %d p %.1f: sampler_sample chi2 %.1f (dof %d, p %.3g), spec_draw chi2 %.1f (p %.3g)\n",
               ps[k].temp, ps[k].top_k, ps[k].top_p, c1, d1, p1, c2, p2);
        EXPECT(p1 > 1e-4 && p2 > 1e-4, "params %zu: draws differ from the dense distribution (p %.3g, %.3g)", k, p1, p2);
        sampler_free(s);
    }
    /* spec_draw edges: u past a rounded-down total, zero entries never drawn */
    const float pz[4] = {0.0f, 0.5f, 0.49999f, 0.0f};
    EXPECT(spec_draw(pz, 4, 0.0) == 1 && spec_draw(pz, 4, 0.5) == 2 && spec_draw(pz, 4, 0.9999999) == 2,
           "spec_draw: inverse CDF / rounding");
    const float none[3] = {0, 0, 0};
    EXPECT(spec_draw(none, 3, 0.3) == 0, "spec_draw: all zero -> 0");
    /* the rule's pieces */
    EXPECT(spec_accept_prob(0.2f, 0.4f, SPEC_RULE_LEVIATHAN) == 0.5 && spec_accept_prob(0.5f, 0.4f, SPEC_RULE_LEVIATHAN) == 1.0 &&
           spec_accept_prob(0.0f, 0.4f, SPEC_RULE_LEVIATHAN) == 0.0 && spec_accept_prob(0.1f, 0.0f, SPEC_RULE_LEVIATHAN) == 1.0 &&
           spec_accept_prob(0.0f, 0.4f, SPEC_RULE_BROKEN_ACCEPT_ALWAYS) == 1.0, "spec_accept_prob");
    const float p3[3] = {0.5f, 0.3f, 0.2f}, q3[3] = {0.2f, 0.6f, 0.2f};
    float res[3];
    spec_residual(p3, q3, 3, SPEC_RULE_LEVIATHAN, res);
    EXPECT(fabsf(res[0] - 1.0f) < 1e-6f && res[1] == 0.0f && res[2] == 0.0f, "residual norm(max(0, p - q))");
    spec_residual(p3, p3, 3, SPEC_RULE_LEVIATHAN, res);
    EXPECT(res[0] == p3[0] && res[1] == p3[1] && res[2] == p3[2], "residual of p == q is p");
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
    model *m;
    forward_state fs;
    kvcache kv;
} engine;

static int engine_open(engine *e, const char *path, model_weights_mode mode, int max_tok, char *err, size_t errlen) {
    memset(e, 0, sizeof *e);
    int rc = model_load(&e->m, path, &(model_part){.l0 = 0, .l1 = -1, .embed = 1, .head = 1, .weights = mode}, err, errlen);
    if (rc) return rc;
    const model_config *c = &e->m->cfg;
    if ((rc = forward_init(&e->fs, e->m, max_tok, c->n_ctx_train, max_tok, 2, err, errlen))) return rc;
    return kvcache_init(&e->kv, 0, c->n_layer, c->n_ctx_train, c->kv_dim, err, errlen);
}
static void engine_close(engine *e) {
    kvcache_free(&e->kv);
    forward_free(&e->fs);
    model_free(e->m);
}

static int count_above(const float *logits, int V, double thr, double *pmax, double *entropy) {
    double mx = logits[0], z = 0, h = 0;
    for (int i = 1; i < V; i++) mx = fmax(mx, logits[i]);
    for (int i = 0; i < V; i++) z += exp(logits[i] - mx);
    int n = 0;
    *pmax = 0;
    for (int i = 0; i < V; i++) {
        const double p = exp(logits[i] - mx) / z;
        n += p > thr;
        *pmax = fmax(*pmax, p);
        h -= p > 0 ? p * log(p) : 0;
    }
    *entropy = h;
    return n;
}

static int files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        const int x = fgetc(fa), y = fgetc(fb);
        if (x != y) eq = 0;
        if (x == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

/* Greedy speculative decoding with the tiny model: draft = dr, target = tg (decode numerics in the
 * verification pass). The committed tokens are tok[0..n); both caches hold positions [0, n-1)
 * at the start of a round (the last committed token is fed by the round itself). */
static int spec_greedy_generate(engine *tg, engine *dr, const int32_t *prompt, int n_prompt, int n_gen, int gamma,
                                int32_t *tok, int *n_acc, int *n_drafted) {
    const int V = tg->m->cfg.n_vocab;
    memcpy(tok, prompt, (size_t)n_prompt * sizeof(int32_t));
    int n = n_prompt;
    forward_run(tg->m, &tg->kv, &tg->fs, &(forward_args){.tokens = tok, .n_tok = n - 1, .l1 = tg->m->cfg.n_layer});
    forward_run(dr->m, &dr->kv, &dr->fs, &(forward_args){.tokens = tok, .n_tok = n - 1, .l1 = dr->m->cfg.n_layer});
    *n_acc = *n_drafted = 0;
    while (n < n_prompt + n_gen) {
        int32_t seq[16], out[16];
        /* a round emits up to g+1 tokens: never more than asked for */
        const int left = n_prompt + n_gen - n, g = gamma < left - 1 ? gamma : left - 1;
        /* draft: catch the draft cache up to n-1 committed tokens, then g greedy tokens */
        seq[0] = tok[n - 1];
        int pos = dr->kv.n;
        forward_args da = {.tokens = tok + pos, .n_tok = n - pos, .pos0 = pos, .l0 = 0, .l1 = dr->m->cfg.n_layer, .head = 1};
        for (int j = 0; j < g; j++) {
            forward_run(dr->m, &dr->kv, &dr->fs, &da);
            seq[j + 1] = sampler_argmax(dr->fs.logits, V);
            da = (forward_args){.tokens = seq + j + 1, .n_tok = 1, .pos0 = n + j, .l0 = 0, .l1 = dr->m->cfg.n_layer, .head = 1};
        }
        /* verify: one target pass over the last committed token and the g drafts */
        forward_args va = {.tokens = seq, .n_tok = g + 1, .pos0 = n - 1, .l0 = 0, .l1 = tg->m->cfg.n_layer, .head = 1,
                           .logits_all = 1, .decode = 1};
        forward_run(tg->m, &tg->kv, &tg->fs, &va);
        const int m = spec_accept_greedy(tg->fs.logits, V, seq + 1, g, out);
        *n_acc += m - 1;
        *n_drafted += g;
        memcpy(tok + n, out, (size_t)m * sizeof(int32_t));
        n += m;
        /* roll back: both caches keep only committed positions [0, n-1) */
        kvcache_truncate(&tg->kv, n - 1);
        if (dr->kv.n > n - 1) kvcache_truncate(&dr->kv, n - 1);
    }
    return n;
}

static void test_tinymodel(void) {
    char err[HAT_ERRLEN], path[64], path2[64];
    snprintf(path, sizeof path, "spec_tinymodel_%d.gguf", (int)getpid());
    snprintf(path2, sizeof path2, "spec_tinymodel_%d_b.gguf", (int)getpid());
    tinymodel_params tp;
    tinymodel_defaults(&tp);
    double t0 = hat_now();
    EXPECT(tinymodel_write(path, &tp, err, sizeof err) == HAT_OK, "write: %s", err);
    printf("tinymodel: wrote %s in %.3f s\n", path, hat_now() - t0);

    /* metadata and vocabulary */
    gguf_file *f;
    CHECK(gguf_open(&f, path, err, sizeof err) == HAT_OK, "%s", err);
    model_config mc;
    EXPECT(model_read_config(f, &mc, err, sizeof err) == HAT_OK, "config: %s", err);
    EXPECT(mc.n_vocab == 8 && mc.dim == 128 && mc.n_head == 2 && mc.n_head_kv == 1 && mc.head_dim == 64 &&
           mc.ffn_dim == 256 && mc.n_layer == 4 && mc.n_ctx_train == 64 && mc.rope_base == 10000.0f &&
           mc.norm_eps == 1e-5f, "hyper-parameters read back");
    tokenizer *tk = NULL;
    EXPECT(tokenizer_init(&tk, f, err, sizeof err) == HAT_OK, "tokenizer: %s", err);
    if (tk) {
        int32_t ids[8];
        int n = 0;
        EXPECT(tokenizer_encode(tk, "hbad", 4, 0, ids, 8, &n, err, sizeof err) == HAT_OK && n == 4 && ids[0] == 7 &&
               ids[1] == 1 && ids[2] == 0 && ids[3] == 3, "encode 'hbad' -> 7 1 0 3 (n %d): %s", n, err);
        char pc[8];
        EXPECT(tokenizer_piece(tk, 2, pc, sizeof pc) == 1 && pc[0] == 'c', "piece of 2");
        EXPECT(tokenizer_eos(tk) < 0 && tokenizer_bos(tk) < 0 && !tokenizer_is_eog(tk, 3), "no BOS/EOS by default");
        tokenizer_free(tk);
    }
    gguf_close(f);

    /* determinism of the bytes */
    EXPECT(tinymodel_write(path2, &tp, err, sizeof err) == HAT_OK && files_equal(path, path2), "same seed, same bytes");
    tp.seed = 2;
    EXPECT(tinymodel_write(path2, &tp, err, sizeof err) == HAT_OK && !files_equal(path, path2), "another seed differs");
    tinymodel_defaults(&tp);
    tp.n_head = 4;   /* head_dim 32 */
    EXPECT(tinymodel_write(path2, &tp, err, sizeof err) == HAT_ERR_ARG, "head_dim 32 must be refused");
    tinymodel_defaults(&tp);

    /* forward: layer split [0,k) + [k,L) == [0,L), for the fp32 reference and the in-place paths */
    enum { T = 24 };
    int32_t toks[T];
    for (int i = 0; i < T; i++) toks[i] = (int32_t)(i * 5 % 8 ^ i / 3 % 8);
    static float full[T * 8];
    for (int mode = 0; mode < 2; mode++) {
        engine e;
        CHECK(engine_open(&e, path, (model_weights_mode)mode, T, err, sizeof err) == HAT_OK, "%s", err);
        const int L = e.m->cfg.n_layer, V = e.m->cfg.n_vocab;
        forward_run(e.m, &e.kv, &e.fs, &(forward_args){.tokens = toks, .n_tok = T, .l1 = L, .head = 1, .logits_all = 1});
        memcpy(full, e.fs.logits, sizeof full);
        int split_ok = 1;
        for (int k = 1; k < L; k++) {
            kvcache_truncate(&e.kv, 0);
            forward_run(e.m, &e.kv, &e.fs, &(forward_args){.tokens = toks, .n_tok = T, .l0 = 0, .l1 = k});
            forward_run(e.m, &e.kv, &e.fs,
                                &(forward_args){.hidden_in = e.fs.x, .n_tok = T, .l0 = k, .l1 = L, .head = 1, .logits_all = 1});
            split_ok &= memcmp(full, e.fs.logits, sizeof full) == 0;
        }
        EXPECT(split_ok, "%s: layer split differs from the whole forward", mode ? "fp32" : "in place");
        /* prompt chunks [0,c) + [c,T) (the same call sizes > 1) */
        kvcache_truncate(&e.kv, 0);
        forward_run(e.m, &e.kv, &e.fs, &(forward_args){.tokens = toks, .n_tok = 10, .l1 = L, .head = 1, .logits_all = 1});
        float chunk[T * 8];
        memcpy(chunk, e.fs.logits, 10 * V * sizeof(float));
        forward_run(e.m, &e.kv, &e.fs,
                            &(forward_args){.tokens = toks + 10, .n_tok = T - 10, .pos0 = 10, .l1 = L, .head = 1, .logits_all = 1});
        memcpy(chunk + 10 * V, e.fs.logits, (T - 10) * V * sizeof(float));
        double dmax = 0;
        for (int i = 0; i < T * V; i++) dmax = fmax(dmax, fabs(chunk[i] - full[i]));
        /* F32 weights go through OpenBLAS sgemm, whose blocking depends on the row count: chunks
         * agree only up to rounding (the quantised in-place path is bit-exact: checked with Q8_0 below) */
        printf("tinymodel %s: prompt in chunks 10+14 vs whole: max |d logit| %.3g\n", mode ? "fp32" : "in place", dmax);
        EXPECT(dmax < 1e-2, "chunked prompt differs by %.3g", dmax);
        if (mode == 0) {
            /* the temperature-1 distribution at every position */
            int min_above = V, distinct = 0, seen[8] = {0};
            double worst_max = 0, hmin = 1e9;
            printf("tinymodel next-token distribution at temperature 1 (position: tokens > 5%%, max p, entropy nats):\n ");
            for (int t = 0; t < T; t++) {
                double pmax, h;
                const int nab = count_above(full + t * V, V, 0.05, &pmax, &h);
                min_above = nab < min_above ? nab : min_above;
                worst_max = fmax(worst_max, pmax);
                hmin = fmin(hmin, h);
                const int am = sampler_argmax(full + t * V, V);
                distinct += !seen[am];
                seen[am] = 1;
                printf(" %d:%d/%.2f/%.2f", t, nab, pmax, h);
            }
            printf("\n  min tokens > 5%%: %d, largest p %.3f, min entropy %.3f (uniform %.3f), %d distinct argmaxes\n",
                   min_above, worst_max, hmin, log(V), distinct);
            printf("  position 0 logits:");
            for (int i = 0; i < V; i++) printf(" %.3f", full[i]);
            printf("\n");
            EXPECT(min_above >= 3, "degenerate distribution: only %d tokens above 5%%", min_above);
            EXPECT(worst_max < 0.8, "a position puts %.3f on one token", worst_max);
            EXPECT(distinct >= 3, "the argmax hardly depends on the context (%d distinct)", distinct);
        }
        engine_close(&e);
    }

    /* other storage types load and agree with F32 up to their rounding */
    const ggml_type types[] = {GGML_TYPE_F16, GGML_TYPE_Q8_0};
    for (int ti = 0; ti < 2; ti++) {
        tp.wtype = types[ti];
        EXPECT(tinymodel_write(path2, &tp, err, sizeof err) == HAT_OK, "write %s: %s", gguf_type_name(types[ti]), err);
        engine e;
        CHECK(engine_open(&e, path2, MODEL_WEIGHTS_QUANT, T, err, sizeof err) == HAT_OK, "%s", err);
        EXPECT(e.m->output.type == types[ti] && e.m->layers[0].wq.type == types[ti], "stored as %s", gguf_type_name(types[ti]));
        forward_run(e.m, &e.kv, &e.fs,
                            &(forward_args){.tokens = toks, .n_tok = T, .l1 = e.m->cfg.n_layer, .head = 1, .logits_all = 1});
        double dmax = 0;
        int same_argmax = 0;
        float whole[T * 8];
        memcpy(whole, e.fs.logits, sizeof whole);
        for (int i = 0; i < T * 8; i++) dmax = fmax(dmax, fabs(e.fs.logits[i] - full[i]));
        if (types[ti] == GGML_TYPE_Q8_0) {   /* quantised in place: prompt chunks are bit-exact */
            kvcache_truncate(&e.kv, 0);
            int same = 1;
            for (int c0 = 0; c0 < T; c0 += 8) {
                forward_run(e.m, &e.kv, &e.fs, &(forward_args){.tokens = toks + c0, .n_tok = 8, .pos0 = c0,
                                                                       .l1 = e.m->cfg.n_layer, .head = 1, .logits_all = 1});
                same &= memcmp(e.fs.logits, whole + c0 * 8, 8 * 8 * sizeof(float)) == 0;
            }
            EXPECT(same, "Q8_0: prompt in chunks of 8 differs from the whole prompt");
        }
        for (int t = 0; t < T; t++) same_argmax += sampler_argmax(e.fs.logits + t * 8, 8) == sampler_argmax(full + t * 8, 8);
        printf("tinymodel %s: max |d logit| vs F32 %.4f, same argmax at %d/%d positions\n", gguf_type_name(types[ti]), dmax,
               same_argmax, T);
        EXPECT(dmax < (ti == 0 ? 0.02 : 0.2), "%s logits far from F32: %.4f", gguf_type_name(types[ti]), dmax);
        engine_close(&e);
    }
    tinymodel_defaults(&tp);
    tp.tied_output = 1;
    EXPECT(tinymodel_write(path2, &tp, err, sizeof err) == HAT_OK, "write tied: %s", err);
    {
        engine e;
        CHECK(engine_open(&e, path2, MODEL_WEIGHTS_QUANT, T, err, sizeof err) == HAT_OK, "%s", err);
        EXPECT(e.m->tied_output, "tied output");
        engine_close(&e);
    }

    /* greedy speculative decoding: a Q8_0 target, and as draft its first 2 layers (the same seed
     * with n_layer 2 is the truncated model): the output must be the target's own greedy
     * output, token for token */
    tinymodel_defaults(&tp);
    tp.wtype = GGML_TYPE_Q8_0;
    CHECK(tinymodel_write(path2, &tp, err, sizeof err) == HAT_OK, "%s", err);
    tp.n_layer = 2;
    CHECK(tinymodel_write(path, &tp, err, sizeof err) == HAT_OK, "%s", err);
    engine tg, dr, ref;
    CHECK(engine_open(&tg, path2, MODEL_WEIGHTS_QUANT, 16, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(engine_open(&ref, path2, MODEL_WEIGHTS_QUANT, 16, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(engine_open(&dr, path, MODEL_WEIGHTS_QUANT, 16, err, sizeof err) == HAT_OK, "%s", err);
    {   /* the truncation shares its tensors with the target */
        const qmat *a = &dr.m->layers[1].w_down, *b = &tg.m->layers[1].w_down;
        EXPECT(!memcmp(a->data, b->data, (size_t)a->rows * a->row_bytes) &&
               !memcmp(dr.m->output.data, tg.m->output.data, (size_t)tg.m->output.rows * tg.m->output.row_bytes),
               "a 2-layer model of the same seed must be the 4-layer one truncated");
    }
    enum { NP = 4, NG = 40 };
    const int32_t prompt[NP] = {3, 1, 4, 1};
    int32_t want[NP + NG], got[NP + NG + 16];
    memcpy(want, prompt, sizeof prompt);
    forward_run(ref.m, &ref.kv, &ref.fs, &(forward_args){.tokens = prompt, .n_tok = NP - 1, .l1 = 4});
    double min_gap = 1e9;
    for (int n = NP; n < NP + NG; n++) {
        forward_run(ref.m, &ref.kv, &ref.fs, &(forward_args){.tokens = want + n - 1, .n_tok = 1, .pos0 = n - 1, .l1 = 4, .head = 1});
        want[n] = sampler_argmax(ref.fs.logits, 8);
        float top = ref.fs.logits[want[n]], second = -1e30f;
        for (int i = 0; i < 8; i++) if (i != want[n] && ref.fs.logits[i] > second) second = ref.fs.logits[i];
        min_gap = fmin(min_gap, top - second);
    }
    for (int gamma = 1; gamma <= 6; gamma += 2) {
        kvcache_truncate(&tg.kv, 0);
        kvcache_truncate(&dr.kv, 0);
        int acc, drafted;
        t0 = hat_now();
        const int n = spec_greedy_generate(&tg, &dr, prompt, NP, NG, gamma, got, &acc, &drafted);
        printf("greedy speculative decoding, gamma %d: %d/%d drafts accepted, %.2f s; target top-2 gap >= %.3g\n", gamma,
               acc, drafted, hat_now() - t0, min_gap);
        EXPECT(n == NP + NG && memcmp(got, want, sizeof want) == 0, "gamma %d: speculative output differs from greedy", gamma);
        EXPECT(acc > 0 && acc < drafted, "gamma %d: the test should see both accepted and rejected drafts", gamma);
    }
    engine_close(&tg);
    engine_close(&dr);
    engine_close(&ref);
    remove(path);
    remove(path2);
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    const int all = strcmp(what, "all") == 0;
    int ran = 0;
    double t0 = hat_now();
    if (all || !strcmp(what, "greedy")) { test_greedy(); ran++; }
    if (all || !strcmp(what, "dist_exact")) { test_dist_exact(); ran++; }
    if (all || !strcmp(what, "dist_mc")) { test_dist_mc(); ran++; }
    if (all || !strcmp(what, "gamma")) { test_gamma(); ran++; }
    if (all || !strcmp(what, "sampler")) { test_sampler(); ran++; }
    if (all || !strcmp(what, "tinymodel")) { test_tinymodel(); ran++; }
    if (!ran) { fprintf(stderr, "test_speculate: unknown part '%s'\n", what); return 2; }
    printf("%s: %.2f s\n", what, hat_now() - t0);
    return test_summary();
}
