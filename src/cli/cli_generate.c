/* hat generate — one prompt through the whole model on this machine.
 * Text goes to stdout as it is generated (UTF-8 safe); load information and one final
 * "stats:" line of key=value pairs go to stderr (the benchmark script parses it). */
#include "cli/cli.h"
#include "split/hat_device.h"
#include "core/common.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "engine/prompt.h"
#include "core/parse.h"
#include "net/wire.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model, *prompt, *prompt_ids, *chat, *system;
    int max_tokens, threads, n_ctx, ignore_eos, print_ids, quiet;
    model_weights_mode weights;
    sampler_params sp;
    int wire_sim, split_a, split_b;   /* --wire-sim: -1 off, else a wire_dtype */
    const char *hat;                  /* --hat ADAPTER|identity: HAT rounds in one process */
    int gamma, chunk;
} gen_opts;

static void gen_usage(FILE *f) {
    fprintf(f,
            "usage: hat generate --model FILE.gguf (--prompt TEXT | --chat MESSAGE | --prompt-ids \"ID ID ...\") [options]\n"
            "  --system TEXT      system message for --chat (default: the model template's own)\n"
            "  --max-tokens N     tokens to generate (default 64)\n"
            "  --temp T           temperature, 0 = greedy (default 0)\n"
            "  --top-k K          top-k before sampling, 0 = off (default 40)\n"
            "  --top-p P          nucleus sampling mass, 1 = off (default 0.95)\n"
            "  --seed S           sampler seed (default 42)\n"
            "  --threads N        CPU threads (default 2)\n"
            "  --ctx N            context length to allocate (default 2048)\n"
            "  --weights quant|f32  quantised in place (default) or dequantised fp32 reference\n"
            "  --ignore-eos       keep generating past an end-of-generation token\n"
            "  --print-ids        print the generated token ids on stdout after the text\n"
            "  --quiet            do not print the text as it is generated\n"
            "  --wire-sim fp32|fp16|bf16 --split A,B\n"
            "                     round the hidden states after layers A-1 and L-B-1 to the wire dtype, as\n"
            "                     `hat run` sends them (what the split run must reproduce, in one process)\n"
            "  --hat ADAPTER|identity --split A,B [--gamma N] [--chunk N]\n"
            "                     HAT in one process: the SLM ([0,A) + adapter + [L-B,L)) drafts N tokens\n"
            "                     (default 4) per round, the whole model verifies; prints the acceptance\n"
            "                     rate and tokens per round (the same device code as `hat run`)\n"
            "  --help, -h         this text\n");
}

