/* role_device.c — an edge device of the U-shaped split: embedding + layers [0,a) run here, the
 * hidden states go to the cloud, the cloud's hidden states come back through layers [L-b,L),
 * the final norm and the LM head, and the device samples the next token.
 *
 * Prefill is chunked (chunk_next): the device sends chunk i and goes on with chunk i+1 while
 * the cloud works, keeping at most `inflight` messages outstanding; each returned chunk runs
 * through the output submodel to fill its KV cache, and the last one gives the first token.
 * Decode is a sequence of rounds (hat_device.h): in the U-shape baseline a round is one token
 * (gamma = 0); in HAT the device drafts gamma tokens with its SLM, each input-submodel hidden
 * state goes up as soon as it exists, and one reply of gamma + 1 rows verifies them all.
 */
#include "run/roles.h"
#include "run/device_plan.h"

#include "net/comm.h"
#include "core/common.h"
#include "net/emul.h"
#include "engine/forward.h"
#include "split/hat_device.h"
#include "engine/kvcache.h"
#include "engine/sampler.h"
#include "net/transport.h"
#include "net/wire.h"

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
    const hw_profile *hw;      /* the compute profile (name "none": no emulation) */
    trace_step *pend;          /* (inflight) steps awaiting their reply, by seq % inflight */
    trace_device td;
    int L, a, b;
    /* the decode round in flight */
    trace_step rs;
    uint32_t seq;              /* next message number */
    int32_t round_tok;         /* the token the round starts from (fault injection only) */
    int in_round;              /* charge() per piece of a round; profile_exceeded counted per round */
    double adapter_bytes;      /* weight bytes the adapter streams per token (compute profile) */
    /* decoding */
    int hat, gamma_max;        /* HAT drafts up to gamma_max tokens a round; the U-shape none */
    sampler *smp;
    hat_dev *hd;
    spec_gamma_ctl gctl;       /* the adaptive draft length */
    int gen, stop;             /* tokens emitted; the session is over */
    double t_prev;             /* when the previous token was emitted */
    device_plan plan;          /* [transport] chunking = dynamic: the pipeline model (device_plan.h) */
} device_ctx;

/* A piece of compute through the device profile (timing_run.h): measured time, the cost model's
 * prediction, padding up to it. */
static double charge(device_ctx *d, double measured, run_piece piece, int pos0, int n_tok, int n_head, double *pred_out) {
    const double pred = run_timing_device(&d->r->tm, d->hw, piece, pos0, n_tok, n_head, d->adapter_bytes);
    *pred_out = pred;
    if (hw_enabled(d->hw) && measured > pred && !d->in_round) d->td.profile_exceeded++;
    return emul_compute(measured, pred);
}

/* deliberate protocol faults, to prove the receiver refuses them (configured in [fault]): sends a
 * broken message in place of message `seq` (its hidden state is d->fs.x) and returns 1 */
