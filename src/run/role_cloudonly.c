/* role_cloudonly.c — the cloud-only baseline ([run] mode = cloud-only): the non-private reference.
 * The device sends its prompt's token ids to its cloud rank; the cloud runs the whole model
 * (embedding, all L layers, norm, head), samples with the device's sampler settings and seed,
 * and streams every token id back as soon as it is sampled. The device runs no layers: it only
 * records when each token arrives (TTFT/TBT at the device). The trace says "NOT private".
 *
 * Messages (all TOKENS: int32 ids, wire.h; only endpoints of this mode allow them):
 *   up    prompt chunk   seq 0..C-1, pos0, n_tok ids (chunk_next sizes, flags PREFILL, the
 *                        last one also LAST_CHUNK); at most `inflight` unacknowledged, as in the
 *                        split modes (the ids are a few bytes, but the window keeps the cloud's
 *                        pre-posted ring bounded and the comparison with the U-shape fair)
 *   down  chunk reply    the chunk's seq, pos0 and flags with the cloud's queue/compute/batch
 *                        figures; no id (an acknowledgement), except the last chunk's reply,
 *                        which carries the first token
 *   down  decode step    seq C, C+1, ...: pos0 = the position the step ran (the previous token's),
 *                        one id; the step's input is the cloud's own previous token, so the
 *                        device sends nothing while decoding
 *   up    bye            after the session's last token
 * Who decides the end: the cloud. It stops a session at max_tokens, at an end-of-generation
 * token (tokenizer_is_eog: cloud ranks load the tokenizer in this mode) or at the context limit,
 * and marks that token's message WIRE_F_END. The device checks the mark against the same rules
 * (a mismatch is a protocol error), then sends bye.
 *
 * Flow control: the cloud streams without waiting for the device, so up to inflight + max_tokens
 * messages of a session may be unreleased at the device (inflight chunk replies, then every
 * token of a slow link in flight): the device's receive ring is that deep, and every message
 * still finds a posted receive. The cloud's ring for a device holds `inflight` (the chunk window;
 * bye comes after every chunk was answered).
 *
 * Cloud batching on the loop both cloud roles share (cloud_loop.h): whenever work is ready, one
 * step of the cloud's backend (run.c opens it from the backend table with the embedding, all L
 * layers and the head: [cloud] backend applies here as in the split modes) takes one item of
 * every ready session in round-robin order (starting one session further each pass) up to
 * max_batch_tokens: the session's next prompt chunk, or its decode step (1 token). Every
 * sequence gets its last token's logits. On the CPU backend chunks are >= 2 tokens (chunk_next)
 * and a decode step is one token, so every device's logits are bit-identical to the monolithic
 * engine's, and greedy tokens equal `hat generate`'s.
 *
 * Trace: /steps has one row per prompt chunk (PREFILL: device send -> uplink -> cloud queue and
 * compute -> downlink) and one per decode step (DECODE: no device compute and no uplink, so
 * t_start = t_up_send = t_cloud_ready = when the cloud had the step's input token, up_bytes 0;
 * then the cloud's queue and compute and the downlink); /tokens t_emit is when the device saw
 * the token delivered.
 */
#include "run/cloud_loop.h"

#include "net/comm.h"
#include "core/common.h"
#include "net/emul.h"
#include "engine/sampler.h"
#include "net/transport.h"
#include "net/wire.h"

#include <stdlib.h>
#include <string.h>

/* ---- device ---------------------------------------------------------------------------------- */

/* [fault] in this mode: the split modes' broken messages on a prompt chunk (at_seq must name one).
 * Token ids are the protocol here, so kind token_ids sends an id outside the vocabulary. */
