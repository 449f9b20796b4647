/* synth.c — synthetic LLaMA-family models on the CPU (see synth.h). */
#include "engine/synth.h"

#include "core/common.h"
#include "engine/gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    model_config c;
} shape_entry;

/* n_layer, dim, n_head, n_head_kv, head_dim, kv_dim, ffn_dim, n_vocab, n_ctx_train, rope_dim, rope_base, norm_eps */
static const shape_entry shapes[] = {
    {"tiny", {4, 256, 4, 2, 64, 128, 512, 512, 2048, 64, 10000.0f, 1e-5f}},
    {"smollm2-135m", {30, 576, 9, 3, 64, 192, 1536, 49152, 8192, 64, 100000.0f, 1e-5f}},
    {"llama2-7b", {32, 4096, 32, 32, 128, 4096, 11008, 32000, 4096, 128, 10000.0f, 1e-5f}},
    {"llama2-13b", {40, 5120, 40, 40, 128, 5120, 13824, 32000, 4096, 128, 10000.0f, 1e-5f}},
};

const model_config *synth_shape(const char *name) {
    for (size_t i = 0; name && i < sizeof shapes / sizeof *shapes; i++)
        if (!strcmp(shapes[i].name, name)) return &shapes[i].c;
    return NULL;
}

const char *synth_shape_names(void) { return "tiny, smollm2-135m, llama2-7b, llama2-13b"; }

void synth_tensor_params(const model_config *c, uint32_t tensor, float *scale, float *offset) {
    *offset = 0.0f;
    if (tensor == SYNTH_T_EMBED) { *scale = 1.0f; return; }
    if (tensor == SYNTH_T_OUT_NORM) { *scale = 0.1f; *offset = 1.0f; return; }
    if (tensor == SYNTH_T_OUTPUT) { *scale = sqrtf(3.0f / (float)c->dim); return; }
    switch (tensor % SYNTH_KINDS) {
    case SYNTH_ATTN_NORM: case SYNTH_FFN_NORM: *scale = 0.1f; *offset = 1.0f; return;
    case SYNTH_W_DOWN: *scale = sqrtf(3.0f / (float)c->ffn_dim); return;
    default: *scale = sqrtf(3.0f / (float)c->dim); return;   /* wq wk wv wo gate up: d_in = dim */
    }
}

static size_t layer_floats(const model_config *c) {
    return 2 * (size_t)c->dim + 2 * (size_t)c->dim * c->dim + 2 * (size_t)c->kv_dim * c->dim +
           3 * (size_t)c->ffn_dim * c->dim;
}

size_t synth_part_bytes(const model_config *c, const model_part *p) {
    const int l1 = p->l1 < 0 ? c->n_layer : p->l1;
    size_t f = (size_t)(l1 - p->l0) * layer_floats(c);
    if (p->embed || p->head) f += (size_t)c->n_vocab * c->dim;   /* tied: one table */
    if (p->head) f += (size_t)c->dim;
    return f * sizeof(float);
}

static float *own(model *m, size_t n) {
    m->bytes_weights += n * sizeof(float);
    return model_own(m, n * sizeof(float));
}

static float *fill(model *m, uint64_t seed, uint32_t tensor, size_t n) {
    float *p = own(m, n), scale, offset;
    synth_tensor_params(&m->cfg, tensor, &scale, &offset);
    for (size_t i = 0; i < n; i++) p[i] = synth_value(seed, tensor, i, scale, offset);
    return p;
}

static void mat(model *m, qmat *q, uint64_t seed, uint32_t tensor, int64_t rows, int64_t cols) {
    q->type = GGML_TYPE_F32;
    q->rows = rows;
    q->cols = cols;
    q->row_bytes = (size_t)cols * sizeof(float);
    q->data = fill(m, seed, tensor, (size_t)rows * (size_t)cols);
}

int model_synth(model **out, const char *shape, uint64_t seed, const model_part *part, size_t max_bytes,
                char *err, size_t errlen) {
    *out = NULL;
    const model_config *c = synth_shape(shape);
    if (!c)
        return hat_err(err, errlen, HAT_ERR_ARG, "unknown synthetic shape '%s' (known: %s)", shape ? shape : "",
                       synth_shape_names());
    const int l1 = part->l1 < 0 ? c->n_layer : part->l1;
    if (part->l0 < 0 || part->l0 > l1 || l1 > c->n_layer)
        return hat_err(err, errlen, HAT_ERR_ARG, "layer range [%d, %d) is outside synthetic %s's %d layers", part->l0,
                       part->l1, shape, c->n_layer);
    const size_t bytes = synth_part_bytes(c, part);
    if (max_bytes && bytes > max_bytes)
        return hat_err(err, errlen, HAT_ERR_NOMEM,
                       "synthetic %s layers [%d, %d) need %.1f GiB of fp32 weights on the CPU, over the %.1f GiB limit",
                       shape, part->l0, l1, bytes / 1073741824.0, max_bytes / 1073741824.0);
    model *m = xcalloc(1, sizeof *m);
    m->cfg = *c;
    m->part = *part;
    m->part.l1 = l1;
    m->part.weights = MODEL_WEIGHTS_F32;
    snprintf(m->name, sizeof m->name, "synthetic %s seed %llu", shape, (unsigned long long)seed);
    m->layers = xcalloc((size_t)c->n_layer, sizeof(layer_weights));
    for (int l = part->l0; l < l1; l++) {
        layer_weights *w = &m->layers[l];
        w->attn_norm = fill(m, seed, SYNTH_T(l, SYNTH_ATTN_NORM), (size_t)c->dim);
        w->ffn_norm = fill(m, seed, SYNTH_T(l, SYNTH_FFN_NORM), (size_t)c->dim);
        mat(m, &w->wq, seed, SYNTH_T(l, SYNTH_WQ), c->dim, c->dim);
        mat(m, &w->wk, seed, SYNTH_T(l, SYNTH_WK), c->kv_dim, c->dim);
        mat(m, &w->wv, seed, SYNTH_T(l, SYNTH_WV), c->kv_dim, c->dim);
        mat(m, &w->wo, seed, SYNTH_T(l, SYNTH_WO), c->dim, c->dim);
        mat(m, &w->w_gate, seed, SYNTH_T(l, SYNTH_W_GATE), c->ffn_dim, c->dim);
        mat(m, &w->w_up, seed, SYNTH_T(l, SYNTH_W_UP), c->ffn_dim, c->dim);
        mat(m, &w->w_down, seed, SYNTH_T(l, SYNTH_W_DOWN), c->dim, c->ffn_dim);
    }
    /* the embedding doubles as the LM head (tied, as SmolLM2) */
    if (part->embed || part->head) mat(m, &m->tok_embd, seed, SYNTH_T_EMBED, c->n_vocab, c->dim);
    if (part->head) {
        m->out_norm = fill(m, seed, SYNTH_T_OUT_NORM, (size_t)c->dim);
        m->output = m->tok_embd;
        m->tied_output = 1;
    }
    /* streamed per decode step: the part's layers, one embedding row, the head */
    m->bytes_per_token = (size_t)(l1 - part->l0) * layer_floats(c) * sizeof(float) +
                         (part->embed ? (size_t)c->dim * sizeof(float) : 0) +
                         (part->head ? ((size_t)c->n_vocab + 1) * c->dim * sizeof(float) : 0);
    *out = m;
    return HAT_OK;
}