static int inject_fault(device_ctx *d, uint32_t seq, int pos0, const int32_t *ids, int n) {
    const fault_kind fk = d->r->cfg.fault;
    if (fk == FAULT_NONE || d->r->device != d->r->cfg.fault_device || (int)seq != d->r->cfg.fault_seq) return 0;
    static uint8_t msg[WIRE_HEADER_BYTES + 4096 * 4];
    const size_t pay = wire_payload_bytes(d->ep.dtype, 1, d->ep.dim);
    CHECK(WIRE_HEADER_BYTES + pay <= sizeof msg, "fault message too large");
    wire_header h = {.magic = WIRE_MAGIC, .version = WIRE_VERSION, .kind = WIRE_HIDDEN_UP, .device = (uint32_t)d->r->device,
                     .seq = seq, .pos0 = (uint32_t)pos0, .n_tok = 1, .dim = (uint32_t)d->ep.dim,
                     .dtype = (uint16_t)d->ep.dtype, .payload_bytes = pay, .t_send = comm_now()};
    h.t_deliver = h.t_send;
    wire_encode(d->ep.dtype, d->fs.x, msg + WIRE_HEADER_BYTES, (size_t)d->ep.dim);
    if (fk == FAULT_TOKEN_IDS) {   /* token ids as a payload of int32 */
        h.kind = WIRE_TOKENS;
        h.dtype = 0;
        h.payload_bytes = (uint64_t)n * sizeof(int32_t);
        memcpy(msg + WIRE_HEADER_BYTES, ids, (size_t)n * sizeof(int32_t));
    }
    const size_t bytes = fault_seal(fk, msg, &h);
    fprintf(stderr, "[rank %d device %d] injecting fault '%s' at message %u (configured in [fault])\n", d->r->rank,
            d->r->device, fault_kind_name(fk), seq);
    transport_send_raw(&d->ep, msg, bytes);
    return 1;
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
    forward_run(d->m_in, &d->kv_in, &d->fs, &(forward_args){.tokens = ids, .n_tok = n, .pos0 = pos0, .l0 = 0, .l1 = d->a});
    st->dev_in_s = comm_now() - st->t_start;
    charge(d, st->dev_in_s, PIECE_INPUT, pos0, n, 0, &st->dev_in_pred_s);

    if (inject_fault(d, seq, pos0, ids, n)) {
        st->t_up_send = comm_now();
        return;
    }
    wire_header h = {.kind = WIRE_HIDDEN_UP, .seq = seq, .pos0 = (uint32_t)pos0, .n_tok = (uint32_t)n,
                     .flags = (uint16_t)((prefill ? WIRE_F_PREFILL : 0) | (last ? WIRE_F_LAST_CHUNK : 0))};
    const link_sched ls = transport_send(&d->ep, &h, d->fs.x, &st->t_up_send);
    st->up_model_s = ls.deliver - st->t_up_send;
    st->up_bytes = transport_charged_bytes(&d->ep, n);
}

/* the reply to step m.h.seq: output submodel (+ head when `head`), finish the step record */
static void step_receive(device_ctx *d, const transport_msg *m, int head) {
    const wire_header *h = &m->h;
    trace_step *st = &d->pend[h->seq % (uint32_t)d->r->cfg.inflight];
    CHECK(st->seq == h->seq && st->pos0 == h->pos0 && st->n_tok == h->n_tok,
          "device %d: reply for message %u (positions %u+%u) does not match the request (%u, %u+%u)", d->r->device,
          h->seq, h->pos0, h->n_tok, st->seq, st->pos0, st->n_tok);
    run_step_reply(st, m);
    const float cost[4] = {h->cost_c0, h->cost_c1, h->cost_c2, h->cost_c3};
    const double t0 = comm_now();
    wire_decode(d->ep.dtype, m->payload, d->fs.x, (size_t)h->n_tok * d->ep.dim);
    transport_release(&d->ep);
    forward_run(d->m_out, &d->kv_out, &d->fs, &(forward_args){.hidden_in = d->fs.x, .n_tok = (int)h->n_tok,
                        .pos0 = (int)h->pos0, .l0 = d->L - d->b, .l1 = d->L, .head = head});
    st->dev_out_s = comm_now() - t0;
    charge(d, st->dev_out_s, PIECE_OUTPUT, (int)h->pos0, (int)h->n_tok, head ? 1 : 0, &st->dev_out_pred_s);
    st->down_bytes = transport_charged_bytes(&d->ep, (int)h->n_tok);
    st->t_end = comm_now();
    if (d->dc->chunking == CHUNK_DYNAMIC) device_plan_observe(&d->plan, st, cost);
    d->td.up_bytes += st->up_bytes;
    d->td.down_bytes += st->down_bytes;
    d->td.n_steps++;
    collector_add(&d->r->col, TRACE_STEPS, st);
}

/* hat_device's hand-off of one hidden state of the round: pad the input submodel's compute to
 * the device profile, then send the row at once */
static void round_send(void *ctx, const float *row, int pos, int j, int last) {
    device_ctx *d = ctx;
    trace_step *st = &d->rs;
    if (inject_fault(d, d->seq, pos, &d->round_tok, 1)) {   /* the fault replaces this message */
        d->seq++;
        st->t_up_send = comm_now();
        return;
    }
    wire_header h = {.kind = WIRE_HIDDEN_UP, .seq = d->seq++, .pos0 = (uint32_t)pos, .n_tok = 1,
                     .flags = (uint16_t)(WIRE_F_DRAFT | (last ? WIRE_F_ROUND_END : 0))};
    double ts;
    const link_sched ls = transport_send(&d->ep, &h, row, &ts);
    if (j == 0) st->t_up_first = ts;
    st->t_up_send = ts;
    st->up_model_s = ls.deliver - ts;
    st->up_bytes += transport_charged_bytes(&d->ep, 1);
}

