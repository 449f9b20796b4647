/* gguf.h — read-only GGUF (v2/v3) reader over mmap.
 *
 * Spec: ggml's docs/gguf.md. Layout: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv key/value pairs, n_tensors tensor infos, padding to general.alignment (default 32),
 * tensor data. Every length, count and offset read from the file is checked against the
 * file size before use: a corrupt file gives an error message, never an out-of-bounds read.
 * Strings inside the file are not NUL-terminated: they are exposed as (ptr, len) views into
 * the mapping (gguf_str); keys and tensor names are copied as C strings.
 */
#ifndef HAT_GGUF_H
#define HAT_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* ggml tensor types (values as in ggml.h). Only those with a dequantiser are accepted. */
typedef enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q8_1 = 9, /* activation format only; never accepted in a file */
    GGML_TYPE_BF16 = 30,
} ggml_type;

/* metadata value types (gguf spec) */
typedef enum {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12, GGUF_TYPE_COUNT
} gguf_type;

typedef struct { const char *ptr; uint64_t len; } gguf_str;  /* view into the mapping */

typedef struct {
    char *key;
    gguf_type type;          /* for arrays: GGUF_TYPE_ARRAY */
    gguf_type arr_type;      /* element type when type == ARRAY */
    uint64_t arr_n;          /* element count when type == ARRAY */
    const void *arr_data;    /* first element (scalars arrays) in the mapping */
    gguf_str *arr_str;       /* string arrays: arr_n views (owned) */
    union { uint64_t u64; int64_t i64; double f64; int b; gguf_str str; } v;
} gguf_kv;

#define GGUF_MAX_DIMS 4
typedef struct {
    char *name;
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];   /* ne[0] is the contiguous (row) dimension, as in ggml */
    ggml_type type;
    uint64_t offset;             /* relative to the data section */
    const void *data;            /* into the mapping */
    size_t nbytes;
} gguf_tensor;

typedef struct gguf_file {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_tensor *tensors;
    size_t data_offset;          /* start of the tensor data section in the file */
    int owns_map;                /* 1 when opened from a path (munmap on close) */
} gguf_file;

/* Opens and validates the whole file (header, metadata, tensor table, every tensor's
 * extent inside the file). Returns HAT_OK or an error code with a message in err. */
int gguf_open(gguf_file **out, const char *path, char *err, size_t errlen);
/* Same, over a caller-owned buffer (used by tests and fuzzing); buf must outlive the file. */
int gguf_open_buffer(gguf_file **out, const void *buf, size_t size, const char *name,
                     char *err, size_t errlen);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key);
/* Typed lookups: HAT_ERR_NOTFOUND if missing, HAT_ERR_FORMAT on type mismatch.
 * Integer getters accept any integer type whose value fits. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, char *err, size_t errlen);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, char *err, size_t errlen);
int gguf_get_bool(const gguf_file *f, const char *key, int *out, char *err, size_t errlen);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, char *err, size_t errlen);
/* general.name into out (len bytes, NUL-terminated, cut to fit); "" when the file has none */
void gguf_model_name(const gguf_file *f, char *out, size_t len);
/* Array lookups: element type must match. */
int gguf_get_arr_str(const gguf_file *f, const char *key, const gguf_str **items, uint64_t *n,
                     char *err, size_t errlen);
int gguf_get_arr_i32(const gguf_file *f, const char *key, const int32_t **items, uint64_t *n,
                     char *err, size_t errlen);

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);
/* Lookup with checks: exists, type is one of `types` (bitmask of 1u<<ggml_type, 0 = any),
 * n_dims and each ne[] equal to the expected (-1 = don't care). */
int gguf_get_tensor(const gguf_file *f, const char *name, uint32_t types, uint32_t n_dims,
                    const int64_t *ne, const gguf_tensor **out, char *err, size_t errlen);

const char *gguf_type_name(ggml_type t);
/* Elements per block and bytes per block; 0 for unsupported types. */
int gguf_type_block(ggml_type t, size_t *blck, size_t *bytes);
/* Bytes of a row of n elements (n must be a multiple of the block size). */
size_t gguf_row_size(ggml_type t, int64_t n);

#endif
