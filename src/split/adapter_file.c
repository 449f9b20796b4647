/* adapter_file.c — adapter files: save and load, in the format documented in adapter.h. */
#include "split/adapter_internal.h"

#include "core/bytes.h"
#include "core/common.h"
#include "core/crc32c.h"

#include <stdlib.h>
#include <string.h>

#define MAGIC "HATADPT"            /* 8 bytes with the NUL */
#define HDR_FIXED 268              /* bytes before the corpus text */
#define MAX_DIM (1 << 16)

/* floats of weights for a form (0 for a bad form) */
static uint64_t weight_count(adapter_form form, uint64_t dim, uint64_t rank) {
    switch (form) {
    case ADAPTER_IDENTITY: return 0;
    case ADAPTER_LINEAR: return dim * dim + dim;
    case ADAPTER_LOWRANK: return 2 * rank * dim + dim;
    }
    return 0;
}

int adapter_save(const adapter *ad, const char *path, char *err, size_t errlen) {
    const adapter_info *in = &ad->info;
    const size_t nc = strlen(in->corpus), nw = (size_t)weight_count(in->form, (uint64_t)in->dim, (uint64_t)in->rank);
    const size_t size = HDR_FIXED + nc + 4 * nw + 4;
    uint8_t *buf = xcalloc(1, size);
    memcpy(buf, MAGIC, 8);
    put_u32(buf + 8, ADAPTER_FORMAT_VERSION);
    put_u32(buf + 12, (uint32_t)in->form);
    put_u32(buf + 16, (uint32_t)in->a);
    put_u32(buf + 20, (uint32_t)in->b);
    put_u32(buf + 24, (uint32_t)in->n_layer);
    put_u32(buf + 28, (uint32_t)in->dim);
    put_u32(buf + 32, (uint32_t)in->rank);
    put_u32(buf + 36, (uint32_t)in->min_pos);
    put_u64(buf + 40, in->model_size);
    put_u32(buf + 48, in->model_crc);
    memcpy(buf + 56, in->model_name, strnlen(in->model_name, 63));
    put_f64(buf + 120, in->lambda);
    put_u64(buf + 128, in->n_train);
    put_u64(buf + 136, in->n_heldout);
    put_f64(buf + 144, in->r2_train);
    put_f64(buf + 152, in->r2_heldout);
    put_f64(buf + 160, in->r2_target_train);
    put_f64(buf + 168, in->r2_target_heldout);
    put_f64(buf + 176, in->r2_identity_heldout);
    put_f64(buf + 184, in->rms_heldout);
    put_f64(buf + 192, in->rel_err_heldout);
    put_f64(buf + 200, in->agree_heldout);
    put_f64(buf + 208, in->agree_identity_heldout);
    put_u64(buf + 216, in->n_agree);
    put_u64(buf + 224, (uint64_t)in->created);
    memcpy(buf + 232, in->hat_version, strnlen(in->hat_version, 15));
    memcpy(buf + 248, in->hat_git, strnlen(in->hat_git, 15));
    put_u32(buf + 264, (uint32_t)nc);
    memcpy(buf + HDR_FIXED, in->corpus, nc);
    uint8_t *p = buf + HDR_FIXED + nc;
    const int d = in->dim, r = in->rank;
    if (in->form == ADAPTER_LINEAR)
        for (size_t i = 0; i < (size_t)d * d; i++, p += 4) put_f32(p, ad->w[i]);
    if (in->form == ADAPTER_LOWRANK) {
        for (size_t i = 0; i < (size_t)r * d; i++, p += 4) put_f32(p, ad->w[i]);
        for (size_t i = 0; i < (size_t)d * r; i++, p += 4) put_f32(p, ad->u[i]);
    }
    if (in->form != ADAPTER_IDENTITY)
        for (int i = 0; i < d; i++, p += 4) put_f32(p, ad->c[i]);
    put_u32(p, crc32c(0, buf, size - 4));

    const int rc = hat_write_file(path, buf, size, err, errlen);
    free(buf);
    return rc;
}

/* Magic, version, size and checksum of a whole file in memory; HAT_OK when its weights can be read. */
static int check_layout(const uint8_t *buf, size_t size, const char *path, char *err, size_t errlen) {
#define BAD(code, ...) return hat_err(err, errlen, code, __VA_ARGS__)
    if (size < 12 || memcmp(buf, MAGIC, 8) != 0)
        BAD(HAT_ERR_FORMAT, "%s is not a HAT adapter file (%s)", path, size < 8 ? "too short" : "bad magic");
    const uint32_t version = get_u32(buf + 8);
    if (version != ADAPTER_FORMAT_VERSION)
        BAD(HAT_ERR_UNSUPPORTED, "adapter %s has format version %u, this build reads version %d", path, version,
            ADAPTER_FORMAT_VERSION);
    if (size < HDR_FIXED + 4) BAD(HAT_ERR_FORMAT, "adapter %s is truncated (%zu bytes)", path, size);
    const uint32_t form = get_u32(buf + 12), fdim = get_u32(buf + 28), rank = get_u32(buf + 32);
    const uint32_t nc = get_u32(buf + 264);
    if (form > ADAPTER_LOWRANK) BAD(HAT_ERR_FORMAT, "adapter %s has an unknown form %u", path, form);
    if (fdim < 1 || fdim > MAX_DIM || (form == ADAPTER_LOWRANK && (rank < 1 || rank > fdim)))
        BAD(HAT_ERR_FORMAT, "adapter %s has bad dimensions (dim %u, rank %u)", path, fdim, rank);
    const uint64_t expect = HDR_FIXED + (uint64_t)nc + 4 * weight_count((adapter_form)form, fdim, rank) + 4;
    if ((uint64_t)size != expect)
        BAD(HAT_ERR_FORMAT, "adapter %s is %s: %zu bytes, its header says %llu", path,
            (uint64_t)size < expect ? "truncated" : "too long", size, (unsigned long long)expect);
    const uint32_t stored = get_u32(buf + size - 4), crc = crc32c(0, buf, size - 4);
    if (stored != crc) BAD(HAT_ERR_FORMAT, "adapter %s is corrupt: checksum 0x%08x, stored 0x%08x", path, crc, stored);
    return HAT_OK;
#undef BAD
}

