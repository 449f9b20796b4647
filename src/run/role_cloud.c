/* role_cloud.c — a cloud rank: the middle submodel [a, L-b) serving its devices.
 *
 * One session per device (its own KV cache and transport endpoint). Delivered requests wait in
 * their device's FIFO (the endpoint's receive ring, in order). Continuous batching: whenever
 * requests are ready, one forward pass takes the head request of every ready device, in
 * round-robin order starting one device further each pass, until max_batch_tokens; a device
 * whose request arrives mid-pass joins the next one. Every device with a ready request is first
 * in line at least once every n_served passes, so none starves.
 *
 * A request is one prefill chunk, or one decode round: the messages flagged DRAFT up to the one
 * flagged ROUND_END (one message per hidden state, sent by the device as it drafts), run as one
 * sequence with single-token numerics and answered with one reply of all their rows. A round
 * that starts before the session's cache end rolls the cache back to its first position: those
 * positions held the previous round's rejected drafts.
 *
 * Tensor parallelism ([cloud] tp > 1): the group's first rank (the leader) does all of the above;
 * before each step it broadcasts the step (its sequences, then the input hidden states) to the
 * other ranks of its group, which only run steps (role_cloud_member) until the leader broadcasts
 * the end. Every rank of the group applies the same rollbacks, so their caches stay in step.
 */
#include "run/roles.h"

#include "net/comm.h"
#include "core/common.h"
#include "net/emul.h"
#include "backends/backend.h"
#include "net/transport.h"
#include "net/wire.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int device, done;
    endpoint ep;
    transport_msg *q;   /* (inflight) delivered, unprocessed messages, FIFO */
    int qh, qn;
} session;

static void session_poll(session *s, int inflight, double *next) {
    transport_msg m;
    while (s->qn < inflight && transport_poll(&s->ep, &m, next)) {
        s->q[(s->qh + s->qn) % inflight] = m;
        s->qn++;
    }
}

/* what the leader broadcasts before each step: n_seq sequences (-1: the end) of n_tok tokens */
typedef struct {
    int32_t n_seq, n_tok;
} step_head;

static void group_bcast(run_ctx *r, void *buf, size_t bytes, const char *what) {
    char err[HAT_ERRLEN];
    CHECK(r->tp.bcast(r->tp.ctx, buf, bytes, err, sizeof err) == 0, "cloud group %d: broadcasting %s: %s",
          partition_group_of_rank(&r->part, r->rank), what, err);
}

/* a non-leader rank of a tensor-parallel group: runs the leader's steps on its shard */
static void role_cloud_member(run_ctx *r) {
    backend *be = r->be;
    char err[HAT_ERRLEN];
    const int dim = r->mc.dim;
    backend_seq *seqs = xcalloc((size_t)be->n_slots, sizeof *seqs);
    for (;;) {
        step_head h;
        group_bcast(r, &h, sizeof h, "a step");
        if (h.n_seq < 0) break;
        CHECK(h.n_seq >= 1 && h.n_seq <= be->n_slots && h.n_tok >= 1 && h.n_tok <= be->max_tok,
              "cloud group step of %d sequences, %d tokens (planned: %d slots, %d tokens)", h.n_seq, h.n_tok, be->n_slots,
              be->max_tok);
        group_bcast(r, seqs, sizeof *seqs * (size_t)h.n_seq, "a step's sequences");
        for (int i = 0; i < h.n_seq; i++) {
            const backend_seq *s = &seqs[i];
            CHECK(s->slot >= 0 && s->slot < be->n_slots, "cloud group step: slot %d", s->slot);
            if (s->pos0 >= 0 && s->pos0 < backend_kv_len(be, s->slot)) backend_truncate(be, s->slot, s->pos0);
        }
        group_bcast(r, backend_io(be), sizeof(float) * (size_t)h.n_tok * dim, "a step's hidden states");
        CHECK(backend_forward(be, seqs, h.n_seq, err, sizeof err) == HAT_OK, "%s", err);
    }
    free(seqs);
}

