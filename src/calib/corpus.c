/* corpus.c — see corpus.h: generating a calibration corpus, and its .tok file. */
#include "calib/corpus.h"

#include "core/build_info.h"
#include "core/bytes.h"
#include "core/common.h"
#include "core/crc32c.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/prompt.h"
#include "engine/sampler.h"
#include "split/adapter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CORPUS_MAGIC "HATCORP"
#define CORPUS_HDR 296
#define CORPUS_SEQ_V1 8    /* bytes per sequence record, version 1 */
#define CORPUS_SEQ 32      /* version 2 */

void corpus_free(corpus *c) {
    free(c->n_prompt);
    free(c->n_tok);
    free(c->prompt);
    free(c->sample);
    free(c->seq_temp);
    free(c->seq_seed);
    free(c->off);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

static void copy_str(char *dst, size_t n, const char *src) {
    size_t k = strnlen(src, n - 1);
    memcpy(dst, src, k);
    dst[k] = 0;
}

/* per-sequence arrays for n_seq sequences (ids: cap tokens) */
static void corpus_alloc(corpus *c, int n_seq, uint64_t cap) {
    c->n_seq = n_seq;
    c->n_prompt = xcalloc((size_t)n_seq, sizeof(uint32_t));
    c->n_tok = xcalloc((size_t)n_seq, sizeof(uint32_t));
    c->prompt = xcalloc((size_t)n_seq, sizeof(uint32_t));
    c->sample = xcalloc((size_t)n_seq, sizeof(uint32_t));
    c->seq_temp = xcalloc((size_t)n_seq, sizeof(float));
    c->seq_seed = xcalloc((size_t)n_seq, sizeof(uint64_t));
    c->off = xcalloc((size_t)n_seq, sizeof(uint64_t));
    c->ids = xmalloc(sizeof(int32_t) * (cap ? cap : 1));
}

/* ---------------------------------------------------------------- generation */

/* what one generation needs: the model, its cache and state over the longest sequence */
typedef struct {
    const model *m;
    const tokenizer *tok;
    kvcache kv;
    forward_state fs;
} gen_ctx;

/* Runs tokens [pos0, pos0+n) of one sequence through layers [0, l1) (chunks of fs->max_tok), leaving the
 * last chunk's logits when head. */
static void prefill(const model *m, kvcache *kv, forward_state *fs, const int32_t *ids, int n, int pos0, int head) {
    for (int p = 0; p < n; p += fs->max_tok) {
        const int k = n - p < fs->max_tok ? n - p : fs->max_tok;
        forward_run(m, kv, fs, &(forward_args){.tokens = ids + p, .n_tok = k, .pos0 = pos0 + p, .l0 = 0,
                                                       .l1 = m->cfg.n_layer, .head = head && p + k == n});
    }
}

/* The prompts as token ids (pid[i], pn[i] tokens); *max_len = the longest prompt + gen. */
static int tokenize_prompts(char **prompts, int np, const corpus_gen_opts *g, const model *m, const tokenizer *tok,
                            int32_t **pid, int *pn, int *max_len, char *err, size_t errlen) {
    int rc = HAT_OK;
    *max_len = 0;
    for (int i = 0; i < np && !rc; i++) {
        rc = prompt_tokenize(tok, NULL, prompts[i], g->chat, &pid[i], &pn[i], err, errlen);
        if (!rc && pn[i] == 0)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "%s: prompt %d tokenizes to nothing", g->prompts, i + 1);
        if (!rc && pn[i] + g->gen > *max_len) *max_len = pn[i] + g->gen;
    }
    if (!rc && *max_len > m->cfg.n_ctx_train)
        rc = hat_err(err, errlen, HAT_ERR_ARG, "%s: a prompt + --gen %d is %d tokens, over the model's context %d",
                     g->prompts, g->gen, *max_len, m->cfg.n_ctx_train);
    return rc;
}

