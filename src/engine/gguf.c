/* gguf.c — GGUF reader; every read is bounds-checked against the mapping (see gguf.h). */
#include "engine/gguf.h"
#include "core/common.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u       /* "GGUF" little-endian */
#define GGUF_MAX_STRING (1u << 30)   /* no key/value string is anywhere near 1 GiB */
#define GGUF_MAX_KEY 65535u

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    char *err;
    size_t errlen;
    const char *name;
} reader;

static int rd_need(reader *r, size_t n, const char *what) {
    if (n > r->size || r->pos > r->size - n)
        return hat_err(r->err, r->errlen, HAT_ERR_FORMAT,
                       "%s: truncated file: %s needs %zu bytes at offset %zu, file has %zu",
                       r->name, what, n, r->pos, r->size);
    return HAT_OK;
}
static int rd_bytes(reader *r, void *dst, size_t n, const char *what) {
    int rc = rd_need(r, n, what);
    if (rc) return rc;
    memcpy(dst, r->p + r->pos, n);
    r->pos += n;
    return HAT_OK;
}
static int rd_u32(reader *r, uint32_t *v, const char *what) { return rd_bytes(r, v, 4, what); }
static int rd_u64(reader *r, uint64_t *v, const char *what) { return rd_bytes(r, v, 8, what); }

static int rd_str(reader *r, gguf_str *s, uint64_t maxlen, const char *what) {
    uint64_t n;
    int rc = rd_u64(r, &n, what);
    if (rc) return rc;
    if (n > maxlen)
        return hat_err(r->err, r->errlen, HAT_ERR_FORMAT,
                       "%s: absurd string length %llu for %s at offset %zu", r->name,
                       (unsigned long long)n, what, r->pos - 8);
    if ((rc = rd_need(r, (size_t)n, what))) return rc;
    s->ptr = (const char *)(r->p + r->pos);
    s->len = n;
    r->pos += (size_t)n;
    return HAT_OK;
}

static char *str_dup(gguf_str s) {
    char *c = xmalloc((size_t)s.len + 1);
    memcpy(c, s.ptr, (size_t)s.len);
    c[s.len] = 0;
    return c;
}

static size_t scalar_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static int rd_scalar(reader *r, gguf_type t, gguf_kv *kv) {
    uint8_t b[8] = {0};
    size_t n = scalar_size(t);
    int rc = rd_bytes(r, b, n, kv->key);
    if (rc) return rc;
    switch (t) {
    case GGUF_TYPE_UINT8: kv->v.u64 = b[0]; break;
    case GGUF_TYPE_INT8: kv->v.i64 = (int8_t)b[0]; break;
    case GGUF_TYPE_BOOL:
        if (b[0] > 1)
            return hat_err(r->err, r->errlen, HAT_ERR_FORMAT, "%s: key %s: bool value %u is not 0/1",
                           r->name, kv->key, b[0]);
        kv->v.b = b[0];
        break;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, b, 2); kv->v.u64 = v; break; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, b, 2); kv->v.i64 = v; break; }
    case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, b, 4); kv->v.u64 = v; break; }
    case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, b, 4); kv->v.i64 = v; break; }
    case GGUF_TYPE_FLOAT32: { float v; memcpy(&v, b, 4); kv->v.f64 = v; break; }
    case GGUF_TYPE_UINT64: memcpy(&kv->v.u64, b, 8); break;
    case GGUF_TYPE_INT64: memcpy(&kv->v.i64, b, 8); break;
    case GGUF_TYPE_FLOAT64: memcpy(&kv->v.f64, b, 8); break;
    default: break;
    }
    return HAT_OK;
}

