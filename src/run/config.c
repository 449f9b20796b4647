/* config.c — the `hat run` configuration (keys, defaults and contract in config.h).
 *
 * Three steps, the same for the run file and the profiles files: the strict INI reader of
 * core/ini.h turns the text into (section, key, value, line) entries; a schema check (the key
 * lists below) rejects unknown sections and keys; typed getters then fill hat_config, every
 * error naming file:line, key and value. The resolved dump quotes prompts with the reader's
 * escapes, so any prompt survives a save and reload.
 */
#include "run/config.h"
#include "core/parse.h"
#include "engine/prompt.h"
#include "split/speculate.h"
#include "core/common.h"
#include "core/ini.h"
#include "run/config_timing.h"
#include "timing/profiles.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DEVICES 65536   /* sanity bound: device_cfg is ~1.3 KB each */
/* the sampler takes them as floats: a larger temp would become Inf, a smaller top_p 0 (the ranges
 * of hat generate --temp and --top-p) */
#define MAX_TEMP 100.0
#define MIN_TOP_P 1e-6

#define AT(sec, key) ini_find(d, sec, key), sec, key

/* ---------------------------------------------------------------- schema of the run file */

static const char *const K_RUN[] = {"mode", "seed", "trace", "timing_shape", "max_distorted", "time_scale",
                                    "peer_timeout_s", NULL};
static const char *const K_MODEL[] = {"path", "ctx", "device_threads", "cloud_threads", NULL};
static const char *const K_SPLIT[] = {"a", "b", NULL};
static const char *const K_CLOUD[] = {"ranks", "scheme", "tp", "tp_mode", "max_batch_tokens", "prefill_order", "backend", "gpu_dtype", "gpu", "gpu_graphs", "gpu_gemv", "compute", NULL};
static const char *const K_TRANSPORT[] = {"wire_dtype", "chunking", "chunk_tokens", "max_stall_ms", "inflight",
                                          "emulate_links", NULL};
static const char *const K_PROFILES[] = {"links", "devices", "servers", "shapes", NULL};
static const char *const K_DEVICES[] = {"count", "link", "compute", "prompts", "prompt", "chat", "max_tokens",
                                        "start_interval_s", "temp", "top_k", "top_p", NULL};
static const char *const K_DEVICE[] = {"link", "compute", "prompt", "chat", "max_tokens", "start_s", "temp",
                                       "top_k", "top_p", "chunking", NULL};
static const char *const K_FAULT[] = {"kind", "device", "at_seq", NULL};
static const char *const K_HAT[] = {"adapter", "gamma", "adaptive", "gamma_min", "gamma_max", NULL};
static const char *const K_LINK[] = {"up_mbps", "down_mbps", "latency_ms", "jitter_ms", "jitter", "source", NULL};

static const char *const MODES[] = {"ushape", "hat", "cloud-only", NULL};
static const char *const SCHEMES[] = {"replica", NULL};
static const char *const TP_MODES[] = {"exact", "allreduce", NULL};   /* tp_mode (tp.h) */
static const char *const BACKENDS[] = {"cpu", "cuda", "auto", NULL};   /* = backend_kind */
static const char *const GPU_DTYPES[] = {"fp16", "bf16", NULL};         /* = backend_dtype */
static const char *const GPU_GEMV[] = {"auto", "off", "on", NULL};     /* = BACKEND_GEMV_* */
const char *const chunk_policy_names[] = {"off", "fixed", "dynamic", NULL}; /* = chunk_policy */
const char *const prefill_order_names[] = {"fcfs", "fair", NULL};       /* = prefill_order */

/* [device.N] with N written canonically ("device.01" would dodge the lookup of device 1) */
static int device_section(const char *sec, int *n) {
    char canon[32];
    if (strncmp(sec, "device.", 7) || !parse_int(sec + 7, n)) return 0;
    snprintf(canon, sizeof canon, "device.%d", *n);
    return !strcmp(canon, sec);
}
static const char *const *run_keys(const char *sec) {
    static const struct { const char *name; const char *const *keys; } t[] = {
        {"run", K_RUN}, {"model", K_MODEL}, {"split", K_SPLIT}, {"cloud", K_CLOUD}, {"transport", K_TRANSPORT},
        {"profiles", K_PROFILES}, {"devices", K_DEVICES}, {"fault", K_FAULT}, {"hat", K_HAT}};
    int n;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i].name, sec)) return t[i].keys;
    return device_section(sec, &n) ? K_DEVICE : NULL;
}
static const char *const *link_keys(const char *sec) { (void)sec; return K_LINK; }

/* ---------------------------------------------------------------- profiles and prompts */

