/* model.c — see model.h */
#include "engine/model.h"
#include "core/common.h"
#include "engine/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int model_read_config(const gguf_file *f, model_config *c, char *err, size_t errlen) {
    gguf_str arch;
    int rc;
    memset(c, 0, sizeof *c);
    if ((rc = gguf_get_str(f, "general.architecture", &arch, err, errlen))) return rc;
    if (arch.len != 5 || memcmp(arch.ptr, "llama", 5) != 0)
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "%s: architecture '%.*s' is not supported (llama is)",
                       f->path, (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
    uint32_t v;
#define U32(key, field) \
    do { if ((rc = gguf_get_u32(f, key, &v, err, errlen))) return rc; c->field = (int)v; } while (0)
    U32("llama.block_count", n_layer);
    U32("llama.embedding_length", dim);
    U32("llama.feed_forward_length", ffn_dim);
    U32("llama.attention.head_count", n_head);
    U32("llama.context_length", n_ctx_train);
#undef U32
    c->n_head_kv = c->n_head;
    if (gguf_find_kv(f, "llama.attention.head_count_kv")) {
        if ((rc = gguf_get_u32(f, "llama.attention.head_count_kv", &v, err, errlen))) return rc;
        c->n_head_kv = (int)v;
    }
    c->rope_base = 10000.0f;
    if (gguf_find_kv(f, "llama.rope.freq_base") &&
        (rc = gguf_get_f32(f, "llama.rope.freq_base", &c->rope_base, err, errlen)))
        return rc;
    c->norm_eps = 1e-5f;
    if (gguf_find_kv(f, "llama.attention.layer_norm_rms_epsilon") &&
        (rc = gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &c->norm_eps, err, errlen)))
        return rc;
    /* the vocabulary: token_embd's rows; a file of middle layers only (experiments/gguf_prune.py)
     * has no embedding and says llama.vocab_size instead */
    const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (emb && emb->n_dims != 2)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: token_embd.weight is not 2-D", f->path);
    if (!emb && !gguf_find_kv(f, "llama.vocab_size"))
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: token_embd.weight is missing (and no llama.vocab_size)", f->path);
    c->n_vocab = emb ? (int)emb->ne[1] : 0;
    if (gguf_find_kv(f, "llama.vocab_size")) {
        if ((rc = gguf_get_u32(f, "llama.vocab_size", &v, err, errlen))) return rc;
        if (emb && (int)v != c->n_vocab)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: llama.vocab_size %u disagrees with token_embd rows %d",
                           f->path, v, c->n_vocab);
        c->n_vocab = (int)v;
    }
    if (c->n_layer <= 0 || c->n_layer > 1024 || c->dim <= 0 || c->dim > 65536 || c->n_head <= 0 ||
        c->n_head_kv <= 0 || c->dim % c->n_head || c->n_head % c->n_head_kv || c->ffn_dim <= 0 ||
        c->ffn_dim > 1 << 20 || c->n_vocab <= 0 || c->n_ctx_train <= 0 || !(c->rope_base > 0) ||
        !(c->norm_eps > 0))
        return hat_err(err, errlen, HAT_ERR_FORMAT,
                       "%s: inconsistent hyper-parameters (layers %d, dim %d, heads %d/%d, ffn %d, vocab %d, context %d, "
                       "rope base %g, norm eps %g): each must be > 0, dim a multiple of heads, heads of kv heads",
                       f->path, c->n_layer, c->dim, c->n_head, c->n_head_kv, c->ffn_dim, c->n_vocab, c->n_ctx_train,
                       c->rope_base, c->norm_eps);
    c->head_dim = c->dim / c->n_head;
    c->kv_dim = c->head_dim * c->n_head_kv;
    c->rope_dim = c->head_dim;
    if (gguf_find_kv(f, "llama.rope.dimension_count")) {
        if ((rc = gguf_get_u32(f, "llama.rope.dimension_count", &v, err, errlen))) return rc;
        if ((int)v != c->head_dim)
            return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "%s: partial RoPE (%u of %d dims) is not supported",
                           f->path, v, c->head_dim);
    }
    if (c->head_dim % 2)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: head dimension %d is odd", f->path, c->head_dim);
    return HAT_OK;
}

