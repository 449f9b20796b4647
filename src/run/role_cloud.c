/* role_cloud.c — a cloud rank of the split modes: the middle submodel [a, L-b) serving its devices,
 * on the shared serving loop (cloud_loop.h: sessions, continuous batching, tensor-parallel group).
 *
 * What this mode adds: a request is one prefill chunk, or one decode round: the messages flagged
 * DRAFT up to the one flagged ROUND_END (one message per hidden state, sent by the device as it
 * drafts), run as one sequence with single-token numerics and answered with one reply of all
 * their rows. A round that starts before the session's cache end rolls the cache back to its
 * first position: those positions held the previous round's rejected drafts.
 */
#include "run/cloud_loop.h"

#include "core/common.h"
#include "net/transport.h"
#include "net/wire.h"

/* a bye at the head of the queue ends the session */
static int split_head(cloud_loop *cl, int i) {
    const cloud_session *s = &cl->S[i];
    return cloud_queued(cl, s, 0)->h.kind == WIRE_BYE;
}

/* messages of the decode round at the head of session s, checked (0: the round is not complete) */
static int round_messages(const cloud_loop *cl, const cloud_session *s) {
    const wire_header *h = &cloud_queued(cl, s, 0)->h;
    int nm = 1;
    while (nm <= s->qn && !(cloud_queued(cl, s, nm - 1)->h.flags & WIRE_F_ROUND_END)) nm++;
    if (nm > s->qn) {   /* the round is not complete yet; the ring holds a whole round */
        CHECK(s->qn < cl->depth, "device %d: a decode round longer than %d messages", s->device, cl->depth);
        return 0;
    }
    for (int j = 0; j < nm; j++) {
        const wire_header *hj = &cloud_queued(cl, s, j)->h;
        CHECK((hj->flags & WIRE_F_DRAFT) && hj->n_tok == 1 && hj->pos0 == h->pos0 + (uint32_t)j,
              "device %d: message %u breaks its decode round (positions %u+%u, flags %#x; round from %u)", s->device,
              hj->seq, hj->pos0, hj->n_tok, hj->flags, h->pos0);
    }
    return nm;
}

/* the request at the head of session i: one message, or a whole decode round */
static int split_take(cloud_loop *cl, int i, int row, int room, backend_seq *seq, int *n_msg) {
    const cloud_session *s = &cl->S[i];
    if (!s->qn) return 0;
    const wire_header *h = &cloud_queued(cl, s, 0)->h;
    if (h->kind != WIRE_HIDDEN_UP) return 0;
    const int round = (h->flags & WIRE_F_DRAFT) != 0;
    const int nm = round ? round_messages(cl, s) : 1, nt = round ? nm : (int)h->n_tok;
    if (!nm || nt > room) return 0;
    backend *be = cl->be;
    const int held = backend_kv_len(be, i), dim = cl->r->mc.dim;
    CHECK((int)h->pos0 <= held && (round || (int)h->pos0 == held), "device %d sent positions from %u, its session holds %d",
          s->device, h->pos0, held);
    if ((int)h->pos0 < held) backend_truncate(be, i, (int)h->pos0);   /* rejected drafts */
    float *io = backend_io(be);
    for (int j = 0, t = row; j < nm; j++) {
        const transport_msg *q = cloud_queued(cl, s, j);
        wire_decode(cl->r->cfg.wire, q->payload, io + (size_t)t * dim, (size_t)q->h.n_tok * dim);
        t += (int)q->h.n_tok;
    }
    *seq = (backend_seq){.slot = i, .pos0 = (int)h->pos0, .n_tok = nt, .decode = round};
    *n_msg = nm;
    return 1;
}

/* the request's rows after layer L-b-1, in one reply that names the request's last message;
 * ready = when that one was delivered */
static void split_reply(cloud_loop *cl, int k, const cloud_item *it, const backend_seq *seq, const cloud_pass *p) {
    (void)k;
    cloud_session *s = &cl->S[it->session];
    const transport_msg *q0 = cloud_queued(cl, s, 0), *q = cloud_queued(cl, s, it->n_msg - 1);   /* first, last */
    wire_header h = {.kind = WIRE_HIDDEN_DOWN, .seq = q->h.seq, .pos0 = q0->h.pos0, .n_tok = (uint32_t)seq->n_tok,
                     .flags = q->h.flags, .t_peer_ready = q->t_seen, .queue_s = (float)(p->t0 - q->t_seen),
                     .compute_s = (float)(p->t1 - p->t0), .batch_tokens = wire_u16_sat(p->n_tok),
                     .batch_devices = wire_u16_sat(p->n_seq), .cost_c0 = (float)cl->r->fit->coef.c0,
                     .cost_c1 = (float)cl->r->fit->coef.c1, .cost_c2 = (float)cl->r->fit->coef.c2,
                     .cost_c3 = (float)cl->r->fit->coef.c3};
    double ts;
    transport_send(&s->ep, &h, backend_io(cl->be) + (size_t)it->row * cl->r->mc.dim, &ts);
}

void role_cloud_main(run_ctx *r) {
    if (!partition_is_leader(&r->part, r->rank)) {
        cloud_loop_member(r);
        return;
    }
    const cloud_mode mode = {.dim = r->mc.dim, .wire = r->cfg.wire, .head = split_head, .take = split_take,
                             .reply = split_reply};
    cloud_loop_run(r, &mode);
}
