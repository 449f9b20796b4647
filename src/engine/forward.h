/* forward.h — LLaMA forward over a layer range, on the CPU.
 *
 * forward_run() runs layers [l0, l1) of a model part over n_tok consecutive
 * positions pos0 .. pos0+n_tok-1 of one sequence, starting from token ids (embedding) or
 * from hidden states, optionally ending with the final norm + LM head. Splitting [0,L) into
 * [0,k) then [k,L) gives bit-identical hidden states and logits. Numerics follow llama.cpp's
 * CPU path (see quant.h and the comments in forward.c), so greedy tokens match it.
 * All buffers are allocated once in forward_init for max_tok tokens; none in the forward.
 */
#ifndef HAT_FORWARD_H
#define HAT_FORWARD_H

#include "engine/kvcache.h"
#include "engine/model.h"
#include "engine/tp.h"

typedef struct {
    int n_threads, max_tok, n_ctx, max_logit_rows;
    float *x;        /* (max_tok, dim) residual stream: the hidden states in and out */
    float *xb;       /* (max_tok, max(dim, ffn)) normed input / projections */
    float *q;        /* (max_tok, dim) */
    float *k, *v;    /* (max_tok, kv_dim) */
    float *att;      /* (max_tok, dim) attention output */
    float *hb, *hb2; /* (max_tok, ffn) */
    uint8_t *act;    /* (max_tok, act_row) activations quantised for the weight type */
    size_t act_row;
    int act_type;    /* ggml_type of what act holds, -1 when nothing valid */
    float *rope;     /* (max_tok, head_dim) (cos, sin) pairs of this call's positions */
    float *scores;   /* (n_threads, n_ctx) */
    uint16_t *q16;   /* (n_threads, head_dim) */
    float *lanes;    /* (n_threads, 64, head_dim) PV lane accumulators */
    float *logits;   /* (max_logit_rows, n_vocab) */
    int *tpos;       /* (max_tok) position of each token of the call */
    int *tseq;       /* (max_tok) sequence of each token of the call */
    float *tp_recv;  /* tensor-parallel shard, exact mode: (max_tok, max(dim, full ffn)) all-gather target */
    float *tp_wide;  /* (max_tok, full ffn) the whole SwiGLU output */
} forward_state;

/* max_logit_rows: how many rows of logits one call may ask for (1, or max_tok for logits_all). */
int forward_init(forward_state *s, const model *m, int max_tok, int n_ctx, int max_logit_rows,
                 int n_threads, char *err, size_t errlen);
void forward_free(forward_state *s);
size_t forward_bytes(const forward_state *s, const model *m);
/* what forward_init(max_tok, n_ctx, max_logit_rows, n_threads) will allocate for a part with the
 * dimensions c (without tensor parallelism), before anything is allocated: the start-up memory check */
size_t forward_plan_bytes(const model_config *c, int max_tok, int n_ctx, int max_logit_rows, int n_threads);

typedef struct {
    const int32_t *tokens;   /* (n_tok) ids when starting at the embedding, else NULL */
    const float *hidden_in;  /* (n_tok, dim) when tokens == NULL; may alias s->x */
    int n_tok, pos0;
    int l0, l1;              /* layers to run, within the part's range and the cache's */
    int head;                /* after layer l1-1: final norm + LM head (needs l1 == n_layer) */
    int logits_all;          /* logits for every token (else only the last) */
    int decode;              /* numerics of one-token-at-a-time decoding for every token (see forward_seq) */
} forward_args;

/* Hidden states after layer l1-1 are left in s->x; logits in s->logits. Writes positions
 * [pos0, pos0+n_tok) of layers [l0,l1) into kv; needs pos0 <= kv->n, and sets kv->n to
 * pos0+n_tok when it runs any layer (a later position is dropped: rollback = run again from the
 * first rejected one). */
void forward_run(const model *m, kvcache *kv, forward_state *s, const forward_args *a);

/* Several sequences in one pass (the cloud's continuous batching): the matmuls run over all
 * tokens at once (each weight row streamed once per pass), attention per sequence over its own
 * cache. Tokens / hidden rows are concatenated in sequence order. Each sequence's results are
 * bit-identical to running it alone with the same n_tok (the attention summation order follows
 * the sequence's own n_tok, as llama.cpp would choose for that call alone). */
typedef struct {
    kvcache *kv;
    int pos0, n_tok;
    /* 1: every token of the sequence gets the attention summation order of a one-token call,
     * so n_tok tokens verified in one pass are bit-identical to n_tok single-token decode steps
     * (speculative verification stays lossless to the last bit). The matmuls, norms and RoPE are
     * per row and do not depend on the call size. */
    int decode;
} forward_seq;

typedef struct {
    const int32_t *tokens;   /* (sum n_tok) ids, or NULL */
    const float *hidden_in;  /* (sum n_tok, dim) when tokens == NULL; may alias s->x */
    const forward_seq *seqs;
    int n_seq;
    int l0, l1, head;
    int logits_all;          /* logits for every token, else the last token of each sequence */
    /* tensor parallelism (tp.h): m is this rank's shard (model_tp_shard) and the residual stream is
     * all-reduced after Wo and after Wdown of every layer; NULL or size 1: the whole layers */
    const tp_comm *tp;
} forward_batch_args;

void forward_run_batch(const model *m, forward_state *s, const forward_batch_args *a);

#endif
