/* cuda_weights.c — the CUDA backend's weights (cuda_internal.h): one allocation carved into every
 * layer's matrices and norms, filled with this rank's slices from the loaded GGUF part (each
 * matrix dequantised to fp32 on the host, converted to fp16/bf16 on the GPU) or generated on the
 * GPU by the synthetic generator (hk_synth_fill_range: no host copy, no file). */
#include "backends/cuda/cuda_internal.h"

#include "engine/quant.h"
#include "engine/synth.h"

#include <stdlib.h>
#include <string.h>

/* rows [r0, r0 + nr) x columns [c0, c0 + nc) of a matrix of the GGUF part into dst (nr, nc) [dtype],
 * through a host fp32 staging buffer and the GPU */
static int upload_sub(cu_impl *c, void *dst, const qmat *q, int64_t r0, int64_t nr, int64_t c0, int64_t nc, float *h_stage,
                      float *d_stage, size_t stage_floats, float *h_row, char *err, size_t errlen) {
    const size_t rows_per = stage_floats / (size_t)nc;
    const size_t es = hk_dtype_size(c->wt);
    for (int64_t i0 = 0; i0 < nr; i0 += (int64_t)rows_per) {
        const int64_t k = nr - i0 < (int64_t)rows_per ? nr - i0 : (int64_t)rows_per;
        for (int64_t r = 0; r < k; r++) {
            const uint8_t *src = (const uint8_t *)q->data + (size_t)(r0 + i0 + r) * q->row_bytes;
            if (c0 == 0 && nc == q->cols) dequantize_row(q->type, src, h_stage + r * nc, q->cols);
            else {
                dequantize_row(q->type, src, h_row, q->cols);
                memcpy(h_stage + r * nc, h_row + c0, (size_t)nc * sizeof(float));
            }
        }
        const size_t n = (size_t)k * (size_t)nc;
        CU(cudaMemcpyAsync(d_stage, h_stage, n * sizeof(float), cudaMemcpyHostToDevice, c->st), "upload weights");
        HK(hk_convert(c->st, (char *)dst + (size_t)i0 * nc * es, c->wt, d_stage, HK_F32, n));
        CU(cudaStreamSynchronize(c->st), "upload weights");   /* the staging buffers are reused */
    }
    return HAT_OK;
}

/* rows [r0, r0 + nr) x columns [c0, c0 + nc) of synthetic tensor `tensor` (rows x cols) into dst
 * (nr, nc) [t]: a row range is one contiguous element range; a column slice is generated whole into
 * scratch (rows x cols [t]) and copied out */
static int synth_sub(cu_impl *c, const model_config *mc, uint64_t seed, void *dst, hk_dtype t, uint32_t tensor,
                     int64_t cols, int64_t r0, int64_t nr, int64_t c0, int64_t nc, void *scratch, char *err, size_t errlen) {
    float scale, offset;
    synth_tensor_params(mc, tensor, &scale, &offset);
    if (c0 == 0 && nc == cols) {
        HK(hk_synth_fill_range(c->st, dst, t, (uint64_t)(r0 * cols), (size_t)(nr * cols), seed, tensor, scale, offset));
        return HAT_OK;
    }
    const size_t es = hk_dtype_size(t);
    HK(hk_synth_fill_range(c->st, scratch, t, (uint64_t)(r0 * cols), (size_t)(nr * cols), seed, tensor, scale, offset));
    CU(cudaMemcpy2DAsync(dst, (size_t)nc * es, (const char *)scratch + (size_t)c0 * es, (size_t)cols * es, (size_t)nc * es,
                         (size_t)nr, cudaMemcpyDeviceToDevice, c->st),
       "slicing synthetic weights");
    return HAT_OK;
}

/* c->layers into c->wmem: per layer Wqkv, Wo, Wgate|Wup, Wdown [dtype], then the two norms fp32 */
void cuda_weights_carve(cu_impl *c, const model_config *mc, int nl) {
    const int dim = mc->dim;
    const int kvd = c->kvd, qd = c->qd, fl = c->fl;
    const size_t es = hk_dtype_size(c->wt);
    /* carve the weights */
    c->layers = xcalloc((size_t)nl, sizeof *c->layers);
    char *p = c->wmem;
    for (int i = 0; i < nl; i++) {
        cu_layer *w = &c->layers[i];
        w->wqkv = p; p += (size_t)(qd + 2 * kvd) * dim * es;
        w->wo = p; p += (size_t)c->o_rows * c->o_cols * es;
        w->wgu = p; p += 2 * (size_t)fl * dim * es;
        w->wdown = p; p += (size_t)c->d_rows * c->d_cols * es;
        w->attn_norm = (float *)p; p += (size_t)dim * sizeof(float);
        w->ffn_norm = (float *)p; p += (size_t)dim * sizeof(float);
    }
}