void role_cloud_main(run_ctx *r) {
    if (!partition_is_leader(&r->part, r->rank)) {
        role_cloud_member(r);
        return;
    }
    const hat_config *cfg = &r->cfg;
    const int dim = r->mc.dim;
    const int group = tp_active(&r->tp);
    const int cidx = partition_group_of_rank(&r->part, r->rank), n = partition_n_served(&r->part, cidx);
    int K;
    const int max_msg_tok = run_msg_max_tok(cfg);
    K = run_msg_depth(cfg);
    const int max_batch = cfg->max_batch_tokens > max_msg_tok ? cfg->max_batch_tokens : max_msg_tok;
    char err[HAT_ERRLEN];
    backend *be = r->be;   /* opened at start-up (run.c): layers [a, L-b), one KV slot per session */
    CHECK(be && be->max_tok >= max_batch && be->n_slots >= n, "cloud: backend not planned for this run");
    float *io = backend_io(be);
    session *S = xcalloc((size_t)n, sizeof *S);
    for (int i = 0; i < n; i++) {
        session *s = &S[i];
        s->device = partition_device_served(&r->part, cidx, i);
        link_params down;
        emul_link_params(&down, &cfg->dev[s->device].link, 1);
        transport_init(&s->ep, partition_rank_of_device(&r->part, s->device), s->device, 1, K, dim, max_msg_tok, cfg->wire,
                      &down, cfg->emulate_links, cfg->seed);
        s->q = xcalloc((size_t)K, sizeof *s->q);
    }
    backend_seq *seqs = xcalloc((size_t)n, sizeof *seqs);
    int *who = xcalloc((size_t)n, sizeof *who), *nmsg = xcalloc((size_t)n, sizeof *nmsg);
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
                transport_release(&s->ep);
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
            if (h->kind != WIRE_HIDDEN_UP) continue;
            /* the request: one message, or a whole decode round */
            int nm = 1, nt = (int)h->n_tok;
            const int round = (h->flags & WIRE_F_DRAFT) != 0;
            if (round) {
                while (nm <= s->qn && !(s->q[(s->qh + nm - 1) % K].h.flags & WIRE_F_ROUND_END)) nm++;
                if (nm > s->qn) {   /* the round is not complete yet; the ring holds a whole round */
                    CHECK(s->qn < K, "device %d: a decode round longer than %d messages", s->device, K);
                    continue;
                }
                nt = 0;
                for (int j = 0; j < nm; j++) {
                    const wire_header *hj = &s->q[(s->qh + j) % K].h;
                    CHECK((hj->flags & WIRE_F_DRAFT) && hj->n_tok == 1 && hj->pos0 == h->pos0 + (uint32_t)j,
                          "device %d: message %u breaks its decode round (positions %u+%u, flags %#x; round from %u)",
                          s->device, hj->seq, hj->pos0, hj->n_tok, hj->flags, h->pos0);
                    nt++;
                }
            }
            if (tok + nt > max_batch) continue;
            const int slot = (rr + k) % n, held = backend_kv_len(be, slot);
            CHECK((int)h->pos0 <= held && (round || (int)h->pos0 == held),
                  "device %d sent positions from %u, its session holds %d", s->device, h->pos0, held);
            if ((int)h->pos0 < held) backend_truncate(be, slot, (int)h->pos0);   /* rejected drafts */
            for (int j = 0; j < nm; j++) {
                const transport_msg *q = &s->q[(s->qh + j) % K];
                wire_decode(cfg->wire, q->payload, io + (size_t)tok * dim, (size_t)q->h.n_tok * dim);
                tok += (int)q->h.n_tok;
            }
            seqs[ns] = (backend_seq){.slot = slot, .pos0 = (int)h->pos0, .n_tok = nt, .decode = round};
            nmsg[ns] = nm;
            who[ns++] = slot;
        }
        if (!ns) {
            if (active > 0) transport_idle(next);
            continue;
        }
        rr = (rr + 1) % n;
        const double t0 = comm_now();
        if (group) {
            step_head sh = {ns, tok};
            group_bcast(r, &sh, sizeof sh, "a step");
            group_bcast(r, seqs, sizeof *seqs * (size_t)ns, "a step's sequences");
            group_bcast(r, io, sizeof(float) * (size_t)tok * dim, "a step's hidden states");
        }
        const double tg = comm_now();
        CHECK(backend_forward(be, seqs, ns, err, sizeof err) == HAT_OK, "%s", err);
        const double t1 = comm_now();
        trace_batch tb = {.cloud_rank = (uint32_t)r->rank, .batch = batch_no++, .n_tok = (uint32_t)tok, .n_dev = (uint32_t)ns,
                          .t_start = t0, .t_end = t1, .group_s = tg - t0};
        collector_add(&r->col, TRACE_BATCHES, &tb);
        int off = 0;
        for (int k = 0; k < ns; k++) {
            session *s = &S[who[k]];
            const transport_msg *q0 = &s->q[s->qh], *q = &s->q[(s->qh + nmsg[k] - 1) % K];   /* first, last */
            /* the reply names the request's last message; ready = when that one was delivered */
            wire_header h = {.kind = WIRE_HIDDEN_DOWN, .seq = q->h.seq, .pos0 = q0->h.pos0, .n_tok = (uint32_t)seqs[k].n_tok,
                             .flags = q->h.flags, .t_peer_ready = q->t_seen, .queue_s = (float)(t0 - q->t_seen),
                             .compute_s = (float)(t1 - t0), .batch_tokens = (uint32_t)tok, .batch_devices = (uint32_t)ns};
            double ts;
            transport_send(&s->ep, &h, io + (size_t)off * dim, &ts);
            off += seqs[k].n_tok;
            for (int j = 0; j < nmsg[k]; j++) {
                transport_release(&s->ep);
                s->qh = (s->qh + 1) % K;
                s->qn--;
            }
        }
    }
    if (group) {
        step_head end = {-1, 0};
        group_bcast(r, &end, sizeof end, "the end");
    }
    for (int i = 0; i < n; i++) {
        transport_free(&S[i].ep);
        free(S[i].q);
    }
    free(S); free(seqs); free(who); free(nmsg);
}