/* 0: *o set; 1: --help; -1: refused (one line printed) */
static int parse_opts(int argc, char **argv, gen_opts *o) {
    enum { O_MODEL = 256, O_PROMPT, O_IDS, O_CHAT, O_SYSTEM, O_MAX, O_TEMP, O_TOPK, O_TOPP, O_SEED,
           O_THREADS, O_CTX, O_WEIGHTS, O_NOEOS, O_PRINTIDS, O_QUIET, O_WIRESIM, O_SPLIT, O_HAT, O_GAMMA, O_CHUNK,
           O_HELP = 'h' };
    static const struct option lo[] = {
        {"model", 1, 0, O_MODEL}, {"prompt", 1, 0, O_PROMPT}, {"prompt-ids", 1, 0, O_IDS},
        {"chat", 1, 0, O_CHAT}, {"system", 1, 0, O_SYSTEM}, {"max-tokens", 1, 0, O_MAX},
        {"temp", 1, 0, O_TEMP}, {"top-k", 1, 0, O_TOPK}, {"top-p", 1, 0, O_TOPP},
        {"seed", 1, 0, O_SEED}, {"threads", 1, 0, O_THREADS}, {"ctx", 1, 0, O_CTX},
        {"weights", 1, 0, O_WEIGHTS}, {"ignore-eos", 0, 0, O_NOEOS}, {"print-ids", 0, 0, O_PRINTIDS},
        {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP},
        {"wire-sim", 1, 0, O_WIRESIM}, {"split", 1, 0, O_SPLIT}, {"hat", 1, 0, O_HAT}, {"gamma", 1, 0, O_GAMMA},
        {"chunk", 1, 0, O_CHUNK}, {0, 0, 0, 0}};
    *o = (gen_opts){.max_tokens = 64, .threads = 2, .n_ctx = 2048,
                    .sp = {.temp = 0.0f, .top_k = 40, .top_p = 0.95f, .seed = 42}, .wire_sim = -1,
                    .gamma = 4, .chunk = 64};
    int c, seed;
    char msg[HAT_ERRLEN];
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_PROMPT: o->prompt = optarg; break;
        case O_IDS: o->prompt_ids = optarg; break;
        case O_CHAT: o->chat = optarg; break;
        case O_SYSTEM: o->system = optarg; break;
        case O_MAX: if (parse_arg_int("hat generate", "--max-tokens", optarg, 0, 1 << 20, &o->max_tokens)) return -1; break;
        case O_TEMP: if (parse_arg_float("hat generate", "--temp", optarg, 0.0f, 100.0f, &o->sp.temp)) return -1; break;
        case O_TOPK: if (parse_arg_int("hat generate", "--top-k", optarg, 0, 1 << 24, &o->sp.top_k)) return -1; break;
        case O_TOPP: if (parse_arg_float("hat generate", "--top-p", optarg, 1e-6f, 1.0f, &o->sp.top_p)) return -1; break;
        case O_SEED: if (parse_arg_int("hat generate", "--seed", optarg, 0, 2147483647, &seed)) return -1; o->sp.seed = (uint64_t)seed; break;
        case O_THREADS: if (parse_arg_int("hat generate", "--threads", optarg, 1, 1024, &o->threads)) return -1; break;
        case O_CTX: if (parse_arg_int("hat generate", "--ctx", optarg, 1, 1 << 20, &o->n_ctx)) return -1; break;
        case O_WEIGHTS:
            if (!strcmp(optarg, "quant")) o->weights = MODEL_WEIGHTS_QUANT;
            else if (!strcmp(optarg, "f32")) o->weights = MODEL_WEIGHTS_F32;
            else { fprintf(stderr, "hat generate: --weights must be quant or f32, got '%s'\n", optarg); return -1; }
            break;
        case O_NOEOS: o->ignore_eos = 1; break;
        case O_PRINTIDS: o->print_ids = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_HAT: o->hat = optarg; break;
        case O_GAMMA: if (parse_arg_int("hat generate", "--gamma", optarg, 0, HAT_GAMMA_LIMIT, &o->gamma)) return -1; break;
        case O_CHUNK: if (parse_arg_int("hat generate", "--chunk", optarg, 2, 1 << 16, &o->chunk)) return -1; break;
        case O_WIRESIM:
            if (!strcmp(optarg, "fp32")) o->wire_sim = WIRE_F32;
            else if (!strcmp(optarg, "fp16")) o->wire_sim = WIRE_F16;
            else if (!strcmp(optarg, "bf16")) o->wire_sim = WIRE_BF16;
            else { fprintf(stderr, "hat generate: --wire-sim must be fp32, fp16 or bf16, got '%s'\n", optarg); return -1; }
            break;
        case O_SPLIT: {
            char tail;   /* "2,2x" is refused: nothing may follow B */
            if (sscanf(optarg, "%d,%d%c", &o->split_a, &o->split_b, &tail) != 2 || o->split_a < 1 || o->split_b < 1) {
                fprintf(stderr, "hat generate: --split must be A,B with A,B >= 1, got '%s'\n", optarg);
                return -1;
            }
            break;
        }
        case O_HELP: return 1;
        default:
            cli_opt_error(msg, sizeof msg, "hat generate", c, argv);
            fprintf(stderr, "%s\n", msg);
            return -1;
        }
    }
    if (optind < argc) { fprintf(stderr, "hat generate: unexpected argument '%s'\n", argv[optind]); return -1; }
    if (!o->model) { fprintf(stderr, "hat generate: --model is required\n"); return -1; }
    if (!!o->prompt + !!o->prompt_ids + !!o->chat != 1) {
        fprintf(stderr, "hat generate: give exactly one of --prompt, --chat, --prompt-ids\n");
        return -1;
    }
    if (o->system && !o->chat) { fprintf(stderr, "hat generate: --system needs --chat\n"); return -1; }
    return 0;
}

