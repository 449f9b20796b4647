/* hat_device.h — the device side of HAT's decode rounds, with no transport in it.
 *
 * A round starts from the last emitted token t0 at position pos (not yet run through anything):
 *
 *   draft   for j = 0..gamma: x_j (x_0 = t0) runs through the input submodel [0,a) at pos+j and
 *           its hidden state is handed to the caller at once (the uplink overlaps drafting);
 *           for j < gamma the SLM (adapter + output submodel [L-b,L) + head) drafts x_{j+1}
 *           (greedy: argmax; temperature > 0: drawn from the SLM's sampling distribution q_j).
 *   verify  the middle submodel's hidden states of x_0..x_gamma come back; the output submodel
 *           runs over all gamma+1 rows in one call with single-token numerics (forward_seq
 *           .decode), giving the full model's distribution p_j at every drafted position
 *           bit-identical to one-token decoding; a prefix is accepted (speculate.h: exact match
 *           at temperature 0, Leviathan et al.'s rejection sampling otherwise) and one
 *           correction (or bonus) token is appended.
 *   rollback the caches keep positions [0, pos + accepted + 1): x_0 .. x_accepted. The cloud
 *           rolls back its own cache when the next round starts at that position.
 *
 * KV caches: [0,a) is shared by the draft and the verify path (the same tokens run through it
 * either way). [L-b,L) is one cache too: the draft path writes its provisional positions
 * pos..pos+gamma-1 (fed by the adapter) and verification overwrites pos..pos+gamma with the
 * values fed by the cloud, so the SLM always drafts on top of the full model's cache of the
 * committed text (what the output submodel would have seen without drafting), and no prompt
 * pass through the adapter is needed. gamma = 0 is the U-shape's decode step.
 */
#ifndef HAT_HAT_DEVICE_H
#define HAT_HAT_DEVICE_H

#include <stdint.h>

#include "split/adapter.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "split/speculate.h"
#include "engine/tokenizer.h"

/* the compute pieces of a round, for a device compute profile to pad (role_device.c) */
typedef enum { HAT_PIECE_INPUT = 0, HAT_PIECE_DRAFT = 1, HAT_PIECE_VERIFY = 2 } hat_piece;
typedef void (*hat_pad_fn)(void *ctx, hat_piece piece, int pos0, int n_tok, double measured_s);   /* pos0: the piece's first position */

typedef struct {
    const model *m_in, *m_out;   /* [0,a) + embedding;  [L-b,L) + norm + head */
    kvcache *kv_in, *kv_out;
    forward_state *fs;           /* max_tok and logit rows >= gamma_max + 1 */
    const adapter *ad;           /* NULL: no SLM (gamma must be 0) */
    sampler *smp;                /* the device's sampling settings (temperature 0: greedy) */
    int a, b;
    spec_rule rule;              /* SPEC_RULE_LEVIATHAN; the broken ones only in tests */
    int greedy;                  /* the sampler's temperature is 0: argmax drafts, exact-match acceptance */
    hat_pad_fn pad;              /* optional: called after each compute piece (its time counts in hat_round) */
    void *pad_ctx;
} hat_dev_parts;

typedef struct hat_dev hat_dev;

/* measured compute, before any padding to a device profile */
typedef struct {
    int gamma, accepted, emitted;
    double in_s;       /* input submodel, all gamma + 1 tokens */
    double draft_s;    /* adapter + output submodel + head + draw, gamma tokens */
    double verify_s;   /* output submodel over gamma + 1 rows + acceptance */
} hat_round;

int hat_device_init(hat_dev **out, const hat_dev_parts *p, int gamma_max, uint64_t seed, char *err, size_t errlen);
void hat_device_free(hat_dev *d);

/* the first token after prefill: sampled from logits with the device's sampler */
int32_t hat_device_first(hat_dev *d, const float *logits);

/* row: dim floats, valid only during the call; j: 0..gamma; last: j == gamma */
typedef void (*hat_send_fn)(void *ctx, const float *row, int pos, int j, int last);

void hat_device_draft(hat_dev *d, int32_t t0, int pos, int gamma, hat_send_fn send, void *ctx, hat_round *st);
/* hidden: (gamma + 1, dim) from the middle submodel (may be d's forward_state x). Writes the
 * emitted tokens to out (at most gamma + 1) and returns how many. */
int hat_device_verify(hat_dev *d, const float *hidden, int32_t *out, hat_round *st);

/* ---- everything in one process: the middle submodel local (hat generate --hat, tests) ---- */
typedef struct {
    int gamma;                 /* fixed draft length (0: U-shape) */
    int n_gen;                 /* tokens to generate (stops early at an end-of-generation token of tok) */
    const tokenizer *tok;      /* NULL: no early stop */
    int chunk;                 /* prefill chunk tokens */
    uint64_t seed;
    spec_rule rule;
    int greedy;                /* smp has temperature 0 */
} hat_local_args;

typedef struct {
    int n_tokens, rounds, drafted, accepted;
    double seconds;
} hat_local_stats;

/* full: the whole model (embedding, [0,L), head). Runs prompt prefill split three ways, then
 * rounds; writes n_gen tokens (fewer at EOG) into out and returns the count. */
int hat_device_generate_local(const model *full, const adapter *ad, sampler *smp, int a, int b, const int32_t *prompt,
                       int n_prompt, const hat_local_args *args, int32_t *out, hat_local_stats *stats);

#endif