#define MATMUL_TYPES ((1u << GGML_TYPE_F32) | (1u << GGML_TYPE_F16) | (1u << GGML_TYPE_BF16) | \
                      (1u << GGML_TYPE_Q4_0) | (1u << GGML_TYPE_Q4_1) | (1u << GGML_TYPE_Q8_0))

void *model_own(model *m, size_t bytes) {
    void *p = xmalloc_aligned(bytes);
    m->owned = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof(void *));
    CHECK(m->owned, "out of memory");
    m->owned[m->n_owned++] = p;
    m->bytes_heap += bytes;
    return p;
}

/* every scale (block types) or value (float types) of t finite: a corrupt tensor is refused at load */
static int check_finite(const model *m, const gguf_tensor *t, char *err, size_t errlen) {
    const int64_t bad = quant_first_nonfinite(t->type, t->data, t->nbytes);
    if (bad < 0) return HAT_OK;
    const int blocks = t->type == GGML_TYPE_Q4_0 || t->type == GGML_TYPE_Q4_1 || t->type == GGML_TYPE_Q8_0;
    return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: tensor %s: %s %lld is %s (corrupt weights)", m->file->path,
                   t->name, blocks ? "block" : "element", (long long)bad, blocks ? "scaled by Inf or NaN" : "Inf or NaN");
}

static int load_mat(model *m, qmat *q, const char *name, int64_t cols, int64_t rows, char *err, size_t errlen) {
    const gguf_tensor *t;
    int64_t ne[2] = {cols, rows};
    int rc = gguf_get_tensor(m->file, name, MATMUL_TYPES, 2, ne, &t, err, errlen);
    if (rc || (rc = check_finite(m, t, err, errlen))) return rc;
    m->bytes_weights += t->nbytes;
    q->rows = rows;
    q->cols = cols;
    if (m->part.weights == MODEL_WEIGHTS_F32) {
        float *w = model_own(m, (size_t)rows * (size_t)cols * sizeof(float));
        size_t rb = gguf_row_size(t->type, cols);
        for (int64_t r = 0; r < rows; r++)
            dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, w + r * cols, cols);
        q->type = GGML_TYPE_F32;
        q->data = w;
    } else {
        q->type = t->type;
        q->data = t->data;
    }
    q->row_bytes = gguf_row_size(q->type, cols);
    return HAT_OK;
}

static int load_norm(model *m, const float **out, const char *name, int64_t n, char *err, size_t errlen) {
    const gguf_tensor *t;
    int64_t ne[1] = {n};
    int rc = gguf_get_tensor(m->file, name, 1u << GGML_TYPE_F32, 1, ne, &t, err, errlen);
    if (rc || (rc = check_finite(m, t, err, errlen))) return rc;
    if ((uintptr_t)t->data % 4)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: tensor %s is not 4-byte aligned", m->file->path, name);
    m->bytes_weights += t->nbytes;
    *out = t->data;
    return HAT_OK;
}

static size_t mat_bytes(const qmat *q) { return (size_t)q->rows * q->row_bytes; }

/* weight bytes one decode step reads (as stored: quantised, or fp32 for the reference):
 * every held layer, one embedding row, the final norm and the whole LM head */
static size_t part_bytes_per_token(const model *m) {
    const model_config *c = &m->cfg;
    size_t b = 0;
    for (int l = m->part.l0; l < m->part.l1; l++) {
        const layer_weights *w = &m->layers[l];
        b += 2 * (size_t)c->dim * sizeof(float) + mat_bytes(&w->wq) + mat_bytes(&w->wk) + mat_bytes(&w->wv) +
             mat_bytes(&w->wo) + mat_bytes(&w->w_gate) + mat_bytes(&w->w_up) + mat_bytes(&w->w_down);
    }
    if (m->part.embed) b += m->tok_embd.row_bytes;
    if (m->part.head) b += (size_t)c->dim * sizeof(float) + mat_bytes(&m->output);
    return b;
}

