/* real_ref.c — reference and output files of the two-machine real-model check, and the cloud-like
 * stepping of a backend over the reference's inputs (real_ref.h). */
#include "real_ref.h"

#include "core/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char REF_MAGIC[8] = {'H', 'A', 'T', 'R', 'E', 'A', 'L', '1'};
static const char OUT_MAGIC[8] = {'H', 'A', 'T', 'R', 'O', 'U', 'T', '1'};

typedef struct {
    int32_t dim, n_layer, a, l1, n_slot, chunk, round;
    char model[128];
    uint64_t model_bytes;
    int32_t n_prompt[RR_MAX_SLOT], n_pos[RR_MAX_SLOT];
} ref_head;

/* appends n bytes to a growing buffer */
typedef struct { uint8_t *p; size_t n, cap; } obuf;
static void put(obuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p, "out of memory");
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static int put_file(const char *path, obuf *b, char *err, size_t errlen) {
    const int rc = hat_write_file(path, b->p, b->n, err, errlen);
    free(b->p);
    return rc;
}
static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n ? 0 : 1; }

/* written whole through path.tmp and a rename (hat_write_file) */
int real_ref_write(const char *path, const real_ref *r, char *err, size_t errlen) {
    ref_head h = {r->dim, r->n_layer, r->a, r->l1, r->n_slot, r->chunk, r->round, {0}, r->model_bytes, {0}, {0}};
    snprintf(h.model, sizeof h.model, "%s", r->model);
    for (int s = 0; s < r->n_slot; s++) { h.n_prompt[s] = r->n_prompt[s]; h.n_pos[s] = r->n_pos[s]; }
    obuf b = {0};
    put(&b, REF_MAGIC, 8);
    put(&b, &h, sizeof h);
    for (int s = 0; s < r->n_slot; s++) {
        const size_t n = (size_t)r->n_pos[s] * r->dim * sizeof(float);
        put(&b, r->tokens[s], sizeof(int32_t) * (r->n_pos[s] + 1));
        put(&b, r->in[s], n);
        put(&b, r->mid_q[s], n);
        put(&b, r->mid_f[s], n);
    }
    return put_file(path, &b, err, errlen);
}

static long file_size(FILE *f) {
    if (fseek(f, 0, SEEK_END)) return -1;
    const long n = ftell(f);
    return fseek(f, 0, SEEK_SET) ? -1 : n;
}

int real_ref_read(const char *path, real_ref *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) return hat_err(err, errlen, HAT_ERR_NOTFOUND, "%s: cannot open the reference file", path);
    char magic[8];
    ref_head h;
    const long size = file_size(f);
    if (rd(f, magic, 8) || memcmp(magic, REF_MAGIC, 8) || rd(f, &h, sizeof h)) {
        fclose(f);
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: not a reference file of tests/gpu_real (bad magic or header)", path);
    }
    long want = 8 + (long)sizeof h;
    int ok = h.dim > 0 && h.dim <= 65536 && h.n_slot > 0 && h.n_slot <= RR_MAX_SLOT && h.a >= 0 && h.l1 > h.a &&
             h.l1 <= h.n_layer && h.chunk > 0 && h.round > 1;
    for (int s = 0; ok && s < h.n_slot; s++) {
        ok = h.n_prompt[s] > 0 && h.n_pos[s] >= h.n_prompt[s] && h.n_pos[s] <= 1 << 20;
        want += (long)sizeof(int32_t) * (h.n_pos[s] + 1) + 3L * h.n_pos[s] * h.dim * (long)sizeof(float);
    }
    if (!ok || want != size) {
        fclose(f);
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: inconsistent reference file (%ld bytes, the header says %ld)", path,
                       size, ok ? want : -1L);
    }
    r->dim = h.dim; r->n_layer = h.n_layer; r->a = h.a; r->l1 = h.l1;
    r->n_slot = h.n_slot; r->chunk = h.chunk; r->round = h.round;
    snprintf(r->model, sizeof r->model, "%.*s", (int)sizeof h.model, h.model);
    r->model_bytes = h.model_bytes;
    int bad = 0;
    for (int s = 0; s < h.n_slot; s++) {
        r->n_prompt[s] = h.n_prompt[s];
        r->n_pos[s] = h.n_pos[s];
        const size_t n = (size_t)h.n_pos[s] * h.dim;
        r->tokens[s] = xmalloc(sizeof(int32_t) * (h.n_pos[s] + 1));
        r->in[s] = xmalloc(sizeof(float) * n);
        r->mid_q[s] = xmalloc(sizeof(float) * n);
        r->mid_f[s] = xmalloc(sizeof(float) * n);
        bad |= rd(f, r->tokens[s], sizeof(int32_t) * (h.n_pos[s] + 1)) || rd(f, r->in[s], sizeof(float) * n) ||
               rd(f, r->mid_q[s], sizeof(float) * n) || rd(f, r->mid_f[s], sizeof(float) * n);
    }
    fclose(f);
    if (bad) {
        real_ref_free(r);
        return hat_err(err, errlen, HAT_ERR_IO, "%s: read failed", path);
    }
    return HAT_OK;
}

