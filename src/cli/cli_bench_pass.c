/* hat bench-pass — times the engine's forward passes of chosen shapes on this machine, beside the
 * cost model's inputs (timing/cost_model.h: bytes, FLOPs) and, with --profile, its prediction:
 * the measurements experiments/fit_cpu_profile.py fits a compute profile of this host to, and
 * checks the fitted profile's predictions against. */
#include "backends/backend.h"
#include "cli/cli.h"
#include "core/common.h"
#include "core/parse.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "run/timing_run.h"
#include "timing/profiles.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 64

typedef struct {
    const char *model, *profiles, *profile, *shape, *shapes;
    int server;   /* --profiles is a servers file */
    int l0, l1, repeats, threads;
    int tok[MAX_LIST], pos[MAX_LIST], n_tok, n_pos;
} bp_opts;

static void bp_usage(FILE *f) {
    fprintf(f,
            "usage: hat bench-pass --model FILE.gguf [--layers A:B] [--tokens LIST] [--pos LIST] [--repeats N]\n"
            "                      [--threads T] [--profiles FILE --profile NAME [--server]]\n"
            "       hat bench-pass --shape NAME [--shapes FILE] --profiles FILE --profile NAME [--server]\n"
            "                      [--tokens LIST] [--pos LIST]\n"
            "  Times forward passes of the CPU backend over layers [A, B) (default: the whole stack) for every\n"
            "  (tokens, position) pair: a pass of n tokens at positions pos.. of one sequence, whose cache\n"
            "  holds pos positions first (filled by untimed passes). stdout: a '#' header line, then one\n"
            "  tab-separated line per shape:\n"
            "    n_tok  pos0  median_s  min_s  weight_bytes  kv_bytes  flops  attn_flops  pred_s\n"
            "  bytes and flops (attention's part: attn_flops): the cost model's (timing/cost_model.h) for the real model's shape; pred_s:\n"
            "  its prediction on the --profile (0 without one).\n"
            "  --tokens LIST   pass sizes, comma-separated [1,16,32,64,128,256,512]\n"
            "  --pos LIST      cache lengths before the pass [0]\n"
            "  --repeats N     timed passes per shape, the median reported [5]\n"
            "  --threads T     CPU threads [1]\n"
            "  --profiles FILE a devices profiles file (timing/profiles.h) [configs/devices.ini]\n"
            "  --profile NAME  a profile of it to predict with\n"
            "  --server        --profiles is a servers file (configs/servers.ini: GPUs, interconnect)\n"
            "  --shape NAME    no timing: the prediction alone for a whole-model pass (embedding, every\n"
            "                  layer, the LM head on the last row) of a shape of --shapes\n"
            "                  [configs/shapes.ini], as `hat run` charges a cloud-only pass; the time\n"
            "                  columns are 0\n"
            "  --help, -h      this text\n");
}

static int parse_list(const char *s, int *out, int *n, int lo, int hi, const char *what) {
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", s);
    *n = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_LIST) { fprintf(stderr, "hat bench-pass: %s: at most %d values\n", what, MAX_LIST); return -1; }
        if (parse_arg_int("hat bench-pass", what, t, lo, hi, &out[(*n)++])) return -1;
    }
    if (!*n) { fprintf(stderr, "hat bench-pass: %s: empty list\n", what); return -1; }
    return 0;
}

