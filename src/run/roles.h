/* roles.h — what the roles of `hat run` share: the run context every rank builds at start-up
 * (run.c), the role entry points, and the message sizes both ends of an endpoint agree on. */
#ifndef HAT_ROLES_H
#define HAT_ROLES_H

#include "split/adapter.h"
#include "backends/backend.h"
#include "trace/collector.h"
#include "run/config.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "split/partition.h"
#include "engine/tokenizer.h"
#include "net/transport.h"
#include "timing/cost_fit.h"
#include "run/timing_run.h"

typedef struct {
    hat_config cfg;
    partition part;
    gguf_file *gf;
    model_config mc;
    int rank, size;
    hat_role role;
    int device;               /* device index (devices only) */
    /* devices: the prompt */
    tokenizer *tok;
    int32_t *prompt;
    int n_prompt;
    collector col;
    adapter *ad;              /* HAT: the draft adapter (devices, and rank 0 for the trace) */
    /* cloud ranks: their model (the middle submodel [a, L-b); in the cloud-only baseline the whole
     * model, embedding and head included) and its backend (cpu or cuda) from the backend table */
    model *cloud_model;
    model *dev_in, *dev_out;   /* device: its two submodels, loaded (and checked) at start-up; the role takes them */
    backend *be;
    char backend_note[320];   /* why a requested CUDA backend fell back to the CPU ("" if it did not) */
    tp_comm tp;               /* cloud ranks: the tensor-parallel group (size 1: none; collective.h) */
    int *prompt_len;          /* (n_devices) every device's prompt tokens, on every rank: message sizes */
    cost_fit *fit;            /* cloud ranks: the pass-time model (cloud_cost.h) */
    double cost0[4];          /* devices: their cloud rank's model after its start-up probe (c0..c3) */
    run_timing tm;            /* the shape every step is charged as, the split on it (timing_run.h) */
} run_ctx;

/* role entry points (role_device.c, role_cloud.c, role_cloudonly.c; both cloud roles serve on
 * cloud_loop.h): return after the role's work is done (errors are fatal) */
void role_device_main(run_ctx *r);
void role_cloud_main(run_ctx *r);
/* [run] mode = cloud-only: the non-private baseline (token ids up, the whole model on the cloud) */
void role_cloudonly_device_main(run_ctx *r);
void role_cloudonly_cloud_main(run_ctx *r);

/* Sizes shared by both ends of an endpoint: the most rows in one message of device i (a prefill
 * chunk: the whole prompt when chunking is off, up to max_batch_tokens when dynamic, chunk_tokens
 * + 1 when fixed (chunk_next's rule); or a decode round of up to gamma_max + 1 rows on the way
 * down), and the ring depth (messages a device may have outstanding: its prefill in-flight limit,
 * or one whole draft round). */
static inline int run_gamma_rows(const hat_config *c) {
    return c->run_mode == RUN_HAT ? (c->gamma_adaptive ? c->gamma_max : c->gamma) + 1 : 1;
}
static inline int run_prefill_max_tok(const run_ctx *r, int i) {
    const hat_config *c = &r->cfg;
    const int n = r->prompt_len[i], cap = c->max_batch_tokens > 3 ? c->max_batch_tokens : 3;
    switch (c->dev[i].chunking) {
    case CHUNK_OFF: return n;
    case CHUNK_DYNAMIC: return n < cap ? n : cap;
    default: return c->chunk_tokens + 1;
    }
}
static inline int run_msg_max_tok(const run_ctx *r, int i) {
    const int p = run_prefill_max_tok(r, i), g = run_gamma_rows(&r->cfg);
    return p > g ? p : g;
}
static inline int run_msg_depth(const hat_config *c) {
    const int g = run_gamma_rows(c);
    return c->inflight > g ? c->inflight : g;
}

/* a device's step record from the cloud's reply m: the cloud's timings and batch, the download */
static inline void run_step_reply(trace_step *st, const transport_msg *m) {
    const wire_header *h = &m->h;
    st->t_cloud_ready = h->t_peer_ready;
    st->cloud_queue_s = h->queue_s;
    st->cloud_compute_s = h->compute_s;
    st->batch_tokens = h->batch_tokens;
    st->batch_devices = h->batch_devices;
    st->t_down_send = h->t_send;
    st->down_model_s = h->t_deliver - h->t_send;
    st->t_down_ready = m->t_seen;
    st->down_bytes = m->bytes;
}

#endif
