/* Tokenizer against golden data from llama.cpp (tests/golden/tokenizer.tsv) and jinja2
 * (tests/golden/chat.tsv), plus round trips, streaming decode, bad input and bad metadata.
 * usage: test_tokenizer MODEL.gguf GOLDEN_DIR */
#include "engine/gguf.h"
#include "support/testutil.h"
#include "engine/tokenizer.h"

#include <string.h>

#define MAXTOK 4096

static char *read_file(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (b && fread(b, 1, (size_t)sz, fp) != (size_t)sz) { free(b); b = NULL; }
    fclose(fp);
    if (b) { b[sz] = 0; *n = (size_t)sz; }
    return b;
}

/* hex string -> bytes (malloc'd, NUL-terminated); "-" gives NULL with *n = 0 */
static char *unhex(const char *h, size_t hn, size_t *n) {
    *n = 0;
    if (hn == 1 && h[0] == '-') return NULL;
    char *b = malloc(hn / 2 + 1);
    for (size_t i = 0; i + 1 < hn; i += 2) { /* not sscanf: glibc's strlen per call is quadratic */
        int hi = h[i] <= '9' ? h[i] - '0' : (h[i] | 32) - 'a' + 10;
        int lo = h[i + 1] <= '9' ? h[i + 1] - '0' : (h[i + 1] | 32) - 'a' + 10;
        b[(*n)++] = (char)(hi * 16 + lo);
    }
    b[*n] = 0;
    return b;
}

/* splits line in place at tabs; returns the field count */
static int fields(char *line, char **f, int max) {
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') { *p = 0; f[n++] = p + 1; }
    return n;
}

static int parse_ids(const char *s, int32_t *ids, int max) {
    int n = 0;
    char *end;
    while (*s && n < max) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

/* strict UTF-8 (no overlongs, surrogates or > U+10FFFF) */
static int utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >= 0xC2 && c < 0xE0) ? 2 : (c >= 0xE0 && c < 0xF0) ? 3 : (c >= 0xF0 && c < 0xF5) ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (size_t j = 1; j < k; j++) if ((s[i + j] & 0xC0) != 0x80) return 0;
        if (k == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0))) return 0;
        if (k == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90))) return 0;
        i += k;
    }
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, int n, int from, const tokenizer *t) {
    fprintf(stderr, "    %s:", label);
    for (int i = from; i < n && i < from + 8; i++) {
        char p[64];
        int l = tokenizer_piece(t, ids[i], p, sizeof p - 1);
        if (l < 0) l = 0;
        p[l < 63 ? l : 63] = 0;
        for (char *c = p; *c; c++) if ((unsigned char)*c < 32) *c = '~';
        fprintf(stderr, " %d'%s'", ids[i], p);
    }
    fprintf(stderr, "%s\n", n > from + 8 ? " ..." : "");
}

static uint64_t fnv_add(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001B3ull;
    return h;
}

static int n_split_chars; /* streaming decodes that actually held back a partial character */

/* decodes ids token by token; every chunk must be whole UTF-8 and all of them the text */
static void check_stream(const tokenizer *t, const char *name, const int32_t *ids, int n, const char *text, size_t len) {
    tokenizer_decoder d;
    tokenizer_decoder_init(&d);
    char *all = malloc(len + TOKENIZER_PIECE_MAX + 8), chunk[TOKENIZER_PIECE_MAX + 4];
    size_t o = 0;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        char p[TOKENIZER_PIECE_MAX];
        int pl = tokenizer_piece(t, ids[i], p, sizeof p);
        int k = tokenizer_decoder_push(&d, t, ids[i], chunk, sizeof chunk);
        if (k < 0 || o + (size_t)k > len) { ok = 0; break; }
        if (!utf8_valid((unsigned char *)chunk, (size_t)k)) ok = 0;
        if (pl > 0 && !utf8_valid((unsigned char *)p, (size_t)pl)) n_split_chars++;
        memcpy(all + o, chunk, (size_t)k);
        o += (size_t)k;
    }
    int k = tokenizer_decoder_flush(&d, chunk, sizeof chunk);
    EXPECT(ok && k == 0 && o == len && memcmp(all, text, len) == 0,
           "%s: streaming decode broke a character or lost bytes (%zu of %zu bytes, flush %d)", name, o, len, k);
    free(all);
}

