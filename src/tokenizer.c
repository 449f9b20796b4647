/* tokenizer.c — byte-level BPE matching llama.cpp's "gpt2"/"smollm" tokenizer (see tokenizer.h).
 *
 * Why hand-written splitting instead of PCRE2: llama.cpp does not run the GPT-2 regex; it runs
 * its own matcher (unicode_regex_split_custom_gpt2) over per-code-point flags from its own
 * Unicode 15.1 tables, after a first \p{N} pass, and decodes invalid UTF-8 its own way. Copying
 * that behaviour on code points (with the same Unicode version) is what gives exact equality;
 * PCRE2 10.42 carries a different Unicode version and regex semantics at chunk edges.
 */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

struct tokenizer {
    int n_vocab;
    char *text;                /* all token texts, as in the vocabulary (byte-encoded) */
    uint32_t *text_off, *text_len;
    char *piece;               /* decoded pieces (CONTROL tokens: their text) */
    uint32_t *piece_off;
    uint16_t *piece_len;
    uint8_t *type;             /* TT_* */
    uint8_t *eog;
    int32_t *tok_tab;          /* open addressing: text -> id, -1 empty */
    uint32_t tok_mask;
    char *merge;               /* merge strings "left right" */
    uint32_t *merge_off;
    uint16_t *merge_llen, *merge_rlen;
    int32_t *merge_tab;        /* open addressing: (left, right) -> rank, -1 empty */
    uint32_t merge_mask;
    int32_t *special;          /* ids matched as whole strings, longest first */
    int n_special;
    int digit_split;           /* "smollm" family: isolate \p{N} before the GPT-2 split */
    int32_t bos, eos;
    int add_bos;
    char *chat_template;       /* NULL when the file has none */
    char byte_enc[256][2];     /* GPT-2 byte -> code point U+0021..U+0143, as UTF-8 */
    uint8_t byte_enc_len[256];
    int16_t byte_dec[0x144];   /* code point -> byte, -1 if not a byte code point */
};

/* ---------- Unicode helpers (llama.cpp's decoding rules, not strict UTF-8) ---------- */

enum { C_L = 1, C_N = 2, C_WS = 4 };
static int cp_class(uint32_t cp); /* at the end of the file, with its tables */

/* One code point from s[*i..n). Mirrors llama.cpp: only lead/continuation bits are checked
 * (overlong forms and surrogates pass); a bad byte yields U+FFFD and consumes one byte. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    size_t p = *i;
    unsigned c = s[p];
    if (c < 0x80) { *i = p + 1; return c; }
    int need = (c & 0x40) == 0 ? 0 : (c & 0x20) == 0 ? 2 : (c & 0x10) == 0 ? 3 : (c & 0x08) == 0 ? 4 : 0;
    if (need && p + need <= n) {
        uint32_t cp = c & (0x7F >> need);
        int k;
        for (k = 1; k < need && (s[p + k] & 0xC0) == 0x80; k++) cp = (cp << 6) | (s[p + k] & 0x3F);
        if (k == need) { *i = p + need; return cp; }
    }
    *i = p + 1;
    return 0xFFFD;
}

/* Code points above U+10FFFF (from F5..F7 leads) make llama.cpp throw; we write U+FFFD. */
static int utf8_put(uint32_t cp, unsigned char *o) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x10000) {
        o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
        return 3;
    }
    o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F);
    o[2] = 0x80 | ((cp >> 6) & 0x3F); o[3] = 0x80 | (cp & 0x3F);
    return 4;
}

/* ---------- hash tables ---------- */

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001B3ull;
    return h;
}
#define FNV0 0xCBF29CE484222325ull

static int32_t tok_find(const tokenizer *t, const char *s, size_t n) {
    for (uint32_t h = (uint32_t)fnv(FNV0, s, n) & t->tok_mask;; h = (h + 1) & t->tok_mask) {
        int32_t id = t->tok_tab[h];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(t->text + t->text_off[id], s, n) == 0) return id;
    }
}

/* 0xFF never occurs in UTF-8, so it separates the halves unambiguously in the hash. */
static uint32_t pair_hash(const char *a, size_t na, const char *b, size_t nb) {
    return (uint32_t)fnv(fnv(fnv(FNV0, a, na), "\xFF", 1), b, nb);
}

static int32_t merge_rank(const tokenizer *t, const char *a, size_t na, const char *b, size_t nb) {
    for (uint32_t h = pair_hash(a, na, b, nb) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
        int32_t r = t->merge_tab[h];
        if (r < 0) return -1;
        const char *m = t->merge + t->merge_off[r];
        if (t->merge_llen[r] == na && t->merge_rlen[r] == nb && memcmp(m, a, na) == 0 &&
            memcmp(m + na + 1, b, nb) == 0)
            return r;
    }
}

static uint32_t table_mask(uint64_t n) {
    uint32_t cap = 1024;
    while (cap < 2 * n) cap *= 2;
    return cap - 1;
}

/* ---------- init ---------- */

static void init_byte_map(tokenizer *t) {
    /* GPT-2: printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in order */
    int extra = 0;
    memset(t->byte_dec, -1, sizeof t->byte_dec);
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = keep ? (uint32_t)b : 256u + (uint32_t)extra++;
        t->byte_enc_len[b] = (uint8_t)utf8_put(cp, (unsigned char *)t->byte_enc[b]);
        t->byte_dec[cp] = (int16_t)b;
    }
}

static const char *const k_eog_text[] = {
    /* llama.cpp marks these end-of-generation by text (llama-vocab.cpp, EOT/EOG/FIM lists) */
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",                               /* FIM pad */
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>",                   /* FIM repo */
    "<|file_sep|>",                                                                          /* FIM sep */
};

/* Decoded piece of token id into o; never longer than the token's text. Returns the length. */
static int make_piece(const tokenizer *t, int32_t id, char *o) {
    const char *s = t->text + t->text_off[id];
    size_t n = t->text_len[id], i = 0;
    int len = 0;
    switch (t->type[id]) {
    case TT_CONTROL: case TT_UNKNOWN: case TT_USER:
        memcpy(o, s, n);
        return (int)n;
    case TT_NORMAL:
        while (i < n) {
            size_t i0 = i;
            uint32_t cp = utf8_next((const unsigned char *)s, n, &i);
            if (cp < 0x144 && t->byte_dec[cp] >= 0) o[len++] = (char)t->byte_dec[cp];
            else { /* not a byte code point (llama.cpp writes "[UNK_BYTE_..]"); never in GPT-2 vocabularies */
                memcpy(o + len, s + i0, i - i0);
                len += (int)(i - i0);
            }
        }
        return len;
    case TT_BYTE:
        if (n == 6 && memcmp(s, "<0x", 3) == 0) { o[0] = (char)strtol((char[3]){s[3], s[4], 0}, NULL, 16); return 1; }
        return 0;
    default:
        return 0; /* unused / undefined tokens render as nothing */
    }
}

