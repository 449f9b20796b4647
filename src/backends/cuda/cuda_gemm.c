/* cuda_gemm.c — the CUDA backend's matrix products (cuda_internal.h): the GEMV kernel of kernels/
 * or cuBLAS, chosen per call by the step's token count against stats.gemv_max_n, which the
 * start-up check and timing here decide. */
#include "backends/cuda/cuda_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* out (n, d_out) [f32] = beta * out + X (n, d_in) [dtype] @ W^T, W (d_out, d_in) [dtype], row-major:
 * column-major C (d_out x n) = op_T(W stored (d_in x d_out)) * X stored (d_in x n) */
/* by the GEMV kernel (gemv 1, n <= HK_GEMV_MAX_N) or cuBLAS */
int cuda_gemm_prod(cu_impl *c, int gemv, float *out, int ldc, const void *W, const void *X, int n, int d_out, int d_in,
                   float beta, char *err, size_t errlen) {
    if (gemv) {
        HK(hk_gemv(c->st, out, ldc, W, X, c->wt, n, d_out, d_in, beta));
        return HAT_OK;
    }
    const float alpha = 1.0f;
    BL(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, d_out, n, d_in, &alpha, W, c->ct, d_in, X, c->ct, d_in, &beta,
                    out, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
       "GEMM");
    return HAT_OK;
}
int cuda_gemm_ld(cu_impl *c, float *out, int ldc, const void *W, const void *X, int n, int d_out, int d_in, float beta,
                 char *err, size_t errlen) {
    return cuda_gemm_prod(c, n <= c->stats.gemv_max_n, out, ldc, W, X, n, d_out, d_in, beta, err, errlen);
}
int cuda_gemm(cu_impl *c, float *out, const void *W, const void *X, int n, int d_out, int d_in, float beta,
              char *err, size_t errlen) {
    return cuda_gemm_ld(c, out, d_out, W, X, n, d_out, d_in, beta, err, errlen);
}

/* ---- the GEMV kernel for small steps: checked against cuBLAS and timed at open ---- */

typedef struct { const void *w; int d_out, d_in; } gv_prod;

/* one layer's products (layer index li), as cuda_layers runs them */
static int layer_prods(const cu_impl *c, int li, int dim, gv_prod p[6]) {
    const cu_layer *w = &c->layers[li];
    const size_t es = hk_dtype_size(c->wt);
    p[0] = (gv_prod){w->wqkv, c->qd, dim};
    p[1] = (gv_prod){(const char *)w->wqkv + (size_t)c->qd * dim * es, c->kvd, dim};
    p[2] = (gv_prod){(const char *)w->wqkv + ((size_t)c->qd + c->kvd) * dim * es, c->kvd, dim};
    p[3] = (gv_prod){w->wo, c->o_rows, c->o_cols};
    p[4] = (gv_prod){w->wgu, 2 * c->fl, dim};
    p[5] = (gv_prod){w->wdown, c->d_rows, c->d_cols};
    return 6;
}

/* mean microseconds of a layer's products at n tokens over reps runs, one way (gemv 1: the kernel) */
static int time_prods(cu_impl *c, const gv_prod *p, int np, int n, const void *X, float *out, int gemv, int reps,
                      double *us, char *err, size_t errlen) {
    cudaEvent_t a = NULL, b = NULL;
    int rc = HAT_OK;
    if (cudaEventCreate(&a) != cudaSuccess || cudaEventCreate(&b) != cudaSuccess) rc = HAT_ERR_UNSUPPORTED;
    for (int r = -2; r < reps && !rc; r++) {
        if (r == 0 && cudaEventRecord(a, c->st) != cudaSuccess) rc = HAT_ERR_UNSUPPORTED;
        for (int i = 0; i < np && !rc; i++) rc = cuda_gemm_prod(c, gemv, out, p[i].d_out, p[i].w, X, n, p[i].d_out, p[i].d_in, 0.0f, err, errlen);
    }
    float ms = 0;
    if (!rc && (cudaEventRecord(b, c->st) != cudaSuccess || cudaEventSynchronize(b) != cudaSuccess ||
                cudaEventElapsedTime(&ms, a, b) != cudaSuccess))
        rc = HAT_ERR_UNSUPPORTED;
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    *us = 1e3 * ms / reps;
    if (rc && !err[0]) hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: timing the GEMV kernel");
    return rc;
}