static void golden_encodings(const tokenizer *t, const char *path) {
    size_t sz;
    char *buf = read_file(path, &sz);
    EXPECT(buf != NULL, "cannot read %s", path);
    if (!buf) return;
    static int32_t want[MAXTOK], got[MAXTOK];
    int n_cases = 0, n_equal = 0, n_round = 0, have_sums = 0, n_eog = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[6];
        int nf = fields(line, f, 6);
        if (line[0] == '#') {
            if (strcmp(f[0], "#n_vocab") == 0 && nf > 1)
                EXPECT(atoi(f[1]) == tokenizer_n_vocab(t), "n_vocab %d, golden %s", tokenizer_n_vocab(t), f[1]);
            if (strcmp(f[0], "#eog") == 0 && nf > 1) {
                int32_t eog[64];
                int ne = parse_ids(f[1], eog, 64), bad = 0;
                for (int32_t id = 0; id < tokenizer_n_vocab(t); id++) {
                    int in = 0;
                    for (int j = 0; j < ne; j++) in |= eog[j] == id;
                    if (in != tokenizer_is_eog(t, id)) { bad++; fprintf(stderr, "    eog mismatch at id %d\n", id); }
                }
                n_eog = ne;
                EXPECT(bad == 0, "EOG set differs from llama.cpp's (%s) in %d ids", f[1], bad);
            }
            if (strcmp(f[0], "#pieces_fnv1a64") == 0 && nf > 2) {
                uint64_t h[2] = {0xCBF29CE484222325ull, 0xCBF29CE484222325ull};
                for (int32_t id = 0; id < tokenizer_n_vocab(t); id++) {
                    char p[TOKENIZER_PIECE_MAX];
                    int l1 = tokenizer_piece(t, id, p, sizeof p), l0 = tokenizer_is_control(t, id) ? 0 : l1;
                    unsigned char le0[4] = {l0 & 255, (l0 >> 8) & 255, 0, 0}, le1[4] = {l1 & 255, (l1 >> 8) & 255, 0, 0};
                    h[0] = fnv_add(fnv_add(h[0], le0, 4), p, (size_t)l0);
                    h[1] = fnv_add(fnv_add(h[1], le1, 4), p, (size_t)l1);
                }
                EXPECT(h[0] == strtoull(f[1], NULL, 16) && h[1] == strtoull(f[2], NULL, 16),
                       "token pieces differ from llama.cpp's (checksums %016llx %016llx, golden %s %s)",
                       (unsigned long long)h[0], (unsigned long long)h[1], f[1], f[2]);
                have_sums = 1;
            }
            continue;
        }
        if (nf < 3) continue;
        size_t len;
        char *text = unhex(f[1], strlen(f[1]), &len);
        int special = atoi(f[2]), nw = nf > 3 ? parse_ids(f[3], want, MAXTOK) : 0, ng = 0;
        char err[HAT_ERRLEN] = "";
        int rc = tokenizer_encode(t, text ? text : "", len, special, got, MAXTOK, &ng, err, sizeof err);
        int first = 0;
        while (first < nw && first < ng && want[first] == got[first]) first++;
        n_cases++;
        if (rc == HAT_OK && ng == nw && first == nw) n_equal++;
        else {
            EXPECT(0, "%s: encoding differs from llama.cpp at token %d (%d vs %d tokens) rc=%d %s", f[0], first, ng, nw, rc, err);
            print_ids("llama.cpp", want, nw, first, t);
            print_ids("ours     ", got, ng, first, t);
        }
        if (!special && utf8_valid((unsigned char *)text, len)) {
            char *dec = malloc(len + TOKENIZER_PIECE_MAX + 1);
            size_t o = 0;
            for (int i = 0; i < ng && o <= len; i++) {
                int l = tokenizer_piece(t, got[i], dec + o, TOKENIZER_PIECE_MAX);
                o += l > 0 ? (size_t)l : 0;
            }
            EXPECT(o == len && memcmp(dec, text, len) == 0, "%s: decode(encode(x)) != x", f[0]);
            n_round++;
            free(dec);
            check_stream(t, f[0], got, ng, text, len);
        }
        free(text);
    }
    EXPECT(n_cases >= 30, "only %d golden cases", n_cases);
    EXPECT(have_sums && n_eog > 0, "golden file lacks the piece checksums or EOG ids");
    EXPECT(n_split_chars > 0, "no golden case split a character across tokens; the streaming check is vacuous");
    printf("golden encodings: %d/%d equal to llama.cpp; %d round trips + streaming decodes (%d tokens with partial characters)\n",
           n_equal, n_cases, n_round, n_split_chars);
    free(buf);
}

