/* backend_cuda.c — the CUDA backend of the cloud's middle layers (backend.h): cuBLAS GEMMs with
 * fp16/bf16 weights and fp32 accumulation, the kernels of kernels/ for everything else, one fp16
 * KV cache per session slot in device memory, hidden states in and out through a pinned host
 * buffer (Open MPI here is not CUDA-aware: device pointers never reach MPI).
 *
 * One step (many sequences of many slots, decode rounds and prefill chunks mixed):
 *   x (n, dim) <- io                                   one host-to-device copy
 *   per layer:  xn = rmsnorm(x) [dtype];  q, k, v = xn @ Wq^T, Wk^T, Wv^T   (three GEMMs over one
 *               stacked weight); rope(q, k); store k, v in the cache; att = attention(q, cache);
 *               x += convert(att) @ Wo^T (GEMM with beta = 1: the residual add is the GEMM's);
 *               xn = rmsnorm(x);  gu = xn @ [Wgate; Wup]^T (one GEMM);  xn = swiglu(gu);
 *               x += xn @ Wdown^T
 *   io <- x                                            one device-to-host copy, then sync
 * Weights: from a loaded GGUF part (each matrix dequantised to fp32 on the host, converted on the
 * GPU), or synthetic (generated on the GPU by hk_synth_fill_range: no host copy, no file).
 * Only this file and kernels/ include CUDA headers.
 */
#include "backend.h"

#include "common.h"
#include "hat_kernels.h"
#include "quant.h"
#include "synth.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    void *wqkv;              /* (dim + 2 kv_dim, dim) [dtype]: Wq, Wk, Wv stacked */
    void *wo;                /* (dim, dim) */
    void *wgu;               /* (2 ffn, dim): Wgate, Wup stacked */
    void *wdown;             /* (dim, ffn) */
    float *attn_norm, *ffn_norm;   /* (dim) fp32 */
} cu_layer;

typedef struct {
    int device;
    cudaStream_t st;
    cublasHandle_t blas;
    hk_dtype wt;
    cudaDataType_t ct;
    void *wmem;              /* one allocation for every weight */
    cu_layer *layers;        /* (l1 - l0) */
    void *kvmem;             /* one allocation for every slot's K and V */
    uint16_t **d_kc, **d_vc; /* (n_slots) device arrays of per-slot cache pointers */
    int *kv_n;               /* (n_slots) positions held, host */
    float *x;                /* (max_tok, dim) residual stream */
    void *xn;                /* (max_tok, max(dim, ffn)) [dtype] GEMM input */
    float *q, *k, *v;        /* (max_tok, dim), (max_tok, kv_dim) x 2 */
    float *att;              /* (max_tok, dim) */
    float *gu;               /* (max_tok, 2 ffn) */
    int32_t *d_meta;         /* (2, max_tok): slot, position of each token */
    int32_t *h_meta;         /* pinned mirror */
    float *h_io;             /* (max_tok, dim) pinned */
    size_t bytes_weights, bytes_kv, bytes_work;
} cu_impl;