/* prompt -> ids (malloc'd); returns count or -1 */
static int build_prompt(const gen_opts *o, const tokenizer *tok, int n_vocab, int32_t **ids_out) {
    char err[HAT_ERRLEN];
    if (o->prompt_ids) {
        int cap = 16, n = 0;
        int32_t *ids = xmalloc((size_t)cap * sizeof(int32_t));
        const char *p = o->prompt_ids;
        while (*p) {
            while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') p++;
            if (!*p) break;
            char *end;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno || v < 0 || v >= n_vocab) {
                fprintf(stderr, "hat generate: --prompt-ids: bad token id near '%.16s' (vocabulary has %d)\n", p, n_vocab);
                free(ids);
                return -1;
            }
            if (n == cap) { cap *= 2; ids = realloc(ids, (size_t)cap * sizeof(int32_t)); CHECK(ids, "out of memory"); }
            ids[n++] = (int32_t)v;
            p = end;
        }
        *ids_out = ids;
        return n;
    }
    int32_t *ids = NULL;
    int n = 0;
    if (prompt_tokenize(tok, o->system, o->chat ? o->chat : o->prompt, o->chat != NULL, &ids, &n, err, sizeof err)) {
        fprintf(stderr, "hat generate: %s\n", err);
        return -1;
    }
    *ids_out = ids;
    return n;
}

/* The whole model on n tokens at pos0; with --wire-sim, as three parts [0,a), [a,L-b), [L-b,L)
 * with the hidden states rounded to the wire dtype at both cuts (what `hat run` transmits). */
static void gen_forward(const model *m, kvcache *kv, forward_state *fs, const gen_opts *o, const int32_t *ids, int n, int pos0) {
    const int L = m->cfg.n_layer;
    if (o->wire_sim < 0) {
        forward_run(m, kv, fs, &(forward_args){.tokens = ids, .n_tok = n, .pos0 = pos0, .l0 = 0, .l1 = L, .head = 1});
        return;
    }
    const int cuts[3] = {0, o->split_a, L - o->split_b};
    static float *tmp;
    static size_t tmp_n;
    const size_t need = wire_payload_bytes((wire_dtype)o->wire_sim, n, m->cfg.dim);
    if (need > tmp_n) { free(tmp); tmp = xmalloc(need); tmp_n = need; }
    for (int p = 0; p < 3; p++) {
        if (p) {
            wire_encode((wire_dtype)o->wire_sim, fs->x, tmp, (size_t)n * m->cfg.dim);
            wire_decode((wire_dtype)o->wire_sim, tmp, fs->x, (size_t)n * m->cfg.dim);
        }
        forward_run(m, kv, fs, &(forward_args){.tokens = p ? NULL : ids, .hidden_in = p ? fs->x : NULL, .n_tok = n,
                                                       .pos0 = pos0, .l0 = cuts[p], .l1 = p == 2 ? L : cuts[p + 1], .head = p == 2});
    }
}