typedef struct {
    link_profile *link;
    hw_profile *comp;
    char **prompts;
    int nlink, ncomp, nprompts;
    /* [devices] level values, the defaults of every device */
    char link_name[CFG_NAME], comp_name[CFG_NAME], prompts_path[CFG_PATH];
    const char *prompt;      /* borrowed from the doc; NULL when unset */
    int chat, max_tokens, top_k;
    double interval, temp, top_p;
} aux_t;

/* the links.ini file: one profile per section, all keys required but jitter_ms / jitter; the
 * devices.ini file: timing/profiles.h */
static int load_profiles(aux_t *a, const char *path, int links, char *err, size_t errlen) {
    static const char *const req_link[] = {"up_mbps", "down_mbps", "latency_ms", "source", NULL};
    if (!links) return hw_profiles_load(path, HW_DEVICE, &a->comp, &a->ncomp, err, errlen);
    ini_doc d0 = {.err = err, .errlen = errlen}, *d = &d0;
    int rc = ini_load(d, path, "links profiles file");
    if (!rc) rc = ini_check(d, link_keys, "any profile name");
    if (!rc && !d->nsec) rc = hat_err(err, errlen, HAT_ERR_ARG, "%s: no profiles", path);
    if (!rc) a->link = xcalloc((size_t)d->nsec, sizeof *a->link);
    for (int i = 0; !rc && i < d->nsec; i++) {
        const ini_sec *sc = &d->sec[i];
        const char *s = sc->name;
        for (int k = 0; req_link[k] && !rc; k++)
            if (!ini_find(d, s, req_link[k]))
                rc = hat_err(err, errlen, HAT_ERR_ARG, "%s:%d: profile [%s] lacks the required key '%s'", path, sc->line,
                             s, req_link[k]);
        if (!rc && strlen(s) >= CFG_NAME)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "%s:%d: profile name [%s] is too long", path, sc->line, s ? s : "?");
        if (rc) break;
        link_profile *p = &a->link[a->nlink++];
        int j = 0;
        strcpy(p->name, s);
        if (!(rc = ini_double(d, AT(s, "up_mbps"), 0, 0, 1, INFINITY, &p->up_mbps)) &&
            !(rc = ini_double(d, AT(s, "down_mbps"), 0, 0, 1, INFINITY, &p->down_mbps)) &&
            !(rc = ini_double(d, AT(s, "latency_ms"), 0, 0, 0, INFINITY, &p->latency_ms)) &&
            !(rc = ini_double(d, AT(s, "jitter_ms"), 0, 0, 0, INFINITY, &p->jitter_ms)) &&
            !(rc = ini_enum(d, AT(s, "jitter"), jitter_dist_names, JITTER_NONE, &j)))
            rc = ini_str(d, AT(s, "source"), "", p->source, sizeof p->source);
        p->jitter = (jitter_dist)j;
    }
    ini_free(d);
    return rc;
}
/* the prompts file: devices take its prompts in turn (engine/prompt.h has the format) */
static int load_prompts(aux_t *a, const char *path, char *err, size_t errlen) {
    return prompt_read_file(path, &a->prompts, &a->nprompts, NULL, NULL, err, errlen);
}
static void aux_free(aux_t *a) {
    prompt_list_free(a->prompts, a->nprompts);
    free(a->link);
    free(a->comp);
}

/* ---------------------------------------------------------------- loading */

/* [run], [model], [split] */
static int load_run_model(hat_config *c, const ini_doc *d, int *mode) {
    int rc;
    if ((rc = ini_enum(d, AT("run", "mode"), MODES, 0, mode)) ||
        (rc = ini_str(d, AT("run", "trace"), "results/trace.h5", c->trace, sizeof c->trace)) ||
        (rc = ini_double(d, AT("run", "peer_timeout_s"), 600, 0, 1, 1e7, &c->peer_timeout_s)) ||
        (rc = ini_str(d, AT("model", "path"), "", c->model_path, sizeof c->model_path)) ||
        (rc = ini_int(d, AT("model", "ctx"), 1024, 16, &c->ctx)) ||
        (rc = ini_int(d, AT("model", "device_threads"), 1, 1, &c->device_threads)) ||
        (rc = ini_int(d, AT("model", "cloud_threads"), 1, 1, &c->cloud_threads)) ||
        (rc = ini_int(d, AT("split", "a"), 2, INT_MIN, &c->a)) ||
        (rc = ini_int(d, AT("split", "b"), 2, INT_MIN, &c->b)))
        return rc;
    return HAT_OK;
}

