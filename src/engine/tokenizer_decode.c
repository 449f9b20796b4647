/* tokenizer_decode.c — token ids back to text (pieces, the streaming UTF-8-safe decoder) and the
 * chat template (tokenizer.h). */
#include "engine/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- decoding ---------- */

int tokenizer_piece(const tokenizer *t, int32_t id, char *buf, int buflen) {
    if (!t || id < 0 || id >= t->n_vocab) return -1;
    int n = t->piece_len[id];
    if (buf && buflen > 0) memcpy(buf, t->piece + t->piece_off[id], (size_t)(n < buflen ? n : buflen));
    return n;
}

void tokenizer_decoder_init(tokenizer_decoder *d) { memset(d, 0, sizeof *d); }

/* Bytes a sequence starting with lead byte c needs in total; 0 if c cannot start one. */
static int utf8_seq_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
}

int tokenizer_decoder_push(tokenizer_decoder *d, const tokenizer *t, int32_t id, char *out, int outlen) {
    if (!d || !t || id < 0 || id >= t->n_vocab || !out) return -1;
    int pl = (!d->special && tokenizer_is_control(t, id)) ? 0 : t->piece_len[id];
    if (outlen < pl + 4) return -1;
    int n = d->n_pend;
    memcpy(out, d->pend, (size_t)n);
    memcpy(out + n, t->piece + t->piece_off[id], (size_t)pl);
    n += pl;
    d->n_pend = 0;
    /* find the last lead byte among the final 3; hold it back if its sequence is unfinished */
    for (int i = n - 1; i >= 0 && i >= n - 3; i--) {
        unsigned char c = (unsigned char)out[i];
        if ((c & 0xC0) == 0x80) continue;
        int need = utf8_seq_len(c);
        if (need > n - i) {
            d->n_pend = n - i;
            memcpy(d->pend, out + i, (size_t)d->n_pend);
            n = i;
        }
        break;
    }
    return n;
}

int tokenizer_decoder_flush(tokenizer_decoder *d, char *out, int outlen) {
    if (!d || !out || outlen < d->n_pend) return -1;
    int n = d->n_pend;
    memcpy(out, d->pend, (size_t)n);
    d->n_pend = 0;
    return n;
}

/* ---------- chat template ---------- */

/* Finds the default system block of a ChatML template: the first Jinja string literal (inside
 * {{ }} or {% %}) that starts with "<|im_start|>system" and holds a whole "<|im_end|>" block,
 * e.g. SmolLM2's '<|im_start|>system\nYou are a helpful AI assistant ...<|im_end|>\n'. Such a
 * literal is only emitted when the conversation has no system message. Returns a malloc'd
 * unescaped copy, or NULL (none, or out of memory). */
static char *chatml_default_system(const char *tp) {
    const char *p = tp;
    while ((p = strchr(p, '{'))) {
        if (p[1] != '{' && p[1] != '%') { p++; continue; }
        const char *end = strstr(p + 2, p[1] == '{' ? "}}" : "%}");
        if (!end) return NULL;
        for (const char *q = p + 2; q < end; q++) {
            if (*q != '\'' && *q != '"') continue;
            char quote = *q, *lit = malloc((size_t)(end - q) + 1);
            size_t n = 0;
            if (!lit) return NULL;
            for (q++; q < end && *q != quote; q++) {
                char c = *q;
                if (c == '\\' && q + 1 < end) {
                    c = *++q;
                    c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
                }
                lit[n++] = c;
            }
            lit[n] = 0;
            if (strncmp(lit, "<|im_start|>system", 18) == 0 && strstr(lit, "<|im_end|>")) return lit;
            free(lit);
        }
        p = end + 2;
    }
    return NULL;
}

int tokenizer_chat_format(const tokenizer *t, const char *system, const char *user,
                          char *out, size_t outlen, size_t *n_out, char *err, size_t errlen) {
    if (n_out) *n_out = 0;
    if (!t || !user || (!out && outlen)) return hat_err(err, errlen, HAT_ERR_ARG, "tokenizer_chat_format: bad arguments");
    if (!t->chat_template) return hat_err(err, errlen, HAT_ERR_NOTFOUND, "the model has no tokenizer.chat_template");
    if (!strstr(t->chat_template, "<|im_start|>"))
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "unsupported chat template (only ChatML '<|im_start|>' templates are supported): %.60s...", t->chat_template);
    char *def = system ? NULL : chatml_default_system(t->chat_template);
    const char *parts[9];
    int np = 0;
    if (system) { parts[np++] = "<|im_start|>system\n"; parts[np++] = system; parts[np++] = "<|im_end|>\n"; }
    else if (def) parts[np++] = def;
    parts[np++] = "<|im_start|>user\n";
    parts[np++] = user;
    parts[np++] = "<|im_end|>\n";
    parts[np++] = "<|im_start|>assistant\n";
    size_t need = 0;
    for (int i = 0; i < np; i++) need += strlen(parts[i]);
    if (n_out) *n_out = need;
    if (need + 1 > outlen) {
        free(def);
        return hat_err(err, errlen, HAT_ERR_ARG, "chat rendering needs %zu bytes, buffer holds %zu", need + 1, outlen);
    }
    size_t o = 0;
    for (int i = 0; i < np; i++) {
        size_t l = strlen(parts[i]);
        memcpy(out + o, parts[i], l);
        o += l;
    }
    out[o] = 0;
    free(def);
    return HAT_OK;
}
