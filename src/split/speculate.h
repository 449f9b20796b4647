/* speculate.h — the acceptance rule of speculative decoding and the adaptive draft length.
 *
 * Source: Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative
 * Decoding", ICML 2023, arXiv 2211.17192 (Algorithm 1; Section 3.4 for the choice of gamma).
 *
 * A round: the draft model proposes gamma tokens x_1..x_gamma, x_j ~ q_j (q_j = the draft's
 * distribution after the committed prefix and x_1..x_{j-1}); the target model is run once over
 * them and gives p_0..p_gamma (p_j at the position of x_{j+1}; p_gamma after the last draft).
 *  - greedy (temperature 0): accept the longest prefix with x_{j+1} == argmax p_j, then emit
 *    argmax of the first mismatching row (or of row gamma). The output is exactly the target's
 *    greedy output.
 *  - sampling: for j = 0.. in order accept x_{j+1} with probability min(1, p_j(x)/q_j(x)); on the
 *    first rejection emit a correction token drawn from norm(max(0, p_j - q_j)) and stop; if all
 *    gamma are accepted emit a bonus token drawn from p_gamma. Every emitted token is then
 *    distributed exactly as if sampled from the target alone (Leviathan et al., Theorem 3.5 /
 *    Appendix A.1); tests/unit/test_speculate.c checks this by exact enumeration and Monte-Carlo.
 * Either way a round emits n_accepted + 1 tokens (1 .. gamma+1).
 */
#ifndef HAT_SPECULATE_H
#define HAT_SPECULATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

/* the most draft tokens in one round (buffers of gamma + 1 tokens are sized by it) */
#define HAT_GAMMA_LIMIT 16

typedef enum {
    SPEC_RULE_LEVIATHAN = 0,
    SPEC_RULE_BROKEN_RESAMPLE_TARGET = 1,  /* tests only: on rejection samples from p instead of norm(max(0,p-q)) */
    SPEC_RULE_BROKEN_ACCEPT_ALWAYS = 2,    /* tests only: accepts every draft */
} spec_rule;

/* Greedy verification (temperature 0). target_logits: (gamma+1, V) rows, row j = the full model's
 * logits at the position of draft token j (row 0 follows the last committed token; row gamma
 * follows draft gamma-1). draft: gamma token ids (gamma >= 0). Accepts the longest prefix with
 * draft[j] == argmax(row j) (ties: lowest index, as sampler_argmax), then appends argmax of the
 * first mismatching row (or of row gamma if all matched). Writes the emitted tokens to out
 * (n_acc + 1 of them, out holds gamma+1) and returns that count. */
int spec_accept_greedy(const float *target_logits, int V, const int32_t *draft, int gamma, int32_t *out);

/* Sampling verification. p: (gamma+1, V) target probabilities, q: (gamma, V) draft probabilities
 * (both dense, already through temperature/top-k/top-p: sampler_dense_probs), draft[j] was
 * sampled from q row j. For j in order: accept draft[j] with probability
 * spec_accept_prob(p_j(x), q_j(x)) (u from rng_uniform(r), accepted iff u < that); on the first
 * rejection draw the correction token from spec_residual(p_j, q_j) and stop; if all are accepted
 * draw a bonus token from p_gamma. One rng_uniform per tested draft plus one per emitted
 * correction/bonus token. scratch: V floats. Writes the emitted tokens to out (gamma+1 slots) and
 * returns their count (accepted + 1). */
int spec_accept_sample(const float *p, const float *q, int V, const int32_t *draft, int gamma, rng *r,
                       float *scratch, spec_rule rule, int32_t *out);

/* The pieces spec_accept_sample is made of (exposed so a test can enumerate the rule exactly):
 * the probability that a draft token with target probability px and draft probability qx is
 * accepted: min(1, px/qx) (1 when qx == 0 and px > 0; 0 when px == 0) — 1 for ACCEPT_ALWAYS; */
double spec_accept_prob(float px, float qx, spec_rule rule);
/* and the distribution of the correction token after a rejection, normalised into out (V):
 * norm(max(0, p - q)) (p itself for RESAMPLE_TARGET). A rejection of x needs p(x) < q(x), so
 * some p(y) > q(y) and the residual has mass; should rounding leave none (p == q up to float
 * error), out = p, which is then the exact answer. */
