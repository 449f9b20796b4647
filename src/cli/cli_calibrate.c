/* hat calibrate — fit the device's draft adapter (adapter.h) for one (model, split, form).
 *
 * Self-distillation: each calibration prompt is wrapped in the chat template and the full model
 * generates up to --gen tokens from it (greedy by default), as a draft model trained for EAGLE or
 * Kangaroo would see it; then every position of prompt + generation is run through layers [0,a)
 * and [a,L-b) in batched prefill calls, and the pairs (h_a, h_{L-b}) go into the fit. Generation
 * dominates the cost, so the token ids can be saved (--corpus-out) and reused for other splits and
 * forms (--corpus): a reused corpus gives exactly the adapter a fresh run gives.
 *
 * Which positions are fitted (measured on SmolLM2-135M, see README "Calibration"):
 *  - not position 0: the attention sink. Its residual stream entering layer 28 has norm ~24,700
 *    (one channel at ~24,500) against ~600 at other positions; as one row of a least-squares fit it
 *    weighs as much as ~1,500 ordinary tokens. The device never drafts at position 0 (the prompt's
 *    states come from the cloud), so it is left out (--min-pos 1); --min-pos 0 keeps it.
 *  - each distinct token prefix once: the hidden state at position p depends only on tokens [0,p],
 *    and every chat rendering starts with the same system block (~30 tokens), which would otherwise
 *    count once per prompt. Positions inside a prefix seen in an earlier sequence are skipped.
 * The sequences of the last --holdout prompts are held out (whole sequences of whole prompts, so no
 * position of them, nor another sample of the same prompt, is trained on) and give the held-out R^2.
 *
 * More text per prompt (--samples N): the model generates N times from each prompt, the first greedily and
 * the other N-1 sampled at --temp (> 0); generation j of prompt i uses sampler seed --seed + i*N + j (N = 1:
 * one generation at --temp, seed --seed + i, as before --samples existed). Sequences are stored prompt by
 * prompt, samples in order.
 *
 * Corpus file (.tok), little-endian, version 2 (version 1 files are still read: one generation per prompt):
 *     0   char[8]   magic "HATCORP\0"
 *     8   u32       version (2)                12  u32  number of sequences n_seq
 *    16   u64       model file size            24  u32  model CRC-32C         28  u32  chat template (0/1)
 *    32   char[64]  model name (general.name)
 *    96   u32       --gen (most tokens generated per prompt)  100  f32  --temp  104  u64  --seed
 *   112   i64       creation time (Unix seconds)
 *   120   u64       prompts file size          128  u32  prompts file CRC-32C  132  u32  --samples (v1: 0 = 1)
 *   136   char[128] prompts file name, as given on the command line (NUL padded)
 *   264   char[16]  hat version                280  char[16] hat git hash
 *   296   n_seq x 32 bytes, one per sequence:  u32 prompt index (0-based line among the non-empty prompts),
 *                   u32 sample index, f32 temperature (0 = greedy), u32 0 (reserved), u64 sampler seed,
 *                   u32 prompt tokens, u32 total tokens   (total = prompt + generated; generation stops at an
 *                   end-of-generation token, which is not stored)
 *                   (version 1: n_seq x (u32 prompt tokens, u32 total tokens); sequence i = prompt i, sample 0)
 *         sum(total) x i32 token ids, sequence after sequence
 *   end-4 u32       CRC-32C of every byte before it
 */
#include "split/adapter.h"
#include "calib/adapter_fit.h"
#include "core/build_info.h"
#include "core/common.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "core/bytes.h"
#include "core/crc32c.h"
#include "core/parse.h"
#include "engine/prompt.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CORPUS_MAGIC "HATCORP"
#define CORPUS_VERSION 2
#define CORPUS_HDR 296
#define CORPUS_SEQ_V1 8    /* bytes per sequence record, version 1 */
#define CORPUS_SEQ 32      /* version 2 */

typedef struct {
    const char *model, *prompts, *corpus_in, *corpus_out, *out;
    int a, b, form, rank, gen, samples, chat, holdout, threads, min_pos, chunk;
    double lambda[16];   /* candidates; the best on the held-out set is kept */
    int n_lambda;
    float temp;
    uint64_t seed;
    int set_gen, set_temp, set_seed, set_chat, set_samples;   /* given explicitly (they conflict with --corpus) */
} cal_opts;

typedef struct {
    int n_seq;
    uint32_t *n_prompt, *n_tok;   /* (n_seq) */
    uint32_t *prompt, *sample;    /* (n_seq) prompt index (line among the non-empty prompts), generation of it */
    float *seq_temp;              /* (n_seq) temperature of that generation (0 = greedy) */
    uint64_t *seq_seed;           /* (n_seq) its sampler seed */
    uint64_t *off;                /* (n_seq) start of each sequence in ids */
    int32_t *ids;
    uint64_t model_size, prompts_size, seed;
    uint32_t model_crc, prompts_crc, gen, chat, samples, version;
    float temp;
    int64_t created;
    char model_name[64], prompts_name[128], hat_version[16], hat_git[16];
} corpus;

