/* forward.c — see forward.h.
 *
 * Numerics mirror llama.cpp's CPU graph for LLaMA (llama.cpp src/llama-model.cpp, ggml-cpu ops):
 *  - RMSNorm: sum of squares in double, scale = 1/sqrtf(mean + eps), then x*scale*w;
 *  - matmuls: activations quantised per 32-block to Q8_1/Q8_0, integer dots (quant.c);
 *  - RoPE "normal" mode (adjacent pairs), theta_i = pos * base^(-2i/d) by repeated float
 *    multiplication as ggml builds its cache, rotation with its FMA grouping;
 *  - attention without flash-attn: K,V stored fp16, q rounded to fp16 for the QK dot, the
 *    QK and PV products summed in tinyBLAS's lane order (vecmath.h),
 *    softmax in fp32 with llama.cpp's exp and summation order (vecmath.h), probabilities
 *    rounded to fp16 for the PV product;
 *  - SwiGLU silu(g)*u in fp32 with the same exp; residual adds in fp32.
 * The fp32 reference weight layout (MODEL_WEIGHTS_F32) skips the activation quantisation
 * and uses OpenBLAS sgemm (prompt) / sgemv (one token).
 */
#include "engine/forward.h"
#include "core/common.h"
#include "engine/quant.h"
#include "engine/vecmath.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int imax(int a, int b) { return a > b ? a : b; }

int forward_init(forward_state *s, const model *m, int max_tok, int n_ctx, int max_logit_rows,
                 int n_threads, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    const model_config *c = &m->cfg;
    if (c->head_dim % 64)
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "forward: head dimension %d is not a multiple of 64", c->head_dim);
    if (max_tok <= 0 || n_ctx <= 0 || n_threads <= 0 || max_logit_rows < 0 || max_logit_rows > max_tok)
        return hat_err(err, errlen, HAT_ERR_ARG, "forward_init: bad sizes (max_tok %d, n_ctx %d, threads %d, logit rows %d)",
                       max_tok, n_ctx, n_threads, max_logit_rows);
    s->n_threads = n_threads;
    openblas_set_num_threads(n_threads);   /* the fp32 reference path's sgemm/sgemv */
    s->max_tok = max_tok;
    s->n_ctx = n_ctx;
    s->max_logit_rows = max_logit_rows;
    size_t T = (size_t)max_tok;
    int wide = imax(c->dim, c->ffn_dim);
    if (m->tp_size > 1) wide = imax(wide, m->full_cfg.ffn_dim);   /* exact mode: Wdown's input is the whole FFN row */
    s->x = xmalloc_aligned(T * c->dim * sizeof(float));
    s->xb = xmalloc_aligned(T * wide * sizeof(float));
    s->q = xmalloc_aligned(T * c->dim * sizeof(float));
    s->k = xmalloc_aligned(T * c->kv_dim * sizeof(float));
    s->v = xmalloc_aligned(T * c->kv_dim * sizeof(float));
    s->att = xmalloc_aligned(T * c->dim * sizeof(float));
    s->hb = xmalloc_aligned(T * c->ffn_dim * sizeof(float));
    s->hb2 = xmalloc_aligned(T * c->ffn_dim * sizeof(float));
    /* widest activation row over every weight type this part uses: Q8_1 of the ffn width
     * bounds them all (36 bytes per 32 < 4 bytes per element of the fp32 rows) */
    s->act_row = (size_t)wide * sizeof(float);
    s->act = xmalloc_aligned(T * s->act_row);
    s->scores = xmalloc_aligned((size_t)n_threads * n_ctx * sizeof(float));
    s->q16 = xmalloc_aligned((size_t)n_threads * c->head_dim * sizeof(uint16_t));
    s->lanes = xmalloc_aligned((size_t)n_threads * VM_LANES_SINGLE * c->head_dim * sizeof(float));
    s->rope = xmalloc_aligned(T * c->head_dim * sizeof(float));
    s->tpos = xmalloc(T * sizeof(int));
    s->tseq = xmalloc(T * sizeof(int));
    if (max_logit_rows > 0) s->logits = xmalloc_aligned((size_t)max_logit_rows * c->n_vocab * sizeof(float));
    if (m->tp_size > 1 && m->tp_mode == TP_EXACT) {
        s->tp_recv = xmalloc_aligned(T * imax(m->full_cfg.dim, m->full_cfg.ffn_dim) * sizeof(float));
        s->tp_wide = xmalloc_aligned(T * m->full_cfg.ffn_dim * sizeof(float));
    }
    return HAT_OK;
}