static int u64_cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Longest first (llama.cpp's order; ties by id, where its std::sort leaves them unspecified). */
static int sort_specials(tokenizer *t) {
    uint64_t *key = malloc((size_t)t->n_special * sizeof *key + 1);
    if (!key) return 0;
    for (int i = 0; i < t->n_special; i++)
        key[i] = ((uint64_t)(UINT32_MAX - t->text_len[t->special[i]]) << 32) | (uint32_t)t->special[i];
    qsort(key, (size_t)t->n_special, sizeof *key, u64_cmp);
    for (int i = 0; i < t->n_special; i++) t->special[i] = (int32_t)(key[i] & UINT32_MAX);
    free(key);
    return 1;
}

static int get_opt_id(const gguf_file *f, const char *key, int n_vocab, int32_t *out, char *err, size_t errlen) {
    uint32_t v;
    int rc = gguf_get_u32(f, key, &v, err, errlen);
    if (rc == HAT_ERR_NOTFOUND) { *out = -1; return HAT_OK; }
    if (rc) return rc;
    if (v >= (uint32_t)n_vocab) return hat_err(err, errlen, HAT_ERR_FORMAT, "%s = %u is outside the vocabulary (%d tokens)", key, v, n_vocab);
    *out = (int32_t)v;
    return HAT_OK;
}

/* Copies the token texts, builds text -> id and the EOG flags. */
static int load_tokens(tokenizer *t, const gguf_str *toks, const int32_t *types, char *err, size_t errlen) {
    size_t off = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        int32_t ty = TT_NORMAL;
        if (types) memcpy(&ty, types + i, sizeof ty); /* the array may sit unaligned in the mapping */
        t->type[i] = (uint8_t)(ty >= TT_NORMAL && ty <= TT_BYTE ? ty : 0);
        t->text_off[i] = (uint32_t)off;
        if (toks[i].len > TOKENIZER_PIECE_MAX)
            return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "token %d is %llu bytes long (limit %d)", i, (unsigned long long)toks[i].len, TOKENIZER_PIECE_MAX);
        if (toks[i].len) { memcpy(t->text + off, toks[i].ptr, toks[i].len); off += toks[i].len; }
        else off += (size_t)snprintf(t->text + off, 24, "[EMPTY_%d]", i); /* as llama.cpp renames them */
        uint32_t n = t->text_len[i] = (uint32_t)(off - t->text_off[i]);
        const char *s = t->text + t->text_off[i];
        uint32_t h = (uint32_t)fnv(FNV0, s, n) & t->tok_mask;
        for (;; h = (h + 1) & t->tok_mask) {
            int32_t o = t->tok_tab[h];
            if (o < 0 || (t->text_len[o] == n && memcmp(t->text + t->text_off[o], s, n) == 0)) break;
        }
        t->tok_tab[h] = i; /* a later duplicate wins, as with llama.cpp's token_to_id[text] = i */
        for (size_t k = 0; k < sizeof k_eog_text / sizeof *k_eog_text; k++)
            if (strlen(k_eog_text[k]) == n && memcmp(k_eog_text[k], s, n) == 0) {
                t->eog[i] = 1;
                t->type[i] = TT_CONTROL; /* llama.cpp forces these to CONTROL as well */
            }
    }
    for (int i = 0; i < t->n_vocab; i++) {
        int ty = t->type[i];
        t->piece_off[i] = i ? t->piece_off[i - 1] + t->piece_len[i - 1] : 0;
        t->piece_len[i] = (uint16_t)make_piece(t, i, t->piece + t->piece_off[i]);
        if (ty == TT_CONTROL || ty == TT_USER || ty == TT_UNKNOWN) t->special[t->n_special++] = i;
    }
    return sort_specials(t) ? HAT_OK : hat_err(err, errlen, HAT_ERR_NOMEM, "out of memory");
}

/* Copies the merges and builds (left, right) -> rank. */
static void load_merges(tokenizer *t, const gguf_str *merges, uint64_t n_merge) {
    size_t off = 0;
    for (uint64_t r = 0; r < n_merge; r++) {
        /* split at the first space after position 0, as llama.cpp does */
        const char *m = merges[r].ptr, *sp = merges[r].len > 1 ? memchr(m + 1, ' ', merges[r].len - 1) : NULL;
        t->merge_off[r] = (uint32_t)off;
        memcpy(t->merge + off, m, merges[r].len);
        off += merges[r].len;
        if (!sp || merges[r].len > 0xFFFF) continue; /* no pair: can never match */
        size_t nl = (size_t)(sp - m), nr = merges[r].len - nl - 1;
        t->merge_llen[r] = (uint16_t)nl;
        t->merge_rlen[r] = (uint16_t)nr;
        uint32_t h = pair_hash(m, nl, sp + 1, nr) & t->merge_mask;
        for (;; h = (h + 1) & t->merge_mask) {
            int32_t o = t->merge_tab[h];
            if (o < 0) { t->merge_tab[h] = (int32_t)r; break; }
            if (t->merge_llen[o] == nl && t->merge_rlen[o] == nr && memcmp(t->merge + t->merge_off[o], m, merges[r].len) == 0)
                break; /* the first rank wins (std::unordered_map::emplace) */
        }
    }
}

/* Optional scalar metadata: ids, add_bos, chat template. */
static int load_scalars(tokenizer *t, const gguf_file *f, char *err, size_t errlen) {
    static const char *const eog_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id",
                                           "tokenizer.ggml.fim_pad_token_id", "tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id"};
    int rc;
    if ((rc = get_opt_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err, errlen)) ||
        (rc = get_opt_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err, errlen)))
        return rc;
    for (size_t k = 0; k < sizeof eog_keys / sizeof *eog_keys; k++) {
        int32_t id;
        if ((rc = get_opt_id(f, eog_keys[k], t->n_vocab, &id, err, errlen))) return rc;
        if (id >= 0) t->eog[id] = 1;
    }
    rc = gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err, errlen);
    if (rc == HAT_ERR_NOTFOUND) t->add_bos = 0;
    else if (rc) return rc;
    if (t->add_bos && t->bos < 0) return hat_err(err, errlen, HAT_ERR_FORMAT, "add_bos_token is true but bos_token_id is missing");
    gguf_str tmpl;
    rc = gguf_get_str(f, "tokenizer.chat_template", &tmpl, err, errlen);
    if (rc == HAT_ERR_NOTFOUND) return HAT_OK;
    if (rc) return rc;
    if (!(t->chat_template = malloc(tmpl.len + 1))) return hat_err(err, errlen, HAT_ERR_NOMEM, "out of memory");
    memcpy(t->chat_template, tmpl.ptr, tmpl.len);
    t->chat_template[tmpl.len] = 0;
    return HAT_OK;
}

static int str_is(gguf_str s, const char *lit) { return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0; }

