/* bench_gpu.c — the GPU benchmark (run by experiments/bench_gpu.sh): the two ceilings measured in
 * the same run (device-to-device copy bandwidth; cuBLAS fp16 GEMM rate), per-kernel time and
 * achieved bandwidth, and the cloud step of the CUDA backend on a synthetic model (default the
 * LLaMA-2-7B shape, all layers): batch 1, 8 devices x 1 token, 30 devices x 5 tokens (a decode
 * round of gamma = 4 each) and a 1,000-token prefill. Medians of --reps timed repetitions after
 * warm-up, CUDA events around device work; the backend steps are timed on the host around
 * backend_forward (it copies in, runs, copies out and synchronises: what a cloud rank waits for),
 * with the defaults (CUDA graphs, the GEMV kernel where it was timed faster), without graphs, and
 * with cuBLAS only.
 *   bench_gpu [--shape llama2-7b] [--layers N] [--ctx 512] [--reps 20] [--dtype fp16|bf16] [--json F]
 * Synthetic weights: every output says so. Exits 77 without a GPU.
 */
#include "backends/backend.h"
#include "core/common.h"
#include "hat_kernels.h"
#include "engine/synth.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); exit(1); } } while (0)
#define HKC(x) do { if ((x) != 0) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, hk_last_error()); exit(1); } } while (0)

static int cmp_d(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static double median(double *v, int n) { qsort(v, (size_t)n, sizeof *v, cmp_d); return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

typedef void (*work_fn)(void *ctx);
/* median seconds of fn over reps, CUDA events on the default stream, after 3 warm-ups */
static double time_events(work_fn fn, void *ctx, int reps) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a)); CK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) fn(ctx);
    double *t = malloc(sizeof(double) * reps);
    for (int i = 0; i < reps; i++) {
        CK(cudaEventRecord(a, 0));
        fn(ctx);
        CK(cudaEventRecord(b, 0));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t[i] = ms * 1e-3;
    }
    double m = median(t, reps);
    free(t);
    cudaEventDestroy(a); cudaEventDestroy(b);
    return m;
}

typedef struct { void *dst, *src; size_t bytes; } copy_ctx;
static void do_copy(void *p) { copy_ctx *c = p; HKC(hk_copy(NULL, c->dst, c->src, c->bytes)); }

