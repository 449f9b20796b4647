/* GGUF reader: a valid file built in memory, then corrupted variants, each rejected with its
 * own message; every truncation and random byte flips must never crash (run under ASan in
 * the sanitizer build); typed lookups; the real model file (optional argv[1]). */
#include "core/common.h"
#include "engine/gguf.h"
#include "support/testutil.h"

#include <stdint.h>
#include <string.h>

typedef struct { uint8_t b[8192]; size_t n; } buf;
static void put(buf *w, const void *p, size_t n) { memcpy(w->b + w->n, p, n); w->n += n; }
static void u32(buf *w, uint32_t v) { put(w, &v, 4); }
static void u64(buf *w, uint64_t v) { put(w, &v, 8); }
static void str(buf *w, const char *s) { u64(w, strlen(s)); put(w, s, strlen(s)); }

/* knobs that each corruption turns */
typedef struct {
    uint32_t magic, version, kv_type_arch, bool_val, n_dims_a, type_b;
    uint64_t n_tensors, key_len_override, arr_n_override, ne0_a, off_b_delta;
    int dup_key, truncate_data, misalign, overlap;
    int64_t ne0_b;
} knobs;

static knobs good(void) {
    return (knobs){.magic = 0x46554747u, .version = 3, .kv_type_arch = GGUF_TYPE_STRING, .bool_val = 1,
                   .n_dims_a = 2, .type_b = GGML_TYPE_Q8_0, .n_tensors = 2, .ne0_a = 32, .ne0_b = 64};
}

/* header, 4 keys (string, u32, bool, string array), tensors a: F32 [32,2], b: Q8_0 [64] */
static void build(buf *w, knobs k) {
    w->n = 0;
    u32(w, k.magic);
    u32(w, k.version);
    u64(w, k.n_tensors);
    u64(w, 4 + (k.dup_key ? 1 : 0));
    if (k.key_len_override) { u64(w, k.key_len_override); put(w, "general.architecture", 20); }
    else str(w, "general.architecture");
    u32(w, k.kv_type_arch);
    str(w, "llama");
    str(w, "test.count"); u32(w, GGUF_TYPE_UINT32); u32(w, 7);
    str(w, "test.flag"); u32(w, GGUF_TYPE_BOOL); uint8_t bv = (uint8_t)k.bool_val; put(w, &bv, 1);
    str(w, "test.words"); u32(w, GGUF_TYPE_ARRAY); u32(w, GGUF_TYPE_STRING);
    u64(w, k.arr_n_override ? k.arr_n_override : 3);
    str(w, "x"); str(w, "yy"); str(w, "zzz");
    if (k.dup_key) { str(w, "test.count"); u32(w, GGUF_TYPE_UINT32); u32(w, 8); }
    str(w, "a"); u32(w, k.n_dims_a); u64(w, k.ne0_a);
    for (uint32_t d = 1; d < k.n_dims_a && d < 8; d++) u64(w, 2);
    u32(w, GGML_TYPE_F32); u64(w, 0);
    str(w, "b"); u32(w, 1); u64(w, (uint64_t)k.ne0_b); u32(w, k.type_b);
    u64(w, (k.overlap ? 224 : 256) + k.off_b_delta + (k.misalign ? 4 : 0));
    while (w->n % 32) { uint8_t z = 0; put(w, &z, 1); }
    size_t data = w->n;
    for (int i = 0; i < 64; i++) { float f = (float)i; put(w, &f, 4); }   /* a: 256 bytes */
    for (int i = 0; i < 68; i++) { uint8_t z = (uint8_t)i; put(w, &z, 1); } /* b: 2 Q8_0 blocks of 34 */
    if (k.truncate_data) w->n = data + 256 + 10;
}

static void expect_error(const char *what, knobs k, const char *needle) {
    buf w;
    build(&w, k);
    gguf_file *f = NULL;
    char err[HAT_ERRLEN] = "";
    int rc = gguf_open_buffer(&f, w.b, w.n, "t.gguf", err, sizeof err);
    EXPECT(rc != HAT_OK && f == NULL, "%s: accepted", what);
    EXPECT(strstr(err, needle) != NULL, "%s: message '%s' lacks '%s'", what, err, needle);
    if (rc != HAT_OK) printf("  %-28s -> %s\n", what, err);
    gguf_close(f);
}