int tokenizer_init(tokenizer **out, const gguf_file *f, char *err, size_t errlen) {
    /* pre-tokenizers with exactly these regex lists in llama.cpp: with and without the \p{N} pass */
    static const char *const pre_digits[] = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva", "mellum2"};
    static const char *const pre_plain[] = {"gpt2", "mpt", "olmo", "jais", "trillion", "granite-docling"};
    gguf_str model, pre;
    const gguf_str *toks, *merges;
    const int32_t *types = NULL;
    uint64_t n_tok, n_merge, n_types = 0;
    int rc, digit_split = -1;
    *out = NULL;
    if ((rc = gguf_get_str(f, "tokenizer.ggml.model", &model, err, errlen))) return rc;
    if (!str_is(model, "gpt2"))
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "tokenizer.ggml.model '%.*s' is not supported (only byte-level BPE 'gpt2')", (int)(model.len > 64 ? 64 : model.len), model.ptr);
    if ((rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre, err, errlen))) return rc;
    for (size_t i = 0; i < sizeof pre_digits / sizeof *pre_digits; i++) if (str_is(pre, pre_digits[i])) digit_split = 1;
    for (size_t i = 0; i < sizeof pre_plain / sizeof *pre_plain; i++) if (str_is(pre, pre_plain[i])) digit_split = 0;
    if (digit_split < 0)
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "tokenizer.ggml.pre '%.*s' is not supported (smollm-style and gpt2-style only)", (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
    if ((rc = gguf_get_arr_str(f, "tokenizer.ggml.tokens", &toks, &n_tok, err, errlen))) return rc;
    if (n_tok == 0 || n_tok > (1u << 24)) return hat_err(err, errlen, HAT_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries", (unsigned long long)n_tok);
    rc = gguf_get_arr_i32(f, "tokenizer.ggml.token_type", &types, &n_types, err, errlen);
    if (rc == HAT_ERR_NOTFOUND) types = NULL; /* llama.cpp: all tokens normal */
    else if (rc) return rc;
    else if (n_types < n_tok) return hat_err(err, errlen, HAT_ERR_FORMAT, "tokenizer.ggml.token_type has %llu entries for %llu tokens", (unsigned long long)n_types, (unsigned long long)n_tok);
    if ((rc = gguf_get_arr_str(f, "tokenizer.ggml.merges", &merges, &n_merge, err, errlen))) return rc;
    if (n_merge > (1u << 24)) return hat_err(err, errlen, HAT_ERR_FORMAT, "tokenizer.ggml.merges has %llu entries", (unsigned long long)n_merge);

    tokenizer *t = calloc(1, sizeof *t);
    if (!t) return hat_err(err, errlen, HAT_ERR_NOMEM, "out of memory");
    int n = t->n_vocab = (int)n_tok;
    t->digit_split = digit_split;
    init_byte_map(t);
    size_t text_bytes = 0, merge_bytes = 0;
    for (int i = 0; i < n; i++) text_bytes += toks[i].len ? toks[i].len : 24;
    for (uint64_t i = 0; i < n_merge; i++) merge_bytes += merges[i].len;
    t->tok_mask = table_mask(n_tok);
    t->merge_mask = table_mask(n_merge);
    t->text_off = malloc(n * sizeof *t->text_off);
    t->text_len = malloc(n * sizeof *t->text_len);
    t->piece_off = malloc(n * sizeof *t->piece_off);
    t->piece_len = malloc(n * sizeof *t->piece_len);
    t->type = malloc(n);
    t->eog = calloc(n, 1);
    t->special = malloc(n * sizeof *t->special);
    t->text = malloc(text_bytes + 1);
    t->piece = malloc(text_bytes + 1); /* a piece is never longer than its text */
    t->tok_tab = malloc((t->tok_mask + 1) * sizeof(int32_t));
    t->merge = malloc(merge_bytes + 1);
    t->merge_off = malloc((n_merge + 1) * sizeof *t->merge_off);
    t->merge_llen = calloc(n_merge + 1, sizeof *t->merge_llen);
    t->merge_rlen = calloc(n_merge + 1, sizeof *t->merge_rlen);
    t->merge_tab = malloc((t->merge_mask + 1) * sizeof(int32_t));
    if (!t->text_off || !t->text_len || !t->piece_off || !t->piece_len || !t->type || !t->eog || !t->special ||
        !t->text || !t->piece || !t->tok_tab || !t->merge || !t->merge_off || !t->merge_llen || !t->merge_rlen || !t->merge_tab) {
        tokenizer_free(t);
        return hat_err(err, errlen, HAT_ERR_NOMEM, "out of memory for the tokenizer");
    }
    memset(t->tok_tab, -1, (t->tok_mask + 1) * sizeof(int32_t));
    memset(t->merge_tab, -1, (t->merge_mask + 1) * sizeof(int32_t));
    if ((rc = load_tokens(t, toks, types, err, errlen)) || (load_merges(t, merges, n_merge), 0) ||
        (rc = load_scalars(t, f, err, errlen))) {
        tokenizer_free(t);
        return rc;
    }
    *out = t;
    return HAT_OK;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    free(t->text); free(t->text_off); free(t->text_len); free(t->piece); free(t->piece_off);
    free(t->piece_len); free(t->type); free(t->eog); free(t->tok_tab); free(t->merge);
    free(t->merge_off); free(t->merge_llen); free(t->merge_rlen); free(t->merge_tab);
    free(t->special); free(t->chat_template);
    free(t);
}

int tokenizer_n_vocab(const tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer *t) { return t->eos; }
int tokenizer_add_bos(const tokenizer *t) { return t->add_bos; }
int tokenizer_is_eog(const tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab && t->eog[id]; }
int tokenizer_is_control(const tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->type[id] == TT_CONTROL || t->type[id] == TT_UNKNOWN);
}

/* ---------- encoding ---------- */

typedef struct {                 /* per-call scratch, grown on demand */
    uint32_t *cp; size_t cap_cp;
    uint8_t *cls; size_t cap_cls;
    char *word; size_t cap_word;
    struct sym { int32_t prev, next; uint32_t off, n; } *sym; size_t cap_sym;
    struct big { int32_t rank, left, right; uint32_t size; } *heap; size_t cap_heap, n_heap;
    int32_t *out; int max, count;
} enc_state;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static void emit(enc_state *st, int32_t id) {
    if (st->count < st->max) st->out[st->count] = id;
    st->count++;
}

static int big_less(const struct big *a, const struct big *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(enc_state *st, struct big b) {
    if (!grow((void **)&st->heap, &st->cap_heap, st->n_heap + 1, sizeof *st->heap)) return 0;
    size_t i = st->n_heap++;
    while (i > 0 && big_less(&b, &st->heap[(i - 1) / 2])) { st->heap[i] = st->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    st->heap[i] = b;
    return 1;
}

static struct big heap_pop(enc_state *st) {
    struct big top = st->heap[0], last = st->heap[--st->n_heap];
    size_t i = 0, n = st->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && big_less(&st->heap[c + 1], &st->heap[c])) c++;
        if (!big_less(&st->heap[c], &last)) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (n) st->heap[i] = last;
    return top;
}

static int add_bigram(const tokenizer *t, enc_state *st, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 1;
    const struct sym *a = &st->sym[l], *b = &st->sym[r];
    int32_t rank = merge_rank(t, st->word + a->off, a->n, st->word + b->off, b->n);
    if (rank < 0) return 1;
    return heap_push(st, (struct big){rank, l, r, a->n + b->n});
}

/* BPE over one byte-encoded word st->word[0..n): lowest merge rank first, leftmost on ties. */
static int bpe_word(const tokenizer *t, enc_state *st, size_t n) {
    int32_t ns = 0;
    if (!grow((void **)&st->sym, &st->cap_sym, n, sizeof *st->sym)) return 0;
    for (size_t o = 0; o < n; ns++) {
        static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
        size_t l = lens[(unsigned char)st->word[o] >> 4];
        if (l > n - o) l = n - o;
        st->sym[ns] = (struct sym){ns - 1, o + l == n ? -1 : ns + 1, (uint32_t)o, (uint32_t)l};
        o += l;
    }
    st->n_heap = 0;
    for (int32_t i = 1; i < ns; i++) if (!add_bigram(t, st, i - 1, i)) return 0;
    while (st->n_heap) {
        struct big b = heap_pop(st);
        struct sym *l = &st->sym[b.left], *r = &st->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale entry */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) st->sym[r->next].prev = b.left;
        if (!add_bigram(t, st, l->prev, b.left) || !add_bigram(t, st, b.left, l->next)) return 0;
    }
    for (int32_t i = 0; i < ns; i++) {
        const struct sym *s = &st->sym[i];
        if (!s->n) continue;
        int32_t id = tok_find(t, st->word + s->off, s->n);
        if (id >= 0) { emit(st, id); continue; }
        for (uint32_t k = 0; k < s->n; k++) { /* llama.cpp's fallback: single-byte tokens, else dropped */
            int32_t bid = tok_find(t, st->word + s->off + k, 1);
            if (bid >= 0) emit(st, bid);
        }
    }
    return 1;
}

