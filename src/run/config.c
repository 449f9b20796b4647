/* config.c — the `hat run` configuration (keys, defaults and contract in config.h).
 *
 * Three steps, the same for the run file and the profiles files: a strict hand-written INI
 * reader turns the text into (section, key, value, line) entries, rejecting malformed lines,
 * repeated sections and repeated keys; a schema check rejects unknown sections and keys;
 * typed getters then fill hat_config, every error naming file:line, key and value.
 *
 * Values: surrounding blanks are dropped and an unquoted value ends at a '#' or ';' that
 * follows whitespace (an inline comment). A value in double quotes is taken verbatim with the
 * escapes \n \t \r \\ \" ; the resolved dump quotes prompts this way, so any prompt survives a
 * save and reload. Empty values are errors.
 */
#include "run/config.h"
#include "core/parse.h"
#include "engine/prompt.h"
#include "split/speculate.h"
#include "core/common.h"

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

/* ---------------------------------------------------------------- small helpers */

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    CHECK(q, "out of memory reallocating %zu bytes", n);
    return q;
}
static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}
static int in_list(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}
/* "a<sep>b<sep>c" into buf (truncated with "..." when long) */
static void join(char *buf, size_t cap, const char *const *names, int n, const char *sep) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; (n < 0 ? names[i] != NULL : i < n); i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? sep : "", names[i]);
        if (w < 0 || (size_t)w >= cap - len) { if (cap > 4) strcpy(buf + cap - 4, "..."); return; }
        len += (size_t)w;
    }
}

/* ---------------------------------------------------------------- INI reader */

typedef struct { const char *sec; char *key, *val; int line; } ini_kv;   /* sec: points at a section name */
typedef struct { char *name; int line; } ini_sec;
typedef struct {
    const char *path;
    ini_kv *kv;
    ini_sec *sec;
    int nkv, nsec;
    char *err;                /* where messages go */
    size_t errlen;
} ini_doc;

