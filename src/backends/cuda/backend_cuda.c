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
 * Tensor parallelism (tp.h, backend_desc.tp): this rank holds its heads' rows of Wq/Wk/Wv and its
 * FFN features' rows of Wgate/Wup; in mode exact its residual features' rows of Wo and Wdown (the
 * GEMMs write straight into its columns of x: ldc = dim, beta = 1), then the attention output, the
 * SwiGLU output and the residual slices are all-gathered; in mode allreduce Wo and Wdown's columns
 * (rank 0's GEMM keeps beta = 1, the others beta = 0) and x is all-reduced twice per layer. The
 * collectives run with NCCL on device buffers when every rank of the group has its own GPU
 * (backend_desc.nccl), else host-staged: device -> pinned host -> tp_comm (MPI) -> device.
 * CUDA graphs (backend_desc.no_graphs = 0, the default): the layer loop of a step is captured the
 * second time its shape (token count, attention block size) is seen and replayed from then on, so
 * a decode step costs one launch instead of ~12 per layer; the last 16 shapes are kept, steps of
 * more than 256 tokens launch directly, and a failed capture turns graphs off with a note. Not with
 * host-staged collectives (they synchronise inside a step).
 * Only this file and kernels/ include CUDA headers.
 */
#include "backends/backend.h"

#include "core/common.h"
#include "hat_kernels.h"
#include "engine/quant.h"
#include "engine/synth.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#ifdef HAT_HAVE_NCCL
#include <nccl.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    void *wqkv;              /* (qd + 2 kv_dim, dim) [dtype]: Wq, Wk, Wv stacked (this rank's heads) */
    void *wo;                /* (o_rows, o_cols) */
    void *wgu;               /* (2 fl, dim): Wgate, Wup stacked (this rank's FFN features) */
    void *wdown;             /* (d_rows, d_cols) */
    float *attn_norm, *ffn_norm;   /* (dim) fp32 */
} cu_layer;

#define GRAPH_CACHE 16     /* shapes kept; the least recently used one is replaced */
#define GRAPH_MAX_TOK 256  /* steps of more tokens are GEMM-bound: launched directly */
#define GRAPH_AFTER 2      /* a shape is captured the second time it is seen: one-off shapes never are, and the
                            * first, direct run has loaded every kernel it uses (CUDA's lazy module loading
                            * must not happen inside a capture) */
#define CUBLAS_WS ((size_t)32 << 20)

typedef struct {
    int tok, threads;            /* the shape; tok 0: unused entry */
    int seen;
    unsigned long long used;     /* LRU clock */
    cudaGraphExec_t exec;        /* NULL until captured */
} cu_graph;

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
    /* this rank's shapes (the whole model's without tensor parallelism) */
    int hl, hkvl, qd, kvd, fl;   /* query heads, kv heads, q width, kv width, FFN features */
    int o_rows, o_cols, d_rows, d_cols;   /* Wo and Wdown as held */
    /* tensor parallelism */
    tp_comm tp;
    int S, rank, mode, d0, ds;   /* group size (1: none), rank, tp_mode, residual features [d0, d0 + ds) */
    void *tp_send, *tp_recv;     /* device: (max_tok, max(dim, ffn)) f32, and S times that */
    void *hb_full;               /* exact: (max_tok, ffn) [dtype] the whole SwiGLU output */
    char *h_send, *h_recv;       /* pinned host staging of the host-staged collectives */
    int use_nccl;
#ifdef HAT_HAVE_NCCL
    ncclComm_t nccl;
#endif
    char tp_note[96];
    /* CUDA graphs: a step's layer loop (everything between the input and the output copies) is
     * captured once per shape and replayed; a shape is the token count and the attention launch's
     * block size (hk_attention_threads); every pointer is fixed at open and the step's slots and
     * positions are read from d_meta, so one graph serves every step of its shape */
    int graphs;                  /* 1: capture and replay; 0: launch every kernel (graphs_why says why) */
    char graphs_why[160];
    void *blas_ws;               /* cuBLAS workspace (set explicitly: no allocation inside a capture) */
    cu_graph gcache[GRAPH_CACHE];
    unsigned long long gclock;
    backend_cuda_stats stats;
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
/* by the GEMV kernel (gemv 1, n <= HK_GEMV_MAX_N) or cuBLAS */
static int prod(cu_impl *c, int gemv, float *out, int ldc, const void *W, const void *X, int n, int d_out, int d_in,
                float beta, char *err, size_t errlen) {
    if (gemv) {
        HK(hk_gemv(c->st, out, ldc, W, X, c->wt, n, d_out, d_in, beta));
        return HAT_OK;
    }
    const float alpha = 1.0f;
    BL(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, d_out, n, d_in, &alpha, W, c->ct, d_in, X, c->ct, d_in, &beta,
                    out, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
       "GEMM");
    return HAT_OK;
}
static int gemm_ld(cu_impl *c, float *out, int ldc, const void *W, const void *X, int n, int d_out, int d_in, float beta,
                   char *err, size_t errlen) {
    return prod(c, n <= c->stats.gemv_max_n, out, ldc, W, X, n, d_out, d_in, beta, err, errlen);
}
static int gemm(cu_impl *c, float *out, const void *W, const void *X, int n, int d_out, int d_in, float beta,
                char *err, size_t errlen) {
    return gemm_ld(c, out, d_out, W, X, n, d_out, d_in, beta, err, errlen);
}