static int co_inject_fault(run_ctx *r, endpoint *ep, uint8_t *msg, const wire_header *h0, const int32_t *ids) {
    const hat_config *cfg = &r->cfg;
    if (cfg->fault == FAULT_NONE || r->device != cfg->fault_device || (int)h0->seq != cfg->fault_seq) return 0;
    wire_header h = *h0;
    h.magic = WIRE_MAGIC;
    h.version = WIRE_VERSION;
    h.kind = WIRE_TOKENS;
    h.device = (uint32_t)r->device;
    h.dtype = WIRE_TOKEN_I32;
    h.payload_bytes = (uint64_t)h.n_tok * sizeof(int32_t);
    h.t_send = h.t_deliver = comm_now();
    memcpy(msg + WIRE_HEADER_BYTES, ids, (size_t)h.payload_bytes);
    if (cfg->fault == FAULT_TOKEN_IDS) {
        const int32_t bad = r->mc.n_vocab;
        memcpy(msg + WIRE_HEADER_BYTES, &bad, sizeof bad);
    }
    const size_t bytes = fault_seal(cfg->fault, msg, &h);
    fprintf(stderr, "[rank %d device %d] injecting fault '%s' at message %u (configured in [fault])\n", r->rank,
            r->device, fault_kind_name(cfg->fault), h.seq);
    transport_send_raw(ep, msg, bytes);
    return 1;
}

/* a device of this mode: its endpoint, the chunks awaiting their reply, the stream so far */
typedef struct {
    run_ctx *r;
    const device_cfg *dc;
    int K, cloud;
    endpoint ep;
    trace_step *pend;     /* (K) chunks awaiting their reply, by seq % K */
    uint8_t *fault_msg;   /* [fault] configured: room for one broken chunk */
    trace_device td;
    uint32_t seq;         /* next chunk's message number */
    int pos_sent, outstanding, gen;
    double t_prev;        /* when the previous token arrived */
} co_device;

/* the next prompt chunk up (or the configured fault in its place) */
static void co_send_chunk(co_device *d) {
    run_ctx *r = d->r;
    const int left = r->n_prompt - d->pos_sent;   /* chunking off: the whole prompt at once */
    const int n = d->dc->chunking == CHUNK_OFF ? left : chunk_next(left, r->cfg.chunk_tokens);
    const int last = d->pos_sent + n == r->n_prompt;
    trace_step *st = &d->pend[d->seq % (uint32_t)d->K];
    *st = (trace_step){.device = (uint32_t)r->device, .seq = d->seq, .kind = TRACE_STEP_PREFILL,
                       .pos0 = (uint32_t)d->pos_sent, .n_tok = (uint32_t)n, .cloud_rank = (uint32_t)d->cloud,
                       .t_start = comm_now()};
    const wire_header h = {.seq = d->seq, .pos0 = (uint32_t)d->pos_sent, .n_tok = (uint32_t)n,
                           .flags = (uint16_t)(WIRE_F_PREFILL | (last ? WIRE_F_LAST_CHUNK : 0))};
    if (co_inject_fault(r, &d->ep, d->fault_msg, &h, r->prompt + d->pos_sent)) {
        st->t_up_send = st->t_up_first = comm_now();
    } else {
        const link_sched ls = transport_send_tokens(&d->ep, &h, r->prompt + d->pos_sent, &st->t_up_send);
        st->t_up_first = st->t_up_send;
        st->up_model_s = ls.deliver - st->t_up_send;
    }
    st->up_bytes = WIRE_HEADER_BYTES + (uint64_t)n * sizeof(int32_t);
    d->seq++;
    d->td.chunks++;
    d->pos_sent += n;
    d->outstanding++;
}

