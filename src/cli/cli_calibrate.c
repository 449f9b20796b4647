/* hat calibrate — fit the device's draft adapter (split/adapter.h) for one (model, split, form).
 *
 * This file only parses the command line into a calib_opts; the work (corpus, hidden states, fit, report) is
 * calib_run (calib/calibrate.h), the corpus file format is in calib/corpus.h, the adapter file's in
 * split/adapter.h. */
#include "cli/cli.h"

#include "calib/adapter_fit.h"
#include "calib/calibrate.h"
#include "core/parse.h"
#include "split/adapter.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void cal_usage(FILE *f) {
    fprintf(f,
            "usage: hat calibrate --model M.gguf (--prompts FILE | --corpus F.tok) [--corpus-out F.tok]\n"
            "                     [--split A,B --out X.adapter] [options]\n"
            "Fits the draft adapter that stands in for layers [A, L-B) on the device, from the model's own\n"
            "hidden states on a self-generated corpus. Either input makes the corpus:\n"
            "  --prompts FILE     one prompt per line (a literal \\n is a newline; empty lines skipped), or *.jsonl:\n"
            "                     one JSON object {\"prompt\": ...} per line: the model generates from each,\n"
            "                     prompt + generation are the corpus\n"
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

/* an integer option in [lo, hi] into *out; -1 (message printed) when it is not one */
static int arg_int(const char *flag, const char *arg, long lo, long hi, int *out) {
    return parse_arg_int("hat calibrate", flag, arg, lo, hi, out);
}

/* --lambda X[,Y..]: up to CALIB_MAX_LAMBDA candidates */
static int parse_lambda(const char *arg, calib_opts *o) {
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", arg);
    o->n_lambda = 0;
    for (char *tk = strtok_r(buf, ",", &save); tk; tk = strtok_r(NULL, ",", &save)) {
        if (o->n_lambda == CALIB_MAX_LAMBDA) return cal_err("--lambda takes at most %d values", CALIB_MAX_LAMBDA);
        if (parse_arg_double("hat calibrate", "--lambda", tk, 0, 1e6, &o->lambda[o->n_lambda++])) return -1;
    }
    if (!o->n_lambda) return cal_err("--lambda needs a value");
    return 0;
}

/* 0: options in *o; 1: --help printed; -1: bad command line (message printed). Which options go together is
 * calib_run's check (calib_opts_check). */
static int parse_opts(int argc, char **argv, calib_opts *o) {
    enum { O_MODEL = 256, O_PROMPTS, O_CORPUS, O_CORPUS_OUT, O_OUT, O_SPLIT, O_FORM, O_RANK, O_LAMBDA, O_GEN,
           O_TEMP, O_SEED, O_CHAT, O_HOLDOUT, O_THREADS, O_MINPOS, O_CHUNK, O_SAMPLES };
    static const struct option lo[] = {
        {"model", 1, 0, O_MODEL}, {"prompts", 1, 0, O_PROMPTS}, {"corpus", 1, 0, O_CORPUS},
        {"corpus-out", 1, 0, O_CORPUS_OUT}, {"out", 1, 0, O_OUT}, {"split", 1, 0, O_SPLIT}, {"form", 1, 0, O_FORM},
        {"rank", 1, 0, O_RANK}, {"lambda", 1, 0, O_LAMBDA}, {"gen", 1, 0, O_GEN}, {"temp", 1, 0, O_TEMP},
        {"seed", 1, 0, O_SEED}, {"chat", 1, 0, O_CHAT}, {"holdout", 1, 0, O_HOLDOUT}, {"threads", 1, 0, O_THREADS},
        {"min-pos", 1, 0, O_MINPOS}, {"chunk", 1, 0, O_CHUNK}, {"samples", 1, 0, O_SAMPLES}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    calib_opts_init(o);
    int c, seed;
    char tail;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_PROMPTS: o->prompts = optarg; break;
        case O_CORPUS: o->corpus_in = optarg; break;
        case O_CORPUS_OUT: o->corpus_out = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_SPLIT:
            if (sscanf(optarg, "%d,%d%c", &o->a, &o->b, &tail) != 2 || o->a < 1 || o->b < 1)
                return cal_err("--split must be A,B with A,B >= 1, got '%s'", optarg);
            break;
        case O_FORM:
            if ((o->form = adapter_form_parse(optarg)) < 0)
                return cal_err("--form must be linear, lowrank or identity, got '%s'", optarg);
            break;
        case O_RANK: if (arg_int("--rank", optarg, 1, 1 << 16, &o->rank)) return -1; break;
        case O_LAMBDA: if (parse_lambda(optarg, o)) return -1; break;
        case O_GEN: if (arg_int("--gen", optarg, 0, 1 << 20, &o->gen)) return -1; o->set_gen = 1; break;
        case O_SAMPLES: if (arg_int("--samples", optarg, 1, 4096, &o->samples)) return -1; o->set_samples = 1; break;
        case O_TEMP:
            if (parse_arg_float("hat calibrate", "--temp", optarg, 0, 100, &o->temp)) return -1;
            o->set_temp = 1;
            break;
        case O_SEED:
            if (arg_int("--seed", optarg, 0, 2147483647L, &seed)) return -1;
            o->seed = (uint64_t)seed;
            o->set_seed = 1;
            break;
        case O_CHAT:
            if (!strcmp(optarg, "on")) o->chat = 1;
            else if (!strcmp(optarg, "off")) o->chat = 0;
            else return cal_err("--chat must be on or off, got '%s'", optarg);
            o->set_chat = 1;
            break;
        case O_HOLDOUT: if (arg_int("--holdout", optarg, 0, 1 << 24, &o->holdout)) return -1; break;
        case O_THREADS: if (arg_int("--threads", optarg, 1, 1024, &o->threads)) return -1; break;
        case O_MINPOS: if (arg_int("--min-pos", optarg, 0, 1 << 20, &o->min_pos)) return -1; break;
        case O_CHUNK: if (arg_int("--chunk", optarg, 1, 1 << 16, &o->chunk)) return -1; break;
        case 'h': cal_usage(stdout); return 1;
        default: {
            char msg[256];
            cli_opt_error(msg, sizeof msg, "hat calibrate", c, argv);
            fprintf(stderr, "%s\n", msg);
            return -1;
        }
        }
    }
    if (optind < argc) return cal_err("unexpected argument '%s'", argv[optind]);
    return 0;
}

int cli_calibrate(int argc, char **argv) {
    calib_opts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc > 0) return 0;
    if (prc < 0) return cli_hint("hat calibrate");
    return calib_run(&o);
}
