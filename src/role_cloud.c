/* role_cloud.c — a cloud rank: the middle submodel [a, L-b) serving its devices.
 *
 * One session per device (its own KV cache and transport endpoint). Delivered requests wait in
 * their device's FIFO (the endpoint's receive ring, in order). Continuous batching: whenever
 * requests are ready, one forward pass takes the head request of every ready device, in
 * round-robin order starting one device further each pass, until max_batch_tokens; a device
 * whose request arrives mid-pass joins the next one. Every device with a ready request is first
 * in line at least once every n_served passes, so none starves.
 */
#include "run.h"

#include "comm.h"
#include "common.h"
#include "emul.h"
#include "forward.h"
#include "kvcache.h"
#include "transport.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int device, done;
    kvcache kv;
    endpoint ep;
    transport_msg *q;   /* (inflight) delivered, unprocessed messages, FIFO */
    int qh, qn;
} session;

static void session_poll(session *s, int inflight, double *next) {
    transport_msg m;
    while (s->qn < inflight && endpoint_poll(&s->ep, &m, next)) {
        s->q[(s->qh + s->qn) % inflight] = m;
        s->qn++;
    }
}

void role_cloud_main(run_ctx *r) {
    const hat_config *cfg = &r->cfg;
    const int L = r->mc.n_layer, a = cfg->a, b = cfg->b, dim = r->mc.dim;
    const int cidx = r->rank, n = partition_n_served(&r->part, cidx), K = cfg->inflight;
    const int max_msg_tok = cfg->chunk_tokens + 1;
    const int max_batch = cfg->max_batch_tokens > max_msg_tok ? cfg->max_batch_tokens : max_msg_tok;
    char err[HAT_ERRLEN];
    model *m;
    CHECK(model_load_file(&m, r->gf, &(model_part){.l0 = a, .l1 = L - b}, err, sizeof err) == HAT_OK, "%s", err);
    forward_state fs;
    CHECK(forward_init(&fs, m, max_batch, cfg->ctx, 0, cfg->cloud_threads, err, sizeof err) == HAT_OK, "%s", err);
    session *S = xcalloc((size_t)n, sizeof *S);
    for (int i = 0; i < n; i++) {
        session *s = &S[i];
        s->device = cidx + i * cfg->n_cloud;
        CHECK(kvcache_init(&s->kv, a, L - b, cfg->ctx, r->mc.kv_dim, err, sizeof err) == HAT_OK, "%s", err);
        link_params down;
        link_params_from_profile(&down, &cfg->dev[s->device].link, 1);
        endpoint_init(&s->ep, partition_rank_of_device(&r->part, s->device), s->device, 1, K, dim, max_msg_tok, cfg->wire,
                      &down, cfg->emulate_links, cfg->seed);
        s->q = xcalloc((size_t)K, sizeof *s->q);
    }
    forward_seq *seqs = xcalloc((size_t)n, sizeof *seqs);
    int *who = xcalloc((size_t)n, sizeof *who);
    int active = n, rr = 0;
    uint32_t batch_no = 0;
    while (active > 0) {
        double next = 1e300;
        for (int i = 0; i < n; i++) {
            session *s = &S[i];
            if (s->done) continue;
            session_poll(s, K, &next);
            /* a bye at the head of the queue ends the session (earlier requests went first) */
            if (s->qn && s->q[s->qh].h.kind == WIRE_BYE) {
                endpoint_release(&s->ep);
                s->qh = (s->qh + 1) % K;
                s->qn--;
                s->done = 1;
                active--;
            }
        }
        if (r->rank == 0) collector_poll(&r->col);
        /* form the batch */
        int ns = 0, tok = 0;
        for (int k = 0; k < n; k++) {
            session *s = &S[(rr + k) % n];
            if (s->done || !s->qn) continue;
            const wire_header *h = &s->q[s->qh].h;
            if (h->kind != WIRE_HIDDEN_UP || tok + (int)h->n_tok > max_batch) continue;
            CHECK((int)h->pos0 == s->kv.n, "device %d sent positions from %u, its session holds %d", s->device, h->pos0, s->kv.n);
            wire_decode(cfg->wire, s->q[s->qh].payload, fs.x + (size_t)tok * dim, (size_t)h->n_tok * dim);
            seqs[ns] = (forward_seq){&s->kv, (int)h->pos0, (int)h->n_tok};
            who[ns++] = (rr + k) % n;
            tok += (int)h->n_tok;
        }
        if (!ns) {
            if (active > 0) transport_idle(next);
            continue;
        }
        rr = (rr + 1) % n;
        const double t0 = comm_now();
        transformer_forward_batch(m, &fs, &(forward_batch_args){.hidden_in = fs.x, .seqs = seqs, .n_seq = ns, .l0 = a, .l1 = L - b});
        const double t1 = comm_now();
        trace_batch tb = {.cloud_rank = (uint32_t)r->rank, .batch = batch_no++, .n_tok = (uint32_t)tok, .n_dev = (uint32_t)ns,
                          .t_start = t0, .t_end = t1};
        collector_add(&r->col, TRACE_BATCHES, &tb);
        int off = 0;
        for (int k = 0; k < ns; k++) {
            session *s = &S[who[k]];
            const transport_msg *q = &s->q[s->qh];
            wire_header h = {.kind = WIRE_HIDDEN_DOWN, .seq = q->h.seq, .pos0 = q->h.pos0, .n_tok = q->h.n_tok,
                             .flags = q->h.flags, .t_peer_ready = q->t_seen, .queue_s = (float)(t0 - q->t_seen),
                             .compute_s = (float)(t1 - t0), .batch_tokens = (uint32_t)tok, .batch_devices = (uint32_t)ns};
            double ts;
            endpoint_send(&s->ep, &h, fs.x + (size_t)off * dim, &ts);
            off += (int)q->h.n_tok;
            endpoint_release(&s->ep);
            s->qh = (s->qh + 1) % K;
            s->qn--;
        }
    }
    for (int i = 0; i < n; i++) {
        endpoint_free(&S[i].ep);
        kvcache_free(&S[i].kv);
        free(S[i].q);
    }
    free(S); free(seqs); free(who);
    forward_free(&fs);
    model_free(m);
}