static void ini_free(ini_doc *d) {
    for (int i = 0; i < d->nkv; i++) { free(d->kv[i].key); free(d->kv[i].val); }
    for (int i = 0; i < d->nsec; i++) free(d->sec[i].name);
    free(d->kv);
    free(d->sec);
    d->kv = NULL; d->sec = NULL; d->nkv = d->nsec = 0;
}
static int ini_fail(const ini_doc *d, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ini_fail(const ini_doc *d, int line, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hat_err(d->err, d->errlen, HAT_ERR_FORMAT, "%s:%d: %s", d->path, line, msg);
}
static int name_ok(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("_.-", *s)) return 0;
    return 1;
}
/* v: the text after '='. Sets *out to an owned copy of the value. */
static int ini_value(const ini_doc *d, int line, const char *key, char *v, char **out) {
    while (isspace((unsigned char)*v)) v++;
    if (*v == '"') {
        char *o = xmalloc(strlen(v) + 1), *w = o, *p = v + 1;
        for (; *p != '"'; p++) {
            if (!*p) { free(o); return ini_fail(d, line, "unterminated quoted value for '%s'", key); }
            if (*p != '\\') { *w++ = *p; continue; }
            switch (*++p) {
            case 'n': *w++ = '\n'; break;
            case 't': *w++ = '\t'; break;
            case 'r': *w++ = '\r'; break;
            case '\\': case '"': *w++ = *p; break;
            default: free(o); return ini_fail(d, line, "unknown escape '\\%c' in the value of '%s'", *p ? *p : ' ', key);
            }
        }
        *w = 0;
        for (p++; isspace((unsigned char)*p); p++) {}
        if (*p && *p != '#' && *p != ';') {
            free(o);
            return ini_fail(d, line, "text after the closing quote of '%s'", key);
        }
        if (!*o) { free(o); return ini_fail(d, line, "empty value for '%s'", key); }
        *out = o;
        return HAT_OK;
    }
    for (char *p = v; *p; p++)            /* inline comment: '#' or ';' after whitespace */
        if ((*p == '#' || *p == ';') && isspace((unsigned char)p[-1])) { *p = 0; break; }
    v = trim(v);
    if (!*v) return ini_fail(d, line, "no value for '%s'", key);
    *out = xstrdup(v);
    return HAT_OK;
}
static int ini_parse(ini_doc *d, char *text) {
    int cap_kv = 0, cap_sec = 0, line = 0;
    const char *cur = NULL;
    for (char *p = text, *nl; p; p = nl ? nl + 1 : NULL) {
        if ((nl = strchr(p, '\n'))) *nl = 0;
        line++;
        char *s = trim(p);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (!close) return ini_fail(d, line, "malformed section header '%s'", s);
            *close = 0;
            char *rest = trim(close + 1), *name = trim(s + 1);
            if (*rest && *rest != '#' && *rest != ';')
                return ini_fail(d, line, "text after the section header [%s]", name);
            if (!name_ok(name)) return ini_fail(d, line, "bad section name [%s]", name);
            for (int i = 0; i < d->nsec; i++)
                if (!strcmp(d->sec[i].name, name))
                    return ini_fail(d, line, "duplicate section [%s] (first at line %d)", name, d->sec[i].line);
            if (d->nsec == cap_sec) d->sec = xrealloc(d->sec, sizeof *d->sec * (size_t)(cap_sec = cap_sec * 2 + 8));
            d->sec[d->nsec] = (ini_sec){ xstrdup(name), line };
            cur = d->sec[d->nsec++].name;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) return ini_fail(d, line, "expected 'key = value' or '[section]', got '%s'", s);
        *eq = 0;
        char *key = trim(s), *val = NULL;
        if (!name_ok(key)) return ini_fail(d, line, "bad key name '%s'", key);
        if (!cur) return ini_fail(d, line, "key '%s' before any [section]", key);
        for (int i = 0; i < d->nkv; i++)
            if (d->kv[i].sec == cur && !strcmp(d->kv[i].key, key))
                return ini_fail(d, line, "duplicate key '%s' in [%s] (first at line %d)", key, cur, d->kv[i].line);
        int rc = ini_value(d, line, key, eq + 1, &val);
        if (rc) return rc;
        if (d->nkv == cap_kv) d->kv = xrealloc(d->kv, sizeof *d->kv * (size_t)(cap_kv = cap_kv * 2 + 16));
        d->kv[d->nkv++] = (ini_kv){ cur, xstrdup(key), val, line };
    }
    return HAT_OK;
}
static int ini_load(ini_doc *d, const char *path, const char *what) {
    char *text;
    d->path = path;
    int rc = hat_read_text(path, what, &text, NULL, d->err, d->errlen);
    if (rc) return rc;
    rc = ini_parse(d, text + (strncmp(text, "\xEF\xBB\xBF", 3) ? 0 : 3));   /* skip a UTF-8 byte order mark */
    free(text);
    return rc;
}
static const ini_kv *ini_find(const ini_doc *d, const char *sec, const char *key) {
    for (int i = 0; i < d->nkv; i++)
        if (!strcmp(d->kv[i].sec, sec) && !strcmp(d->kv[i].key, key)) return &d->kv[i];
    return NULL;
}

/* Unknown sections and keys; keys_for(section) gives the allowed keys or NULL. */
typedef const char *const *(*keys_fn)(const char *sec);
static int ini_check(const ini_doc *d, keys_fn keys_for, const char *sections_hint) {
    char list[384];
    for (int i = 0; i < d->nsec; i++)
        if (!keys_for(d->sec[i].name))
            return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s:%d: unknown section [%s] (known: %s)", d->path,
                           d->sec[i].line, d->sec[i].name, sections_hint);
    for (int i = 0; i < d->nkv; i++) {
        const char *const *keys = keys_for(d->kv[i].sec);
        if (in_list(keys, d->kv[i].key) < 0) {
            join(list, sizeof list, keys, -1, ", ");
            return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s:%d: unknown key '%s' in [%s] (known: %s)", d->path,
                           d->kv[i].line, d->kv[i].key, d->kv[i].sec, list);
        }
    }
    return HAT_OK;
}

/* ---------------------------------------------------------------- typed getters */

/* An error about a value: "file:line: [sec] key = 'v': msg", or for a default
 * (kv == NULL) "file: [sec] key (default): msg". */
static int fail(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (kv)
        return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s:%d: [%s] %s = '%s': %s", d->path, kv->line, kv->sec, kv->key,
                       kv->val, msg);
    return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s: [%s] %s (default): %s", d->path, sec, key, msg);
}
#define AT(sec, key) ini_find(d, sec, key), sec, key