/* [cloud] and [transport] (in the order the keys are checked) */
static int load_cloud_transport(hat_config *c, const ini_doc *d, int *scheme, int *wire, int *backend, int *gpu_dtype) {
    int rc;
    if ((rc = ini_int(d, AT("cloud", "ranks"), 1, 1, &c->n_cloud)) ||
        (rc = ini_enum(d, AT("cloud", "scheme"), SCHEMES, 0, scheme)) ||
        (rc = ini_int(d, AT("cloud", "tp"), 1, 1, &c->tp)) ||
        (rc = ini_enum(d, AT("cloud", "tp_mode"), TP_MODES, 0, &c->tp_mode)) ||
        (rc = ini_enum(d, AT("transport", "wire_dtype"), wire_dtype_names, WIRE_F32, wire)) ||
        (rc = ini_enum(d, AT("transport", "chunking"), chunk_policy_names, CHUNK_FIXED, &c->chunking)) ||
        (rc = ini_int(d, AT("transport", "chunk_tokens"), 32, 2, &c->chunk_tokens)) ||
        (rc = ini_double(d, AT("transport", "max_stall_ms"), 0, 0, 0, INFINITY, &c->max_stall_ms)) ||
        (rc = ini_int(d, AT("transport", "inflight"), 4, 1, &c->inflight)) ||
        (rc = ini_bool(d, AT("transport", "emulate_links"), 1, &c->emulate_links)) ||
        (rc = ini_int(d, AT("cloud", "max_batch_tokens"), 256, 1, &c->max_batch_tokens)) ||
        (rc = ini_enum(d, AT("cloud", "prefill_order"), prefill_order_names, PREFILL_FCFS, &c->prefill_order)) ||
        (rc = ini_enum(d, AT("cloud", "backend"), BACKENDS, 0, backend)) ||
        (rc = ini_enum(d, AT("cloud", "gpu_dtype"), GPU_DTYPES, 0, gpu_dtype)) ||
        (rc = ini_int(d, AT("cloud", "gpu"), -1, -1, &c->gpu)) ||
        (rc = ini_bool(d, AT("cloud", "gpu_graphs"), 1, &c->gpu_graphs)) ||
        (rc = ini_enum(d, AT("cloud", "gpu_gemv"), GPU_GEMV, 0, &c->gpu_gemv)))
        return rc;
    return HAT_OK;
}

/* [profiles] and [devices] (the devices' defaults go to a) */
static int load_devices(hat_config *c, const ini_doc *d, aux_t *a) {
    int rc;
    if ((rc = ini_str(d, AT("profiles", "links"), "configs/links.ini", c->links_path, sizeof c->links_path)) ||
        (rc = ini_str(d, AT("profiles", "devices"), "configs/devices.ini", c->devices_path, sizeof c->devices_path)) ||
        (rc = ini_int(d, AT("devices", "count"), 0, 1, &c->n_devices)) ||
        (rc = ini_str(d, AT("devices", "link"), "ethernet", a->link_name, sizeof a->link_name)) ||
        (rc = ini_str(d, AT("devices", "compute"), "none", a->comp_name, sizeof a->comp_name)) ||
        (rc = ini_str(d, AT("devices", "prompts"), "", a->prompts_path, sizeof a->prompts_path)) ||
        (rc = ini_bool(d, AT("devices", "chat"), 1, &a->chat)) ||
        (rc = ini_int(d, AT("devices", "max_tokens"), 32, 1, &a->max_tokens)) ||
        (rc = ini_double(d, AT("devices", "start_interval_s"), 0, 0, 0, INFINITY, &a->interval)) ||
        (rc = ini_double(d, AT("devices", "temp"), 0, 0, 0, MAX_TEMP, &a->temp)) ||
        (rc = ini_int(d, AT("devices", "top_k"), 0, 0, &a->top_k)) ||
        (rc = ini_double(d, AT("devices", "top_p"), 1, MIN_TOP_P, 0, 1, &a->top_p)))
        return rc;
    return HAT_OK;
}

/* [fault] and [hat] */
static int load_fault_hat(hat_config *c, const ini_doc *d, int *fault) {
    int rc;
    if ((rc = ini_enum(d, AT("fault", "kind"), fault_kind_names, FAULT_NONE, fault)) ||
        (rc = ini_int(d, AT("fault", "device"), 0, 0, &c->fault_device)) ||
        (rc = ini_int(d, AT("fault", "at_seq"), 1, 0, &c->fault_seq)) ||
        (rc = ini_str(d, AT("hat", "adapter"), "identity", c->adapter_path, sizeof c->adapter_path)) ||
        (rc = ini_int(d, AT("hat", "gamma"), 4, 1, &c->gamma)) ||
        (rc = ini_bool(d, AT("hat", "adaptive"), 0, &c->gamma_adaptive)) ||
        (rc = ini_int(d, AT("hat", "gamma_min"), 1, 1, &c->gamma_min)) ||
        (rc = ini_int(d, AT("hat", "gamma_max"), 8, 1, &c->gamma_max)))
        return rc;
    return HAT_OK;
}