/* ---- the GEMV kernel for small steps: checked against cuBLAS and timed at open ---- */

typedef struct { const void *w; int d_out, d_in; } gv_prod;

/* one layer's products (layer index li), as cuda_layers runs them */
static int layer_prods(const cu_impl *c, int li, int dim, gv_prod p[6]) {
    const cu_layer *w = &c->layers[li];
    const size_t es = hk_dtype_size(c->wt);
    p[0] = (gv_prod){w->wqkv, c->qd, dim};
    p[1] = (gv_prod){(const char *)w->wqkv + (size_t)c->qd * dim * es, c->kvd, dim};
    p[2] = (gv_prod){(const char *)w->wqkv + ((size_t)c->qd + c->kvd) * dim * es, c->kvd, dim};
    p[3] = (gv_prod){w->wo, c->o_rows, c->o_cols};
    p[4] = (gv_prod){w->wgu, 2 * c->fl, dim};
    p[5] = (gv_prod){w->wdown, c->d_rows, c->d_cols};
    return 6;
}

/* mean microseconds of a layer's products at n tokens over reps runs, one way (gemv 1: the kernel) */
static int time_prods(cu_impl *c, const gv_prod *p, int np, int n, const void *X, float *out, int gemv, int reps,
                      double *us, char *err, size_t errlen) {
    cudaEvent_t a = NULL, b = NULL;
    int rc = HAT_OK;
    if (cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&b) != cudaSuccess) rc = HAT_ERR_UNSUPPORTED;
    for (int r = -2; r < reps && !rc; r++) {
        if (r == 0 && cudaEventRecord(a, c->st) != cudaSuccess) rc = HAT_ERR_UNSUPPORTED;
        for (int i = 0; i < np && !rc; i++) rc = prod(c, gemv, out, p[i].d_out, p[i].w, X, n, p[i].d_out, p[i].d_in, 0.0f, err, errlen);
    }
    float ms = 0;
    if (!rc && (cudaEventRecord(b, c->st) != cudaSuccess || cudaEventSynchronize(b) != cudaSuccess ||
                cudaEventElapsedTime(&ms, a, b) != cudaSuccess))
        rc = HAT_ERR_UNSUPPORTED;
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    *us = 1e3 * ms / reps;
    if (rc && !err[0]) hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: timing the GEMV kernel");
    return rc;
}

/* decides stats.gemv_max_n: the kernel is used for steps of up to that many tokens where, on layer
 * 0's products with random inputs, it agrees with cuBLAS (relative L2 <= 1e-4: the same fp32
 * accumulation of exact products, another order) and (mode auto) is faster at 1, 2, 4 and 8 tokens
 * up to that count. A disagreement is a loud note and cuBLAS only, never an error. */