void spec_residual(const float *p, const float *q, int V, spec_rule rule, float *out);

/* Inverse-CDF draw from a dense distribution (sums to 1 up to rounding) with u in [0,1): the
 * first index whose cumulative probability (summed in double) exceeds u. Never returns a
 * zero-probability index: a u beyond the rounded total gives the last index with probability
 * > 0 (index 0 if all are zero). */
int32_t spec_draw(const float *probs, int V, double u);

/* ---- adaptive draft length -------------------------------------------------------------------
 * Rule (Leviathan et al., Section 3.4 and eq. 1): with per-token acceptance rate alpha a round
 * that drafts g tokens emits E(g) = (1 - alpha^(g+1)) / (1 - alpha) = sum_{i=0..g} alpha^i tokens
 * in expectation, and here costs T(g) = t_fixed + g * t_draft (the device's draft steps, plus one
 * round trip, the cloud pass and the verification). The next draft length is the g in
 * [gamma_min, gamma_max] that maximises the throughput E(g) / T(g) (the smallest such g on a
 * tie). With c = t_draft / t_fixed this is the paper's improvement factor
 * (1 - alpha^(g+1)) / ((1 - alpha)(g c + 1)): the best g grows with alpha and with the link
 * delay in t_fixed (only logarithmically), and g = 1 wins when t_fixed is small.
 * (The verify pass's own per-token cost is folded into t_fixed: at batch sizes where the cloud
 * is memory-bound it hardly depends on g.)
 * Estimates, updated after each round:
 *  - alpha: Beta(alpha_prior * n_prior, (1 - alpha_prior) * n_prior) prior plus exponentially
 *    decayed counts (factor `decay` per round) of accepted drafts over *tested* drafts. A round
 *    that accepts a < g drafts tested a + 1 of them (the ones after the first rejection were never
 *    judged), so accepted/tested is the maximum-likelihood estimate of a per-token rate;
 *    accepted/drafted would be biased low.
 *  - t_draft, t_fixed: exponentially weighted moving averages (weight `ewma` for the newest
 *    round; the first measurement is taken as is).
 * Deterministic: the same sequence of updates gives the same gamma. */
typedef struct {
    int gamma_min, gamma_max;
    int gamma_first;          /* returned before any round has been measured */
    double alpha_prior;       /* prior mean of alpha (0.6) */
    double n_prior;           /* prior weight in tested tokens (4) */
    double decay;             /* per-round decay of the acceptance counts (0.95: ~20 rounds of memory) */
    double ewma;              /* weight of the newest timing (0.2) */
    double acc_sum, tested_sum;
    double t_draft, t_fixed;  /* smoothed timings (s) */
    int n_rounds;
} spec_gamma_ctl;

/* gamma_min >= 1, gamma_max >= gamma_min (fatal otherwise); the defaults in parentheses above;
 * gamma_first = min(max(4, gamma_min), gamma_max). The fields may be changed after init. */
void spec_gamma_init(spec_gamma_ctl *c, int gamma_min, int gamma_max);
/* after a round: drafted tokens, accepted tokens (0..drafted), measured round time split into:
 * per-draft-token device cost t_draft_per_tok (s), fixed round cost t_fixed (s: round-trip
 * latency + cloud pass + verify). Negative or non-finite timings are ignored (counts still used). */
void spec_gamma_update(spec_gamma_ctl *c, int drafted, int accepted, double t_draft_per_tok, double t_fixed);
/* current acceptance estimate */
double spec_gamma_alpha(const spec_gamma_ctl *c);
int spec_gamma_next(const spec_gamma_ctl *c);
/* the rule itself: argmax over g in [gmin, gmax] of E(g)/T(g) (smallest g on ties) */
int spec_gamma_best(double alpha, double t_draft, double t_fixed, int gmin, int gmax);
/* E(g) = expected tokens emitted by a round drafting g tokens (eq. 1 of the paper) */
double spec_expected_tokens(double alpha, int g);

#endif
