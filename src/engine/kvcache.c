#include "engine/kvcache.h"
#include "core/common.h"

#include <stdlib.h>
#include <string.h>

int kvcache_init(kvcache *kv, int l0, int l1, int n_ctx, int kv_dim, char *err, size_t errlen) {
    memset(kv, 0, sizeof *kv);
    if (l0 < 0 || l1 < l0 || n_ctx <= 0 || kv_dim <= 0)
        return hat_err(err, errlen, HAT_ERR_ARG, "kvcache: bad shape layers [%d,%d) ctx %d kv_dim %d",
                       l0, l1, n_ctx, kv_dim);
    kv->l0 = l0; kv->l1 = l1; kv->n_ctx = n_ctx; kv->kv_dim = kv_dim;
    size_t n = (size_t)(l1 - l0) * (size_t)n_ctx * (size_t)kv_dim;
    kv->k = xcalloc(n ? n : 1, sizeof(uint16_t));
    kv->v = xcalloc(n ? n : 1, sizeof(uint16_t));
    return HAT_OK;
}
void kvcache_free(kvcache *kv) {
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}
void kvcache_truncate(kvcache *kv, int n) {
    CHECK(n >= 0 && n <= kv->n, "kvcache_truncate to %d with %d positions filled", n, kv->n);
    kv->n = n;
}
size_t kvcache_plan_bytes(int l0, int l1, int n_ctx, int kv_dim) {
    return 2u * (size_t)(l1 - l0) * (size_t)n_ctx * (size_t)kv_dim * sizeof(uint16_t);
}

size_t kvcache_bytes(const kvcache *kv) { return kvcache_plan_bytes(kv->l0, kv->l1, kv->n_ctx, kv->kv_dim); }
