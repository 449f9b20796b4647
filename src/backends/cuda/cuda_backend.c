/* cuda_backend.c — the CUDA backend's table entry (backend.h; the design is in cuda_internal.h):
 * whether a GPU is there, open in stages (this rank's share, the device, the allocations, the KV
 * cache table, the weights, the GEMV choice, the description) and free, one step, KV length and
 * truncation, the counters. */
#include "backends/cuda/cuda_internal.h"

#include "engine/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUBLAS_WS ((size_t)32 << 20)

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
    if (cuda_graphs_step(b, c, tok, max_pos)) {
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

static void cuda_pretend(backend *b, int slot, int n) {
    cu_impl *c = b->impl;
    CHECK(n >= 0 && n <= b->n_ctx, "backend cuda: slot %d cannot hold %d positions (context %d)", slot, n, b->n_ctx);
    c->kv_n[slot] = n;   /* whatever the cache rows hold: timing probes only */
}

static const backend_ops cuda_ops = {"cuda", cuda_forward, cuda_kv_len, cuda_truncate, cuda_free, cuda_pretend};

backend_cuda_stats backend_cuda_stats_of(const backend *b) {
    if (!b || b->kind != BACKEND_CUDA || !b->impl) return (backend_cuda_stats){0};
    return ((const cu_impl *)b->impl)->stats;
}

/* ---- open, in stages: each leaves what it allocated in c (cuda_free releases it all when a later
 * stage fails) and frees its own temporaries ---- */

/* this rank's shapes: its share of the heads, FFN features and residual features (tp.h) */
static int open_share(cu_impl *c, const model_config *mc, const backend_desc *d, char *err, size_t errlen) {
    const int dim = mc->dim, ffn = mc->ffn_dim, hd = mc->head_dim;
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
    return HAT_OK;
}

/* the GPU (there, and the head dimension supported), its properties, the stream and cuBLAS with
 * its workspace */
static int open_device(cu_impl *c, const model_config *mc, const backend_desc *d, struct cudaDeviceProp *prop,
                       char *err, size_t errlen) {
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
    CU(cudaGetDeviceProperties(prop, c->device), "cudaGetDeviceProperties");
    CU(cudaStreamCreateWithFlags(&c->st, cudaStreamNonBlocking), "cudaStreamCreate");
    BL(cublasCreate(&c->blas), "cublasCreate");
    BL(cublasSetStream(c->blas, c->st), "cublasSetStream");
    CU(cudaMalloc(&c->blas_ws, CUBLAS_WS), "allocating the cuBLAS workspace");
    BL(cublasSetWorkspace(c->blas, c->blas_ws, CUBLAS_WS), "cublasSetWorkspace");
    return HAT_OK;
}

/* the weight, KV and work allocations (device and pinned host); *total_out: the GPU's memory */
static int open_alloc(cu_impl *c, const model_config *mc, const backend_desc *d, const struct cudaDeviceProp *prop,
                      size_t *total_out, char *err, size_t errlen) {
    const int dim = mc->dim, ffn = mc->ffn_dim, nl = d->l1 - d->l0, T = d->max_tok;
    const int exact = c->S > 1 && c->mode == TP_EXACT;
    const int kvd = c->kvd, qd = c->qd, fl = c->fl;
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
                       c->bytes_work / 1073741824.0, c->device, prop->name, free_b / 1073741824.0);
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
    *total_out = total_b;
    return HAT_OK;
}

/* the table of every slot's K and V cache pointers on the device, and the host lengths */
static int open_kv(cu_impl *c, const backend_desc *d, char *err, size_t errlen) {
    const int nl = d->l1 - d->l0, kvd = c->kvd;
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
    return HAT_OK;
}

/* b->desc: one line saying what runs where */
static void open_describe(backend *b, const cu_impl *c, const backend_desc *d, const struct cudaDeviceProp *prop,
                          size_t total_b) {
    char tmp[1024], syn[96] = "";
    if (!d->m) snprintf(syn, sizeof syn, ", synthetic %s seed %llu", d->synth.shape, (unsigned long long)d->synth.seed);
    char tps[160] = "";
    if (c->S > 1) snprintf(tps, sizeof tps, ", tensor-parallel (%s) rank %d of %d, %s", tp_mode_name(c->mode), c->rank, c->S, c->tp_note);
    snprintf(tmp, sizeof tmp,
             "cuda, GPU %d %s (%.0f GiB), %s, layers [%d, %d)%s, %s weights %.2f GiB, KV %.2f GiB (%d slots x %d), %s%s, %s",
             c->device, prop->name, total_b / 1073741824.0, d->m ? (d->m->name[0] ? d->m->name : "model") : "synthetic",
             d->l0, d->l1, tps, backend_dtype_name(d->dtype), c->bytes_weights / 1073741824.0, c->bytes_kv / 1073741824.0,
             d->n_slots, d->n_ctx, d->m ? "from the GGUF part (dequantised)" : "generated on the GPU", syn,
             c->graphs ? "CUDA graphs" : "no CUDA graphs");
    if (c->stats.gemv_max_n) {   /* appended while it fits */
        const size_t used = strlen(tmp);
        snprintf(tmp + used, sizeof tmp - used, ", GEMV kernel n<=%d", c->stats.gemv_max_n);
    }
    snprintf(b->desc, sizeof b->desc, "%.319s", tmp);
}

static int cuda_open(backend *b, cu_impl *c, const backend_desc *d, char *err, size_t errlen) {
    const model_config *mc = &b->cfg;
    struct cudaDeviceProp prop;
    size_t total_b = 0;
    int rc;
    if ((rc = open_share(c, mc, d, err, errlen)) || (rc = open_device(c, mc, d, &prop, err, errlen))) return rc;
    if (c->S > 1) {   /* first: every rank of the group reaches these collectives (nothing before can fail on one rank only) */
        rc = cuda_tp_setup_nccl(c, d->nccl, err, errlen);
        if (rc) return rc;
    }
    c->graphs = !d->no_graphs && (c->S == 1 || c->use_nccl);
    snprintf(c->graphs_why, sizeof c->graphs_why, "%s",
             d->no_graphs ? "turned off by the configuration"
             : c->graphs  ? "" : "host-staged collectives synchronise inside a step");
    c->wt = d->dtype == BACKEND_BF16 ? HK_BF16 : HK_F16;
    c->ct = d->dtype == BACKEND_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    if ((rc = open_alloc(c, mc, d, &prop, &total_b, err, errlen)) || (rc = open_kv(c, d, err, errlen))) return rc;
    cuda_weights_carve(c, mc, d->l1 - d->l0);
    if ((rc = cuda_weights_fill(c, mc, d, err, errlen)) || (rc = cuda_gemm_setup(b, c, d->gemv, err, errlen))) return rc;
    b->io = c->h_io;
    open_describe(b, c, d, &prop, total_b);
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