static int gemv_setup(backend *b, cu_impl *c, int mode, char *err, size_t errlen) {
    const int dim = b->cfg.dim;
    c->stats.gemv_max_n = 0;
    if (mode == BACKEND_GEMV_OFF || b->l1 <= b->l0) {
        snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "cuBLAS only%s", mode == BACKEND_GEMV_OFF ? " (gpu_gemv = off)" : "");
        return HAT_OK;
    }
    gv_prod p[6];
    const int np = layer_prods(c, 0, dim, p);
    int max_in = 0, max_out = 0, ok = 1;
    for (int l = 0; l < b->l1 - b->l0 && ok; l++) {
        gv_prod q[6];
        layer_prods(c, l, dim, q);
        for (int i = 0; i < np; i++) ok &= q[i].d_in % 8 == 0 && (uintptr_t)q[i].w % 16 == 0;
    }
    if (!ok) {
        snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "cuBLAS only (products not in 16-byte rows)");
        return HAT_OK;
    }
    for (int i = 0; i < np; i++) {
        if (p[i].d_in > max_in) max_in = p[i].d_in;
        if (p[i].d_out > max_out) max_out = p[i].d_out;
    }
    const int top = b->max_tok < HK_GEMV_MAX_N ? b->max_tok : HK_GEMV_MAX_N;
    const size_t es = hk_dtype_size(c->wt);
    void *X = NULL;
    float *o1 = NULL, *o2 = NULL, *h1 = xmalloc(sizeof(float) * top * (size_t)max_out), *h2 = xmalloc(sizeof(float) * top * (size_t)max_out);
    int rc = HAT_OK;
    if (cudaMalloc(&X, es * top * (size_t)max_in) != cudaSuccess || cudaMalloc((void **)&o1, sizeof(float) * top * (size_t)max_out) != cudaSuccess ||
        cudaMalloc((void **)&o2, sizeof(float) * top * (size_t)max_out) != cudaSuccess)
        rc = hat_err(err, errlen, HAT_ERR_NOMEM, "backend cuda: allocating the GEMV check buffers");
    if (!rc && hk_synth_fill(c->st, X, c->wt, (size_t)top * max_in, 11, 1, 1.0f, 0.0f))
        rc = hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: %s", hk_last_error());
    double worst = 0;
    int bad_n = 0, bad_i = 0;
    for (int n = 1; n <= top && !rc; n++)   /* every token count the kernel may serve */
        for (int i = 0; i < np && !rc; i++) {
            const size_t cnt = (size_t)n * p[i].d_out;
            rc = prod(c, 0, o1, p[i].d_out, p[i].w, X, n, p[i].d_out, p[i].d_in, 0.0f, err, errlen);
            if (!rc) rc = prod(c, 1, o2, p[i].d_out, p[i].w, X, n, p[i].d_out, p[i].d_in, 0.0f, err, errlen);
            if (!rc && (cudaMemcpyAsync(h1, o1, sizeof(float) * cnt, cudaMemcpyDeviceToHost, c->st) != cudaSuccess ||
                        cudaMemcpyAsync(h2, o2, sizeof(float) * cnt, cudaMemcpyDeviceToHost, c->st) != cudaSuccess ||
                        cudaStreamSynchronize(c->st) != cudaSuccess))
                rc = hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: checking the GEMV kernel");
            if (rc) break;
            double d = 0, r = 0;
            for (size_t k = 0; k < cnt; k++) {
                const double x = h2[k], y = h1[k];
                d += (x - y) * (x - y);
                r += y * y;
            }
            const double e = isfinite(d) ? sqrt(d / (r > 0 ? r : 1)) : INFINITY;
            if (!(e <= worst)) { worst = e; bad_n = n; bad_i = i; }
        }
    double us_g[4] = {0}, us_b[4] = {0};
    int max_n = 0;
    if (!rc && !(worst <= 1e-4)) {
        snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "cuBLAS only: the GEMV kernel differs from cuBLAS by %.2g (rel L2) at %d "
                 "tokens, product %d (%d x %d)", worst, bad_n, bad_i, p[bad_i].d_out, p[bad_i].d_in);
        fprintf(stderr, "backend cuda: WARNING: %s\n", c->stats.gemv_note);
    } else if (!rc) {
        static const int ns[4] = {1, 2, 4, 8};
        for (int k = 0; k < 4 && ns[k] <= top && !rc; k++) {
            if ((rc = time_prods(c, p, np, ns[k], X, o1, 1, 10, &us_g[k], err, errlen)) ||
                (rc = time_prods(c, p, np, ns[k], X, o1, 0, 10, &us_b[k], err, errlen)))
                break;
            if (mode == BACKEND_GEMV_ON || (max_n == (k ? ns[k - 1] : 0) && us_g[k] < us_b[k])) max_n = ns[k];
        }
        if (mode == BACKEND_GEMV_ON) max_n = top;
        c->stats.gemv_us = us_g[0];
        c->stats.cublas_us = us_b[0];
        if (max_n)
            snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "GEMV kernel for steps of <= %d tokens (a layer's products at 1 token "
                     "%.1f us, cuBLAS %.1f us; matches cuBLAS to %.1e)", max_n, us_g[0], us_b[0], worst);
        else
            snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "cuBLAS only (the GEMV kernel is slower here: %.1f us vs %.1f us "
                     "for a layer's products at 1 token)", us_g[0], us_b[0]);
    }
    c->stats.gemv_max_n = rc ? 0 : max_n;
    cudaFree(X); cudaFree(o1); cudaFree(o2);
    free(h1); free(h2);
    return rc;
}

/* ---- the group's collectives on device buffers (stream-ordered) ---- */