#define CU(call, what)                                                                                        \
    do {                                                                                                      \
        cudaError_t e_ = (call);                                                                              \
        if (e_ != cudaSuccess)                                                                                \
            return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: %s: %s (%s)", what,               \
                           cudaGetErrorString(e_), cudaGetErrorName(e_));                                     \
    } while (0)
#define BL(call, what)                                                                                        \
    do {                                                                                                      \
        cublasStatus_t s_ = (call);                                                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                      \
            return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: %s: cuBLAS status %d", what, (int)s_); \
    } while (0)
#define HK(call)                                                                                              \
    do {                                                                                                      \
        if ((call) != 0) return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: %s", hk_last_error()); \
    } while (0)

int backend_cuda_available(int *n_gpu, char *why, size_t whylen) {
    int n = 0;   /* cudaGetDeviceCount leaves it untouched on error (no driver, no GPU) */
    cudaError_t e = cudaGetDeviceCount(&n);
    *n_gpu = 0;
    if (e != cudaSuccess) {
        snprintf(why, whylen, "no CUDA GPU (cudaGetDeviceCount: %s)", cudaGetErrorString(e));
        return 1;
    }
    if (n <= 0) {
        snprintf(why, whylen, "no CUDA GPU (0 devices)");
        return 1;
    }
    *n_gpu = n;
    return 0;
}

/* out (n, d_out) [f32] = beta * out + X (n, d_in) [dtype] @ W^T, W (d_out, d_in) [dtype], row-major:
 * column-major C (d_out x n) = op_T(W stored (d_in x d_out)) * X stored (d_in x n) */
static int gemm(cu_impl *c, float *out, const void *W, const void *X, int n, int d_out, int d_in, float beta,
                char *err, size_t errlen) {
    const float alpha = 1.0f;
    BL(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, d_out, n, d_in, &alpha, W, c->ct, d_in, X, c->ct, d_in, &beta,
                    out, CUDA_R_32F, d_out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
       "GEMM");
    return HAT_OK;
}

static int cuda_forward(backend *b, const backend_seq *seqs, int n_seq, char *err, size_t errlen) {
    cu_impl *c = b->impl;
    const model_config *mc = &b->cfg;
    const int dim = mc->dim, kvd = mc->kv_dim, ffn = mc->ffn_dim;
    const int rc = backend_check_step(b, seqs, n_seq, err, errlen);
    if (rc) return rc;
    int tok = 0, max_pos = 0;
    for (int i = 0; i < n_seq; i++) {
        const backend_seq *s = &seqs[i];
        for (int t = 0; t < s->n_tok; t++) {
            c->h_meta[tok + t] = s->slot;
            c->h_meta[b->max_tok + tok + t] = s->pos0 + t;
        }
        tok += s->n_tok;
        if (s->pos0 + s->n_tok > max_pos) max_pos = s->pos0 + s->n_tok;
    }
    if (!tok) return HAT_OK;
    const int32_t *d_slot = c->d_meta, *d_pos = c->d_meta + b->max_tok;
    CU(cudaSetDevice(c->device), "cudaSetDevice");
    CU(cudaMemcpyAsync(c->d_meta, c->h_meta, sizeof(int32_t) * 2 * (size_t)b->max_tok, cudaMemcpyHostToDevice, c->st),
       "copy metadata");
    CU(cudaMemcpyAsync(c->x, c->h_io, sizeof(float) * (size_t)tok * dim, cudaMemcpyHostToDevice, c->st), "copy input");
    for (int l = b->l0; l < b->l1; l++) {
        const int li = l - b->l0;
        const cu_layer *w = &c->layers[li];
        const size_t es = hk_dtype_size(c->wt);
        HK(hk_rmsnorm(c->st, c->xn, c->wt, c->x, w->attn_norm, tok, dim, mc->norm_eps));
        if (gemm(c, c->q, w->wqkv, c->xn, tok, dim, dim, 0.0f, err, errlen) ||
            gemm(c, c->k, (const char *)w->wqkv + (size_t)dim * dim * es, c->xn, tok, kvd, dim, 0.0f, err, errlen) ||
            gemm(c, c->v, (const char *)w->wqkv + ((size_t)dim + kvd) * dim * es, c->xn, tok, kvd, dim, 0.0f, err, errlen))
            return HAT_ERR_UNSUPPORTED;
        HK(hk_rope(c->st, c->q, c->k, d_pos, tok, mc->n_head, mc->n_head_kv, mc->head_dim, mc->rope_dim, mc->rope_base));
        HK(hk_kv_store(c->st, c->d_kc, c->d_vc, c->k, c->v, d_slot, d_pos, tok, li, b->n_ctx, kvd));
        HK(hk_attention(c->st, c->att, c->q, c->d_kc, c->d_vc, d_slot, d_pos, tok, max_pos, li, b->n_ctx, mc->n_head,
                        mc->n_head_kv, mc->head_dim));
        HK(hk_convert(c->st, c->xn, c->wt, c->att, HK_F32, (size_t)tok * dim));
        if (gemm(c, c->x, w->wo, c->xn, tok, dim, dim, 1.0f, err, errlen)) return HAT_ERR_UNSUPPORTED;
        HK(hk_rmsnorm(c->st, c->xn, c->wt, c->x, w->ffn_norm, tok, dim, mc->norm_eps));
        if (gemm(c, c->gu, w->wgu, c->xn, tok, 2 * ffn, dim, 0.0f, err, errlen)) return HAT_ERR_UNSUPPORTED;
        HK(hk_swiglu(c->st, c->xn, c->wt, c->gu, tok, ffn));
        if (gemm(c, c->x, w->wdown, c->xn, tok, dim, ffn, 1.0f, err, errlen)) return HAT_ERR_UNSUPPORTED;
    }
    CU(cudaMemcpyAsync(c->h_io, c->x, sizeof(float) * (size_t)tok * dim, cudaMemcpyDeviceToHost, c->st), "copy output");
    CU(cudaStreamSynchronize(c->st), "step");
    for (int i = 0; i < n_seq; i++) c->kv_n[seqs[i].slot] = seqs[i].pos0 + seqs[i].n_tok;
    return HAT_OK;
}

static int cuda_kv_len(const backend *b, int slot) { return ((const cu_impl *)b->impl)->kv_n[slot]; }

/* positions past n are simply overwritten by the next step (attention reads [0, pos] only) */
static void cuda_truncate(backend *b, int slot, int n) {
    cu_impl *c = b->impl;
    CHECK(n >= 0 && n <= c->kv_n[slot], "backend cuda: truncate slot %d to %d, it holds %d", slot, n, c->kv_n[slot]);
    c->kv_n[slot] = n;
}

static void cuda_free(backend *b) {
    cu_impl *c = b->impl;
    if (c) {
        cudaSetDevice(c->device);
        if (c->blas) cublasDestroy(c->blas);
        if (c->st) cudaStreamDestroy(c->st);
        cudaFree(c->wmem); cudaFree(c->kvmem);
        cudaFree(c->d_kc); cudaFree(c->d_vc);
        cudaFree(c->x); cudaFree(c->xn); cudaFree(c->q); cudaFree(c->k); cudaFree(c->v);
        cudaFree(c->att); cudaFree(c->gu); cudaFree(c->d_meta);
        cudaFreeHost(c->h_meta); cudaFreeHost(c->h_io);
        free(c->layers); free(c->kv_n);
        free(c);
    }
    free(b);
}

static const backend_ops cuda_ops = {"cuda", cuda_forward, cuda_kv_len, cuda_truncate, cuda_free};

/* one matrix of the GGUF part into dst [dtype], through a host fp32 staging buffer and the GPU */
static int upload_mat(cu_impl *c, void *dst, const qmat *q, float *h_stage, float *d_stage, size_t stage_floats,
                      char *err, size_t errlen) {
    const size_t rows_per = stage_floats / (size_t)q->cols;
    const size_t es = hk_dtype_size(c->wt);
    for (int64_t r0 = 0; r0 < q->rows; r0 += (int64_t)rows_per) {
        const int64_t nr = q->rows - r0 < (int64_t)rows_per ? q->rows - r0 : (int64_t)rows_per;
        for (int64_t r = 0; r < nr; r++)
            dequantize_row(q->type, (const uint8_t *)q->data + (size_t)(r0 + r) * q->row_bytes, h_stage + r * q->cols, q->cols);
        const size_t n = (size_t)nr * (size_t)q->cols;
        CU(cudaMemcpyAsync(d_stage, h_stage, n * sizeof(float), cudaMemcpyHostToDevice, c->st), "upload weights");
        HK(hk_convert(c->st, (char *)dst + (size_t)r0 * q->cols * es, c->wt, d_stage, HK_F32, n));
        CU(cudaStreamSynchronize(c->st), "upload weights");   /* the staging buffers are reused */
    }
    return HAT_OK;
}

static int synth_fill(cu_impl *c, const model_config *mc, uint64_t seed, void *dst, hk_dtype t, uint32_t tensor, size_t n,
                      char *err, size_t errlen) {
    float scale, offset;
    synth_tensor_params(mc, tensor, &scale, &offset);
    HK(hk_synth_fill(c->st, dst, t, n, seed, tensor, scale, offset));
    return HAT_OK;
}

static int cuda_open(backend *b, cu_impl *c, const backend_desc *d, char *err, size_t errlen) {
    const model_config *mc = &b->cfg;
    const int dim = mc->dim, kvd = mc->kv_dim, ffn = mc->ffn_dim, nl = d->l1 - d->l0, T = d->max_tok;
    int n_gpu = 0;
    char why[256];
    if (backend_cuda_available(&n_gpu, why, sizeof why)) return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: %s", why);
    c->device = d->gpu >= 0 ? d->gpu : d->local_rank % n_gpu;
    if (c->device >= n_gpu)
        return hat_err(err, errlen, HAT_ERR_ARG, "backend cuda: GPU %d asked for, this host has %d", c->device, n_gpu);
    if (mc->head_dim % 32 || mc->head_dim > 256 || mc->rope_dim != mc->head_dim)
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: head dimension %d (rope %d) is not supported",
                       mc->head_dim, mc->rope_dim);
    CU(cudaSetDevice(c->device), "cudaSetDevice");
    struct cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, c->device), "cudaGetDeviceProperties");
    CU(cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking), "cudaStreamCreate");
    BL(cublasCreate(&c->blas), "cublasCreate");
    BL(cublasSetStream(c->blas, c->st), "cublasSetStream");
    c->wt = d->dtype == BACKEND_BF16 ? HK_BF16 : HK_F16;
    c->ct = d->dtype == BACKEND_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    const size_t es = hk_dtype_size(c->wt);
    /* sizes: weights, caches, work; checked against free memory first (a clear error, not a crash) */
    const size_t per_layer = ((size_t)(dim + 2 * kvd) * dim + (size_t)dim * dim + 2 * (size_t)ffn * dim + (size_t)dim * ffn) * es +
                             2 * (size_t)dim * sizeof(float);
    c->bytes_weights = (size_t)nl * per_layer;
    c->bytes_kv = 2 * (size_t)d->n_slots * nl * d->n_ctx * kvd * sizeof(uint16_t);
    const size_t wide = (size_t)(dim > ffn ? dim : ffn);
    c->bytes_work = (size_t)T * ((size_t)dim * 3 + 2 * kvd + 2 * (size_t)ffn) * sizeof(float) + (size_t)T * wide * es;
    size_t free_b = 0, total_b = 0;
    CU(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    const size_t need = c->bytes_weights + c->bytes_kv + c->bytes_work + ((size_t)256 << 20);
    if (need > free_b)
        return hat_err(err, errlen, HAT_ERR_NOMEM,
                       "backend cuda: layers [%d, %d) need %.2f GiB (weights %.2f, KV %.2f for %d slots x %d positions, "
                       "work %.2f) but GPU %d (%s) has %.2f GiB free", d->l0, d->l1, need / 1073741824.0,
                       c->bytes_weights / 1073741824.0, c->bytes_kv / 1073741824.0, d->n_slots, d->n_ctx,
                       c->bytes_work / 1073741824.0, c->device, prop.name, free_b / 1073741824.0);
    CU(cudaMalloc(&c->wmem, c->bytes_weights ? c->bytes_weights : 1), "allocating weights");
    CU(cudaMalloc(&c->kvmem, c->bytes_kv ? c->bytes_kv : 1), "allocating the KV caches");
    CU(cudaMalloc((void **)&c->x, sizeof(float) * T * dim), "allocating work");
    CU(cudaMalloc(&c->xn, es * T * wide), "allocating work");
    CU(cudaMalloc((void **)&c->q, sizeof(float) * T * dim), "allocating work");
    CU(cudaMalloc((void **)&c->k, sizeof(float) * T * kvd), "allocating work");
    CU(cudaMalloc((void **)&c->v, sizeof(float) * T * kvd), "allocating work");
    CU(cudaMalloc((void **)&c->att, sizeof(float) * T * dim), "allocating work");
    CU(cudaMalloc((void **)&c->gu, sizeof(float) * T * 2 * ffn), "allocating work");
    CU(cudaMalloc((void **)&c->d_meta, sizeof(int32_t) * 2 * T), "allocating work");
    CU(cudaMallocHost((void **)&c->h_meta, sizeof(int32_t) * 2 * T), "allocating pinned memory");
    CU(cudaMallocHost((void **)&c->h_io, sizeof(float) * T * dim), "allocating pinned memory");
    /* the KV caches: slot s, K then V, each (nl, n_ctx, kv_dim) fp16 */
    const size_t slot_elems = (size_t)nl * d->n_ctx * kvd;
    uint16_t **h_kc = xcalloc((size_t)d->n_slots, sizeof *h_kc), **h_vc = xcalloc((size_t)d->n_slots, sizeof *h_vc);
    for (int s = 0; s < d->n_slots; s++) {
        h_kc[s] = (uint16_t *)c->kvmem + (2 * (size_t)s) * slot_elems;
        h_vc[s] = (uint16_t *)c->kvmem + (2 * (size_t)s + 1) * slot_elems;
    }
    cudaError_t e1 = cudaMalloc((void **)&c->d_kc, sizeof *h_kc * d->n_slots);
    cudaError_t e2 = cudaMalloc((void **)&c->d_vc, sizeof *h_vc * d->n_slots);
    if (e1 == cudaSuccess && e2 == cudaSuccess) {
        e1 = cudaMemcpy(c->d_kc, h_kc, sizeof *h_kc * d->n_slots, cudaMemcpyHostToDevice);
        e2 = cudaMemcpy(c->d_vc, h_vc, sizeof *h_vc * d->n_slots, cudaMemcpyHostToDevice);
    }
    free(h_kc); free(h_vc);
    CU(e1, "KV cache table");
    CU(e2, "KV cache table");
    c->kv_n = xcalloc((size_t)d->n_slots, sizeof *c->kv_n);
    /* carve the weights */
    c->layers = xcalloc((size_t)nl, sizeof *c->layers);
    char *p = c->wmem;
    for (int i = 0; i < nl; i++) {
        cu_layer *w = &c->layers[i];
        w->wqkv = p; p += (size_t)(dim + 2 * kvd) * dim * es;
        w->wo = p; p += (size_t)dim * dim * es;
        w->wgu = p; p += 2 * (size_t)ffn * dim * es;
        w->wdown = p; p += (size_t)dim * ffn * es;
        w->attn_norm = (float *)p; p += (size_t)dim * sizeof(float);
        w->ffn_norm = (float *)p; p += (size_t)dim * sizeof(float);
    }
    /* fill them */
    if (!d->m) {
        const uint64_t seed = d->synth.seed;
        for (int l = d->l0; l < d->l1; l++) {
            cu_layer *w = &c->layers[l - d->l0];
            int rc;
            if ((rc = synth_fill(c, mc, seed, w->wqkv, c->wt, SYNTH_T(l, SYNTH_WQ), (size_t)dim * dim, err, errlen)) ||
                (rc = synth_fill(c, mc, seed, (char *)w->wqkv + (size_t)dim * dim * es, c->wt, SYNTH_T(l, SYNTH_WK),
                                 (size_t)kvd * dim, err, errlen)) ||
                (rc = synth_fill(c, mc, seed, (char *)w->wqkv + ((size_t)dim + kvd) * dim * es, c->wt, SYNTH_T(l, SYNTH_WV),
                                 (size_t)kvd * dim, err, errlen)) ||
                (rc = synth_fill(c, mc, seed, w->wo, c->wt, SYNTH_T(l, SYNTH_WO), (size_t)dim * dim, err, errlen)) ||
                (rc = synth_fill(c, mc, seed, w->wgu, c->wt, SYNTH_T(l, SYNTH_W_GATE), (size_t)ffn * dim, err, errlen)) ||
                (rc = synth_fill(c, mc, seed, (char *)w->wgu + (size_t)ffn * dim * es, c->wt, SYNTH_T(l, SYNTH_W_UP),
                                 (size_t)ffn * dim, err, errlen)) ||
                (rc = synth_fill(c, mc, seed, w->wdown, c->wt, SYNTH_T(l, SYNTH_W_DOWN), (size_t)dim * ffn, err, errlen)) ||
                (rc = synth_fill(c, mc, seed, w->attn_norm, HK_F32, SYNTH_T(l, SYNTH_ATTN_NORM), (size_t)dim, err, errlen)) ||
                (rc = synth_fill(c, mc, seed, w->ffn_norm, HK_F32, SYNTH_T(l, SYNTH_FFN_NORM), (size_t)dim, err, errlen)))
                return rc;
        }
        CU(cudaStreamSynchronize(c->st), "generating synthetic weights");
    } else {
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
        int rc = HAT_OK;
        for (int l = d->l0; l < d->l1 && !rc; l++) {
            const layer_weights *lw = &m->layers[l];
            cu_layer *w = &c->layers[l - d->l0];
            if (!rc) rc = upload_mat(c, w->wqkv, &lw->wq, h_stage, d_stage, stage, err, errlen);
            if (!rc) rc = upload_mat(c, (char *)w->wqkv + (size_t)dim * dim * es, &lw->wk, h_stage, d_stage, stage, err, errlen);
            if (!rc) rc = upload_mat(c, (char *)w->wqkv + ((size_t)dim + kvd) * dim * es, &lw->wv, h_stage, d_stage, stage, err, errlen);
            if (!rc) rc = upload_mat(c, w->wo, &lw->wo, h_stage, d_stage, stage, err, errlen);
            if (!rc) rc = upload_mat(c, w->wgu, &lw->w_gate, h_stage, d_stage, stage, err, errlen);
            if (!rc) rc = upload_mat(c, (char *)w->wgu + (size_t)ffn * dim * es, &lw->w_up, h_stage, d_stage, stage, err, errlen);
            if (!rc) rc = upload_mat(c, w->wdown, &lw->w_down, h_stage, d_stage, stage, err, errlen);
            if (!rc && (cudaMemcpy(w->attn_norm, lw->attn_norm, sizeof(float) * dim, cudaMemcpyHostToDevice) != cudaSuccess ||
                        cudaMemcpy(w->ffn_norm, lw->ffn_norm, sizeof(float) * dim, cudaMemcpyHostToDevice) != cudaSuccess))
                rc = hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: uploading the norms of layer %d", l);
        }
        cudaFreeHost(h_stage);
        cudaFree(d_stage);
        if (rc) return rc;
    }
    b->io = c->h_io;
    char tmp[1024], syn[96] = "";
    if (!d->m) snprintf(syn, sizeof syn, ", synthetic %s seed %llu", d->synth.shape, (unsigned long long)d->synth.seed);
    snprintf(tmp, sizeof tmp,
             "cuda, GPU %d %s (%.0f GiB), %s, layers [%d, %d), %s weights %.2f GiB, KV %.2f GiB (%d slots x %d), %s%s",
             c->device, prop.name, total_b / 1073741824.0, d->m ? (d->m->name[0] ? d->m->name : "model") : "synthetic",
             d->l0, d->l1, backend_dtype_name(d->dtype), c->bytes_weights / 1073741824.0, c->bytes_kv / 1073741824.0,
             d->n_slots, d->n_ctx, d->m ? "from the GGUF part (dequantised)" : "generated on the GPU", syn);
    snprintf(b->desc, sizeof b->desc, "%.319s", tmp);
    return HAT_OK;
}

