/* tp.h — tensor parallelism inside one cloud shard group (Megatron-style, per layer).
 *
 * A group of `size` ranks runs the same layers over the same tokens; rank r holds
 *   - query heads [r*H/size, (r+1)*H/size) and kv heads [r*Hkv/size, (r+1)*Hkv/size): the rows of
 *     Wq, Wk, Wv of those heads (column split) and the matching columns of Wo (row split);
 *   - FFN columns [r*F/size, (r+1)*F/size): those rows of Wgate and Wup and columns of Wdown;
 *   - the norms whole, and its heads' share of every session's KV cache.
 * Per layer two all-reduces of the (n_tok, dim) residual stream: rank 0 adds its partial product
 * to the residual, the other ranks contribute their partial product alone, and the sum over the
 * group (the same bits on every rank) is the residual after the attention / FFN block. Only the
 * summation order of Wo and Wdown changes against the unsplit model (the partial sums are added
 * in rank order), so hidden states agree to fp32 rounding, not to the bit.
 *
 * The collective is a pair of callbacks, so that this layer (and the CUDA backend, built without
 * MPI) needs no MPI: src/collective.c provides the MPI host-staged one, tests a threaded one.
 */
#ifndef HAT_TP_H
#define HAT_TP_H

#include <stddef.h>

#include "model.h"

typedef struct {
    int rank, size;   /* this rank's place in its group; size 1 (or 0): no tensor parallelism */
    void *ctx;
    /* in place: buf (n floats) = sum over the group, identical bits on every rank; 0 or non-zero
     * with err set */
    int (*allreduce)(void *ctx, float *buf, size_t n, char *err, size_t errlen);
    /* bytes from group rank 0 to every rank (the NCCL unique id) */
    int (*bcast)(void *ctx, void *buf, size_t bytes, char *err, size_t errlen);
} tp_comm;

static inline int tp_active(const tp_comm *t) { return t && t->size > 1; }

/* Can `full` be split `size` ways for weights of type `wtype` (block alignment of the column
 * slices of Wo and Wdown)? 0, or a message naming the quantity that does not divide. */
int tp_check(const model_config *full, int size, int wtype, char *err, size_t errlen);

/* The hyper-parameters one rank of a group of `size` sees: heads, kv heads, kv_dim and ffn_dim
 * divided; dim, head_dim, vocab, rope unchanged. */
void tp_shard_config(const model_config *full, int size, model_config *out);

/* first query head, kv head and FFN column of rank r */
static inline int tp_head0(const model_config *full, int r, int size) { return r * (full->n_head / size); }
static inline int tp_kvhead0(const model_config *full, int r, int size) { return r * (full->n_head_kv / size); }
static inline int tp_ffn0(const model_config *full, int r, int size) { return r * (full->ffn_dim / size); }

/* Rank r's shard of the layers the part `full` holds (no embedding or head): row slices point into
 * full's weights (which must outlive the shard), column slices of Wo and Wdown are copied. */
int model_tp_shard(model **out, const model *full, int r, int size, char *err, size_t errlen);

#endif