static void cal_usage(FILE *f) {
    fprintf(f,
            "usage: hat calibrate --model M.gguf (--prompts FILE | --corpus F.tok) [--corpus-out F.tok]\n"
            "                     [--split A,B --out X.adapter] [options]\n"
            "Fits the draft adapter that stands in for layers [A, L-B) on the device, from the model's own\n"
            "hidden states on a self-generated corpus. Either input makes the corpus:\n"
            "  --prompts FILE     one prompt per line (a literal \\n is a newline; empty lines skipped): the model\n"
            "                     generates from each, prompt + generation are the corpus\n"
            "  --corpus F.tok     reuse the token ids saved by --corpus-out (must come from this model file)\n"
            "  --corpus-out F.tok save the generated corpus (with --prompts); alone (no --out) only generates\n"
            "Fit:\n"
            "  --split A,B        device layers: [0,A) and [L-B,L); needs A,B >= 1, A+B < L\n"
            "  --out X.adapter    adapter file to write (written to X.adapter.tmp, then renamed)\n"
            "  --form F           linear (default) | lowrank | identity (plain layer skipping: only measured)\n"
            "  --rank R           rank of the lowrank form (default %d)\n"
            "  --lambda X[,Y..]   ridge strength relative to trace(X^T X)/dim of the centred inputs (default %g);\n"
            "                     with several values each is fitted and the best held-out R^2 is kept\n"
            "  --holdout K        hold the sequences of the last K prompts out for the held-out R^2 (default 10%%\n"
            "                     of the prompts, at least 1)\n"
            "  --min-pos P        fit positions >= P only (default 1: position 0 is the attention sink)\n"
            "Generation (with --prompts):\n"
            "  --gen N            tokens generated per prompt, stopping early at end of generation (default 128)\n"
            "  --samples N        generations per prompt (default 1): the first greedy, the other N-1 sampled at\n"
            "                     --temp (> 0 needed when N > 1)\n"
            "  --temp T           sampling temperature, 0 = greedy (default 0); no top-k/top-p cut\n"
            "  --seed S           sampler seed; generation j of prompt i uses seed S+i*N+j (default 1)\n"
            "  --chat on|off      wrap each prompt in the model's chat template (default on)\n"
            "Machine:\n"
            "  --threads N        CPU threads (default 2)\n"
            "  --chunk N          tokens per prefill call (default 256)\n",
            ADAPTER_DEFAULT_RANK, ADAPTER_DEFAULT_LAMBDA);
}