void forward_free(forward_state *s) {
    free(s->x); free(s->xb); free(s->q); free(s->k); free(s->v); free(s->att);
    free(s->hb); free(s->hb2); free(s->act); free(s->scores); free(s->q16); free(s->lanes); free(s->rope);
    free(s->logits); free(s->tpos); free(s->tseq); free(s->tp_recv); free(s->tp_wide);
    memset(s, 0, sizeof *s);
}

size_t forward_plan_bytes(const model_config *c, int max_tok, int n_ctx, int max_logit_rows, int n_threads) {
    const size_t T = (size_t)max_tok, wide = (size_t)imax(c->dim, c->ffn_dim), th = (size_t)n_threads;
    return 4 * T * (3 * c->dim + wide + 2 * c->kv_dim + 2 * c->ffn_dim) + T * wide * sizeof(float) +
           4 * th * (size_t)n_ctx + 2 * th * c->head_dim + 4 * VM_LANES_SINGLE * th * c->head_dim +
           4 * T * c->head_dim + 4 * (size_t)max_logit_rows * c->n_vocab + 2 * T * sizeof(int);
}

size_t forward_bytes(const forward_state *s, const model *m) {
    const model_config *c = &m->cfg;
    const size_t T = (size_t)s->max_tok;
    const size_t wide = (size_t)imax(c->dim, c->ffn_dim), wide_tp = m->tp_size > 1 ? (size_t)imax((int)wide, m->full_cfg.ffn_dim) : wide;
    const size_t tpb = s->tp_recv ? 4 * T * ((size_t)imax(m->full_cfg.dim, m->full_cfg.ffn_dim) + m->full_cfg.ffn_dim) : 0;
    return tpb + 8 * T * (wide_tp - wide) + forward_plan_bytes(c, s->max_tok, s->n_ctx, s->max_logit_rows, s->n_threads);
}

/* out (n, dim) = x (n, dim) / rms(x) * w  — per row */
static void rmsnorm(float *out, const float *x, const float *w, int n, int dim, float eps) {
    for (int t = 0; t < n; t++) {
        const float *xr = x + (size_t)t * dim;
        float *o = out + (size_t)t * dim;
        double ss = 0.0;
        for (int i = 0; i < dim; i++) ss += (double)(xr[i] * xr[i]);
        const float scale = 1.0f / sqrtf((float)(ss / dim) + eps);
        for (int i = 0; i < dim; i++) o[i] = (xr[i] * scale) * w[i];
    }
}

/* out (n, W.rows) = x (n, W.cols) @ W^T. x is quantised into s->act in W's activation format;
 * same_input=1 says x is unchanged since the previous matmul, whose quantised copy is then
 * reused if it has the format W needs. */
