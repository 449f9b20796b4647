/* backend_cpu.c — the CPU backend: src/engine/forward.c over one KV cache per session slot; with
 * the token embedding and the LM head too when the plan asks (a whole model, backend.h). */
#include "backends/backend.h"

#include "core/common.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    model *own;          /* the synthetic model, when this backend made it */
    model *shard;        /* tensor parallelism: this rank's shard of m */
    const model *m;      /* what runs: the part, or its shard */
    tp_comm tp;
    forward_state fs;
    kvcache *kv;         /* (n_slots) */
    forward_seq *seqs;   /* (n_slots) scratch: one step's sequences */
    int32_t *ids;        /* embed: (max_tok) token ids in */
} cpu_impl;

static int cpu_forward(backend *b, const backend_seq *seqs, int n_seq, char *err, size_t errlen) {
    cpu_impl *c = b->impl;
    const int rc = backend_check_step(b, seqs, n_seq, err, errlen);
    if (rc || !n_seq) return rc;
    for (int i = 0; i < n_seq; i++)
        c->seqs[i] = (forward_seq){.kv = &c->kv[seqs[i].slot], .pos0 = seqs[i].pos0, .n_tok = seqs[i].n_tok,
                                   .decode = seqs[i].decode};
    forward_run_batch(c->m, &c->fs, &(forward_batch_args){.tokens = b->embed ? c->ids : NULL,
                                                          .hidden_in = b->embed ? NULL : c->fs.x, .seqs = c->seqs,
                                                          .n_seq = n_seq, .l0 = b->l0, .l1 = b->l1, .head = b->head,
                                                          .tp = &c->tp});
    return HAT_OK;
}

static int cpu_kv_len(const backend *b, int slot) { return ((const cpu_impl *)b->impl)->kv[slot].n; }

static void cpu_truncate(backend *b, int slot, int n) { kvcache_truncate(&((cpu_impl *)b->impl)->kv[slot], n); }

static void cpu_free(backend *b) {
    cpu_impl *c = b->impl;
    if (c) {
        if (c->kv)
            for (int i = 0; i < b->n_slots; i++) kvcache_free(&c->kv[i]);
        free(c->kv);
        free(c->seqs);
        free(c->ids);
        forward_free(&c->fs);
        model_free(c->shard);
        model_free(c->own);
        free(c);
    }
    free(b);
}

static void cpu_pretend(backend *b, int slot, int n) {
    cpu_impl *c = b->impl;
    CHECK(n >= 0 && n <= c->kv[slot].n_ctx, "backend cpu: slot %d cannot hold %d positions (context %d)", slot, n,
          c->kv[slot].n_ctx);
    c->kv[slot].n = n;   /* the rows past what was computed hold zeros or earlier values: timing only */
}

static const backend_ops cpu_ops = {"cpu", cpu_forward, cpu_kv_len, cpu_truncate, cpu_free, cpu_pretend};

/* the weights: the loaded part, or a synthetic model made here; they hold the plan's layers and ends */
static int cpu_weights(backend *b, cpu_impl *c, const backend_desc *d, char *err, size_t errlen) {
    if (d->m) {
        c->m = d->m;
    } else {
        const model_part part = {.l0 = d->l0, .l1 = d->l1, .embed = d->embed, .head = d->head};
        const int rc = model_synth(&c->own, d->synth.shape, d->synth.seed, &part, 0, err, errlen);
        if (rc) return rc;
        c->m = c->own;
    }
    const model *m = c->m;
    b->cfg = m->cfg;
    if (d->l0 < m->part.l0 || d->l1 > m->part.l1)
        return hat_err(err, errlen, HAT_ERR_ARG, "backend cpu: layers [%d, %d) are not all in the loaded part [%d, %d)",
                       d->l0, d->l1, m->part.l0, m->part.l1);
    if (d->embed && (d->l0 != 0 || !m->part.embed))
        return hat_err(err, errlen, HAT_ERR_ARG, "backend cpu: the token embedding needs layers from 0 (plan: from %d) "
                       "and a part holding it (%s)", d->l0, m->part.embed ? "it does" : "it does not");
    if (d->head && (d->l1 != m->cfg.n_layer || !m->part.head))
        return hat_err(err, errlen, HAT_ERR_ARG, "backend cpu: the LM head needs layers up to %d (plan: to %d) and a part "
                       "holding it (%s)", m->cfg.n_layer, d->l1, m->part.head ? "it does" : "it does not");
    return HAT_OK;
}

