/* role_device.c — an edge device of the U-shaped split: embedding + layers [0,a) run here, the
 * hidden states go to the cloud, the cloud's hidden states come back through layers [L-b,L),
 * the final norm and the LM head, and the device samples the next token.
 *
 * Prefill is chunked (chunk_next): the device sends chunk i and goes on with chunk i+1 while
 * the cloud works, keeping at most `inflight` messages outstanding; each returned chunk runs
 * through the output submodel to fill its KV cache, and the last one gives the first token.
 * Decode is one round trip per token (the U-shape baseline).
 */
#include "run.h"

#include "comm.h"
#include "common.h"
#include "emul.h"
#include "forward.h"
#include "kvcache.h"
#include "sampler.h"
#include "transport.h"
#include "wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    run_ctx *r;
    const device_cfg *dc;
    model *m_in, *m_out;
    kvcache kv_in, kv_out;
    forward_state fs;
    endpoint ep;
    compute_params cp;
    double params_in, params_out;
    trace_step *pend;          /* (inflight) steps awaiting their reply, by seq % inflight */
    trace_device td;
    int L, a, b;
} device_ctx;

/* Runs `fn`'s compute through the device profile: measured time, profile prediction, padding. */
static double charge(device_ctx *d, double measured, size_t bytes, double params, int n_tok, double *pred_out) {
    const double pred = compute_predict(&d->cp, bytes, 2.0 * params * n_tok);
    *pred_out = pred;
    if (d->cp.enabled && measured > pred) d->td.profile_exceeded++;
    return emul_compute(measured, pred);
}

/* input submodel on n tokens at pos0, then send the hidden states up */
static void step_send(device_ctx *d, const int32_t *ids, int n, int pos0, uint32_t seq, int prefill, int last) {
    trace_step *st = &d->pend[seq % (uint32_t)d->r->cfg.inflight];
    memset(st, 0, sizeof *st);
    st->device = (uint32_t)d->r->device;
    st->seq = seq;
    st->kind = prefill ? TRACE_STEP_PREFILL : TRACE_STEP_DECODE;
    st->pos0 = (uint32_t)pos0;
    st->n_tok = (uint32_t)n;
    st->cloud_rank = (uint32_t)d->ep.peer;
    st->t_start = comm_now();
    transformer_forward(d->m_in, &d->kv_in, &d->fs, &(forward_args){.tokens = ids, .n_tok = n, .pos0 = pos0, .l0 = 0, .l1 = d->a});
    st->dev_in_s = comm_now() - st->t_start;
    charge(d, st->dev_in_s, d->m_in->bytes_per_token, d->params_in, n, &st->dev_in_pred_s);

    const fault_kind fk = d->r->cfg.fault;
    if (fk != FAULT_NONE && d->r->device == d->r->cfg.fault_device && (int)seq == d->r->cfg.fault_seq) {
        /* deliberate protocol faults, to prove the receiver refuses them (configured in [fault]) */
        static uint8_t msg[WIRE_HEADER_BYTES + 4096 * 4];
        const size_t pay = wire_payload_bytes(d->ep.dtype, 1, d->ep.dim);
        CHECK(WIRE_HEADER_BYTES + pay <= sizeof msg, "fault message too large");
        wire_header h = {.magic = WIRE_MAGIC, .version = WIRE_VERSION, .kind = WIRE_HIDDEN_UP, .device = st->device,
                         .seq = seq, .pos0 = (uint32_t)pos0, .n_tok = 1, .dim = (uint32_t)d->ep.dim,
                         .dtype = (uint16_t)d->ep.dtype, .payload_bytes = pay, .t_send = comm_now()};
        h.t_deliver = h.t_send;
        size_t bytes = WIRE_HEADER_BYTES + pay;
        wire_encode(d->ep.dtype, d->fs.x, msg + WIRE_HEADER_BYTES, (size_t)d->ep.dim);
        if (fk == FAULT_BAD_VERSION) h.version = WIRE_VERSION + 1;
        if (fk == FAULT_TOKEN_IDS) {   /* token ids as a payload of int32 */
            h.kind = WIRE_TOKENS;
            h.dtype = 0;
            h.payload_bytes = (uint64_t)n * sizeof(int32_t);
            memcpy(msg + WIRE_HEADER_BYTES, ids, (size_t)n * sizeof(int32_t));
            bytes = WIRE_HEADER_BYTES + (size_t)n * sizeof(int32_t);
        }
        memcpy(msg, &h, sizeof h);
        wire_seal(msg);
        if (fk == FAULT_TRUNCATED) bytes -= pay / 2;
        if (fk == FAULT_BAD_CHECKSUM) msg[WIRE_HEADER_BYTES + 3] ^= 0x10;
        fprintf(stderr, "[rank %d device %d] injecting fault '%s' at message %u (configured in [fault])\n", d->r->rank,
                d->r->device, fault_kind_name(fk), seq);
        endpoint_send_raw(&d->ep, msg, bytes);
        st->t_up_send = h.t_send;
        return;
    }
    wire_header h = {.kind = WIRE_HIDDEN_UP, .seq = seq, .pos0 = (uint32_t)pos0, .n_tok = (uint32_t)n,
                     .flags = (uint16_t)((prefill ? WIRE_F_PREFILL : 0) | (last ? WIRE_F_LAST_CHUNK : 0))};
    const link_sched ls = endpoint_send(&d->ep, &h, d->fs.x, &st->t_up_send);
    st->up_model_s = ls.deliver - st->t_up_send;
    st->up_bytes = WIRE_HEADER_BYTES + wire_payload_bytes(d->ep.dtype, n, d->ep.dim);
}