static void matmul(forward_state *s, float *out, const float *x, const qmat *W, int n, int same_input) {
    const int64_t rows = W->rows, cols = W->cols;
    if (W->type == GGML_TYPE_F32) {
        if (n == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)cols, 1.0f, W->data, (int)cols, x, 1, 0.0f, out, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, (int)rows, (int)cols, 1.0f, x, (int)cols,
                        W->data, (int)cols, 0.0f, out, (int)rows);
        return;
    }
    const size_t arow = quant_act_row_size(W->type, cols);
    const ggml_type at = quant_vec_dot_type(W->type);
    const void *act = x;
    if (at != GGML_TYPE_F32) {
        if (!same_input || s->act_type != (int)at) {
#pragma omp parallel for num_threads(s->n_threads) schedule(static) if (n > 4)
            for (int t = 0; t < n; t++) quantize_act_row(W->type, x + (size_t)t * cols, s->act + (size_t)t * arow, cols);
            s->act_type = (int)at;
        }
        act = s->act;
    }
    const uint8_t *wd = W->data;
    const size_t wrow = W->row_bytes;
    const ggml_type wt = W->type;
    /* blocks of 16 weight rows stay in L1 while every token's activation row streams by */
    const int64_t RB = 16, nblk = (rows + RB - 1) / RB;
#pragma omp parallel for num_threads(s->n_threads) schedule(static)
    for (int64_t b = 0; b < nblk; b++) {
        const int64_t r0 = b * RB, r1 = r0 + RB < rows ? r0 + RB : rows;
        for (int t = 0; t < n; t++) {
            const uint8_t *a = (const uint8_t *)act + (size_t)t * arow;
            float *o = out + (size_t)t * rows;
            /* multi-row kernel for batches (+12% prompt speed); one row at a time for a single
             * token, where it measured 17% faster (both give identical bits) */
            if (n > 1) quant_dot_rows(wt, cols, wd + (size_t)r0 * wrow, wrow, r1 - r0, a, o + r0);
            else for (int64_t r = r0; r < r1; r++) o[r] = quant_dot(wt, cols, wd + (size_t)r * wrow, a);
        }
    }
}

/* cs (n, head_dim): (cos, sin) of theta_i = pos[t] * base^(-2i/d), the angles by repeated
 * float multiplication as ggml builds its cache. Once per forward call: every layer and both
 * q and k use the same table. */
static void rope_table(float *cs, int n, int head_dim, const int *pos, float base) {
    const float theta_scale = powf(base, -2.0f / (float)head_dim);
    for (int t = 0; t < n; t++) {
        float theta = (float)pos[t];
        for (int i = 0; i < head_dim; i += 2) {
            cs[(size_t)t * head_dim + i] = cosf(theta);
            cs[(size_t)t * head_dim + i + 1] = sinf(theta);
            theta *= theta_scale;
        }
    }
}

/* in-place RoPE on (n, n_heads * head_dim) rows with the table of rope_table */
static void rope(float *x, const float *cs_table, int n, int n_heads, int head_dim) {
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < n_heads; h++) {
            float *p = x + ((size_t)t * n_heads + h) * head_dim;
            const float *cs = cs_table + (size_t)t * head_dim;
            for (int i = 0; i < head_dim; i += 2) {
                const float x0 = p[i], x1 = p[i + 1], c = cs[i], sn = cs[i + 1];
                /* x0 cos - x1 sin and x0 sin + x1 cos, with the first product fused: llama.cpp
                 * builds its RoPE as C++ where GCC contracts these into FMAs this way (measured:
                 * the other groupings change its layer-0 output at some positions) */
                p[i] = fmaf(x0, c, -(x1 * sn));
                p[i + 1] = fmaf(x0, sn, x1 * c);
            }
        }
    }
}

/* att (n, dim) = causal softmax(q k^T / sqrt(hd)) v, token t of sequence tseq[t] at position
 * tpos[t] over its cache positions [0, tpos[t]] */