/* the step record a message from the cloud closes: its prompt chunk's, or a decode step's (*dec) */
static trace_step *co_step_of(co_device *d, const wire_header *h, trace_step *dec) {
    run_ctx *r = d->r;
    if (h->flags & WIRE_F_PREFILL) {
        trace_step *st = &d->pend[h->seq % (uint32_t)d->K];
        const int last = (h->flags & WIRE_F_LAST_CHUNK) != 0;
        CHECK(d->outstanding > 0 && st->seq == h->seq && st->pos0 == h->pos0 && (int)h->n_tok == last &&
              last == (int)(st->pos0 + st->n_tok == (uint32_t)r->n_prompt),
              "device %d: reply to message %u (pos0 %u, %u ids, flags %u) does not match prompt chunk %u "
              "(pos0 %u+%u)", r->device, h->seq, h->pos0, h->n_tok, h->flags, st->seq, st->pos0, st->n_tok);
        d->outstanding--;
        return st;
    }
    /* a decode step: its input was the cloud's previous token, nothing went up */
    CHECK(d->gen > 0 && h->seq == d->seq + (uint32_t)d->gen - 1 && (int)h->pos0 == r->n_prompt + d->gen - 1 &&
          h->n_tok == 1, "device %d: unexpected token message %u (pos0 %u, %u ids) after %d tokens", r->device,
          h->seq, h->pos0, h->n_tok, d->gen);
    *dec = (trace_step){.device = (uint32_t)r->device, .seq = h->seq, .kind = TRACE_STEP_DECODE, .pos0 = h->pos0,
                        .n_tok = 1, .cloud_rank = (uint32_t)d->cloud, .t_start = h->t_peer_ready,
                        .t_up_first = h->t_peer_ready, .t_up_send = h->t_peer_ready, .emitted = 1};
    d->td.rounds++;
    return dec;
}

/* the token message m carries: its record, and whether the session ends with it (the cloud
 * decides the end; the device holds it to the same rules) */
static int co_token(co_device *d, const transport_msg *m) {
    run_ctx *r = d->r;
    int32_t tok;
    memcpy(&tok, m->payload, sizeof tok);
    const double t = m->t_seen;
    const trace_token tt = {.device = (uint32_t)r->device, .index = (uint32_t)d->gen, .step = m->h.seq, .token = tok,
                            .t_emit = t, .latency_s = d->gen == 0 ? t - d->td.t_request : t - d->t_prev};
    collector_add(&r->col, TRACE_TOKENS, &tt);
    if (d->gen == 0) d->td.t_first = t;
    d->t_prev = t;
    d->gen++;
    const int want_end = d->gen >= d->dc->max_tokens || tokenizer_is_eog(r->tok, tok) || r->n_prompt + d->gen - 1 >= r->cfg.ctx;
    const int end = (m->h.flags & WIRE_F_END) != 0;
    CHECK(end == want_end, "device %d: the cloud %s the session after token %d (id %d), expected it to %s", r->device,
          end ? "ended" : "went on with", d->gen, tok, want_end ? "end" : "go on");
    return end;
}

/* one message from the cloud: its step record, its token if any; 1 when the session ended */
static int co_receive(co_device *d, const transport_msg *m) {
    trace_step dec, *st = co_step_of(d, &m->h, &dec);
    run_step_reply(st, m);
    st->t_end = m->t_seen;
    d->td.up_bytes += st->up_bytes;
    d->td.down_bytes += st->down_bytes;
    d->td.n_steps++;
    collector_add(&d->r->col, TRACE_STEPS, st);
    int end = 0;
    if (m->h.n_tok) end = co_token(d, m);
    else CHECK(!(m->h.flags & WIRE_F_END), "device %d: the cloud ended the session before the first token", d->r->device);
    transport_release(&d->ep);
    return end;
}