static int encode_word(const tokenizer *t, enc_state *st, size_t a, size_t b) {
    if (!grow((void **)&st->word, &st->cap_word, (b - a) * 8, 1)) return 0;
    size_t n = 0;
    for (size_t i = a; i < b; i++) {
        unsigned char u[4];
        int k = utf8_put(st->cp[i], u);
        for (int j = 0; j < k; j++) {
            memcpy(st->word + n, t->byte_enc[u[j]], t->byte_enc_len[u[j]]);
            n += t->byte_enc_len[u[j]];
        }
    }
    return bpe_word(t, st, n);
}

/* GPT-2 split of code points [a, b), as llama.cpp's custom matcher: positions outside the
 * chunk have no flags, so e.g. "\s+(?!\S)" keeps all of a trailing whitespace run. */
static int split_chunk(const tokenizer *t, enc_state *st, size_t a, size_t b) {
    const uint32_t *cp = st->cp;
    const uint8_t *cls = st->cls;
#define CLS(p) ((p) < b ? cls[p] : 0)
#define OTHER(p) ((p) < b && !(cls[p] & (C_L | C_N | C_WS))) /* [^\s\p{L}\p{N}] */
    size_t pos = a;
    while (pos < b) {
        size_t start = pos;
        uint32_t c = cp[pos];
        if (c == '\'' && pos + 1 < b) {
            uint32_t c1 = cp[pos + 1], c2 = pos + 2 < b ? cp[pos + 2] : 0;
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') pos += 2;
            else if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) pos += 3;
            if (pos != start) { if (!encode_word(t, st, start, pos)) return 0; continue; }
        }
        size_t q = pos + (c == ' ');   /* optional leading space */
        if (CLS(q) & C_L) {
            while (CLS(q) & C_L) q++;
            pos = q;
        } else if (CLS(q) & C_N) {
            while (CLS(q) & C_N) q++;
            pos = q;
        } else if (OTHER(q)) {
            while (OTHER(q)) q++;
            pos = q;
        } else {
            size_t nws = 0;
            while (CLS(pos + nws) & C_WS) nws++;
            if (nws > 1 && pos + nws < b) pos += nws - 1; /* \s+(?!\S): leave one for the next word */
            else if (nws > 0) pos += nws;
            else pos++;
        }
        if (!encode_word(t, st, start, pos)) return 0;
    }
#undef CLS
#undef OTHER
    return 1;
}

static int encode_text(const tokenizer *t, enc_state *st, const char *s, size_t n) {
    if (!grow((void **)&st->cp, &st->cap_cp, n + 1, sizeof *st->cp)) return 0;
    if (!grow((void **)&st->cls, &st->cap_cls, n + 1, 1)) return 0;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        st->cp[m] = utf8_next((const unsigned char *)s, n, &i);
        st->cls[m] = (uint8_t)(st->cp[m] > 0x10FFFF ? 0 : cp_class(st->cp[m]));
        m++;
    }
    if (!t->digit_split) return split_chunk(t, st, 0, m);
    /* first pass "\p{N}": every number code point is a chunk of its own */
    size_t a = 0;
    for (size_t i = 0; i < m; i++) {
        if (!(st->cls[i] & C_N)) continue;
        if (i > a && !split_chunk(t, st, a, i)) return 0;
        if (!split_chunk(t, st, i, i + 1)) return 0;
        a = i + 1;
    }
    return a < m ? split_chunk(t, st, a, m) : 1;
}

typedef struct { size_t off; int64_t len; } frag;  /* len < 0: a special token, its id in off */

/* memmem is not in C11/POSIX; special tokens are short and rare, so a first-byte scan is enough */
static const char *find_bytes(const char *h, size_t hn, const char *p, size_t pn) {
    if (pn == 0 || pn > hn) return NULL;
    for (const char *e = h + hn - pn + 1, *q = h; q < e; q++) {
        if (!(q = memchr(q, p[0], (size_t)(e - q)))) return NULL;
        if (memcmp(q, p, pn) == 0) return q;
    }
    return NULL;
}

/* Special-token partition as llama.cpp's tokenizer_st_partition: for each special token,
 * longest first, every remaining raw span is cut at its leftmost occurrences. CONTROL and
 * UNKNOWN tokens take part only with parse_special; USER_DEFINED ones always do. Returns
 * the fragment list (malloc'd), or NULL when out of memory. */
static frag *partition(const tokenizer *t, const char *text, size_t len, int parse_special, size_t *nf_out) {
    size_t nf = 1;
    frag *fr = malloc(sizeof *fr);
    if (!fr) return NULL;
    fr[0] = (frag){0, (int64_t)len};
    for (int si = 0; si < t->n_special; si++) {
        int32_t id = t->special[si];
        if (!parse_special && t->type[id] != TT_USER) continue;
        const char *pat = t->text + t->text_off[id], *hit;
        size_t pl = t->text_len[id], nn = 0, ncap = 0;
        frag *nfr = NULL;
        for (size_t k = 0; k < nf; k++) {
            if (!grow((void **)&nfr, &ncap, nn + 1, sizeof *nfr)) goto oom;
            if (fr[k].len < 0) { nfr[nn++] = fr[k]; continue; }
            size_t o = fr[k].off, e = o + (size_t)fr[k].len;
            while ((hit = find_bytes(text + o, e - o, pat, pl))) {
                size_t h = (size_t)(hit - text);
                if (!grow((void **)&nfr, &ncap, nn + 3, sizeof *nfr)) goto oom;
                if (h > o) nfr[nn++] = (frag){o, (int64_t)(h - o)};
                nfr[nn++] = (frag){(size_t)id, -1};
                o = h + pl;
            }
            if (e > o) nfr[nn++] = (frag){o, (int64_t)(e - o)};
        }
        free(fr);
        fr = nfr;
        nf = nn;
        continue;
    oom:
        free(fr);
        free(nfr);
        return NULL;
    }
    *nf_out = nf;
    return fr;
}

int tokenizer_encode(const tokenizer *t, const char *text, size_t len, int parse_special,
                     int32_t *out, int max, int *n_out, char *err, size_t errlen) {
    if (n_out) *n_out = 0;
    if (!t || (!text && len) || max < 0 || (!out && max > 0)) return hat_err(err, errlen, HAT_ERR_ARG, "tokenizer_encode: bad arguments");
    if (len == 0) return HAT_OK;
    size_t nf = 0;
    frag *fr = partition(t, text, len, parse_special, &nf);
    if (!fr) return hat_err(err, errlen, HAT_ERR_NOMEM, "out of memory");
    enc_state st = {0};
    st.out = out;
    st.max = max;
    int ok = 1;
    for (size_t k = 0; k < nf && ok; k++) {
        if (fr[k].len < 0) emit(&st, (int32_t)fr[k].off);
        else ok = encode_text(t, &st, text + fr[k].off, (size_t)fr[k].len);
    }
    free(fr); free(st.cp); free(st.cls); free(st.word); free(st.sym); free(st.heap);
    if (!ok) return hat_err(err, errlen, HAT_ERR_NOMEM, "out of memory while tokenizing %zu bytes", len);
    if (n_out) *n_out = st.count;
    if (st.count > max) return hat_err(err, errlen, HAT_ERR_ARG, "text needs %d tokens, output holds %d", st.count, max);
    return HAT_OK;
}

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