/* recv (S * bytes) = every rank's send (bytes), in rank order */
static int dev_allgather(cu_impl *c, const void *send, void *recv, size_t bytes, char *err, size_t errlen) {
#ifdef HAT_HAVE_NCCL
    if (c->use_nccl) {
        const ncclResult_t r = ncclAllGather(send, recv, bytes, ncclUint8, c->nccl, c->st);
        if (r != ncclSuccess)
            return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: NCCL all-gather: %s", ncclGetErrorString(r));
        return HAT_OK;
    }
#endif
    CU(cudaMemcpyAsync(c->h_send, send, bytes, cudaMemcpyDeviceToHost, c->st), "tp: staging to the host");
    CU(cudaStreamSynchronize(c->st), "tp: staging to the host");
    int rc = c->tp.allgather(c->tp.ctx, c->h_send, c->h_recv, bytes, err, errlen);
    if (rc) return rc;
    CU(cudaMemcpyAsync(recv, c->h_recv, bytes * (size_t)c->S, cudaMemcpyHostToDevice, c->st), "tp: staging to the GPU");
    return HAT_OK;
}

/* x (n floats) = sum over the group */
static int dev_allreduce(cu_impl *c, float *x, size_t n, char *err, size_t errlen) {
#ifdef HAT_HAVE_NCCL
    if (c->use_nccl) {
        const ncclResult_t r = ncclAllReduce(x, x, n, ncclFloat, ncclSum, c->nccl, c->st);
        if (r != ncclSuccess)
            return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: NCCL all-reduce: %s", ncclGetErrorString(r));
        return HAT_OK;
    }
#endif
    CU(cudaMemcpyAsync(c->h_send, x, n * sizeof(float), cudaMemcpyDeviceToHost, c->st), "tp: staging to the host");
    CU(cudaStreamSynchronize(c->st), "tp: staging to the host");
    int rc = c->tp.allreduce(c->tp.ctx, (float *)c->h_send, n, err, errlen);
    if (rc) return rc;
    CU(cudaMemcpyAsync(x, c->h_send, n * sizeof(float), cudaMemcpyHostToDevice, c->st), "tp: staging to the GPU");
    return HAT_OK;
}

/* dst (n, S*w) [esz-byte elements] = every rank's src (n, w) side by side */
static int gather_cols(cu_impl *c, void *dst, const void *src, int n, int w, size_t esz, char *err, size_t errlen) {
    const size_t row = (size_t)w * esz;
    int rc = dev_allgather(c, src, c->tp_recv, row * (size_t)n, err, errlen);
    if (rc) return rc;
    for (int r = 0; r < c->S; r++)
        CU(cudaMemcpy2DAsync((char *)dst + (size_t)r * row, row * c->S, (const char *)c->tp_recv + (size_t)r * n * row, row,
                             row, (size_t)n, cudaMemcpyDeviceToDevice, c->st),
           "tp: unpacking a gather");
    return HAT_OK;
}

/* exact mode: every rank's residual features [d0, d0 + ds) of x (n, dim) into every rank's x */
static int gather_residual(cu_impl *c, int n, int dim, char *err, size_t errlen) {
    const size_t row = (size_t)c->ds * sizeof(float);
    CU(cudaMemcpy2DAsync(c->tp_send, row, (const char *)c->x + (size_t)c->d0 * sizeof(float), (size_t)dim * sizeof(float),
                         row, (size_t)n, cudaMemcpyDeviceToDevice, c->st),
       "tp: packing the residual");
    return gather_cols(c, c->x, c->tp_send, n, c->ds, sizeof(float), err, errlen);
}

/* enqueues layers [l0, l1) of one step of tok tokens (x holds their inputs; d_meta their slots and
 * positions) on the stream: directly, or inside a graph capture */
