/* tinymodel.c — see tinymodel.h. Layout (ggml docs/gguf.md, v3): magic, version, tensor count,
 * kv count, the kvs, the tensor infos, padding to general.alignment, tensor data (each tensor
 * at an aligned offset). Metadata and infos are built in memory; the data is generated and
 * written one tensor at a time, so large synthetic models need only one tensor of memory. */
#include "support/tinymodel.h"
#include "core/common.h"
#include "engine/quant.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 32
static const char k_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

void tinymodel_defaults(tinymodel_params *p) {
    *p = (tinymodel_params){
        .n_vocab = 8, .dim = 128, .n_head = 2, .n_head_kv = 1, .ffn_dim = 256, .n_layer = 4, .n_ctx = 64,
        .rope_base = 10000.0f, .norm_eps = 1e-5f, .wtype = GGML_TYPE_F32, .tied_output = 0, .tokenizer = 1,
        .eos_id = -1, .logit_scale = 1.0f, .embd_scale = 1.0f, .seed = 1, .name = NULL,
    };
}

/* ---- growable byte buffer for the header ---- */
typedef struct { uint8_t *p; size_t n, cap; } buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p, "out of memory");
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_head(buf *b, const char *key, gguf_type t) { put_str(b, key); put_u32(b, (uint32_t)t); }
static void kv_u32(buf *b, const char *key, uint32_t v) { kv_head(b, key, GGUF_TYPE_UINT32); put_u32(b, v); }
static void kv_f32(buf *b, const char *key, float v) { kv_head(b, key, GGUF_TYPE_FLOAT32); put(b, &v, 4); }
static void kv_str(buf *b, const char *key, const char *v) { kv_head(b, key, GGUF_TYPE_STRING); put_str(b, v); }
static void kv_arr(buf *b, const char *key, gguf_type et, uint64_t n) {
    kv_head(b, key, GGUF_TYPE_ARRAY);
    put_u32(b, (uint32_t)et);
    put_u64(b, n);
}