/* ---------- Unicode classes: \\p{L}, \\p{N} (Unicode 15.1, as llama.cpp's tables) and \\s ---------- */

/* generated by tests/golden/gen_tokenizer_golden.py --unicode-table (Unicode 15.1.0) */
static const uint32_t k_letter[][2] = {
    {0x41,0x5A}, {0x61,0x7A}, {0xAA,0xAA}, {0xB5,0xB5}, {0xBA,0xBA}, {0xC0,0xD6}, {0xD8,0xF6},
    {0xF8,0x2C1}, {0x2C6,0x2D1}, {0x2E0,0x2E4}, {0x2EC,0x2EC}, {0x2EE,0x2EE}, {0x370,0x374}, {0x376,0x377},
    {0x37A,0x37D}, {0x37F,0x37F}, {0x386,0x386}, {0x388,0x38A}, {0x38C,0x38C}, {0x38E,0x3A1}, {0x3A3,0x3F5},
    {0x3F7,0x481}, {0x48A,0x52F}, {0x531,0x556}, {0x559,0x559}, {0x560,0x588}, {0x5D0,0x5EA}, {0x5EF,0x5F2},
    {0x620,0x64A}, {0x66E,0x66F}, {0x671,0x6D3}, {0x6D5,0x6D5}, {0x6E5,0x6E6}, {0x6EE,0x6EF}, {0x6FA,0x6FC},
    {0x6FF,0x6FF}, {0x710,0x710}, {0x712,0x72F}, {0x74D,0x7A5}, {0x7B1,0x7B1}, {0x7CA,0x7EA}, {0x7F4,0x7F5},
    {0x7FA,0x7FA}, {0x800,0x815}, {0x81A,0x81A}, {0x824,0x824}, {0x828,0x828}, {0x840,0x858}, {0x860,0x86A},
    {0x870,0x887}, {0x889,0x88E}, {0x8A0,0x8C9}, {0x904,0x939}, {0x93D,0x93D}, {0x950,0x950}, {0x958,0x961},
    {0x971,0x980}, {0x985,0x98C}, {0x98F,0x990}, {0x993,0x9A8}, {0x9AA,0x9B0}, {0x9B2,0x9B2}, {0x9B6,0x9B9},
    {0x9BD,0x9BD}, {0x9CE,0x9CE}, {0x9DC,0x9DD}, {0x9DF,0x9E1}, {0x9F0,0x9F1}, {0x9FC,0x9FC}, {0xA05,0xA0A},
    {0xA0F,0xA10}, {0xA13,0xA28}, {0xA2A,0xA30}, {0xA32,0xA33}, {0xA35,0xA36}, {0xA38,0xA39}, {0xA59,0xA5C},
    {0xA5E,0xA5E}, {0xA72,0xA74}, {0xA85,0xA8D}, {0xA8F,0xA91}, {0xA93,0xAA8}, {0xAAA,0xAB0}, {0xAB2,0xAB3},
    {0xAB5,0xAB9}, {0xABD,0xABD}, {0xAD0,0xAD0}, {0xAE0,0xAE1}, {0xAF9,0xAF9}, {0xB05,0xB0C}, {0xB0F,0xB10},
    {0xB13,0xB28}, {0xB2A,0xB30}, {0xB32,0xB33}, {0xB35,0xB39}, {0xB3D,0xB3D}, {0xB5C,0xB5D}, {0xB5F,0xB61},
    {0xB71,0xB71}, {0xB83,0xB83}, {0xB85,0xB8A}, {0xB8E,0xB90}, {0xB92,0xB95}, {0xB99,0xB9A}, {0xB9C,0xB9C},
    {0xB9E,0xB9F}, {0xBA3,0xBA4}, {0xBA8,0xBAA}, {0xBAE,0xBB9}, {0xBD0,0xBD0}, {0xC05,0xC0C}, {0xC0E,0xC10},
    {0xC12,0xC28}, {0xC2A,0xC39}, {0xC3D,0xC3D}, {0xC58,0xC5A}, {0xC5D,0xC5D}, {0xC60,0xC61}, {0xC80,0xC80},
    {0xC85,0xC8C}, {0xC8E,0xC90}, {0xC92,0xCA8}, {0xCAA,0xCB3}, {0xCB5,0xCB9}, {0xCBD,0xCBD}, {0xCDD,0xCDE},
    {0xCE0,0xCE1}, {0xCF1,0xCF2}, {0xD04,0xD0C}, {0xD0E,0xD10}, {0xD12,0xD3A}, {0xD3D,0xD3D}, {0xD4E,0xD4E},
    {0xD54,0xD56}, {0xD5F,0xD61}, {0xD7A,0xD7F}, {0xD85,0xD96}, {0xD9A,0xDB1}, {0xDB3,0xDBB}, {0xDBD,0xDBD},
    {0xDC0,0xDC6}, {0xE01,0xE30}, {0xE32,0xE33}, {0xE40,0xE46}, {0xE81,0xE82}, {0xE84,0xE84}, {0xE86,0xE8A},
    {0xE8C,0xEA3}, {0xEA5,0xEA5}, {0xEA7,0xEB0}, {0xEB2,0xEB3}, {0xEBD,0xEBD}, {0xEC0,0xEC4}, {0xEC6,0xEC6},
    {0xEDC,0xEDF}, {0xF00,0xF00}, {0xF40,0xF47}, {0xF49,0xF6C}, {0xF88,0xF8C}, {0x1000,0x102A}, {0x103F,0x103F},
    {0x1050,0x1055}, {0x105A,0x105D}, {0x1061,0x1061}, {0x1065,0x1066}, {0x106E,0x1070}, {0x1075,0x1081}, {0x108E,0x108E},
    {0x10A0,0x10C5}, {0x10C7,0x10C7}, {0x10CD,0x10CD}, {0x10D0,0x10FA}, {0x10FC,0x1248}, {0x124A,0x124D}, {0x1250,0x1256},
    {0x1258,0x1258}, {0x125A,0x125D}, {0x1260,0x1288}, {0x128A,0x128D}, {0x1290,0x12B0}, {0x12B2,0x12B5}, {0x12B8,0x12BE},
    {0x12C0,0x12C0}, {0x12C2,0x12C5}, {0x12C8,0x12D6}, {0x12D8,0x1310}, {0x1312,0x1315}, {0x1318,0x135A}, {0x1380,0x138F},
    {0x13A0,0x13F5}, {0x13F8,0x13FD}, {0x1401,0x166C}, {0x166F,0x167F}, {0x1681,0x169A}, {0x16A0,0x16EA}, {0x16F1,0x16F8},
    {0x1700,0x1711}, {0x171F,0x1731}, {0x1740,0x1751}, {0x1760,0x176C}, {0x176E,0x1770}, {0x1780,0x17B3}, {0x17D7,0x17D7},
    {0x17DC,0x17DC}, {0x1820,0x1878}, {0x1880,0x1884}, {0x1887,0x18A8}, {0x18AA,0x18AA}, {0x18B0,0x18F5}, {0x1900,0x191E},
    {0x1950,0x196D}, {0x1970,0x1974}, {0x1980,0x19AB}, {0x19B0,0x19C9}, {0x1A00,0x1A16}, {0x1A20,0x1A54}, {0x1AA7,0x1AA7},
    {0x1B05,0x1B33}, {0x1B45,0x1B4C}, {0x1B83,0x1BA0}, {0x1BAE,0x1BAF}, {0x1BBA,0x1BE5}, {0x1C00,0x1C23}, {0x1C4D,0x1C4F},
    {0x1C5A,0x1C7D}, {0x1C80,0x1C88}, {0x1C90,0x1CBA}, {0x1CBD,0x1CBF}, {0x1CE9,0x1CEC}, {0x1CEE,0x1CF3}, {0x1CF5,0x1CF6},
    {0x1CFA,0x1CFA}, {0x1D00,0x1DBF}, {0x1E00,0x1F15}, {0x1F18,0x1F1D}, {0x1F20,0x1F45}, {0x1F48,0x1F4D}, {0x1F50,0x1F57},
    {0x1F59,0x1F59}, {0x1F5B,0x1F5B}, {0x1F5D,0x1F5D}, {0x1F5F,0x1F7D}, {0x1F80,0x1FB4}, {0x1FB6,0x1FBC}, {0x1FBE,0x1FBE},
    {0x1FC2,0x1FC4}, {0x1FC6,0x1FCC}, {0x1FD0,0x1FD3}, {0x1FD6,0x1FDB}, {0x1FE0,0x1FEC}, {0x1FF2,0x1FF4}, {0x1FF6,0x1FFC},
    {0x2071,0x2071}, {0x207F,0x207F}, {0x2090,0x209C}, {0x2102,0x2102}, {0x2107,0x2107}, {0x210A,0x2113}, {0x2115,0x2115},
    {0x2119,0x211D}, {0x2124,0x2124}, {0x2126,0x2126}, {0x2128,0x2128}, {0x212A,0x212D}, {0x212F,0x2139}, {0x213C,0x213F},
    {0x2145,0x2149}, {0x214E,0x214E}, {0x2183,0x2184}, {0x2C00,0x2CE4}, {0x2CEB,0x2CEE}, {0x2CF2,0x2CF3}, {0x2D00,0x2D25},
    {0x2D27,0x2D27}, {0x2D2D,0x2D2D}, {0x2D30,0x2D67}, {0x2D6F,0x2D6F}, {0x2D80,0x2D96}, {0x2DA0,0x2DA6}, {0x2DA8,0x2DAE},
    {0x2DB0,0x2DB6}, {0x2DB8,0x2DBE}, {0x2DC0,0x2DC6}, {0x2DC8,0x2DCE}, {0x2DD0,0x2DD6}, {0x2DD8,0x2DDE}, {0x2E2F,0x2E2F},
    {0x3005,0x3006}, {0x3031,0x3035}, {0x303B,0x303C}, {0x3041,0x3096}, {0x309D,0x309F}, {0x30A1,0x30FA}, {0x30FC,0x30FF},
    {0x3105,0x312F}, {0x3131,0x318E}, {0x31A0,0x31BF}, {0x31F0,0x31FF}, {0x3400,0x4DBF}, {0x4E00,0xA48C}, {0xA4D0,0xA4FD},
    {0xA500,0xA60C}, {0xA610,0xA61F}, {0xA62A,0xA62B}, {0xA640,0xA66E}, {0xA67F,0xA69D}, {0xA6A0,0xA6E5}, {0xA717,0xA71F},
    {0xA722,0xA788}, {0xA78B,0xA7CA}, {0xA7D0,0xA7D1}, {0xA7D3,0xA7D3}, {0xA7D5,0xA7D9}, {0xA7F2,0xA801}, {0xA803,0xA805},
    {0xA807,0xA80A}, {0xA80C,0xA822}, {0xA840,0xA873}, {0xA882,0xA8B3}, {0xA8F2,0xA8F7}, {0xA8FB,0xA8FB}, {0xA8FD,0xA8FE},
    {0xA90A,0xA925}, {0xA930,0xA946}, {0xA960,0xA97C}, {0xA984,0xA9B2}, {0xA9CF,0xA9CF}, {0xA9E0,0xA9E4}, {0xA9E6,0xA9EF},
    {0xA9FA,0xA9FE}, {0xAA00,0xAA28}, {0xAA40,0xAA42}, {0xAA44,0xAA4B}, {0xAA60,0xAA76}, {0xAA7A,0xAA7A}, {0xAA7E,0xAAAF},
    {0xAAB1,0xAAB1}, {0xAAB5,0xAAB6}, {0xAAB9,0xAABD}, {0xAAC0,0xAAC0}, {0xAAC2,0xAAC2}, {0xAADB,0xAADD}, {0xAAE0,0xAAEA},
    {0xAAF2,0xAAF4}, {0xAB01,0xAB06}, {0xAB09,0xAB0E}, {0xAB11,0xAB16}, {0xAB20,0xAB26}, {0xAB28,0xAB2E}, {0xAB30,0xAB5A},
    {0xAB5C,0xAB69}, {0xAB70,0xABE2}, {0xAC00,0xD7A3}, {0xD7B0,0xD7C6}, {0xD7CB,0xD7FB}, {0xF900,0xFA6D}, {0xFA70,0xFAD9},
    {0xFB00,0xFB06}, {0xFB13,0xFB17}, {0xFB1D,0xFB1D}, {0xFB1F,0xFB28}, {0xFB2A,0xFB36}, {0xFB38,0xFB3C}, {0xFB3E,0xFB3E},
    {0xFB40,0xFB41}, {0xFB43,0xFB44}, {0xFB46,0xFBB1}, {0xFBD3,0xFD3D}, {0xFD50,0xFD8F}, {0xFD92,0xFDC7}, {0xFDF0,0xFDFB},
    {0xFE70,0xFE74}, {0xFE76,0xFEFC}, {0xFF21,0xFF3A}, {0xFF41,0xFF5A}, {0xFF66,0xFFBE}, {0xFFC2,0xFFC7}, {0xFFCA,0xFFCF},
    {0xFFD2,0xFFD7}, {0xFFDA,0xFFDC}, {0x10000,0x1000B}, {0x1000D,0x10026}, {0x10028,0x1003A}, {0x1003C,0x1003D}, {0x1003F,0x1004D},
    {0x10050,0x1005D}, {0x10080,0x100FA}, {0x10280,0x1029C}, {0x102A0,0x102D0}, {0x10300,0x1031F}, {0x1032D,0x10340}, {0x10342,0x10349},
    {0x10350,0x10375}, {0x10380,0x1039D}, {0x103A0,0x103C3}, {0x103C8,0x103CF}, {0x10400,0x1049D}, {0x104B0,0x104D3}, {0x104D8,0x104FB},
    {0x10500,0x10527}, {0x10530,0x10563}, {0x10570,0x1057A}, {0x1057C,0x1058A}, {0x1058C,0x10592}, {0x10594,0x10595}, {0x10597,0x105A1},
    {0x105A3,0x105B1}, {0x105B3,0x105B9}, {0x105BB,0x105BC}, {0x10600,0x10736}, {0x10740,0x10755}, {0x10760,0x10767}, {0x10780,0x10785},
    {0x10787,0x107B0}, {0x107B2,0x107BA}, {0x10800,0x10805}, {0x10808,0x10808}, {0x1080A,0x10835}, {0x10837,0x10838}, {0x1083C,0x1083C},
    {0x1083F,0x10855}, {0x10860,0x10876}, {0x10880,0x1089E}, {0x108E0,0x108F2}, {0x108F4,0x108F5}, {0x10900,0x10915}, {0x10920,0x10939},
    {0x10980,0x109B7}, {0x109BE,0x109BF}, {0x10A00,0x10A00}, {0x10A10,0x10A13}, {0x10A15,0x10A17}, {0x10A19,0x10A35}, {0x10A60,0x10A7C},
    {0x10A80,0x10A9C}, {0x10AC0,0x10AC7}, {0x10AC9,0x10AE4}, {0x10B00,0x10B35}, {0x10B40,0x10B55}, {0x10B60,0x10B72}, {0x10B80,0x10B91},
    {0x10C00,0x10C48}, {0x10C80,0x10CB2}, {0x10CC0,0x10CF2}, {0x10D00,0x10D23}, {0x10E80,0x10EA9}, {0x10EB0,0x10EB1}, {0x10F00,0x10F1C},
    {0x10F27,0x10F27}, {0x10F30,0x10F45}, {0x10F70,0x10F81}, {0x10FB0,0x10FC4}, {0x10FE0,0x10FF6}, {0x11003,0x11037}, {0x11071,0x11072},
    {0x11075,0x11075}, {0x11083,0x110AF}, {0x110D0,0x110E8}, {0x11103,0x11126}, {0x11144,0x11144}, {0x11147,0x11147}, {0x11150,0x11172},
    {0x11176,0x11176}, {0x11183,0x111B2}, {0x111C1,0x111C4}, {0x111DA,0x111DA}, {0x111DC,0x111DC}, {0x11200,0x11211}, {0x11213,0x1122B},
    {0x1123F,0x11240}, {0x11280,0x11286}, {0x11288,0x11288}, {0x1128A,0x1128D}, {0x1128F,0x1129D}, {0x1129F,0x112A8}, {0x112B0,0x112DE},
    {0x11305,0x1130C}, {0x1130F,0x11310}, {0x11313,0x11328}, {0x1132A,0x11330}, {0x11332,0x11333}, {0x11335,0x11339}, {0x1133D,0x1133D},
    {0x11350,0x11350}, {0x1135D,0x11361}, {0x11400,0x11434}, {0x11447,0x1144A}, {0x1145F,0x11461}, {0x11480,0x114AF}, {0x114C4,0x114C5},
    {0x114C7,0x114C7}, {0x11580,0x115AE}, {0x115D8,0x115DB}, {0x11600,0x1162F}, {0x11644,0x11644}, {0x11680,0x116AA}, {0x116B8,0x116B8},
    {0x11700,0x1171A}, {0x11740,0x11746}, {0x11800,0x1182B}, {0x118A0,0x118DF}, {0x118FF,0x11906}, {0x11909,0x11909}, {0x1190C,0x11913},
    {0x11915,0x11916}, {0x11918,0x1192F}, {0x1193F,0x1193F}, {0x11941,0x11941}, {0x119A0,0x119A7}, {0x119AA,0x119D0}, {0x119E1,0x119E1},
    {0x119E3,0x119E3}, {0x11A00,0x11A00}, {0x11A0B,0x11A32}, {0x11A3A,0x11A3A}, {0x11A50,0x11A50}, {0x11A5C,0x11A89}, {0x11A9D,0x11A9D},
    {0x11AB0,0x11AF8}, {0x11C00,0x11C08}, {0x11C0A,0x11C2E}, {0x11C40,0x11C40}, {0x11C72,0x11C8F}, {0x11D00,0x11D06}, {0x11D08,0x11D09},
    {0x11D0B,0x11D30}, {0x11D46,0x11D46}, {0x11D60,0x11D65}, {0x11D67,0x11D68}, {0x11D6A,0x11D89}, {0x11D98,0x11D98}, {0x11EE0,0x11EF2},
    {0x11F02,0x11F02}, {0x11F04,0x11F10}, {0x11F12,0x11F33}, {0x11FB0,0x11FB0}, {0x12000,0x12399}, {0x12480,0x12543}, {0x12F90,0x12FF0},
    {0x13000,0x1342F}, {0x13441,0x13446}, {0x14400,0x14646}, {0x16800,0x16A38}, {0x16A40,0x16A5E}, {0x16A70,0x16ABE}, {0x16AD0,0x16AED},
    {0x16B00,0x16B2F}, {0x16B40,0x16B43}, {0x16B63,0x16B77}, {0x16B7D,0x16B8F}, {0x16E40,0x16E7F}, {0x16F00,0x16F4A}, {0x16F50,0x16F50},
    {0x16F93,0x16F9F}, {0x16FE0,0x16FE1}, {0x16FE3,0x16FE3}, {0x17000,0x187F7}, {0x18800,0x18CD5}, {0x18D00,0x18D08}, {0x1AFF0,0x1AFF3},
    {0x1AFF5,0x1AFFB}, {0x1AFFD,0x1AFFE}, {0x1B000,0x1B122}, {0x1B132,0x1B132}, {0x1B150,0x1B152}, {0x1B155,0x1B155}, {0x1B164,0x1B167},
    {0x1B170,0x1B2FB}, {0x1BC00,0x1BC6A}, {0x1BC70,0x1BC7C}, {0x1BC80,0x1BC88}, {0x1BC90,0x1BC99}, {0x1D400,0x1D454}, {0x1D456,0x1D49C},
    {0x1D49E,0x1D49F}, {0x1D4A2,0x1D4A2}, {0x1D4A5,0x1D4A6}, {0x1D4A9,0x1D4AC}, {0x1D4AE,0x1D4B9}, {0x1D4BB,0x1D4BB}, {0x1D4BD,0x1D4C3},
    {0x1D4C5,0x1D505}, {0x1D507,0x1D50A}, {0x1D50D,0x1D514}, {0x1D516,0x1D51C}, {0x1D51E,0x1D539}, {0x1D53B,0x1D53E}, {0x1D540,0x1D544},
    {0x1D546,0x1D546}, {0x1D54A,0x1D550}, {0x1D552,0x1D6A5}, {0x1D6A8,0x1D6C0}, {0x1D6C2,0x1D6DA}, {0x1D6DC,0x1D6FA}, {0x1D6FC,0x1D714},
    {0x1D716,0x1D734}, {0x1D736,0x1D74E}, {0x1D750,0x1D76E}, {0x1D770,0x1D788}, {0x1D78A,0x1D7A8}, {0x1D7AA,0x1D7C2}, {0x1D7C4,0x1D7CB},
    {0x1DF00,0x1DF1E}, {0x1DF25,0x1DF2A}, {0x1E030,0x1E06D}, {0x1E100,0x1E12C}, {0x1E137,0x1E13D}, {0x1E14E,0x1E14E}, {0x1E290,0x1E2AD},
    {0x1E2C0,0x1E2EB}, {0x1E4D0,0x1E4EB}, {0x1E7E0,0x1E7E6}, {0x1E7E8,0x1E7EB}, {0x1E7ED,0x1E7EE}, {0x1E7F0,0x1E7FE}, {0x1E800,0x1E8C4},
    {0x1E900,0x1E943}, {0x1E94B,0x1E94B}, {0x1EE00,0x1EE03}, {0x1EE05,0x1EE1F}, {0x1EE21,0x1EE22}, {0x1EE24,0x1EE24}, {0x1EE27,0x1EE27},
    {0x1EE29,0x1EE32}, {0x1EE34,0x1EE37}, {0x1EE39,0x1EE39}, {0x1EE3B,0x1EE3B}, {0x1EE42,0x1EE42}, {0x1EE47,0x1EE47}, {0x1EE49,0x1EE49},
    {0x1EE4B,0x1EE4B}, {0x1EE4D,0x1EE4F}, {0x1EE51,0x1EE52}, {0x1EE54,0x1EE54}, {0x1EE57,0x1EE57}, {0x1EE59,0x1EE59}, {0x1EE5B,0x1EE5B},
    {0x1EE5D,0x1EE5D}, {0x1EE5F,0x1EE5F}, {0x1EE61,0x1EE62}, {0x1EE64,0x1EE64}, {0x1EE67,0x1EE6A}, {0x1EE6C,0x1EE72}, {0x1EE74,0x1EE77},
    {0x1EE79,0x1EE7C}, {0x1EE7E,0x1EE7E}, {0x1EE80,0x1EE89}, {0x1EE8B,0x1EE9B}, {0x1EEA1,0x1EEA3}, {0x1EEA5,0x1EEA9}, {0x1EEAB,0x1EEBB},
    {0x20000,0x2A6DF}, {0x2A700,0x2B739}, {0x2B740,0x2B81D}, {0x2B820,0x2CEA1}, {0x2CEB0,0x2EBE0}, {0x2EBF0,0x2EE5D}, {0x2F800,0x2FA1D},
    {0x30000,0x3134A}, {0x31350,0x323AF},
};
static const uint32_t k_number[][2] = {
    {0x30,0x39}, {0xB2,0xB3}, {0xB9,0xB9}, {0xBC,0xBE}, {0x660,0x669}, {0x6F0,0x6F9}, {0x7C0,0x7C9},
    {0x966,0x96F}, {0x9E6,0x9EF}, {0x9F4,0x9F9}, {0xA66,0xA6F}, {0xAE6,0xAEF}, {0xB66,0xB6F}, {0xB72,0xB77},
    {0xBE6,0xBF2}, {0xC66,0xC6F}, {0xC78,0xC7E}, {0xCE6,0xCEF}, {0xD58,0xD5E}, {0xD66,0xD78}, {0xDE6,0xDEF},
    {0xE50,0xE59}, {0xED0,0xED9}, {0xF20,0xF33}, {0x1040,0x1049}, {0x1090,0x1099}, {0x1369,0x137C}, {0x16EE,0x16F0},
    {0x17E0,0x17E9}, {0x17F0,0x17F9}, {0x1810,0x1819}, {0x1946,0x194F}, {0x19D0,0x19DA}, {0x1A80,0x1A89}, {0x1A90,0x1A99},
    {0x1B50,0x1B59}, {0x1BB0,0x1BB9}, {0x1C40,0x1C49}, {0x1C50,0x1C59}, {0x2070,0x2070}, {0x2074,0x2079}, {0x2080,0x2089},
    {0x2150,0x2182}, {0x2185,0x2189}, {0x2460,0x249B}, {0x24EA,0x24FF}, {0x2776,0x2793}, {0x2CFD,0x2CFD}, {0x3007,0x3007},
    {0x3021,0x3029}, {0x3038,0x303A}, {0x3192,0x3195}, {0x3220,0x3229}, {0x3248,0x324F}, {0x3251,0x325F}, {0x3280,0x3289},
    {0x32B1,0x32BF}, {0xA620,0xA629}, {0xA6E6,0xA6EF}, {0xA830,0xA835}, {0xA8D0,0xA8D9}, {0xA900,0xA909}, {0xA9D0,0xA9D9},
    {0xA9F0,0xA9F9}, {0xAA50,0xAA59}, {0xABF0,0xABF9}, {0xFF10,0xFF19}, {0x10107,0x10133}, {0x10140,0x10178}, {0x1018A,0x1018B},
    {0x102E1,0x102FB}, {0x10320,0x10323}, {0x10341,0x10341}, {0x1034A,0x1034A}, {0x103D1,0x103D5}, {0x104A0,0x104A9}, {0x10858,0x1085F},
    {0x10879,0x1087F}, {0x108A7,0x108AF}, {0x108FB,0x108FF}, {0x10916,0x1091B}, {0x109BC,0x109BD}, {0x109C0,0x109CF}, {0x109D2,0x109FF},
    {0x10A40,0x10A48}, {0x10A7D,0x10A7E}, {0x10A9D,0x10A9F}, {0x10AEB,0x10AEF}, {0x10B58,0x10B5F}, {0x10B78,0x10B7F}, {0x10BA9,0x10BAF},
    {0x10CFA,0x10CFF}, {0x10D30,0x10D39}, {0x10E60,0x10E7E}, {0x10F1D,0x10F26}, {0x10F51,0x10F54}, {0x10FC5,0x10FCB}, {0x11052,0x1106F},
    {0x110F0,0x110F9}, {0x11136,0x1113F}, {0x111D0,0x111D9}, {0x111E1,0x111F4}, {0x112F0,0x112F9}, {0x11450,0x11459}, {0x114D0,0x114D9},
    {0x11650,0x11659}, {0x116C0,0x116C9}, {0x11730,0x1173B}, {0x118E0,0x118F2}, {0x11950,0x11959}, {0x11C50,0x11C6C}, {0x11D50,0x11D59},
    {0x11DA0,0x11DA9}, {0x11F50,0x11F59}, {0x11FC0,0x11FD4}, {0x12400,0x1246E}, {0x16A60,0x16A69}, {0x16AC0,0x16AC9}, {0x16B50,0x16B59},
    {0x16B5B,0x16B61}, {0x16E80,0x16E96}, {0x1D2C0,0x1D2D3}, {0x1D2E0,0x1D2F3}, {0x1D360,0x1D378}, {0x1D7CE,0x1D7FF}, {0x1E140,0x1E149},
    {0x1E2F0,0x1E2F9}, {0x1E4F0,0x1E4F9}, {0x1E8C7,0x1E8CF}, {0x1E950,0x1E959}, {0x1EC71,0x1ECAB}, {0x1ECAD,0x1ECAF}, {0x1ECB1,0x1ECB4},
    {0x1ED01,0x1ED2D}, {0x1ED2F,0x1ED3D}, {0x1F100,0x1F10C}, {0x1FBF0,0x1FBF9},
};

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

/* White_Space as llama.cpp lists it (PropList), not the general category. */
static int is_ws(uint32_t cp) {
    if ((cp >= 9 && cp <= 13) || cp == 0x20) return 1;
    if (cp < 0x85) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static int cp_class(uint32_t cp) {
    if (cp < 128) {
        if ((cp | 32) >= 'a' && (cp | 32) <= 'z') return C_L;
        if (cp >= '0' && cp <= '9') return C_N;
        return is_ws(cp) ? C_WS : 0;
    }
    if (is_ws(cp)) return C_WS;
    if (in_ranges(k_letter, sizeof k_letter / sizeof k_letter[0], cp)) return C_L;
    if (in_ranges(k_number, sizeof k_number / sizeof k_number[0], cp)) return C_N;
    return 0;
}