static int cuda_layers(backend *b, cu_impl *c, int tok, int max_pos, char *err, size_t errlen) {
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
        if (gemm(c, c->q, w->wqkv, c->xn, tok, qd, dim, 0.0f, err, errlen) ||
            gemm(c, c->k, (const char *)w->wqkv + (size_t)qd * dim * es, c->xn, tok, kvl, dim, 0.0f, err, errlen) ||
            gemm(c, c->v, (const char *)w->wqkv + ((size_t)qd + kvl) * dim * es, c->xn, tok, kvl, dim, 0.0f, err, errlen))
            return HAT_ERR_UNSUPPORTED;
        HK(hk_rope(c->st, c->q, c->k, d_pos, tok, c->hl, c->hkvl, mc->head_dim, mc->rope_dim, mc->rope_base));
        HK(hk_kv_store(c->st, c->d_kc, c->d_vc, c->k, c->v, d_slot, d_pos, tok, li, b->n_ctx, kvl));
        HK(hk_attention(c->st, c->att, c->q, c->d_kc, c->d_vc, d_slot, d_pos, tok, max_pos, li, b->n_ctx, c->hl, c->hkvl,
                        mc->head_dim));
        int rc = HAT_OK;
        if (exact) {   /* the whole attention output (q is free: (tok, dim)), this rank's rows of Wo into its columns of x */
            if ((rc = gather_cols(c, c->q, c->att, tok, qd, sizeof(float), err, errlen))) return rc;
            HK(hk_convert(c->st, c->xn, c->wt, c->q, HK_F32, (size_t)tok * c->o_cols));
            if ((rc = gemm_ld(c, c->x + c->d0, dim, w->wo, c->xn, tok, c->o_rows, c->o_cols, 1.0f, err, errlen)) ||
                (rc = gather_residual(c, tok, dim, err, errlen)))
                return rc;
        } else {
            HK(hk_convert(c->st, c->xn, c->wt, c->att, HK_F32, (size_t)tok * qd));
            if ((rc = gemm(c, c->x, w->wo, c->xn, tok, dim, qd, beta_res, err, errlen))) return rc;
            if (tp && (rc = dev_allreduce(c, c->x, (size_t)tok * dim, err, errlen))) return rc;
        }
        HK(hk_rmsnorm(c->st, c->xn, c->wt, c->x, w->ffn_norm, tok, dim, mc->norm_eps));
        if (gemm(c, c->gu, w->wgu, c->xn, tok, 2 * fl, dim, 0.0f, err, errlen)) return HAT_ERR_UNSUPPORTED;
        HK(hk_swiglu(c->st, c->xn, c->wt, c->gu, tok, fl));
        if (exact) {
            if ((rc = gather_cols(c, c->hb_full, c->xn, tok, fl, es, err, errlen)) ||
                (rc = gemm_ld(c, c->x + c->d0, dim, w->wdown, c->hb_full, tok, c->d_rows, c->d_cols, 1.0f, err, errlen)) ||
                (rc = gather_residual(c, tok, dim, err, errlen)))
                return rc;
        } else {
            if ((rc = gemm(c, c->x, w->wdown, c->xn, tok, dim, fl, beta_res, err, errlen))) return rc;
            if (tp && (rc = dev_allreduce(c, c->x, (size_t)tok * dim, err, errlen))) return rc;
        }
    }
    return HAT_OK;
}

/* graphs off for the rest of the run, with a note on stderr (the step then launches directly) */
static void graphs_off(cu_impl *c, const char *what, cudaError_t e, const char *detail) {
    (void)cudaGetLastError();   /* clear a non-sticky error left by the failed call */
    snprintf(c->graphs_why, sizeof c->graphs_why, "%s failed: %s", what,
             detail ? detail : cudaGetErrorString(e));
    fprintf(stderr, "backend cuda: note: CUDA graphs turned off (%s); steps launch their kernels directly\n",
            c->graphs_why);
    c->graphs = 0;
}

/* one step through the graph of its shape: HAT_OK when it ran (launched on the stream), 1 when the
 * caller must launch directly (a new shape, a step too large, or graphs turned off) */
static int graph_step(backend *b, cu_impl *c, int tok, int max_pos) {
    if (!c->graphs || tok > GRAPH_MAX_TOK) return 1;
    const int th = hk_attention_threads(max_pos, b->cfg.head_dim);
    cu_graph *g = NULL, *victim = &c->gcache[0];
    for (int i = 0; i < GRAPH_CACHE; i++) {
        cu_graph *e = &c->gcache[i];
        if (e->tok == tok && e->threads == th) { g = e; break; }
        if (!e->tok || (victim->tok && e->used < victim->used)) victim = e;
    }
    if (!g) {   /* first sight of this shape: remember it, launch directly */
        if (victim->exec) cudaGraphExecDestroy(victim->exec);
        *victim = (cu_graph){.tok = tok, .threads = th, .seen = 1, .used = ++c->gclock};
        return 1;
    }
    g->used = ++c->gclock;
    if (!g->exec) {
        if (++g->seen < GRAPH_AFTER) return 1;
        char err[256] = "";
        cudaGraph_t graph = NULL;
        cudaError_t e = cudaStreamBeginCapture(c->st, cudaStreamCaptureModeThreadLocal);
        if (e != cudaSuccess) { graphs_off(c, "cudaStreamBeginCapture", e, NULL); return 1; }
        const int rc = cuda_layers(b, c, tok, max_pos, err, sizeof err);
        e = cudaStreamEndCapture(c->st, &graph);
        if (rc || e != cudaSuccess) {   /* nothing ran: the caller launches the step directly */
            if (graph) cudaGraphDestroy(graph);
            graphs_off(c, "capturing a step", e, rc ? err : NULL);
            return 1;
        }
        e = cudaGraphInstantiateWithFlags(&g->exec, graph, 0);
        cudaGraphDestroy(graph);
        if (e != cudaSuccess) {
            g->exec = NULL;
            graphs_off(c, "cudaGraphInstantiate", e, NULL);
            return 1;
        }
        c->stats.captures++;
    }
    const cudaError_t e = cudaGraphLaunch(g->exec, c->st);
    if (e != cudaSuccess) { graphs_off(c, "cudaGraphLaunch", e, NULL); return 1; }
    c->stats.graph_steps++;
    return HAT_OK;
}