void role_cloudonly_device_main(run_ctx *r) {
    const hat_config *cfg = &r->cfg;
    const int max_tok = run_msg_max_tok(r, r->device);
    co_device d = {.r = r, .dc = &cfg->dev[r->device], .K = run_msg_depth(cfg),
                   .cloud = partition_cloud_of_device(&r->part, r->device)};
    link_params up;
    emul_link_params(&up, &d.dc->link, 0);
    /* dim 1 and fp32 size the slots for max_tok int32 ids; the ring holds everything the cloud
     * may have sent and we not yet released (see the flow-control note above) */
    transport_init(&d.ep, d.cloud, r->device, 0, d.K + d.dc->max_tokens, 1, max_tok, WIRE_F32, &up, cfg->emulate_links,
                  cfg->seed);
    transport_allow_tokens(&d.ep, r->mc.n_vocab);
    d.pend = xcalloc((size_t)d.K, sizeof *d.pend);
    if (cfg->fault != FAULT_NONE) d.fault_msg = xmalloc(WIRE_HEADER_BYTES + (size_t)max_tok * sizeof(int32_t));
    d.td = (trace_device){.device = (uint32_t)r->device, .rank = (uint32_t)r->rank, .cloud_rank = (uint32_t)d.cloud,
                          .prompt_tokens = (uint32_t)r->n_prompt, .chunking = (uint32_t)d.dc->chunking};

    emul_sleep_until(d.dc->start_s, comm_now);
    d.td.t_request = comm_now();
    transport_msg m;
    for (int end = 0; !end;) {
        if (d.pos_sent < r->n_prompt && d.outstanding < d.K) {
            co_send_chunk(&d);
            if (!transport_poll(&d.ep, &m, &(double){0})) continue;
        } else {
            transport_wait(&d.ep, &m);
        }
        end = co_receive(&d, &m);
    }
    d.td.gen_tokens = (uint32_t)d.gen;
    d.td.t_done = comm_now();
    const wire_header bye = {.kind = WIRE_BYE, .seq = d.seq + (uint32_t)d.gen - 1};
    transport_send(&d.ep, &bye, NULL, &(double){0});
    transport_flush(&d.ep);
    collector_add(&r->col, TRACE_DEVICES, &d.td);
    collector_finish(&r->col);
    free(d.fault_msg);
    free(d.pend);
    transport_free(&d.ep);
}

/* ---- cloud ----------------------------------------------------------------------------------- */

/* a session's state beyond the loop's (cloud_loop.h): sampling and the stream of tokens */
typedef struct {
    int ended, prefilled;
    sampler *smp;
    int max_tokens, gen;
    int32_t last;       /* the last sampled token: the next decode step's input */
    double t_last;      /* when it was sampled (the decode step's input was ready) */
    uint32_t seq;       /* the next decode step's message number (after the prompt chunks') */
} co_session;

/* the queue holds prompt chunks, then the bye once the session ended */
static int co_head(cloud_loop *cl, int i) {
    const co_session *c = &((co_session *)cl->ctx)[i];
    const cloud_session *s = &cl->S[i];
    const wire_header *h = &cloud_queued(cl, s, 0)->h;
    if (h->kind == WIRE_BYE) {
        CHECK(c->ended && s->qn == 1, "device %d said bye before its session ended", s->device);
        return 1;
    }
    CHECK(!c->prefilled && (h->flags & WIRE_F_PREFILL),
          "device %d sent token ids (message %u) that are not part of its prompt", s->device, h->seq);
    return 0;
}

/* the session's next prompt chunk, or its decode step (its own last token) */
static int co_take(cloud_loop *cl, int i, int row, int room, backend_seq *seq, int *n_msg) {
    const co_session *c = &((co_session *)cl->ctx)[i];
    const cloud_session *s = &cl->S[i];
    if (c->ended) return 0;
    int32_t *ids = backend_ids(cl->be);
    const int held = backend_kv_len(cl->be, i);
    int nt = 1, pos0 = held;
    if (!c->prefilled) {
        if (!s->qn) return 0;
        const transport_msg *q = cloud_queued(cl, s, 0);
        nt = (int)q->h.n_tok;
        pos0 = (int)q->h.pos0;
        if (nt > room) return 0;
        CHECK(pos0 == held, "device %d sent prompt positions from %d, its session holds %d", s->device, pos0, held);
        memcpy(ids + row, q->payload, (size_t)nt * sizeof *ids);
    } else {
        if (nt > room) return 0;
        ids[row] = c->last;
    }
    *seq = (backend_seq){.slot = i, .pos0 = pos0, .n_tok = nt, .decode = 0};
    *n_msg = c->prefilled ? 0 : 1;
    return 1;
}

