/* adapter.c — the device side of adapter.h: allocation, the identity adapter, adapter_apply (the per-token
 * path), description and getters. The file format is in adapter_file.c; fitting is in calib/adapter_fit.c,
 * so the device links no linear-algebra solver. */
#include "split/adapter_internal.h"

#include "core/build_info.h"
#include "core/common.h"
#include "core/crc32c.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *adapter_form_name(adapter_form f) {
    switch (f) {
    case ADAPTER_IDENTITY: return "identity";
    case ADAPTER_LINEAR: return "linear";
    case ADAPTER_LOWRANK: return "lowrank";
    }
    return "unknown";
}

int adapter_form_parse(const char *s) {
    for (int f = ADAPTER_IDENTITY; f <= ADAPTER_LOWRANK; f++)
        if (!strcmp(s, adapter_form_name((adapter_form)f))) return f;
    return -1;
}

void adapter_model_fingerprint(const gguf_file *f, uint64_t *size, uint32_t *crc) {
    *size = f->size;
    *crc = crc32c(0, f->map, f->size);
}

adapter *adapter_alloc(adapter_form form, int dim, int rank) {
    adapter *ad = xcalloc(1, sizeof *ad);
    ad->info.form = form;
    ad->info.dim = dim;
    ad->info.rank = form == ADAPTER_LOWRANK ? rank : 0;
    ad->info.lambda = NAN;
    ad->info.r2_train = ad->info.r2_heldout = ad->info.r2_target_train = ad->info.r2_target_heldout = NAN;
    ad->info.r2_identity_heldout = ad->info.rms_heldout = ad->info.rel_err_heldout = NAN;
    ad->info.agree_heldout = ad->info.agree_identity_heldout = NAN;
    snprintf(ad->info.hat_version, sizeof ad->info.hat_version, "%s", HAT_VERSION);
    snprintf(ad->info.hat_git, sizeof ad->info.hat_git, "%s", HAT_GIT_HASH);
    if (form == ADAPTER_LINEAR) ad->w = xcalloc((size_t)dim * dim, sizeof(float));
    if (form == ADAPTER_LOWRANK) {
        ad->w = xcalloc((size_t)rank * dim, sizeof(float));
        ad->u = xcalloc((size_t)dim * rank, sizeof(float));
    }
    if (form != ADAPTER_IDENTITY) {
        ad->c = xcalloc((size_t)dim, sizeof(float));
        ad->scratch = xcalloc((size_t)ADAPTER_APPLY_BLOCK * dim, sizeof(float));
    }
    return ad;
}

adapter *adapter_identity(int dim, int a, int b) {
    adapter *ad = adapter_alloc(ADAPTER_IDENTITY, dim, 0);
    ad->info.a = a;
    ad->info.b = b;
    return ad;
}

void adapter_free(adapter *ad) {
    if (!ad) return;
    free(ad->w);
    free(ad->u);
    free(ad->c);
    free(ad->scratch);
    free(ad);
}

adapter_form adapter_get_form(const adapter *ad) { return ad->info.form; }
const adapter_info *adapter_get_info(const adapter *ad) { return &ad->info; }

/* ---------------------------------------------------------------- apply */

void adapter_apply(const adapter *ad, const float *in, float *out, int n_tok) {
    const int d = ad->info.dim, r = ad->info.rank;
    if (ad->info.form == ADAPTER_IDENTITY) {
        if (out != in) memcpy(out, in, sizeof(float) * (size_t)n_tok * d);
        return;
    }
    float *s = ad->scratch;
    for (int r0 = 0; r0 < n_tok; r0 += ADAPTER_APPLY_BLOCK) {
        const int nb = n_tok - r0 < ADAPTER_APPLY_BLOCK ? n_tok - r0 : ADAPTER_APPLY_BLOCK;
        const float *x = in + (size_t)r0 * d;
        float *y = out + (size_t)r0 * d;
        if (ad->info.form == ADAPTER_LINEAR) {
            /* s = x W^T, then y = x + s + c: x is read before y (possibly the same row) is written */
            if (nb == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, d, d, 1.0f, ad->w, d, x, 1, 0.0f, s, 1);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, d, d, 1.0f, x, d, ad->w, d, 0.0f, s, d);
            for (size_t i = 0; i < (size_t)nb * d; i++) y[i] = x[i] + s[i] + ad->c[i % d];
        } else {
            /* s = x Vt^T (nb, rank) first, so y may overwrite x; then y = x + c + s U^T */
            if (nb == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, r, d, 1.0f, ad->w, d, x, 1, 0.0f, s, 1);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, r, d, 1.0f, x, d, ad->w, d, 0.0f, s, r);
            for (size_t i = 0; i < (size_t)nb * d; i++) y[i] = x[i] + ad->c[i % d];
            if (nb == 1) cblas_sgemv(CblasRowMajor, CblasNoTrans, d, r, 1.0f, ad->u, r, s, 1, 1.0f, y, 1);
            else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, d, r, 1.0f, s, r, ad->u, r, 1.0f, y, d);
        }
    }
}

void adapter_describe(const adapter *ad, char *buf, size_t len) {
    const adapter_info *in = &ad->info;
    char rank[32] = "";
    if (in->form == ADAPTER_LOWRANK) snprintf(rank, sizeof rank, " rank %d", in->rank);
    snprintf(buf, len,
             "%s%s adapter (dim %d, lambda %g), split a=%d b=%d of %d layers, %llu calibration tokens, "
             "held-out R^2 %.4f (of h_{L-b}: %.4f; identity %.4f) on %llu tokens, draft agreement %.1f%% "
             "(identity %.1f%%) on %llu positions; corpus: %s",
             adapter_form_name(in->form), rank, in->dim, in->lambda, in->a, in->b, in->n_layer,
             (unsigned long long)in->n_train, in->r2_heldout, in->r2_target_heldout, in->r2_identity_heldout,
             (unsigned long long)in->n_heldout, 100 * in->agree_heldout, 100 * in->agree_identity_heldout,
             (unsigned long long)in->n_agree, in->corpus[0] ? in->corpus : "none");
}