static int cuda_forward(backend *b, const backend_seq *seqs, int n_seq, char *err, size_t errlen) {
    cu_impl *c = b->impl;
    const model_config *mc = &b->cfg;
    const int dim = mc->dim;
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
    CU(cudaSetDevice(c->device), "cudaSetDevice");
    CU(cudaMemcpyAsync(c->d_meta, c->h_meta, sizeof(int32_t) * 2 * (size_t)b->max_tok, cudaMemcpyHostToDevice, c->st),
       "copy metadata");
    CU(cudaMemcpyAsync(c->x, c->h_io, sizeof(float) * (size_t)tok * dim, cudaMemcpyHostToDevice, c->st), "copy input");
    if (graph_step(b, c, tok, max_pos)) {
        const int lrc = cuda_layers(b, c, tok, max_pos, err, errlen);
        if (lrc) return lrc;
        c->stats.direct_steps++;
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
        for (int i = 0; i < GRAPH_CACHE; i++)
            if (c->gcache[i].exec) cudaGraphExecDestroy(c->gcache[i].exec);
        if (c->blas) cublasDestroy(c->blas);
        cudaFree(c->blas_ws);
        if (c->st) cudaStreamDestroy(c->st);
        cudaFree(c->wmem); cudaFree(c->kvmem);
        cudaFree(c->d_kc); cudaFree(c->d_vc);
        cudaFree(c->x); cudaFree(c->xn); cudaFree(c->q); cudaFree(c->k); cudaFree(c->v);
        cudaFree(c->att); cudaFree(c->gu); cudaFree(c->d_meta);
        cudaFree(c->tp_send); cudaFree(c->tp_recv); cudaFree(c->hb_full);
        cudaFreeHost(c->h_meta); cudaFreeHost(c->h_io); cudaFreeHost(c->h_send); cudaFreeHost(c->h_recv);
#ifdef HAT_HAVE_NCCL
        if (c->use_nccl) ncclCommDestroy(c->nccl);
#endif
        free(c->layers); free(c->kv_n);
        free(c);
    }
    free(b);
}

static const backend_ops cuda_ops = {"cuda", cuda_forward, cuda_kv_len, cuda_truncate, cuda_free};

backend_cuda_stats backend_cuda_stats_of(const backend *b) {
    if (!b || b->kind != BACKEND_CUDA || !b->impl) return (backend_cuda_stats){0};
    return ((const cu_impl *)b->impl)->stats;
}

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

/* the group's NCCL communicator, when every rank has a GPU of its own; else host staging and why */
static int tp_setup_nccl(cu_impl *c, int want, char *err, size_t errlen) {
    if (!want) { snprintf(c->tp_note, sizeof c->tp_note, "host-staged collectives (NCCL not asked for)"); return HAT_OK; }
#ifndef HAT_HAVE_NCCL
    snprintf(c->tp_note, sizeof c->tp_note, "host-staged collectives (this build has no NCCL)");
    return HAT_OK;
#else
    /* NCCL refuses two ranks on one GPU: compare the ranks' PCI bus ids first */
    /* symmetric: every rank makes the same collective calls whatever fails locally */
    char id[32] = "", *ids = xcalloc((size_t)c->S, sizeof id);
    if (cudaDeviceGetPCIBusId(id, sizeof id, c->device) != cudaSuccess) snprintf(id, sizeof id, "unknown-%d", c->rank);
    int rc = c->tp.allgather(c->tp.ctx, id, ids, sizeof id, err, errlen), shared = 0;
    for (int i = 0; !rc && i < c->S; i++)
        for (int j = 0; j < i; j++) shared |= !strncmp(ids + (size_t)i * sizeof id, ids + (size_t)j * sizeof id, sizeof id);
    free(ids);
    if (rc) return rc;
    if (shared) {
        snprintf(c->tp_note, sizeof c->tp_note, "host-staged collectives (ranks share a GPU: NCCL cannot run)");
        return HAT_OK;
    }
    ncclUniqueId uid;
    memset(&uid, 0, sizeof uid);
    ncclResult_t nr = ncclSuccess;
    if (c->rank == 0) nr = ncclGetUniqueId(&uid);
    if (nr != ncclSuccess) memset(&uid, 0xff, sizeof uid);   /* tells the others to fall back too */
    if ((rc = c->tp.bcast(c->tp.ctx, &uid, sizeof uid, err, errlen))) return rc;
    ncclUniqueId bad;
    memset(&bad, 0xff, sizeof bad);
    if (!memcmp(&uid, &bad, sizeof uid)) {
        snprintf(c->tp_note, sizeof c->tp_note, "host-staged collectives (ncclGetUniqueId failed)");
        return HAT_OK;
    }
    nr = ncclCommInitRank(&c->nccl, c->S, uid, c->rank);
    /* every rank must agree on the path */
    int ok = nr == ncclSuccess, *oks = xcalloc((size_t)c->S, sizeof *oks), all = 1;
    rc = c->tp.allgather(c->tp.ctx, &ok, oks, sizeof ok, err, errlen);
    for (int i = 0; i < c->S; i++) all &= oks[i];
    free(oks);
    if (rc) return rc;
    if (!all) {
        if (ok) ncclCommDestroy(c->nccl);
        snprintf(c->tp_note, sizeof c->tp_note, "host-staged collectives (ncclCommInitRank failed: %s)",
                 ok ? "on another rank" : ncclGetErrorString(nr));
        return HAT_OK;
    }
    c->use_nccl = 1;
    snprintf(c->tp_note, sizeof c->tp_note, "NCCL collectives");
    return HAT_OK;
#endif
}