static int rd_kv(reader *r, gguf_kv *kv) {
    gguf_str key;
    uint32_t t;
    int rc = rd_str(r, &key, GGUF_MAX_KEY, "metadata key");
    if (rc) return rc;
    kv->key = str_dup(key);
    if ((rc = rd_u32(r, &t, kv->key))) return rc;
    if (t >= GGUF_TYPE_COUNT)
        return hat_err(r->err, r->errlen, HAT_ERR_FORMAT, "%s: key %s has unknown value type %u",
                       r->name, kv->key, t);
    kv->type = (gguf_type)t;
    if (t == GGUF_TYPE_STRING) return rd_str(r, &kv->v.str, GGUF_MAX_STRING, kv->key);
    if (t != GGUF_TYPE_ARRAY) return rd_scalar(r, kv->type, kv);

    uint32_t at;
    uint64_t n;
    if ((rc = rd_u32(r, &at, kv->key)) || (rc = rd_u64(r, &n, kv->key))) return rc;
    if (at >= GGUF_TYPE_COUNT || at == GGUF_TYPE_ARRAY)
        return hat_err(r->err, r->errlen, HAT_ERR_FORMAT,
                       "%s: key %s: unsupported array element type %u", r->name, kv->key, at);
    kv->arr_type = (gguf_type)at;
    kv->arr_n = n;
    if (at == GGUF_TYPE_STRING) {
        /* each string takes at least its 8-byte length: bound n before allocating */
        if (n > (r->size - r->pos) / 8)
            return hat_err(r->err, r->errlen, HAT_ERR_FORMAT,
                           "%s: key %s: absurd array length %llu: %llu strings cannot fit in the %zu bytes left "
                           "(truncated or corrupt file)", r->name, kv->key, (unsigned long long)n,
                           (unsigned long long)n, r->size - r->pos);
        kv->arr_str = xmalloc((size_t)(n ? n : 1) * sizeof(gguf_str));
        for (uint64_t i = 0; i < n; i++)
            if ((rc = rd_str(r, &kv->arr_str[i], GGUF_MAX_STRING, kv->key))) return rc;
        return HAT_OK;
    }
    size_t es = scalar_size(kv->arr_type);
    if (n > (r->size - r->pos) / es)
        return hat_err(r->err, r->errlen, HAT_ERR_FORMAT,
                       "%s: key %s: array of %llu elements runs past the end of the file (truncated or corrupt)",
                       r->name, kv->key, (unsigned long long)n);
    kv->arr_data = r->p + r->pos;
    r->pos += (size_t)n * es;
    return HAT_OK;
}

const char *gguf_type_name(ggml_type t) {
    switch (t) {
    case GGML_TYPE_F32: return "F32";
    case GGML_TYPE_F16: return "F16";
    case GGML_TYPE_BF16: return "BF16";
    case GGML_TYPE_Q4_0: return "Q4_0";
    case GGML_TYPE_Q4_1: return "Q4_1";
    case GGML_TYPE_Q8_0: return "Q8_0";
    case GGML_TYPE_Q8_1: return "Q8_1";
    default: return "unknown";
    }
}

int gguf_type_block(ggml_type t, size_t *blck, size_t *bytes) {
    size_t b = 0, s = 0;
    switch (t) {
    case GGML_TYPE_F32: b = 1; s = 4; break;
    case GGML_TYPE_F16: case GGML_TYPE_BF16: b = 1; s = 2; break;
    case GGML_TYPE_Q4_0: b = 32; s = 18; break;   /* f16 d, 16 bytes of nibbles */
    case GGML_TYPE_Q4_1: b = 32; s = 20; break;   /* f16 d, f16 m, 16 bytes */
    case GGML_TYPE_Q8_0: b = 32; s = 34; break;   /* f16 d, 32 int8 */
    case GGML_TYPE_Q8_1: b = 32; s = 36; break;   /* f16 d, f16 s, 32 int8 */
    default: break;
    }
    if (blck) *blck = b;
    if (bytes) *bytes = s;
    return b ? 1 : 0;
}

size_t gguf_row_size(ggml_type t, int64_t n) {
    size_t b, s;
    if (!gguf_type_block(t, &b, &s)) return 0;
    return (size_t)n / b * s;
}