static void golden_chat(const tokenizer *t, const char *path) {
    size_t sz;
    char *buf = read_file(path, &sz);
    EXPECT(buf != NULL, "cannot read %s", path);
    if (!buf) return;
    int n = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *f[5];
        if (line[0] == '#' || fields(line, f, 5) < 4) continue;
        size_t ls, lu, lr, no = 0;
        char *sys = unhex(f[1], strlen(f[1]), &ls), *user = unhex(f[2], strlen(f[2]), &lu), *ref = unhex(f[3], strlen(f[3]), &lr);
        char out[8192], err[HAT_ERRLEN] = "";
        int rc = tokenizer_chat_format(t, sys, user, out, sizeof out, &no, err, sizeof err);
        EXPECT(rc == HAT_OK && no == lr && memcmp(out, ref, lr) == 0 && out[no] == 0,
               "chat %s: rendering differs from jinja2 (rc=%d %s)\n  want: %s\n  got:  %s", f[0], rc, err, ref, rc ? "" : out);
        /* too small a buffer is refused and reports the size needed */
        rc = tokenizer_chat_format(t, sys, user, out, lr, &no, err, sizeof err);
        EXPECT(rc == HAT_ERR_ARG && no == lr, "chat %s: buffer of %zu bytes (no room for NUL) not refused", f[0], lr);
        free(sys); free(user); free(ref);
        n++;
    }
    EXPECT(n >= 2, "only %d chat cases", n);
    printf("chat renderings: %d checked\n", n);
    free(buf);
}

/* the token whose piece is the single byte b (GPT-2 vocabularies have all 256) */
static int32_t byte_token(const tokenizer *t, unsigned char b) {
    for (int32_t id = 0; id < tokenizer_n_vocab(t); id++) {
        char p[4];
        if (!tokenizer_is_control(t, id) && tokenizer_piece(t, id, p, 4) == 1 && (unsigned char)p[0] == b) return id;
    }
    return -1;
}

static void bad_input(const tokenizer *t) {
    char p[16], err[HAT_ERRLEN];
    int32_t ids[4];
    int n = -1;
    int nv = tokenizer_n_vocab(t);
    EXPECT(tokenizer_piece(t, -1, p, sizeof p) == -1 && tokenizer_piece(t, nv, p, sizeof p) == -1, "bad ids not rejected by piece");
    EXPECT(!tokenizer_is_eog(t, -1) && !tokenizer_is_eog(t, nv), "bad ids reported as EOG");
    tokenizer_decoder d;
    tokenizer_decoder_init(&d);
    char out[TOKENIZER_PIECE_MAX + 4];
    EXPECT(tokenizer_decoder_push(&d, t, -7, out, sizeof out) == -1 && tokenizer_decoder_push(&d, t, nv, out, sizeof out) == -1,
           "bad ids not rejected by the decoder");
    EXPECT(tokenizer_decoder_push(&d, t, 19556, out, 2) == -1, "decoder accepted a too-small output buffer");
    /* control tokens: skipped by default, rendered on request */
    EXPECT(tokenizer_decoder_push(&d, t, 2, out, sizeof out) == 0, "decoder printed <|im_end|> without being asked");
    d.special = 1;
    int k = tokenizer_decoder_push(&d, t, 2, out, sizeof out);
    EXPECT(k == 10 && memcmp(out, "<|im_end|>", 10) == 0, "decoder with special=1 did not print <|im_end|>");
    /* a 4-byte emoji fed one byte-token at a time comes out whole, and only at the end */
    const unsigned char emoji[4] = {0xF0, 0x9F, 0x98, 0x80};
    int ks = 0, total = 0;
    tokenizer_decoder_init(&d);
    for (int i = 0; i < 4; i++) {
        k = tokenizer_decoder_push(&d, t, byte_token(t, emoji[i]), out + total, (int)sizeof out - total);
        if (i < 3) ks += k;
        total += k > 0 ? k : 0;
    }
    EXPECT(ks == 0 && total == 4 && memcmp(out, emoji, 4) == 0, "emoji split over byte tokens was not held back and reassembled");
    /* a dangling lead byte is held back, then given back as is by flush */
    tokenizer_decoder_init(&d);
    k = tokenizer_decoder_push(&d, t, byte_token(t, 0xE4), out, sizeof out);
    int kf = tokenizer_decoder_flush(&d, out + 8, 8);
    EXPECT(k == 0 && kf == 1 && (unsigned char)out[8] == 0xE4, "dangling lead byte: push %d, flush %d", k, kf);
    /* too-small output array: refused, with the size needed */
    EXPECT(tokenizer_encode(t, "Hello world", 11, 0, ids, 1, &n, err, sizeof err) == HAT_ERR_ARG && n == 2,
           "too-small id buffer not refused (n=%d)", n);
    EXPECT(tokenizer_encode(t, "Hello world", 11, 0, NULL, 0, &n, err, sizeof err) == HAT_ERR_ARG && n == 2, "size query failed");
    EXPECT(tokenizer_encode(t, NULL, 5, 0, ids, 4, &n, err, sizeof err) == HAT_ERR_ARG, "NULL text accepted");
    EXPECT(tokenizer_encode(t, NULL, 0, 1, ids, 4, &n, err, sizeof err) == HAT_OK && n == 0, "empty NULL text refused");
    /* random bytes and random specials never crash, and every id is in range */
    static char junk[4096];
    static int32_t big[8192];
    int bad = 0;
    for (int it = 0; it < 300; it++) {
        size_t len = (size_t)(t_uniform() * sizeof junk);
        for (size_t i = 0; i < len; i++) {
            double u = t_uniform();
            junk[i] = u < 0.3 ? (char)(t_uniform() * 256) : u < 0.6 ? " \t\n'0a<|>"[(int)(t_uniform() * 10)] : (char)('a' + t_uniform() * 26);
        }
        if (it % 7 == 0 && len > 20) memcpy(junk + len / 2, "<|im_start|>", 12);
        if (tokenizer_encode(t, junk, len, it & 1, big, 8192, &n, err, sizeof err) != HAT_OK) { bad++; continue; }
        for (int i = 0; i < n; i++) if (big[i] < 0 || big[i] >= nv) bad++;
    }
    EXPECT(bad == 0, "random input: %d failures", bad);
}

