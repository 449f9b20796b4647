/* cuda_internal.h — what the files of the CUDA backend share (private to src/backends/cuda/): the
 * backend's state, the error macros and the entry points the files call in one another.
 *
 * The CUDA backend of the cloud's middle layers (backend.h): cuBLAS GEMMs with
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
 * Only the files of this folder and kernels/ include CUDA headers.
 *
 * The files:
 *   cuda_backend.c  the table entry: availability, open (in stages) and free, the step, KV length
 *                   and truncation, the counters
 *   cuda_layers.c   the layer loop of one step (the math above), launched directly or captured
 *   cuda_graphs.c   CUDA graphs: capture on second sight of a shape, replay, LRU of GRAPH_CACHE
 *   cuda_gemm.c     the products: the GEMV kernel or cuBLAS per call, and the start-up check and
 *                   timing that decide stats.gemv_max_n
 *   cuda_tp.c       the group's collectives on device buffers (NCCL, or host-staged through
 *                   tp_comm) and the NCCL set-up
 *   cuda_weights.c  carving the weight allocation, filling it from the GGUF part (dequantised,
 *                   converted to fp16/bf16) or from the synthetic generator on the GPU
 */
#ifndef HAT_CUDA_INTERNAL_H
#define HAT_CUDA_INTERNAL_H

#include "backends/backend.h"

#include "core/common.h"
#include "hat_kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#ifdef HAT_HAVE_NCCL
#include <nccl.h>
#endif

typedef struct {
    void *wqkv;              /* (qd + 2 kv_dim, dim) [dtype]: Wq, Wk, Wv stacked (this rank's heads) */
    void *wo;                /* (o_rows, o_cols) */
    void *wgu;               /* (2 fl, dim): Wgate, Wup stacked (this rank's FFN features) */
    void *wdown;             /* (d_rows, d_cols) */
    float *attn_norm, *ffn_norm;   /* (dim) fp32 */
} cu_layer;

#define GRAPH_CACHE 16     /* shapes kept; the least recently used one is replaced */

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

/* error returns of a function taking (char *err, size_t errlen): a CUDA, cuBLAS or kernels/ failure */
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

/* ---- cuda_layers.c ---- */
/* enqueues layers [l0, l1) of one step of tok tokens (x holds their inputs; d_meta their slots and
 * positions) on the stream: directly, or inside a graph capture */
int cuda_layers(backend *b, cu_impl *c, int tok, int max_pos, char *err, size_t errlen);

/* ---- cuda_graphs.c ---- */
/* one step through the graph of its shape: HAT_OK when it ran (launched on the stream), 1 when the
 * caller must launch directly (a new shape, a step too large, or graphs turned off) */
int cuda_graphs_step(backend *b, cu_impl *c, int tok, int max_pos);

/* ---- cuda_gemm.c ---- */
/* out (n, d_out) [f32] = beta * out + X (n, d_in) [dtype] @ W^T, W (d_out, d_in) [dtype], row-major,
 * by the GEMV kernel (gemv 1, n <= HK_GEMV_MAX_N) or cuBLAS */
int cuda_gemm_prod(cu_impl *c, int gemv, float *out, int ldc, const void *W, const void *X, int n, int d_out, int d_in,
                   float beta, char *err, size_t errlen);
/* the same, the GEMV kernel for n <= stats.gemv_max_n: with out's leading dimension ldc, or d_out */
int cuda_gemm_ld(cu_impl *c, float *out, int ldc, const void *W, const void *X, int n, int d_out, int d_in, float beta,
                 char *err, size_t errlen);
int cuda_gemm(cu_impl *c, float *out, const void *W, const void *X, int n, int d_out, int d_in, float beta,
              char *err, size_t errlen);
/* decides stats.gemv_max_n (and gemv_note, gemv_us, cublas_us) for gpu_gemv mode `mode` */
int cuda_gemm_setup(backend *b, cu_impl *c, int mode, char *err, size_t errlen);

/* ---- cuda_tp.c ---- */
/* x (n floats) = sum over the group */
int cuda_tp_allreduce(cu_impl *c, float *x, size_t n, char *err, size_t errlen);
/* dst (n, S*w) [esz-byte elements] = every rank's src (n, w) side by side */
int cuda_tp_gather_cols(cu_impl *c, void *dst, const void *src, int n, int w, size_t esz, char *err, size_t errlen);
/* exact mode: every rank's residual features [d0, d0 + ds) of x (n, dim) into every rank's x */
int cuda_tp_gather_residual(cu_impl *c, int n, int dim, char *err, size_t errlen);
/* the group's NCCL communicator, when every rank has a GPU of its own; else host staging and why */
int cuda_tp_setup_nccl(cu_impl *c, int want, char *err, size_t errlen);

/* ---- cuda_weights.c ---- */
/* points every layer's weights (c->layers, nl of them) into c->wmem, in the order and sizes that
 * cuda_open's per-layer size counts */
void cuda_weights_carve(cu_impl *c, const model_config *mc, int nl);
/* fills them with this rank's slices: from the GGUF part d->m, or generated on the GPU (d->m NULL) */
int cuda_weights_fill(cu_impl *c, const model_config *mc, const backend_desc *d, char *err, size_t errlen);

#endif