/* magic, version and the two counts, bounded by the file size */
static int parse_header(gguf_file *f, reader *r) {
    char *err = r->err;
    size_t errlen = r->errlen;
    uint32_t magic;
    int rc;
    if ((rc = rd_u32(r, &magic, "magic"))) return rc;
    if (magic != GGUF_MAGIC)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: bad magic 0x%08x: not a GGUF file",
                       f->path, magic);
    if ((rc = rd_u32(r, &f->version, "version"))) return rc;
    if (f->version < 2 || f->version > 3)
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED,
                       "%s: GGUF version %u is not supported (2 and 3 are)", f->path, f->version);
    if ((rc = rd_u64(r, &f->n_tensors, "tensor count")) || (rc = rd_u64(r, &f->n_kv, "kv count")))
        return rc;
    /* each kv needs >= 12 bytes, each tensor info >= 24: bound the counts by the file size */
    if (f->n_kv > f->size / 12 || f->n_tensors > f->size / 24)
        return hat_err(err, errlen, HAT_ERR_FORMAT,
                       "%s: absurd counts: %llu tensors, %llu metadata keys in a %zu-byte file",
                       f->path, (unsigned long long)f->n_tensors, (unsigned long long)f->n_kv, f->size);
    return HAT_OK;
}

/* the metadata keys (no duplicates) and general.alignment */
static int parse_kv(gguf_file *f, reader *r) {
    char *err = r->err;
    size_t errlen = r->errlen;
    int rc;
    f->kv = xcalloc((size_t)f->n_kv, sizeof(gguf_kv));
    for (uint64_t i = 0; i < f->n_kv; i++) {
        if ((rc = rd_kv(r, &f->kv[i]))) return rc;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(f->kv[j].key, f->kv[i].key) == 0)
                return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: duplicate metadata key %s",
                               f->path, f->kv[i].key);
    }
    f->alignment = 32;
    const gguf_kv *al = gguf_find_kv(f, "general.alignment");
    if (al) {
        if (al->type != GGUF_TYPE_UINT32 || al->v.u64 == 0 || (al->v.u64 & (al->v.u64 - 1)))
            return hat_err(err, errlen, HAT_ERR_FORMAT,
                           "%s: general.alignment must be a power-of-two uint32", f->path);
        f->alignment = al->v.u64;
    }
    return HAT_OK;
}

/* tensor info i: name, shape, type and offset, checked */
static int parse_tensor_info(gguf_file *f, reader *r, uint64_t i) {
    int rc;
    gguf_tensor *t = &f->tensors[i];
    gguf_str name;
    uint32_t type;
    if ((rc = rd_str(r, &name, GGUF_MAX_KEY, "tensor name"))) return rc;
    t->name = str_dup(name);
    if ((rc = rd_u32(r, &t->n_dims, t->name))) return rc;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return hat_err(r->err, r->errlen, HAT_ERR_FORMAT, "%s: tensor %s has %u dimensions (1..%d allowed)",
                       f->path, t->name, t->n_dims, GGUF_MAX_DIMS);
    uint64_t nel = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if ((rc = rd_u64(r, &ne, t->name))) return rc;
        if (ne == 0 || ne > (1ull << 40) || nel > (1ull << 42) / ne)
            return hat_err(r->err, r->errlen, HAT_ERR_FORMAT, "%s: tensor %s has absurd dimension ne[%u]=%llu",
                           f->path, t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        nel *= ne;
    }
    if ((rc = rd_u32(r, &type, t->name)) || (rc = rd_u64(r, &t->offset, t->name))) return rc;
    t->type = (ggml_type)type;
    size_t blck, bsz;
    if (type == GGML_TYPE_Q8_1 || !gguf_type_block(t->type, &blck, &bsz))
        return hat_err(r->err, r->errlen, HAT_ERR_UNSUPPORTED,
                       "%s: tensor %s has unsupported type %u (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)",
                       f->path, t->name, type);
    if (t->ne[0] % (int64_t)blck)
        return hat_err(r->err, r->errlen, HAT_ERR_FORMAT, "%s: tensor %s: row length %lld is not a multiple of the %s block size %zu",
                       f->path, t->name, (long long)t->ne[0], gguf_type_name(t->type), blck);
    t->nbytes = (size_t)(nel / blck * bsz);
    if (t->offset % f->alignment)
        return hat_err(r->err, r->errlen, HAT_ERR_FORMAT, "%s: tensor %s offset %llu is not aligned to %llu",
                       f->path, t->name, (unsigned long long)t->offset, (unsigned long long)f->alignment);
    for (uint64_t j = 0; j < i; j++)
        if (strcmp(f->tensors[j].name, t->name) == 0)
            return hat_err(r->err, r->errlen, HAT_ERR_FORMAT, "%s: duplicate tensor name %s", f->path, t->name);
    return HAT_OK;
}