/* ---- bad metadata: small GGUF files built in memory ---- */

typedef struct { unsigned char b[8192]; size_t n; } gbuf;
static void put(gbuf *g, const void *p, size_t n) { memcpy(g->b + g->n, p, n); g->n += n; }
static void put_u32(gbuf *g, uint32_t v) { put(g, &v, 4); }
static void put_u64(gbuf *g, uint64_t v) { put(g, &v, 8); }
static void put_s(gbuf *g, const char *s) { put_u64(g, strlen(s)); put(g, s, strlen(s)); }
static void kv_str(gbuf *g, const char *k, const char *v) { put_s(g, k); put_u32(g, GGUF_TYPE_STRING); put_s(g, v); }
static void kv_strs(gbuf *g, const char *k, const char *const *v, int n) {
    put_s(g, k); put_u32(g, GGUF_TYPE_ARRAY); put_u32(g, GGUF_TYPE_STRING); put_u64(g, (uint64_t)n);
    for (int i = 0; i < n; i++) put_s(g, v[i]);
}
static void kv_i32s(gbuf *g, const char *k, const int32_t *v, int n) {
    put_s(g, k); put_u32(g, GGUF_TYPE_ARRAY); put_u32(g, GGUF_TYPE_INT32); put_u64(g, (uint64_t)n);
    put(g, v, 4 * (size_t)n);
}

