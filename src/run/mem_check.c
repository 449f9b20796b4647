/* mem_check.c — the start-up memory check (mem_check.h). Each part is sized by the function next
 * to the allocation it predicts (forward_plan_bytes, kvcache_plan_bytes, transport_plan_bytes),
 * so the check follows the code that allocates. */
#include "run/mem_check.h"

#include "core/common.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "net/transport.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* a cloud rank: the caches of the devices its group serves, one pass's buffers, a ring per device */
static void cloud_need(const run_ctx *r, mem_need *o) {
    const hat_config *c = &r->cfg;
    const int whole = c->run_mode == RUN_CLOUD_ONLY, L = r->mc.n_layer, g = partition_group_of_rank(&r->part, r->rank);
    const int l0 = whole ? 0 : c->a, l1 = whole ? L : L - c->b, n = partition_n_served(&r->part, g);
    int max_tok = c->max_batch_tokens;
    for (int i = 0; i < n; i++) {
        const int m = run_msg_max_tok(r, partition_device_served(&r->part, g, i));
        if (m > max_tok) max_tok = m;
        if (m > o->ring_rows) o->ring_rows = m;
        if (partition_is_leader(&r->part, r->rank))
            o->bytes[MEM_RINGS] += (double)transport_plan_bytes(run_msg_depth(c), whole ? 1 : r->mc.dim, m,
                                                                 whole ? WIRE_F32 : (wire_dtype)c->wire);
    }
    const int slots = n > 0 ? n : 1, tp = c->tp > 0 ? c->tp : 1;
    o->sessions = slots;
    o->bytes[MEM_KV] = (double)slots * (double)kvcache_plan_bytes(l0, l1, c->ctx, r->mc.kv_dim) / tp;
    const int logit_rows = !whole ? 0 : slots < max_tok ? slots : max_tok;
    o->bytes[MEM_PASS] = (double)forward_plan_bytes(&r->mc, max_tok, c->ctx, logit_rows, c->cloud_threads) / tp;
}

/* a device: its two submodels' caches, the engine's buffers of its largest message, its ring */
static void device_need(const run_ctx *r, mem_need *o) {
    const hat_config *c = &r->cfg;
    const int max_tok = run_msg_max_tok(r, r->device), depth = run_msg_depth(c), L = r->mc.n_layer;
    o->ring_rows = max_tok;
    o->sessions = 1;
    if (c->run_mode == RUN_CLOUD_ONLY) {   /* token ids only: the ring holds the streamed replies too */
        o->bytes[MEM_RINGS] = (double)transport_plan_bytes(depth + c->dev[r->device].max_tokens, 1, max_tok, WIRE_F32);
        return;
    }
    const int gmax = c->gamma_adaptive ? c->gamma_max : c->gamma, rows = c->run_mode == RUN_HAT ? gmax + 1 : 1;
    o->bytes[MEM_KV] = (double)kvcache_plan_bytes(0, c->a, c->ctx, r->mc.kv_dim) +
                       (double)kvcache_plan_bytes(L - c->b, L, c->ctx, r->mc.kv_dim);
    o->bytes[MEM_CHUNK] = (double)forward_plan_bytes(&r->mc, max_tok, c->ctx, rows, c->device_threads);
    if (c->run_mode == RUN_HAT) o->bytes[MEM_CHUNK] += 2.0 * (gmax + 2) * r->mc.n_vocab * sizeof(float);
    o->bytes[MEM_RINGS] = (double)transport_plan_bytes(depth, r->mc.dim, max_tok, (wire_dtype)c->wire);
}

void mem_need_of_rank(const run_ctx *r, mem_need *out) {
    memset(out, 0, sizeof *out);
    if (r->role == ROLE_CLOUD) cloud_need(r, out);
    else device_need(r, out);
}

/* the config key that drives part p, as "[section] key = value" */
static void part_key(const hat_config *c, mem_part p, char *buf, size_t len) {
    switch (p) {
    case MEM_KV: snprintf(buf, len, "[model] ctx = %d", c->ctx); break;
    case MEM_PASS: snprintf(buf, len, "[cloud] max_batch_tokens = %d", c->max_batch_tokens); break;
    case MEM_RINGS: snprintf(buf, len, "[transport] inflight = %d", c->inflight); break;
    default:
        if (c->chunking == CHUNK_FIXED) snprintf(buf, len, "[transport] chunk_tokens = %d", c->chunk_tokens);
        else snprintf(buf, len, "[transport] chunking = %s", chunk_policy_names[c->chunking]);
    }
}

int mem_judge(const hat_config *c, const mem_need *need, int n_ranks, double avail, char *err, size_t errlen) {
    static const char *const what[MEM_N] = {"K/V caches", "the cloud's pass buffers", "message rings",
                                            "the devices' chunk buffers"};
    double total = 0;
    int big = 0;
    for (int p = 0; p < MEM_N; p++) {
        total += need->bytes[p];
        if (need->bytes[p] > need->bytes[big]) big = p;
    }
    if (total <= avail) return HAT_OK;
    char key[96], why[160];
    part_key(c, (mem_part)big, key, sizeof key);
    switch (big) {
    case MEM_KV: snprintf(why, sizeof why, "%d positions for each of up to %d sessions a rank holds", c->ctx, need->sessions); break;
    case MEM_RINGS: snprintf(why, sizeof why, "%d messages of up to %d rows per endpoint, each way", run_msg_depth(c),
                             need->ring_rows); break;
    case MEM_PASS: snprintf(why, sizeof why, "one pass of up to %d tokens", c->max_batch_tokens); break;
    default: snprintf(why, sizeof why, "a prefill message of up to %d tokens", need->ring_rows);
    }
    return hat_err(err, errlen, HAT_ERR_ARG,
                   "%s: %s: the %d ranks on this host would allocate %.3g GB at start-up and %.3g GB is available; the "
                   "largest part is %s, %.3g GB (%s); K/V caches %.3g GB, pass buffers %.3g GB, message rings %.3g GB, "
                   "chunk buffers %.3g GB",
                   c->path, key, n_ranks, total / 1e9, avail / 1e9, what[big], need->bytes[big] / 1e9, why,
                   need->bytes[MEM_KV] / 1e9, need->bytes[MEM_PASS] / 1e9, need->bytes[MEM_RINGS] / 1e9,
                   need->bytes[MEM_CHUNK] / 1e9);
}

/* a "Key:   N kB" line of /proc/meminfo, in bytes; < 0 if absent */
static double meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    const size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            unsigned long long kb;
            if (sscanf(line + n + 1, "%llu", &kb) == 1) v = (double)kb * 1024.0;
            break;
        }
    fclose(f);
    return v;
}

double mem_available(void) {
    double avail = meminfo("MemAvailable");
    if (avail < 0) avail = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    /* a container's limit (cgroup v2) less what it already holds, when set */
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r"), *g = fopen("/sys/fs/cgroup/memory.current", "r");
    unsigned long long lim, cur = 0;
    if (f && fscanf(f, "%llu", &lim) == 1 && (!g || fscanf(g, "%llu", &cur) == 1) && lim > cur && (double)(lim - cur) < avail)
        avail = (double)(lim - cur);
    if (f) fclose(f);
    if (g) fclose(g);
    return avail;
}