static int cal_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int cal_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("hat calibrate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

static int parse_opts(int argc, char **argv, cal_opts *o) {
    enum { O_MODEL = 256, O_PROMPTS, O_CORPUS, O_CORPUS_OUT, O_OUT, O_SPLIT, O_FORM, O_RANK, O_LAMBDA, O_GEN,
           O_TEMP, O_SEED, O_CHAT, O_HOLDOUT, O_THREADS, O_MINPOS, O_CHUNK, O_SAMPLES, O_HELP };
    static const struct option lo[] = {
        {"model", 1, 0, O_MODEL}, {"prompts", 1, 0, O_PROMPTS}, {"corpus", 1, 0, O_CORPUS},
        {"corpus-out", 1, 0, O_CORPUS_OUT}, {"out", 1, 0, O_OUT}, {"split", 1, 0, O_SPLIT}, {"form", 1, 0, O_FORM},
        {"rank", 1, 0, O_RANK}, {"lambda", 1, 0, O_LAMBDA}, {"gen", 1, 0, O_GEN}, {"temp", 1, 0, O_TEMP},
        {"seed", 1, 0, O_SEED}, {"chat", 1, 0, O_CHAT}, {"holdout", 1, 0, O_HOLDOUT}, {"threads", 1, 0, O_THREADS},
        {"min-pos", 1, 0, O_MINPOS}, {"chunk", 1, 0, O_CHUNK}, {"samples", 1, 0, O_SAMPLES}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    *o = (cal_opts){.form = ADAPTER_LINEAR, .rank = ADAPTER_DEFAULT_RANK, .lambda = {ADAPTER_DEFAULT_LAMBDA},
                    .n_lambda = 1, .gen = 128, .samples = 1, .chat = 1, .holdout = -1, .threads = 2, .min_pos = 1,
                    .chunk = 256, .seed = 1};
    int c;
    long v;
    double d;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_PROMPTS: o->prompts = optarg; break;
        case O_CORPUS: o->corpus_in = optarg; break;
        case O_CORPUS_OUT: o->corpus_out = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_SPLIT: {
            char tail;
            if (sscanf(optarg, "%d,%d%c", &o->a, &o->b, &tail) != 2 || o->a < 1 || o->b < 1)
                return cal_err("--split must be A,B with A,B >= 1, got '%s'", optarg);
            break;
        }
        case O_FORM:
            if ((o->form = adapter_form_parse(optarg)) < 0)
                return cal_err("--form must be linear, lowrank or identity, got '%s'", optarg);
            break;
        case O_RANK: if (parse_arg_long("hat calibrate", "--rank", optarg, 1, 1 << 16, &v)) return -1; o->rank = (int)v; break;
        case O_LAMBDA: {
            char buf[512], *save = NULL;
            snprintf(buf, sizeof buf, "%s", optarg);
            o->n_lambda = 0;
            for (char *tk = strtok_r(buf, ",", &save); tk; tk = strtok_r(NULL, ",", &save)) {
                if (o->n_lambda == 16) return cal_err("--lambda takes at most 16 values");
                if (parse_arg_double("hat calibrate", "--lambda", tk, 0, 1e6, &o->lambda[o->n_lambda++])) return -1;
            }
            if (!o->n_lambda) return cal_err("--lambda needs a value");
            break;
        }
        case O_GEN: if (parse_arg_long("hat calibrate", "--gen", optarg, 0, 1 << 20, &v)) return -1; o->gen = (int)v; o->set_gen = 1; break;
        case O_SAMPLES:
            if (parse_arg_long("hat calibrate", "--samples", optarg, 1, 4096, &v)) return -1;
            o->samples = (int)v;
            o->set_samples = 1;
            break;
        case O_TEMP:
            if (parse_arg_double("hat calibrate", "--temp", optarg, 0, 100, &d)) return -1;
            o->temp = (float)d;
            o->set_temp = 1;
            break;
        case O_SEED:
            if (parse_arg_long("hat calibrate", "--seed", optarg, 0, 2147483647L, &v)) return -1;
            o->seed = (uint64_t)v;
            o->set_seed = 1;
            break;
        case O_CHAT:
            if (!strcmp(optarg, "on")) o->chat = 1;
            else if (!strcmp(optarg, "off")) o->chat = 0;
            else return cal_err("--chat must be on or off, got '%s'", optarg);
            o->set_chat = 1;
            break;
        case O_HOLDOUT: if (parse_arg_long("hat calibrate", "--holdout", optarg, 0, 1 << 24, &v)) return -1; o->holdout = (int)v; break;
        case O_THREADS: if (parse_arg_long("hat calibrate", "--threads", optarg, 1, 1024, &v)) return -1; o->threads = (int)v; break;
        case O_MINPOS: if (parse_arg_long("hat calibrate", "--min-pos", optarg, 0, 1 << 20, &v)) return -1; o->min_pos = (int)v; break;
        case O_CHUNK: if (parse_arg_long("hat calibrate", "--chunk", optarg, 1, 1 << 16, &v)) return -1; o->chunk = (int)v; break;
        case O_HELP: cal_usage(stdout); return 1;
        default:
            cal_err("unknown or incomplete option '%s'", argv[optind - 1]);
            cal_usage(stderr);
            return -1;
        }
    }
    if (optind < argc) return cal_err("unexpected argument '%s'", argv[optind]);
    if (!o->model) return cal_err("--model is required");
    if (!!o->prompts + !!o->corpus_in != 1) return cal_err("give exactly one of --prompts FILE and --corpus F.tok");
    if (o->corpus_in && (o->set_gen || o->set_temp || o->set_seed || o->set_chat || o->set_samples))
        return cal_err("--gen, --samples, --temp, --seed and --chat describe generation; a --corpus fixes them "
                       "(drop them)");
    if (o->samples > 1 && !(o->temp > 0))
        return cal_err("--samples %d: the generations after the first (greedy) one are sampled, give --temp > 0",
                       o->samples);
    if (o->corpus_in && o->corpus_out)
        return cal_err("--corpus-out needs --prompts (the corpus is read with --corpus)");
    if (!o->out && !o->corpus_out)
        return cal_err("nothing to do: give --out X.adapter (and --split A,B) or --corpus-out F.tok");
    if (o->out && !o->a) return cal_err("--out needs --split A,B");
    if (!o->out && o->a) return cal_err("--split needs --out X.adapter");
    return 0;
}

/* ---------------------------------------------------------------- corpus */