/* the check's buffers: X (top, max_in) [dtype] random inputs; o1, o2 (top, max_out) f32 device
 * outputs of cuBLAS and of the kernel; h1, h2 their host copies */
typedef struct { const void *X; float *o1, *o2, *h1, *h2; } gv_bufs;

/* the worst relative L2 difference of the kernel from cuBLAS over every token count 1..top it may
 * serve and every product of p, with the token count and product where it was seen */
static int gemv_check(cu_impl *c, const gv_prod *p, int np, int top, const gv_bufs *g, double *worst_out, int *bad_n_out,
                      int *bad_i_out, char *err, size_t errlen) {
    const void *X = g->X;
    float *o1 = g->o1, *o2 = g->o2, *h1 = g->h1, *h2 = g->h2;
    int rc = HAT_OK;
    double worst = 0;
    int bad_n = 0, bad_i = 0;
    for (int n = 1; n <= top && !rc; n++)   /* every token count the kernel may serve */
        for (int i = 0; i < np && !rc; i++) {
            const size_t cnt = (size_t)n * p[i].d_out;
            rc = cuda_gemm_prod(c, 0, o1, p[i].d_out, p[i].w, X, n, p[i].d_out, p[i].d_in, 0.0f, err, errlen);
            if (!rc) rc = cuda_gemm_prod(c, 1, o2, p[i].d_out, p[i].w, X, n, p[i].d_out, p[i].d_in, 0.0f, err, errlen);
            if (!rc && (cudaMemcpyAsync(h1, o1, sizeof(float) * cnt, cudaMemcpyDeviceToHost, c->st) != cudaSuccess ||
                        cudaMemcpyAsync(h2, o2, sizeof(float) * cnt, cudaMemcpyDeviceToHost, c->st) != cudaSuccess ||
                        cudaStreamSynchronize(c->st) != cudaSuccess))
                rc = hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: checking the GEMV kernel");
            if (rc) break;
            double d = 0, r = 0;
            for (size_t k = 0; k < cnt; k++) {
                const double x = h2[k], y = h1[k];
                d += (x - y) * (x - y);
                r += y * y;
            }
            const double e = isfinite(d) ? sqrt(d / (r > 0 ? r : 1)) : INFINITY;
            if (!(e <= worst)) { worst = e; bad_n = n; bad_i = i; }
        }
    *worst_out = worst;
    *bad_n_out = bad_n;
    *bad_i_out = bad_i;
    return rc;
}

/* a kernel that agrees: times it and cuBLAS at 1, 2, 4 and 8 tokens (up to top) and sets *max_n_out
 * (mode auto: the longest run of counts from 1 where the kernel is faster; mode on: top), the
 * timings at 1 token and the note */
static int gemv_time(cu_impl *c, const gv_prod *p, int np, int top, const gv_bufs *g, int mode, double worst,
                     int *max_n_out, char *err, size_t errlen) {
    const void *X = g->X;
    float *o1 = g->o1;
    int rc = HAT_OK;
    double us_g[4] = {0}, us_b[4] = {0};
    int max_n = 0;
    static const int ns[4] = {1, 2, 4, 8};
    for (int k = 0; k < 4 && ns[k] <= top && !rc; k++) {
        if ((rc = time_prods(c, p, np, ns[k], X, o1, 1, 10, &us_g[k], err, errlen)) ||
            (rc = time_prods(c, p, np, ns[k], X, o1, 0, 10, &us_b[k], err, errlen)))
            break;
        if (mode == BACKEND_GEMV_ON || (max_n == (k ? ns[k - 1] : 0) && us_g[k] < us_b[k])) max_n = ns[k];
    }
    if (mode == BACKEND_GEMV_ON) max_n = top;
    c->stats.gemv_us = us_g[0];
    c->stats.cublas_us = us_b[0];
    if (max_n)
        snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "GEMV kernel for steps of <= %d tokens (a layer's products at 1 token "
                 "%.1f us, cuBLAS %.1f us; matches cuBLAS to %.1e)", max_n, us_g[0], us_b[0], worst);
    else
        snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "cuBLAS only (the GEMV kernel is slower here: %.1f us vs %.1f us "
                 "for a layer's products at 1 token)", us_g[0], us_b[0]);
    *max_n_out = max_n;
    return rc;
}