/* --hat: the device's rounds (hat_device.c) with the middle submodel in this process */
static int generate_hat(const gen_opts *o, gguf_file *f, model *m, tokenizer *tok, int32_t *prompt, int n_prompt) {
    char err[HAT_ERRLEN];
    adapter *ad = NULL;
    sampler *smp;
    const model_config *c = &m->cfg;
    int rc = !strcmp(o->hat, "identity") ? (ad = adapter_identity(c->dim, o->split_a, o->split_b), HAT_OK)
                                         : adapter_load(&ad, o->hat, f, c->n_layer, c->dim, o->split_a, o->split_b, err, sizeof err);
    if (!rc) rc = sampler_init(&smp, &o->sp, c->n_vocab, err, sizeof err);
    if (rc) { fprintf(stderr, "hat generate: %s\n", err); adapter_free(ad); return 1; }
    char desc[512];
    adapter_describe(ad, desc, sizeof desc);
    fprintf(stderr, "hat: split a=%d b=%d, gamma %d, adapter %s\n", o->split_a, o->split_b, o->gamma, desc);
    int32_t *out = xmalloc((size_t)(o->max_tokens + 1) * sizeof(int32_t));
    hat_local_stats st;
    const hat_local_args args = {.gamma = o->gamma, .n_gen = o->max_tokens, .tok = o->ignore_eos ? NULL : tok, .chunk = o->chunk,
                                 .seed = o->sp.seed, .rule = SPEC_RULE_LEVIATHAN, .greedy = !(o->sp.temp > 0)};
    const int n = hat_device_generate_local(m, ad, smp, o->split_a, o->split_b, prompt, n_prompt, &args, out, &st);
    if (!o->quiet) {
        tokenizer_decoder dec;
        tokenizer_decoder_init(&dec);
        char piece[1024];
        for (int i = 0; i < n; i++) {
            int k = tokenizer_decoder_push(&dec, tok, out[i], piece, sizeof piece);
            fwrite(piece, 1, (size_t)k, stdout);
        }
        int k = tokenizer_decoder_flush(&dec, piece, sizeof piece);
        fwrite(piece, 1, (size_t)k, stdout);
        fputc('\n', stdout);
    }
    if (o->print_ids) {
        printf("ids:");
        for (int i = 0; i < n; i++) printf(" %d", out[i]);
        printf("\n");
    }
    fflush(stdout);
    fprintf(stderr, "hat: gen_tokens=%d rounds=%d drafted=%d accepted=%d accept_rate=%.4f tokens_per_round=%.3f seconds=%.3f\n",
            n, st.rounds, st.drafted, st.accepted, st.drafted ? (double)st.accepted / st.drafted : 0.0,
            st.rounds ? (double)(n - 1) / st.rounds : 0.0, st.seconds);
    free(out);
    sampler_free(smp);
    adapter_free(ad);
    free(prompt);
    tokenizer_free(tok);
    model_free(m);
    gguf_close(f);
    return 0;
}

/* the whole model, token by token: text to stdout as it comes, the stats line to stderr; t0 is
 * when loading began */
