/* hidden.c — see hidden.h: hidden-state pairs of a corpus, held-out evaluation, draft agreement. */
#include "calib/hidden.h"

#include "core/common.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Size of the prefill call at p0: chunks never straddle the end of the prompt, so prompt positions get the
 * numerics of the chunked prefill that generated the corpus, and generated positions those of single-token
 * decoding (forward_args.decode): the hidden states are bit-identical to those of generation and drafting. */
static int chunk_at(int p0, int n_prompt, int n, int chunk, int *decode) {
    const int end = p0 < n_prompt ? n_prompt : n;
    *decode = p0 >= n_prompt;
    return end - p0 < chunk ? end - p0 : chunk;
}

static void held_push(hidden_set *hs, const float *x, const float *t, int flags) {
    const int dim = hs->dim;
    if (hs->n_held == hs->cap_held) {
        hs->cap_held = hs->cap_held * 2 + 256;
        hs->hx = realloc(hs->hx, sizeof(float) * hs->cap_held * dim);
        hs->ht = realloc(hs->ht, sizeof(float) * hs->cap_held * dim);
        hs->hgen = realloc(hs->hgen, hs->cap_held);
        CHECK(hs->hx && hs->ht && hs->hgen, "out of memory");
    }
    memcpy(hs->hx + hs->n_held * dim, x, sizeof(float) * dim);
    memcpy(hs->ht + hs->n_held * dim, t, sizeof(float) * dim);
    hs->hgen[hs->n_held++] = (unsigned char)flags;
}

/* positions < the result have the same token prefix as an earlier sequence: same hidden states */
static int shared_prefix(const corpus *c, int i) {
    const int32_t *ids = c->ids + c->off[i];
    const int n = (int)c->n_tok[i];
    int skip = 0;
    for (int j = 0; j < i; j++) {
        const int32_t *e = c->ids + c->off[j];
        int k = 0, lim = n < (int)c->n_tok[j] ? n : (int)c->n_tok[j];
        while (k < lim && e[k] == ids[k]) k++;
        if (k > skip) skip = k;
    }
    return skip;
}

/* Rows of one chunk of sequence i (positions [p0, p0+k), x = h_a, t = h_{L-b}, (k, dim) each) into the
 * statistics (train) or the held-out rows, leaving out positions < min_pos and < skip. */
static void take_chunk(hidden_set *hs, const corpus *c, int i, int train, int p0, int k, int min_pos, int skip,
                       const float *x, const float *t) {
    const int d = hs->dim, np = (int)c->n_prompt[i];
    int r0 = 0;   /* rows [r0, k) of this chunk are fitted */
    while (r0 < k && (p0 + r0 < min_pos || p0 + r0 < skip)) {
        if (p0 + r0 < min_pos) hs->n_skip_pos++;
        else hs->n_skip_prefix++;
        r0++;
    }
    for (size_t q = (size_t)r0 * d; q < (size_t)k * d; q++) {
        if (fabsf(x[q]) > hs->max_x) hs->max_x = fabsf(x[q]);
        if (fabsf(t[q]) > hs->max_t) hs->max_t = fabsf(t[q]);
    }
    if (train) {
        adapter_stats_add(hs->train, x + (size_t)r0 * d, t + (size_t)r0 * d, (size_t)(k - r0));
        for (int r = r0; r < k; r++) hs->n_train_gen += p0 + r >= np;
    } else {
        const int greedy = c->seq_temp[i] <= 0 ? HIDDEN_GREEDY : 0;
        for (int r = r0; r < k; r++)
            held_push(hs, x + (size_t)r * d, t + (size_t)r * d, greedy | (p0 + r >= np ? HIDDEN_GEN : 0));
    }
}

/* Batched prefill of every sequence through [0,a) and [a,L-b); pairs of sequences [0, n_train) feed the
 * statistics, the rest are kept as held-out rows. */
