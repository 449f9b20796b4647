/* prompt.c — see prompt.h. */
#include "engine/prompt.h"
#include "core/common.h"
#include "core/crc32c.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* one line in place: trimmed, "\n" sequences turned into newlines; returns its start ("" if blank) */
static char *prompt_line(char *p) {
    while (isspace((unsigned char)*p)) p++;
    char *e = p + strlen(p), *w = p;
    while (e > p && isspace((unsigned char)e[-1])) *--e = 0;
    for (const char *r = p; *r; r++) {
        if (r[0] == '\\' && r[1] == 'n') { *w++ = '\n'; r++; }
        else *w++ = *r;
    }
    *w = 0;
    return p;
}

static int blank(const char *s) {
    while (isspace((unsigned char)*s)) s++;
    return !*s;
}

static int ends_with(const char *s, const char *tail) {
    const size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

/* what a parsed JSON value is, for the message about a line that is not an object */
static const char *json_kind(const cJSON *v) {
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    return "null";
}

/* whether a JSON text holds the escape \u0000 (cJSON would end the string there, silently) */
static int has_nul_escape(const char *s) {
    for (; *s; s++)
        if (*s == '\\') {
            if (s[1] == 'u' && !strncmp(s + 2, "0000", 4)) return 1;
            if (s[1]) s++;   /* the escaped character: "\\u0000" is a backslash and text */
        }
    return 0;
}

/* the members of object v named "prompt" */
static int count_prompts(const cJSON *v) {
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, v) n += c->string && !strcmp(c->string, "prompt");
    return n;
}

/* one JSON-lines line (not blank): its "prompt" string, malloc'd, in *out */
static int json_line(const char *path, int lineno, const char *line, char **out, char *err, size_t errlen) {
    const char *end = NULL;
    if (has_nul_escape(line))
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s:%d: holds \\u0000: a prompt cannot contain a NUL character",
                       path, lineno);
    cJSON *v = cJSON_ParseWithOpts(line, &end, 1);
    if (!v) {
        const long col = end ? (long)(end - line) + 1 : 1;
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s:%d: not a JSON object (invalid JSON near column %ld)", path,
                       lineno, col);
    }
    int rc = HAT_OK, n_prompt;
    const cJSON *p = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "prompt") : NULL;
    if (!cJSON_IsObject(v))
        rc = hat_err(err, errlen, HAT_ERR_FORMAT, "%s:%d: not a JSON object (the line holds %s)", path, lineno,
                     json_kind(v));
    else if ((n_prompt = count_prompts(v)) > 1)   /* readers disagree on which counts (cJSON the first, Python's the last) */
        rc = hat_err(err, errlen, HAT_ERR_FORMAT, "%s:%d: \"prompt\" is given %d times", path, lineno, n_prompt);
    else if (!cJSON_IsString(p) || !p->valuestring)
        rc = hat_err(err, errlen, HAT_ERR_FORMAT, "%s:%d: no \"prompt\" string field%s", path, lineno,
                     p ? " (\"prompt\" is not a string)" : "");
    else if (blank(p->valuestring))
        rc = hat_err(err, errlen, HAT_ERR_FORMAT, "%s:%d: \"prompt\" is empty", path, lineno);
    else
        *out = xstrdup(p->valuestring);
    cJSON_Delete(v);
    return rc;
}

/* the prompts of a file's text (modified in place), by format; *list grows as they are found */
static int parse_lines(const char *path, char *raw, int jsonl, char ***list, int *cnt, char *err, size_t errlen) {
    int cap = 0, lineno = 0;
    for (char *p = raw, *nl; p; p = nl ? nl + 1 : NULL) {
        lineno++;
        if ((nl = strchr(p, '\n'))) *nl = 0;
        char *s = NULL;
        if (jsonl) {
            if (blank(p)) continue;
            int rc = json_line(path, lineno, p, &s, err, errlen);
            if (rc) return rc;
        } else {
            const char *t = prompt_line(p);
            if (!*t) continue;
            s = xstrdup(t);
        }
        if (*cnt == cap) *list = xrealloc(*list, sizeof **list * (size_t)(cap = cap * 2 + 16));
        (*list)[(*cnt)++] = s;
    }
    return HAT_OK;
}

int prompt_read_file(const char *path, char ***list_out, int *n_out, uint64_t *size, uint32_t *crc, char *err,
                     size_t errlen) {
    char *raw;
    size_t n;
    int rc = hat_read_text(path, "prompts file", &raw, &n, err, errlen);
    if (rc) return rc;
    if (size) *size = n;
    if (crc) *crc = crc32c(0, raw, n);
    char **list = NULL;
    int cnt = 0;
    const int jsonl = ends_with(path, ".jsonl");
    rc = parse_lines(path, raw, jsonl, &list, &cnt, err, errlen);
    free(raw);
    if (rc) {
        prompt_list_free(list, cnt);
        return rc;
    }
    if (!cnt) {
        free(list);
        return hat_err(err, errlen, HAT_ERR_FORMAT, "prompts file %s has no prompts (every line is empty)", path);
    }
    *list_out = list;
    *n_out = cnt;
    return HAT_OK;
}

void prompt_list_free(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

int prompt_tokenize(const tokenizer *tok, const char *system, const char *text, int chat, int32_t **ids, int *n,
                    char *err, size_t errlen) {
    size_t len = strlen(text), cap = len + (system ? strlen(system) : 0) + 4096;
    char *s = xmalloc(cap);
    int rc = HAT_OK;
    if (chat) rc = tokenizer_chat_format(tok, system, text, s, cap, &len, err, errlen);
    else memcpy(s, text, len + 1);
    if (rc) { free(s); return rc; }
    const int add_bos = tokenizer_add_bos(tok), max = (int)len + 8;
    *ids = xmalloc(sizeof(int32_t) * (size_t)max);
    if (add_bos) (*ids)[0] = tokenizer_bos(tok);
    rc = tokenizer_encode(tok, s, len, chat, *ids + add_bos, max - add_bos, n, err, errlen);
    free(s);
    if (rc) { free(*ids); *ids = NULL; return rc; }
    *n += add_bos;
    return HAT_OK;
}