/* the upper ends of the numeric keys' documented ranges (config.h): what the buffers they size
 * can sensibly hold, refused before anything is allocated rather than by a failed allocation */
static int check_ranges(const hat_config *c, const ini_doc *d) {
    const struct { const char *sec, *key; long long v, hi; } r[] = {
        {"model", "ctx", c->ctx, 1 << 20},
        {"model", "device_threads", c->device_threads, 1024},
        {"model", "cloud_threads", c->cloud_threads, 1024},
        {"cloud", "ranks", c->n_cloud, 65536},
        {"cloud", "max_batch_tokens", c->max_batch_tokens, 65536},
        {"transport", "chunk_tokens", c->chunk_tokens, 65536},
        {"transport", "inflight", c->inflight, 256},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
        if (r[i].v > r[i].hi) return ini_fail_value(d, AT(r[i].sec, r[i].key), "at most %lld", r[i].hi);
    return HAT_OK;
}

/* checks across keys, once every value is read */
static int check_scalars(const hat_config *c, const ini_doc *d) {
    int rc = check_ranges(c, d);
    if (rc) return rc;
    if (c->n_cloud % c->tp)
        return ini_fail_value(d, AT("cloud", "tp"), "[cloud] ranks = %d is not a multiple of the tensor-parallel group size %d",
                    c->n_cloud, c->tp);
    if (c->tp > 1 && c->run_mode == RUN_CLOUD_ONLY)
        return ini_fail_value(d, AT("cloud", "tp"), "tensor parallelism is for the cloud's middle submodel (modes ushape and hat); "
                    "the cloud-only baseline runs whole models per cloud rank");
    if (c->max_batch_tokens < c->chunk_tokens)
        return ini_fail_value(d, AT("cloud", "max_batch_tokens"), "%d is below [transport] chunk_tokens = %d",
                    c->max_batch_tokens, c->chunk_tokens);
    if (c->n_devices > MAX_DEVICES) return ini_fail_value(d, AT("devices", "count"), "at most %d devices", MAX_DEVICES);
    if (c->fault_device >= c->n_devices)
        return ini_fail_value(d, AT("fault", "device"), "must be in [0, %d) ([devices] count = %d)", c->n_devices, c->n_devices);
    for (int i = 0, n; i < d->nsec; i++)
        if (device_section(d->sec[i].name, &n) && (n < 0 || n >= c->n_devices))
            return hat_err(d->err, d->errlen, HAT_ERR_ARG,
                           "%s:%d: section [%s] is out of range: [devices] count = %d, so N must be in [0, %d)", d->path,
                           d->sec[i].line, d->sec[i].name, c->n_devices, c->n_devices);
    return HAT_OK;
}

static int load_scalars(hat_config *c, const ini_doc *d, aux_t *a) {
    int rc, mode, scheme, wire, fault, backend, gpu_dtype;
    if (!ini_find(d, "model", "path") || !ini_find(d, "devices", "count"))
        return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s: missing required key %s", d->path,
                       ini_find(d, "model", "path") ? "[devices] count" : "[model] path");
    if ((rc = load_run_model(c, d, &mode)) || (rc = load_cloud_transport(c, d, &scheme, &wire, &backend, &gpu_dtype)) ||
        (rc = load_devices(c, d, a)) || (rc = config_timing_load(c, d)) || (rc = load_fault_hat(c, d, &fault)))
        return rc;
    if (c->gamma > HAT_GAMMA_LIMIT) return ini_fail_value(d, AT("hat", "gamma"), "at most %d", HAT_GAMMA_LIMIT);
    if (c->gamma_max > HAT_GAMMA_LIMIT) return ini_fail_value(d, AT("hat", "gamma_max"), "at most %d", HAT_GAMMA_LIMIT);
    if (c->gamma_min > c->gamma_max)
        return ini_fail_value(d, AT("hat", "gamma_min"), "%d is above [hat] gamma_max = %d", c->gamma_min, c->gamma_max);
    const ini_kv *seed = ini_find(d, "run", "seed");
    c->seed = 1;
    if (seed && !parse_u64(seed->val, &c->seed)) return ini_fail_value(d, seed, "run", "seed", "not an unsigned 64-bit integer");
    strcpy(c->mode, MODES[mode]);
    c->run_mode = (run_mode)mode;
    strcpy(c->scheme, SCHEMES[scheme]);
    c->backend = backend;
    c->gpu_dtype = gpu_dtype;
    c->wire = (wire_dtype)wire;
    c->fault = (fault_kind)fault;
    const ini_kv *p = ini_find(d, "devices", "prompt");
    a->prompt = p ? p->val : NULL;
    return check_scalars(c, d);
}