/* the header's recipe and provenance (prompts_size and prompts_crc are set by the prompts reader) */
static void set_recipe(corpus *c, const corpus_gen_opts *g, const gguf_file *f) {
    adapter_model_fingerprint(f, &c->model_size, &c->model_crc);
    gguf_model_name(f, c->model_name, sizeof c->model_name);
    copy_str(c->prompts_name, sizeof c->prompts_name, g->prompts);
    c->gen = (uint32_t)g->gen;
    c->temp = g->temp;
    c->seed = g->seed;
    c->samples = (uint32_t)g->samples;
    c->version = CORPUS_VERSION;
    c->chat = (uint32_t)g->chat;
    c->created = (int64_t)time(NULL);
    copy_str(c->hat_version, sizeof c->hat_version, HAT_VERSION);
    copy_str(c->hat_git, sizeof c->hat_git, HAT_GIT_HASH);
}

/* Sequence q = generation j of prompt i (pn tokens pid) into c->ids from *at; reports it on stderr. */
static int generate_seq(corpus *c, gen_ctx *x, const corpus_gen_opts *g, int q, int np, const int32_t *pid, int pn,
                        uint64_t *at, char *err, size_t errlen) {
    const int ns = g->samples, i = q / ns, j = q % ns;   /* prompt i, generation j of it */
    const model *m = x->m;
    sampler *smp;
    const sampler_params sp = {.temp = ns > 1 && j == 0 ? 0.0f : g->temp, .top_k = 0, .top_p = 1.0f,
                               .seed = g->seed + (uint64_t)q};
    int rc = sampler_init(&smp, &sp, m->cfg.n_vocab, err, errlen);
    if (rc) return rc;
    double ts = hat_now();
    int32_t *seq = c->ids + *at;
    memcpy(seq, pid, sizeof(int32_t) * (size_t)pn);
    kvcache_truncate(&x->kv, 0);
    prefill(m, &x->kv, &x->fs, seq, pn, 0, 1);
    int n = pn;
    while (n < pn + g->gen) {
        int32_t next = sampler_sample(smp, x->fs.logits);
        if (tokenizer_is_eog(x->tok, next)) break;   /* never fed to the model, so never drafted from */
        seq[n++] = next;
        if (n == pn + g->gen) break;
        forward_run(m, &x->kv, &x->fs, &(forward_args){.tokens = &next, .n_tok = 1, .pos0 = n - 1, .l0 = 0,
                                                              .l1 = m->cfg.n_layer, .head = 1});
    }
    sampler_free(smp);
    c->off[q] = *at;
    c->n_prompt[q] = (uint32_t)pn;
    c->n_tok[q] = (uint32_t)n;
    c->prompt[q] = (uint32_t)i;
    c->sample[q] = (uint32_t)j;
    c->seq_temp[q] = sp.temp;
    c->seq_seed[q] = sp.seed;
    *at += (uint64_t)n;
    double dt = hat_now() - ts;
    char gen_of[64] = "";
    if (ns > 1) snprintf(gen_of, sizeof gen_of, ", generation %d/%d (%s)", j + 1, ns, j ? "sampled" : "greedy");
    fprintf(stderr, "corpus: prompt %d/%d%s: %d + %d tokens, %.1f s (%.1f tok/s generated)\n", i + 1, np, gen_of,
            pn, n - pn, dt, dt > 0 ? (n - pn) / dt : 0.0);
    return HAT_OK;
}

