/* tp.c — see tp.h */
#include "engine/tp.h"

#include "core/common.h"
#include "engine/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tp_check(const model_config *c, int size, int mode, int wtype, char *err, size_t errlen) {
    if (size < 1) return hat_err(err, errlen, HAT_ERR_ARG, "tensor parallelism: group size %d", size);
    if (size == 1) return HAT_OK;
    if (c->n_head % size || c->n_head_kv % size)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "tensor parallelism: %d ranks do not divide the model's %d query heads and %d kv heads "
                       "(each rank takes whole heads; possible group sizes divide both)", size, c->n_head, c->n_head_kv);
    if (c->ffn_dim % size || c->dim % size)
        return hat_err(err, errlen, HAT_ERR_ARG, "tensor parallelism: %d ranks do not divide the FFN width %d and the width %d",
                       size, c->ffn_dim, c->dim);
    if (mode == TP_EXACT) return HAT_OK;
    if (mode != TP_ALLREDUCE) return hat_err(err, errlen, HAT_ERR_ARG, "tensor parallelism: unknown mode %d", mode);
    size_t blck = 1;
    if (wtype >= 0 && !gguf_type_block((ggml_type)wtype, &blck, NULL))
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "tensor parallelism: weight type %s", gguf_type_name((ggml_type)wtype));
    if ((c->ffn_dim / size) % (int)blck)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "tensor parallelism (allreduce): %d ranks do not divide the FFN width %d into whole %zu-element blocks of %s",
                       size, c->ffn_dim, blck, gguf_type_name((ggml_type)wtype));
    if ((c->n_head / size * c->head_dim) % (int)blck)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "tensor parallelism (allreduce): %d heads of %d per rank are not whole %zu-element blocks",
                       c->n_head / size, c->head_dim, blck);
    return HAT_OK;
}

void tp_shard_config(const model_config *full, int size, model_config *out) {
    *out = *full;
    if (size <= 1) return;
    out->n_head = full->n_head / size;
    out->n_head_kv = full->n_head_kv / size;
    out->kv_dim = out->n_head_kv * full->head_dim;
    out->ffn_dim = full->ffn_dim / size;
}

/* rows [r0, r0 + n) of q: a view */
static qmat rows_of(const qmat *q, int64_t r0, int64_t n) {
    qmat o = *q;
    o.rows = n;
    o.data = (const uint8_t *)q->data + (size_t)r0 * q->row_bytes;
    return o;
}

/* columns [c0, c0 + n) of q: a copy (block-aligned, checked by tp_check) */
static qmat cols_of(model *m, const qmat *q, int64_t c0, int64_t n) {
    size_t blck, bb;
    CHECK(gguf_type_block(q->type, &blck, &bb) && c0 % (int64_t)blck == 0 && n % (int64_t)blck == 0,
          "tensor parallelism: column slice [%lld, %lld) of a %s matrix is not block-aligned", (long long)c0,
          (long long)(c0 + n), gguf_type_name(q->type));
    qmat o = *q;
    o.cols = n;
    o.row_bytes = gguf_row_size(q->type, n);
    uint8_t *d = model_own(m, (size_t)q->rows * o.row_bytes);
    const size_t off = (size_t)c0 / blck * bb;
    for (int64_t r = 0; r < q->rows; r++)
        memcpy(d + (size_t)r * o.row_bytes, (const uint8_t *)q->data + (size_t)r * q->row_bytes + off, o.row_bytes);
    o.data = d;
    return o;
}

int model_tp_shard(model **out, const model *full, int r, int size, int mode, char *err, size_t errlen) {
    *out = NULL;
    const model_config *c = &full->cfg;
    const int l0 = full->part.l0, l1 = full->part.l1;
    int wtype = -1;
    if (l1 > l0) wtype = (int)full->layers[l0].wo.type;
    int rc = tp_check(c, size, mode, wtype, err, errlen);
    if (rc) return rc;
    if (r < 0 || r >= size) return hat_err(err, errlen, HAT_ERR_ARG, "tensor parallelism: rank %d of %d", r, size);
    model *m = xcalloc(1, sizeof *m);
    tp_shard_config(c, size, &m->cfg);
    m->full_cfg = *c;
    m->tp_rank = r;
    m->tp_size = size;
    m->tp_mode = mode;
    m->part = (model_part){.l0 = l0, .l1 = l1, .weights = full->part.weights};
    snprintf(m->name, sizeof m->name, "%.100s [tp %s %d/%d]", full->name, tp_mode_name(mode), r % 1000, size % 1000);
    m->layers = xcalloc((size_t)c->n_layer, sizeof(layer_weights));
    const int hd = c->head_dim, qd = m->cfg.n_head * hd, kvd = m->cfg.kv_dim, ffn = m->cfg.ffn_dim;
    const int64_t q0 = (int64_t)tp_head0(c, r, size) * hd, k0 = (int64_t)tp_kvhead0(c, r, size) * hd,
                  f0 = tp_ffn0(c, r, size), d0 = tp_dim0(c, r, size), ds = c->dim / size;
    for (int l = l0; l < l1; l++) {
        const layer_weights *w = &full->layers[l];
        layer_weights *s = &m->layers[l];
        s->attn_norm = w->attn_norm;
        s->ffn_norm = w->ffn_norm;
        s->wq = rows_of(&w->wq, q0, qd);
        s->wk = rows_of(&w->wk, k0, kvd);
        s->wv = rows_of(&w->wv, k0, kvd);
        s->w_gate = rows_of(&w->w_gate, f0, ffn);
        s->w_up = rows_of(&w->w_up, f0, ffn);
        if (mode == TP_EXACT) {
            s->wo = rows_of(&w->wo, d0, ds);
            s->w_down = rows_of(&w->w_down, d0, ds);
        } else {
            s->wo = cols_of(m, &w->wo, q0, qd);
            s->w_down = cols_of(m, &w->w_down, f0, ffn);
        }
        const qmat *all[] = {&s->wq, &s->wk, &s->wv, &s->wo, &s->w_gate, &s->w_up, &s->w_down};
        m->bytes_weights += 2 * (size_t)c->dim * sizeof(float);
        for (int i = 0; i < 7; i++) m->bytes_weights += (size_t)all[i]->rows * all[i]->row_bytes;
    }
    m->bytes_per_token = m->bytes_weights;
    *out = m;
    return HAT_OK;
}
