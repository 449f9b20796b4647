/* cuda_tp.c — the CUDA backend's tensor-parallel collectives (cuda_internal.h): NCCL on device
 * buffers when every rank of the group has its own GPU, else host-staged (device -> pinned host ->
 * tp_comm -> device), and the NCCL set-up that decides between them at open. */
#include "backends/cuda/cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int cuda_tp_allreduce(cu_impl *c, float *x, size_t n, char *err, size_t errlen) {
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
int cuda_tp_gather_cols(cu_impl *c, void *dst, const void *src, int n, int w, size_t esz, char *err, size_t errlen) {
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
int cuda_tp_gather_residual(cu_impl *c, int n, int dim, char *err, size_t errlen) {
    const size_t row = (size_t)c->ds * sizeof(float);
    CU(cudaMemcpy2DAsync(c->tp_send, row, (const char *)c->x + (size_t)c->d0 * sizeof(float), (size_t)dim * sizeof(float),
                         row, (size_t)n, cudaMemcpyDeviceToDevice, c->st),
       "tp: packing the residual");
    return cuda_tp_gather_cols(c, c->x, c->tp_send, n, c->ds, sizeof(float), err, errlen);
}

/* the group's NCCL communicator, when every rank has a GPU of its own; else host staging and why */
int cuda_tp_setup_nccl(cu_impl *c, int want, char *err, size_t errlen) {
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
