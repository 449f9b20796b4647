/* hat_device.c — see hat_device.h. */
#include "split/hat_device.h"

#include "core/common.h"
#include "split/partition.h"
#include "core/rng.h"

#include <stdlib.h>
#include <string.h>

struct hat_dev {
    hat_dev_parts p;
    int V, dim, L, gamma_max;
    rng *r;              /* draft draws and acceptance (temperature > 0) */
    int greedy;
    float *q;            /* (gamma_max, V) draft distributions */
    float *pt;           /* (gamma_max + 1, V) target distributions */
    float *scratch;      /* (V) */
    int32_t *draft;      /* (gamma_max) */
    int gamma, pos;      /* the round in progress */
};

int hat_device_init(hat_dev **out, const hat_dev_parts *p, int gamma_max, uint64_t seed, char *err, size_t errlen) {
    *out = NULL;
    const model_config *c = &p->m_out->cfg;
    if (gamma_max < 0 || gamma_max + 1 > p->fs->max_tok || gamma_max + 1 > p->fs->max_logit_rows)
        return hat_err(err, errlen, HAT_ERR_ARG, "hat: draft length %d needs forward buffers of %d rows (have %d tokens, %d logit rows)",
                       gamma_max, gamma_max + 1, p->fs->max_tok, p->fs->max_logit_rows);
    if (gamma_max > 0 && !p->ad) return hat_err(err, errlen, HAT_ERR_ARG, "hat: drafting needs an adapter");
    hat_dev *d = xcalloc(1, sizeof *d);
    d->p = *p;
    d->V = c->n_vocab;
    d->dim = c->dim;
    d->L = c->n_layer;
    d->gamma_max = gamma_max;
    d->r = rng_new(seed);
    const size_t V = (size_t)d->V;
    d->q = xmalloc((size_t)(gamma_max > 0 ? gamma_max : 1) * V * sizeof(float));
    d->pt = xmalloc((size_t)(gamma_max + 1) * V * sizeof(float));
    d->scratch = xmalloc(V * sizeof(float));
    d->draft = xmalloc((size_t)(gamma_max > 0 ? gamma_max : 1) * sizeof(int32_t));
    *out = d;
    return HAT_OK;
}

void hat_device_free(hat_dev *d) {
    if (!d) return;
    rng_free(d->r);
    free(d->q); free(d->pt); free(d->scratch); free(d->draft);
    free(d);
}

/* the exact distribution the device's sampler draws from, as a dense vector */
static void dense_probs(hat_dev *d, const float *logits, float *dense) { sampler_dense_probs(d->p.smp, logits, dense); }

static int is_greedy(const hat_dev *d) { return d->p.greedy; }

int32_t hat_device_first(hat_dev *d, const float *logits) {
    if (is_greedy(d)) return sampler_argmax(logits, d->V);
    dense_probs(d, logits, d->scratch);
    return spec_draw(d->scratch, d->V, rng_uniform(d->r));
}

void hat_device_draft(hat_dev *d, int32_t t0, int pos, int gamma, hat_send_fn send, void *ctx, hat_round *st) {
    CHECK(gamma >= 0 && gamma <= d->gamma_max, "hat: draft length %d outside [0, %d]", gamma, d->gamma_max);
    const hat_dev_parts *p = &d->p;
    forward_state *fs = p->fs;
    memset(st, 0, sizeof *st);
    st->gamma = gamma;
    d->gamma = gamma;
    d->pos = pos;
    int32_t x = t0;
    for (int j = 0; j <= gamma; j++) {
        double t = hat_now();
        forward_run(p->m_in, p->kv_in, fs, &(forward_args){.tokens = &x, .n_tok = 1, .pos0 = pos + j, .l0 = 0, .l1 = p->a});
        st->in_s += hat_now() - t;
        if (p->pad) p->pad(p->pad_ctx, HAT_PIECE_INPUT, pos + j, 1, hat_now() - t);
        send(ctx, fs->x, pos + j, j, j == gamma);
        if (j == gamma) break;
        t = hat_now();
        adapter_apply(p->ad, fs->x, fs->x, 1);
        forward_run(p->m_out, p->kv_out, fs, &(forward_args){.hidden_in = fs->x, .n_tok = 1, .pos0 = pos + j,
                                                                     .l0 = d->L - p->b, .l1 = d->L, .head = 1});
        if (is_greedy(d)) {
            x = sampler_argmax(fs->logits, d->V);
        } else {
            float *q = d->q + (size_t)j * d->V;
            dense_probs(d, fs->logits, q);
            x = spec_draw(q, d->V, rng_uniform(d->r));
        }
        d->draft[j] = x;
        st->draft_s += hat_now() - t;
        if (p->pad) p->pad(p->pad_ctx, HAT_PIECE_DRAFT, pos + j, 1, hat_now() - t);
    }
}

