/* prompt.c — see prompt.h. */
#include "engine/prompt.h"
#include "core/common.h"
#include "core/crc32c.h"

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

int prompt_read_file(const char *path, char ***list_out, int *n_out, uint64_t *size, uint32_t *crc, char *err,
                     size_t errlen) {
    char *raw;
    size_t n;
    int rc = hat_read_text(path, "prompts file", &raw, &n, err, errlen);
    if (rc) return rc;
    if (size) *size = n;
    if (crc) *crc = crc32c(0, raw, n);
    char **list = NULL;
    int cnt = 0, cap = 0;
    for (char *p = raw, *nl; p; p = nl ? nl + 1 : NULL) {
        if ((nl = strchr(p, '\n'))) *nl = 0;
        const char *s = prompt_line(p);
        if (!*s) continue;
        if (cnt == cap) {
            list = realloc(list, sizeof *list * (size_t)(cap = cap * 2 + 16));
            CHECK(list, "out of memory");
        }
        list[cnt] = xmalloc(strlen(s) + 1);
        strcpy(list[cnt++], s);
    }
    free(raw);
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