/* variant: 0 valid, 1 wrong model, 2 tokens ill-typed, 3 merges missing, 4 non-ChatML template */
static int build_vocab(gbuf *g, int variant, char *err, size_t errlen, tokenizer **out) {
    static const char *const toks[] = {"<|im_start|>", "<|im_end|>", "a", "b", "c", "ab", "abc", "\xC4\xA0", "\xC4\xA0" "a"};
    static const int32_t types[] = {3, 3, 1, 1, 1, 1, 1, 1, 1};
    static const char *const merges[] = {"a b", "ab c", "\xC4\xA0 a"};
    g->n = 0;
    put_u32(g, 0x46554747); put_u32(g, 3); put_u64(g, 0); put_u64(g, variant == 3 ? 5 : 6);
    kv_str(g, "tokenizer.ggml.model", variant == 1 ? "llama" : "gpt2");
    kv_str(g, "tokenizer.ggml.pre", "smollm");
    if (variant == 2) kv_i32s(g, "tokenizer.ggml.tokens", types, 9);
    else kv_strs(g, "tokenizer.ggml.tokens", toks, 9);
    kv_i32s(g, "tokenizer.ggml.token_type", types, 9);
    if (variant != 3) kv_strs(g, "tokenizer.ggml.merges", merges, 3);
    kv_str(g, "tokenizer.chat_template", variant == 4 ? "{{ bos_token }}[INST] {{ m }} [/INST]" : "{{ '<|im_start|>' }}");
    gguf_file *f;
    int rc = gguf_open_buffer(&f, g->b, g->n, "mem.gguf", err, errlen);
    if (rc) return -100 - rc;
    rc = tokenizer_init(out, f, err, errlen);
    gguf_close(f); /* the tokenizer keeps its own copies */
    return rc;
}

static void bad_metadata(void) {
    static gbuf g;
    char err[HAT_ERRLEN], out[256];
    tokenizer *t = NULL;
    int32_t ids[8];
    int n = 0;
    size_t no;
    int rc = build_vocab(&g, 0, err, sizeof err, &t);
    EXPECT(rc == HAT_OK, "tiny vocabulary: rc=%d %s", rc, rc ? err : "");
    if (t) {
        rc = tokenizer_encode(t, "abc ab<|im_end|>", 16, 1, ids, 8, &n, err, sizeof err);
        EXPECT(rc == HAT_OK && n == 4 && ids[0] == 6 && ids[1] == 7 && ids[2] == 5 && ids[3] == 1,
               "tiny vocabulary encoding: rc=%d n=%d [%d %d %d %d]", rc, n, ids[0], ids[1], ids[2], ids[3]);
        rc = tokenizer_chat_format(t, NULL, "hi", out, sizeof out, &no, err, sizeof err);
        EXPECT(rc == HAT_OK && strcmp(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") == 0,
               "ChatML without a default system: rc=%d", rc);
        tokenizer_free(t);
    }
    const int want[] = {0, HAT_ERR_UNSUPPORTED, HAT_ERR_FORMAT, HAT_ERR_NOTFOUND};
    for (int v = 1; v <= 3; v++) {
        t = NULL;
        err[0] = 0;
        rc = build_vocab(&g, v, err, sizeof err, &t);
        EXPECT(rc == want[v] && t == NULL && err[0], "bad metadata variant %d: rc=%d (want %d) '%s'", v, rc, want[v], err);
        tokenizer_free(t);
    }
    t = NULL;
    rc = build_vocab(&g, 4, err, sizeof err, &t);
    EXPECT(rc == HAT_OK, "variant 4 init");
    if (t) {
        err[0] = 0;
        rc = tokenizer_chat_format(t, "s", "u", out, sizeof out, &no, err, sizeof err);
        EXPECT(rc == HAT_ERR_UNSUPPORTED && err[0], "non-ChatML template not refused: rc=%d", rc);
        tokenizer_free(t);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL.gguf GOLDEN_DIR\n", argv[0]); return 2; }
    char err[HAT_ERRLEN], path[4096];
    gguf_file *f;
    tokenizer *t = NULL;
    if (gguf_open(&f, argv[1], err, sizeof err)) { fprintf(stderr, "%s\n", err); return 1; }
    double t0 = hat_now();
    int rc = tokenizer_init(&t, f, err, sizeof err);
    double ms = (hat_now() - t0) * 1e3;
    EXPECT(rc == HAT_OK, "tokenizer_init: %s", err);
    if (rc) return test_summary();
    printf("tokenizer_init: %d tokens in %.1f ms\n", tokenizer_n_vocab(t), ms);
    EXPECT(ms < 500, "tokenizer_init took %.1f ms", ms);
    EXPECT(tokenizer_bos(t) == 1 && tokenizer_eos(t) == 2 && tokenizer_add_bos(t) == 0, "special ids / add_bos from metadata");
    snprintf(path, sizeof path, "%s/tokenizer.tsv", argv[2]);
    golden_encodings(t, path);
    snprintf(path, sizeof path, "%s/chat.tsv", argv[2]);
    golden_chat(t, path);
    bad_input(t);
    bad_metadata();
    tokenizer_free(t);
    gguf_close(f);
    return test_summary();
}