typedef struct { cublasHandle_t h; void *A, *B; float *C; int n; } gemm_ctx;
static void do_gemm(void *p) {
    gemm_ctx *g = p;
    const float one = 1, zero = 0;
    if (cublasGemmEx(g->h, CUBLAS_OP_T, CUBLAS_OP_N, g->n, g->n, g->n, &one, g->A, CUDA_R_16F, g->n, g->B, CUDA_R_16F, g->n,
                     &zero, g->C, CUDA_R_32F, g->n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cublasGemmEx failed\n");
        exit(1);
    }
}

/* one weight-streaming product: out (n, d_out) = X (n, d_in) W^T, fp16, by the GEMV kernel or cuBLAS */
typedef struct { cublasHandle_t h; void *W, *X; float *out; int n, d_out, d_in, gemv; } mv_ctx;
static void do_mv(void *p) {
    mv_ctx *m = p;
    if (m->gemv) {
        HKC(hk_gemv(NULL, m->out, m->d_out, m->W, m->X, HK_F16, m->n, m->d_out, m->d_in, 0.0f));
        return;
    }
    const float one = 1, zero = 0;
    if (cublasGemmEx(m->h, CUBLAS_OP_T, CUBLAS_OP_N, m->d_out, m->n, m->d_in, &one, m->W, CUDA_R_16F, m->d_in, m->X,
                     CUDA_R_16F, m->d_in, &zero, m->out, CUDA_R_32F, m->d_out, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cublasGemmEx failed\n");
        exit(1);
    }
}

typedef struct { float *x, *w; void *out; int n, dim; float *gu; int ffn; } ew_ctx;
static void do_rmsnorm(void *p) { ew_ctx *c = p; HKC(hk_rmsnorm(NULL, c->out, HK_F16, c->x, c->w, c->n, c->dim, 1e-5f)); }
static void do_swiglu(void *p) { ew_ctx *c = p; HKC(hk_swiglu(NULL, c->out, HK_F16, c->gu, c->n, c->ffn)); }

typedef struct {
    float *out, *q; uint16_t **kc, **vc; int32_t *slot, *pos; int n, max_pos, n_ctx, nh, nkv, hd;
} att_ctx;
static void do_att(void *p) {
    att_ctx *c = p;
    HKC(hk_attention(NULL, c->out, c->q, c->kc, c->vc, c->slot, c->pos, c->n, c->max_pos, 0, c->n_ctx, c->nh, c->nkv, c->hd));
}

/* host-timed backend step: median seconds */
static double time_step(backend *be, const backend_seq *seqs, int ns, int reps) {
    char err[HAT_ERRLEN];
    double *t = malloc(sizeof(double) * reps);
    for (int r = -3; r < reps; r++) {
        for (int i = 0; i < ns; i++) backend_truncate(be, seqs[i].slot, seqs[i].pos0);
        const double t0 = now();
        if (backend_forward(be, seqs, ns, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(1); }
        if (r >= 0) t[r] = now() - t0;
    }
    double m = median(t, reps);
    free(t);
    return m;
}

/* the four cloud steps (batch 1, 8 x 1, 30 x 5, 1000-token prefill) of a fresh backend, median
 * seconds into t[4]; 0 or 1 on failure (message printed) */
static int cloud_steps(const char *shape, int layers, int ctx, backend_dtype dt, int no_graphs, int gemv, int reps,
                       double t[4], backend_cuda_stats *stats, char *desc) {
    char err[HAT_ERRLEN];
    backend *be;
    const int max_tok = 1024, dim = synth_shape(shape)->dim;
    if (backend_cuda_open(&be, &(backend_desc){.kind = BACKEND_CUDA, .synth = {shape, 7}, .l0 = 0, .l1 = layers,
                          .n_slots = 30, .max_tok = max_tok, .n_ctx = ctx + 1024, .gpu = 0, .dtype = dt,
                          .no_graphs = no_graphs, .gemv = gemv}, err, sizeof err)) {
        fprintf(stderr, "bench_gpu: %s\n", err);
        return 1;
    }
    if (desc) snprintf(desc, 320, "%s", be->desc);
    /* contexts: every slot prefilled with ctx positions (synthetic inputs) */
    for (int s = 0; s < 30; s++)
        for (int p = 0; p < ctx; p += max_tok) {
            const int n = ctx - p < max_tok ? ctx - p : max_tok;
            for (size_t i = 0; i < (size_t)n * dim; i++) backend_io(be)[i] = synth_value(9, (uint32_t)s, i + (size_t)p * dim, 1, 0);
            if (backend_forward(be, &(backend_seq){.slot = s, .pos0 = p, .n_tok = n}, 1, err, sizeof err)) {
                fprintf(stderr, "%s\n", err);
                backend_free(be);
                return 1;
            }
        }
    for (size_t i = 0; i < (size_t)max_tok * dim; i++) backend_io(be)[i] = synth_value(10, 0, i, 1, 0);
    backend_seq s1 = {0, ctx, 1, 1}, s8[8], s30[30], sp = {29, 0, 1000, 0};
    for (int i = 0; i < 8; i++) s8[i] = (backend_seq){i, ctx, 1, 1};
    for (int i = 0; i < 30; i++) s30[i] = (backend_seq){i, ctx, 5, 1};
    t[0] = time_step(be, &s1, 1, reps);
    t[1] = time_step(be, s8, 8, reps);
    t[2] = time_step(be, s30, 30, reps);
    t[3] = time_step(be, &sp, 1, reps > 5 ? 5 : reps);
    if (stats) *stats = backend_cuda_stats_of(be);
    return 0;
}

int main(int argc, char **argv) {
    const char *shape = "llama2-7b", *json = NULL;
    int layers = -1, ctx = 512, reps = 20;
    backend_dtype dt = BACKEND_FP16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dt = !strcmp(argv[++i], "bf16") ? BACKEND_BF16 : BACKEND_FP16;
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else { fprintf(stderr, "bench_gpu: unknown option %s\n", argv[i]); return 2; }
    }
    int n_gpu = 0;
    char why[256];
    if (backend_cuda_available(&n_gpu, why, sizeof why)) { printf("SKIP: %s\n", why); return 77; }
    const model_config *mc = synth_shape(shape);
    if (!mc) { fprintf(stderr, "bench_gpu: unknown shape %s (known: %s)\n", shape, synth_shape_names()); return 2; }
    if (layers < 0 || layers > mc->n_layer) layers = mc->n_layer;
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %.0f GiB; synthetic %s, %d layers, %s weights\n", prop.name, prop.totalGlobalMem / 1073741824.0,
           shape, layers, backend_dtype_name(dt));

    /* ceiling 1: device-to-device copy, 1 GiB, bytes read + written */
    copy_ctx cc = {.bytes = (size_t)1 << 30};
    CK(cudaMalloc(&cc.dst, cc.bytes)); CK(cudaMalloc(&cc.src, cc.bytes));
    CK(cudaMemset(cc.src, 0x3c, cc.bytes));
    const double t_copy = time_events(do_copy, &cc, reps), bw_copy = 2.0 * cc.bytes / t_copy;
    CK(cudaFree(cc.dst)); CK(cudaFree(cc.src));
    /* ceiling 2: cuBLAS fp16 GEMM 8192^3, fp32 accumulation */
    gemm_ctx gc = {.n = 8192};
    const size_t gn = (size_t)gc.n * gc.n;
    cublasCreate(&gc.h);
    CK(cudaMalloc(&gc.A, gn * 2)); CK(cudaMalloc(&gc.B, gn * 2)); CK(cudaMalloc((void **)&gc.C, gn * 4));
    HKC(hk_synth_fill(NULL, gc.A, HK_F16, gn, 1, 1, 0.1f, 0)); HKC(hk_synth_fill(NULL, gc.B, HK_F16, gn, 1, 2, 0.1f, 0));
    const double t_gemm = time_events(do_gemm, &gc, reps), tf_gemm = 2.0 * gn * gc.n / t_gemm / 1e12;
    CK(cudaFree(gc.A)); CK(cudaFree(gc.B)); CK(cudaFree(gc.C));
    cublasDestroy(gc.h);
    printf("ceilings: device-to-device copy %.0f GB/s (read + write), cuBLAS fp16 GEMM 8192^3 %.0f TFLOP/s\n", bw_copy / 1e9, tf_gemm);

    /* kernels at the 30x5 verification size */
    const int NT = 150, dim = mc->dim, ffn = mc->ffn_dim;
    ew_ctx ec = {.n = NT, .dim = dim, .ffn = ffn};
    CK(cudaMalloc((void **)&ec.x, sizeof(float) * NT * dim)); CK(cudaMalloc((void **)&ec.w, sizeof(float) * dim));
    CK(cudaMalloc(&ec.out, 2 * (size_t)NT * ffn)); CK(cudaMalloc((void **)&ec.gu, sizeof(float) * NT * 2 * ffn));
    HKC(hk_synth_fill(NULL, ec.x, HK_F32, (size_t)NT * dim, 3, 1, 1, 0)); HKC(hk_synth_fill(NULL, ec.w, HK_F32, dim, 3, 2, 0.1f, 1));
    HKC(hk_synth_fill(NULL, ec.gu, HK_F32, (size_t)NT * 2 * ffn, 3, 3, 2, 0));
    const double t_rms = time_events(do_rmsnorm, &ec, reps), t_swi = time_events(do_swiglu, &ec, reps);
    const double b_rms = (double)NT * dim * (4 + 2) + dim * 4, b_swi = (double)NT * ffn * (8 + 2);
    /* attention: 30 slots with ctx positions, 5 query tokens each at the end */
    att_ctx ac = {.n = NT, .max_pos = ctx + 5, .n_ctx = ctx + 8, .nh = mc->n_head, .nkv = mc->n_head_kv, .hd = mc->head_dim};
    const size_t slot_el = (size_t)ac.n_ctx * mc->kv_dim;
    uint16_t *kv;
    CK(cudaMalloc((void **)&kv, 2 * 30 * slot_el * 2));
    HKC(hk_synth_fill(NULL, kv, HK_F16, 2 * 30 * slot_el, 4, 1, 1, 0));
    uint16_t *hk_[30], *hv_[30];
    for (int s = 0; s < 30; s++) { hk_[s] = kv + 2 * s * slot_el; hv_[s] = kv + (2 * s + 1) * slot_el; }
    CK(cudaMalloc((void **)&ac.kc, sizeof hk_)); CK(cudaMalloc((void **)&ac.vc, sizeof hv_));
    CK(cudaMemcpy(ac.kc, hk_, sizeof hk_, cudaMemcpyHostToDevice)); CK(cudaMemcpy(ac.vc, hv_, sizeof hv_, cudaMemcpyHostToDevice));
    int32_t hs[150], hp[150];
    for (int t = 0; t < NT; t++) { hs[t] = t / 5; hp[t] = ctx + t % 5; }
    CK(cudaMalloc((void **)&ac.slot, sizeof hs)); CK(cudaMalloc((void **)&ac.pos, sizeof hp));
    CK(cudaMemcpy(ac.slot, hs, sizeof hs, cudaMemcpyHostToDevice)); CK(cudaMemcpy(ac.pos, hp, sizeof hp, cudaMemcpyHostToDevice));
    CK(cudaMalloc((void **)&ac.q, sizeof(float) * NT * dim)); CK(cudaMalloc((void **)&ac.out, sizeof(float) * NT * dim));
    HKC(hk_synth_fill(NULL, ac.q, HK_F32, (size_t)NT * dim, 5, 1, 1, 0));
    const double t_att = time_events(do_att, &ac, reps);
    const double b_att = 30.0 * (ctx + 5) * mc->kv_dim * 2 * 2 + (double)NT * dim * 8;   /* each slot's K/V once + q, out */
    printf("kernels (150 tokens = 30 x 5): rmsnorm %.1f us (%.0f GB/s), swiglu %.1f us (%.0f GB/s), "
           "attention over 30 x %d positions %.1f us (%.0f GB/s of K/V read once)\n",
           t_rms * 1e6, b_rms / t_rms / 1e9, t_swi * 1e6, b_swi / t_swi / 1e9, ctx, t_att * 1e6, b_att / t_att / 1e9);
    cudaFree(kv); cudaFree(ac.kc); cudaFree(ac.vc); cudaFree(ac.slot); cudaFree(ac.pos); cudaFree(ac.q); cudaFree(ac.out);
    cudaFree(ec.x); cudaFree(ec.w); cudaFree(ec.out); cudaFree(ec.gu);

    /* the weight-streaming products of a decode step (fp16): the shape's fused Wq|Wk|Wv, Wgate|Wup
     * and Wdown at 1 and 8 tokens, the GEMV kernel and cuBLAS, as weight bytes per second */
    const int prods[3][2] = {{dim + 2 * mc->kv_dim, dim}, {2 * ffn, dim}, {dim, ffn}};
    double mv_gbs[3][2][2];   /* [product][n = 1, 8][gemv, cublas] */
    {
        mv_ctx mc_ = {.n = 1};
        cublasCreate(&mc_.h);
        const size_t wmax = (size_t)2 * ffn * dim > (size_t)(dim + 2 * mc->kv_dim) * dim ? (size_t)2 * ffn * dim
                                                                                          : (size_t)(dim + 2 * mc->kv_dim) * dim;
        CK(cudaMalloc(&mc_.W, wmax * 2)); CK(cudaMalloc(&mc_.X, (size_t)8 * ffn * 2));
        CK(cudaMalloc((void **)&mc_.out, sizeof(float) * 8 * (size_t)(2 * ffn > dim + 2 * mc->kv_dim ? 2 * ffn : dim + 2 * mc->kv_dim)));
        HKC(hk_synth_fill(NULL, mc_.W, HK_F16, wmax, 6, 1, 0.05f, 0)); HKC(hk_synth_fill(NULL, mc_.X, HK_F16, (size_t)8 * ffn, 6, 2, 1, 0));
        printf("decode products (fp16 weights), weight GB/s — GEMV kernel / cuBLAS:");
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 2; k++)
                for (int g = 0; g < 2; g++) {
                    mc_.d_out = prods[i][0]; mc_.d_in = prods[i][1]; mc_.n = k ? 8 : 1; mc_.gemv = !g;
                    const double t = time_events(do_mv, &mc_, reps);
                    mv_gbs[i][k][g] = (double)mc_.d_out * mc_.d_in * 2 / t / 1e9;
                }
        for (int i = 0; i < 3; i++)
            printf("%s %dx%d: n=1 %.0f / %.0f, n=8 %.0f / %.0f", i ? ";" : "", prods[i][0], prods[i][1], mv_gbs[i][0][0],
                   mv_gbs[i][0][1], mv_gbs[i][1][0], mv_gbs[i][1][1]);
        printf(" (copy: %.0f read + write)\n", bw_copy / 1e9);
        cudaFree(mc_.W); cudaFree(mc_.X); cudaFree(mc_.out);
        cublasDestroy(mc_.h);
    }

    /* the cloud step: with CUDA graphs (the default) and with every kernel launched directly */
    double st_g[4], st_d[4], st_c[4];
    backend_cuda_stats sg;
    char desc[320];
    if (cloud_steps(shape, layers, ctx, dt, 0, BACKEND_GEMV_AUTO, reps, st_g, &sg, desc)) return 1;
    printf("backend: %s\n", desc);
    printf("  CUDA graphs: %lld steps replayed from %lld captured graphs, %lld launched directly\n", sg.graph_steps,
           sg.captures, sg.direct_steps);
    printf("  products of small steps: %s\n", sg.gemv_note);
    if (cloud_steps(shape, layers, ctx, dt, 1, BACKEND_GEMV_AUTO, reps, st_d, NULL, NULL)) return 1;
    if (cloud_steps(shape, layers, ctx, dt, 0, BACKEND_GEMV_OFF, reps, st_c, NULL, NULL)) return 1;
    const double t1 = st_g[0], t8 = st_g[1], t30 = st_g[2], tp = st_g[3];
    const size_t es = 2;   /* fp16 and bf16 */
    const double wbytes = (double)layers * (((double)dim + 2 * mc->kv_dim) * dim + (double)dim * dim + 3.0 * ffn * dim) * es;
    const double flops_pf = 2.0 * wbytes / es * 1000 + 4.0 * layers * dim * 1000.0 * 1000 / 2;   /* GEMMs + causal attention */
    /* compulsory traffic of a step: the weights once, and every session's K and V (fp16) over its
     * positions once; the 30 x 5 step's bound on its ratio to batch 1 at equal bandwidth follows */
    const double kvpos = (double)layers * mc->kv_dim * 2 * 2;   /* bytes of K and V per position */
    const double kv1 = kvpos * (ctx + 1), kv8 = 8 * kvpos * (ctx + 1), kv30 = 30 * kvpos * (ctx + 5);
    const double bound30 = (wbytes + kv30) / (wbytes + kv1);
    printf("\ncloud step, synthetic %s, %d layers, %s, context %d (median of %d, host-timed incl. copies):\n", shape, layers,
           backend_dtype_name(dt), ctx, reps);
    printf("| step | tokens | ms | weights GB/s | vs copy bandwidth | K/V GB | weights + K/V vs copy bandwidth | vs batch 1 "
           "| ms without graphs | ms cuBLAS only |\n|---|---|---|---|---|---|---|---|---|---|\n");
    printf("| batch 1 | 1 | %.3f | %.0f | %.0f %% | %.2f | %.0f %% | 1.00 | %.3f | %.3f |\n", t1 * 1e3, wbytes / t1 / 1e9,
           100 * wbytes / t1 / bw_copy, kv1 / 1e9, 100 * (wbytes + kv1) / t1 / bw_copy, st_d[0] * 1e3, st_c[0] * 1e3);
    printf("| 8 devices x 1 | 8 | %.3f | %.0f | %.0f %% | %.2f | %.0f %% | %.2f | %.3f | %.3f |\n", t8 * 1e3, wbytes / t8 / 1e9,
           100 * wbytes / t8 / bw_copy, kv8 / 1e9, 100 * (wbytes + kv8) / t8 / bw_copy, t8 / t1, st_d[1] * 1e3, st_c[1] * 1e3);
    printf("| 30 devices x 5 | 150 | %.3f | %.0f | %.0f %% | %.2f | %.0f %% | %.2f | %.3f | %.3f |\n", t30 * 1e3,
           wbytes / t30 / 1e9, 100 * wbytes / t30 / bw_copy, kv30 / 1e9, 100 * (wbytes + kv30) / t30 / bw_copy, t30 / t1,
           st_d[2] * 1e3, st_c[2] * 1e3);
    printf("| prefill | 1000 | %.3f | - | %.1f TFLOP/s = %.0f %% of the GEMM rate | - | - | - | %.3f | %.3f |\n", tp * 1e3,
           flops_pf / tp / 1e12, 100 * flops_pf / tp / 1e12 / tf_gemm, st_d[3] * 1e3, st_c[3] * 1e3);
    printf("the 30 x 5 step reads every session's K/V: at context %d its compulsory traffic is %.2f x batch 1's (the "
           "ratio's lower bound at equal bandwidth); measured %.2f\n", ctx, bound30, t30 / t1);
    printf("(steps of more than %d tokens, the prefill here, always launch directly)\n", 256);
    if (json) {
        FILE *f = fopen(json, "w");
        if (f) {
            fprintf(f, "{\"device\": \"%s\", \"synthetic\": \"%s\", \"layers\": %d, \"dtype\": \"%s\", \"context\": %d, \"reps\": %d,\n"
                       " \"copy_gbs\": %.1f, \"gemm_tflops\": %.1f, \"rmsnorm_us\": %.2f, \"swiglu_us\": %.2f, \"attention_us\": %.2f,\n"
                       " \"weights_bytes\": %.0f, \"step_b1_ms\": %.4f, \"step_b8_ms\": %.4f, \"step_30x5_ms\": %.4f, \"prefill_1000_ms\": %.4f,\n"
                       " \"b1_frac_of_copy\": %.4f, \"ratio_30x5_b1\": %.4f, \"prefill_tflops\": %.2f,\n"
                       " \"no_graphs\": {\"step_b1_ms\": %.4f, \"step_b8_ms\": %.4f, \"step_30x5_ms\": %.4f, \"prefill_1000_ms\": %.4f},\n"
                       " \"cublas_only\": {\"step_b1_ms\": %.4f, \"step_b8_ms\": %.4f, \"step_30x5_ms\": %.4f, \"prefill_1000_ms\": %.4f},\n"
                       " \"gemv_max_n\": %d, \"gemv_layer_us\": %.2f, \"cublas_layer_us\": %.2f,\n"
                       " \"decode_products_gbs\": [[%d, %d, %.1f, %.1f, %.1f, %.1f], [%d, %d, %.1f, %.1f, %.1f, %.1f], [%d, %d, %.1f, %.1f, %.1f, %.1f]],\n"
                       " \"graph_steps\": %lld, \"graph_captures\": %lld, \"direct_steps\": %lld,\n"
                       " \"kv_bytes_b1\": %.0f, \"kv_bytes_30x5\": %.0f, \"ratio_30x5_b1_traffic_bound\": %.4f}\n",
                    prop.name, shape, layers, backend_dtype_name(dt), ctx, reps, bw_copy / 1e9, tf_gemm, t_rms * 1e6, t_swi * 1e6,
                    t_att * 1e6, wbytes, t1 * 1e3, t8 * 1e3, t30 * 1e3, tp * 1e3, wbytes / t1 / bw_copy, t30 / t1, flops_pf / tp / 1e12,
                    st_d[0] * 1e3, st_d[1] * 1e3, st_d[2] * 1e3, st_d[3] * 1e3, st_c[0] * 1e3, st_c[1] * 1e3, st_c[2] * 1e3,
                    st_c[3] * 1e3, sg.gemv_max_n, sg.gemv_us, sg.cublas_us,
                    prods[0][0], prods[0][1], mv_gbs[0][0][0], mv_gbs[0][0][1], mv_gbs[0][1][0], mv_gbs[0][1][1],
                    prods[1][0], prods[1][1], mv_gbs[1][0][0], mv_gbs[1][0][1], mv_gbs[1][1][0], mv_gbs[1][1][1],
                    prods[2][0], prods[2][1], mv_gbs[2][0][0], mv_gbs[2][0][1], mv_gbs[2][1][0], mv_gbs[2][1][1], sg.graph_steps, sg.captures, sg.direct_steps,
                    kv1, kv30, bound30);
            fclose(f);
        }
    }
    return 0;
}