int corpus_generate(corpus *c, const corpus_gen_opts *g, const gguf_file *f, const model *m, const tokenizer *tok,
                    char *err, size_t errlen) {
    char **prompts = NULL;
    int np = 0, max_len = 0;
    memset(c, 0, sizeof *c);
    int rc = prompt_read_file(g->prompts, &prompts, &np, &c->prompts_size, &c->prompts_crc, err, errlen);
    if (rc) return rc;
    int32_t **pid = xcalloc((size_t)np, sizeof *pid);
    int *pn = xcalloc((size_t)np, sizeof *pn);
    gen_ctx x = {.m = m, .tok = tok};
    rc = tokenize_prompts(prompts, np, g, m, tok, pid, pn, &max_len, err, errlen);
    if (!rc) rc = kvcache_init(&x.kv, 0, m->cfg.n_layer, max_len, m->cfg.kv_dim, err, errlen);
    if (!rc) rc = forward_init(&x.fs, m, g->chunk, max_len, 1, g->threads, err, errlen);
    if (rc) goto out;

    const int ns = g->samples, nseq = np * ns;
    uint64_t total_cap = 0;
    for (int i = 0; i < np; i++) total_cap += ((uint64_t)pn[i] + (uint64_t)g->gen) * (uint64_t)ns;
    corpus_alloc(c, nseq, total_cap);
    set_recipe(c, g, f);
    uint64_t at = 0, n_gen_all = 0;
    double t0 = hat_now();
    for (int q = 0; q < nseq && !rc; q++) {
        rc = generate_seq(c, &x, g, q, np, pid[q / ns], pn[q / ns], &at, err, errlen);
        if (!rc) n_gen_all += c->n_tok[q] - c->n_prompt[q];
    }
    if (rc) goto out;
    double dt = hat_now() - t0;
    fprintf(stderr, "corpus: %d sequences, %llu tokens (%llu generated) in %.1f s, %.1f generated tok/s\n", nseq,
            (unsigned long long)at, (unsigned long long)n_gen_all, dt, dt > 0 ? n_gen_all / dt : 0.0);
out:
    forward_free(&x.fs);
    kvcache_free(&x.kv);
    for (int i = 0; i < np; i++) free(pid[i]);
    prompt_list_free(prompts, np);
    free(pid);
    free(pn);
    if (rc) corpus_free(c);
    return rc;
}

/* ---------------------------------------------------------------- file */

int corpus_save(const corpus *c, const char *path, char *err, size_t errlen) {
    uint64_t total = 0;
    for (int i = 0; i < c->n_seq; i++) total += c->n_tok[i];
    const size_t size = CORPUS_HDR + CORPUS_SEQ * (size_t)c->n_seq + 4 * (size_t)total + 4;
    uint8_t *buf = xcalloc(1, size);
    memcpy(buf, CORPUS_MAGIC, 8);
    put_u32(buf + 8, CORPUS_VERSION);
    put_u32(buf + 12, (uint32_t)c->n_seq);
    put_u64(buf + 16, c->model_size);
    put_u32(buf + 24, c->model_crc);
    put_u32(buf + 28, c->chat);
    memcpy(buf + 32, c->model_name, strnlen(c->model_name, 63));
    put_u32(buf + 96, c->gen);
    uint32_t tb;
    memcpy(&tb, &c->temp, 4);
    put_u32(buf + 100, tb);
    put_u64(buf + 104, c->seed);
    put_u64(buf + 112, (uint64_t)c->created);
    put_u64(buf + 120, c->prompts_size);
    put_u32(buf + 128, c->prompts_crc);
    put_u32(buf + 132, c->samples);
    memcpy(buf + 136, c->prompts_name, strnlen(c->prompts_name, 127));
    memcpy(buf + 264, c->hat_version, strnlen(c->hat_version, 15));
    memcpy(buf + 280, c->hat_git, strnlen(c->hat_git, 15));
    uint8_t *p = buf + CORPUS_HDR;
    for (int i = 0; i < c->n_seq; i++, p += CORPUS_SEQ) {
        put_u32(p, c->prompt[i]);
        put_u32(p + 4, c->sample[i]);
        memcpy(&tb, &c->seq_temp[i], 4);
        put_u32(p + 8, tb);
        put_u64(p + 16, c->seq_seed[i]);
        put_u32(p + 24, c->n_prompt[i]);
        put_u32(p + 28, c->n_tok[i]);
    }
    for (int i = 0; i < c->n_seq; i++)
        for (uint32_t k = 0; k < c->n_tok[i]; k++, p += 4) put_u32(p, (uint32_t)c->ids[c->off[i] + k]);
    put_u32(p, crc32c(0, buf, size - 4));
    const int rc = hat_write_file(path, buf, size, err, errlen);
    free(buf);
    return rc;
}

