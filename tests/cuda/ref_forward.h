/* ref_forward.h — a plain, independent LLaMA forward over the synthetic weights of src/engine/synth.h:
 * the reference the CPU engine (tests/engine/test_synth.c) and the CUDA backend (tests/cuda/) are checked
 * against. Written for clarity, not speed: fp32 weights generated straight from synth_value (not
 * through model_synth), double accumulators, RoPE angles from pow(), the K/V cache rounded to fp16
 * as both backends keep it. Needs only libc and libm (it runs on a GPU machine with nothing else).
 */
#ifndef HAT_REF_FORWARD_H
#define HAT_REF_FORWARD_H

#include <stdint.h>

#include "engine/model.h"

typedef struct {
    model_config c;
    uint64_t seed;
    int l0, l1, embed, head;
    float **w;        /* per layer (l1-l0) * 9 tensors, in SYNTH_* kind order; then embed, out_norm */
    float *tok_embd;  /* (n_vocab, dim) when embed or head (tied head) */
    float *out_norm;  /* (dim) when head */
    float *k, *v;     /* cache (l1-l0, n_ctx, kv_dim), values rounded to fp16 */
    int n_ctx, n;     /* positions held */
} ref_model;

int ref_init(ref_model *r, const model_config *c, uint64_t seed, int l0, int l1, int embed, int head, int n_ctx);
void ref_free(ref_model *r);
/* Runs n_tok tokens at positions pos0.. (pos0 <= r->n; later positions are dropped first).
 * In: tokens (n_tok) when embed, else hidden_in (n_tok, dim). Out: hidden_out (n_tok, dim) after
 * layer l1-1 (before the final norm), and when head, logits (n_tok, n_vocab). */
void ref_forward(ref_model *r, const int32_t *tokens, const float *hidden_in, int pos0, int n_tok, float *hidden_out,
                 float *logits);
/* fp32 -> fp16 -> fp32, round to nearest even (what an fp16 cache holds) */
float ref_round_f16(float x);

#endif
