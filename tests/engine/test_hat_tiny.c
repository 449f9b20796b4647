/* test_hat_tiny.c — HAT's device code (hat_device.c: drafting with input submodel + adapter +
 * output submodel, verification through the middle submodel, acceptance, rollback) end to end on
 * a tiny synthetic LLaMA (tests/support/tinymodel.c) whose vocabulary of 8 tokens lets the target
 * distribution of the first tokens be computed exactly.
 *
 *   greedy   temperature 0: HAT's tokens equal the monolithic greedy tokens for gamma 0..8
 *   dist     temperature 1: over N runs with different seeds, the joint distribution of the
 *            first 3 emitted tokens matches the full model's exact distribution
 *            P(t1) P(t2 | t1) P(t3 | t1 t2) (chi-square, cells with expected count < 5 merged);
 *            the same test rejects the deliberately broken acceptance rules
 *            (SPEC_RULE_BROKEN_RESAMPLE_TARGET, SPEC_RULE_BROKEN_ACCEPT_ALWAYS).
 */
#include "core/common.h"
#include "engine/forward.h"
#include "split/hat_device.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "support/testutil.h"
#include "support/tinymodel.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define V 8
#define NT 3                 /* emitted tokens whose joint distribution is checked */
#define CELLS (V * V * V)

static const int32_t PROMPT[] = {1, 5, 2, 7, 3};
#define NP ((int)(sizeof PROMPT / sizeof PROMPT[0]))

