/* cloud_loop.c — the serving loop both cloud roles share (cloud_loop.h), and the tensor-parallel
 * group's step broadcast: the leader's side inside the loop, the other ranks' in cloud_loop_member. */
#include "run/cloud_loop.h"
#include "run/cloud_cost.h"

#include "core/common.h"
#include "net/comm.h"
#include "net/emul.h"
#include "net/transport.h"
#include "net/wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the group's step broadcast ------------------------------------------------------------ */

/* what the leader broadcasts before each step: n_seq sequences (-1: the end) of n_tok tokens */
typedef struct {
    int32_t n_seq, n_tok;
} step_head;

static void group_bcast(run_ctx *r, void *buf, size_t bytes, const char *what) {
    char err[HAT_ERRLEN];
    CHECK(r->tp.bcast(r->tp.ctx, buf, bytes, err, sizeof err) == 0, "cloud group %d: broadcasting %s: %s",
          partition_group_of_rank(&r->part, r->rank), what, err);
}

void cloud_loop_member(run_ctx *r) {
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

/* ---- the loop --------------------------------------------------------------------------------- */

typedef struct {
    cloud_loop cl;
    const cloud_mode *mode;
    int max_batch;        /* tokens of one pass ([cloud] max_batch_tokens) */
    int max_msg;          /* the largest request of a served device: a pass it begins may hold it alone */
    int group;            /* this rank leads a tensor-parallel group */
    int active, rr;       /* sessions not yet ended; the session first in line */
    int prefill_order;    /* [cloud] prefill_order */
    int *order;           /* (2n) batch_order's order, then its scratch */
    uint32_t batch_no;
    backend_seq *seqs;    /* (n) the pass's sequences */
    cloud_item *items;    /* (n) and its requests */
} loop_state;

static void sessions_open(loop_state *L, int cidx) {
    const hat_config *cfg = &L->cl.r->cfg;
    const partition *part = &L->cl.r->part;
    const cloud_mode *md = L->mode;
    for (int i = 0; i < L->cl.n; i++) {
        cloud_session *s = &L->cl.S[i];
        s->device = partition_device_served(part, cidx, i);
        link_params down;
        emul_link_params(&down, &cfg->dev[s->device].link, 1);
        transport_init(&s->ep, partition_rank_of_device(part, s->device), s->device, 1, L->cl.depth, md->dim,
                       run_msg_max_tok(L->cl.r, s->device), md->wire, &down, cfg->emulate_links, cfg->seed);
        if (md->n_vocab > 0) transport_allow_tokens(&s->ep, md->n_vocab);
        else transport_charge_dim(&s->ep, L->cl.r->tm.shape.hidden);   /* [run] timing_shape's rows */
        s->q = xcalloc((size_t)L->cl.depth, sizeof *s->q);
        /* liveness counts from the device's start (its start_s, in wall seconds from now): a
         * device that stops before its first message is closed like any other */
        s->heard_w = hat_wall() + fmax(0.0, cfg->dev[s->device].start_s - comm_now()) * hat_time_scale();
    }
}

/* releases the oldest queued message of session s */
static void session_pop(cloud_loop *cl, cloud_session *s) {
    transport_release(&s->ep);
    s->qh = (s->qh + 1) % cl->depth;
    s->qn--;
}

/* every session's newly delivered messages into its queue; a bye at the head of a queue ends the
 * session (earlier requests went first) */
static void sessions_poll(loop_state *L, double *next) {
    cloud_loop *cl = &L->cl;
    for (int i = 0; i < cl->n; i++) {
        cloud_session *s = &cl->S[i];
        if (s->done) continue;
        transport_msg m;
        while (s->qn < cl->depth && transport_poll(&s->ep, &m, next)) {
            s->q[(s->qh + s->qn) % cl->depth] = m;
            s->qn++;
            s->heard_w = hat_wall();
            if ((m.h.flags & WIRE_F_PREFILL) && !(s->prefill_t > 0)) s->prefill_t = m.t_seen > 0 ? m.t_seen : 1e-9;
            if (s->awaiting && (m.h.flags & WIRE_F_ROUND_END)) {   /* the device's next round is complete */
                const double turn = m.t_seen - s->t_reply;
                s->turn = s->turn > 0 ? 0.5 * turn + 0.5 * s->turn : turn;
                s->awaiting = 0;
            }
        }
        if (s->qn && L->mode->head(cl, i)) {
            session_pop(cl, s);
            s->done = 1;
            L->active--;
        }
    }
}

/* liveness: every open session gets its keep-alive when due (transport.h); a session that owes
 * the cloud its next message (it has spoken, nothing of it is queued) and has been silent for
 * [run] peer_timeout_s is closed; returns how many were */
static int sessions_reap(loop_state *L) {
    cloud_loop *cl = &L->cl;
    const double now = hat_wall(), limit = cl->r->cfg.peer_timeout_s;
    int n = 0;
    for (int i = 0; i < cl->n; i++) {
        cloud_session *s = &cl->S[i];
        if (!s->done) transport_keepalive(&s->ep);   /* a device queued behind others' work knows we serve */
        if (s->done || s->qn || now - s->heard_w <= limit) continue;
        fprintf(stderr, "[rank %d cloud] device %d (rank %d) sent nothing for %.0f s ([run] peer_timeout_s): its session "
                "is closed, the other devices go on\n", cl->r->rank, s->device, partition_rank_of_device(&cl->r->part, s->device),
                now - s->heard_w);
        s->done = s->lost = 1;
        L->active--;
        n++;
        trace_device row = {.device = (uint32_t)s->device, .rank = (uint32_t)partition_rank_of_device(&cl->r->part, s->device),
                            .cloud_rank = (uint32_t)cl->r->rank, .t_done = comm_now(), .lost = 1};
        collector_add(&cl->r->col, TRACE_DEVICES, &row);
    }
    return n;
}

/* the other devices are done: the run fails naming the silent ones (rank 0 first lets the others'
 * last records arrive, at most 5 s; MPI_Abort then also ends the silent ranks) */
static _Noreturn void lost_fail(loop_state *L, int n_lost) {
    cloud_loop *cl = &L->cl;
    char list[256] = "";
    size_t o = 0;
    for (int i = 0; i < cl->n && o < sizeof list - 16; i++)
        if (cl->S[i].lost) o += (size_t)snprintf(list + o, sizeof list - o, "%s%d", o ? ", " : "", cl->S[i].device);
    if (cl->r->rank == 0) collector_wait_ranks(&cl->r->col, cl->r->size - 1 - n_lost, 5.0);
    fatal("device%s %s lost: no message for %.0f s ([run] peer_timeout_s); the other devices of this cloud rank finished",
          n_lost > 1 ? "s" : "", list, cl->r->cfg.peer_timeout_s);
}

/* the stall-bounded schedule (cloud_loop.h): 1 when a prefill chunk is ready but a decoding
 * session's round is due before *until (which it sets): up to 3 turnarounds after its reply, so
 * that a device slowed by jitter or a shared core still joins */
static int stall_hold(const loop_state *L, double now, double *until) {
    const cloud_loop *cl = &L->cl;
    if (!(cl->r->cfg.max_stall_ms > 0)) return 0;
    int prefill = 0;
    double due = 0;
    for (int i = 0; i < cl->n; i++) {
        const cloud_session *s = &cl->S[i];
        if (s->done) continue;
        if (s->qn && (cloud_queued(cl, s, 0)->h.flags & WIRE_F_PREFILL)) prefill = 1;
        const int round_open = s->qn && !(cloud_queued(cl, s, s->qn - 1)->h.flags & WIRE_F_ROUND_END);
        if ((s->qn == 0 || round_open) && s->decoding && s->turn > 0) {
            const double t = s->t_reply + 3.0 * s->turn;
            if (t > now && t > due) due = t;
        }
    }
    if (!prefill || due <= now) return 0;
    *until = due;
    return 1;
}

/* whether session s's next message is a prompt chunk, and then its tokens (0: not one) */
static int prefill_head(const cloud_loop *cl, const cloud_session *s) {
    if (s->done || !s->qn) return 0;
    const transport_msg *m = cloud_queued(cl, s, 0);
    return (m->h.flags & WIRE_F_PREFILL) ? (int)m->h.n_tok : 0;
}

/* the order sessions offer their requests this pass, into ord: round-robin from L->rr (fair); in
 * fcfs order every session without a prompt chunk first (decode rounds, in round-robin order),
 * then the prefilling ones by when their prompt's first chunk arrived (ties round-robin), of
 * which batch_form takes one — except that a chunk larger than max_batch_tokens (chunking off)
 * that is first in line leads the pass, alone */
static void batch_order(const loop_state *L, int *ord) {
    const cloud_loop *cl = &L->cl;
    const int n = cl->n;
    for (int k = 0; k < n; k++) ord[k] = (L->rr + k) % n;
    if (L->prefill_order != PREFILL_FCFS) return;
    int w = 0, np = 0;
    int *pre = ord + n;   /* scratch: the prefilling sessions */
    for (int k = 0; k < n; k++) {
        const int i = (L->rr + k) % n;
        if (prefill_head(cl, &cl->S[i])) pre[np++] = i;
        else ord[w++] = i;
    }
    for (int x = 1; x < np; x++) {   /* stable insertion sort by first-chunk arrival */
        const int v = pre[x];
        int y = x;
        for (; y > 0 && cl->S[pre[y - 1]].prefill_t > cl->S[v].prefill_t; y--) pre[y] = pre[y - 1];
        pre[y] = v;
    }
    if (np && prefill_head(cl, &cl->S[pre[0]]) > L->max_batch) {   /* it goes alone, first */
        memmove(ord + 1, ord, sizeof *ord * (size_t)w);
        ord[0] = pre[0];
        memmove(ord + w + 1, pre + 1, sizeof *ord * (size_t)(np - 1));
        return;
    }
    memmove(ord + w, pre, sizeof *ord * (size_t)np);
}

/* one request of every session that has one ready, in batch_order's order (fcfs: one prompt
 * chunk at most, beside the decode rounds), up to max_batch tokens (a request larger than that — a whole prompt with chunking off — only as the first of a
 * pass, which then takes nothing else): returns the requests, *tok their tokens */
static int batch_form(loop_state *L, int *tok) {
    cloud_loop *cl = &L->cl;
    int ns = 0;
    *tok = 0;
    int prefills = 0;
    batch_order(L, L->order);
    for (int k = 0; k < cl->n; k++) {
        const int i = L->order[k];
        int n_msg = 0;
        const int room = *tok == 0 && L->max_msg > L->max_batch ? L->max_msg : L->max_batch - *tok;
        if (room <= 0) break;
        const int pre = prefill_head(cl, &cl->S[i]) > 0;
        if (pre && prefills && L->prefill_order == PREFILL_FCFS) continue;   /* one prompt's chunk a pass */
        if (cl->S[i].done || !L->mode->take(cl, i, *tok, room, &L->seqs[ns], &n_msg)) continue;
        prefills += pre;
        L->items[ns++] = (cloud_item){.session = i, .n_msg = n_msg, .row = *tok};
        *tok += L->seqs[ns - 1].n_tok;
    }
    return ns;
}

/* the batch through the backend (the group first), its /batches record, the replies */
static void batch_run(loop_state *L, int ns, int tok) {
    cloud_loop *cl = &L->cl;
    run_ctx *r = cl->r;
    char err[HAT_ERRLEN];
    const double t0 = comm_now();
    if (L->group) {
        step_head sh = {ns, tok};
        group_bcast(r, &sh, sizeof sh, "a step");
        group_bcast(r, L->seqs, sizeof *L->seqs * (size_t)ns, "a step's sequences");
        group_bcast(r, backend_io(cl->be), sizeof(float) * (size_t)tok * r->mc.dim, "a step's hidden states");
    }
    const double tg = L->group ? comm_now() : t0, ctx = cloud_cost_context(L->seqs, ns);
    const cost_coef cc = r->fit->coef;   /* the model in force for this pass */
    CHECK(backend_forward(cl->be, L->seqs, ns, err, sizeof err) == HAT_OK, "%s", err);
    const double real = comm_now() - t0;
    double prof;
    int distorted;
    cloud_cost_charge(r, L->seqs, ns, real, &prof, &distorted);
    const double t1 = comm_now();
    cloud_cost_pass(r, tok, ctx, t1 - t0);
    const trace_batch tb = {.cloud_rank = (uint32_t)r->rank, .batch = L->batch_no++, .n_tok = (uint32_t)tok,
                            .n_dev = (uint32_t)ns, .t_start = t0, .t_end = t1, .group_s = tg - t0, .ctx = ctx,
                            .pred_s = cc.n_samples ? cost_fit_predict(&cc, tok, ctx) : 0, .cost_c0 = cc.c0,
                            .cost_c1 = cc.c1, .cost_c2 = cc.c2, .cost_c3 = cc.c3, .fit_rms_rel = cc.rms_rel,
                            .fit_samples = (uint32_t)cc.n_samples, .fit_clamped = (uint32_t)cc.clamped,
                            .real_s = real, .profile_s = prof, .distorted = (uint32_t)distorted};
    collector_add(&r->col, TRACE_BATCHES, &tb);
    const cloud_pass p = {.t0 = t0, .t1 = t1, .n_tok = tok, .n_seq = ns};
    for (int k = 0; k < ns; k++) {
        const cloud_item *it = &L->items[k];
        cloud_session *se = &cl->S[it->session];
        L->mode->reply(cl, k, it, &L->seqs[k], &p);
        for (int j = 0; j < it->n_msg; j++) {
            if (cloud_queued(cl, se, 0)->h.flags & WIRE_F_LAST_CHUNK) se->prefill_t = 0;   /* its prompt is in */
            session_pop(cl, se);
        }
        if (!(se->prefill_t > 0) && prefill_head(cl, se)) se->prefill_t = cloud_queued(cl, se, 0)->t_seen;
        se->t_reply = comm_now();
        se->heard_w = hat_wall();
        se->decoding = se->awaiting = L->seqs[k].decode;
    }
}

void cloud_loop_run(run_ctx *r, const cloud_mode *mode) {
    const hat_config *cfg = &r->cfg;
    const int cidx = partition_group_of_rank(&r->part, r->rank);
    loop_state L = {.cl = {.r = r, .be = r->be, .ctx = mode->ctx, .n = partition_n_served(&r->part, cidx),
                           .depth = run_msg_depth(cfg)},
                    .mode = mode, .group = tp_active(&r->tp), .max_batch = cfg->max_batch_tokens,
                    .prefill_order = cfg->prefill_order};
    for (int i = 0; i < L.cl.n; i++) {   /* a pass holds at least any one message of its devices */
        const int m = run_msg_max_tok(r, partition_device_served(&r->part, cidx, i));
        if (m > L.max_msg) L.max_msg = m;
    }
    const backend *be = r->be;
    CHECK(be && be->max_tok >= L.max_batch && be->max_tok >= L.max_msg && be->n_slots >= L.cl.n,
          "cloud: backend not planned for this run");
    CHECK(!L.group || !be->embed, "cloud: a tensor-parallel group broadcasts hidden states, not token ids");
    L.cl.S = xcalloc((size_t)L.cl.n, sizeof *L.cl.S);
    L.seqs = xcalloc((size_t)L.cl.n, sizeof *L.seqs);
    L.items = xcalloc((size_t)L.cl.n, sizeof *L.items);
    L.order = xcalloc(2 * (size_t)L.cl.n, sizeof *L.order);
    sessions_open(&L, cidx);
    L.active = L.cl.n;
    int n_lost = 0;
    while (L.active > 0) {
        hat_check_interrupt();
        double next = 1e300;
        sessions_poll(&L, &next);
        n_lost += sessions_reap(&L);
        if (r->rank == 0) collector_poll(&r->col);
        double hold;
        if (stall_hold(&L, comm_now(), &hold)) {
            transport_idle(hold < next ? hold : next);
            continue;
        }
        int tok;
        const int ns = batch_form(&L, &tok);
        if (!ns) {
            if (L.active > 0) transport_idle(next);
            continue;
        }
        L.rr = (L.rr + 1) % L.cl.n;
        batch_run(&L, ns, tok);
    }
    if (n_lost) lost_fail(&L, n_lost);
    if (L.group) {
        step_head end = {-1, 0};
        group_bcast(r, &end, sizeof end, "the end");
    }
    for (int i = 0; i < L.cl.n; i++) {
        transport_free(&L.cl.S[i].ep);
        free(L.cl.S[i].q);
    }
    free(L.cl.S); free(L.seqs); free(L.items); free(L.order);
}