static void attention(forward_state *s, const model_config *c, const forward_seq *seqs, int layer, int n) {
    const int hd = c->head_dim, group = c->n_head / c->n_head_kv, qd = c->n_head * hd;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for num_threads(s->n_threads) schedule(dynamic, 1) if (n * c->n_head > 1)
    for (int th = 0; th < n * c->n_head; th++) {
        const int t = th / c->n_head, h = th % c->n_head, kvh = h / group, npos = s->tpos[t] + 1;
        const forward_seq *sq = &seqs[s->tseq[t]];
        const kvcache *kv = sq->kv;
        /* llama.cpp's kernel choice for a call of this sequence's size */
        const int lanes = sq->n_tok == 1 || sq->decode ? VM_LANES_SINGLE : VM_LANES_BATCH;
        const int tid = omp_get_thread_num();
        float *sc = s->scores + (size_t)tid * s->n_ctx;
        uint16_t *q16 = s->q16 + (size_t)tid * hd;
        fp32_to_fp16_row(s->q + (size_t)t * qd + (size_t)h * hd, q16, hd);
        float mx = -INFINITY;
        for (int p = 0; p < npos; p++) {
            sc[p] = vm_dot_f16_lanes(lanes, hd, kvcache_k(kv, layer, p) + (size_t)kvh * hd, q16) * scale;
            mx = sc[p] > mx ? sc[p] : mx;
        }
        const float inv = (float)(1.0 / vm_softmax_exp(npos, sc, mx));
        float *acc = s->lanes + (size_t)tid * VM_LANES_SINGLE * hd;
        memset(acc, 0, (size_t)lanes * hd * sizeof(float));
        for (int p = 0; p < npos; p++) {
            /* probabilities enter the PV product rounded to fp16, as llama.cpp converts them */
            const float pr = fp16_to_fp32(fp32_to_fp16(sc[p] * inv));
            vm_lane_fma_f16(hd, acc + (size_t)(p % lanes) * hd, kvcache_v(kv, layer, p) + (size_t)kvh * hd, pr);
        }
        vm_lanes_reduce(lanes, hd, acc, s->att + (size_t)t * qd + (size_t)h * hd);
    }
}

/* TP_EXACT: out (n, size * w) = every rank's in (n, w) side by side, in rank order */
static void tp_gather_cols(forward_state *s, const tp_comm *tp, const float *in, float *out, int n, int w, int layer,
                           const char *what) {
    char err[256];
    CHECK(tp->allgather(tp->ctx, in, s->tp_recv, (size_t)n * w * sizeof(float), err, sizeof err) == 0,
          "forward: layer %d %s all-gather (tp rank %d of %d): %s", layer, what, tp->rank, tp->size, err);
    const int W = w * tp->size;
    for (int r = 0; r < tp->size; r++)
        for (int t = 0; t < n; t++)
            memcpy(out + (size_t)t * W + (size_t)r * w, s->tp_recv + ((size_t)r * n + t) * w, (size_t)w * sizeof(float));
}

/* x += xb. Under tensor parallelism (tp.h) xb is this rank's share:
 *  - exact: its residual features [d0, d0 + w): xb = x[:, d0:d0+w] + xb (the unsplit x[i] += xb[i]
 *    bit for bit: IEEE addition commutes), then every rank's slice is gathered into x;
 *  - allreduce: its partial product: rank 0 adds it to the residual, the others contribute it
 *    alone, and the group's sum is the new residual. */
static void residual_add(forward_state *s, int n, int dim, const tp_comm *tp, int exact, int layer, const char *what) {
    if (exact) {
        const int w = dim / tp->size, d0 = tp->rank * w;
        for (int t = 0; t < n; t++)
            for (int i = 0; i < w; i++) s->xb[(size_t)t * w + i] += s->x[(size_t)t * dim + d0 + i];
        tp_gather_cols(s, tp, s->xb, s->x, n, w, layer, what);
        return;
    }
    const size_t N = (size_t)n * dim;
    if (!tp_active(tp) || tp->rank == 0)
        for (size_t i = 0; i < N; i++) s->x[i] += s->xb[i];
    else
        memcpy(s->x, s->xb, N * sizeof(float));
    if (tp_active(tp)) {
        char err[256];
        CHECK(tp->allreduce(tp->ctx, s->x, N, err, sizeof err) == 0, "forward: layer %d %s all-reduce (tp rank %d of %d): %s",
              layer, what, tp->rank, tp->size, err);
    }
}

