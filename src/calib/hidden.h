/* hidden.h — the full model's hidden states on a calibration corpus: the (h_a, h_{L-b}) pairs the adapter is
 * fitted on, the held-out ones it is measured on, and the draft agreement of the fitted adapter.
 *
 * Every position of a sequence is run through layers [0,a) and [a,L-b) in batched prefill calls, with the
 * numerics the states have when generated and drafted (prompt positions: chunked prefill, generated ones:
 * one-token decoding), so they are bit-identical to them. Which positions are fitted (measured on
 * SmolLM2-135M, see docs/calibration.md):
 *  - not positions < min_pos (default 1: position 0 is the attention sink). Its residual stream entering
 *    layer 28 has norm ~24,700 (one channel at ~24,500) against ~600 at other positions; as one row of a
 *    least-squares fit it weighs as much as ~1,500 ordinary tokens. The device never drafts at position 0
 *    (the prompt's states come from the cloud), so it is left out; min_pos 0 keeps it.
 *  - each distinct token prefix once: the hidden state at position p depends only on tokens [0,p], and
 *    every chat rendering starts with the same system block (~30 tokens), which would otherwise count once
 *    per prompt. Positions inside a prefix seen in an earlier sequence are skipped.
 * Sequences [0, n_train) feed the fit's statistics; the others are held out (the caller holds out whole
 * prompts: no position of them, nor another sample of the same prompt, is trained on).
 */
#ifndef HAT_HIDDEN_H
#define HAT_HIDDEN_H

#include <stddef.h>
#include <stdint.h>

#include "calib/adapter_fit.h"
#include "calib/corpus.h"
#include "engine/model.h"
#include "split/adapter.h"

typedef struct {
    int a, b;              /* the split: h_a after layers [0,a), h_{L-b} after [a,L-b) */
    int min_pos;           /* fit positions >= min_pos only */
    int chunk, threads;    /* tokens per prefill call; CPU threads */
} hidden_opts;

enum { HIDDEN_GEN = 1, HIDDEN_GREEDY = 2 };   /* a held-out row of a generated token; of a greedy generation */

typedef struct {
    int dim;
    adapter_stats *train;      /* the training pairs, as sufficient statistics */
    float *hx, *ht;            /* held-out pairs (n_held, dim) */
    unsigned char *hgen;       /* held-out row: HIDDEN_GEN | HIDDEN_GREEDY flags */
    size_t n_held, cap_held;
    uint64_t n_skip_pos, n_skip_prefix, n_train_gen;   /* skipped at position < min_pos, in shared prefixes */
    float max_x, max_t;        /* largest |h| among the fitted rows */
} hidden_set;

/* Collects the pairs of every sequence of c (reports progress on stderr): sequences [0, n_train) into
 * hs->train, the others into the held-out rows. */
int hidden_collect(hidden_set *hs, const corpus *c, const model *m, const hidden_opts *o, int n_train, char *err,
                   size_t errlen);
void hidden_free(hidden_set *hs);

/* The adapter on the held-out rows with all the flags of mask (0: all rows; HIDDEN_GEN: generated tokens only,
 * what the device drafts from; HIDDEN_GREEDY: of greedy generations only). */
void hidden_eval(const adapter *ad, const hidden_set *hs, int mask, adapter_metrics *m);

typedef struct {
    uint64_t n, hit, hit_id;   /* positions; the adapter's draft, the identity's equals the full model's token */
    uint64_t n_greedy, same;   /* positions in greedy generations; where the full model's token = the corpus's */
} hidden_agreement;

/* Draft agreement on sequences [first, n_seq) (greedy generations only when greedy_only): at every generated
 * position p (one whose input token was generated and which has a successor), the device's draft -- input
 * submodel, adapter, output submodel + head, over the true context -- is compared with the full model's greedy
 * next token. */
int hidden_draft_agreement(const corpus *c, const model *m, const hidden_opts *o, int first, int greedy_only,
                           const adapter *ad, hidden_agreement *ag, char *err, size_t errlen);

#endif
