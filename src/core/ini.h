/* ini.h — a strict INI reader and typed getters, for the run configuration and its profiles files.
 *
 * The reader turns text into (section, key, value, line) entries, rejecting malformed lines,
 * repeated sections and repeated keys; ini_check rejects unknown sections and keys; the typed
 * getters fill values with defaults, every error naming file:line, key and value.
 *
 * Lines: `[section]` headers, `key = value`, `#` or `;` comments (a whole line, or after
 * whitespace), blank lines; a UTF-8 byte order mark is skipped. Values: surrounding blanks are
 * dropped and an unquoted value ends at a '#' or ';' that follows whitespace (an inline comment).
 * A value in double quotes is taken verbatim with the escapes \n \t \r \\ \" . Empty values are
 * errors. Names (sections, keys) are letters, digits and "_.-".
 */
#ifndef HAT_INI_H
#define HAT_INI_H

#include <stddef.h>

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

/* Reads and parses path (what names it in messages: "config file"); errors go to d->err. */
int ini_load(ini_doc *d, const char *path, const char *what);
int ini_parse(ini_doc *d, char *text);   /* text is modified */
void ini_free(ini_doc *d);
const ini_kv *ini_find(const ini_doc *d, const char *sec, const char *key);

/* Unknown sections and keys; keys_for(section) gives the allowed keys (NULL-terminated) or NULL
 * for an unknown section; sections_hint lists the known sections in the message. */
typedef const char *const *(*ini_keys_fn)(const char *sec);
int ini_check(const ini_doc *d, ini_keys_fn keys_for, const char *sections_hint);

/* An error about a value: "file:line: [sec] key = 'v': msg", or for a default (kv == NULL)
 * "file: [sec] key (default): msg". Returns HAT_ERR_ARG. */
int ini_fail_value(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Typed getters: *out = def when kv is NULL (the key is absent), else the parsed value, checked. */
int ini_int(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, int def, int lo, int *out);
/* lo_open: lo itself excluded; hi = INFINITY for no upper bound */
int ini_double(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, double def, double lo,
               int lo_open, double hi, double *out);
int ini_bool(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, int def, int *out);
/* names: NULL-terminated; *out = the index of the value in names */
int ini_enum(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *const *names,
             int def, int *out);
int ini_str(const ini_doc *d, const ini_kv *kv, const char *sec, const char *key, const char *def, char *dst,
            size_t cap);

/* index of s in the NULL-terminated names, or -1 */
int ini_name_index(const char *const *names, const char *s);
/* "a<sep>b<sep>c" into buf (truncated with "..." when long); n < 0: names is NULL-terminated */
void ini_join(char *buf, size_t cap, const char *const *names, int n, const char *sep);

#endif
