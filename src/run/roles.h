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
    backend *be;
    char backend_note[320];   /* why a requested CUDA backend fell back to the CPU ("" if it did not) */
    tp_comm tp;               /* cloud ranks: the tensor-parallel group (size 1: none; collective.h) */
} run_ctx;

/* role entry points (role_device.c, role_cloud.c, role_cloudonly.c; both cloud roles serve on
 * cloud_loop.h): return after the role's work is done (errors are fatal) */
void role_device_main(run_ctx *r);
void role_cloud_main(run_ctx *r);
/* [run] mode = cloud-only: the non-private baseline (token ids up, the whole model on the cloud) */
void role_cloudonly_device_main(run_ctx *r);
void role_cloudonly_cloud_main(run_ctx *r);

/* Sizes shared by both ends of an endpoint: the most rows in one message (a prefill chunk, or a
 * decode round of up to gamma_max + 1 rows on the way down), and the ring depth (messages a
 * device may have outstanding: its prefill in-flight limit, or one whole draft round). */
static inline int run_msg_max_tok(const hat_config *c) {
    const int g = c->run_mode == RUN_HAT ? (c->gamma_adaptive ? c->gamma_max : c->gamma) + 1 : 1;
    return c->chunk_tokens + 1 > g ? c->chunk_tokens + 1 : g;
}
static inline int run_msg_depth(const hat_config *c) {
    const int g = c->run_mode == RUN_HAT ? (c->gamma_adaptive ? c->gamma_max : c->gamma) + 1 : 1;
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