/* sampled token `tok` of session i: the end rule, then the message down */
static void co_emit(cloud_loop *cl, int i, wire_header *h, int32_t tok) {
    co_session *c = &((co_session *)cl->ctx)[i];
    c->gen++;
    c->last = tok;
    c->t_last = comm_now();
    if (c->gen >= c->max_tokens || tokenizer_is_eog(cl->r->tok, tok) || backend_kv_len(cl->be, i) >= cl->r->cfg.ctx) {
        h->flags |= WIRE_F_END;
        c->ended = 1;
    }
    h->n_tok = 1;
    double ts;
    transport_send_tokens(&cl->S[i].ep, h, &tok, &ts);
}

/* a prompt chunk's acknowledgement (the last one's carries the first token), or a decode step's token */
static void co_reply(cloud_loop *cl, int k, const cloud_item *it, const backend_seq *seq, const cloud_pass *p) {
    const int i = it->session;
    co_session *c = &((co_session *)cl->ctx)[i];
    const float *logits = backend_logits(cl->be) + (size_t)k * cl->r->mc.n_vocab;
    wire_header h = {.pos0 = (uint32_t)seq->pos0, .compute_s = (float)(p->t1 - p->t0), .batch_tokens = wire_u16_sat(p->n_tok),
                     .batch_devices = wire_u16_sat(p->n_seq)};
    if (c->prefilled) {
        h.seq = c->seq++;
        h.t_peer_ready = c->t_last;
        h.queue_s = (float)(p->t0 - c->t_last);
        co_emit(cl, i, &h, sampler_sample(c->smp, logits));
        return;
    }
    const transport_msg *q = cloud_queued(cl, &cl->S[i], 0);
    h.seq = q->h.seq;
    h.flags = q->h.flags;
    h.t_peer_ready = q->t_seen;
    h.queue_s = (float)(p->t0 - q->t_seen);
    if (q->h.flags & WIRE_F_LAST_CHUNK) {   /* the prompt is in: its first token */
        c->prefilled = 1;
        c->seq = q->h.seq + 1;
        co_emit(cl, i, &h, sampler_sample(c->smp, logits));
    } else {                                /* an acknowledgement, no id */
        double ts;
        transport_send_tokens(&cl->S[i].ep, &h, NULL, &ts);
    }
}

void role_cloudonly_cloud_main(run_ctx *r) {
    const hat_config *cfg = &r->cfg;
    const int cidx = partition_group_of_rank(&r->part, r->rank), n = partition_n_served(&r->part, cidx);
    CHECK(r->be && r->be->embed && r->be->head, "cloud-only: the cloud's backend does not hold the whole model");
    char err[HAT_ERRLEN];
    co_session *S = xcalloc((size_t)n, sizeof *S);
    for (int i = 0; i < n; i++) {
        const int device = partition_device_served(&r->part, cidx, i);
        const device_cfg *dc = &cfg->dev[device];
        S[i].max_tokens = dc->max_tokens;
        /* the device's sampler settings and seed, exactly as the device would sample */
        const sampler_params sp = {.temp = dc->temp, .top_k = dc->top_k, .top_p = dc->top_p,
                                   .seed = cfg->seed + 1000003u * (uint64_t)device};
        CHECK(sampler_init(&S[i].smp, &sp, r->mc.n_vocab, err, sizeof err) == HAT_OK, "%s", err);
    }
    const cloud_mode mode = {.dim = 1, .wire = WIRE_F32, .n_vocab = r->mc.n_vocab, .head = co_head, .take = co_take,
                             .reply = co_reply, .ctx = S};
    cloud_loop_run(r, &mode);
    for (int i = 0; i < n; i++) sampler_free(S[i].smp);
    free(S);
}