/* An unknown profile name: the error lists the known ones. `first` is the first profile's
 * name; both profile structs start with name[], so the names lie `stride` bytes apart. */
static int unknown_profile(const ini_doc *d, const ini_kv *kv, const char *key, const char *file, const char *first,
                           size_t stride, int n) {
    char list[384];
    size_t len = 0;
    list[0] = 0;
    for (int i = 0; i < n && len < sizeof list; i++) {
        int w = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", first + (size_t)i * stride);
        len += w > 0 ? (size_t)w : 0;
    }
    return ini_fail_value(d, kv, "devices", key, "unknown %s profile; known in %s: %s%s", key, file, list,
                !strcmp(key, "compute") ? ", none" : "");
}
static int resolve_device(hat_config *c, const ini_doc *d, const aux_t *a, int i) {
    char sec[32], name[CFG_NAME];
    device_cfg *v = &c->dev[i];
    const ini_kv *kv;
    int rc, k;
    double t;
    snprintf(sec, sizeof sec, "device.%d", i);
    /* link and compute: the device's own key, else the [devices] one, else the default */
    if (!(kv = ini_find(d, sec, "link"))) kv = ini_find(d, "devices", "link");
    strcpy(name, a->link_name);
    if (kv && (rc = ini_str(d, kv, sec, "link", "", name, sizeof name))) return rc;
    for (k = 0; k < a->nlink && strcmp(a->link[k].name, name); k++) {}
    if (k == a->nlink) return unknown_profile(d, kv, "link", c->links_path, a->link[0].name, sizeof *a->link, a->nlink);
    v->link = a->link[k];
    if (!(kv = ini_find(d, sec, "compute"))) kv = ini_find(d, "devices", "compute");
    strcpy(name, a->comp_name);
    if (kv && (rc = ini_str(d, kv, sec, "compute", "", name, sizeof name))) return rc;
    if (!strcmp(name, "none")) {
        memset(&v->compute, 0, sizeof v->compute);
        strcpy(v->compute.name, "none");
    } else {
        for (k = 0; k < a->ncomp && strcmp(a->comp[k].name, name); k++) {}
        if (k == a->ncomp)
            return unknown_profile(d, kv, "compute", c->devices_path, a->comp[0].name, sizeof *a->comp, a->ncomp);
        v->compute = a->comp[k];
    }
    /* prompt: device override > prompts file line i mod n > [devices] prompt */
    if ((kv = ini_find(d, sec, "prompt"))) v->prompt = xstrdup(kv->val);
    else if (a->nprompts) v->prompt = xstrdup(a->prompts[i % a->nprompts]);
    else if (a->prompt) v->prompt = xstrdup(a->prompt);
    else
        return hat_err(d->err, d->errlen, HAT_ERR_ARG,
                       "%s: device %d has no prompt: set [devices] prompts = <file>, [devices] prompt = <text> "
                       "or [device.%d] prompt", d->path, i, i);
    if ((rc = ini_bool(d, AT(sec, "chat"), a->chat, &v->chat)) ||
        (rc = ini_enum(d, AT(sec, "chunking"), chunk_policy_names, c->chunking, &v->chunking)) ||
        (rc = ini_int(d, AT(sec, "max_tokens"), a->max_tokens, 1, &v->max_tokens)) ||
        (rc = ini_int(d, AT(sec, "top_k"), a->top_k, 0, &v->top_k)) ||
        (rc = ini_double(d, AT(sec, "start_s"), i * a->interval, 0, 0, INFINITY, &v->start_s)))
        return rc;
    if (v->chunking == CHUNK_DYNAMIC && c->run_mode == RUN_CLOUD_ONLY) {
        const char *at = ini_find(d, sec, "chunking") ? sec : "transport";
        return ini_fail_value(d, AT(at, "chunking"), "dynamic chunking plans hidden-state chunks through the "
                              "device-uplink-cloud pipeline; the cloud-only baseline sends token ids: use off or fixed");
    }
    if ((rc = ini_double(d, AT(sec, "temp"), a->temp, 0, 0, MAX_TEMP, &t))) return rc;
    v->temp = (float)t;
    if ((rc = ini_double(d, AT(sec, "top_p"), a->top_p, MIN_TOP_P, 0, 1, &t))) return rc;
    v->top_p = (float)t;
    return HAT_OK;
}

/* ---------------------------------------------------------------- resolved dump */

