/* kvcache.h — per-sequence K/V cache for a layer range, fp16 (as llama.cpp's default).
 * Layout: k, v (layer - l0, n_ctx, kv_dim). Rollback of rejected positions = truncate. */
#ifndef HAT_KVCACHE_H
#define HAT_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int l0, l1, n_ctx, kv_dim;
    int n;             /* positions filled: [0, n) */
    uint16_t *k, *v;   /* (l1 - l0, n_ctx, kv_dim) fp16 */
} kvcache;

int kvcache_init(kvcache *kv, int l0, int l1, int n_ctx, int kv_dim, char *err, size_t errlen);
void kvcache_free(kvcache *kv);
/* keep positions [0, n); n must be <= kv->n */
void kvcache_truncate(kvcache *kv, int n);
size_t kvcache_bytes(const kvcache *kv);
/* what kvcache_init(l0, l1, n_ctx, kv_dim) will allocate */
size_t kvcache_plan_bytes(int l0, int l1, int n_ctx, int kv_dim);

static inline uint16_t *kvcache_k(const kvcache *kv, int layer, int pos) {
    return kv->k + ((size_t)(layer - kv->l0) * (size_t)kv->n_ctx + (size_t)pos) * (size_t)kv->kv_dim;
}
static inline uint16_t *kvcache_v(const kvcache *kv, int layer, int pos) {
    return kv->v + ((size_t)(layer - kv->l0) * (size_t)kv->n_ctx + (size_t)pos) * (size_t)kv->kv_dim;
}

#endif
