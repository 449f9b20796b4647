/* tokenizer.c — byte-level BPE matching llama.cpp's "gpt2"/"smollm" tokenizer (see tokenizer.h).
 *
 * Why hand-written splitting instead of PCRE2: llama.cpp does not run the GPT-2 regex; it runs
 * its own matcher (unicode_regex_split_custom_gpt2) over per-code-point flags from its own
 * Unicode 15.1 tables, after a first \p{N} pass, and decodes invalid UTF-8 its own way. Copying
 * that behaviour on code points (with the same Unicode version) is what gives exact equality;
 * PCRE2 10.42 carries a different Unicode version and regex semantics at chunk edges.
 */
#include "engine/tokenizer.h"
#include "engine/tokenizer_unicode.h"

#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_internal.h"

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
        t->byte_enc_len[b] = (uint8_t)tok_utf8_put(cp, (unsigned char *)t->byte_enc[b]);
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
            uint32_t cp = tok_utf8_next((const unsigned char *)s, n, &i);
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
        int k = tok_utf8_put(st->cp[i], u);
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
        st->cp[m] = tok_utf8_next((const unsigned char *)s, n, &i);
        st->cls[m] = (uint8_t)(st->cp[m] > 0x10FFFF ? 0 : tok_cp_class(st->cp[m]));
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
static frag *special_partition(const tokenizer *t, const char *text, size_t len, int parse_special, size_t *nf_out) {
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
    frag *fr = special_partition(t, text, len, parse_special, &nf);
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