typedef struct { char *s; size_t n, cap; } sbuf;
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)n + 1 > b->cap) b->s = xrealloc(b->s, b->cap = (b->n + (size_t)n + 1) * 2);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap2);
    va_end(ap2);
    b->n += (size_t)n;
}
/* `key = value`, quoted (with escapes) where the bare text would not read back the same */
static void sb_kv(sbuf *b, const char *key, const char *v, int force_quotes) {
    size_t n = strlen(v);
    int q = force_quotes || !n || isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]) ||
            strchr("\"#;", v[0]);
    for (size_t i = 0; i < n && !q; i++)
        q = iscntrl((unsigned char)v[i]) || ((v[i] == '#' || v[i] == ';') && i && isspace((unsigned char)v[i - 1]));
    if (!q) { sb_printf(b, "%s = %s\n", key, v); return; }
    sb_printf(b, "%s = \"", key);
    for (size_t i = 0; i < n; i++) {
        static const char special[] = "\n\t\r\\\"", letter[] = "ntr\\\"";   /* written \n \t \r \\ \" */
        const char *e = strchr(special, v[i]);
        if (e) sb_printf(b, "\\%c", letter[e - special]);
        else sb_printf(b, "%c", v[i]);
    }
    sb_printf(b, "\"\n");
}
/* the shortest %g text that reads back as the same double (as_float: the same float) */
static const char *num(char *t, size_t cap, double v, int as_float) {
    for (int p = 6; p <= 17; p++) {
        snprintf(t, cap, "%.*g", p, v);
        double r = strtod(t, NULL);
        if (as_float ? (float)r == (float)v : r == v) break;
    }
    return t;
}
static void sb_comment_text(sbuf *b, const char *s) {   /* one comment line, whatever s holds */
    for (; *s; s++) sb_printf(b, "%c", iscntrl((unsigned char)*s) ? ' ' : *s);
}
static void sb_link(sbuf *b, const link_profile *l, const char *file, int with_source) {
    char t1[32], t2[32], t3[32], t4[32];
    sb_printf(b, "# link %s (%s): up_mbps = %s, down_mbps = %s, latency_ms = %s, jitter_ms = %s, jitter = %s\n", l->name,
              file, num(t1, 32, l->up_mbps, 0), num(t2, 32, l->down_mbps, 0), num(t3, 32, l->latency_ms, 0),
              num(t4, 32, l->jitter_ms, 0), jitter_dist_names[l->jitter]);
    if (with_source) { sb_printf(b, "#   source: "); sb_comment_text(b, l->source); sb_printf(b, "\n"); }
}
static void sb_comp(sbuf *b, const hw_profile *p, const char *file, int with_source) {
    char t1[32], t2[32], t3[32];
    if (!strcmp(p->name, "none")) { sb_printf(b, "# compute none: no compute emulation\n"); return; }
    char t4[32], t5[32];
    sb_printf(b, "# compute %s (%s): mem_bw_gbs = %s, efficiency = %s, tflops = %s, flops_efficiency = %s, mem_gb = %s\n",
              p->name, file, num(t1, 32, p->mem_bw_gbs, 0), num(t2, 32, p->efficiency, 0), num(t3, 32, p->tflops, 0),
              num(t4, 32, p->flops_efficiency, 0), num(t5, 32, p->mem_gb, 0));
    if (with_source) { sb_printf(b, "#   source: "); sb_comment_text(b, p->source); sb_printf(b, "\n"); }
}
/* the numbers behind [cloud] compute and [run] timing_shape, as comment lines */
static void sb_timing(sbuf *b, const hat_config *c) {
    const hw_profile *p = &c->cloud_compute;
    const model_shape *s = &c->shape;
    char t[8][32];
    if (hw_enabled(p)) {
        sb_printf(b, "# server %s (%s): mem_bw_gbs = %s, efficiency = %s, tflops = %s, flops_efficiency = %s, mem_gb = %s, "
                  "gpus = %d, link_gbs = %s, link_latency_us = %s, attn_tflops = %s\n#   source: ", p->name, c->servers_path,
                  num(t[0], 32, p->mem_bw_gbs, 0), num(t[1], 32, p->efficiency, 0), num(t[2], 32, p->tflops, 0),
                  num(t[3], 32, p->flops_efficiency, 0), num(t[4], 32, p->mem_gb, 0), p->gpus, num(t[5], 32, p->link_gbs, 0),
                  num(t[6], 32, p->link_latency_us, 0), num(t[7], 32, p->attn_tflops, 0));
        sb_comment_text(b, p->source);
        sb_printf(b, "\n");
    }
    if (strcmp(c->shape_name, "none")) {
        sb_printf(b, "# shape %s (%s): layers = %d, hidden = %d, ffn = %d, heads = %d, kv_heads = %d, vocab = %d, "
                  "tied_embeddings = %d, bytes_per_weight = %s, kv_bytes = %s\n#   source: ", s->name, c->shapes_path,
                  s->layers, s->hidden, s->ffn, s->heads, s->kv_heads, s->vocab, s->tied, num(t[0], 32, s->bytes_per_weight, 0),
                  num(t[1], 32, s->kv_bytes, 0));
        sb_comment_text(b, s->source);
        sb_printf(b, "\n");
    }
}
/* whether name is one of list[0..n) */
static int name_in(const char *const *list, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return 1;
    return 0;
}

