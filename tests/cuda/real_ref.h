/* real_ref.h — the real-model check of a GPU backend, split over two machines.
 *
 * The real model does not travel to a GPU test machine (98 MB > its 64 MiB of files), but its
 * middle submodel does (experiments/gguf_prune.py: layers [a, L-b), 59 MB). So:
 *   1. here (tests/gpu_real.c prep): the CPU engine generates greedy tokens for two chat prompts
 *      (the monolithic model), and records, for every position a cloud would see, the hidden
 *      state the device sends (after [0, a)) and the CPU cloud's output (after [a, L-b), with the
 *      quantised weights and with fp32 weights): a reference file of a few MB;
 *   2. on the GPU (tests/cuda/test_cuda_real.c): the CUDA backend runs the pruned middle over those
 *      inputs, stepped as a cloud steps (both sessions in every step: prompt chunks, then decode
 *      rounds with a rollback), and writes its outputs;
 *   3. here (tests/gpu_real.c check): the CPU engine's output submodel [L-b, L) and head run over
 *      the GPU's hidden states, in order, and every greedy token must equal the monolithic one.
 * Teacher forcing along the greedy trajectory is enough: if every argmax agrees, a greedy run with
 * the GPU middle emits exactly these tokens, so feeds exactly these inputs.
 * Plain C, base library only (builds in the GPU-only configuration).
 */
#ifndef HAT_REAL_REF_H
#define HAT_REAL_REF_H
#include "backends/backend.h"

#include <stdint.h>

#define RR_MAX_SLOT 4

typedef struct {
    int dim, n_layer, a, l1;     /* the middle is layers [a, l1) */
    int n_slot, chunk, round;    /* sessions; prompt chunk and decode round sizes of the stepping */
    char model[128];             /* the model's name (general.name) */
    uint64_t model_bytes;        /* size of the GGUF the reference was made from */
    int n_prompt[RR_MAX_SLOT];
    int n_pos[RR_MAX_SLOT];      /* positions through the middle: the prompt and every generated token but the last */
    int32_t *tokens[RR_MAX_SLOT];  /* (n_pos + 1): the token at each position, then the last generated one */
    float *in[RR_MAX_SLOT];        /* (n_pos, dim) hidden states after [0, a): the middle's input */
    float *mid_q[RR_MAX_SLOT];     /* (n_pos, dim) the CPU middle's output, quantised weights (the engine) */
    float *mid_f[RR_MAX_SLOT];     /* (n_pos, dim) the CPU middle's output, fp32 weights */
} real_ref;

int real_ref_write(const char *path, const real_ref *r, char *err, size_t errlen);
int real_ref_read(const char *path, real_ref *r, char *err, size_t errlen);
void real_ref_free(real_ref *r);

/* every slot's positions through layers [a, l1) of the backend (n_slots >= n_slot, max_tok >=
 * n_slot * max(chunk, round)), all sessions in every step: prompt chunks (prefill numerics), then
 * decode rounds of `round` tokens whose last position is rolled back and redone by the next round
 * (a rejected draft); out[s] (n_pos[s], dim) receives each position's last computed output */
int real_run(backend *be, const real_ref *r, float **out, int *n_steps, char *err, size_t errlen);

/* the middle's outputs, with the backend's description */
int real_out_write(const char *path, const real_ref *r, float *const *out, const char *desc, char *err, size_t errlen);
int real_out_read(const char *path, const real_ref *r, float **out, char *desc, size_t desclen, char *err, size_t errlen);

/* relative L2 distance of a to b over positions [1, n) (position 0, the attention sink with a norm
 * of ~2.5e4, would hide everything), worst over positions */
double real_worst_rel(const float *a, const float *b, int n, int dim);
#endif