void forward_run(const model *m, kvcache *kv, forward_state *s, const forward_args *a) {
    const forward_seq seq = {kv, a->pos0, a->n_tok, a->decode};
    const forward_batch_args b = {a->tokens, a->hidden_in, &seq, 1, a->l0, a->l1, a->head, a->logits_all, NULL};
    forward_run_batch(m, s, &b);
}

/* the batch's positions into s->tpos / s->tseq, every sequence checked; returns its token count */
static int batch_positions(const model *m, forward_state *s, const forward_batch_args *a, int runs) {
    int n = 0;
    for (int i = 0; i < a->n_seq; i++) {
        const forward_seq *q = &a->seqs[i];
        const kvcache *kv = q->kv;
        CHECK(q->n_tok > 0 && n + q->n_tok <= s->max_tok, "forward: %d tokens, buffers sized for %d", n + q->n_tok, s->max_tok);
        CHECK(!runs || (a->l0 >= kv->l0 && a->l1 <= kv->l1),
              "forward: layers [%d,%d) outside the cache's [%d,%d)", a->l0, a->l1, kv->l0, kv->l1);
        CHECK(q->pos0 >= 0 && q->pos0 <= kv->n && q->pos0 + q->n_tok <= kv->n_ctx,
              "forward: positions [%d,%d) with %d cached, context %d", q->pos0, q->pos0 + q->n_tok, kv->n, kv->n_ctx);
        CHECK(q->pos0 + q->n_tok <= s->n_ctx, "forward: position %d past the scratch context %d", q->pos0 + q->n_tok, s->n_ctx);
        for (int j = 0; j < i; j++) CHECK(a->seqs[j].kv != kv || !runs, "forward: one cache in two sequences of a batch");
        for (int t = 0; t < q->n_tok; t++) { s->tpos[n + t] = q->pos0 + t; s->tseq[n + t] = i; }
        n += q->n_tok;
    }
    return n;
}

/* the input rows into s->x: embedded tokens, or the hidden states given */
static void batch_input(const model *m, forward_state *s, const forward_batch_args *a, int n) {
    const model_config *c = &m->cfg;
    const int dim = c->dim;
    if (a->tokens) {
        CHECK(m->part.embed, "forward: token input but this part holds no embedding");
        for (int t = 0; t < n; t++) {
            CHECK(a->tokens[t] >= 0 && a->tokens[t] < c->n_vocab, "forward: token id %d out of range [0,%d)",
                  a->tokens[t], c->n_vocab);
            dequantize_row(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)a->tokens[t] * m->tok_embd.row_bytes,
                           s->x + (size_t)t * dim, dim);
        }
    } else {
        CHECK(a->hidden_in, "forward: neither tokens nor hidden states given");
        if (a->hidden_in != s->x) memcpy(s->x, a->hidden_in, (size_t)n * dim * sizeof(float));
    }
}