static char *dump_resolved(const hat_config *c, const aux_t *a) {
    sbuf b = {0};
    char t[32];
    sb_printf(&b, "# hat resolved configuration of %s\n", c->path);
    sb_printf(&b, "# every key with its final value (defaults, overrides and the prompts file applied);\n"
                  "# loading this text again gives the same configuration.\n");
    sb_printf(&b, "\n[run]\nmode = %s\nseed = %" PRIu64 "\n", c->mode, c->seed);
    sb_kv(&b, "trace", c->trace, 0);
    sb_printf(&b, "timing_shape = %s\nmax_distorted = %s\n", c->shape_name, num(t, sizeof t, c->max_distorted, 0));
    sb_printf(&b, "time_scale = %s\n", num(t, sizeof t, c->time_scale, 0));
    sb_printf(&b, "peer_timeout_s = %s\n", num(t, sizeof t, c->peer_timeout_s, 0));
    sb_printf(&b, "\n[model]\n");
    sb_kv(&b, "path", c->model_path, 0);
    sb_printf(&b, "ctx = %d\ndevice_threads = %d\ncloud_threads = %d\n", c->ctx, c->device_threads, c->cloud_threads);
    sb_printf(&b, "\n[split]\na = %d\nb = %d\n", c->a, c->b);
    sb_printf(&b, "\n[cloud]\nranks = %d\nscheme = %s\ntp = %d\ntp_mode = %s\nmax_batch_tokens = %d\nprefill_order = %s\nbackend = %s\ngpu_dtype = %s\ngpu = %d\ngpu_graphs = %s\ngpu_gemv = %s\ncompute = %s\n",
              c->n_cloud, c->scheme, c->tp, TP_MODES[c->tp_mode], c->max_batch_tokens, prefill_order_names[c->prefill_order], BACKENDS[c->backend], GPU_DTYPES[c->gpu_dtype], c->gpu,
              c->gpu_graphs ? "on" : "off", GPU_GEMV[c->gpu_gemv], c->cloud_compute.name);
    sb_printf(&b, "\n[transport]\nwire_dtype = %s\nchunking = %s\nchunk_tokens = %d\n", wire_dtype_name(c->wire),
              chunk_policy_names[c->chunking], c->chunk_tokens);
    sb_printf(&b, "max_stall_ms = %s\n", num(t, sizeof t, c->max_stall_ms, 0));
    sb_printf(&b, "inflight = %d\nemulate_links = %s\n", c->inflight, c->emulate_links ? "on" : "off");
    sb_printf(&b, "\n[profiles]\n");
    sb_kv(&b, "links", c->links_path, 0);
    sb_kv(&b, "devices", c->devices_path, 0);
    sb_kv(&b, "servers", c->servers_path, 0);
    sb_kv(&b, "shapes", c->shapes_path, 0);
    sb_printf(&b, "\n[devices]\ncount = %d\n", c->n_devices);
    if (a->prompts_path[0]) {
        sb_printf(&b, "# prompts = ");
        sb_comment_text(&b, a->prompts_path);
        sb_printf(&b, "  (%d prompts, expanded into each [device.N] prompt below)\n", a->nprompts);
    }
    if (a->prompt) sb_kv(&b, "prompt", a->prompt, 1);
    sb_printf(&b, "link = %s\ncompute = %s\nchat = %s\nmax_tokens = %d\n", a->link_name, a->comp_name,
              a->chat ? "on" : "off", a->max_tokens);
    sb_printf(&b, "start_interval_s = %s\n", num(t, sizeof t, a->interval, 0));
    sb_printf(&b, "temp = %s\n", num(t, sizeof t, a->temp, 0));
    sb_printf(&b, "top_k = %d\ntop_p = %s\n", a->top_k, num(t, sizeof t, a->top_p, 0));
    for (int i = 0; i < c->n_devices; i++) {
        const device_cfg *v = &c->dev[i];
        sb_printf(&b, "\n[device.%d]\nlink = %s\ncompute = %s\n", i, v->link.name, v->compute.name);
        sb_kv(&b, "prompt", v->prompt, 1);
        sb_printf(&b, "chat = %s\nmax_tokens = %d\nchunking = %s\n", v->chat ? "on" : "off", v->max_tokens,
                  chunk_policy_names[v->chunking]);
        sb_printf(&b, "start_s = %s\n", num(t, sizeof t, v->start_s, 0));
        sb_printf(&b, "temp = %s\n", num(t, sizeof t, v->temp, 1));
        sb_printf(&b, "top_k = %d\ntop_p = %s\n", v->top_k, num(t, sizeof t, v->top_p, 1));
        sb_link(&b, &v->link, c->links_path, 0);
        sb_comp(&b, &v->compute, c->devices_path, 0);
    }
    sb_printf(&b, "\n[hat]\n");
    sb_kv(&b, "adapter", c->adapter_path, 0);
    sb_printf(&b, "gamma = %d\nadaptive = %s\ngamma_min = %d\ngamma_max = %d\n", c->gamma,
              c->gamma_adaptive ? "on" : "off", c->gamma_min, c->gamma_max);
    sb_printf(&b, "\n[fault]\nkind = %s\ndevice = %d\nat_seq = %d\n", fault_kind_name(c->fault), c->fault_device,
              c->fault_seq);
    sb_printf(&b, "\n# [resolved_profiles] the numbers behind the profile names used above, as loaded\n");
    /* each profile once, at its first use: the names printed so far (few distinct ones, so this is
     * linear in the device count) */
    const char **seen = xcalloc(2 * (size_t)c->n_devices + 2, sizeof *seen);
    int n_l = 0, n_c = 0;
    const char **seen_c = seen + c->n_devices + 1;
    for (int i = 0; i < c->n_devices; i++) {
        if (!name_in(seen, n_l, c->dev[i].link.name)) {
            seen[n_l++] = c->dev[i].link.name;
            sb_link(&b, &c->dev[i].link, c->links_path, 1);
        }
        if (!name_in(seen_c, n_c, c->dev[i].compute.name)) {
            seen_c[n_c++] = c->dev[i].compute.name;
            sb_comp(&b, &c->dev[i].compute, c->devices_path, 1);
        }
    }
    free(seen);
    sb_timing(&b, c);
    return b.s;
}