/* 0: *o set; 1: --help; -1: refused (one line printed) */
static int bp_parse(int argc, char **argv, bp_opts *o) {
    enum { O_MODEL = 256, O_LAYERS, O_TOKENS, O_POS, O_REPEATS, O_THREADS, O_PROFILES, O_PROFILE, O_SERVER, O_SHAPE,
           O_SHAPES, O_HELP = 'h' };
    static const struct option lo[] = {{"model", 1, 0, O_MODEL},       {"layers", 1, 0, O_LAYERS},
                                       {"tokens", 1, 0, O_TOKENS},     {"pos", 1, 0, O_POS},
                                       {"repeats", 1, 0, O_REPEATS},   {"threads", 1, 0, O_THREADS},
                                       {"profiles", 1, 0, O_PROFILES}, {"profile", 1, 0, O_PROFILE},
                                       {"server", 0, 0, O_SERVER},     {"shape", 1, 0, O_SHAPE},
                                       {"shapes", 1, 0, O_SHAPES},
                                       {"help", 0, 0, O_HELP},         {0, 0, 0, 0}};
    *o = (bp_opts){.l0 = 0, .l1 = -1, .repeats = 5, .threads = 1, .profiles = "configs/devices.ini",
                   .tok = {1, 16, 32, 64, 128, 256, 512}, .n_tok = 7, .n_pos = 1, .shapes = "configs/shapes.ini"};
    char msg[HAT_ERRLEN];
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_LAYERS:
            if (sscanf(optarg, "%d:%d%n", &o->l0, &o->l1, &(int){0}) != 2 || o->l0 < 0 || o->l1 <= o->l0) {
                fprintf(stderr, "hat bench-pass: --layers must be A:B with 0 <= A < B, got '%s'\n", optarg);
                return -1;
            }
            break;
        case O_TOKENS: if (parse_list(optarg, o->tok, &o->n_tok, 1, 65536, "--tokens")) return -1; break;
        case O_POS: if (parse_list(optarg, o->pos, &o->n_pos, 0, 1 << 20, "--pos")) return -1; break;
        case O_REPEATS: if (parse_arg_int("hat bench-pass", "--repeats", optarg, 1, 1000, &o->repeats)) return -1; break;
        case O_THREADS: if (parse_arg_int("hat bench-pass", "--threads", optarg, 1, 256, &o->threads)) return -1; break;
        case O_PROFILES: o->profiles = optarg; break;
        case O_PROFILE: o->profile = optarg; break;
        case O_SERVER: o->server = 1; break;
        case O_SHAPE: o->shape = optarg; break;
        case O_SHAPES: o->shapes = optarg; break;
        case O_HELP: return 1;
        default:
            cli_opt_error(msg, sizeof msg, "hat bench-pass", c, argv);
            fprintf(stderr, "%s\n", msg);
            return -1;
        }
    }
    if (optind < argc) { fprintf(stderr, "hat bench-pass: unexpected argument '%s'\n", argv[optind]); return -1; }
    if (!o->model == !o->shape) { fprintf(stderr, "hat bench-pass: give exactly one of --model, --shape\n"); return -1; }
    if (o->shape && !o->profile) { fprintf(stderr, "hat bench-pass: --shape needs --profile\n"); return -1; }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* fills the slot's cache to pos (untimed), then times `repeats` passes of n tokens at pos */
static int time_shape(backend *be, int pos, int n, int repeats, double *med, double *mn, char *err, size_t errlen) {
    double t[1000];
    const int dim = be->cfg.dim;
    for (int r = 0; r < repeats; r++) {
        backend_truncate(be, 0, 0);
        for (int p = 0; p < pos;) {   /* the cache: chunks of at most max_tok */
            const int k = pos - p < be->max_tok ? pos - p : be->max_tok;
            const backend_seq s = {.slot = 0, .pos0 = p, .n_tok = k};
            int rc = backend_forward(be, &s, 1, err, errlen);
            if (rc) return rc;
            p += k;
        }
        float *io = backend_io(be);
        for (size_t k = 0; k < (size_t)n * dim; k++) io[k] = 0.01f * (float)((k * 2654435761u) % 200) - 1.0f;
        const backend_seq s = {.slot = 0, .pos0 = pos, .n_tok = n, .decode = n == 1};
        const double t0 = hat_now();
        int rc = backend_forward(be, &s, 1, err, errlen);
        if (rc) return rc;
        t[r] = hat_now() - t0;
    }
    qsort(t, (size_t)repeats, sizeof t[0], cmp_double);
    *med = repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
    *mn = t[0];
    return HAT_OK;
}

static int load_profile(const bp_opts *o, hw_profile *prof, char *err, size_t errlen) {
    hw_profile *profs = NULL;
    int n = 0, rc = hw_profiles_load(o->profiles, o->server ? HW_SERVER : HW_DEVICE, &profs, &n, err, errlen), k = 0;
    while (!rc && k < n && strcmp(profs[k].name, o->profile)) k++;
    if (!rc && k == n) rc = hat_err(err, errlen, HAT_ERR_ARG, "--profile %s: not in %s", o->profile, o->profiles);
    if (rc && !o->server && strstr(err, "'gpus'")) {   /* a servers file read as a devices one */
        const size_t len = strlen(err);
        snprintf(err + len, errlen > len ? errlen - len : 0, " (a servers profiles file? add --server)");
    }
    if (!rc) *prof = profs[k];
    free(profs);
    return rc;
}