static int v_int(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, int def, int lo, int *out) {
    *out = def;
    if (kv && !parse_int(kv->val, out)) return fail(d, kv, sec, key, "not an integer");
    if (*out < lo) return fail(d, kv, sec, key, "%d is too small: must be >= %d", *out, lo);
    return HAT_OK;
}
/* lo_open: lo itself excluded; hi = INFINITY for no upper bound */
static int v_dbl(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, double def, double lo,
                 int lo_open, double hi, double *out) {
    *out = def;
    if (kv && !parse_double(kv->val, out)) return fail(d, kv, sec, key, "not a number");
    if ((lo_open ? *out > lo : *out >= lo) && *out <= hi) return HAT_OK;
    if (isinf(hi)) return fail(d, kv, sec, key, "%g out of range: must be %s %g", *out, lo_open ? ">" : ">=", lo);
    return fail(d, kv, sec, key, "%g out of range: must be in %c%g, %g]", *out, lo_open ? '(' : '[', lo, hi);
}
static int v_bool(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, int def, int *out) {
    static const char *const yes[] = {"on", "true", "1"}, *const no[] = {"off", "false", "0"};
    *out = def;
    if (!kv) return HAT_OK;
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(kv->val, yes[i])) return *out = 1, HAT_OK;
        if (!strcasecmp(kv->val, no[i])) return *out = 0, HAT_OK;
    }
    return fail(d, kv, sec, key, "not a boolean: expected on|off|true|false|1|0");
}
static int v_enum(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *const *names,
                  int def, int *out) {
    char list[256];
    *out = def;
    if (!kv || (*out = in_list(names, kv->val)) >= 0) return HAT_OK;
    join(list, sizeof list, names, -1, "|");
    return fail(d, kv, sec, key, "expected one of %s", list);
}
static int v_str(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *def, char *dst,
                 size_t cap) {
    const char *v = kv ? kv->val : def;
    if (strlen(v) >= cap) return fail(d, kv, sec, key, "too long (at most %zu characters)", cap - 1);
    strcpy(dst, v);
    return HAT_OK;
}

/* ---------------------------------------------------------------- schema of the run file */

static const char *const K_RUN[] = {"mode", "seed", "trace", NULL};
static const char *const K_MODEL[] = {"path", "ctx", "device_threads", "cloud_threads", NULL};
static const char *const K_SPLIT[] = {"a", "b", NULL};
static const char *const K_CLOUD[] = {"ranks", "scheme", "tp", "tp_mode", "max_batch_tokens", "backend", "gpu_dtype", "gpu", "gpu_graphs", "gpu_gemv", NULL};
static const char *const K_TRANSPORT[] = {"wire_dtype", "chunk_tokens", "inflight", "emulate_links", NULL};
static const char *const K_PROFILES[] = {"links", "devices", NULL};
static const char *const K_DEVICES[] = {"count", "link", "compute", "prompts", "prompt", "chat", "max_tokens",
                                        "start_interval_s", "temp", "top_k", "top_p", NULL};
static const char *const K_DEVICE[] = {"link", "compute", "prompt", "chat", "max_tokens", "start_s", "temp",
                                       "top_k", "top_p", NULL};
static const char *const K_FAULT[] = {"kind", "device", "at_seq", NULL};
static const char *const K_HAT[] = {"adapter", "gamma", "adaptive", "gamma_min", "gamma_max", NULL};
static const char *const K_LINK[] = {"up_mbps", "down_mbps", "latency_ms", "jitter_ms", "jitter", "source", NULL};
static const char *const K_COMPUTE[] = {"mem_bw_gbs", "efficiency", "tflops", "source", NULL};

static const char *const MODES[] = {"ushape", "hat", "cloud-only", NULL};
static const char *const SCHEMES[] = {"replica", NULL};
static const char *const TP_MODES[] = {"exact", "allreduce", NULL};   /* tp_mode (tp.h) */
static const char *const BACKENDS[] = {"cpu", "cuda", "auto", NULL};   /* = backend_kind */
static const char *const GPU_DTYPES[] = {"fp16", "bf16", NULL};         /* = backend_dtype */
static const char *const GPU_GEMV[] = {"auto", "off", "on", NULL};     /* = BACKEND_GEMV_* */
#define WIRES wire_dtype_names
#define JITTERS jitter_dist_names
#define FAULTS fault_kind_names

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
static const char *const *compute_keys(const char *sec) { (void)sec; return K_COMPUTE; }