/* where this rank's slices start in the whole model's matrices */
typedef struct { int64_t q0, k0, f0, o_r0, o_c0, d_r0, d_c0; } cu_slices;

/* synthetic: every tensor generated on the GPU into place (a column slice through scratch) */
static int fill_synth(cu_impl *c, const model_config *mc, const backend_desc *d, const cu_slices *sl, char *err,
                      size_t errlen) {
    const int dim = mc->dim, ffn = mc->ffn_dim, hd = mc->head_dim;
    const int exact = c->S > 1 && c->mode == TP_EXACT, qfull = mc->n_head * hd;
    const int kvd = c->kvd, qd = c->qd, fl = c->fl;
    const size_t es = hk_dtype_size(c->wt);
    const int64_t q0 = sl->q0, k0 = sl->k0, f0 = sl->f0, o_r0 = sl->o_r0, o_c0 = sl->o_c0, d_r0 = sl->d_r0, d_c0 = sl->d_c0;
    const uint64_t seed = d->synth.seed;
    void *scratch = NULL;
    if (c->S > 1 && !exact)
        CU(cudaMalloc(&scratch, es * (size_t)dim * (size_t)(ffn > qfull ? ffn : qfull)), "allocating the slicing buffer");
    int rc = HAT_OK;
    for (int l = d->l0; l < d->l1 && !rc; l++) {
        cu_layer *w = &c->layers[l - d->l0];
        char *wk = (char *)w->wqkv + (size_t)qd * dim * es, *wv = wk + (size_t)kvd * dim * es;
        char *wup = (char *)w->wgu + (size_t)fl * dim * es;
        if ((rc = synth_sub(c, mc, seed, w->wqkv, c->wt, SYNTH_T(l, SYNTH_WQ), dim, q0, qd, 0, dim, scratch, err, errlen)) ||
            (rc = synth_sub(c, mc, seed, wk, c->wt, SYNTH_T(l, SYNTH_WK), dim, k0, kvd, 0, dim, scratch, err, errlen)) ||
            (rc = synth_sub(c, mc, seed, wv, c->wt, SYNTH_T(l, SYNTH_WV), dim, k0, kvd, 0, dim, scratch, err, errlen)) ||
            (rc = synth_sub(c, mc, seed, w->wo, c->wt, SYNTH_T(l, SYNTH_WO), qfull, o_r0, c->o_rows, o_c0, c->o_cols,
                            scratch, err, errlen)) ||
            (rc = synth_sub(c, mc, seed, w->wgu, c->wt, SYNTH_T(l, SYNTH_W_GATE), dim, f0, fl, 0, dim, scratch, err, errlen)) ||
            (rc = synth_sub(c, mc, seed, wup, c->wt, SYNTH_T(l, SYNTH_W_UP), dim, f0, fl, 0, dim, scratch, err, errlen)) ||
            (rc = synth_sub(c, mc, seed, w->wdown, c->wt, SYNTH_T(l, SYNTH_W_DOWN), ffn, d_r0, c->d_rows, d_c0, c->d_cols,
                            scratch, err, errlen)) ||
            (rc = synth_sub(c, mc, seed, w->attn_norm, HK_F32, SYNTH_T(l, SYNTH_ATTN_NORM), dim, 0, 1, 0, dim, scratch, err,
                            errlen)) ||
            (rc = synth_sub(c, mc, seed, w->ffn_norm, HK_F32, SYNTH_T(l, SYNTH_FFN_NORM), dim, 0, 1, 0, dim, scratch, err,
                            errlen)))
            break;
        if (scratch && cudaStreamSynchronize(c->st) != cudaSuccess)   /* scratch is reused */
            rc = hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: generating synthetic weights");
    }
    cudaFree(scratch);
    if (rc) return rc;
    CU(cudaStreamSynchronize(c->st), "generating synthetic weights");
    return HAT_OK;
}