/* exact joint distribution of the first NT sampled tokens of the whole model (temperature 1) */
static void exact_joint(const model *m, sampler *smp, double *joint) {
    char err[HAT_ERRLEN];
    kvcache kv;
    forward_state fs;
    CHECK(kvcache_init(&kv, 0, m->cfg.n_layer, 64, m->cfg.kv_dim, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(forward_init(&fs, m, 16, 64, 1, 1, err, sizeof err) == HAT_OK, "%s", err);
    float p1[V], p2[V], p3[V];
    forward_run(m, &kv, &fs, &(forward_args){.tokens = PROMPT, .n_tok = NP, .l0 = 0, .l1 = m->cfg.n_layer, .head = 1});
    sampler_dense_probs(smp, fs.logits, p1);
    for (int32_t a = 0; a < V; a++) {
        kvcache_truncate(&kv, NP);
        forward_run(m, &kv, &fs, &(forward_args){.tokens = &a, .n_tok = 1, .pos0 = NP, .l0 = 0, .l1 = m->cfg.n_layer, .head = 1});
        sampler_dense_probs(smp, fs.logits, p2);
        for (int32_t b = 0; b < V; b++) {
            kvcache_truncate(&kv, NP + 1);
            forward_run(m, &kv, &fs, &(forward_args){.tokens = &b, .n_tok = 1, .pos0 = NP + 1, .l0 = 0,
                                                             .l1 = m->cfg.n_layer, .head = 1});
            sampler_dense_probs(smp, fs.logits, p3);
            for (int c = 0; c < V; c++) joint[(a * V + b) * V + c] = (double)p1[a] * p2[b] * p3[c];
        }
    }
    forward_free(&fs);
    kvcache_free(&kv);
}

/* chi-square p-value of counts against expected probabilities; cells expected below 5 pooled */
static double chi2_pvalue(const long *count, const double *prob, long n, int *dof_out) {
    double chi2 = 0, pool_e = 0, pool_o = 0;
    int k = 0;
    for (int i = 0; i < CELLS; i++) {
        const double e = prob[i] * (double)n;
        if (e < 5) { pool_e += e; pool_o += (double)count[i]; continue; }
        chi2 += (count[i] - e) * (count[i] - e) / e;
        k++;
    }
    if (pool_e > 0) { chi2 += (pool_o - pool_e) * (pool_o - pool_e) / (pool_e > 1e-12 ? pool_e : 1e-12); k++; }
    *dof_out = k - 1;
    return gsl_cdf_chisq_Q(chi2, k - 1);
}

static void run_dist(const model *m, const adapter *ad, sampler *smp, const double *joint, int gamma, spec_rule rule,
                     long n_runs, double *pv_out, double *acc_out) {
    long *count = calloc(CELLS, sizeof *count);
    int32_t out[NT];
    long drafted = 0, accepted = 0;
    for (long i = 0; i < n_runs; i++) {
        hat_local_stats st;
        const hat_local_args args = {.gamma = gamma, .n_gen = NT, .chunk = 4, .seed = 1000003u * (uint64_t)gamma + (uint64_t)i,
                                     .rule = rule, .greedy = 0};
        const int n = hat_device_generate_local(m, ad, smp, 1, 1, PROMPT, NP, &args, out, &st);
        CHECK(n == NT, "generated %d tokens", n);
        count[(out[0] * V + out[1]) * V + out[2]]++;
        drafted += st.drafted;
        accepted += st.accepted;
    }
    int dof;
    *pv_out = chi2_pvalue(count, joint, n_runs, &dof);
    *acc_out = drafted ? (double)accepted / (double)drafted : 0;
    free(count);
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "all";
    char err[HAT_ERRLEN], path[] = "/tmp/hat_tiny_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    tinymodel_params tp;
    tinymodel_defaults(&tp);
    tp.wtype = GGML_TYPE_Q8_0;   /* the quantised path is bit-exact across call sizes (F32 sgemm is not) */
    CHECK(tinymodel_write(path, &tp, err, sizeof err) == HAT_OK, "%s", err);
    model *m;
    CHECK(model_load(&m, path, &(model_part){.l0 = 0, .l1 = -1, .embed = 1, .head = 1}, err, sizeof err) == HAT_OK, "%s", err);
    unlink(path);
    CHECK(m->cfg.n_vocab == V, "tiny model vocabulary %d, expected %d", m->cfg.n_vocab, V);
    adapter *ad = adapter_identity(m->cfg.dim, 1, 1);

    if (!strcmp(part, "greedy") || !strcmp(part, "all")) {
        sampler *g;
        CHECK(sampler_init(&g, &(sampler_params){.temp = 0, .top_p = 1}, V, err, sizeof err) == HAT_OK, "%s", err);
        enum { NG = 24 };
        int32_t want[NG], got[NG];
        kvcache kv;
        forward_state fs;
        CHECK(kvcache_init(&kv, 0, m->cfg.n_layer, 64, m->cfg.kv_dim, err, sizeof err) == HAT_OK, "%s", err);
        CHECK(forward_init(&fs, m, 16, 64, 1, 1, err, sizeof err) == HAT_OK, "%s", err);
        forward_run(m, &kv, &fs, &(forward_args){.tokens = PROMPT, .n_tok = NP, .l0 = 0, .l1 = m->cfg.n_layer, .head = 1});
        for (int i = 0; i < NG; i++) {
            want[i] = sampler_argmax(fs.logits, V);
            forward_run(m, &kv, &fs, &(forward_args){.tokens = &want[i], .n_tok = 1, .pos0 = NP + i, .l0 = 0,
                                                             .l1 = m->cfg.n_layer, .head = 1});
        }
        for (int gamma = 0; gamma <= 8; gamma++) {
            for (int split = 1; split <= 2; split++) {
                hat_local_stats st;
                const hat_local_args args = {.gamma = gamma, .n_gen = NG, .chunk = 2, .seed = 1, .greedy = 1};
                adapter *ads = adapter_identity(m->cfg.dim, split, 4 - split - 1);
                const int n = hat_device_generate_local(m, ads, g, split, 4 - split - 1, PROMPT, NP, &args, got, &st);
                EXPECT(n == NG && !memcmp(got, want, sizeof want), "greedy gamma %d split (%d,%d): tokens differ from monolithic",
                       gamma, split, 4 - split - 1);
                if (split == 1) printf("greedy gamma %d: %d rounds, %d/%d drafts accepted, tokens equal\n", gamma, st.rounds,
                                       st.accepted, st.drafted);
                adapter_free(ads);
            }
        }
        forward_free(&fs);
        kvcache_free(&kv);
        sampler_free(g);
    }

    if (!strcmp(part, "dist") || !strcmp(part, "all")) {
        sampler *s;
        CHECK(sampler_init(&s, &(sampler_params){.temp = 1, .top_k = 0, .top_p = 1}, V, err, sizeof err) == HAT_OK, "%s", err);
        double *joint = malloc(CELLS * sizeof *joint), tot = 0;
        exact_joint(m, s, joint);
        for (int i = 0; i < CELLS; i++) tot += joint[i];
        EXPECT(fabs(tot - 1) < 1e-5, "exact joint sums to %.8f", tot);
        const long N = 6000;   /* the broken rules fall below p = 1e-30 at this size (measured: 1e-209 at 30000) */
        for (int gamma = 1; gamma <= 3; gamma += 2) {
            const spec_rule rules[3] = {SPEC_RULE_LEVIATHAN, SPEC_RULE_BROKEN_RESAMPLE_TARGET, SPEC_RULE_BROKEN_ACCEPT_ALWAYS};
            const char *names[3] = {"leviathan", "broken: resample from target", "broken: accept always"};
            for (int k = 0; k < 3; k++) {
                double pv, acc;
                const double t0 = hat_now();
                run_dist(m, ad, s, joint, gamma, rules[k], N, &pv, &acc);
                printf("temperature 1, gamma %d, %-30s: %ld runs, acceptance %.3f, chi-square p = %.3g (%.2f s)\n", gamma,
                       names[k], N, acc, pv, hat_now() - t0);
                if (k == 0) EXPECT(pv > 1e-4, "gamma %d: HAT's first %d tokens do not follow the model (p = %.3g)", gamma, NT, pv);
                else EXPECT(pv < 1e-6, "gamma %d: the test did not catch the %s rule (p = %.3g)", gamma, names[k], pv);
            }
        }
        free(joint);
        sampler_free(s);
    }
    adapter_free(ad);
    model_free(m);
    return test_summary();
}