void real_ref_free(real_ref *r) {
    for (int s = 0; s < RR_MAX_SLOT; s++) {
        free(r->tokens[s]); free(r->in[s]); free(r->mid_q[s]); free(r->mid_f[s]);
    }
    memset(r, 0, sizeof *r);
}

int real_run(backend *be, const real_ref *r, float **out, int *n_steps, char *err, size_t errlen) {
    const int dim = r->dim;
    int next[RR_MAX_SLOT] = {0}, steps = 0;
    if (be->l0 != r->a || be->l1 != r->l1 || be->cfg.dim != dim)
        return hat_err(err, errlen, HAT_ERR_ARG, "the backend runs layers [%d, %d) of dim %d, the reference [%d, %d) of dim %d",
                       be->l0, be->l1, be->cfg.dim, r->a, r->l1, dim);
    if (be->n_slots < r->n_slot || be->max_tok < r->n_slot * (r->chunk > r->round ? r->chunk : r->round))
        return hat_err(err, errlen, HAT_ERR_ARG, "backend too small for the stepping (%d slots, %d tokens)", be->n_slots,
                       be->max_tok);
    for (;;) {
        backend_seq seqs[RR_MAX_SLOT];
        int ns = 0, tok = 0;
        for (int s = 0; s < r->n_slot; s++) {
            const int p = next[s];
            if (p >= r->n_pos[s]) continue;
            const int prompt = p < r->n_prompt[s];
            int n = prompt ? r->n_prompt[s] - p : r->n_pos[s] - p;
            const int cap = prompt ? r->chunk : r->round;
            if (n > cap) n = cap;
            if (p < backend_kv_len(be, s)) backend_truncate(be, s, p);
            memcpy(backend_io(be) + (size_t)tok * dim, r->in[s] + (size_t)p * dim, sizeof(float) * n * dim);
            seqs[ns++] = (backend_seq){.slot = s, .pos0 = p, .n_tok = n, .decode = !prompt};
            tok += n;
        }
        if (!ns) break;
        const int rc = backend_forward(be, seqs, ns, err, errlen);
        if (rc) return rc;
        steps++;
        int off = 0;
        for (int i = 0; i < ns; i++) {
            const backend_seq *q = &seqs[i];
            memcpy(out[q->slot] + (size_t)q->pos0 * dim, backend_io(be) + (size_t)off * dim, sizeof(float) * q->n_tok * dim);
            off += q->n_tok;
            const int end = q->pos0 + q->n_tok;
            /* a decode round that does not finish the sequence has its last position redone */
            next[q->slot] = q->decode && q->n_tok > 1 && end < r->n_pos[q->slot] ? end - 1 : end;
        }
    }
    if (n_steps) *n_steps = steps;
    return HAT_OK;
}

int real_out_write(const char *path, const real_ref *r, float *const *out, const char *desc, char *err, size_t errlen) {
    char d[320] = {0};
    snprintf(d, sizeof d, "%s", desc ? desc : "");
    int32_t h[2 + RR_MAX_SLOT] = {r->n_slot, r->dim};
    for (int s = 0; s < r->n_slot; s++) h[2 + s] = r->n_pos[s];
    obuf b = {0};
    put(&b, OUT_MAGIC, 8);
    put(&b, h, sizeof h);
    put(&b, d, sizeof d);
    for (int s = 0; s < r->n_slot; s++) put(&b, out[s], sizeof(float) * r->n_pos[s] * r->dim);
    return put_file(path, &b, err, errlen);
}

int real_out_read(const char *path, const real_ref *r, float **out, char *desc, size_t desclen, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return hat_err(err, errlen, HAT_ERR_NOTFOUND, "%s: cannot open the output file", path);
    char magic[8], d[320];
    int32_t h[2 + RR_MAX_SLOT];
    int bad = rd(f, magic, 8) || memcmp(magic, OUT_MAGIC, 8) || rd(f, h, sizeof h) || rd(f, d, sizeof d) ||
              h[0] != r->n_slot || h[1] != r->dim;
    for (int s = 0; s < r->n_slot && !bad; s++) bad = h[2 + s] != r->n_pos[s];
    if (bad) {
        fclose(f);
        return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: not an output file of this reference (magic, sessions, dim or positions differ)",
                       path);
    }
    for (int s = 0; s < r->n_slot && !bad; s++) bad = rd(f, out[s], sizeof(float) * r->n_pos[s] * r->dim);
    bad |= fgetc(f) != EOF;
    fclose(f);
    if (bad) return hat_err(err, errlen, HAT_ERR_FORMAT, "%s: truncated or overlong output file", path);
    d[sizeof d - 1] = 0;
    if (desc) snprintf(desc, desclen, "%s", d);
    return HAT_OK;
}

double real_worst_rel(const float *a, const float *b, int n, int dim) {
    double w = 0;
    for (int p = 1; p < n; p++) {
        double d = 0, r = 0;
        for (int i = 0; i < dim; i++) {
            const double x = a[(size_t)p * dim + i], y = b[(size_t)p * dim + i];
            if (!isfinite(x)) return INFINITY;
            d += (x - y) * (x - y);
            r += y * y;
        }
        const double e = sqrt(d / (r > 0 ? r : 1));
        if (e > w) w = e;
    }
    return w;
}