/* the reply to step m.h.seq: output submodel (+ head when `head`), finish the step record */
static void step_receive(device_ctx *d, const transport_msg *m, int head) {
    const wire_header *h = &m->h;
    trace_step *st = &d->pend[h->seq % (uint32_t)d->r->cfg.inflight];
    CHECK(st->seq == h->seq && st->pos0 == h->pos0 && st->n_tok == h->n_tok,
          "device %d: reply for message %u (positions %u+%u) does not match the request (%u, %u+%u)", d->r->device,
          h->seq, h->pos0, h->n_tok, st->seq, st->pos0, st->n_tok);
    st->t_cloud_ready = h->t_peer_ready;
    st->cloud_queue_s = h->queue_s;
    st->cloud_compute_s = h->compute_s;
    st->batch_tokens = h->batch_tokens;
    st->batch_devices = h->batch_devices;
    st->t_down_send = h->t_send;
    st->down_model_s = h->t_deliver - h->t_send;
    st->t_down_ready = m->t_seen;
    st->down_bytes = m->bytes;
    const double t0 = comm_now();
    wire_decode(d->ep.dtype, m->payload, d->fs.x, (size_t)h->n_tok * d->ep.dim);
    endpoint_release(&d->ep);
    transformer_forward(d->m_out, &d->kv_out, &d->fs, &(forward_args){.hidden_in = d->fs.x, .n_tok = (int)h->n_tok,
                        .pos0 = (int)h->pos0, .l0 = d->L - d->b, .l1 = d->L, .head = head});
    st->dev_out_s = comm_now() - t0;
    charge(d, st->dev_out_s, d->m_out->bytes_per_token, d->params_out, (int)h->n_tok, &st->dev_out_pred_s);
    st->t_end = comm_now();
    d->td.up_bytes += st->up_bytes;
    d->td.down_bytes += st->down_bytes;
    d->td.n_steps++;
    collector_add(&d->r->col, TRACE_STEPS, st);
}