/* pads each piece of a round's compute to the device profile (hat_device calls it right after
 * the piece; the time it sleeps counts as that piece's compute) */
static void round_pad(void *ctx, hat_piece piece, int pos0, int n_tok, double measured) {
    device_ctx *d = ctx;
    trace_step *st = &d->rs;
    double pred = 0;
    if (piece == HAT_PIECE_INPUT) {
        charge(d, measured, PIECE_INPUT, pos0, 1, 0, &pred);
        st->dev_in_pred_s += pred;
    } else if (piece == HAT_PIECE_DRAFT) {
        charge(d, measured, PIECE_DRAFT, pos0, 1, 1, &pred);
        st->draft_pred_s += pred;
    } else {
        charge(d, measured, PIECE_OUTPUT, pos0, n_tok, n_tok, &pred);
        st->dev_out_pred_s += pred;
    }
}

/* what the configuration says of the other devices of cloud rank `cloud` (device_plan.h): those
 * that start within a second of this one prefill beside it (fair: a share of the passes; fcfs: the
 * prompts served first, less how much earlier they started); those that started earlier by more
 * than the cloud's model for their whole prompt decode, one round in every pass */
static plan_prior plan_prior_of(const device_ctx *d, int cloud) {
    const run_ctx *r = d->r;
    const hat_config *cfg = &r->cfg;
    plan_prior pr = {.share = 1};
    const int rows = d->hat ? d->gamma_max + 1 : 1;
    for (int j = 0; j < cfg->n_devices; j++) {
        const double early = d->dc->start_s - cfg->dev[j].start_s;   /* how much earlier j starts */
        if (j == r->device || partition_cloud_of_device(&r->part, j) != cloud) continue;
        const double whole = device_plan_prompt_cost(r->cost0, r->prompt_len[j], cfg->max_batch_tokens);
        if (early > whole && early > 0) pr.other += device_plan_round_cost(r->cost0, rows, r->prompt_len[j]);
        if (fabs(early) > 1.0) continue;
        if (cfg->prefill_order == PREFILL_FAIR) pr.share += fmin(1.0, (double)r->prompt_len[j] / r->n_prompt);
        else if (early > 0 || (early == 0 && j < r->device)) pr.ahead += fmax(0, whole - early);
    }
    return pr;
}