static int generate_plain(const gen_opts *o, const model *m, const tokenizer *tok, const int32_t *prompt, int n_prompt,
                          double t0) {
    const model_config *c = &m->cfg;
    char err[HAT_ERRLEN];
    kvcache kv;
    forward_state fs;
    sampler *smp;
    if (kvcache_init(&kv, 0, c->n_layer, o->n_ctx, c->kv_dim, err, sizeof err) ||
        forward_init(&fs, m, n_prompt, o->n_ctx, 1, o->threads, err, sizeof err) ||
        sampler_init(&smp, &o->sp, c->n_vocab, err, sizeof err)) {
        fprintf(stderr, "hat generate: %s\n", err);
        return 1;
    }
    double load_s = hat_now() - t0;
    char desc[512];
    model_describe(m, desc, sizeof desc);
    fprintf(stderr, "model: %s\n", desc);
    fprintf(stderr, "memory: weights %.1f MiB mapped + %.1f MiB heap, KV cache %.1f MiB (fp16, %d positions), scratch %.1f MiB\n",
            m->bytes_weights / 1048576.0, m->bytes_heap / 1048576.0, kvcache_bytes(&kv) / 1048576.0, o->n_ctx,
            forward_bytes(&fs, m) / 1048576.0);

    int32_t *out_ids = xmalloc((size_t)(o->max_tokens + 1) * sizeof(int32_t));
    tokenizer_decoder dec;
    tokenizer_decoder_init(&dec);
    char piece[1024];
    double tp0 = hat_now();
    gen_forward(m, &kv, &fs, o, prompt, n_prompt, 0);
    double prompt_s = hat_now() - tp0, td0 = hat_now();
    int n_gen = 0, pos = n_prompt;
    while (n_gen < o->max_tokens) {
        int32_t next = sampler_sample(smp, fs.logits);
        out_ids[n_gen++] = next;
        if (!o->quiet) {
            int k = tokenizer_decoder_push(&dec, tok, next, piece, sizeof piece);
            fwrite(piece, 1, (size_t)k, stdout);
            fflush(stdout);
        }
        if (!o->ignore_eos && tokenizer_is_eog(tok, next)) break;
        if (n_gen == o->max_tokens) break;
        gen_forward(m, &kv, &fs, o, &next, 1, pos++);
    }
    double decode_s = hat_now() - td0;
    if (!o->quiet) {
        int k = tokenizer_decoder_flush(&dec, piece, sizeof piece);
        fwrite(piece, 1, (size_t)k, stdout);
        fputc('\n', stdout);
    }
    if (o->print_ids) {
        printf("ids:");
        for (int i = 0; i < n_gen; i++) printf(" %d", out_ids[i]);
        printf("\n");
    }
    fflush(stdout);
    /* decode timing covers the n_gen-1 single-token forwards (the first token comes from the prompt pass) */
    int n_dec = n_gen > 1 ? n_gen - 1 : 0;
    double ms_tok = n_dec ? 1e3 * decode_s / n_dec : 0.0;
    double gbs = n_dec ? (double)m->bytes_per_token * n_dec / decode_s / 1e9 : 0.0;
    fprintf(stderr,
            "stats: load_s=%.3f prompt_tokens=%d prompt_s=%.4f prompt_tok_s=%.1f gen_tokens=%d decode_tokens=%d "
            "decode_s=%.4f decode_tok_s=%.2f ms_per_tok=%.3f bytes_per_tok=%zu gbs=%.2f threads=%d weights=%s peak_rss_mib=%.1f\n",
            load_s, n_prompt, prompt_s, n_prompt / prompt_s, n_gen, n_dec, decode_s, n_dec ? n_dec / decode_s : 0.0,
            ms_tok, m->bytes_per_token, gbs, o->threads, o->weights == MODEL_WEIGHTS_F32 ? "f32" : "quant",
            hat_peak_rss_bytes() / 1048576.0);
    free(out_ids);
    sampler_free(smp);
    forward_free(&fs);
    kvcache_free(&kv);
    return 0;
}

int cli_generate(int argc, char **argv) {
    gen_opts o;
    char err[HAT_ERRLEN];
    const int prc = parse_opts(argc, argv, &o);
    if (prc > 0) { gen_usage(stdout); return 0; }
    if (prc < 0) return cli_hint("hat generate");

    double t0 = hat_now();
    gguf_file *f;
    model *m = NULL;
    tokenizer *tok = NULL;
    if (gguf_open(&f, o.model, err, sizeof err) ||
        model_load_file(&m, f, &(model_part){.l0 = 0, .l1 = -1, .embed = 1, .head = 1, .weights = o.weights},
                        err, sizeof err) ||
        tokenizer_init(&tok, f, err, sizeof err)) {
        fprintf(stderr, "hat generate: %s\n", err);
        return 1;
    }
    const model_config *c = &m->cfg;
    int32_t *prompt = NULL;
    int n_prompt = build_prompt(&o, tok, c->n_vocab, &prompt);
    if (n_prompt < 0) return 1;
    if (n_prompt == 0) { fprintf(stderr, "hat generate: the prompt is empty\n"); return 1; }
    if ((o.wire_sim >= 0 || o.hat) && (o.split_a < 1 || o.split_b < 1 || o.split_a + o.split_b >= c->n_layer)) {
        fprintf(stderr, "hat generate: --wire-sim and --hat need --split A,B with A,B >= 1 and A + B < %d\n", c->n_layer);
        return 1;
    }
    if (o.hat) return generate_hat(&o, f, m, tok, prompt, n_prompt);
    if (n_prompt + o.max_tokens > o.n_ctx) {
        fprintf(stderr, "hat generate: prompt (%d tokens) + --max-tokens %d exceed --ctx %d\n", n_prompt, o.max_tokens, o.n_ctx);
        return 1;
    }
    const int rc = generate_plain(&o, m, tok, prompt, n_prompt, t0);
    free(prompt);
    tokenizer_free(tok);
    model_free(m);
    gguf_close(f);
    return rc;
}