int hidden_collect(hidden_set *hs, const corpus *c, const model *m, const hidden_opts *o, int n_train, char *err,
                   size_t errlen) {
    const int L = m->cfg.n_layer, d = m->cfg.dim, a = o->a, lb = L - o->b;
    int max_len = 0;
    for (int i = 0; i < c->n_seq; i++) if ((int)c->n_tok[i] > max_len) max_len = (int)c->n_tok[i];
    if (max_len > m->cfg.n_ctx_train)
        return hat_err(err, errlen, HAT_ERR_ARG, "a corpus sequence has %d tokens, over the model's context %d",
                       max_len, m->cfg.n_ctx_train);
    kvcache kv;
    forward_state fs;
    int rc = kvcache_init(&kv, 0, lb, max_len, m->cfg.kv_dim, err, errlen);
    if (rc) return rc;
    if ((rc = forward_init(&fs, m, o->chunk, max_len, 1, o->threads, err, errlen))) { kvcache_free(&kv); return rc; }
    float *hx = xmalloc(sizeof(float) * (size_t)o->chunk * d);
    memset(hs, 0, sizeof *hs);
    hs->dim = d;
    hs->train = adapter_stats_new(d);
    uint64_t n_tok = 0;
    double t0 = hat_now(), next_report = t0 + 10;
    for (int i = 0; i < c->n_seq; i++) {
        const int32_t *ids = c->ids + c->off[i];
        const int n = (int)c->n_tok[i], skip = shared_prefix(c, i);
        kvcache_truncate(&kv, 0);
        for (int p0 = 0, k, dec; p0 < n; p0 += k) {
            k = chunk_at(p0, (int)c->n_prompt[i], n, o->chunk, &dec);
            forward_run(m, &kv, &fs, &(forward_args){.tokens = ids + p0, .n_tok = k, .pos0 = p0, .l0 = 0,
                                                            .l1 = a, .decode = dec});
            memcpy(hx, fs.x, sizeof(float) * (size_t)k * d);
            forward_run(m, &kv, &fs, &(forward_args){.hidden_in = fs.x, .n_tok = k, .pos0 = p0, .l0 = a,
                                                            .l1 = lb, .decode = dec});
            take_chunk(hs, c, i, i < n_train, p0, k, o->min_pos, skip, hx, fs.x);
        }
        n_tok += (uint64_t)n;
        if (hat_now() > next_report && i + 1 < c->n_seq) {
            fprintf(stderr, "collect: %d/%d sequences, %.0f tok/s\n", i + 1, c->n_seq, n_tok / (hat_now() - t0));
            next_report = hat_now() + 10;
        }
    }
    double dt = hat_now() - t0;
    fprintf(stderr, "collect: %llu positions through layers [0,%d) + [%d,%d) in %.1f s (%.0f tok/s)\n",
            (unsigned long long)n_tok, a, a, lb, dt, dt > 0 ? n_tok / dt : 0.0);
    free(hx);
    forward_free(&fs);
    kvcache_free(&kv);
    return HAT_OK;
}

void hidden_free(hidden_set *hs) {
    adapter_stats_free(hs->train);
    free(hs->hx);
    free(hs->ht);
    free(hs->hgen);
    memset(hs, 0, sizeof *hs);
}

void hidden_eval(const adapter *ad, const hidden_set *hs, int mask, adapter_metrics *m) {
    const int d = hs->dim;
    size_t n = 0;
    for (size_t r = 0; r < hs->n_held; r++) n += (hs->hgen[r] & mask) == mask;
    float *x = xmalloc(sizeof(float) * (n ? n : 1) * d), *t = xmalloc(sizeof(float) * (n ? n : 1) * d);
    for (size_t r = 0, k = 0; r < hs->n_held; r++)
        if ((hs->hgen[r] & mask) == mask) {
            memcpy(x + k * d, hs->hx + r * d, sizeof(float) * d);
            memcpy(t + k * d, hs->ht + r * d, sizeof(float) * d);
            k++;
        }
    adapter_eval(ad, x, t, n, m);
    free(x);
    free(t);
}

/* The output submodel's KV cache holds the true states of positions < p (as after a verification); each
 * position costs three one-token calls of [L-b, L) + head: the adapter's state, the identity's (h_a itself),
 * and the true one, which also refills the cache at p and gives the full model's prediction with decode
 * numerics. */