/* the submodels, their caches and the engine's buffers, the endpoint, the compute profile */
static void device_open(device_ctx *d, run_ctx *r) {
    const hat_config *cfg = &r->cfg;
    d->r = r;
    d->dc = &cfg->dev[r->device];
    d->L = r->mc.n_layer;
    d->a = cfg->a;
    d->b = cfg->b;
    d->hat = cfg->run_mode == RUN_HAT;
    d->gamma_max = d->hat ? (cfg->gamma_adaptive ? cfg->gamma_max : cfg->gamma) : 0;
    char err[HAT_ERRLEN];
    CHECK(r->dev_in && r->dev_out, "device: its submodels were not loaded at start-up");
    d->m_in = r->dev_in;   /* loaded and checked at start-up (run.c); this role frees them */
    d->m_out = r->dev_out;
    r->dev_in = r->dev_out = NULL;
    const int max_tok = run_msg_max_tok(r, r->device), depth = run_msg_depth(cfg);
    CHECK(kvcache_init(&d->kv_in, 0, d->a, cfg->ctx, r->mc.kv_dim, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(kvcache_init(&d->kv_out, d->L - d->b, d->L, cfg->ctx, r->mc.kv_dim, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(forward_init(&d->fs, d->m_in, max_tok, cfg->ctx, d->gamma_max + 1, cfg->device_threads, err, sizeof err) == HAT_OK,
          "%s", err);
    link_params up;
    emul_link_params(&up, &d->dc->link, 0);
    const int cloud = partition_cloud_of_device(&r->part, r->device);
    transport_init(&d->ep, cloud, r->device, 0, depth, r->mc.dim, max_tok, cfg->wire, &up, cfg->emulate_links, cfg->seed);
    transport_charge_dim(&d->ep, r->tm.shape.hidden);
    d->hw = &d->dc->compute;
    d->pend = xcalloc((size_t)cfg->inflight, sizeof *d->pend);
    d->td.device = (uint32_t)r->device;
    d->td.rank = (uint32_t)r->rank;
    d->td.cloud_rank = (uint32_t)cloud;
    d->td.prompt_tokens = (uint32_t)r->n_prompt;
    d->td.chunking = (uint32_t)d->dc->chunking;
    if (d->dc->chunking == CHUNK_DYNAMIC) {
        const plan_prior pr = plan_prior_of(d, cloud);
        link_params down;
        emul_link_params(&down, &d->dc->link, 1);
        const run_timing *tm = &r->tm;   /* the profile's per-token cost (a long chunk) and per-pass floor */
        const double c1 = (run_timing_device(tm, d->hw, PIECE_INPUT, 0, 256, 0, 0) +
                           run_timing_device(tm, d->hw, PIECE_OUTPUT, 0, 256, 0, 0)) / 256,
                     floor = run_timing_device(tm, d->hw, PIECE_INPUT, 0, 1, 0, 0) +
                             run_timing_device(tm, d->hw, PIECE_OUTPUT, 0, 1, 0, 0);
        device_plan_init(&d->plan, c1, floor, d->a, d->b, d->L, &up, &down,
                         cfg->emulate_links, r->mc.dim, (int)wire_dtype_size(cfg->wire), r->n_prompt, run_prefill_max_tok(r, r->device),
                         cfg->max_stall_ms * 1e-3, r->cost0, &pr);
    }
}

/* the sampler, the HAT device (drafting and verification; gamma 0 in the U-shape) and the
 * draft-length controller */
static void device_open_decoder(device_ctx *d) {
    run_ctx *r = d->r;
    const hat_config *cfg = &r->cfg;
    char err[HAT_ERRLEN];
    const sampler_params sp = {.temp = d->dc->temp, .top_k = d->dc->top_k, .top_p = d->dc->top_p,
                               .seed = cfg->seed + 1000003u * (uint64_t)r->device};
    CHECK(sampler_init(&d->smp, &sp, r->mc.n_vocab, err, sizeof err) == HAT_OK, "%s", err);
    const hat_dev_parts hp = {.m_in = d->m_in, .m_out = d->m_out, .kv_in = &d->kv_in, .kv_out = &d->kv_out, .fs = &d->fs,
                              .ad = d->hat ? r->ad : NULL, .smp = d->smp, .a = d->a, .b = d->b,
                              .rule = SPEC_RULE_LEVIATHAN, .greedy = !(d->dc->temp > 0), .pad = round_pad, .pad_ctx = d};
    CHECK(hat_device_init(&d->hd, &hp, d->gamma_max, cfg->seed * 7919u + 1000003u * (uint64_t)r->device + 17u, err,
                          sizeof err) == HAT_OK, "%s", err);
    if (d->hat) {   /* fp32 weights the adapter streams per draft token */
        const adapter_info *ai = adapter_get_info(r->ad);
        d->adapter_bytes = ai->form == ADAPTER_LINEAR ? 4.0 * ai->dim * (ai->dim + 1)
                           : ai->form == ADAPTER_LOWRANK ? 4.0 * ai->rank * 2 * ai->dim + 4.0 * ai->dim : 0.0;
    }
    spec_gamma_init(&d->gctl, cfg->gamma_min, cfg->gamma_max);
    d->gctl.gamma_first = cfg->gamma < cfg->gamma_min ? cfg->gamma_min : cfg->gamma > cfg->gamma_max ? cfg->gamma_max : cfg->gamma;
}

static void device_close(device_ctx *d) {
    device_plan_free(&d->plan);
    hat_device_free(d->hd);
    sampler_free(d->smp);
    free(d->pend);
    transport_free(&d->ep);
    forward_free(&d->fs);
    kvcache_free(&d->kv_in);
    kvcache_free(&d->kv_out);
    model_free(d->m_in);
    model_free(d->m_out);
}

/* the size of the next prompt chunk from position pos: [transport] chunking off (the whole
 * prompt), fixed (chunk_next) or dynamic (the first chunk of a fresh plan over the rest) */
static int prefill_chunk(device_ctx *d, int pos) {
    run_ctx *r = d->r;
    const int left = r->n_prompt - pos;
    if (d->dc->chunking == CHUNK_OFF) return left;
    if (d->dc->chunking == CHUNK_FIXED) return chunk_next(left, r->cfg.chunk_tokens);
    const int hits = d->plan.stall_hits;
    const plan_step ps = device_plan_next(&d->plan, &d->ep.link, comm_now(), pos, left);
    if (pos == 0) d->td.ttft_pred_s = ps.ttft_t - d->td.t_request;
    d->td.stall_bound += (uint32_t)(d->plan.stall_hits - hits);
    return ps.n;
}

/* prefill: pipelined chunks, at most `inflight` outstanding; returns the next message number */
static uint32_t device_prefill(device_ctx *d) {
    run_ctx *r = d->r;
    uint32_t seq = 0;
    int pos_sent = 0, pos_done = 0, outstanding = 0;
    transport_msg m;
    while (pos_done < r->n_prompt) {
        if (pos_sent < r->n_prompt && outstanding < r->cfg.inflight) {
            const int n = prefill_chunk(d, pos_sent);
            const double planned = d->dc->chunking == CHUNK_DYNAMIC ? d->plan.outstanding_done : 0;
            step_send(d, r->prompt + pos_sent, n, pos_sent, seq, 1, pos_sent + n == r->n_prompt);
            d->pend[seq++ % (uint32_t)r->cfg.inflight].plan_done_t = planned;
            d->td.chunks++;
            pos_sent += n;
            outstanding++;
            if (!transport_poll(&d->ep, &m, &(double){0})) continue;
        } else {
            transport_wait(&d->ep, &m);
        }
        const int last = (int)(m.h.pos0 + m.h.n_tok) == r->n_prompt;
        step_receive(d, &m, last);
        pos_done += (int)m.h.n_tok;
        outstanding--;
    }
    return seq;
}

/* the round's emitted tokens into the trace, up to the end of the session (d->stop); returns
 * the last one emitted */
static int32_t device_emit(device_ctx *d, const int32_t *emitted, int n_emit, uint32_t step, int32_t tok) {
    run_ctx *r = d->r;
    for (int i = 0; i < n_emit && !d->stop; i++) {
        const double t = comm_now();
        trace_token tt = {.device = (uint32_t)r->device, .index = (uint32_t)d->gen, .step = step, .token = emitted[i],
                          .t_emit = t, .latency_s = d->gen == 0 ? t - d->td.t_request : t - d->t_prev};
        if (d->gen == 0) d->td.t_first = t;
        d->t_prev = t;
        collector_add(&r->col, TRACE_TOKENS, &tt);
        d->td.gen_tokens++;
        d->gen++;
        tok = emitted[i];
        d->stop = d->gen >= d->dc->max_tokens || tokenizer_is_eog(r->tok, tok);
    }
    return tok;
}

/* this round's draft length: fixed or adaptive, never past max_tokens or the context */
static int round_gamma(device_ctx *d, int pos) {
    const hat_config *cfg = &d->r->cfg;
    int g = d->hat ? (cfg->gamma_adaptive ? spec_gamma_next(&d->gctl) : cfg->gamma) : 0;
    if (g > d->dc->max_tokens - d->gen - 1) g = d->dc->max_tokens - d->gen - 1;
    if (g > cfg->ctx - pos - 1) g = cfg->ctx - pos - 1;
    return g < 0 ? 0 : g;
}

/* the round's step record once verified: timings, counters, the adaptive controller */
static void round_record(device_ctx *d, trace_step *st, const hat_round *hr, int g, int n_emit) {
    st->t_end = comm_now();
    st->dev_in_s = hr->in_s;
    st->draft_s = hr->draft_s;
    st->dev_out_s = hr->verify_s;
    d->in_round = 0;
    if (hw_enabled(d->hw)) d->td.profile_exceeded += (st->dev_in_s > st->dev_in_pred_s) + (st->dev_out_s > st->dev_out_pred_s);
    st->gamma = (uint32_t)g;
    st->accepted = (uint32_t)hr->accepted;
    st->emitted = (uint32_t)n_emit;
    collector_add(&d->r->col, TRACE_STEPS, st);
    d->td.up_bytes += st->up_bytes;
    d->td.down_bytes += st->down_bytes;
    d->td.n_steps++;
    d->td.rounds++;
    d->td.drafted += (uint64_t)g;
    d->td.accepted += (uint64_t)hr->accepted;
    if (d->hat && d->r->cfg.gamma_adaptive && g > 0)
        spec_gamma_update(&d->gctl, g, hr->accepted, (hr->in_s + hr->draft_s) / g,
                          (st->t_end - st->t_start) - (hr->in_s + hr->draft_s));
}

/* one decode round from token tok at pos: g drafts up, the cloud's g + 1 rows back, verified;
 * returns the tokens it emits (into emitted) */
static int device_round(device_ctx *d, int32_t tok, int pos, uint32_t step, int32_t *emitted) {
    run_ctx *r = d->r;
    const int g = round_gamma(d, pos);
    trace_step *st = &d->rs;
    *st = (trace_step){.device = (uint32_t)r->device, .seq = step, .kind = d->hat ? TRACE_STEP_ROUND : TRACE_STEP_DECODE,
                       .pos0 = (uint32_t)pos, .n_tok = (uint32_t)g + 1, .cloud_rank = (uint32_t)d->ep.peer,
                       .t_start = comm_now()};
    hat_round hr;
    d->round_tok = tok;
    d->in_round = 1;
    hat_device_draft(d->hd, tok, pos, g, round_send, d, &hr);
    transport_msg m;
    transport_wait(&d->ep, &m);
    const wire_header *h = &m.h;
    CHECK(h->kind == WIRE_HIDDEN_DOWN && h->seq == d->seq - 1 && (int)h->pos0 == pos && (int)h->n_tok == g + 1,
          "device %d: reply (message %u, positions %u+%u) does not match the round (message %u, positions %d+%d)",
          r->device, h->seq, h->pos0, h->n_tok, d->seq - 1, pos, g + 1);
    run_step_reply(st, &m);
    wire_decode(d->ep.dtype, m.payload, d->fs.x, (size_t)h->n_tok * d->ep.dim);
    transport_release(&d->ep);
    const int n_emit = hat_device_verify(d->hd, d->fs.x, emitted, &hr);
    round_record(d, st, &hr, g, n_emit);
    return n_emit;
}

/* decode: rounds of gamma drafts + 1 (gamma = 0: the U-shape's one token per round trip) */
static void device_decode(device_ctx *d, uint32_t seq) {
    int pos = d->r->n_prompt;
    int32_t emitted[HAT_GAMMA_LIMIT + 1];
    emitted[0] = hat_device_first(d->hd, d->fs.logits);
    int n_emit = 1;
    int32_t tok = emitted[0];
    uint32_t step = seq;
    d->seq = seq;
    for (;;) {
        tok = device_emit(d, emitted, n_emit, step - 1, tok);
        if (d->stop || pos >= d->r->cfg.ctx) break;
        n_emit = device_round(d, tok, pos, step++, emitted);
        pos += n_emit;
    }
}

void role_device_main(run_ctx *r) {
    device_ctx d = {0};
    device_open(&d, r);
    device_open_decoder(&d);
    emul_sleep_until(d.dc->start_s, comm_now);
    d.td.t_request = comm_now();
    device_decode(&d, device_prefill(&d));
    d.td.t_done = comm_now();
    wire_header bye = {.kind = WIRE_BYE, .seq = d.seq};
    transport_send(&d.ep, &bye, NULL, &(double){0});
    transport_flush(&d.ep);
    collector_add(&r->col, TRACE_DEVICES, &d.td);
    collector_finish(&r->col);
    device_close(&d);
}