void role_device_main(run_ctx *r) {
    const hat_config *cfg = &r->cfg;
    device_ctx d = {0};
    d.r = r;
    d.dc = &cfg->dev[r->device];
    d.L = r->mc.n_layer;
    d.a = cfg->a;
    d.b = cfg->b;
    char err[HAT_ERRLEN];
    CHECK(model_load_file(&d.m_in, r->gf, &(model_part){.l0 = 0, .l1 = d.a, .embed = 1}, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(model_load_file(&d.m_out, r->gf, &(model_part){.l0 = d.L - d.b, .l1 = d.L, .head = 1}, err, sizeof err) == HAT_OK,
          "%s", err);
    const int max_tok = cfg->chunk_tokens + 1;
    CHECK(kvcache_init(&d.kv_in, 0, d.a, cfg->ctx, r->mc.kv_dim, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(kvcache_init(&d.kv_out, d.L - d.b, d.L, cfg->ctx, r->mc.kv_dim, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(forward_init(&d.fs, d.m_in, max_tok, cfg->ctx, 1, cfg->device_threads, err, sizeof err) == HAT_OK, "%s", err);
    link_params up;
    link_params_from_profile(&up, &d.dc->link, 0);
    const int cloud = partition_cloud_of_device(&r->part, r->device);
    endpoint_init(&d.ep, cloud, r->device, 0, cfg->inflight, r->mc.dim, max_tok, cfg->wire, &up, cfg->emulate_links, cfg->seed);
    compute_params_from_profile(&d.cp, &d.dc->compute);
    d.params_in = run_part_params(&r->mc, 0, d.a, 0);
    d.params_out = run_part_params(&r->mc, d.L - d.b, d.L, 1);
    d.pend = xcalloc((size_t)cfg->inflight, sizeof *d.pend);
    sampler *smp;
    sampler_params sp = {.temp = d.dc->temp, .top_k = d.dc->top_k, .top_p = d.dc->top_p, .seed = cfg->seed + 1000003u * (uint64_t)r->device};
    CHECK(sampler_init(&smp, &sp, r->mc.n_vocab, err, sizeof err) == HAT_OK, "%s", err);
    d.td.device = (uint32_t)r->device;
    d.td.rank = (uint32_t)r->rank;
    d.td.cloud_rank = (uint32_t)cloud;
    d.td.prompt_tokens = (uint32_t)r->n_prompt;

    emul_sleep_until(d.dc->start_s, comm_now);
    d.td.t_request = comm_now();

    /* prefill: pipelined chunks */
    uint32_t seq = 0;
    int pos_sent = 0, pos_done = 0, outstanding = 0;
    transport_msg m;
    while (pos_done < r->n_prompt) {
        if (pos_sent < r->n_prompt && outstanding < cfg->inflight) {
            const int n = chunk_next(r->n_prompt - pos_sent, cfg->chunk_tokens);
            step_send(&d, r->prompt + pos_sent, n, pos_sent, seq++, 1, pos_sent + n == r->n_prompt);
            pos_sent += n;
            outstanding++;
            if (!endpoint_poll(&d.ep, &m, &(double){0})) continue;
        } else {
            endpoint_wait(&d.ep, &m);
        }
        const int last = (int)(m.h.pos0 + m.h.n_tok) == r->n_prompt;
        step_receive(&d, &m, last);
        pos_done += (int)m.h.n_tok;
        outstanding--;
    }
    /* decode: one round trip per token */
    int pos = r->n_prompt;
    double t_prev = 0;
    for (int gen = 0;; gen++) {
        int32_t tok = sampler_sample(smp, d.fs.logits);
        const double t = comm_now();
        trace_token tt = {.device = (uint32_t)r->device, .index = (uint32_t)gen, .step = seq - 1, .token = tok, .t_emit = t,
                          .latency_s = gen == 0 ? t - d.td.t_request : t - t_prev};
        if (gen == 0) d.td.t_first = t;
        t_prev = t;
        collector_add(&r->col, TRACE_TOKENS, &tt);
        d.td.gen_tokens++;
        if (gen + 1 >= d.dc->max_tokens || tokenizer_is_eog(r->tok, tok) || pos >= cfg->ctx) break;
        step_send(&d, &tok, 1, pos, seq++, 0, 0);
        endpoint_wait(&d.ep, &m);
        step_receive(&d, &m, 1);
        pos++;
    }
    d.td.t_done = comm_now();
    wire_header bye = {.kind = WIRE_BYE, .seq = seq};
    endpoint_send(&d.ep, &bye, NULL, &(double){0});
    endpoint_flush(&d.ep);
    collector_add(&r->col, TRACE_DEVICES, &d.td);
    collector_finish(&r->col);

    sampler_free(smp);
    free(d.pend);
    endpoint_free(&d.ep);
    forward_free(&d.fs);
    kvcache_free(&d.kv_in);
    kvcache_free(&d.kv_out);
    model_free(d.m_in);
    model_free(d.m_out);
}