static int by_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* no two tensors' data overlap (a moved offset would make one tensor read another's bytes) */
static int check_overlap(const gguf_file *f, char *err, size_t errlen) {
    if (f->n_tensors < 2) return HAT_OK;
    const gguf_tensor **o = xmalloc(sizeof *o * (size_t)f->n_tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++) o[i] = &f->tensors[i];
    qsort(o, (size_t)f->n_tensors, sizeof *o, by_offset);
    int rc = HAT_OK;
    for (uint64_t i = 1; i < f->n_tensors && !rc; i++)
        if (o[i]->offset < o[i - 1]->offset + o[i - 1]->nbytes)
            rc = hat_err(err, errlen, HAT_ERR_FORMAT,
                         "%s: tensors %s (%zu bytes at data offset %llu) and %s (at %llu) overlap", f->path,
                         o[i - 1]->name, o[i - 1]->nbytes, (unsigned long long)o[i - 1]->offset, o[i]->name,
                         (unsigned long long)o[i]->offset);
    free(o);
    return rc;
}

/* every tensor's data lies inside the file, after the aligned end of the header, none overlapping */
static int parse_data(gguf_file *f, const reader *r) {
    char *err = r->err;
    size_t errlen = r->errlen;
    size_t data = (r->pos + f->alignment - 1) / f->alignment * f->alignment;
    if (data > f->size && f->n_tensors > 0)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: truncated file: data section starts at %zu past the end (%zu)",
                       f->path, data, f->size);
    f->data_offset = data;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        size_t avail = f->size - data;
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return hat_err(err, errlen, HAT_ERR_FORMAT,
                           "%s: tensor %s (%zu bytes at data offset %llu) runs past the end of the file (truncated?)",
                           f->path, t->name, t->nbytes, (unsigned long long)t->offset);
        t->data = f->map + data + t->offset;
    }
    return check_overlap(f, err, errlen);
}

static int parse(gguf_file *f, char *err, size_t errlen) {
    reader r = {f->map, f->size, 0, err, errlen, f->path};
    int rc;
    if ((rc = parse_header(f, &r)) || (rc = parse_kv(f, &r))) return rc;
    f->tensors = xcalloc((size_t)f->n_tensors, sizeof(gguf_tensor));
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((rc = parse_tensor_info(f, &r, i))) return rc;
    return parse_data(f, &r);
}


int gguf_open_buffer(gguf_file **out, const void *buf, size_t size, const char *name, char *err,
                     size_t errlen) {
    *out = NULL;
    gguf_file *f = xcalloc(1, sizeof *f);
    f->path = strdup(name ? name : "<buffer>");
    f->map = buf;
    f->size = size;
    int rc = parse(f, err, errlen);
    if (rc) { gguf_close(f); return rc; }
    *out = f;
    return HAT_OK;
}

int gguf_open(gguf_file **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return hat_err(err, errlen, HAT_ERR_IO, "%s: cannot open model file: %m", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return hat_err(err, errlen, HAT_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: truncated file: %lld bytes is too small for a GGUF header",
                       path, (long long)st.st_size);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return hat_err(err, errlen, HAT_ERR_IO, "%s: mmap failed: %m", path);
    gguf_file *f = xcalloc(1, sizeof *f);
    f->path = strdup(path);
    f->map = m;
    f->size = (size_t)st.st_size;
    f->owns_map = 1;
    int rc = parse(f, err, errlen);
    if (rc) { gguf_close(f); return rc; }
    *out = f;
    return HAT_OK;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) { free(f->kv[i].key); free(f->kv[i].arr_str); }
    if (f->tensors)
        for (uint64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->kv);
    free(f->tensors);
    if (f->owns_map && f->map) munmap((void *)f->map, f->size);
    free(f->path);
    free(f);
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    return NULL;
}