static void corpus_free(corpus *c) {
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

/* Runs tokens [pos0, pos0+n) of one sequence through layers [0, l1) (chunks of fs->max_tok), leaving the
 * last chunk's logits when head. */
static void prefill(const model *m, kvcache *kv, forward_state *fs, const int32_t *ids, int n, int pos0, int head) {
    for (int p = 0; p < n; p += fs->max_tok) {
        const int k = n - p < fs->max_tok ? n - p : fs->max_tok;
        forward_run(m, kv, fs, &(forward_args){.tokens = ids + p, .n_tok = k, .pos0 = pos0 + p, .l0 = 0,
                                                       .l1 = m->cfg.n_layer, .head = head && p + k == n});
    }
}

static int corpus_generate(corpus *c, const cal_opts *o, const gguf_file *f, const model *m, const tokenizer *tok,
                           char *err, size_t errlen) {
    char **prompts = NULL;
    int np = 0;
    memset(c, 0, sizeof *c);
    int rc = prompt_read_file(o->prompts, &prompts, &np, &c->prompts_size, &c->prompts_crc, err, errlen);
    if (rc) return rc;
    int32_t **pid = xcalloc((size_t)np, sizeof *pid);
    int *pn = xcalloc((size_t)np, sizeof *pn), max_len = 0;
    for (int i = 0; i < np && !rc; i++) {
        rc = prompt_tokenize(tok, NULL, prompts[i], o->chat, &pid[i], &pn[i], err, errlen);
        if (!rc && pn[i] == 0)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "%s: prompt %d tokenizes to nothing", o->prompts, i + 1);
        if (!rc && pn[i] + o->gen > max_len) max_len = pn[i] + o->gen;
    }
    if (!rc && max_len > m->cfg.n_ctx_train)
        rc = hat_err(err, errlen, HAT_ERR_ARG, "%s: a prompt + --gen %d is %d tokens, over the model's context %d",
                     o->prompts, o->gen, max_len, m->cfg.n_ctx_train);
    kvcache kv = {0};
    forward_state fs = {0};
    if (!rc) rc = kvcache_init(&kv, 0, m->cfg.n_layer, max_len, m->cfg.kv_dim, err, errlen);
    if (!rc) rc = forward_init(&fs, m, o->chunk, max_len, 1, o->threads, err, errlen);
    if (rc) goto out;

    const int ns = o->samples, nseq = np * ns;
    uint64_t total_cap = 0;
    for (int i = 0; i < np; i++) total_cap += ((uint64_t)pn[i] + (uint64_t)o->gen) * (uint64_t)ns;
    c->n_seq = nseq;
    c->n_prompt = xcalloc((size_t)nseq, sizeof(uint32_t));
    c->n_tok = xcalloc((size_t)nseq, sizeof(uint32_t));
    c->prompt = xcalloc((size_t)nseq, sizeof(uint32_t));
    c->sample = xcalloc((size_t)nseq, sizeof(uint32_t));
    c->seq_temp = xcalloc((size_t)nseq, sizeof(float));
    c->seq_seed = xcalloc((size_t)nseq, sizeof(uint64_t));
    c->off = xcalloc((size_t)nseq, sizeof(uint64_t));
    c->ids = xmalloc(sizeof(int32_t) * (total_cap ? total_cap : 1));
    adapter_model_fingerprint(f, &c->model_size, &c->model_crc);
    gguf_model_name(f, c->model_name, sizeof c->model_name);
    copy_str(c->prompts_name, sizeof c->prompts_name, o->prompts);
    c->gen = (uint32_t)o->gen;
    c->temp = o->temp;
    c->seed = o->seed;
    c->samples = (uint32_t)ns;
    c->version = CORPUS_VERSION;
    c->chat = (uint32_t)o->chat;
    c->created = (int64_t)time(NULL);
    copy_str(c->hat_version, sizeof c->hat_version, HAT_VERSION);
    copy_str(c->hat_git, sizeof c->hat_git, HAT_GIT_HASH);

    uint64_t at = 0, n_gen_all = 0;
    double t0 = hat_now();
    for (int q = 0; q < nseq; q++) {
        const int i = q / ns, j = q % ns;   /* prompt i, generation j of it */
        sampler *smp;
        const sampler_params sp = {.temp = ns > 1 && j == 0 ? 0.0f : o->temp, .top_k = 0, .top_p = 1.0f,
                                   .seed = o->seed + (uint64_t)q};
        rc = sampler_init(&smp, &sp, m->cfg.n_vocab, err, errlen);
        if (rc) goto out;
        double ts = hat_now();
        int32_t *seq = c->ids + at;
        memcpy(seq, pid[i], sizeof(int32_t) * (size_t)pn[i]);
        kvcache_truncate(&kv, 0);
        prefill(m, &kv, &fs, seq, pn[i], 0, 1);
        int n = pn[i];
        while (n < pn[i] + o->gen) {
            int32_t next = sampler_sample(smp, fs.logits);
            if (tokenizer_is_eog(tok, next)) break;   /* never fed to the model, so never drafted from */
            seq[n++] = next;
            if (n == pn[i] + o->gen) break;
            forward_run(m, &kv, &fs, &(forward_args){.tokens = &next, .n_tok = 1, .pos0 = n - 1, .l0 = 0,
                                                            .l1 = m->cfg.n_layer, .head = 1});
        }
        sampler_free(smp);
        c->off[q] = at;
        c->n_prompt[q] = (uint32_t)pn[i];
        c->n_tok[q] = (uint32_t)n;
        c->prompt[q] = (uint32_t)i;
        c->sample[q] = (uint32_t)j;
        c->seq_temp[q] = sp.temp;
        c->seq_seed[q] = sp.seed;
        at += (uint64_t)n;
        n_gen_all += (uint64_t)(n - pn[i]);
        double dt = hat_now() - ts;
        char gen_of[64] = "";
        if (ns > 1) snprintf(gen_of, sizeof gen_of, ", generation %d/%d (%s)", j + 1, ns, j ? "sampled" : "greedy");
        fprintf(stderr, "corpus: prompt %d/%d%s: %d + %d tokens, %.1f s (%.1f tok/s generated)\n", i + 1, np, gen_of,
                pn[i], n - pn[i], dt, dt > 0 ? (n - pn[i]) / dt : 0.0);
    }
    double dt = hat_now() - t0;
    fprintf(stderr, "corpus: %d sequences, %llu tokens (%llu generated) in %.1f s, %.1f generated tok/s\n", nseq,
            (unsigned long long)at, (unsigned long long)n_gen_all, dt, dt > 0 ? n_gen_all / dt : 0.0);
out:
    forward_free(&fs);
    kvcache_free(&kv);
    for (int i = 0; i < np; i++) { free(prompts[i]); free(pid[i]); }
    free(prompts);
    free(pid);
    free(pn);
    if (rc) corpus_free(c);
    return rc;
}

