/* backend.c — the backend table: choose CPU or CUDA once, with a clean fallback (backend.h). */
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

int backend_open(backend **out, const backend_desc *d, char *note, size_t notelen, char *err, size_t errlen) {
    *out = NULL;
    if (note && notelen) note[0] = '\0';
    if (d->l0 < 0 || d->l1 < d->l0 || d->n_slots < 1 || d->max_tok < 1 || d->n_ctx < 1)
        return hat_err(err, errlen, HAT_ERR_ARG, "backend: bad plan (layers [%d, %d), %d slots, %d tokens, ctx %d)",
                       d->l0, d->l1, d->n_slots, d->max_tok, d->n_ctx);
    if (!d->m && !d->synth.shape) return hat_err(err, errlen, HAT_ERR_ARG, "backend: no weights (model or synthetic)");
    backend_kind k = d->kind;
    if (k == BACKEND_CUDA || k == BACKEND_AUTO) {
        int n = 0;
        char why[256];
        if (backend_cuda_available(&n, why, sizeof why) == 0 && n > 0) {
            k = BACKEND_CUDA;
        } else {
            if (d->kind == BACKEND_CUDA && note)
                snprintf(note, notelen, "backend cuda requested but %s: the cloud layers run on the CPU", why);
            k = BACKEND_CPU;
        }
    }
    int rc = k == BACKEND_CUDA ? backend_cuda_open(out, d, err, errlen) : backend_cpu_open(out, d, err, errlen);
    if (rc == HAT_OK) (*out)->kind = k;
    return rc;
}