int main(int argc, char **argv) {
    buf w;
    char err[HAT_ERRLEN];
    gguf_file *f;
    build(&w, good());
    int rc = gguf_open_buffer(&f, w.b, w.n, "t.gguf", err, sizeof err);
    EXPECT(rc == HAT_OK, "valid file rejected: %s", err);
    if (rc == HAT_OK) {
        uint32_t v = 0;
        int b = 0;
        gguf_str s;
        const gguf_str *items;
        uint64_t n;
        EXPECT(gguf_get_u32(f, "test.count", &v, err, sizeof err) == HAT_OK && v == 7, "u32 lookup");
        EXPECT(gguf_get_bool(f, "test.flag", &b, err, sizeof err) == HAT_OK && b == 1, "bool lookup");
        EXPECT(gguf_get_str(f, "general.architecture", &s, err, sizeof err) == HAT_OK && s.len == 5 &&
               !memcmp(s.ptr, "llama", 5), "string lookup");
        EXPECT(gguf_get_arr_str(f, "test.words", &items, &n, err, sizeof err) == HAT_OK && n == 3 &&
               items[2].len == 3 && !memcmp(items[2].ptr, "zzz", 3), "string array lookup");
        EXPECT(gguf_get_u32(f, "general.architecture", &v, err, sizeof err) == HAT_ERR_FORMAT &&
               strstr(err, "not an integer"), "u32 lookup of a string: %s", err);
        EXPECT(gguf_get_u32(f, "no.such.key", &v, err, sizeof err) == HAT_ERR_NOTFOUND && strstr(err, "missing"),
               "missing key: %s", err);
        const gguf_tensor *t;
        int64_t ne_ok[2] = {32, 2}, ne_bad[2] = {32, 3};
        EXPECT(gguf_get_tensor(f, "a", 1u << GGML_TYPE_F32, 2, ne_ok, &t, err, sizeof err) == HAT_OK &&
               ((const float *)t->data)[63] == 63.0f, "tensor a lookup/data");
        EXPECT(gguf_get_tensor(f, "a", 1u << GGML_TYPE_F32, 2, ne_bad, &t, err, sizeof err) == HAT_ERR_FORMAT &&
               strstr(err, "expected 3"), "tensor shape check: %s", err);
        EXPECT(gguf_get_tensor(f, "a", 1u << GGML_TYPE_Q8_0, 2, ne_ok, &t, err, sizeof err) == HAT_ERR_UNSUPPORTED,
               "tensor dtype check: %s", err);
        EXPECT(gguf_get_tensor(f, "nope", 0, 1, NULL, &t, err, sizeof err) == HAT_ERR_NOTFOUND, "missing tensor");
        EXPECT(f->tensors[1].nbytes == 68, "Q8_0 [64] is 2 blocks of 34 bytes, got %zu", f->tensors[1].nbytes);
        gguf_close(f);
    }

    printf("corrupted variants:\n");
    knobs k;
    k = good(); k.magic = 0x46554746u;            expect_error("bad magic", k, "bad magic");
    k = good(); k.version = 99;                   expect_error("unknown version", k, "version 99");
    k = good(); k.key_len_override = 1ull << 40;  expect_error("absurd key length", k, "absurd string length");
    k = good(); k.kv_type_arch = 42;              expect_error("unknown value type", k, "unknown value type 42");
    k = good(); k.arr_n_override = 1ull << 61;    expect_error("absurd array length", k, "absurd array length");
    k = good(); k.bool_val = 7;                   expect_error("bool not 0/1", k, "not 0/1");
    k = good(); k.dup_key = 1;                    expect_error("duplicate key", k, "duplicate metadata key");
    k = good(); k.n_tensors = 1ull << 60;         expect_error("absurd tensor count", k, "absurd counts");
    k = good(); k.n_dims_a = 5;                   expect_error("too many dimensions", k, "5 dimensions");
    k = good(); k.ne0_a = 0;                      expect_error("zero dimension", k, "absurd dimension");
    k = good(); k.type_b = 77;                    expect_error("unknown tensor type", k, "unsupported type 77");
    k = good(); k.type_b = GGML_TYPE_Q8_1;        expect_error("activation-only type", k, "unsupported type 9");
    k = good(); k.ne0_b = 40;                     expect_error("row not whole blocks", k, "not a multiple");
    k = good(); k.misalign = 1;                   expect_error("misaligned offset", k, "not aligned");
    k = good(); k.off_b_delta = 1u << 20;         expect_error("offset past the end", k, "runs past the end");
    k = good(); k.truncate_data = 1;              expect_error("truncated data", k, "runs past the end");
    k = good(); k.overlap = 1;                    expect_error("overlapping tensors", k, "overlap");

    /* every proper prefix is an error (a truncated file), never a crash */
    build(&w, good());
    int accepted = 0;
    for (size_t n = 0; n < w.n; n++) {
        rc = gguf_open_buffer(&f, w.b, n, "t.gguf", err, sizeof err);
        if (rc == HAT_OK) { accepted++; gguf_close(f); }
    }
    EXPECT(accepted == 0, "%d truncated prefixes were accepted", accepted);
    /* random byte flips in the header/metadata/tensor table: any outcome but a crash */
    size_t meta = 300;
    int ok = 0, rejected = 0;
    for (int trial = 0; trial < 20000; trial++) {
        buf m = w;
        int flips = 1 + (int)(t_uniform() * 4);
        for (int j = 0; j < flips; j++) m.b[(size_t)(t_uniform() * meta)] ^= (uint8_t)(1u << (int)(t_uniform() * 8));
        rc = gguf_open_buffer(&f, m.b, m.n, "t.gguf", err, sizeof err);
        if (rc == HAT_OK) { ok++; gguf_close(f); } else rejected++;
    }
    printf("random flips: %d accepted, %d rejected, no crash\n", ok, rejected);
    EXPECT(rejected > 0, "random corruption never detected");

    rc = gguf_open(&f, "/nonexistent/model.gguf", err, sizeof err);
    EXPECT(rc == HAT_ERR_IO && strstr(err, "cannot open"), "missing file: %s", err);
    if (argc > 1) {  /* the real model: opens, and a truncated copy is rejected */
        rc = gguf_open(&f, argv[1], err, sizeof err);
        EXPECT(rc == HAT_OK, "real model rejected: %s", err);
        if (rc == HAT_OK) {
            size_t half = f->size / 2;
            int rc2 = gguf_open_buffer(&(gguf_file *){NULL}, f->map, half, "half.gguf", err, sizeof err);
            EXPECT(rc2 == HAT_ERR_FORMAT && strstr(err, "runs past the end"), "truncated real model: %s", err);
            printf("real model: %llu tensors, %llu keys; truncated copy -> %s\n", (unsigned long long)f->n_tensors,
                   (unsigned long long)f->n_kv, err);
            gguf_close(f);
        }
    }
    return test_summary();
}