/* The adapter in a file that passed check_layout. */
static adapter *parse_adapter(const uint8_t *buf) {
    const uint32_t form = get_u32(buf + 12), fdim = get_u32(buf + 28), rank = get_u32(buf + 32);
    const uint32_t nc = get_u32(buf + 264);
    adapter *ad = adapter_alloc((adapter_form)form, (int)fdim, (int)rank);
    adapter_info *in = &ad->info;
    in->a = (int)get_u32(buf + 16);
    in->b = (int)get_u32(buf + 20);
    in->n_layer = (int)get_u32(buf + 24);
    in->min_pos = (int)get_u32(buf + 36);
    in->model_size = get_u64(buf + 40);
    in->model_crc = get_u32(buf + 48);
    get_str(in->model_name, sizeof in->model_name, buf + 56, 64);
    in->lambda = get_f64(buf + 120);
    in->n_train = get_u64(buf + 128);
    in->n_heldout = get_u64(buf + 136);
    in->r2_train = get_f64(buf + 144);
    in->r2_heldout = get_f64(buf + 152);
    in->r2_target_train = get_f64(buf + 160);
    in->r2_target_heldout = get_f64(buf + 168);
    in->r2_identity_heldout = get_f64(buf + 176);
    in->rms_heldout = get_f64(buf + 184);
    in->rel_err_heldout = get_f64(buf + 192);
    in->agree_heldout = get_f64(buf + 200);
    in->agree_identity_heldout = get_f64(buf + 208);
    in->n_agree = get_u64(buf + 216);
    in->created = (int64_t)get_u64(buf + 224);
    get_str(in->hat_version, sizeof in->hat_version, buf + 232, 16);
    get_str(in->hat_git, sizeof in->hat_git, buf + 248, 16);
    get_str(in->corpus, sizeof in->corpus, buf + HDR_FIXED, nc);
    const uint8_t *p = buf + HDR_FIXED + nc;
    if (form == ADAPTER_LINEAR)
        for (size_t i = 0; i < (size_t)fdim * fdim; i++, p += 4) ad->w[i] = get_f32(p);
    if (form == ADAPTER_LOWRANK) {
        for (size_t i = 0; i < (size_t)rank * fdim; i++, p += 4) ad->w[i] = get_f32(p);
        for (size_t i = 0; i < (size_t)fdim * rank; i++, p += 4) ad->u[i] = get_f32(p);
    }
    if (form != ADAPTER_IDENTITY)
        for (uint32_t i = 0; i < fdim; i++, p += 4) ad->c[i] = get_f32(p);
    return ad;
}

/* Is the adapter in `path` this model's (fingerprint, when model_file), this shape's and this split's? */
static int check_match(const adapter_info *in, const char *path, const gguf_file *model_file, int n_layer, int dim,
                       int a, int b, char *err, size_t errlen) {
    if (model_file) {
        uint64_t msize;
        uint32_t mcrc;
        char mname[64];
        adapter_model_fingerprint(model_file, &msize, &mcrc);
        gguf_model_name(model_file, mname, sizeof mname);
        if (msize != in->model_size || mcrc != in->model_crc)
            return hat_err(err, errlen, HAT_ERR_ARG,
                           "adapter %s was fitted for model %s (crc 0x%08x, %llu bytes), this model file is %s "
                           "(crc 0x%08x, %llu bytes)", path, in->model_name[0] ? in->model_name : "?", in->model_crc,
                           (unsigned long long)in->model_size, mname[0] ? mname : "?", mcrc, (unsigned long long)msize);
    }
    if (in->n_layer != n_layer || in->dim != dim)
        return hat_err(err, errlen, HAT_ERR_ARG,
                       "adapter %s was fitted for a model with %d layers of dim %d, the run uses %d layers of dim %d",
                       path, in->n_layer, in->dim, n_layer, dim);
    if (in->a != a || in->b != b)
        return hat_err(err, errlen, HAT_ERR_ARG, "adapter %s was fitted for split a=%d b=%d, the run uses a=%d b=%d",
                       path, in->a, in->b, a, b);
    return HAT_OK;
}

int adapter_load(adapter **out, const char *path, const gguf_file *model_file, int n_layer, int dim, int a, int b,
                 char *err, size_t errlen) {
    *out = NULL;
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = hat_read_file(path, "adapter", &buf, &size, err, errlen);
    if (rc) return rc;
    rc = check_layout(buf, size, path, err, errlen);
    adapter *ad = rc ? NULL : parse_adapter(buf);
    free(buf);
    if (!rc) rc = check_match(&ad->info, path, model_file, n_layer, dim, a, b, err, errlen);
    if (rc) {
        adapter_free(ad);
        return rc;
    }
    *out = ad;
    return HAT_OK;
}