/* --shape: the cost model's prediction alone for whole-model passes of the shape */
static int bp_predict(const bp_opts *o, char *err, size_t errlen) {
    hw_profile prof;
    model_shape *shapes = NULL;
    int n = 0, rc = load_profile(o, &prof, err, errlen), k = 0;
    if (!rc) rc = shapes_load(o->shapes, &shapes, &n, err, errlen);
    while (!rc && k < n && strcmp(shapes[k].name, o->shape)) k++;
    if (!rc && k == n) rc = hat_err(err, errlen, HAT_ERR_ARG, "--shape %s: not in %s", o->shape, o->shapes);
    if (!rc) {
        const model_shape *s = &shapes[k];
        printf("# shape %s (%d layers, hidden %d, %.4g bytes/weight) on %s (%d GPU%s): predictions only\n"
               "# n_tok\tpos0\tmedian_s\tmin_s\tweight_bytes\tkv_bytes\tflops\tattn_flops\tpred_s\n",
               s->name, s->layers, s->hidden, s->bytes_per_weight, prof.name, prof.gpus, prof.gpus > 1 ? "s" : "");
        for (int j = 0; j < o->n_pos; j++)
            for (int i = 0; i < o->n_tok; i++) {
                cost_work w = cost_work_seq(0, s->layers, o->pos[j], o->tok[i]);
                w.embed = 1;
                w.n_head = 1;
                cost_parts p;
                const double t = cost_predict(&prof, s, &w, &p);
                printf("%d\t%d\t0\t0\t%.6e\t%.6e\t%.6e\t%.6e\t%.6e\n", o->tok[i], o->pos[j], p.weight_bytes, p.kv_bytes,
                       p.flops, p.attn_flops, t);
            }
    }
    free(shapes);
    return rc;
}

static int bp_run(const bp_opts *o, char *err, size_t errlen) {
    gguf_file *gf = NULL;
    model *m = NULL;
    backend *be = NULL;
    hw_profile prof = {.name = "none"};
    int rc = gguf_open(&gf, o->model, err, errlen);
    model_config mc;
    if (!rc) rc = model_read_config(gf, &mc, err, errlen);
    const int l1 = o->l1 < 0 && !rc ? mc.n_layer : o->l1;
    if (!rc && l1 > mc.n_layer) rc = hat_err(err, errlen, HAT_ERR_ARG, "--layers %d:%d: the model has %d layers", o->l0, l1, mc.n_layer);
    if (!rc && o->profile) rc = load_profile(o, &prof, err, errlen);
    int max_tok = 1, max_ctx = 1;
    for (int i = 0; i < o->n_tok; i++) max_tok = o->tok[i] > max_tok ? o->tok[i] : max_tok;
    for (int j = 0; j < o->n_pos; j++) max_ctx = o->pos[j] + max_tok > max_ctx ? o->pos[j] + max_tok : max_ctx;
    if (!rc) rc = model_load_file(&m, gf, &(model_part){.l0 = o->l0, .l1 = l1}, err, errlen);
    const backend_desc bd = {.kind = BACKEND_CPU, .m = m, .l0 = o->l0, .l1 = l1, .n_slots = 1, .max_tok = max_tok,
                             .n_ctx = max_ctx, .n_threads = o->threads, .gpu = -1};
    if (!rc) rc = backend_open(&be, &bd, NULL, 0, err, errlen);
    if (!rc) {
        model_shape shape;
        run_timing_real_shape(&shape, gf, &mc);
        printf("# layers [%d,%d) of %s, %d thread(s), %d repeats; shape: hidden %d, ffn %d, %.4g bytes/weight; profile %s\n"
               "# n_tok\tpos0\tmedian_s\tmin_s\tweight_bytes\tkv_bytes\tflops\tattn_flops\tpred_s\n",
               o->l0, l1, o->model, o->threads, o->repeats, shape.hidden, shape.ffn, shape.bytes_per_weight, prof.name);
        for (int j = 0; j < o->n_pos && !rc; j++)
            for (int i = 0; i < o->n_tok && !rc; i++) {
                double med, mn;
                rc = time_shape(be, o->pos[j], o->tok[i], o->repeats, &med, &mn, err, errlen);
                if (rc) break;
                cost_work w = cost_work_seq(o->l0, l1, o->pos[j], o->tok[i]);
                cost_parts p;
                const double pred = cost_predict(&prof, &shape, &w, &p);
                printf("%d\t%d\t%.6e\t%.6e\t%.6e\t%.6e\t%.6e\t%.6e\t%.6e\n", o->tok[i], o->pos[j], med, mn,
                       p.weight_bytes, p.kv_bytes, p.flops, p.attn_flops, pred);
                fflush(stdout);
            }
    }
    backend_free(be);
    model_free(m);
    if (gf) gguf_close(gf);
    return rc;
}

int cli_bench_pass(int argc, char **argv) {
    bp_opts o;
    const int p = bp_parse(argc, argv, &o);
    if (p == 1) { bp_usage(stdout); return 0; }
    if (p < 0) return cli_hint("hat bench-pass");
    char err[HAT_ERRLEN] = "";
    if (o.shape ? bp_predict(&o, err, sizeof err) : bp_run(&o, err, sizeof err)) {
        fprintf(stderr, "hat bench-pass: %s\n", err);
        return 1;
    }
    return 0;
}