static int corpus_save(const corpus *c, const char *path, char *err, size_t errlen) {
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

static int corpus_load(corpus *c, const char *path, const gguf_file *f, int n_vocab, char *err, size_t errlen) {
    uint8_t *buf = NULL;
    size_t size = 0;
    memset(c, 0, sizeof *c);
    int rc = hat_read_file(path, "corpus", &buf, &size, err, errlen);
    if (rc) return rc;
#define FAIL(...) do { rc = hat_err(err, errlen, HAT_ERR_FORMAT, __VA_ARGS__); goto fail; } while (0)
    if (size < 12 || memcmp(buf, CORPUS_MAGIC, 8)) FAIL("%s is not a HAT calibration corpus (bad magic)", path);
    const uint32_t version = get_u32(buf + 8);
    if (version != 1 && version != CORPUS_VERSION)
        FAIL("corpus %s has format version %u, this build reads versions 1 to %d", path, version, CORPUS_VERSION);
    if (size < CORPUS_HDR + 4) FAIL("corpus %s is truncated (%zu bytes)", path, size);
    const uint32_t n_seq = get_u32(buf + 12);
    /* per sequence: where its prompt and total token counts are */
    const size_t rec = version == 1 ? CORPUS_SEQ_V1 : CORPUS_SEQ, at_np = version == 1 ? 0 : 24;
    if (n_seq == 0 || (uint64_t)n_seq * rec > size - CORPUS_HDR - 4)
        FAIL("corpus %s is truncated or corrupt (%u sequences in %zu bytes)", path, n_seq, size);
    uint64_t total = 0;
    for (uint32_t i = 0; i < n_seq; i++) {
        const uint8_t *r = buf + CORPUS_HDR + rec * i;
        const uint32_t np = get_u32(r + at_np), nt = get_u32(r + at_np + 4);
        if (np == 0 || np > nt) FAIL("corpus %s: sequence %u has %u prompt tokens of %u", path, i, np, nt);
        total += nt;
    }
    const uint64_t expect = CORPUS_HDR + rec * (uint64_t)n_seq + 4 * total + 4;
    if ((uint64_t)size != expect)
        FAIL("corpus %s is %s: %zu bytes, its header says %llu", path,
             (uint64_t)size < expect ? "truncated" : "too long", size, (unsigned long long)expect);
    const uint32_t crc = crc32c(0, buf, size - 4);
    if (crc != get_u32(buf + size - 4))
        FAIL("corpus %s is corrupt: checksum 0x%08x, stored 0x%08x", path, crc, get_u32(buf + size - 4));
    c->n_seq = (int)n_seq;
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
    uint64_t msize;
    uint32_t mcrc;
    char mname[64];
    adapter_model_fingerprint(f, &msize, &mcrc);
    gguf_model_name(f, mname, sizeof mname);
    if (msize != c->model_size || mcrc != c->model_crc) {
        rc = hat_err(err, errlen, HAT_ERR_ARG,
                     "corpus %s was generated by model %s (crc 0x%08x, %llu bytes), "
                     "this model file is %s (crc 0x%08x, %llu bytes)",
                     path, c->model_name[0] ? c->model_name : "?", c->model_crc, (unsigned long long)c->model_size,
                     mname[0] ? mname : "?", mcrc, (unsigned long long)msize);
        goto fail;
    }
    c->n_prompt = xmalloc(sizeof(uint32_t) * n_seq);
    c->n_tok = xmalloc(sizeof(uint32_t) * n_seq);
    c->prompt = xmalloc(sizeof(uint32_t) * n_seq);
    c->sample = xmalloc(sizeof(uint32_t) * n_seq);
    c->seq_temp = xmalloc(sizeof(float) * n_seq);
    c->seq_seed = xmalloc(sizeof(uint64_t) * n_seq);
    c->off = xmalloc(sizeof(uint64_t) * n_seq);
    c->ids = xmalloc(sizeof(int32_t) * (total ? total : 1));
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
    free(buf);
    return HAT_OK;
fail:
    free(buf);
    corpus_free(c);
    return rc;
#undef FAIL
}

/* ---------------------------------------------------------------- hidden states */

typedef struct {
    adapter_stats *train;
    float *hx, *ht;            /* held-out pairs (n_held, dim) */
    unsigned char *hgen;       /* held-out row: HELD_GEN | HELD_GREEDY flags */
    size_t n_held, cap_held;
    uint64_t n_skip_pos, n_skip_prefix, n_train_gen;
    float max_x, max_t;        /* largest |h| among the fitted rows */
} collected;

enum { HELD_GEN = 1, HELD_GREEDY = 2 };   /* a generated token; of a greedy generation */

/* Size of the prefill call at p0: chunks never straddle the end of the prompt, so prompt positions get the
 * numerics of the chunked prefill that generated the corpus, and generated positions those of single-token
 * decoding (forward_args.decode): the hidden states are bit-identical to those of generation and drafting. */
static int chunk_at(int p0, int n_prompt, int n, int chunk, int *decode) {
    const int end = p0 < n_prompt ? n_prompt : n;
    *decode = p0 >= n_prompt;
    return end - p0 < chunk ? end - p0 : chunk;
}

static void held_push(collected *cl, int dim, const float *x, const float *t, int flags) {
    if (cl->n_held == cl->cap_held) {
        cl->cap_held = cl->cap_held * 2 + 256;
        cl->hx = realloc(cl->hx, sizeof(float) * cl->cap_held * dim);
        cl->ht = realloc(cl->ht, sizeof(float) * cl->cap_held * dim);
        cl->hgen = realloc(cl->hgen, cl->cap_held);
        CHECK(cl->hx && cl->ht && cl->hgen, "out of memory");
    }
    memcpy(cl->hx + cl->n_held * dim, x, sizeof(float) * dim);
    memcpy(cl->ht + cl->n_held * dim, t, sizeof(float) * dim);
    cl->hgen[cl->n_held++] = (unsigned char)flags;
}

/* Batched prefill of every sequence through [0,a) and [a,L-b); pairs of sequences [0, n_train) feed the
 * statistics, the rest are kept as held-out rows. */
static int collect(collected *cl, const corpus *c, const model *m, const cal_opts *o, int n_train, char *err,
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
    memset(cl, 0, sizeof *cl);
    cl->train = adapter_stats_new(d);
    uint64_t n_tok = 0;
    double t0 = hat_now(), next_report = t0 + 10;
    for (int i = 0; i < c->n_seq; i++) {
        const int32_t *ids = c->ids + c->off[i];
        const int n = (int)c->n_tok[i];
        /* positions < skip have the same token prefix as an earlier sequence: same hidden states */
        int skip = 0;
        for (int j = 0; j < i; j++) {
            const int32_t *e = c->ids + c->off[j];
            int k = 0, lim = n < (int)c->n_tok[j] ? n : (int)c->n_tok[j];
            while (k < lim && e[k] == ids[k]) k++;
            if (k > skip) skip = k;
        }
        kvcache_truncate(&kv, 0);
        for (int p0 = 0, k, dec; p0 < n; p0 += k) {
            k = chunk_at(p0, (int)c->n_prompt[i], n, o->chunk, &dec);
            forward_run(m, &kv, &fs, &(forward_args){.tokens = ids + p0, .n_tok = k, .pos0 = p0, .l0 = 0,
                                                            .l1 = a, .decode = dec});
            memcpy(hx, fs.x, sizeof(float) * (size_t)k * d);
            forward_run(m, &kv, &fs, &(forward_args){.hidden_in = fs.x, .n_tok = k, .pos0 = p0, .l0 = a,
                                                            .l1 = lb, .decode = dec});
            /* rows [r0, k) of this chunk are fitted */
            int r0 = 0;
            while (r0 < k && (p0 + r0 < o->min_pos || p0 + r0 < skip)) {
                if (p0 + r0 < o->min_pos) cl->n_skip_pos++;
                else cl->n_skip_prefix++;
                r0++;
            }
            for (size_t q = (size_t)r0 * d; q < (size_t)k * d; q++) {
                if (fabsf(hx[q]) > cl->max_x) cl->max_x = fabsf(hx[q]);
                if (fabsf(fs.x[q]) > cl->max_t) cl->max_t = fabsf(fs.x[q]);
            }
            if (i < n_train) {
                adapter_stats_add(cl->train, hx + (size_t)r0 * d, fs.x + (size_t)r0 * d, (size_t)(k - r0));
                for (int r = r0; r < k; r++) cl->n_train_gen += p0 + r >= (int)c->n_prompt[i];
            } else {
                const int greedy = c->seq_temp[i] <= 0 ? HELD_GREEDY : 0;
                for (int r = r0; r < k; r++)
                    held_push(cl, d, hx + (size_t)r * d, fs.x + (size_t)r * d,
                              greedy | (p0 + r >= (int)c->n_prompt[i] ? HELD_GEN : 0));
            }
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

static void collected_free(collected *cl) {
    adapter_stats_free(cl->train);
    free(cl->hx);
    free(cl->ht);
    free(cl->hgen);
}

/* held-out rows with all the flags of mask: HELD_GEN = generated tokens only (what the device drafts from);
 * HELD_GREEDY = of greedy generations only */
static void eval_generated(const adapter *ad, const collected *cl, int d, int mask, adapter_metrics *mg) {
    size_t n = 0;
    for (size_t r = 0; r < cl->n_held; r++) n += (cl->hgen[r] & mask) == mask;
    float *x = xmalloc(sizeof(float) * (n ? n : 1) * d), *t = xmalloc(sizeof(float) * (n ? n : 1) * d);
    for (size_t r = 0, k = 0; r < cl->n_held; r++)
        if ((cl->hgen[r] & mask) == mask) {
            memcpy(x + k * d, cl->hx + r * d, sizeof(float) * d);
            memcpy(t + k * d, cl->ht + r * d, sizeof(float) * d);
            k++;
        }
    adapter_eval(ad, x, t, n, mg);
    free(x);
    free(t);
}

/* Draft agreement on sequences [first, n_seq) (greedy generations only when greedy_only): at every generated
 * position p (one whose input token was generated and which has a successor), the device's draft -- input
 * submodel, adapter, output submodel + head, over the true context -- is compared with the full model's greedy
 * next token. The output submodel's KV cache holds the true states of positions < p (as after a verification);
 * each position costs three one-token calls of [L-b, L) + head: the adapter's state, the identity's (h_a itself),
 * and the true one, which also refills the cache at p and gives the full model's prediction with decode
 * numerics. Greedy HAT decodes from greedy text, and a quarter of the positions of a 4-sample corpus take a
 * quarter of the time: with greedy held-out sequences at hand, only they are measured. */
typedef struct {
    uint64_t n, hit, hit_id;   /* positions; the adapter's draft, the identity's equals the full model's token */
    uint64_t n_greedy, same;   /* positions in greedy generations; where the full model's token = the corpus's */
} agreement;

static int draft_agreement(const corpus *c, const model *m, const cal_opts *o, int first, int greedy_only,
                           const adapter *ad, agreement *ag, char *err, size_t errlen) {
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

/* ---------------------------------------------------------------- command */

int cli_calibrate(int argc, char **argv) {
#define FAIL_MSG() do { fprintf(stderr, "hat calibrate: %s\n", err); goto out; } while (0)
    cal_opts o;
    char err[HAT_ERRLEN];
    int prc = parse_opts(argc, argv, &o);
    if (prc > 0) return 0;
    if (prc < 0) return 2;

    gguf_file *f = NULL;
    model *m = NULL;
    tokenizer *tok = NULL;
    corpus c = {0};
    collected cl = {0};
    adapter *ad = NULL;
    int rc = 1;
    if (gguf_open(&f, o.model, err, sizeof err) ||
        model_load_file(&m, f, &(model_part){.l0 = 0, .l1 = -1, .embed = 1, .head = 1}, err, sizeof err) ||
        tokenizer_init(&tok, f, err, sizeof err))
        FAIL_MSG();
    const int L = m->cfg.n_layer, d = m->cfg.dim;
    if (o.out && o.a + o.b >= L) {
        fprintf(stderr, "hat calibrate: --split %d,%d: the model has %d layers, so A + B must be < %d\n", o.a, o.b,
                L, L);
        goto out;
    }
    double t0 = hat_now();
    if (o.prompts) {
        if (corpus_generate(&c, &o, f, m, tok, err, sizeof err)) FAIL_MSG();
        if (o.corpus_out) {
            if (corpus_save(&c, o.corpus_out, err, sizeof err)) FAIL_MSG();
            fprintf(stderr, "corpus: wrote %s\n", o.corpus_out);
        }
    } else if (corpus_load(&c, o.corpus_in, f, m->cfg.n_vocab, err, sizeof err)) {
        FAIL_MSG();
    }
    const double t_corpus = hat_now() - t0;
    if (!o.out) { rc = 0; goto out; }

    /* held out: every sequence of the last `holdout` prompts (sequences are stored prompt by prompt) */
    int n_prompts = 1, n_greedy = 0;
    for (int i = 0; i < c.n_seq; i++) {
        n_prompts += i > 0 && c.prompt[i] != c.prompt[i - 1];
        n_greedy += c.seq_temp[i] <= 0;
    }
    int holdout = o.holdout;
    if (holdout < 0) holdout = n_prompts < 2 ? 0 : (n_prompts + 5) / 10 > 0 ? (n_prompts + 5) / 10 : 1;
    if (holdout >= n_prompts) {
        fprintf(stderr, "hat calibrate: --holdout %d leaves nothing to fit (the corpus has %d prompts)\n", holdout,
                n_prompts);
        goto out;
    }
    int n_train_seq = c.n_seq;
    for (int k = 0; k < holdout; k++) {
        const uint32_t pr = c.prompt[n_train_seq - 1];
        while (n_train_seq > 0 && c.prompt[n_train_seq - 1] == pr) n_train_seq--;
    }
    double t1 = hat_now();
    if (collect(&cl, &c, m, &o, n_train_seq, err, sizeof err)) FAIL_MSG();
    const double t_collect = hat_now() - t1;
    if (o.n_lambda > 1 && !holdout) {
        fprintf(stderr, "hat calibrate: several --lambda values need held-out sequences to choose from "
                        "(--holdout > 0)\n");
        goto out;
    }
    t1 = hat_now();
    adapter_metrics mh = {0}, mg = {0}, mgr = {0}, mgg = {0};   /* held-out: all, generated, greedy, both */
    double best_lambda = o.lambda[0];
    for (int k = 0; k < o.n_lambda; k++) {
        adapter *cand = NULL;
        adapter_metrics ch, cg;
        if (adapter_fit_stats(&cand, cl.train, (adapter_form)o.form, o.rank, o.lambda[k], err, sizeof err)) FAIL_MSG();
        adapter_eval(cand, cl.hx, cl.ht, cl.n_held, &ch);
        eval_generated(cand, &cl, d, HELD_GEN, &cg);
        if (o.n_lambda > 1)
            fprintf(stderr, "fit: lambda %-8g R^2 of h_{L-b} - h_a: train %.4f held-out %.4f (generated %.4f)\n",
                    o.lambda[k], adapter_get_info(cand)->r2_train, ch.r2, cg.r2);
        if (!ad || ch.r2 > mh.r2) {
            adapter_free(ad);
            ad = cand;
            mh = ch;
            mg = cg;
            best_lambda = o.lambda[k];
        } else {
            adapter_free(cand);
        }
    }
    const double t_fit = hat_now() - t1;
    const int mixed = n_greedy > 0 && n_greedy < c.n_seq;   /* greedy and sampled generations */
    if (mixed) {
        eval_generated(ad, &cl, d, HELD_GREEDY, &mgr);
        eval_generated(ad, &cl, d, HELD_GREEDY | HELD_GEN, &mgg);
    }
    double t_agree = 0;
    agreement ag = {0};
    int held_greedy = 0;
    for (int i = n_train_seq; i < c.n_seq; i++) held_greedy += c.seq_temp[i] <= 0;
    const int agree_greedy_only = mixed && held_greedy > 0;
    if (holdout) {
        t1 = hat_now();
        if (draft_agreement(&c, m, &o, n_train_seq, agree_greedy_only, ad, &ag, err, sizeof err)) FAIL_MSG();
        t_agree = hat_now() - t1;
    }
    const double agree = ag.n ? (double)ag.hit / (double)ag.n : NAN;
    const double agree_id = ag.n ? (double)ag.hit_id / (double)ag.n : NAN;

    uint64_t n_all = 0;
    for (int i = 0; i < c.n_seq; i++) n_all += c.n_tok[i];
    char desc[1024], temp[112];
    if (c.samples > 1)
        snprintf(temp, sizeof temp, "%u generations each: 1 greedy, %u at temp %g, seeds %llu + %u*prompt + sample",
                 c.samples, c.samples - 1, c.temp, (unsigned long long)c.seed, c.samples);
    else if (c.temp > 0) snprintf(temp, sizeof temp, "temp %g, seed %llu", c.temp, (unsigned long long)c.seed);
    else snprintf(temp, sizeof temp, "greedy");
    snprintf(desc, sizeof desc,
             "%s: %d prompts of %s (%llu bytes, crc 0x%08x), chat %s, up to %u generated tokens each (%s), "
             "%d sequences, %llu tokens; "
             "fitted positions >= %d, shared prefixes once, last %d prompts held out%s%s; hat %s (%s)",
             o.corpus_in ? o.corpus_in : o.corpus_out ? o.corpus_out : "corpus generated in the same run", n_prompts,
             c.prompts_name, (unsigned long long)c.prompts_size, c.prompts_crc, c.chat ? "on" : "off", c.gen, temp,
             c.n_seq, (unsigned long long)n_all, o.min_pos, holdout,
             o.n_lambda > 1 ? " (and used to choose lambda)" : "",
             agree_greedy_only ? ", draft agreement on their greedy generations" : "", c.hat_version, c.hat_git);
    adapter_set_provenance(ad, f, L, o.a, o.b, o.min_pos, desc, cl.n_held ? &mh : NULL);
    adapter_set_agreement(ad, agree, agree_id, ag.n);
    if (adapter_save(ad, o.out, err, sizeof err)) FAIL_MSG();

    const adapter_info *in = adapter_get_info(ad);
    char rank[32] = "";
    if (o.form == ADAPTER_LOWRANK) snprintf(rank, sizeof rank, " rank %d", o.rank);
    printf("calibrate: %s%s adapter for split a=%d b=%d (stands in for layers [%d,%d) of %d), lambda %g%s\n",
           adapter_form_name((adapter_form)o.form), rank, o.a, o.b, o.a, L - o.b, L, best_lambda,
           o.n_lambda > 1 ? " (best held-out R^2 of the candidates)" : "");
    printf("  corpus: %s\n", desc);
    printf("  tokens: %llu fitted (%llu generated) from %d sequences, %zu held out from %d sequences of %d prompts; "
           "skipped %llu at position < %d and %llu in shared prefixes; max |h_a| %.0f, max |h_{L-b}| %.0f\n",
           (unsigned long long)adapter_stats_count(cl.train), (unsigned long long)cl.n_train_gen, n_train_seq,
           cl.n_held, c.n_seq - n_train_seq, holdout, (unsigned long long)cl.n_skip_pos, o.min_pos,
           (unsigned long long)cl.n_skip_prefix, cl.max_x, cl.max_t);
    printf("  R^2 of h_{L-b} - h_a:  train %.4f  held-out %.4f  held-out generated %.4f\n", in->r2_train, mh.r2, mg.r2);
    printf("  R^2 of h_{L-b}:        train %.4f  held-out %.4f  held-out generated %.4f  "
           "(identity adapter: held-out %.4f, generated %.4f)\n", in->r2_target_train, mh.r2_target, mg.r2_target,
           mh.r2_identity, mg.r2_identity);
    printf("  per-token error, held-out: rms %.2f, relative %.4f\n", mh.rms, mh.rel_err);
    if (mixed)
        printf("  held-out greedy generations only: R^2 of h_{L-b} - h_a %.4f (generated %.4f), of h_{L-b} %.4f "
               "(generated %.4f)\n", mgr.r2, mgg.r2, mgr.r2_target, mgg.r2_target);
    printf("  draft agreement with the full model's next token, held-out%s: %.1f%% (identity adapter %.1f%%) at %llu "
           "generated positions\n", agree_greedy_only ? " greedy generations" : "", 100 * agree, 100 * agree_id,
           (unsigned long long)ag.n);
    if (ag.n_greedy)
        printf("  (self-check: the full model's prediction equals the greedy corpus's next token at %llu of %llu)\n",
               (unsigned long long)ag.same, (unsigned long long)ag.n_greedy);
    printf("  time: corpus %.1f s, hidden states %.1f s (%.0f tok/s), fit %.2f s, draft agreement %.1f s\n", t_corpus,
           t_collect, t_collect > 0 ? n_all / t_collect : 0.0, t_fit, t_agree);
    printf("wrote %s\n", o.out);
    rc = 0;
out:
    adapter_free(ad);
    collected_free(&cl);
    corpus_free(&c);
    tokenizer_free(tok);
    model_free(m);
    if (f) gguf_close(f);
    return rc;
#undef FAIL_MSG
}