/* tensor parallelism: this rank's shard of the weights (tp.h) */
static int cpu_tp(backend *b, cpu_impl *c, const backend_desc *d, char *err, size_t errlen) {
    c->tp = d->tp;
    if (c->tp.size < 1) c->tp.size = 1;
    b->tp_rank = c->tp.rank;
    b->tp_size = c->tp.size;
    if (!tp_active(&c->tp)) return HAT_OK;
    if (d->embed || d->head)
        return hat_err(err, errlen, HAT_ERR_ARG, "backend cpu: tensor parallelism shards layers only (no embedding, no head)");
    if (!c->tp.allreduce) return hat_err(err, errlen, HAT_ERR_ARG, "backend cpu: tensor parallelism without an all-reduce");
    if (c->tp.mode == TP_EXACT && !c->tp.allgather)
        return hat_err(err, errlen, HAT_ERR_ARG, "backend cpu: tensor parallelism (exact) without an all-gather");
    const int rc = model_tp_shard(&c->shard, c->m, c->tp.rank, c->tp.size, c->tp.mode, err, errlen);
    if (!rc) c->m = c->shard;
    return rc;
}

/* the engine's buffers (one logits row per sequence with the head), the caches; *kvb: their bytes */
static int cpu_buffers(backend *b, cpu_impl *c, const backend_desc *d, size_t *kvb, char *err, size_t errlen) {
    const int logit_rows = !d->head ? 0 : d->n_slots < d->max_tok ? d->n_slots : d->max_tok;
    int rc = forward_init(&c->fs, c->m, d->max_tok, d->n_ctx, logit_rows, d->n_threads, err, errlen);
    if (rc) return rc;
    c->kv = xcalloc((size_t)d->n_slots, sizeof *c->kv);
    c->seqs = xcalloc((size_t)d->n_slots, sizeof *c->seqs);
    *kvb = 0;
    for (int i = 0; i < d->n_slots && !rc; i++) {
        rc = kvcache_init(&c->kv[i], d->l0, d->l1, d->n_ctx, c->m->cfg.kv_dim, err, errlen);
        if (!rc) *kvb += kvcache_bytes(&c->kv[i]);
    }
    if (rc) return rc;
    if (d->embed) c->ids = xcalloc((size_t)d->max_tok, sizeof *c->ids);
    b->io = c->fs.x;
    b->ids = c->ids;
    b->logits = d->head ? c->fs.logits : NULL;
    return HAT_OK;
}

int backend_cpu_open(backend **out, const backend_desc *d, char *err, size_t errlen) {
    *out = NULL;
    backend *b = xcalloc(1, sizeof *b);
    cpu_impl *c = xcalloc(1, sizeof *c);
    b->ops = &cpu_ops;
    b->impl = c;
    b->kind = BACKEND_CPU;
    b->l0 = d->l0; b->l1 = d->l1; b->n_slots = d->n_slots; b->max_tok = d->max_tok; b->n_ctx = d->n_ctx;
    b->embed = d->embed; b->head = d->head;
    size_t kvb = 0;
    int rc = cpu_weights(b, c, d, err, errlen);
    if (!rc) rc = cpu_tp(b, c, d, err, errlen);
    if (!rc) rc = cpu_buffers(b, c, d, &kvb, err, errlen);
    if (rc) { cpu_free(b); return rc; }
    const model *m = c->m;
    char tp[64] = "";
    if (tp_active(&c->tp))
        snprintf(tp, sizeof tp, ", tensor-parallel (%s) rank %d of %d", tp_mode_name(c->tp.mode), c->tp.rank, c->tp.size);
    snprintf(b->desc, sizeof b->desc, "cpu, %d threads, %s, %slayers [%d, %d)%s%s, %s weights, KV %.1f MiB (%d slots)",
             d->n_threads, m->name[0] ? m->name : "model", d->embed ? "embedding + " : "", d->l0, d->l1,
             d->head ? " + head" : "", tp, m->part.weights == MODEL_WEIGHTS_F32 ? "fp32" : "quantised", kvb / 1048576.0,
             d->n_slots);
    *out = b;
    return HAT_OK;
}