/* ---------------------------------------------------------------- public */

int config_load(hat_config *c, const char *path, char *err, size_t errlen) {
    ini_doc d = {.err = err, .errlen = errlen};
    aux_t a = {0};
    int rc;
    memset(c, 0, sizeof *c);
    if (strlen(path) >= sizeof c->path) return hat_err(err, errlen, HAT_ERR_ARG, "config path too long: %s", path);
    strcpy(c->path, path);
    if (!(rc = ini_load(&d, path, "config file")) &&
        !(rc = ini_check(&d, run_keys, "run, model, split, cloud, transport, profiles, devices, device.N, fault, hat")) &&
        !(rc = load_scalars(c, &d, &a)) && !(rc = load_profiles(&a, c->links_path, 1, err, errlen)) &&
        !(rc = load_profiles(&a, c->devices_path, 0, err, errlen)) &&
        !(rc = a.prompts_path[0] ? load_prompts(&a, a.prompts_path, err, errlen) : HAT_OK)) {
        snprintf(c->prompts_path, sizeof c->prompts_path, "%s", a.prompts_path);
        c->dev = xcalloc((size_t)c->n_devices, sizeof *c->dev);
        for (int i = 0; i < c->n_devices && !rc; i++) rc = resolve_device(c, &d, &a, i);
        if (!rc) c->resolved = dump_resolved(c, &a);
    }
    aux_free(&a);
    ini_free(&d);
    if (rc) config_free(c);
    return rc;
}

int config_validate(const hat_config *c, int world_size, int n_layer, int n_ctx_train, char *err, size_t errlen) {
    int need = c->n_cloud + c->n_devices;
    if (world_size != need)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "%s: world size is %d but the configuration needs %d ranks "
                       "([cloud] ranks = %d + [devices] count = %d); "
                       "ranks 0..n_cloud-1 are cloud, the rest devices (here ranks 0..%d cloud, %d..%d devices)",
                       c->path, world_size, need, c->n_cloud, c->n_devices, c->n_cloud - 1, c->n_cloud, need - 1);
    if (c->a < 1 || c->b < 1 || c->a + c->b >= n_layer)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "%s: split a=%d b=%d does not fit a model with %d layers: need 1 <= a, 1 <= b and a + b < n_layer "
                       "(the cloud must keep at least one layer)", c->path, c->a, c->b, n_layer);
    if (n_ctx_train > 0 && c->ctx > n_ctx_train)
        return hat_err(err, errlen, HAT_ERR_ARG, "%s: [model] ctx = %d exceeds the model's training context %d", c->path,
                       c->ctx, n_ctx_train);
    return HAT_OK;
}

void config_free(hat_config *c) {
    if (c->dev)
        for (int i = 0; i < c->n_devices; i++) free(c->dev[i].prompt);
    free(c->dev);
    free(c->resolved);
    memset(c, 0, sizeof *c);
}

