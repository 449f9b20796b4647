/* test_mem_check.c — the start-up memory check (run/mem_check.h): the plans it sums are what
 * the allocating code allocates (measured with mallinfo2 around forward_init and kvcache_init,
 * independent of the formulas), and a need above what is available is refused naming the config
 * key of its largest part. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "run/config.h"
#include "run/mem_check.h"
#include "support/testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define MEASURED 0   /* the sanitizer's allocator does not keep mallinfo's counts */
#else
#define MEASURED 1
#endif

static double heap_bytes(void) {
    const struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
}

/* what forward_init allocates against forward_plan_bytes: equal up to alignment and page rounding */
static void check_forward(int dim, int n_head, int n_kv, int ffn, int vocab, int max_tok, int n_ctx, int rows, int threads) {
    model m;
    memset(&m, 0, sizeof m);
    m.cfg = (model_config){.n_layer = 4, .dim = dim, .n_head = n_head, .n_head_kv = n_kv, .head_dim = dim / n_head,
                           .kv_dim = dim / n_head * n_kv, .ffn_dim = ffn, .n_vocab = vocab};
    const double plan = (double)forward_plan_bytes(&m.cfg, max_tok, n_ctx, rows, threads);
    const double before = heap_bytes();
    forward_state s;
    char err[256];
    EXPECT(forward_init(&s, &m, max_tok, n_ctx, rows, threads, err, sizeof err) == HAT_OK, "forward_init: %s", err);
    const double got = heap_bytes() - before;
    EXPECT((double)forward_bytes(&s, &m) == plan, "forward_bytes %zu vs plan %.0f", forward_bytes(&s, &m), plan);
    if (MEASURED)   /* ~20 buffers: each at most a page of rounding and 64 bytes of alignment */
        EXPECT(got >= plan && got <= plan + 20 * 4160.0, "dim %d max_tok %d ctx %d: allocated %.0f bytes, planned %.0f",
               dim, max_tok, n_ctx, got, plan);
    forward_free(&s);
}

static void check_kv(int l0, int l1, int n_ctx, int kv_dim) {
    const double plan = (double)kvcache_plan_bytes(l0, l1, n_ctx, kv_dim), before = heap_bytes();
    kvcache kv;
    char err[256];
    EXPECT(kvcache_init(&kv, l0, l1, n_ctx, kv_dim, err, sizeof err) == HAT_OK, "kvcache_init: %s", err);
    const double got = heap_bytes() - before;
    EXPECT((double)kvcache_bytes(&kv) == plan, "kvcache_bytes vs plan");
    if (MEASURED) EXPECT(got >= plan && got <= plan + 2 * 4160.0, "kv: allocated %.0f bytes, planned %.0f", got, plan);
    kvcache_free(&kv);
}

static hat_config base(void) {
    hat_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.path, sizeof c.path, "run.ini");
    c.ctx = 4096;
    c.max_batch_tokens = 256;
    c.inflight = 4;
    c.chunk_tokens = 32;
    c.chunking = CHUNK_FIXED;
    c.run_mode = RUN_USHAPE;
    return c;
}

static void check_judge(void) {
    hat_config c = base();
    char err[1024] = "";
    mem_need n = {.bytes = {[MEM_KV] = 6e9, [MEM_PASS] = 1e9, [MEM_RINGS] = 0.5e9, [MEM_CHUNK] = 0.2e9}, .sessions = 30,
                  .ring_rows = 33};
    EXPECT(mem_judge(&c, &n, 31, 8e9, err, sizeof err) == HAT_OK, "7.7 GB in 8 GB refused: %s", err);
    EXPECT(mem_judge(&c, &n, 31, 7e9, err, sizeof err) == HAT_ERR_ARG, "7.7 GB in 7 GB accepted");
    EXPECT(strstr(err, "run.ini: [model] ctx = 4096: the 31 ranks on this host would allocate 7.7 GB") &&
           strstr(err, "7 GB is available") && strstr(err, "K/V caches, 6 GB (4096 positions for each of up to 30 sessions"),
           "KV-driven refusal: %s", err);
    n.bytes[MEM_RINGS] = 9e9;
    EXPECT(mem_judge(&c, &n, 3, 7e9, err, sizeof err) == HAT_ERR_ARG && strstr(err, "[transport] inflight = 4:") &&
           strstr(err, "4 messages of up to 33 rows"), "ring-driven refusal: %s", err);
    n.bytes[MEM_PASS] = 20e9;
    EXPECT(mem_judge(&c, &n, 3, 7e9, err, sizeof err) == HAT_ERR_ARG && strstr(err, "[cloud] max_batch_tokens = 256:"),
           "pass-driven refusal: %s", err);
    n.bytes[MEM_CHUNK] = 30e9;
    c.chunking = CHUNK_DYNAMIC;
    EXPECT(mem_judge(&c, &n, 3, 7e9, err, sizeof err) == HAT_ERR_ARG && strstr(err, "[transport] chunking = dynamic:"),
           "chunk-driven refusal (dynamic): %s", err);
    c.chunking = CHUNK_FIXED;
    EXPECT(mem_judge(&c, &n, 3, 7e9, err, sizeof err) == HAT_ERR_ARG && strstr(err, "[transport] chunk_tokens = 32:"),
           "chunk-driven refusal (fixed): %s", err);
    EXPECT(mem_available() > 1e8, "mem_available %.3g bytes", mem_available());
}

int main(void) {
    check_forward(64, 1, 1, 128, 8, 1, 16, 1, 1);
    check_forward(576, 9, 3, 1536, 49152, 257, 2048, 5, 2);
    check_forward(576, 9, 3, 1536, 49152, 4096, 8192, 0, 1);
    check_kv(0, 2, 512, 192);
    check_kv(2, 28, 8192, 192);
    check_judge();
    return test_summary();
}