int model_load_file(model **out, gguf_file *f, const model_part *part, char *err, size_t errlen) {
    *out = NULL;
    model *m = xcalloc(1, sizeof *m);
    m->file = f;
    m->part = *part;
    int rc = model_read_config(f, &m->cfg, err, errlen);
    if (rc) { model_free(m); return rc; }
    const model_config *c = &m->cfg;
    if (m->part.l1 < 0) m->part.l1 = c->n_layer;
    if (m->part.l0 < 0 || m->part.l0 > m->part.l1 || m->part.l1 > c->n_layer) {
        rc = hat_err(err, errlen, HAT_ERR_ARG, "layer range [%d, %d) is outside the model's %d layers",
                     part->l0, part->l1, c->n_layer);
        model_free(m);
        return rc;
    }
    gguf_str nm;
    if (gguf_get_str(f, "general.name", &nm, NULL, 0) == HAT_OK)
        snprintf(m->name, sizeof m->name, "%.*s", (int)(nm.len > 120 ? 120 : nm.len), nm.ptr);
    m->layers = xcalloc((size_t)c->n_layer, sizeof(layer_weights));
    char name[96];
    for (int l = m->part.l0; l < m->part.l1 && !rc; l++) {
        layer_weights *w = &m->layers[l];
#define MAT(field, suffix, cols, rows) \
        if (!rc) { snprintf(name, sizeof name, "blk.%d.%s.weight", l, suffix); \
                   rc = load_mat(m, &w->field, name, cols, rows, err, errlen); }
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        rc = load_norm(m, &w->attn_norm, name, c->dim, err, errlen);
        if (!rc) { snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
                   rc = load_norm(m, &w->ffn_norm, name, c->dim, err, errlen); }
        MAT(wq, "attn_q", c->dim, c->dim)
        MAT(wk, "attn_k", c->dim, c->kv_dim)
        MAT(wv, "attn_v", c->dim, c->kv_dim)
        MAT(wo, "attn_output", c->dim, c->dim)
        MAT(w_gate, "ffn_gate", c->dim, c->ffn_dim)
        MAT(w_up, "ffn_up", c->dim, c->ffn_dim)
        MAT(w_down, "ffn_down", c->ffn_dim, c->dim)
#undef MAT
    }
    if (!rc && (m->part.embed || (m->part.head && !gguf_find_tensor(f, "output.weight"))))
        rc = load_mat(m, &m->tok_embd, "token_embd.weight", c->dim, c->n_vocab, err, errlen);
    if (!rc && m->part.head) {
        rc = load_norm(m, &m->out_norm, "output_norm.weight", c->dim, err, errlen);
        if (!rc && gguf_find_tensor(f, "output.weight")) {
            rc = load_mat(m, &m->output, "output.weight", c->dim, c->n_vocab, err, errlen);
        } else if (!rc) {
            m->output = m->tok_embd;
            m->tied_output = 1;
        }
    }
    if (rc) { model_free(m); return rc; }
    m->bytes_per_token = part_bytes_per_token(m);
    *out = m;
    return HAT_OK;
}

int model_load(model **out, const char *path, const model_part *part, char *err, size_t errlen) {
    gguf_file *f;
    int rc = gguf_open(&f, path, err, errlen);
    if (rc) return rc;
    rc = model_load_file(out, f, part, err, errlen);
    if (rc) gguf_close(f);
    else (*out)->owns_file = 1;
    return rc;
}

void model_free(model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    if (m->owns_file) gguf_close(m->file);
    free(m);
}

void model_describe(const model *m, char *buf, size_t len) {
    const model_config *c = &m->cfg;
    snprintf(buf, len,
             "%s: layers [%d,%d) of %d%s%s, dim %d, heads %d/%d, ffn %d, vocab %d; weights %s: "
             "%.1f MiB in file, %.1f MiB on heap, %.1f MiB streamed per token",
             m->name[0] ? m->name : "model", m->part.l0, m->part.l1, c->n_layer,
             m->part.embed ? " +embed" : "", m->part.head ? " +head" : "", c->dim, c->n_head,
             c->n_head_kv, c->ffn_dim, c->n_vocab,
             m->part.weights == MODEL_WEIGHTS_F32 ? "fp32 (dequantised reference)" : "quantised in place",
             m->bytes_weights / 1048576.0, m->bytes_heap / 1048576.0, m->bytes_per_token / 1048576.0);
}

double model_part_params(const model_config *c, int l0, int l1, int head) {
    const double per_layer = 2.0 * c->dim * c->dim + 2.0 * c->kv_dim * c->dim + 3.0 * c->ffn_dim * c->dim;
    return per_layer * (l1 - l0) + (head ? (double)c->n_vocab * c->dim : 0.0);
}
