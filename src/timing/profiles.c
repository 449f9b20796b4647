/* profiles.c — reading the hardware profiles and model shapes files (profiles.h). */
#include "timing/profiles.h"

#include "core/common.h"
#include "core/ini.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AT(sec, key) ini_find(d, sec, key), sec, key

static const char *const K_DEV[] = {"mem_bw_gbs", "efficiency", "tflops", "flops_efficiency", "mem_gb", "source",
                                    "attn_tflops", NULL};
static const char *const K_SRV[] = {"mem_bw_gbs", "efficiency", "tflops", "flops_efficiency", "mem_gb", "gpus",
                                    "link_gbs", "link_latency_us", "source", "attn_tflops", NULL};
static const char *const K_SHAPE[] = {"layers", "hidden", "ffn", "heads", "kv_heads", "vocab", "tied_embeddings",
                                      "bytes_per_weight", "kv_bytes", "source", NULL};
static const char *const *dev_keys(const char *sec) { (void)sec; return K_DEV; }
static const char *const *srv_keys(const char *sec) { (void)sec; return K_SRV; }
static const char *const *shape_keys(const char *sec) { (void)sec; return K_SHAPE; }

/* every section has every key of req but `optional`; names fit and are not "none" */
static int check_sections(const ini_doc *d, const char *const *req, const char *optional, const char *what) {
    if (!d->nsec) return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s: no %s", d->path, what);
    for (int i = 0; i < d->nsec; i++) {
        const ini_sec *sc = &d->sec[i];
        if (strlen(sc->name) >= COST_NAME)
            return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s:%d: name [%s] is too long (at most %d characters)",
                           d->path, sc->line, sc->name, COST_NAME - 1);
        if (!strcmp(sc->name, "none"))
            return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s:%d: the name [none] is reserved", d->path, sc->line);
        for (int k = 0; req[k]; k++)
            if ((!optional || strcmp(req[k], optional)) && !ini_find(d, sc->name, req[k]))
                return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s:%d: [%s] lacks the required key '%s'", d->path,
                               sc->line, sc->name, req[k]);
    }
    return HAT_OK;
}

static int load_hw(const ini_doc *d, const char *s, int kind, hw_profile *p) {
    int rc;
    memset(p, 0, sizeof *p);
    strcpy(p->name, s);
    p->kind = kind;
    p->gpus = 1;
    if ((rc = ini_double(d, AT(s, "mem_bw_gbs"), 0, 0, 1, INFINITY, &p->mem_bw_gbs)) ||
        (rc = ini_double(d, AT(s, "efficiency"), 0, 0, 1, 1, &p->efficiency)) ||
        (rc = ini_double(d, AT(s, "tflops"), 0, 0, 1, INFINITY, &p->tflops)) ||
        (rc = ini_double(d, AT(s, "flops_efficiency"), 0, 0, 1, 1, &p->flops_efficiency)) ||
        (rc = ini_double(d, AT(s, "mem_gb"), 0, 0, 1, INFINITY, &p->mem_gb)) ||
        (rc = ini_double(d, AT(s, "attn_tflops"), 0, 0, 0, INFINITY, &p->attn_tflops)))
        return rc;
    if (kind == HW_SERVER &&
        ((rc = ini_int(d, AT(s, "gpus"), 1, 1, &p->gpus)) ||
         (rc = ini_double(d, AT(s, "link_gbs"), 0, 0, 1, INFINITY, &p->link_gbs)) ||
         (rc = ini_double(d, AT(s, "link_latency_us"), 0, 0, 0, INFINITY, &p->link_latency_us))))
        return rc;
    return ini_str(d, AT(s, "source"), "", p->source, sizeof p->source);
}

int hw_profiles_load(const char *path, int kind, hw_profile **out, int *n, char *err, size_t errlen) {
    ini_doc d = {.err = err, .errlen = errlen};
    const char *what = kind == HW_SERVER ? "servers profiles file" : "devices profiles file";
    *out = NULL;
    *n = 0;
    int rc = ini_load(&d, path, what);
    if (!rc) rc = ini_check(&d, kind == HW_SERVER ? srv_keys : dev_keys, "any profile name");
    if (!rc) rc = check_sections(&d, kind == HW_SERVER ? K_SRV : K_DEV, "attn_tflops", "profiles");
    if (!rc) *out = xcalloc((size_t)d.nsec, sizeof **out);
    for (int i = 0; !rc && i < d.nsec; i++) rc = load_hw(&d, d.sec[i].name, kind, &(*out)[(*n)++]);
    ini_free(&d);
    if (rc) { free(*out); *out = NULL; *n = 0; }
    return rc;
}

static int load_shape(const ini_doc *d, const char *s, model_shape *p) {
    int rc;
    memset(p, 0, sizeof *p);
    strcpy(p->name, s);
    if ((rc = ini_int(d, AT(s, "layers"), 0, 1, &p->layers)) || (rc = ini_int(d, AT(s, "hidden"), 0, 1, &p->hidden)) ||
        (rc = ini_int(d, AT(s, "ffn"), 0, 1, &p->ffn)) || (rc = ini_int(d, AT(s, "heads"), 0, 1, &p->heads)) ||
        (rc = ini_int(d, AT(s, "kv_heads"), 0, 1, &p->kv_heads)) || (rc = ini_int(d, AT(s, "vocab"), 0, 1, &p->vocab)) ||
        (rc = ini_bool(d, AT(s, "tied_embeddings"), 0, &p->tied)) ||
        (rc = ini_double(d, AT(s, "bytes_per_weight"), 0, 0, 1, 64, &p->bytes_per_weight)) ||
        (rc = ini_double(d, AT(s, "kv_bytes"), 2, 0, 1, 64, &p->kv_bytes)) ||
        (rc = ini_str(d, AT(s, "source"), "", p->source, sizeof p->source)))
        return rc;
    if (p->hidden % p->heads || p->heads % p->kv_heads)
        return ini_fail_value(d, ini_find(d, s, "heads"), s, "heads",
                              "hidden (%d) must be a multiple of heads and heads a multiple of kv_heads (%d)", p->hidden,
                              p->kv_heads);
    return HAT_OK;
}

int shapes_load(const char *path, model_shape **out, int *n, char *err, size_t errlen) {
    ini_doc d = {.err = err, .errlen = errlen};
    *out = NULL;
    *n = 0;
    int rc = ini_load(&d, path, "shapes file");
    if (!rc) rc = ini_check(&d, shape_keys, "any shape name");
    if (!rc) rc = check_sections(&d, K_SHAPE, "kv_bytes", "shapes");
    if (!rc) *out = xcalloc((size_t)d.nsec, sizeof **out);
    for (int i = 0; !rc && i < d.nsec; i++) rc = load_shape(&d, d.sec[i].name, &(*out)[(*n)++]);
    ini_free(&d);
    if (rc) { free(*out); *out = NULL; *n = 0; }
    return rc;
}