static int find_typed(const gguf_file *f, const char *key, const gguf_kv **kv, char *err, size_t errlen) {
    *kv = gguf_find_kv(f, key);
    if (!*kv) return hat_err(err, errlen, HAT_ERR_NOTFOUND, "%s: metadata key %s is missing", f->path, key);
    return HAT_OK;
}
static int type_err(const gguf_file *f, const char *key, const char *want, char *err, size_t errlen) {
    return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: metadata key %s is not %s", f->path, key, want);
}
static int is_int_type(gguf_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_INT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_INT16 ||
           t == GGUF_TYPE_UINT32 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}
static int is_signed(gguf_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, char *err, size_t errlen) {
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err, errlen);
    if (rc) return rc;
    if (!is_int_type(kv->type)) return type_err(f, key, "an integer", err, errlen);
    if (is_signed(kv->type) ? (kv->v.i64 < 0 || kv->v.i64 > (int64_t)UINT32_MAX) : kv->v.u64 > UINT32_MAX)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: metadata key %s is out of range for uint32", f->path, key);
    *out = is_signed(kv->type) ? (uint32_t)kv->v.i64 : (uint32_t)kv->v.u64;
    return HAT_OK;
}
int gguf_get_f32(const gguf_file *f, const char *key, float *out, char *err, size_t errlen) {
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err, errlen);
    if (rc) return rc;
    if (kv->type != GGUF_TYPE_FLOAT32 && kv->type != GGUF_TYPE_FLOAT64) return type_err(f, key, "a float", err, errlen);
    *out = (float)kv->v.f64;
    return HAT_OK;
}
int gguf_get_bool(const gguf_file *f, const char *key, int *out, char *err, size_t errlen) {
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err, errlen);
    if (rc) return rc;
    if (kv->type != GGUF_TYPE_BOOL) return type_err(f, key, "a bool", err, errlen);
    *out = kv->v.b;
    return HAT_OK;
}
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, char *err, size_t errlen) {
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err, errlen);
    if (rc) return rc;
    if (kv->type != GGUF_TYPE_STRING) return type_err(f, key, "a string", err, errlen);
    *out = kv->v.str;
    return HAT_OK;
}
int gguf_get_arr_str(const gguf_file *f, const char *key, const gguf_str **items, uint64_t *n,
                     char *err, size_t errlen) {
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err, errlen);
    if (rc) return rc;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING)
        return type_err(f, key, "an array of strings", err, errlen);
    *items = kv->arr_str;
    *n = kv->arr_n;
    return HAT_OK;
}
int gguf_get_arr_i32(const gguf_file *f, const char *key, const int32_t **items, uint64_t *n,
                     char *err, size_t errlen) {
    const gguf_kv *kv;
    int rc = find_typed(f, key, &kv, err, errlen);
    if (rc) return rc;
    if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_INT32)
        return type_err(f, key, "an array of int32", err, errlen);
    /* the mapping is only byte-aligned here; int32 arrays in GGUF are read in place on x86-64 */
    *items = (const int32_t *)kv->arr_data;
    *n = kv->arr_n;
    return HAT_OK;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

int gguf_get_tensor(const gguf_file *f, const char *name, uint32_t types, uint32_t n_dims,
                    const int64_t *ne, const gguf_tensor **out, char *err, size_t errlen) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    *out = NULL;
    if (!t) return hat_err(err, errlen, HAT_ERR_NOTFOUND, "%s: tensor %s is missing", f->path, name);
    if (types && !(types & (1u << t->type)))
        return hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "%s: tensor %s has type %s, not one this engine computes with",
                       f->path, name, gguf_type_name(t->type));
    if (t->n_dims != n_dims)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: tensor %s has %u dimensions, expected %u",
                       f->path, name, t->n_dims, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        if (ne && ne[d] >= 0 && t->ne[d] != ne[d])
            return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: tensor %s has ne[%u]=%lld, expected %lld",
                           f->path, name, d, (long long)t->ne[d], (long long)ne[d]);
    *out = t;
    return HAT_OK;
}

void gguf_model_name(const gguf_file *f, char *out, size_t len) {
    gguf_str s = {0};
    out[0] = 0;
    if (gguf_get_str(f, "general.name", &s, NULL, 0) == HAT_OK) {
        size_t n = s.len < len - 1 ? (size_t)s.len : len - 1;
        memcpy(out, s.ptr, n);
        out[n] = 0;
    }
}
