/* backend_open.c — the backend table: choose CPU or CUDA once, with a clean fallback (backend.h). */
#include "backends/backend.h"

#include "core/common.h"

#include <stdio.h>
#include <string.h>

#ifndef HAT_HAVE_CUDA
/* the CPU-only build: no CUDA library is linked, so the CUDA backend is never available */
int backend_cuda_available(int *n_gpu, char *why, size_t whylen) {
    *n_gpu = 0;
    snprintf(why, whylen, "this build has no CUDA backend (no CUDA toolkit at configure time, or HAT_CUDA=OFF)");
    return 1;
}

int backend_cuda_open(backend **out, const backend_desc *d, char *err, size_t errlen) {
    *out = NULL;
    return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "this build has no CUDA backend");
}

backend_cuda_stats backend_cuda_stats_of(const backend *b) {
    (void)b;
    return (backend_cuda_stats){0};
}
#endif

/* the steps beyond the layers each backend has (backend_desc embed, head); the CPU backend runs
 * whole models, the CUDA one hidden states through layers only */
enum { CAN_EMBED = 1, CAN_HEAD = 2 };
static const int CAN[] = {[BACKEND_CPU] = CAN_EMBED | CAN_HEAD, [BACKEND_CUDA] = 0};

/* cuda or auto: CUDA when a GPU is there and the backend has the plan's steps, else the CPU and
 * (for cuda, and for auto on a GPU) a note saying why */
static backend_kind choose_gpu(const backend_desc *d, char *note, size_t notelen) {
    int n = 0;
    char why[256];
    if (backend_cuda_available(&n, why, sizeof why) || n <= 0) {
        if (d->kind == BACKEND_CUDA && note)
            snprintf(note, notelen, "backend cuda requested but %s: the %s on the CPU", why,
                     d->embed || d->head ? "whole model runs" : "cloud layers run");
        return BACKEND_CPU;
    }
    const int need = (d->embed ? CAN_EMBED : 0) | (d->head ? CAN_HEAD : 0);
    if ((CAN[BACKEND_CUDA] & need) == need) return BACKEND_CUDA;
    if (note)
        snprintf(note, notelen, "backend %s requested but the CUDA backend has no %s step (it runs layers only): the "
                 "whole model runs on the CPU", d->kind == BACKEND_CUDA ? "cuda" : "auto",
                 need == (CAN_EMBED | CAN_HEAD) ? "token embedding or LM head" : d->embed ? "token embedding" : "LM head");
    return BACKEND_CPU;
}

int backend_open(backend **out, const backend_desc *d, char *note, size_t notelen, char *err, size_t errlen) {
    *out = NULL;
    if (note && notelen) note[0] = '\0';
    if (d->l0 < 0 || d->l1 < d->l0 || d->n_slots < 1 || d->max_tok < 1 || d->n_ctx < 1)
        return hat_err(err, errlen, HAT_ERR_ARG, "backend: bad plan (layers [%d, %d), %d slots, %d tokens, ctx %d)",
                       d->l0, d->l1, d->n_slots, d->max_tok, d->n_ctx);
    if (!d->m && !d->synth.shape) return hat_err(err, errlen, HAT_ERR_ARG, "backend: no weights (model or synthetic)");
    const backend_kind k = d->kind == BACKEND_CUDA || d->kind == BACKEND_AUTO ? choose_gpu(d, note, notelen) : d->kind;
    int rc = k == BACKEND_CUDA ? backend_cuda_open(out, d, err, errlen) : backend_cpu_open(out, d, err, errlen);
    if (rc == HAT_OK) (*out)->kind = k;
    return rc;
}
