/* model.h — LLaMA-architecture model: hyper-parameters, and the weights of one part of it.
 *
 * A part is a layer range [l0, l1) plus, optionally, the embedding table and the final
 * norm + LM head; loading touches only the tensors of that part (the file is mmap'd, so
 * pages of other layers are never read). Two weight layouts:
 *  - MODEL_WEIGHTS_QUANT (default): the file's quantised blocks are used in place from the
 *    mapping; matmuls quantise activations to Q8 as llama.cpp does (its numerics, ~4.5 bits
 *    per weight streamed per token instead of 32);
 *  - MODEL_WEIGHTS_F32: every matrix dequantised to fp32 on the heap; matmuls via OpenBLAS
 *    sgemm/sgemv with fp32 activations. The simple reference the fast path is tested against.
 */
#ifndef HAT_MODEL_H
#define HAT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

typedef enum { MODEL_WEIGHTS_QUANT = 0, MODEL_WEIGHTS_F32 = 1 } model_weights_mode;

typedef struct {
    int n_layer, dim, n_head, n_head_kv, head_dim, kv_dim, ffn_dim, n_vocab, n_ctx_train, rope_dim;
    float rope_base, norm_eps;
} model_config;

typedef struct {
    ggml_type type;       /* storage type (F32 for the dequantised reference) */
    int64_t rows, cols;   /* W (rows = d_out, cols = d_in); out = x @ W^T */
    const void *data;     /* rows * row_bytes: into the mapping, or owned fp32 */
    size_t row_bytes;
} qmat;

typedef struct {
    const float *attn_norm, *ffn_norm;   /* (dim) */
    qmat wq, wk, wv, wo;                 /* (dim,dim) (kv_dim,dim) (kv_dim,dim) (dim,dim) */
    qmat w_gate, w_up, w_down;           /* (ffn,dim) (ffn,dim) (dim,ffn) */
} layer_weights;

typedef struct {
    int l0, l1;                  /* decoder layers held: [l0, l1); l1 = -1 means n_layer */
    int embed, head;             /* hold the embedding table / the final norm + LM head */
    model_weights_mode weights;
} model_part;

typedef struct model {
    model_config cfg;
    model_part part;
    gguf_file *file;
    int owns_file;               /* opened by model_load: closed by model_free */
    char name[128];
    qmat tok_embd;               /* (n_vocab, dim) */
    const float *out_norm;       /* (dim) */
    qmat output;                 /* (n_vocab, dim); the embedding itself when tied */
    int tied_output;
    layer_weights *layers;       /* n_layer entries; only [l0, l1) are filled */
    size_t bytes_weights;        /* bytes of all tensors of this part */
    size_t bytes_per_token;      /* weight bytes streamed by one decode step of this part */
    size_t bytes_heap;           /* heap held by weights (fp32 reference copies) */
    void **owned;
    int n_owned;
    /* a tensor-parallel shard (tp.h): rank tp_rank of tp_size in mode tp_mode; cfg is the shard's,
     * full_cfg the unsplit model's. tp_size 0 or 1: a whole model. */
    int tp_rank, tp_size, tp_mode;
    model_config full_cfg;
} model;

/* Reads hyper-parameters only (validated: positive, divisible, consistent). */
int model_read_config(const gguf_file *f, model_config *c, char *err, size_t errlen);

/* Loads the part of the model at path; the model owns the file it opens (model_free closes it). */
int model_load(model **out, const char *path, const model_part *part, char *err, size_t errlen);
/* Same over an already-open file (the model keeps a reference; caller closes after free). */
int model_load_file(model **out, gguf_file *f, const model_part *part, char *err, size_t errlen);
void model_free(model *m);
/* bytes of aligned heap owned by m (freed by model_free, counted in bytes_heap) */
void *model_own(model *m, size_t bytes);

/* Human-readable one-line description of what was loaded (layers, layout, memory). */
void model_describe(const model *m, char *buf, size_t len);

/* weight elements of layers [l0,l1), plus the head when head != 0 (a compute profile's FLOP count) */
double model_part_params(const model_config *c, int l0, int l1, int head);

#endif
