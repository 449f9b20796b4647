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
 * Cloud batching as in role_cloud.c: whenever work is ready, one forward_run_batch pass
 * takes one item of every ready session in round-robin order (starting one session further each
 * pass) up to max_batch_tokens: the session's next prompt chunk, or its decode step (1 token).
 * Every sequence gets its last token's logits (.head = 1). Chunks are >= 2 tokens (chunk_next)
 * and a decode step is one token, so every device's logits are bit-identical to the monolithic
 * engine's, and greedy tokens equal `hat generate`'s.
 *
 * Trace: /steps has one row per prompt chunk (PREFILL: device send -> uplink -> cloud queue and
 * compute -> downlink) and one per decode step (DECODE: no device compute and no uplink, so
 * t_start = t_up_send = t_cloud_ready = when the cloud had the step's input token, up_bytes 0;
 * then the cloud's queue and compute and the downlink); /tokens t_emit is when the device saw
 * the token delivered.
 */
#include "run/roles.h"

#include "net/comm.h"
#include "core/common.h"
#include "net/emul.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/sampler.h"
#include "net/transport.h"
#include "net/wire.h"

#include <stdlib.h>
#include <string.h>

/* largest prompt chunk (chunk_next: a one-token remainder joins the chunk before it) */
static int co_max_tok(const hat_config *c) { return c->chunk_tokens + 1; }

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

void role_cloudonly_device_main(run_ctx *r) {
    const hat_config *cfg = &r->cfg;
    const device_cfg *dc = &cfg->dev[r->device];
    const int K = cfg->inflight, max_tok = co_max_tok(cfg);
    link_params up;
    emul_link_params(&up, &dc->link, 0);
    const int cloud = partition_cloud_of_device(&r->part, r->device);
    endpoint ep;
    /* dim 1 and fp32 size the slots for max_tok int32 ids; the ring holds everything the cloud
     * may have sent and we not yet released (see the flow-control note above) */
    transport_init(&ep, cloud, r->device, 0, K + dc->max_tokens, 1, max_tok, WIRE_F32, &up, cfg->emulate_links,
                  cfg->seed);
    transport_allow_tokens(&ep, r->mc.n_vocab);
    trace_step *pend = xcalloc((size_t)K, sizeof *pend);   /* chunks awaiting their reply, by seq % K */
    const size_t fault_bytes = WIRE_HEADER_BYTES + (size_t)max_tok * sizeof(int32_t);
    uint8_t *fault_msg = cfg->fault != FAULT_NONE ? xmalloc(fault_bytes) : NULL;
    trace_device td = {.device = (uint32_t)r->device, .rank = (uint32_t)r->rank, .cloud_rank = (uint32_t)cloud,
                       .prompt_tokens = (uint32_t)r->n_prompt};

    emul_sleep_until(dc->start_s, comm_now);
    td.t_request = comm_now();

    uint32_t seq = 0;
    int pos_sent = 0, outstanding = 0, gen = 0, end = 0;
    double t_prev = 0;
    transport_msg m;
    while (!end) {
        if (pos_sent < r->n_prompt && outstanding < K) {
            const int n = chunk_next(r->n_prompt - pos_sent, cfg->chunk_tokens), last = pos_sent + n == r->n_prompt;
            trace_step *st = &pend[seq % (uint32_t)K];
            *st = (trace_step){.device = (uint32_t)r->device, .seq = seq, .kind = TRACE_STEP_PREFILL,
                               .pos0 = (uint32_t)pos_sent, .n_tok = (uint32_t)n, .cloud_rank = (uint32_t)cloud,
                               .t_start = comm_now()};
            const wire_header h = {.seq = seq, .pos0 = (uint32_t)pos_sent, .n_tok = (uint32_t)n,
                                   .flags = (uint16_t)(WIRE_F_PREFILL | (last ? WIRE_F_LAST_CHUNK : 0))};
            if (co_inject_fault(r, &ep, fault_msg, &h, r->prompt + pos_sent)) {
                st->t_up_send = st->t_up_first = comm_now();
            } else {
                const link_sched ls = transport_send_tokens(&ep, &h, r->prompt + pos_sent, &st->t_up_send);
                st->t_up_first = st->t_up_send;
                st->up_model_s = ls.deliver - st->t_up_send;
            }
            st->up_bytes = WIRE_HEADER_BYTES + (uint64_t)n * sizeof(int32_t);
            seq++;
            pos_sent += n;
            outstanding++;
            if (!transport_poll(&ep, &m, &(double){0})) continue;
        } else {
            transport_wait(&ep, &m);
        }
        const wire_header *h = &m.h;
        trace_step dec, *st;
        if (h->flags & WIRE_F_PREFILL) {
            st = &pend[h->seq % (uint32_t)K];
            const int last = (h->flags & WIRE_F_LAST_CHUNK) != 0;
            CHECK(outstanding > 0 && st->seq == h->seq && st->pos0 == h->pos0 && (int)h->n_tok == last &&
                  last == (int)(st->pos0 + st->n_tok == (uint32_t)r->n_prompt),
                  "device %d: reply to message %u (pos0 %u, %u ids, flags %u) does not match prompt chunk %u "
                  "(pos0 %u+%u)", r->device, h->seq, h->pos0, h->n_tok, h->flags, st->seq, st->pos0, st->n_tok);
            outstanding--;
        } else {   /* a decode step: its input was the cloud's previous token, nothing went up */
            CHECK(gen > 0 && h->seq == seq + (uint32_t)gen - 1 && (int)h->pos0 == r->n_prompt + gen - 1 &&
                  h->n_tok == 1, "device %d: unexpected token message %u (pos0 %u, %u ids) after %d tokens", r->device,
                  h->seq, h->pos0, h->n_tok, gen);
            st = &dec;
            *st = (trace_step){.device = (uint32_t)r->device, .seq = h->seq, .kind = TRACE_STEP_DECODE, .pos0 = h->pos0,
                               .n_tok = 1, .cloud_rank = (uint32_t)cloud, .t_start = h->t_peer_ready,
                               .t_up_first = h->t_peer_ready, .t_up_send = h->t_peer_ready, .emitted = 1};
            td.rounds++;
        }
        run_step_reply(st, &m);
        st->t_end = m.t_seen;
        td.up_bytes += st->up_bytes;
        td.down_bytes += st->down_bytes;
        td.n_steps++;
        collector_add(&r->col, TRACE_STEPS, st);
        if (h->n_tok) {
            int32_t tok;
            memcpy(&tok, m.payload, sizeof tok);
            const double t = m.t_seen;
            const trace_token tt = {.device = (uint32_t)r->device, .index = (uint32_t)gen, .step = h->seq, .token = tok,
                                    .t_emit = t, .latency_s = gen == 0 ? t - td.t_request : t - t_prev};
            collector_add(&r->col, TRACE_TOKENS, &tt);
            if (gen == 0) td.t_first = t;
            t_prev = t;
            gen++;
            /* the cloud decides the end; the device holds it to the same rules */
            const int want_end =
                gen >= dc->max_tokens || tokenizer_is_eog(r->tok, tok) || r->n_prompt + gen - 1 >= cfg->ctx;
            end = (h->flags & WIRE_F_END) != 0;
            CHECK(end == want_end, "device %d: the cloud %s the session after token %d (id %d), expected it to %s",
                  r->device, end ? "ended" : "went on with", gen, tok, want_end ? "end" : "go on");
        } else {
            CHECK(!(h->flags & WIRE_F_END), "device %d: the cloud ended the session before the first token", r->device);
        }
        transport_release(&ep);
    }
    td.gen_tokens = (uint32_t)gen;
    td.t_done = comm_now();
    const wire_header bye = {.kind = WIRE_BYE, .seq = seq + (uint32_t)gen - 1};
    transport_send(&ep, &bye, NULL, &(double){0});
    transport_flush(&ep);
    collector_add(&r->col, TRACE_DEVICES, &td);
    collector_finish(&r->col);
    free(fault_msg);
    free(pend);
    transport_free(&ep);
}

/* ---- cloud ----------------------------------------------------------------------------------- */

typedef struct {
    int device, done, ended, prefilled;
    kvcache kv;
    endpoint ep;
    transport_msg *q;   /* (inflight) delivered prompt chunks (and bye), FIFO */
    int qh, qn;
    sampler *smp;
    int max_tokens, gen;
    int32_t last;       /* the last sampled token: the next decode step's input */
    double t_last;      /* when it was sampled (the decode step's input was ready) */
    uint32_t seq;       /* the next decode step's message number (after the prompt chunks') */
} co_session;

static void co_pop(co_session *s, int K) {
    transport_release(&s->ep);
    s->qh = (s->qh + 1) % K;
    s->qn--;
}

/* sampled token `tok` of session s: the end rule, then the message down */
static void co_emit(run_ctx *r, co_session *s, wire_header *h, int32_t tok) {
    s->gen++;
    s->last = tok;
    s->t_last = comm_now();
    if (s->gen >= s->max_tokens || tokenizer_is_eog(r->tok, tok) || s->kv.n >= r->cfg.ctx) {
        h->flags |= WIRE_F_END;
        s->ended = 1;
    }
    h->n_tok = 1;
    double ts;
    transport_send_tokens(&s->ep, h, &tok, &ts);
}

void role_cloudonly_cloud_main(run_ctx *r) {
    const hat_config *cfg = &r->cfg;
    const int L = r->mc.n_layer, n_vocab = r->mc.n_vocab;
    const int cidx = r->rank, n = partition_n_served(&r->part, cidx), K = cfg->inflight, max_msg_tok = co_max_tok(cfg);
    const int max_batch = cfg->max_batch_tokens > max_msg_tok ? cfg->max_batch_tokens : max_msg_tok;
    char err[HAT_ERRLEN];
    model *m;
    CHECK(model_load_file(&m, r->gf, &(model_part){.l0 = 0, .l1 = L, .embed = 1, .head = 1}, err, sizeof err) == HAT_OK,
          "%s", err);
    forward_state fs;   /* one logits row per sequence of a pass: at most min(sessions, max_batch) */
    const int logit_rows = n < max_batch ? n : max_batch;
    CHECK(forward_init(&fs, m, max_batch, cfg->ctx, logit_rows, cfg->cloud_threads, err, sizeof err) == HAT_OK, "%s",
          err);
    co_session *S = xcalloc((size_t)n, sizeof *S);
    for (int i = 0; i < n; i++) {
        co_session *s = &S[i];
        s->device = partition_device_served(&r->part, cidx, i);
        const device_cfg *dc = &cfg->dev[s->device];
        s->max_tokens = dc->max_tokens;
        CHECK(kvcache_init(&s->kv, 0, L, cfg->ctx, r->mc.kv_dim, err, sizeof err) == HAT_OK, "%s", err);
        link_params down;
        emul_link_params(&down, &dc->link, 1);
        transport_init(&s->ep, partition_rank_of_device(&r->part, s->device), s->device, 1, K, 1, max_msg_tok, WIRE_F32,
                      &down, cfg->emulate_links, cfg->seed);
        transport_allow_tokens(&s->ep, n_vocab);
        s->q = xcalloc((size_t)K, sizeof *s->q);
        /* the device's sampler settings and seed, exactly as the device would sample */
        const sampler_params sp = {.temp = dc->temp, .top_k = dc->top_k, .top_p = dc->top_p,
                                   .seed = cfg->seed + 1000003u * (uint64_t)s->device};
        CHECK(sampler_init(&s->smp, &sp, n_vocab, err, sizeof err) == HAT_OK, "%s", err);
    }
    int32_t *ids = xmalloc((size_t)max_batch * sizeof *ids);
    forward_seq *seqs = xcalloc((size_t)n, sizeof *seqs);
    int *who = xcalloc((size_t)n, sizeof *who);
    int active = n, rr = 0;
    uint32_t batch_no = 0;
    while (active > 0) {
        double next = 1e300;
        for (int i = 0; i < n; i++) {
            co_session *s = &S[i];
            if (s->done) continue;
            transport_msg msg;
            while (s->qn < K && transport_poll(&s->ep, &msg, &next)) s->q[(s->qh + s->qn++) % K] = msg;
            if (!s->qn) continue;
            const wire_header *h = &s->q[s->qh].h;
            if (h->kind == WIRE_BYE) {
                CHECK(s->ended && s->qn == 1, "device %d said bye before its session ended", s->device);
                co_pop(s, K);
                s->done = 1;
                active--;
            } else {
                CHECK(!s->prefilled && (h->flags & WIRE_F_PREFILL),
                      "device %d sent token ids (message %u) that are not part of its prompt", s->device, h->seq);
            }
        }
        if (r->rank == 0) collector_poll(&r->col);
        /* form the batch: each ready session's next prompt chunk, or its decode step */
        int ns = 0, tok = 0;
        for (int k = 0; k < n; k++) {
            co_session *s = &S[(rr + k) % n];
            if (s->done || s->ended) continue;
            int nt, pos0;
            if (!s->prefilled) {
                if (!s->qn) continue;
                const transport_msg *q = &s->q[s->qh];
                nt = (int)q->h.n_tok;
                pos0 = (int)q->h.pos0;
                if (tok + nt > max_batch) continue;
                CHECK(pos0 == s->kv.n, "device %d sent prompt positions from %d, its session holds %d", s->device, pos0,
                      s->kv.n);
                memcpy(ids + tok, q->payload, (size_t)nt * sizeof *ids);
            } else {
                nt = 1;
                pos0 = s->kv.n;
                if (tok + nt > max_batch) continue;
                ids[tok] = s->last;
            }
            seqs[ns] = (forward_seq){&s->kv, pos0, nt, 0};
            who[ns++] = (rr + k) % n;
            tok += nt;
        }
        if (!ns) {
            transport_idle(next);
            continue;
        }
        rr = (rr + 1) % n;
        const double t0 = comm_now();
        forward_run_batch(m, &fs, &(forward_batch_args){.tokens = ids, .seqs = seqs, .n_seq = ns, .l0 = 0,
                                                                .l1 = L, .head = 1});
        const double t1 = comm_now();
        const trace_batch tb = {.cloud_rank = (uint32_t)r->rank, .batch = batch_no++, .n_tok = (uint32_t)tok,
                                .n_dev = (uint32_t)ns, .t_start = t0, .t_end = t1};
        collector_add(&r->col, TRACE_BATCHES, &tb);
        for (int k = 0; k < ns; k++) {
            co_session *s = &S[who[k]];
            const float *logits = fs.logits + (size_t)k * n_vocab;
            wire_header h = {.pos0 = (uint32_t)seqs[k].pos0, .compute_s = (float)(t1 - t0),
                             .batch_tokens = (uint32_t)tok, .batch_devices = (uint32_t)ns};
            if (!s->prefilled) {
                const transport_msg *q = &s->q[s->qh];
                h.seq = q->h.seq;
                h.flags = q->h.flags;
                h.t_peer_ready = q->t_seen;
                h.queue_s = (float)(t0 - q->t_seen);
                if (q->h.flags & WIRE_F_LAST_CHUNK) {   /* the prompt is in: its first token */
                    s->prefilled = 1;
                    s->seq = q->h.seq + 1;
                    co_emit(r, s, &h, sampler_sample(s->smp, logits));
                } else {                                /* an acknowledgement, no id */
                    double ts;
                    transport_send_tokens(&s->ep, &h, NULL, &ts);
                }
                co_pop(s, K);
            } else {
                h.seq = s->seq++;
                h.t_peer_ready = s->t_last;
                h.queue_s = (float)(t0 - s->t_last);
                co_emit(r, s, &h, sampler_sample(s->smp, logits));
            }
        }
    }
    for (int i = 0; i < n; i++) {
        transport_free(&S[i].ep);
        kvcache_free(&S[i].kv);
        sampler_free(S[i].smp);
        free(S[i].q);
    }
    free(S); free(ids); free(seqs); free(who);
    forward_free(&fs);
    model_free(m);
}