/* ---- the tensors ---- */
typedef enum { T_MAT, T_NORM, T_EMBD, T_OUT } tkind;
typedef struct {
    char name[64];
    int64_t ne0, ne1;   /* ne1 == 0: 1-D */
    ggml_type type;
    tkind kind;
    uint64_t offset;
    size_t nbytes;
} tinfo;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* uniform in [-1, 1) */
static double unif(uint64_t *s) { return (double)(splitmix64(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0; }

static size_t tensor_bytes(const tinfo *t) {
    const int64_t rows = t->ne1 ? t->ne1 : 1;
    return (size_t)rows * gguf_row_size(t->type, t->ne0);
}

static int add(tinfo *ts, int n, tkind kind, ggml_type type, int64_t ne0, int64_t ne1, const char *fmt, int l) {
    tinfo *t = &ts[n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, fmt, l);
    t->kind = kind;
    t->type = type;
    t->ne0 = ne0;
    t->ne1 = ne1;
    t->nbytes = tensor_bytes(t);
    return n + 1;
}

/* one row of tensor values (fp32) into its storage type */
static void encode_row(ggml_type type, const float *x, int64_t n, uint8_t *out) {
    if (type == GGML_TYPE_F32) {
        memcpy(out, x, (size_t)n * sizeof(float));
    } else if (type == GGML_TYPE_F16) {
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = fp32_to_fp16(x[i]);
            memcpy(out + 2 * i, &h, 2);
        }
    } else {   /* Q8_0 as ggml's quantize_row_q8_0_ref: d = amax/127, q = round(x/d) */
        for (int64_t b = 0; b < n / QK; b++) {
            const float *xb = x + b * QK;
            float amax = 0.0f;
            for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
            const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            block_q8_0 blk;
            blk.d = fp32_to_fp16(d);
            for (int i = 0; i < QK; i++) blk.qs[i] = (int8_t)roundf(xb[i] * id);
            memcpy(out + (size_t)b * sizeof blk, &blk, sizeof blk);
        }
    }
}

static int check_params(const tinymodel_params *p, char *err, size_t errlen) {
    if (p->n_vocab <= 0 || p->dim <= 0 || p->n_head <= 0 || p->n_head_kv <= 0 || p->ffn_dim <= 0 || p->n_layer <= 0 ||
        p->n_ctx <= 0 || !(p->rope_base > 0.0f) || !(p->norm_eps > 0.0f) || !(p->logit_scale > 0.0f) ||
        !(p->embd_scale > 0.0f))
        return hat_err(err, errlen, HAT_ERR_ARG, "tinymodel: sizes and scales must be positive");
    if (p->dim % p->n_head || (p->dim / p->n_head) % 64)
        return hat_err(err, errlen, HAT_ERR_ARG, "tinymodel: head dimension %d/%d must be a multiple of 64", p->dim,
                       p->n_head);
    if (p->n_head % p->n_head_kv)
        return hat_err(err, errlen, HAT_ERR_ARG, "tinymodel: %d heads not a multiple of %d kv heads", p->n_head,
                       p->n_head_kv);
    if (p->wtype != GGML_TYPE_F32 && p->wtype != GGML_TYPE_F16 && p->wtype != GGML_TYPE_Q8_0)
        return hat_err(err, errlen, HAT_ERR_ARG, "tinymodel: weight type %s (F32, F16, Q8_0 are written)",
                       gguf_type_name(p->wtype));
    if (p->wtype == GGML_TYPE_Q8_0 && (p->dim % QK || p->ffn_dim % QK))
        return hat_err(err, errlen, HAT_ERR_ARG, "tinymodel: Q8_0 needs dim and ffn_dim multiples of %d", QK);
    if (p->eos_id >= p->n_vocab)
        return hat_err(err, errlen, HAT_ERR_ARG, "tinymodel: eos id %d outside the vocabulary", p->eos_id);
    return HAT_OK;
}

int tinymodel_write(const char *path, const tinymodel_params *p, char *err, size_t errlen) {
    int rc = check_params(p, err, errlen);
    if (rc) return rc;
    const int64_t dim = p->dim, ffn = p->ffn_dim, kvd = (int64_t)p->dim / p->n_head * p->n_head_kv, V = p->n_vocab;
    const ggml_type wt = p->wtype;

    /* tensor table, in llama.cpp's usual order */
    const int n_max = 3 + 9 * p->n_layer;
    tinfo *ts = xcalloc((size_t)n_max, sizeof *ts);
    int nt = 0;
    nt = add(ts, nt, T_EMBD, wt, dim, V, "token_embd.weight", 0);
    for (int l = 0; l < p->n_layer; l++) {
        nt = add(ts, nt, T_NORM, GGML_TYPE_F32, dim, 0, "blk.%d.attn_norm.weight", l);
        nt = add(ts, nt, T_MAT, wt, dim, dim, "blk.%d.attn_q.weight", l);
        nt = add(ts, nt, T_MAT, wt, dim, kvd, "blk.%d.attn_k.weight", l);
        nt = add(ts, nt, T_MAT, wt, dim, kvd, "blk.%d.attn_v.weight", l);
        nt = add(ts, nt, T_MAT, wt, dim, dim, "blk.%d.attn_output.weight", l);
        nt = add(ts, nt, T_NORM, GGML_TYPE_F32, dim, 0, "blk.%d.ffn_norm.weight", l);
        nt = add(ts, nt, T_MAT, wt, dim, ffn, "blk.%d.ffn_gate.weight", l);
        nt = add(ts, nt, T_MAT, wt, dim, ffn, "blk.%d.ffn_up.weight", l);
        nt = add(ts, nt, T_MAT, wt, ffn, dim, "blk.%d.ffn_down.weight", l);
    }
    nt = add(ts, nt, T_NORM, GGML_TYPE_F32, dim, 0, "output_norm.weight", 0);
    if (!p->tied_output) nt = add(ts, nt, T_OUT, wt, dim, V, "output.weight", 0);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        ts[i].offset = off;
        off += (ts[i].nbytes + ALIGN - 1) / ALIGN * ALIGN;
    }

    /* metadata */
    buf kv = {0};
    uint64_t n_kv = 0;
#define KV(call) do { call; n_kv++; } while (0)
    KV(kv_str(&kv, "general.architecture", "llama"));
    KV(kv_str(&kv, "general.name", p->name ? p->name : "tinymodel"));
    KV(kv_u32(&kv, "general.alignment", ALIGN));
    KV(kv_u32(&kv, "llama.block_count", (uint32_t)p->n_layer));
    KV(kv_u32(&kv, "llama.context_length", (uint32_t)p->n_ctx));
    KV(kv_u32(&kv, "llama.embedding_length", (uint32_t)p->dim));
    KV(kv_u32(&kv, "llama.feed_forward_length", (uint32_t)p->ffn_dim));
    KV(kv_u32(&kv, "llama.attention.head_count", (uint32_t)p->n_head));
    KV(kv_u32(&kv, "llama.attention.head_count_kv", (uint32_t)p->n_head_kv));
    KV(kv_u32(&kv, "llama.rope.dimension_count", (uint32_t)(p->dim / p->n_head)));
    KV(kv_f32(&kv, "llama.rope.freq_base", p->rope_base));
    KV(kv_f32(&kv, "llama.attention.layer_norm_rms_epsilon", p->norm_eps));
    KV(kv_u32(&kv, "llama.vocab_size", (uint32_t)p->n_vocab));
    if (p->tokenizer) {
        KV(kv_str(&kv, "tokenizer.ggml.model", "gpt2"));
        KV(kv_str(&kv, "tokenizer.ggml.pre", "gpt2"));
        kv_arr(&kv, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, (uint64_t)V);
        for (int i = 0; i < p->n_vocab; i++) {
            char tok[32];
            if (i < (int)sizeof k_chars - 1) snprintf(tok, sizeof tok, "%c", k_chars[i]);
            else snprintf(tok, sizeof tok, "<t%d>", i);
            put_str(&kv, tok);
        }
        n_kv++;
        kv_arr(&kv, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, (uint64_t)V);
        for (int i = 0; i < p->n_vocab; i++) put_u32(&kv, 1);   /* NORMAL */
        n_kv++;
        kv_arr(&kv, "tokenizer.ggml.merges", GGUF_TYPE_STRING, 0);
        n_kv++;
        if (p->eos_id >= 0) KV(kv_u32(&kv, "tokenizer.ggml.eos_token_id", (uint32_t)p->eos_id));
    }
#undef KV

    buf hdr = {0};
    put_u32(&hdr, 0x46554747u);   /* "GGUF" */
    put_u32(&hdr, 3);
    put_u64(&hdr, (uint64_t)nt);
    put_u64(&hdr, n_kv);
    put(&hdr, kv.p, kv.n);
    for (int i = 0; i < nt; i++) {
        put_str(&hdr, ts[i].name);
        put_u32(&hdr, ts[i].ne1 ? 2 : 1);
        put_u64(&hdr, (uint64_t)ts[i].ne0);
        if (ts[i].ne1) put_u64(&hdr, (uint64_t)ts[i].ne1);
        put_u32(&hdr, (uint32_t)ts[i].type);
        put_u64(&hdr, ts[i].offset);
    }
    static const uint8_t zeros[ALIGN];
    put(&hdr, zeros, (ALIGN - hdr.n % ALIGN) % ALIGN);

    FILE *f = fopen(path, "wb");
    if (!f) {
        rc = hat_err(err, errlen, HAT_ERR_IO, "tinymodel: cannot create %s: %s", path, strerror(errno));
        goto done;
    }
    int ok = fwrite(hdr.p, 1, hdr.n, f) == hdr.n;
    /* data: values from a per-tensor stream, so one tensor's values do not depend on the others' sizes */
    const size_t wide = (size_t)(ffn > dim ? ffn : dim);   /* longest row */
    float *row = xmalloc(wide * sizeof(float));
    uint8_t *enc = xmalloc(wide * sizeof(float));
    for (int i = 0; i < nt && ok; i++) {
        const tinfo *t = &ts[i];
        /* the stream depends on the seed and the tensor's name only: a model with fewer layers
         * and the same seed is this one truncated (same embedding, first layers and head) */
        uint64_t s = p->seed * 0x2545f4914f6cdd1dull;
        for (const char *c = t->name; *c; c++) { s ^= (uint8_t)*c; splitmix64(&s); }
        double stdev = 1.0, mean = 0.0;
        switch (t->kind) {
        case T_MAT: stdev = 1.0 / sqrt((double)t->ne0); break;
        case T_NORM: mean = 1.0; stdev = 0.1 / sqrt(3.0); break;
        case T_EMBD: stdev = p->tied_output ? p->logit_scale / sqrt((double)dim) : p->embd_scale; break;
        case T_OUT: stdev = p->logit_scale / sqrt((double)dim); break;
        }
        const double a = stdev * sqrt(3.0);   /* U(-a, a) has standard deviation a/sqrt(3) */
        const int64_t rows = t->ne1 ? t->ne1 : 1;
        const size_t rb = gguf_row_size(t->type, t->ne0);
        for (int64_t r = 0; r < rows && ok; r++) {
            for (int64_t c = 0; c < t->ne0; c++) row[c] = (float)(mean + a * unif(&s));
            encode_row(t->type, row, t->ne0, enc);
            ok = fwrite(enc, 1, rb, f) == rb;
        }
        const size_t pad = (ALIGN - t->nbytes % ALIGN) % ALIGN;
        if (ok && i + 1 < nt) ok = fwrite(zeros, 1, pad, f) == pad;
    }
    free(row);
    free(enc);
    if (fclose(f) != 0) ok = 0;
    if (!ok) rc = hat_err(err, errlen, HAT_ERR_IO, "tinymodel: writing %s failed: %s", path, strerror(errno));
done:
    free(kv.p);
    free(hdr.p);
    free(ts);
    return rc;
}
