/* speculate.c — see speculate.h */
#include "split/speculate.h"
#include "core/common.h"
#include "engine/sampler.h"

#include <math.h>

int spec_accept_greedy(const float *target_logits, int V, const int32_t *draft, int gamma, int32_t *out) {
    CHECK(V > 0 && gamma >= 0, "spec_accept_greedy: V %d, gamma %d", V, gamma);
    int j = 0;
    for (; j < gamma; j++) {
        const int32_t best = sampler_argmax(target_logits + (size_t)j * V, V);
        if (draft[j] != best) break;
        out[j] = draft[j];
    }
    /* the first mismatching row's choice, or the bonus token after row gamma */
    out[j] = sampler_argmax(target_logits + (size_t)j * V, V);
    return j + 1;
}

double spec_accept_prob(float px, float qx, spec_rule rule) {
    if (rule == SPEC_RULE_BROKEN_ACCEPT_ALWAYS) return 1.0;
    if (!(px > 0.0f)) return 0.0;
    if (!(qx > px)) return 1.0;   /* covers qx == 0: a token the draft cannot propose */
    return (double)px / (double)qx;
}

void spec_residual(const float *p, const float *q, int V, spec_rule rule, float *out) {
    double sum = 0.0;
    if (rule != SPEC_RULE_BROKEN_RESAMPLE_TARGET) {
        for (int i = 0; i < V; i++) {
            const double d = (double)p[i] - (double)q[i];
            out[i] = d > 0.0 ? (float)d : 0.0f;
            sum += out[i];
        }
    }
    if (!(sum > 0.0)) {   /* p == q (or the broken rule): the residual is p itself */
        for (int i = 0; i < V; i++) out[i] = p[i];
        return;
    }
    for (int i = 0; i < V; i++) out[i] = (float)(out[i] / sum);
}

int32_t spec_draw(const float *probs, int V, double u) {
    double cum = 0.0;
    int32_t last = 0;
    for (int i = 0; i < V; i++) {
        if (!(probs[i] > 0.0f)) continue;   /* zero (or NaN) mass is never drawn */
        cum += probs[i];
        last = i;
        if (u < cum) return i;
    }
    return last;   /* u beyond the rounded total */
}

int spec_accept_sample(const float *p, const float *q, int V, const int32_t *draft, int gamma, rng *r,
                       float *scratch, spec_rule rule, int32_t *out) {
    CHECK(V > 0 && gamma >= 0, "spec_accept_sample: V %d, gamma %d", V, gamma);
    for (int j = 0; j < gamma; j++) {
        const float *pj = p + (size_t)j * V, *qj = q + (size_t)j * V;
        const int32_t x = draft[j];
        CHECK(x >= 0 && x < V, "spec_accept_sample: draft token %d outside [0,%d)", x, V);
        if (rng_uniform(r) < spec_accept_prob(pj[x], qj[x], rule)) {
            out[j] = x;
            continue;
        }
        spec_residual(pj, qj, V, rule, scratch);
        out[j] = spec_draw(scratch, V, rng_uniform(r));
        return j + 1;
    }
    out[gamma] = spec_draw(p + (size_t)gamma * V, V, rng_uniform(r));
    return gamma + 1;
}

/* ---- adaptive draft length ---- */

void spec_gamma_init(spec_gamma_ctl *c, int gamma_min, int gamma_max) {
    CHECK(gamma_min >= 1 && gamma_max >= gamma_min, "spec_gamma_init: bounds [%d, %d]", gamma_min, gamma_max);
    *c = (spec_gamma_ctl){0};
    c->gamma_min = gamma_min;
    c->gamma_max = gamma_max;
    c->gamma_first = 4 < gamma_min ? gamma_min : 4 > gamma_max ? gamma_max : 4;
    c->alpha_prior = 0.6;
    c->n_prior = 4.0;
    c->decay = 0.95;
    c->ewma = 0.2;
}

void spec_gamma_update(spec_gamma_ctl *c, int drafted, int accepted, double t_draft_per_tok, double t_fixed) {
    CHECK(drafted >= 0 && accepted >= 0 && accepted <= drafted, "spec_gamma_update: %d accepted of %d drafted",
          accepted, drafted);
    const int tested = accepted < drafted ? accepted + 1 : drafted;
    c->acc_sum = c->decay * c->acc_sum + accepted;
    c->tested_sum = c->decay * c->tested_sum + tested;
    const int first = c->n_rounds == 0;
    if (isfinite(t_draft_per_tok) && t_draft_per_tok >= 0.0)
        c->t_draft = first ? t_draft_per_tok : (1.0 - c->ewma) * c->t_draft + c->ewma * t_draft_per_tok;
    if (isfinite(t_fixed) && t_fixed >= 0.0)
        c->t_fixed = first ? t_fixed : (1.0 - c->ewma) * c->t_fixed + c->ewma * t_fixed;
    c->n_rounds++;
}

double spec_gamma_alpha(const spec_gamma_ctl *c) {
    const double n = c->n_prior + c->tested_sum;
    return n > 0.0 ? (c->alpha_prior * c->n_prior + c->acc_sum) / n : c->alpha_prior;
}

double spec_expected_tokens(double alpha, int g) {
    /* sum of powers rather than the closed form: exact at alpha = 1, no 0/0 */
    double e = 0.0, a = 1.0;
    for (int i = 0; i <= g; i++) { e += a; a *= alpha; }
    return e;
}

int spec_gamma_best(double alpha, double t_draft, double t_fixed, int gmin, int gmax) {
    if (!(alpha >= 0.0)) alpha = 0.0;
    if (alpha > 1.0) alpha = 1.0;
    if (!(t_draft >= 0.0)) t_draft = 0.0;
    if (!(t_fixed >= 0.0)) t_fixed = 0.0;
    int best = gmin;
    double best_rate = -1.0;
    for (int g = gmin; g <= gmax; g++) {
        const double t = t_fixed + g * t_draft;
        /* no measured cost at all: more tokens per round is all that counts */
        const double rate = t > 0.0 ? spec_expected_tokens(alpha, g) / t : spec_expected_tokens(alpha, g);
        if (rate > best_rate * (1.0 + 1e-12)) { best_rate = rate; best = g; }
    }
    return best;
}

int spec_gamma_next(const spec_gamma_ctl *c) {
    if (c->n_rounds == 0) return c->gamma_first;
    return spec_gamma_best(spec_gamma_alpha(c), c->t_draft, c->t_fixed, c->gamma_min, c->gamma_max);
}