/* ---------------------------------------------------------------- profiles and prompts */

typedef struct {
    link_profile *link;
    compute_profile *comp;
    char **prompts;
    int nlink, ncomp, nprompts;
    /* [devices] level values, the defaults of every device */
    char link_name[CFG_NAME], comp_name[CFG_NAME], prompts_path[CFG_PATH];
    const char *prompt;      /* borrowed from the doc; NULL when unset */
    int chat, max_tokens, top_k;
    double interval, temp, top_p;
} aux_t;

/* A links.ini (links = 1) or devices.ini file: one profile per section, all keys required
 * but jitter_ms / jitter. */
static int load_profiles(aux_t *a, const char *path, int links, char *err, size_t errlen) {
    static const char *const req_link[] = {"up_mbps", "down_mbps", "latency_ms", "source", NULL};
    ini_doc d0 = {.err = err, .errlen = errlen}, *d = &d0;
    int rc = ini_load(d, path, links ? "links profiles file" : "devices profiles file");
    if (!rc) rc = ini_check(d, links ? link_keys : compute_keys, "any profile name");
    if (!rc && !d->nsec) rc = hat_err(err, errlen, HAT_ERR_ARG, "%s: no profiles", path);
    if (!rc && links) a->link = xcalloc((size_t)d->nsec, sizeof *a->link);
    if (!rc && !links) a->comp = xcalloc((size_t)d->nsec, sizeof *a->comp);
    for (int i = 0; !rc && i < d->nsec; i++) {
        const ini_sec *sc = &d->sec[i];
        const char *s = sc->name, *const *req = links ? req_link : K_COMPUTE;
        for (int k = 0; req[k] && !rc; k++)
            if (!ini_find(d, s, req[k]))
                rc = hat_err(err, errlen, HAT_ERR_ARG, "%s:%d: profile [%s] lacks the required key '%s'", path, sc->line,
                             s, req[k]);
        if (!rc && strlen(s) >= CFG_NAME)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "%s:%d: profile name [%s] is too long", path, sc->line, s ? s : "?");
        if (!rc && !links && !strcmp(s, "none"))   /* compute = none means no emulation */
            rc = hat_err(err, errlen, HAT_ERR_ARG, "%s:%d: profile name [none] is reserved", path, sc->line);
        if (rc) break;
        if (links) {
            link_profile *p = &a->link[a->nlink++];
            int j = 0;
            strcpy(p->name, s);
            if (!(rc = v_dbl(d, AT(s, "up_mbps"), 0, 0, 1, INFINITY, &p->up_mbps)) &&
                !(rc = v_dbl(d, AT(s, "down_mbps"), 0, 0, 1, INFINITY, &p->down_mbps)) &&
                !(rc = v_dbl(d, AT(s, "latency_ms"), 0, 0, 0, INFINITY, &p->latency_ms)) &&
                !(rc = v_dbl(d, AT(s, "jitter_ms"), 0, 0, 0, INFINITY, &p->jitter_ms)) &&
                !(rc = v_enum(d, AT(s, "jitter"), JITTERS, JITTER_NONE, &j)))
                rc = v_str(d, AT(s, "source"), "", p->source, sizeof p->source);
            p->jitter = (jitter_dist)j;
        } else {
            compute_profile *p = &a->comp[a->ncomp++];
            strcpy(p->name, s);
            if (!(rc = v_dbl(d, AT(s, "mem_bw_gbs"), 0, 0, 1, INFINITY, &p->mem_bw_gbs)) &&
                !(rc = v_dbl(d, AT(s, "efficiency"), 0, 0, 1, 1, &p->efficiency)) &&
                !(rc = v_dbl(d, AT(s, "tflops"), 0, 0, 1, INFINITY, &p->tflops)))
                rc = v_str(d, AT(s, "source"), "", p->source, sizeof p->source);
        }
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

static int load_scalars(hat_config *c, const ini_doc *d, aux_t *a) {
    int rc, mode, scheme, wire, fault, backend, gpu_dtype;
    if (!ini_find(d, "model", "path") || !ini_find(d, "devices", "count"))
        return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s: missing required key %s", d->path,
                       ini_find(d, "model", "path") ? "[devices] count" : "[model] path");
    if ((rc = v_enum(d, AT("run", "mode"), MODES, 0, &mode)) ||
        (rc = v_str(d, AT("run", "trace"), "results/trace.h5", c->trace, sizeof c->trace)) ||
        (rc = v_str(d, AT("model", "path"), "", c->model_path, sizeof c->model_path)) ||
        (rc = v_int(d, AT("model", "ctx"), 1024, 16, &c->ctx)) ||
        (rc = v_int(d, AT("model", "device_threads"), 1, 1, &c->device_threads)) ||
        (rc = v_int(d, AT("model", "cloud_threads"), 1, 1, &c->cloud_threads)) ||
        (rc = v_int(d, AT("split", "a"), 2, INT_MIN, &c->a)) ||
        (rc = v_int(d, AT("split", "b"), 2, INT_MIN, &c->b)) ||
        (rc = v_int(d, AT("cloud", "ranks"), 1, 1, &c->n_cloud)) ||
        (rc = v_enum(d, AT("cloud", "scheme"), SCHEMES, 0, &scheme)) ||
        (rc = v_int(d, AT("cloud", "tp"), 1, 1, &c->tp)) ||
        (rc = v_enum(d, AT("cloud", "tp_mode"), TP_MODES, 0, &c->tp_mode)) ||
        (rc = v_enum(d, AT("transport", "wire_dtype"), WIRES, WIRE_F32, &wire)) ||
        (rc = v_int(d, AT("transport", "chunk_tokens"), 32, 2, &c->chunk_tokens)) ||
        (rc = v_int(d, AT("transport", "inflight"), 4, 1, &c->inflight)) ||
        (rc = v_bool(d, AT("transport", "emulate_links"), 1, &c->emulate_links)) ||
        (rc = v_int(d, AT("cloud", "max_batch_tokens"), 256, 1, &c->max_batch_tokens)) ||
        (rc = v_enum(d, AT("cloud", "backend"), BACKENDS, 0, &backend)) ||
        (rc = v_enum(d, AT("cloud", "gpu_dtype"), GPU_DTYPES, 0, &gpu_dtype)) ||
        (rc = v_int(d, AT("cloud", "gpu"), -1, -1, &c->gpu)) ||
        (rc = v_bool(d, AT("cloud", "gpu_graphs"), 1, &c->gpu_graphs)) ||
        (rc = v_enum(d, AT("cloud", "gpu_gemv"), GPU_GEMV, 0, &c->gpu_gemv)) ||
        (rc = v_str(d, AT("profiles", "links"), "configs/links.ini", c->links_path, sizeof c->links_path)) ||
        (rc = v_str(d, AT("profiles", "devices"), "configs/devices.ini", c->devices_path, sizeof c->devices_path)) ||
        (rc = v_int(d, AT("devices", "count"), 0, 1, &c->n_devices)) ||
        (rc = v_str(d, AT("devices", "link"), "ethernet", a->link_name, sizeof a->link_name)) ||
        (rc = v_str(d, AT("devices", "compute"), "none", a->comp_name, sizeof a->comp_name)) ||
        (rc = v_str(d, AT("devices", "prompts"), "", a->prompts_path, sizeof a->prompts_path)) ||
        (rc = v_bool(d, AT("devices", "chat"), 1, &a->chat)) ||
        (rc = v_int(d, AT("devices", "max_tokens"), 32, 1, &a->max_tokens)) ||
        (rc = v_dbl(d, AT("devices", "start_interval_s"), 0, 0, 0, INFINITY, &a->interval)) ||
        (rc = v_dbl(d, AT("devices", "temp"), 0, 0, 0, INFINITY, &a->temp)) ||
        (rc = v_int(d, AT("devices", "top_k"), 0, 0, &a->top_k)) ||
        (rc = v_dbl(d, AT("devices", "top_p"), 1, 0, 1, 1, &a->top_p)) ||
        (rc = v_enum(d, AT("fault", "kind"), FAULTS, FAULT_NONE, &fault)) ||
        (rc = v_int(d, AT("fault", "device"), 0, 0, &c->fault_device)) ||
        (rc = v_int(d, AT("fault", "at_seq"), 1, 0, &c->fault_seq)) ||
        (rc = v_str(d, AT("hat", "adapter"), "identity", c->adapter_path, sizeof c->adapter_path)) ||
        (rc = v_int(d, AT("hat", "gamma"), 4, 1, &c->gamma)) ||
        (rc = v_bool(d, AT("hat", "adaptive"), 0, &c->gamma_adaptive)) ||
        (rc = v_int(d, AT("hat", "gamma_min"), 1, 1, &c->gamma_min)) ||
        (rc = v_int(d, AT("hat", "gamma_max"), 8, 1, &c->gamma_max)))
        return rc;
    if (c->gamma > HAT_GAMMA_LIMIT) return fail(d, AT("hat", "gamma"), "at most %d", HAT_GAMMA_LIMIT);
    if (c->gamma_max > HAT_GAMMA_LIMIT) return fail(d, AT("hat", "gamma_max"), "at most %d", HAT_GAMMA_LIMIT);
    if (c->gamma_min > c->gamma_max)
        return fail(d, AT("hat", "gamma_min"), "%d is above [hat] gamma_max = %d", c->gamma_min, c->gamma_max);
    const ini_kv *seed = ini_find(d, "run", "seed");
    c->seed = 1;
    if (seed && !parse_u64(seed->val, &c->seed)) return fail(d, seed, "run", "seed", "not an unsigned 64-bit integer");
    strcpy(c->mode, MODES[mode]);
    c->run_mode = (run_mode)mode;
    strcpy(c->scheme, SCHEMES[scheme]);
    c->backend = backend;
    c->gpu_dtype = gpu_dtype;
    c->wire = (wire_dtype)wire;
    c->fault = (fault_kind)fault;
    const ini_kv *p = ini_find(d, "devices", "prompt");
    a->prompt = p ? p->val : NULL;
    if (c->n_cloud % c->tp)
        return fail(d, AT("cloud", "tp"), "[cloud] ranks = %d is not a multiple of the tensor-parallel group size %d",
                    c->n_cloud, c->tp);
    if (c->tp > 1 && c->run_mode == RUN_CLOUD_ONLY)
        return fail(d, AT("cloud", "tp"), "tensor parallelism is for the cloud's middle submodel (modes ushape and hat); "
                    "the cloud-only baseline runs whole models per cloud rank");
    if (c->max_batch_tokens < c->chunk_tokens)
        return fail(d, AT("cloud", "max_batch_tokens"), "%d is below [transport] chunk_tokens = %d",
                    c->max_batch_tokens, c->chunk_tokens);
    if (c->n_devices > MAX_DEVICES) return fail(d, AT("devices", "count"), "at most %d devices", MAX_DEVICES);
    if (c->fault_device >= c->n_devices)
        return fail(d, AT("fault", "device"), "must be in [0, %d) ([devices] count = %d)", c->n_devices, c->n_devices);
    for (int i = 0, n; i < d->nsec; i++)
        if (device_section(d->sec[i].name, &n) && (n < 0 || n >= c->n_devices))
            return hat_err(d->err, d->errlen, HAT_ERR_ARG,
                           "%s:%d: section [%s] is out of range: [devices] count = %d, so N must be in [0, %d)", d->path,
                           d->sec[i].line, d->sec[i].name, c->n_devices, c->n_devices);
    return HAT_OK;
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
    return fail(d, kv, "devices", key, "unknown %s profile; known in %s: %s%s", key, file, list,
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
    if (kv && (rc = v_str(d, kv, sec, "link", "", name, sizeof name))) return rc;
    for (k = 0; k < a->nlink && strcmp(a->link[k].name, name); k++) {}
    if (k == a->nlink) return unknown_profile(d, kv, "link", c->links_path, a->link[0].name, sizeof *a->link, a->nlink);
    v->link = a->link[k];
    if (!(kv = ini_find(d, sec, "compute"))) kv = ini_find(d, "devices", "compute");
    strcpy(name, a->comp_name);
    if (kv && (rc = v_str(d, kv, sec, "compute", "", name, sizeof name))) return rc;
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
    if ((rc = v_bool(d, AT(sec, "chat"), a->chat, &v->chat)) ||
        (rc = v_int(d, AT(sec, "max_tokens"), a->max_tokens, 1, &v->max_tokens)) ||
        (rc = v_int(d, AT(sec, "top_k"), a->top_k, 0, &v->top_k)) ||
        (rc = v_dbl(d, AT(sec, "start_s"), i * a->interval, 0, 0, INFINITY, &v->start_s)))
        return rc;
    if ((rc = v_dbl(d, AT(sec, "temp"), a->temp, 0, 0, INFINITY, &t))) return rc;
    v->temp = (float)t;
    if ((rc = v_dbl(d, AT(sec, "top_p"), a->top_p, 0, 1, 1, &t))) return rc;
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
              num(t4, 32, l->jitter_ms, 0), JITTERS[l->jitter]);
    if (with_source) { sb_printf(b, "#   source: "); sb_comment_text(b, l->source); sb_printf(b, "\n"); }
}
static void sb_comp(sbuf *b, const compute_profile *p, const char *file, int with_source) {
    char t1[32], t2[32], t3[32];
    if (!strcmp(p->name, "none")) { sb_printf(b, "# compute none: no compute emulation\n"); return; }
    sb_printf(b, "# compute %s (%s): mem_bw_gbs = %s, efficiency = %s, tflops = %s\n", p->name, file,
              num(t1, 32, p->mem_bw_gbs, 0), num(t2, 32, p->efficiency, 0), num(t3, 32, p->tflops, 0));
    if (with_source) { sb_printf(b, "#   source: "); sb_comment_text(b, p->source); sb_printf(b, "\n"); }
}
static char *dump_resolved(const hat_config *c, const aux_t *a) {
    sbuf b = {0};
    char t[32];
    sb_printf(&b, "# hat resolved configuration of %s\n", c->path);
    sb_printf(&b, "# every key with its final value (defaults, overrides and the prompts file applied);\n"
                  "# loading this text again gives the same configuration.\n");
    sb_printf(&b, "\n[run]\nmode = %s\nseed = %" PRIu64 "\n", c->mode, c->seed);
    sb_kv(&b, "trace", c->trace, 0);
    sb_printf(&b, "\n[model]\n");
    sb_kv(&b, "path", c->model_path, 0);
    sb_printf(&b, "ctx = %d\ndevice_threads = %d\ncloud_threads = %d\n", c->ctx, c->device_threads, c->cloud_threads);
    sb_printf(&b, "\n[split]\na = %d\nb = %d\n", c->a, c->b);
    sb_printf(&b, "\n[cloud]\nranks = %d\nscheme = %s\ntp = %d\ntp_mode = %s\nmax_batch_tokens = %d\nbackend = %s\ngpu_dtype = %s\ngpu = %d\ngpu_graphs = %s\ngpu_gemv = %s\n",
              c->n_cloud, c->scheme, c->tp, TP_MODES[c->tp_mode], c->max_batch_tokens, BACKENDS[c->backend], GPU_DTYPES[c->gpu_dtype], c->gpu,
              c->gpu_graphs ? "on" : "off", GPU_GEMV[c->gpu_gemv]);
    sb_printf(&b, "\n[transport]\nwire_dtype = %s\nchunk_tokens = %d\ninflight = %d\nemulate_links = %s\n",
              wire_dtype_name(c->wire), c->chunk_tokens, c->inflight, c->emulate_links ? "on" : "off");
    sb_printf(&b, "\n[profiles]\n");
    sb_kv(&b, "links", c->links_path, 0);
    sb_kv(&b, "devices", c->devices_path, 0);
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
        sb_printf(&b, "chat = %s\nmax_tokens = %d\n", v->chat ? "on" : "off", v->max_tokens);
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
    for (int i = 0; i < c->n_devices; i++) {   /* each profile once, at its first use */
        int seen_l = 0, seen_c = 0;
        for (int j = 0; j < i; j++) {
            seen_l |= !strcmp(c->dev[j].link.name, c->dev[i].link.name);
            seen_c |= !strcmp(c->dev[j].compute.name, c->dev[i].compute.name);
        }
        if (!seen_l) sb_link(&b, &c->dev[i].link, c->links_path, 1);
        if (!seen_c) sb_comp(&b, &c->dev[i].compute, c->devices_path, 1);
    }
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

