/* ini.c — see ini.h. */
#include "core/ini.h"
#include "core/common.h"
#include "core/parse.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}
int ini_name_index(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], s)) return i;
    return -1;
}
/* "a<sep>b<sep>c" into buf (truncated with "..." when long) */
void ini_join(char *buf, size_t cap, const char *const *names, int n, const char *sep) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; (n < 0 ? names[i] != NULL : i < n); i++) {
        int w = snprintf(buf + len, cap - len, "%s%s", i ? sep : "", names[i]);
        if (w < 0 || (size_t)w >= cap - len) { if (cap > 4) strcpy(buf + cap - 4, "..."); return; }
        len += (size_t)w;
    }
}

/* ---------------------------------------------------------------- INI reader */

void ini_free(ini_doc *d) {
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
int ini_parse(ini_doc *d, char *text) {
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
int ini_load(ini_doc *d, const char *path, const char *what) {
    char *text;
    d->path = path;
    int rc = hat_read_text(path, what, &text, NULL, d->err, d->errlen);
    if (rc) return rc;
    rc = ini_parse(d, text + (strncmp(text, "\xEF\xBB\xBF", 3) ? 0 : 3));   /* skip a UTF-8 byte order mark */
    free(text);
    return rc;
}
const ini_kv *ini_find(const ini_doc *d, const char *sec, const char *key) {
    for (int i = 0; i < d->nkv; i++)
        if (!strcmp(d->kv[i].sec, sec) && !strcmp(d->kv[i].key, key)) return &d->kv[i];
    return NULL;
}

/* Unknown sections and keys; keys_for(section) gives the allowed keys or NULL. */
int ini_check(const ini_doc *d, ini_keys_fn keys_for, const char *sections_hint) {
    char list[384];
    for (int i = 0; i < d->nsec; i++)
        if (!keys_for(d->sec[i].name))
            return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s:%d: unknown section [%s] (known: %s)", d->path,
                           d->sec[i].line, d->sec[i].name, sections_hint);
    for (int i = 0; i < d->nkv; i++) {
        const char *const *keys = keys_for(d->kv[i].sec);
        if (ini_name_index(keys, d->kv[i].key) < 0) {
            ini_join(list, sizeof list, keys, -1, ", ");
            return hat_err(d->err, d->errlen, HAT_ERR_ARG, "%s:%d: unknown key '%s' in [%s] (known: %s)", d->path,
                           d->kv[i].line, d->kv[i].key, d->kv[i].sec, list);
        }
    }
    return HAT_OK;
}

/* ---------------------------------------------------------------- typed getters */

/* An error about a value: "file:line: [sec] key = 'v': msg", or for a default
 * (kv == NULL) "file: [sec] key (default): msg". */
int ini_fail_value(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *fmt, ...) {
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

int ini_int(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, int def, int lo, int *out) {
    *out = def;
    if (kv && !parse_int(kv->val, out)) return ini_fail_value(d, kv, sec, key, "not an integer");
    if (*out < lo) return ini_fail_value(d, kv, sec, key, "%d is too small: must be >= %d", *out, lo);
    return HAT_OK;
}
/* lo_open: lo itself excluded; hi = INFINITY for no upper bound */
int ini_double(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, double def, double lo,
                 int lo_open, double hi, double *out) {
    *out = def;
    if (kv && !parse_double(kv->val, out)) return ini_fail_value(d, kv, sec, key, "not a number");
    if ((lo_open ? *out > lo : *out >= lo) && *out <= hi) return HAT_OK;
    if (isinf(hi)) return ini_fail_value(d, kv, sec, key, "%g out of range: must be %s %g", *out, lo_open ? ">" : ">=", lo);
    return ini_fail_value(d, kv, sec, key, "%g out of range: must be in %c%g, %g]", *out, lo_open ? '(' : '[', lo, hi);
}
int ini_bool(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, int def, int *out) {
    static const char *const yes[] = {"on", "true", "1"}, *const no[] = {"off", "false", "0"};
    *out = def;
    if (!kv) return HAT_OK;
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(kv->val, yes[i])) return *out = 1, HAT_OK;
        if (!strcasecmp(kv->val, no[i])) return *out = 0, HAT_OK;
    }
    return ini_fail_value(d, kv, sec, key, "not a boolean: expected on|off|true|false|1|0");
}
int ini_enum(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *const *names,
                  int def, int *out) {
    char list[256];
    *out = def;
    if (!kv || (*out = ini_name_index(names, kv->val)) >= 0) return HAT_OK;
    ini_join(list, sizeof list, names, -1, "|");
    return ini_fail_value(d, kv, sec, key, "expected one of %s", list);
}
int ini_str(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *def, char *dst,
                 size_t cap) {
    const char *v = kv ? kv->val : def;
    if (strlen(v) >= cap) return ini_fail_value(d, kv, sec, key, "too long (at most %zu characters)", cap - 1);
    strcpy(dst, v);
    return HAT_OK;
}