int hidden_draft_agreement(const corpus *c, const model *m, const hidden_opts *o, int first, int greedy_only,
                           const adapter *ad, hidden_agreement *ag, char *err, size_t errlen) {
    const int L = m->cfg.n_layer, d = m->cfg.dim, a = o->a, lb = L - o->b, V = m->cfg.n_vocab;
    int max_len = 0;
    for (int i = first; i < c->n_seq; i++) if ((int)c->n_tok[i] > max_len) max_len = (int)c->n_tok[i];
    kvcache kv;
    forward_state fs;
    int rc = kvcache_init(&kv, 0, L, max_len, m->cfg.kv_dim, err, errlen);
    if (rc) return rc;
    if ((rc = forward_init(&fs, m, o->chunk, max_len, 1, o->threads, err, errlen))) { kvcache_free(&kv); return rc; }
    float *ha = xmalloc(sizeof(float) * (size_t)max_len * d), *ht = xmalloc(sizeof(float) * (size_t)max_len * d);
    float *row = xmalloc(sizeof(float) * d);
    memset(ag, 0, sizeof *ag);
    for (int i = first; i < c->n_seq; i++) {
        const int32_t *ids = c->ids + c->off[i];
        const int nt = (int)c->n_tok[i], np = (int)c->n_prompt[i], greedy = c->seq_temp[i] <= 0;
        if (greedy_only && !greedy) continue;
        kvcache_truncate(&kv, 0);
        for (int p0 = 0, k, dec; p0 < nt; p0 += k) {   /* true states h_a, h_{L-b} of every position */
            k = chunk_at(p0, np, nt, o->chunk, &dec);
            forward_run(m, &kv, &fs, &(forward_args){.tokens = ids + p0, .n_tok = k, .pos0 = p0, .l0 = 0,
                                                            .l1 = a, .decode = dec});
            memcpy(ha + (size_t)p0 * d, fs.x, sizeof(float) * (size_t)k * d);
            forward_run(m, &kv, &fs, &(forward_args){.hidden_in = fs.x, .n_tok = k, .pos0 = p0, .l0 = a,
                                                            .l1 = lb, .decode = dec});
            memcpy(ht + (size_t)p0 * d, fs.x, sizeof(float) * (size_t)k * d);
        }
        /* output submodel over the prompt's true states, then position by position */
        for (int p0 = 0; p0 < np; p0 += o->chunk) {
            const int k = np - p0 < o->chunk ? np - p0 : o->chunk;
            forward_run(m, &kv, &fs, &(forward_args){.hidden_in = ht + (size_t)p0 * d, .n_tok = k, .pos0 = p0,
                                                            .l0 = lb, .l1 = L});
        }
        for (int p = np; p < nt; p++) {
            int32_t draft = -1, draft_id = -1;
            if (p + 1 < nt) {
                adapter_apply(ad, ha + (size_t)p * d, row, 1);
                forward_run(m, &kv, &fs, &(forward_args){.hidden_in = row, .n_tok = 1, .pos0 = p, .l0 = lb,
                                                                .l1 = L, .head = 1});
                draft = sampler_argmax(fs.logits, V);
                forward_run(m, &kv, &fs, &(forward_args){.hidden_in = ha + (size_t)p * d, .n_tok = 1, .pos0 = p,
                                                                .l0 = lb, .l1 = L, .head = 1});
                draft_id = sampler_argmax(fs.logits, V);
            }
            forward_run(m, &kv, &fs, &(forward_args){.hidden_in = ht + (size_t)p * d, .n_tok = 1, .pos0 = p,
                                                            .l0 = lb, .l1 = L, .head = p + 1 < nt});
            if (p + 1 < nt) {
                const int32_t full = sampler_argmax(fs.logits, V);
                ag->n++;
                ag->hit += draft == full;
                ag->hit_id += draft_id == full;
                if (greedy) {
                    ag->n_greedy++;
                    ag->same += full == ids[p + 1];   /* the full model's own choice (a self-check) */
                }
            }
        }
    }
    free(ha);
    free(ht);
    free(row);
    forward_free(&fs);
    kvcache_free(&kv);
    return HAT_OK;
}
