/* cuda_layers.c — the layer loop of one step of the CUDA backend (cuda_internal.h has the math):
 * the kernels of kernels/, the products of cuda_gemm.c and, under tensor parallelism, the
 * collectives of cuda_tp.c, all enqueued on the backend's stream. */
#include "backends/cuda/cuda_internal.h"

/* enqueues layers [l0, l1) of one step of tok tokens (x holds their inputs; d_meta their slots and
 * positions) on the stream: directly, or inside a graph capture */
int cuda_layers(backend *b, cu_impl *c, int tok, int max_pos, char *err, size_t errlen) {
    const model_config *mc = &b->cfg;
    const int dim = mc->dim;
    const int32_t *d_slot = c->d_meta, *d_pos = c->d_meta + b->max_tok;
    const int qd = c->qd, kvl = c->kvd, fl = c->fl, tp = c->S > 1, exact = tp && c->mode == TP_EXACT;
    const float beta_res = !tp || exact || c->rank == 0 ? 1.0f : 0.0f;   /* allreduce: rank 0 keeps the residual */
    for (int l = b->l0; l < b->l1; l++) {
        const int li = l - b->l0;
        const cu_layer *w = &c->layers[li];
        const size_t es = hk_dtype_size(c->wt);
        HK(hk_rmsnorm(c->st, c->xn, c->wt, c->x, w->attn_norm, tok, dim, mc->norm_eps));
        if (cuda_gemm(c, c->q, w->wqkv, c->xn, tok, qd, dim, 0.0f, err, errlen) ||
            cuda_gemm(c, c->k, (const char *)w->wqkv + (size_t)qd * dim * es, c->xn, tok, kvl, dim, 0.0f, err, errlen) ||
            cuda_gemm(c, c->v, (const char *)w->wqkv + ((size_t)qd + kvl) * dim * es, c->xn, tok, kvl, dim, 0.0f, err, errlen))
            return HAT_ERR_UNSUPPORTED;
        HK(hk_rope(c->st, c->q, c->k, d_pos, tok, c->hl, c->hkvl, mc->head_dim, mc->rope_dim, mc->rope_base));
        HK(hk_kv_store(c->st, c->d_kc, c->d_vc, c->k, c->v, d_slot, d_pos, tok, li, b->n_ctx, kvl));
        HK(hk_attention(c->st, c->att, c->q, c->d_kc, c->d_vc, d_slot, d_pos, tok, max_pos, li, b->n_ctx, c->hl, c->hkvl,
                        mc->head_dim));
        int rc = HAT_OK;
        if (exact) {   /* the whole attention output (q is free: (tok, dim)), this rank's rows of Wo into its columns of x */
            if ((rc = cuda_tp_gather_cols(c, c->q, c->att, tok, qd, sizeof(float), err, errlen))) return rc;
            HK(hk_convert(c->st, c->xn, c->wt, c->q, HK_F32, (size_t)tok * c->o_cols));
            if ((rc = cuda_gemm_ld(c, c->x + c->d0, dim, w->wo, c->xn, tok, c->o_rows, c->o_cols, 1.0f, err, errlen)) ||
                (rc = cuda_tp_gather_residual(c, tok, dim, err, errlen)))
                return rc;
        } else {
            HK(hk_convert(c->st, c->xn, c->wt, c->att, HK_F32, (size_t)tok * qd));
            if ((rc = cuda_gemm(c, c->x, w->wo, c->xn, tok, dim, qd, beta_res, err, errlen))) return rc;
            if (tp && (rc = cuda_tp_allreduce(c, c->x, (size_t)tok * dim, err, errlen))) return rc;
        }
        HK(hk_rmsnorm(c->st, c->xn, c->wt, c->x, w->ffn_norm, tok, dim, mc->norm_eps));
        if (cuda_gemm(c, c->gu, w->wgu, c->xn, tok, 2 * fl, dim, 0.0f, err, errlen)) return HAT_ERR_UNSUPPORTED;
        HK(hk_swiglu(c->st, c->xn, c->wt, c->gu, tok, fl));
        if (exact) {
            if ((rc = cuda_tp_gather_cols(c, c->hb_full, c->xn, tok, fl, es, err, errlen)) ||
                (rc = cuda_gemm_ld(c, c->x + c->d0, dim, w->wdown, c->hb_full, tok, c->d_rows, c->d_cols, 1.0f, err, errlen)) ||
                (rc = cuda_tp_gather_residual(c, tok, dim, err, errlen)))
                return rc;
        } else {
            if ((rc = cuda_gemm(c, c->x, w->wdown, c->xn, tok, dim, fl, beta_res, err, errlen))) return rc;
            if (tp && (rc = cuda_tp_allreduce(c, c->x, (size_t)tok * dim, err, errlen))) return rc;
        }
    }
    return HAT_OK;
}
