/* timing_run.c — the charged shape, the mapped split and each step's prediction (timing_run.h). */
#include "run/timing_run.h"

#include "core/common.h"

#include <stdio.h>
#include <string.h>

/* bytes per weight of the real model: its first decoder layer's matrices as stored */
static double real_bytes_per_weight(const gguf_file *gf, const model_config *mc) {
    static const char *const mats[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    double bytes = 0;
    char name[64];
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        snprintf(name, sizeof name, "blk.0.%s.weight", mats[i]);
        const gguf_tensor *t = gguf_find_tensor(gf, name);
        if (!t) return 4;
        int64_t rows = 1;
        for (uint32_t d = 1; d < t->n_dims; d++) rows *= (int64_t)t->ne[d];
        bytes += (double)gguf_row_size(t->type, (int64_t)t->ne[0]) * rows;
    }
    return bytes / model_part_params(mc, 0, 1, 0);
}

static int check_memory(const run_timing *t, const hat_config *c, char *err, size_t errlen) {
    const double dev = cost_device_bytes(&t->shape, t->a, t->b, c->ctx);
    for (int i = 0; i < c->n_devices; i++) {
        const hw_profile *p = &c->dev[i].compute;
        if (hw_enabled(p) && p->mem_gb > 0 && dev > p->mem_gb * 1e9)
            return hat_err(err, errlen, HAT_ERR_ARG,
                           "%s: device %d's compute profile %s has %.3g GB; the shape %s's device part (layers [0,%d) + "
                           "[%d,%d), embedding, head, caches of %d positions) needs %.3g GB",
                           c->path, i, p->name, p->mem_gb, t->shape.name, t->a, t->L - t->b, t->L, c->ctx, dev / 1e9);
    }
    const hw_profile *s = &c->cloud_compute;
    if (hw_enabled(s)) {
        const int per_rank = (c->n_devices + c->n_cloud / c->tp - 1) / (c->n_cloud / c->tp);
        /* cloud-only: the whole model once (as a device part of every layer) and a cache per session */
        const double kv1 = cost_server_bytes(&t->shape, 0, 0, c->ctx, 1) - cost_server_bytes(&t->shape, 0, 0, c->ctx, 0);
        const double need = c->run_mode == RUN_CLOUD_ONLY
                                ? cost_device_bytes(&t->shape, 0, t->L, c->ctx) + (per_rank - 1) * kv1
                                : cost_server_bytes(&t->shape, t->a, t->b, c->ctx, per_rank);
        if (need > s->mem_gb * 1e9 * s->gpus)
            return hat_err(err, errlen, HAT_ERR_ARG,
                           "%s: [cloud] compute = %s holds %d x %.3g GB; the shape %s's cloud part for %d devices with %d "
                           "positions each needs %.3g GB", c->path, s->name, s->gpus, s->mem_gb, t->shape.name, per_rank,
                           c->ctx, need / 1e9);
    }
    return HAT_OK;
}

void run_timing_real_shape(model_shape *s, const gguf_file *gf, const model_config *mc) {
    cost_shape_of_model(s, "the model file", mc, !gguf_find_tensor(gf, "output.weight"), real_bytes_per_weight(gf, mc));
}

int run_timing_init(run_timing *t, const hat_config *c, const gguf_file *gf, const model_config *mc, char *err,
                    size_t errlen) {
    memset(t, 0, sizeof *t);
    model_shape real;
    run_timing_real_shape(&real, gf, mc);
    t->modelled = strcmp(c->shape_name, "none") != 0;
    t->shape = t->modelled ? c->shape : real;
    t->L = t->shape.layers;
    int rc = cost_map_split(&t->shape, mc->n_layer, c->a, c->b, &t->a, &t->b, err, errlen);
    if (rc) {
        char why[HAT_ERRLEN];
        snprintf(why, sizeof why, "%s", err);
        return hat_err(err, errlen, HAT_ERR_ARG, "%s: [run] timing_shape = %s: %s", c->path, c->shape_name, why);
    }
    t->adapter_scale = (double)t->shape.hidden * t->shape.hidden / ((double)mc->dim * mc->dim);
    return check_memory(t, c, err, errlen);
}

double run_timing_device(const run_timing *t, const hw_profile *hw, run_piece piece, int pos0, int n, int n_head,
                         double adapter_bytes) {
    if (!hw_enabled(hw) || n <= 0) return 0;
    cost_work w;
    if (piece == PIECE_INPUT) {
        w = cost_work_seq(0, t->a, pos0, n);
        w.embed = 1;
    } else {
        w = cost_work_seq(t->L - t->b, t->L, pos0, n);
        w.n_head = n_head;
        if (piece == PIECE_DRAFT) {
            w.extra_bytes = adapter_bytes * t->adapter_scale;
            w.extra_flops = 2.0 * (adapter_bytes / 4) * t->adapter_scale * n;
        }
    }
    return cost_predict(hw, &t->shape, &w, NULL);
}

double run_timing_cloud(const run_timing *t, const hw_profile *hw, const backend_seq *seqs, int ns, int whole,
                        cost_parts *parts) {
    cost_work w = {.l0 = whole ? 0 : t->a, .l1 = whole ? t->L : t->L - t->b, .embed = whole, .n_head = whole ? ns : 0};
    for (int i = 0; i < ns; i++) cost_work_add_seq(&w, seqs[i].pos0, seqs[i].n_tok);
    return cost_predict(hw, &t->shape, &w, parts);
}

void run_timing_describe(const run_timing *t, char *buf, size_t cap) {
    snprintf(buf, cap, "%s %s: %d layers, hidden %d, ffn %d, heads %d/%d, vocab %d, %.3g bytes/weight; split a=%d b=%d "
             "(device [0,%d) + [%d,%d), cloud [%d,%d))",
             t->modelled ? "modelled shape" : "the real model's shape", t->shape.name, t->L, t->shape.hidden,
             t->shape.ffn, t->shape.heads, t->shape.kv_heads, t->shape.vocab, t->shape.bytes_per_weight, t->a, t->b,
             t->a, t->L - t->b, t->L, t->a, t->L - t->b);
}