int hat_device_verify(hat_dev *d, const float *hidden, int32_t *out, hat_round *st) {
    const hat_dev_parts *p = &d->p;
    forward_state *fs = p->fs;
    const int g = d->gamma, pos = d->pos;
    const double t = hat_now();
    forward_run(p->m_out, p->kv_out, fs, &(forward_args){.hidden_in = hidden, .n_tok = g + 1, .pos0 = pos,
                                                                 .l0 = d->L - p->b, .l1 = d->L, .head = 1,
                                                                 .logits_all = 1, .decode = 1});
    int n;
    if (is_greedy(d)) {
        n = spec_accept_greedy(fs->logits, d->V, d->draft, g, out);
    } else {
        for (int j = 0; j <= g; j++) dense_probs(d, fs->logits + (size_t)j * d->V, d->pt + (size_t)j * d->V);
        n = spec_accept_sample(d->pt, d->q, d->V, d->draft, g, d->r, d->scratch, p->rule, out);
    }
    /* committed: x_0 .. x_{n-1} at pos .. pos+n-1 (x_0 = t0, then the accepted drafts) */
    kvcache_truncate(p->kv_in, pos + n);
    kvcache_truncate(p->kv_out, pos + n);
    st->accepted = n - 1;
    st->emitted = n;
    st->verify_s = hat_now() - t;
    if (p->pad) p->pad(p->pad_ctx, HAT_PIECE_VERIFY, pos, g + 1, st->verify_s);
    return n;
}

/* ---------------------------------------------------------------- in one process */

typedef struct {
    const model *m;
    kvcache *kv;
    forward_state *fs;
    int a, lb, n, pos0, dim;
} local_mid;

static void local_send(void *ctx, const float *row, int pos, int j, int last) {
    local_mid *mm = ctx;
    (void)last;
    if (j == 0) { mm->n = 0; mm->pos0 = pos; }
    memcpy(mm->fs->x + (size_t)mm->n * mm->dim, row, (size_t)mm->dim * sizeof(float));
    mm->n++;
}

int hat_device_generate_local(const model *full, const adapter *ad, sampler *smp, int a, int b, const int32_t *prompt,
                       int n_prompt, const hat_local_args *args, int32_t *out, hat_local_stats *stats) {
    const model_config *c = &full->cfg;
    const int L = c->n_layer, g = args->gamma, ctx = n_prompt + args->n_gen + 2 * g + 2;
    const int max_tok = (args->chunk + 1 > g + 1 ? args->chunk + 1 : g + 1);
    char err[HAT_ERRLEN];
    kvcache kin, kmid, kout;
    forward_state fs, fsm;
    CHECK(kvcache_init(&kin, 0, a, ctx, c->kv_dim, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(kvcache_init(&kmid, a, L - b, ctx, c->kv_dim, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(kvcache_init(&kout, L - b, L, ctx, c->kv_dim, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(forward_init(&fs, full, max_tok, ctx, g + 1, 1, err, sizeof err) == HAT_OK, "%s", err);
    CHECK(forward_init(&fsm, full, max_tok, ctx, 0, 1, err, sizeof err) == HAT_OK, "%s", err);
    hat_dev *d;
    const hat_dev_parts parts = {.m_in = full, .m_out = full, .kv_in = &kin, .kv_out = &kout, .fs = &fs, .ad = ad, .smp = smp,
                                 .a = a, .b = b, .rule = args->rule, .greedy = args->greedy};
    CHECK(hat_device_init(&d, &parts, g, args->seed, err, sizeof err) == HAT_OK, "%s", err);
    memset(stats, 0, sizeof *stats);
    const double t0 = hat_now();
    for (int pos = 0; pos < n_prompt;) {
        const int n = chunk_next(n_prompt - pos, args->chunk);
        forward_run(full, &kin, &fs, &(forward_args){.tokens = prompt + pos, .n_tok = n, .pos0 = pos, .l0 = 0, .l1 = a});
        forward_run(full, &kmid, &fs, &(forward_args){.hidden_in = fs.x, .n_tok = n, .pos0 = pos, .l0 = a, .l1 = L - b});
        forward_run(full, &kout, &fs, &(forward_args){.hidden_in = fs.x, .n_tok = n, .pos0 = pos, .l0 = L - b, .l1 = L,
                                                              .head = pos + n == n_prompt});
        pos += n;
    }
    int n_out = 0, pos = n_prompt;
    int32_t tok = hat_device_first(d, fs.logits), buf[HAT_GAMMA_LIMIT + 1];
    CHECK(g <= HAT_GAMMA_LIMIT, "hat: gamma %d above %d", g, HAT_GAMMA_LIMIT);
    out[n_out++] = tok;
    local_mid mm = {full, &kmid, &fsm, a, L - b, 0, 0, c->dim};
    while (n_out < args->n_gen && !(args->tok && tokenizer_is_eog(args->tok, tok))) {
        hat_round st;
        hat_device_draft(d, tok, pos, g, local_send, &mm, &st);
        kvcache_truncate(&kmid, mm.pos0 < kmid.n ? mm.pos0 : kmid.n);   /* the cloud's rollback */
        forward_run(full, &kmid, &fsm, &(forward_args){.hidden_in = fsm.x, .n_tok = mm.n, .pos0 = mm.pos0, .l0 = a,
                                                               .l1 = L - b, .decode = 1});
        const int n = hat_device_verify(d, fsm.x, buf, &st);
        stats->rounds++;
        stats->drafted += st.gamma;
        stats->accepted += st.accepted;
        pos += n;
        for (int i = 0; i < n && n_out < args->n_gen; i++) {
            tok = out[n_out++] = buf[i];
            if (args->tok && tokenizer_is_eog(args->tok, tok)) break;
        }
    }
    stats->n_tokens = n_out;
    stats->seconds = hat_now() - t0;
    hat_device_free(d);
    forward_free(&fs);
    forward_free(&fsm);
    kvcache_free(&kin);
    kvcache_free(&kmid);
    kvcache_free(&kout);
    return n_out;
}