int backend_cuda_open(backend **out, const backend_desc *d, char *err, size_t errlen) {
    *out = NULL;
    backend *b = xcalloc(1, sizeof *b);
    cu_impl *c = xcalloc(1, sizeof *c);
    b->ops = &cuda_ops;
    b->impl = c;
    b->kind = BACKEND_CUDA;
    b->l0 = d->l0; b->l1 = d->l1; b->n_slots = d->n_slots; b->max_tok = d->max_tok; b->n_ctx = d->n_ctx;
    int rc = HAT_OK;
    if (d->m) {
        b->cfg = d->m->cfg;
        if (d->l0 < d->m->part.l0 || d->l1 > d->m->part.l1)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "backend cuda: layers [%d, %d) are not all in the loaded part [%d, %d)",
                         d->l0, d->l1, d->m->part.l0, d->m->part.l1);
    } else {
        const model_config *sc = synth_shape(d->synth.shape);
        if (!sc) rc = hat_err(err, errlen, HAT_ERR_ARG, "unknown synthetic shape '%s' (known: %s)",
                              d->synth.shape ? d->synth.shape : "", synth_shape_names());
        else if (d->l1 > sc->n_layer)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "layer range [%d, %d) is outside synthetic %s's %d layers", d->l0, d->l1,
                         d->synth.shape, sc->n_layer);
        else b->cfg = *sc;
    }
    if (!rc) rc = cuda_open(b, c, d, err, errlen);
    if (rc) {
        cuda_free(b);
        return rc;
    }
    *out = b;
    return HAT_OK;
}