/* from the GGUF part: each matrix dequantised on the host, converted on the GPU, row block by row block */
static int fill_gguf(cu_impl *c, const model_config *mc, const backend_desc *d, const cu_slices *sl, char *err,
                     size_t errlen) {
    const int dim = mc->dim, ffn = mc->ffn_dim;
    const int kvd = c->kvd, qd = c->qd, fl = c->fl;
    const size_t es = hk_dtype_size(c->wt);
    const int64_t q0 = sl->q0, k0 = sl->k0, f0 = sl->f0, o_r0 = sl->o_r0, o_c0 = sl->o_c0, d_r0 = sl->d_r0, d_c0 = sl->d_c0;
    const model *m = d->m;
    size_t stage = (size_t)ffn * dim;   /* the largest matrix of a layer, in floats (or 64 MiB of rows) */
    if (stage > ((size_t)16 << 20)) stage = (size_t)16 << 20;
    if (stage < (size_t)(dim > ffn ? dim : ffn)) stage = (size_t)(dim > ffn ? dim : ffn);
    float *h_stage = NULL, *d_stage = NULL;
    CU(cudaMallocHost((void **)&h_stage, stage * sizeof(float)), "allocating the upload buffer");
    if (cudaMalloc((void **)&d_stage, stage * sizeof(float)) != cudaSuccess) {
        cudaFreeHost(h_stage);
        return hat_err(err, errlen, HAT_ERR_NOMEM, "backend cuda: allocating the upload buffer");
    }
    float *h_row = xmalloc((size_t)(dim > ffn ? dim : ffn) * sizeof(float));
    int rc = HAT_OK;
    for (int l = d->l0; l < d->l1 && !rc; l++) {
        const layer_weights *lw = &m->layers[l];
        cu_layer *w = &c->layers[l - d->l0];
        char *wk = (char *)w->wqkv + (size_t)qd * dim * es, *wv = wk + (size_t)kvd * dim * es;
        char *wup = (char *)w->wgu + (size_t)fl * dim * es;
#define UP(dst, q, r0, nr, c0, nc) \
        if (!rc) rc = upload_sub(c, dst, q, r0, nr, c0, nc, h_stage, d_stage, stage, h_row, err, errlen)
        UP(w->wqkv, &lw->wq, q0, qd, 0, dim);
        UP(wk, &lw->wk, k0, kvd, 0, dim);
        UP(wv, &lw->wv, k0, kvd, 0, dim);
        UP(w->wo, &lw->wo, o_r0, c->o_rows, o_c0, c->o_cols);
        UP(w->wgu, &lw->w_gate, f0, fl, 0, dim);
        UP(wup, &lw->w_up, f0, fl, 0, dim);
        UP(w->wdown, &lw->w_down, d_r0, c->d_rows, d_c0, c->d_cols);
#undef UP
        if (!rc && (cudaMemcpy(w->attn_norm, lw->attn_norm, sizeof(float) * dim, cudaMemcpyHostToDevice) != cudaSuccess ||
                    cudaMemcpy(w->ffn_norm, lw->ffn_norm, sizeof(float) * dim, cudaMemcpyHostToDevice) != cudaSuccess))
            rc = hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: uploading the norms of layer %d", l);
    }
    free(h_row);
    cudaFreeHost(h_stage);
    cudaFree(d_stage);
    return rc;
}

/* this rank's slices of every layer, from d->m or the synthetic generator */
int cuda_weights_fill(cu_impl *c, const model_config *mc, const backend_desc *d, char *err, size_t errlen) {
    const int exact = c->S > 1 && c->mode == TP_EXACT;
    const int kvd = c->kvd, qd = c->qd, fl = c->fl;
    /* fill them */
    /* this rank's slices: rows of Wq/Wk/Wv (heads), Wgate/Wup (FFN features); Wo and Wdown by rows
     * (exact: residual features) or by columns (allreduce: the heads' / FFN features' inputs) */
    const int64_t q0 = (int64_t)c->rank * qd, k0 = (int64_t)c->rank * kvd, f0 = (int64_t)c->rank * fl;
    const int64_t o_r0 = exact ? c->d0 : 0, o_c0 = exact || c->S == 1 ? 0 : q0;
    const int64_t d_r0 = exact ? c->d0 : 0, d_c0 = exact || c->S == 1 ? 0 : f0;
    const cu_slices sl = {q0, k0, f0, o_r0, o_c0, d_r0, d_c0};
    return d->m ? fill_gguf(c, mc, d, &sl, err, errlen) : fill_synth(c, mc, d, &sl, err, errlen);
}