/* one decoder layer l over the batch's n rows of s->x, in place */
static void batch_layer(const model *m, forward_state *s, const forward_batch_args *a, int l, int n, int exact) {
    const model_config *c = &m->cfg;
    const int dim = c->dim, kvd = c->kv_dim, ffn = c->ffn_dim;
    const layer_weights *w = &m->layers[l];
    rmsnorm(s->xb, s->x, w->attn_norm, n, dim, c->norm_eps);
    matmul(s, s->q, s->xb, &w->wq, n, 0);
    matmul(s, s->k, s->xb, &w->wk, n, 1);
    matmul(s, s->v, s->xb, &w->wv, n, 1);
    rope(s->q, s->rope, n, c->n_head, c->head_dim);
    rope(s->k, s->rope, n, c->n_head_kv, c->head_dim);
    for (int t = 0; t < n; t++) {
        const kvcache *kv = a->seqs[s->tseq[t]].kv;
        fp32_to_fp16_row(s->k + (size_t)t * kvd, kvcache_k(kv, l, s->tpos[t]), kvd);
        fp32_to_fp16_row(s->v + (size_t)t * kvd, kvcache_v(kv, l, s->tpos[t]), kvd);
    }
    attention(s, c, a->seqs, l, n);
    /* TP_EXACT (tp.h): Wo and Wdown take the whole input row, gathered from every rank */
    const float *att = s->att, *hb = s->hb;
    if (exact) {
        tp_gather_cols(s, a->tp, s->att, s->q, n, c->n_head * c->head_dim, l, "attention output");   /* q: free */
        att = s->q;
    }
    matmul(s, s->xb, att, &w->wo, n, 0);
    residual_add(s, n, dim, a->tp, exact, l, "attention");
    rmsnorm(s->xb, s->x, w->ffn_norm, n, dim, c->norm_eps);
    matmul(s, s->hb, s->xb, &w->w_gate, n, 0);
    matmul(s, s->hb2, s->xb, &w->w_up, n, 1);
    vm_swiglu((int64_t)n * ffn, s->hb, s->hb, s->hb2);
    if (exact) {
        tp_gather_cols(s, a->tp, s->hb, s->tp_wide, n, ffn, l, "SwiGLU output");
        hb = s->tp_wide;
    }
    matmul(s, s->xb, hb, &w->w_down, n, 0);
    residual_add(s, n, dim, a->tp, exact, l, "FFN");
}

/* final norm and LM head: logits of every row (logits_all) or of each sequence's last row */
static void batch_head(const model *m, forward_state *s, const forward_batch_args *a, int n) {
    const model_config *c = &m->cfg;
    const int dim = c->dim;
    CHECK(m->part.head && a->l1 == c->n_layer, "forward: LM head asked for after layer %d of %d", a->l1, c->n_layer);
    const int rows = a->logits_all ? n : a->n_seq;
    CHECK(rows <= s->max_logit_rows, "forward: %d logit rows, buffers sized for %d", rows, s->max_logit_rows);
    if (a->logits_all || a->n_seq == 1) {
        rmsnorm(s->xb, s->x + (size_t)(n - rows) * dim, m->out_norm, rows, dim, c->norm_eps);
    } else {   /* the last token of each sequence */
        int end = 0;
        for (int i = 0; i < a->n_seq; i++) {
            end += a->seqs[i].n_tok;
            rmsnorm(s->xb + (size_t)i * dim, s->x + (size_t)(end - 1) * dim, m->out_norm, 1, dim, c->norm_eps);
        }
    }
    matmul(s, s->logits, s->xb, &m->output, rows, 0);
}

void forward_run_batch(const model *m, forward_state *s, const forward_batch_args *a) {
    const model_config *c = &m->cfg;
    const int runs = a->l1 > a->l0;
    CHECK(a->n_seq >= 1, "forward: no sequence");
    CHECK(a->l0 >= m->part.l0 && a->l1 <= m->part.l1 && a->l0 <= a->l1,
          "forward: layers [%d,%d) outside the loaded part [%d,%d)", a->l0, a->l1, m->part.l0, m->part.l1);
    const int n = batch_positions(m, s, a, runs);
    batch_input(m, s, a, n);
    if (runs) rope_table(s->rope, n, c->head_dim, s->tpos, c->rope_base);
    s->act_type = -1;   /* s->act holds nothing of this call yet */
    const int exact = tp_active(a->tp) && m->tp_mode == TP_EXACT;
    CHECK(!tp_active(a->tp) || (m->tp_size == a->tp->size && m->tp_rank == a->tp->rank && (!exact || s->tp_recv)),
          "forward: tensor-parallel group (rank %d of %d) and shard (rank %d of %d) disagree", a->tp->rank, a->tp->size,
          m->tp_rank, m->tp_size);
    for (int l = a->l0; l < a->l1; l++) batch_layer(m, s, a, l, n, exact);
    if (runs)
        for (int i = 0; i < a->n_seq; i++) a->seqs[i].kv->n = a->seqs[i].pos0 + a->seqs[i].n_tok;
    if (a->head) batch_head(m, s, a, n);
}