/* decides stats.gemv_max_n: the kernel is used for steps of up to that many tokens where, on layer
 * 0's products with random inputs, it agrees with cuBLAS (relative L2 <= 1e-4: the same fp32
 * accumulation of exact products, another order) and (mode auto) is faster at 1, 2, 4 and 8 tokens
 * up to that count. A disagreement is a loud note and cuBLAS only, never an error. */
int cuda_gemm_setup(backend *b, cu_impl *c, int mode, char *err, size_t errlen) {
    const int dim = b->cfg.dim;
    c->stats.gemv_max_n = 0;
    if (mode == BACKEND_GEMV_OFF || b->l1 <= b->l0) {
        snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "cuBLAS only%s", mode == BACKEND_GEMV_OFF ? " (gpu_gemv = off)" : "");
        return HAT_OK;
    }
    gv_prod p[6];
    const int np = layer_prods(c, 0, dim, p);
    int max_in = 0, max_out = 0, ok = 1;
    for (int l = 0; l < b->l1 - b->l0 && ok; l++) {
        gv_prod q[6];
        layer_prods(c, l, dim, q);
        for (int i = 0; i < np; i++) ok &= q[i].d_in % 8 == 0 && (uintptr_t)q[i].w % 16 == 0;
    }
    if (!ok) {
        snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "cuBLAS only (products not in 16-byte rows)");
        return HAT_OK;
    }
    for (int i = 0; i < np; i++) {
        if (p[i].d_in > max_in) max_in = p[i].d_in;
        if (p[i].d_out > max_out) max_out = p[i].d_out;
    }
    const int top = b->max_tok < HK_GEMV_MAX_N ? b->max_tok : HK_GEMV_MAX_N;
    const size_t es = hk_dtype_size(c->wt);
    void *X = NULL;
    float *o1 = NULL, *o2 = NULL, *h1 = xmalloc(sizeof(float) * top * (size_t)max_out), *h2 = xmalloc(sizeof(float) * top * (size_t)max_out);
    int rc = HAT_OK;
    if (cudaMalloc(&X, es * top * (size_t)max_in) != cudaSuccess || cudaMalloc((void **)&o1, sizeof(float) * top * (size_t)max_out) != cudaSuccess ||
        cudaMalloc((void **)&o2, sizeof(float) * top * (size_t)max_out) != cudaSuccess)
        rc = hat_err(err, errlen, HAT_ERR_NOMEM, "backend cuda: allocating the GEMV check buffers");
    if (!rc && hk_synth_fill(c->st, X, c->wt, (size_t)top * max_in, 11, 1, 1.0f, 0.0f))
        rc = hat_err(err, errlen, HAT_ERR_UNSUPPORTED, "backend cuda: %s", hk_last_error());
    const gv_bufs g = {X, o1, o2, h1, h2};
    double worst = 0;
    int bad_n = 0, bad_i = 0, max_n = 0;
    if (!rc) rc = gemv_check(c, p, np, top, &g, &worst, &bad_n, &bad_i, err, errlen);
    if (!rc && !(worst <= 1e-4)) {
        snprintf(c->stats.gemv_note, sizeof c->stats.gemv_note, "cuBLAS only: the GEMV kernel differs from cuBLAS by %.2g (rel L2) at %d "
                 "tokens, product %d (%d x %d)", worst, bad_n, bad_i, p[bad_i].d_out, p[bad_i].d_in);
        fprintf(stderr, "backend cuda: WARNING: %s\n", c->stats.gemv_note);
    } else if (!rc) {
        rc = gemv_time(c, p, np, top, &g, mode, worst, &max_n, err, errlen);
    }
    c->stats.gemv_max_n = rc ? 0 : max_n;
    cudaFree(X); cudaFree(o1); cudaFree(o2);
    free(h1); free(h2);
    return rc;
}