static int cuda_open(backend *b, cu_impl *c, const backend_desc *d, char *err, size_t errlen) {
    const model_config *mc = &b->cfg;
    const int dim = mc->dim, ffn = mc->ffn_dim, nl = d->l1 - d->l0, T = d->max_tok, hd = mc->head_dim;
    /* this rank's share (tp.h) */
    c->tp = d->tp;
    c->S = d->tp.size > 1 ? d->tp.size : 1;
    c->rank = c->S > 1 ? d->tp.rank : 0;
    c->mode = d->tp.mode;
    if (c->S > 1) {
        int rc = tp_check(mc, c->S, c->mode, -1, err, errlen);
        if (rc) return rc;
        if (!d->tp.allgather || !d->tp.allreduce || !d->tp.bcast)
            return hat_err(err, errlen, HAT_ERR_ARG, "backend cuda: tensor parallelism without its collectives");
    }
    c->hl = mc->n_head / c->S;
    c->hkvl = mc->n_head_kv / c->S;
    c->qd = c->hl * hd;
    c->kvd = c->hkvl * hd;
    c->fl = ffn / c->S;
    c->ds = dim / c->S;
    c->d0 = c->rank * c->ds;
    const int exact = c->S > 1 && c->mode == TP_EXACT, qfull = mc->n_head * hd;
    c->o_rows = exact ? c->ds : dim;
    c->o_cols = exact ? qfull : c->qd;
    c->d_rows = exact ? c->ds : dim;
    c->d_cols = exact ? ffn : c->fl;
    const int kvd = c->kvd, qd = c->qd, fl = c->fl;
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
    CU(cudaMalloc(&c->blas_ws, CUBLAS_WS), "allocating the cuBLAS workspace");
    BL(cublasSetWorkspace(c->blas, c->blas_ws, CUBLAS_WS), "cublasSetWorkspace");
    if (c->S > 1) {   /* first: every rank of the group reaches these collectives (nothing before can fail on one rank only) */
        int rc = tp_setup_nccl(c, d->nccl, err, errlen);
        if (rc) return rc;
    }
    c->graphs = !d->no_graphs && (c->S == 1 || c->use_nccl);
    snprintf(c->graphs_why, sizeof c->graphs_why, "%s",
             d->no_graphs ? "turned off by the configuration"
             : c->graphs  ? "" : "host-staged collectives synchronise inside a step");
    c->wt = d->dtype == BACKEND_BF16 ? HK_BF16 : HK_F16;
    c->ct = d->dtype == BACKEND_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    const size_t es = hk_dtype_size(c->wt);
    /* sizes: weights, caches, work; checked against free memory first (a clear error, not a crash) */
    const size_t per_layer = ((size_t)(qd + 2 * kvd) * dim + (size_t)c->o_rows * c->o_cols + 2 * (size_t)fl * dim +
                              (size_t)c->d_rows * c->d_cols) * es + 2 * (size_t)dim * sizeof(float);
    c->bytes_weights = (size_t)nl * per_layer;
    c->bytes_kv = 2 * (size_t)d->n_slots * nl * d->n_ctx * kvd * sizeof(uint16_t);
    const size_t wide = (size_t)(dim > ffn ? dim : ffn);
    const size_t tp_elems = c->S > 1 ? (size_t)T * wide : 0;   /* one rank's share of a collective, in floats */
    c->bytes_work = (size_t)T * ((size_t)dim * 3 + 2 * kvd + 2 * (size_t)fl) * sizeof(float) + (size_t)T * wide * es +
                    tp_elems * (1 + (size_t)c->S) * sizeof(float) + (exact ? (size_t)T * ffn * es : 0);
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
    CU(cudaMalloc((void **)&c->gu, sizeof(float) * T * 2 * fl), "allocating work");
    if (c->S > 1) {
        CU(cudaMalloc(&c->tp_send, sizeof(float) * tp_elems), "allocating work");
        CU(cudaMalloc(&c->tp_recv, sizeof(float) * tp_elems * c->S), "allocating work");
        if (exact) CU(cudaMalloc(&c->hb_full, es * T * ffn), "allocating work");
    }
    CU(cudaMalloc((void **)&c->d_meta, sizeof(int32_t) * 2 * T), "allocating work");
    CU(cudaMallocHost((void **)&c->h_meta, sizeof(int32_t) * 2 * T), "allocating pinned memory");
    CU(cudaMallocHost((void **)&c->h_io, sizeof(float) * T * dim), "allocating pinned memory");
    if (c->S > 1) {
        CU(cudaMallocHost((void **)&c->h_send, sizeof(float) * (tp_elems > (size_t)T * dim ? tp_elems : (size_t)T * dim)),
           "allocating pinned memory");
        CU(cudaMallocHost((void **)&c->h_recv, sizeof(float) * tp_elems * c->S), "allocating pinned memory");
    }
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
        w->wqkv = p; p += (size_t)(qd + 2 * kvd) * dim * es;
        w->wo = p; p += (size_t)c->o_rows * c->o_cols * es;
        w->wgu = p; p += 2 * (size_t)fl * dim * es;
        w->wdown = p; p += (size_t)c->d_rows * c->d_cols * es;
        w->attn_norm = (float *)p; p += (size_t)dim * sizeof(float);
        w->ffn_norm = (float *)p; p += (size_t)dim * sizeof(float);
    }
    /* fill them */
    /* this rank's slices: rows of Wq/Wk/Wv (heads), Wgate/Wup (FFN features); Wo and Wdown by rows
     * (exact: residual features) or by columns (allreduce: the heads' / FFN features' inputs) */
    const int64_t q0 = (int64_t)c->rank * qd, k0 = (int64_t)c->rank * kvd, f0 = (int64_t)c->rank * fl;
    const int64_t o_r0 = exact ? c->d0 : 0, o_c0 = exact || c->S == 1 ? 0 : q0;
    const int64_t d_r0 = exact ? c->d0 : 0, d_c0 = exact || c->S == 1 ? 0 : f0;
    if (!d->m) {
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
        if (rc) return rc;
    }
    {
        const int rc = gemv_setup(b, c, d->gemv, err, errlen);
        if (rc) return rc;
    }
    b->io = c->h_io;
    char tmp[1024], syn[96] = "";
    if (!d->m) snprintf(syn, sizeof syn, ", synthetic %s seed %llu", d->synth.shape, (unsigned long long)d->synth.seed);
    char tps[160] = "";
    if (c->S > 1) snprintf(tps, sizeof tps, ", tensor-parallel (%s) rank %d of %d, %s", tp_mode_name(c->mode), c->rank, c->S, c->tp_note);
    snprintf(tmp, sizeof tmp,
             "cuda, GPU %d %s (%.0f GiB), %s, layers [%d, %d)%s, %s weights %.2f GiB, KV %.2f GiB (%d slots x %d), %s%s, %s",
             c->device, prop.name, total_b / 1073741824.0, d->m ? (d->m->name[0] ? d->m->name : "model") : "synthetic",
             d->l0, d->l1, tps, backend_dtype_name(d->dtype), c->bytes_weights / 1073741824.0, c->bytes_kv / 1073741824.0,
             d->n_slots, d->n_ctx, d->m ? "from the GGUF part (dequantised)" : "generated on the GPU", syn,
             c->graphs ? "CUDA graphs" : "no CUDA graphs");
    if (c->stats.gemv_max_n) {   /* appended while it fits */
        const size_t used = strlen(tmp);
        snprintf(tmp + used, sizeof tmp - used, ", GEMV kernel n<=%d", c->stats.gemv_max_n);
    }
    snprintf(b->desc, sizeof b->desc, "%.319s", tmp);
    return HAT_OK;
}

int backend_cuda_open(backend **out, const backend_desc *d, char *err, size_t errlen) {
    *out = NULL;
    if (d->embed || d->head)   /* layers only: backend_open runs such a plan on the CPU (backend.c) */
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: no token embedding or LM head step (layers only)");
    backend *b = xcalloc(1, sizeof *b);
    cu_impl *c = xcalloc(1, sizeof *c);
    b->ops = &cuda_ops;
    b->impl = c;
    b->kind = BACKEND_CUDA;
    b->tp_rank = d->tp.size > 1 ? d->tp.rank : 0;
    b->tp_size = d->tp.size > 1 ? d->tp.size : 1;
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