/* bytes per sequence record, and where its prompt and total token counts are in it */
static size_t seq_record(uint32_t version, size_t *at_np) {
    *at_np = version == 1 ? 0 : 24;
    return version == 1 ? CORPUS_SEQ_V1 : CORPUS_SEQ;
}

/* Magic, version, record counts, size and checksum of a whole file in memory; *total = its token ids. */
static int check_layout(const uint8_t *buf, size_t size, const char *path, uint64_t *total, char *err,
                        size_t errlen) {
#define FAIL(...) return hat_err(err, errlen, HAT_ERR_FORMAT, __VA_ARGS__)
    if (size < 12 || memcmp(buf, CORPUS_MAGIC, 8)) FAIL("%s is not a HAT calibration corpus (bad magic)", path);
    const uint32_t version = get_u32(buf + 8);
    if (version != 1 && version != CORPUS_VERSION)
        FAIL("corpus %s has format version %u, this build reads versions 1 to %d", path, version, CORPUS_VERSION);
    if (size < CORPUS_HDR + 4) FAIL("corpus %s is truncated (%zu bytes)", path, size);
    const uint32_t n_seq = get_u32(buf + 12);
    size_t at_np;
    const size_t rec = seq_record(version, &at_np);
    if (n_seq == 0 || (uint64_t)n_seq * rec > size - CORPUS_HDR - 4)
        FAIL("corpus %s is truncated or corrupt (%u sequences in %zu bytes)", path, n_seq, size);
    *total = 0;
    for (uint32_t i = 0; i < n_seq; i++) {
        const uint8_t *r = buf + CORPUS_HDR + rec * i;
        const uint32_t np = get_u32(r + at_np), nt = get_u32(r + at_np + 4);
        if (np == 0 || np > nt) FAIL("corpus %s: sequence %u has %u prompt tokens of %u", path, i, np, nt);
        *total += nt;
    }
    const uint64_t expect = CORPUS_HDR + rec * (uint64_t)n_seq + 4 * *total + 4;
    if ((uint64_t)size != expect)
        FAIL("corpus %s is %s: %zu bytes, its header says %llu", path,
             (uint64_t)size < expect ? "truncated" : "too long", size, (unsigned long long)expect);
    const uint32_t crc = crc32c(0, buf, size - 4);
    if (crc != get_u32(buf + size - 4))
        FAIL("corpus %s is corrupt: checksum 0x%08x, stored 0x%08x", path, crc, get_u32(buf + size - 4));
    return HAT_OK;
#undef FAIL
}

/* the header's fields of a file that passed check_layout */
static void read_header(corpus *c, const uint8_t *buf) {
    const uint32_t version = get_u32(buf + 8);
    c->n_seq = (int)get_u32(buf + 12);
    c->version = version;
    c->model_size = get_u64(buf + 16);
    c->model_crc = get_u32(buf + 24);
    c->chat = get_u32(buf + 28);
    get_str(c->model_name, sizeof c->model_name, buf + 32, 64);
    c->gen = get_u32(buf + 96);
    uint32_t tb = get_u32(buf + 100);
    memcpy(&c->temp, &tb, 4);
    c->seed = get_u64(buf + 104);
    c->created = (int64_t)get_u64(buf + 112);
    c->prompts_size = get_u64(buf + 120);
    c->prompts_crc = get_u32(buf + 128);
    c->samples = version == 1 ? 1 : get_u32(buf + 132);
    get_str(c->prompts_name, sizeof c->prompts_name, buf + 136, 128);
    get_str(c->hat_version, sizeof c->hat_version, buf + 264, 16);
    get_str(c->hat_git, sizeof c->hat_git, buf + 280, 16);
}

