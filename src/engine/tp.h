/* tp.h — tensor parallelism inside one cloud shard group: every layer split over `size` ranks.
 *
 * Two modes ([cloud] tp_mode):
 *
 *  TP_EXACT (default): every output feature of every matrix is computed whole, by one rank, from the
 *    whole input row, so the group's hidden states are bit-identical to the unsplit model's (and
 *    greedy tokens equal the monolithic engine's). Rank r holds the rows of
 *      Wq, Wk, Wv of its query heads [r*H/size, ..) and kv heads [r*Hkv/size, ..),
 *      Wo and Wdown of its residual features [r*dim/size, ..),
 *      Wgate and Wup of its FFN features [r*F/size, ..);
 *    per layer four all-gathers: the attention output (dim), the residual after attention (dim), the
 *    SwiGLU output (F), the residual after the FFN (dim). All weights are row slices: no copy.
 *
 *  TP_ALLREDUCE (Megatron-LM): Wq, Wk, Wv, Wgate, Wup split by rows as above, Wo and Wdown by
 *    columns (the matching input features); two all-reduces of the (n_tok, dim) residual per layer:
 *    rank 0 adds its partial product to the residual, the others contribute theirs alone, and the
 *    sum (in rank order: the same bits on every rank) is the new residual. Less traffic (2 dim per
 *    token and layer, against 3 dim + F) but the summation order of Wo and Wdown changes: hidden
 *    states agree with the unsplit model to rounding only. On a quantised model rounding is
 *    amplified by the 8-bit activation quantisation (a 1e-7 relative input change gives ~1e-2 after
 *    26 SmolLM2 layers, measured), so greedy tokens can differ from the monolithic engine's.
 *
 * Both keep every session's KV cache split by heads. The collective is a set of callbacks, so
 * that this layer (and the CUDA backend, built without MPI) needs no MPI: src/net/collective.c
 * provides the MPI host-staged one, tests/support/tp_threads.c a threaded one.
 */
#ifndef HAT_TP_H
#define HAT_TP_H

#include <stddef.h>

#include "engine/model.h"

typedef enum { TP_EXACT = 0, TP_ALLREDUCE = 1 } tp_mode;

static inline const char *tp_mode_name(int m) { return m == TP_ALLREDUCE ? "allreduce" : "exact"; }

typedef struct {
    int rank, size;   /* this rank's place in its group; size 1 (or 0): no tensor parallelism */
    int mode;         /* tp_mode */
    void *ctx;
    /* in place: buf (n floats) = sum over the group, identical bits on every rank; 0 or non-zero
     * with err set */
    int (*allreduce)(void *ctx, float *buf, size_t n, char *err, size_t errlen);
    /* recv (size * bytes) = every rank's send (bytes), in rank order */
    int (*allgather)(void *ctx, const void *send, void *recv, size_t bytes, char *err, size_t errlen);
    /* bytes from group rank 0 to every rank (steps, the NCCL unique id) */
    int (*bcast)(void *ctx, void *buf, size_t bytes, char *err, size_t errlen);
} tp_comm;

static inline int tp_active(const tp_comm *t) { return t && t->size > 1; }

/* Can `full` be split `size` ways in `mode` (for TP_ALLREDUCE, with weights of type `wtype`: the
 * column slices of Wo and Wdown must be whole quantisation blocks)? 0, or a message naming the
 * quantity that does not divide. */
int tp_check(const model_config *full, int size, int mode, int wtype, char *err, size_t errlen);

/* The hyper-parameters one rank of a group of `size` sees: heads, kv heads, kv_dim and ffn_dim
 * divided; dim, head_dim, vocab, rope unchanged. */
void tp_shard_config(const model_config *full, int size, model_config *out);

/* first query head, kv head, FFN feature and residual feature of rank r */
static inline int tp_head0(const model_config *full, int r, int size) { return r * (full->n_head / size); }
static inline int tp_kvhead0(const model_config *full, int r, int size) { return r * (full->n_head_kv / size); }
static inline int tp_ffn0(const model_config *full, int r, int size) { return r * (full->ffn_dim / size); }
static inline int tp_dim0(const model_config *full, int r, int size) { return r * (full->dim / size); }

/* Rank r's shard of the layers the part `full` holds (no embedding or head), for `mode`. Row slices
 * point into full's weights (which must outlive the shard); TP_ALLREDUCE's column slices of Wo and
 * Wdown are copies. The shard's cfg is tp_shard_config's, its full_cfg the unsplit one. */
int model_tp_shard(model **out, const model *full, int r, int size, int mode, char *err, size_t errlen);

#endif
