/* cost_model.c — the roofline pass-time model (formulas in cost_model.h). */
#include "timing/cost_model.h"

#include "core/common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double kv_dim(const model_shape *s) { return (double)s->kv_heads * s->hidden / s->heads; }

double cost_layer_params(const model_shape *s) {
    const double h = s->hidden;
    return 2.0 * h * h + 2.0 * h * kv_dim(s) + 3.0 * h * s->ffn;
}

double cost_embed_params(const model_shape *s) { return (double)s->vocab * s->hidden; }

cost_work cost_work_seq(int l0, int l1, int pos0, int n) {
    cost_work w = {.l0 = l0, .l1 = l1};
    cost_work_add_seq(&w, pos0, n);
    return w;
}

void cost_work_add_seq(cost_work *w, int pos0, int n) {
    /* token j (0-based) at position pos0 + j attends to pos0 + j + 1 positions */
    w->n_tok += n;
    w->ctx_sum += (double)n * pos0 + 0.5 * (double)n * (n + 1);
    w->kv_sum += pos0;
}

void cost_totals(const model_shape *s, const cost_work *w, cost_parts *p) {
    memset(p, 0, sizeof *p);
    if (w->n_tok <= 0) return;
    const int nl = w->l1 > w->l0 ? w->l1 - w->l0 : 0;
    const double h = s->hidden, pl = cost_layer_params(s), emb = cost_embed_params(s);
    p->weight_bytes = nl * pl * s->bytes_per_weight + w->extra_bytes;
    if (w->embed) p->weight_bytes += (double)w->n_tok * h * s->bytes_per_weight;   /* rows looked up */
    if (w->n_head > 0) p->weight_bytes += emb * s->bytes_per_weight;
    p->kv_bytes = nl * 2.0 * kv_dim(s) * s->kv_bytes * (w->kv_sum + w->n_tok);
    p->attn_flops = nl * 4.0 * h * w->ctx_sum;
    p->flops = nl * 2.0 * pl * w->n_tok + p->attn_flops + w->extra_flops;
    if (w->n_head > 0) p->flops += 2.0 * emb * w->n_head;
}

double cost_predict(const hw_profile *hw, const model_shape *s, const cost_work *w, cost_parts *parts) {
    cost_parts p;
    cost_totals(s, w, &p);
    if (hw_enabled(hw) && w->n_tok > 0) {
        const int nl = w->l1 > w->l0 ? w->l1 - w->l0 : 0;
        const double h = s->hidden, k = hw->gpus > 1 ? hw->gpus : 1;
        p.mem_s = (p.weight_bytes + p.kv_bytes) / k / (hw->mem_bw_gbs * 1e9 * hw->efficiency);
        const double mm = hw->attn_tflops > 0 ? p.flops - p.attn_flops : p.flops;
        p.flop_s = hw->tflops > 0 ? mm / k / (hw->tflops * 1e12 * hw->flops_efficiency) : 0;
        p.attn_s = hw->attn_tflops > 0 ? p.attn_flops / k / (hw->attn_tflops * 1e12) : 0;
        if (k > 1 && nl > 0) {
            const double msg = 2.0 * w->n_tok * h;   /* fp16 activations of the pass */
            const double ar = 2.0 * (k - 1) / k * msg / (hw->link_gbs * 1e9) + 2.0 * (k - 1) * hw->link_latency_us * 1e-6;
            p.comm_s = nl * 2.0 * ar;
        }
        p.total_s = fmax(p.mem_s, p.flop_s) + p.attn_s + p.comm_s;
    }
    if (parts) *parts = p;
    return p.total_s;
}

void cost_shape_of_model(model_shape *s, const char *name, const model_config *c, int tied, double bytes_per_weight) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->layers = c->n_layer;
    s->hidden = c->dim;
    s->ffn = c->ffn_dim;
    s->heads = c->n_head;
    s->kv_heads = c->n_head_kv;
    s->vocab = c->n_vocab;
    s->tied = tied;
    s->bytes_per_weight = bytes_per_weight;
    s->kv_bytes = 4;
    snprintf(s->source, sizeof s->source, "the model file's own hyper-parameters");
}

static int round_half_up(double x) { return (int)floor(x + 0.5); }

int cost_map_split(const model_shape *s, int L, int a, int b, int *a2, int *b2, char *err, size_t errlen) {
    if (L == s->layers) {   /* the same depth: the split itself */
        *a2 = a;
        *b2 = b;
    } else {
        *a2 = round_half_up((double)a * s->layers / L);
        *b2 = round_half_up((double)b * s->layers / L);
    }
    if (*a2 < 1 || *b2 < 1)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "split a=%d b=%d of %d layers maps to a=%d b=%d of shape %s's %d layers: a device would hold no "
                       "layer of it (raise a / b, or choose a deeper shape)", a, b, L, *a2, *b2, s->name, s->layers);
    if (*a2 + *b2 >= s->layers)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "split a=%d b=%d of %d layers maps to a=%d b=%d of shape %s's %d layers: nothing left for the cloud",
                       a, b, L, *a2, *b2, s->name, s->layers);
    return HAT_OK;
}

static double kv_bytes_ctx(const model_shape *s, int layers, int ctx) {
    return (double)layers * 2.0 * kv_dim(s) * s->kv_bytes * ctx;
}

double cost_device_bytes(const model_shape *s, int a, int b, int ctx) {
    const double w = (a + b) * cost_layer_params(s) + cost_embed_params(s) * (s->tied ? 1 : 2);
    return w * s->bytes_per_weight + kv_bytes_ctx(s, a + b, ctx);
}

double cost_server_bytes(const model_shape *s, int a, int b, int ctx, int n_sessions) {
    const int mid = s->layers - a - b;
    return mid * cost_layer_params(s) * s->bytes_per_weight + kv_bytes_ctx(s, mid, ctx) * n_sessions;
}