static int check_model(const corpus *c, const char *path, const gguf_file *f, char *err, size_t errlen) {
    uint64_t msize;
    uint32_t mcrc;
    char mname[64];
    adapter_model_fingerprint(f, &msize, &mcrc);
    gguf_model_name(f, mname, sizeof mname);
    if (msize != c->model_size || mcrc != c->model_crc)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "corpus %s was generated by model %s (crc 0x%08x, %llu bytes), "
                       "this model file is %s (crc 0x%08x, %llu bytes)",
                       path, c->model_name[0] ? c->model_name : "?", c->model_crc, (unsigned long long)c->model_size,
                       mname[0] ? mname : "?", mcrc, (unsigned long long)msize);
    return HAT_OK;
}

/* the sequence records and token ids of a file that passed check_layout (total ids) */
static int read_sequences(corpus *c, const uint8_t *buf, uint64_t total, const char *path, int n_vocab, char *err,
                          size_t errlen) {
#define FAIL(...) return hat_err(err, errlen, HAT_ERR_FORMAT, __VA_ARGS__)
    const uint32_t n_seq = (uint32_t)c->n_seq, version = c->version;
    size_t at_np;
    const size_t rec = seq_record(version, &at_np);
    corpus_alloc(c, c->n_seq, total);
    const uint8_t *p = buf + CORPUS_HDR + rec * (size_t)n_seq;
    uint64_t at = 0;
    for (uint32_t i = 0; i < n_seq; i++) {
        const uint8_t *r = buf + CORPUS_HDR + rec * i;
        c->n_prompt[i] = get_u32(r + at_np);
        c->n_tok[i] = get_u32(r + at_np + 4);
        if (version == 1) {   /* one generation per prompt, all at the header's temperature and seed + i */
            c->prompt[i] = i;
            c->sample[i] = 0;
            c->seq_temp[i] = c->temp;
            c->seq_seed[i] = c->seed + i;
        } else {
            c->prompt[i] = get_u32(r);
            c->sample[i] = get_u32(r + 4);
            uint32_t sb = get_u32(r + 8);
            memcpy(&c->seq_temp[i], &sb, 4);
            c->seq_seed[i] = get_u64(r + 16);
            if (i && c->prompt[i] < c->prompt[i - 1])
                FAIL("corpus %s: sequence %u of prompt %u follows one of prompt %u (stored prompt by prompt)", path, i,
                     c->prompt[i], c->prompt[i - 1]);
        }
        c->off[i] = at;
        for (uint32_t k = 0; k < c->n_tok[i]; k++, p += 4) {
            const int32_t id = (int32_t)get_u32(p);
            if (id < 0 || id >= n_vocab) FAIL("corpus %s: token id %d out of range (vocabulary %d)", path, id, n_vocab);
            c->ids[at++] = id;
        }
    }
    return HAT_OK;
#undef FAIL
}

int corpus_load(corpus *c, const char *path, const gguf_file *f, int n_vocab, char *err, size_t errlen) {
    uint8_t *buf = NULL;
    size_t size = 0;
    uint64_t total = 0;
    memset(c, 0, sizeof *c);
    int rc = hat_read_file(path, "corpus", &buf, &size, err, errlen);
    if (rc) return rc;
    rc = check_layout(buf, size, path, &total, err, errlen);
    if (!rc) {
        read_header(c, buf);
        rc = check_model(c, path, f, err, errlen);
    }
    if (!rc) rc = read_sequences(c, buf, total, path, n_vocab, err, errlen);
    free(buf);
    if (rc) corpus_free(c);
    return rc;
}
