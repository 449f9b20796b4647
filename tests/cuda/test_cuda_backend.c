/* test_cuda_backend.c — the CUDA backend's whole forward against the plain reference
 * (tests/cuda/ref_forward.c, itself checked against the CPU engine by tests/engine/test_synth.c), on
 * synthetic models: the tiny shape (all layers) and the first layers of the SmolLM2-135M and
 * LLaMA-2-7B shapes, fp16 and bf16 weights. Checked: hidden states (relative L2 per dtype), the
 * greedy token of a CPU head on them wherever the reference's top-2 gap is clear, multi-slot
 * steps mixing a prefill chunk with decode rounds, rollback (truncate, then rerun), and the
 * step's results for a sequence whether it runs alone or batched with others. Links only the
 * CUDA backend and the base library (runs on a GPU machine with no MPI/HDF5/GSL/OpenBLAS).
 * Tensor parallelism (tp.h): groups of 2 and 4 threads (tests/support/tp_threads.c) sharing the GPU, so
 * the collectives are host-staged (NCCL refuses ranks that share a GPU: the check is exercised),
 * modes exact and allreduce, against the unsplit CUDA backend over mixed steps with a rollback.
 * CUDA graphs: a backend replaying captured steps against one launching every kernel directly,
 * bit for bit, over 100 steps of changing shapes (more than the graph cache holds) and rollbacks.
 * The GEMV kernel (forced on) against cuBLAS only over the same plan, to rounding.
 * Exits 77 (skipped) without a GPU.
 */
#include "backends/backend.h"
#include "core/common.h"
#include "ref_forward.h"
#include "engine/synth.h"
#include "support/tp_threads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails;
#define EXPECT(c, ...) do { if (!(c)) { fails++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
                            fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return sqrt(d / (r > 0 ? r : 1));
}

/* greedy token of the reference's tied head on hidden state h; gap = top1 - top2 */
static int head_argmax(const ref_model *hr, const float *h, float *gap) {
    const model_config *c = &hr->c;
    float *xb = malloc(sizeof(float) * c->dim);
    double ss = 0;
    for (int i = 0; i < c->dim; i++) ss += (double)h[i] * h[i];
    const double s = 1.0 / sqrt(ss / c->dim + c->norm_eps);
    for (int i = 0; i < c->dim; i++) xb[i] = (float)(h[i] * s * hr->out_norm[i]);
    double b1 = -INFINITY, b2 = -INFINITY;
    int best = 0;
    for (int v = 0; v < c->n_vocab; v++) {
        double acc = 0;
        const float *w = hr->tok_embd + (size_t)v * c->dim;
        for (int i = 0; i < c->dim; i++) acc += (double)w[i] * xb[i];
        if (acc > b1) { b2 = b1; b1 = acc; best = v; } else if (acc > b2) b2 = acc;
    }
    free(xb);
    if (gap) *gap = (float)(b1 - b2);
    return best;
}

static void run_shape(const char *shape, int n_layer, backend_dtype dt, double tol) {
    const model_config *c0 = synth_shape(shape);
    model_config c = *c0;
    const int dim = c.dim, n_ctx = 96, P = 40, D = 10;
    char err[HAT_ERRLEN];
    backend *be;
    backend_desc d = {.kind = BACKEND_CUDA, .synth = {shape, 42}, .l0 = 0, .l1 = n_layer, .n_slots = 3, .max_tok = 64,
                      .n_ctx = n_ctx, .gpu = 0, .dtype = dt};
    if (backend_cuda_open(&be, &d, err, sizeof err)) { EXPECT(0, "%s", err); return; }
    printf("%s\n", be->desc);
    /* the reference: layers [0, n_layer) of the shape, plus embedding and head (tied) */
    ref_model r[3], hr;
    for (int s = 0; s < 3; s++) EXPECT(ref_init(&r[s], &c, 42, 0, n_layer, 1, 0, n_ctx) == 0, "ref_init");
    EXPECT(ref_init(&hr, &c, 42, 0, 0, 1, 1, 1) == 0, "ref_init head");
    float *ref_h = malloc(sizeof(float) * 64 * dim), *in = malloc(sizeof(float) * 64 * dim);
    int32_t toks[3][128];
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < P; i++) toks[s][i] = (int32_t)((i * 7919 + 13 + s * 101) % c.n_vocab);
    double worst = 0;
    int clear = 0, agree = 0;
    /* step 1: slot 0 prefill P, slot 1 prefill 12; step 2..: decode rounds of 3 on slot 0 with a
     * rollback of 1 each round (speculative verification), slot 1 one token, slot 2 prefill then decode */
    int n[3] = {0, 0, 0};
    for (int step = 0; step < D; step++) {
        backend_seq seqs[3];
        int ns = 0, tok = 0;
        const int want[3] = {step == 0 ? P : 3, step == 0 ? 12 : 1, step == 1 ? 20 : (step > 1 ? 2 : 0)};
        for (int s = 0; s < 3; s++) {
            if (!want[s]) continue;
            int pos0 = n[s];
            if (s == 0 && step > 0) pos0 = n[s] - 1;   /* the last position is a rejected draft: redo it */
            if (pos0 < backend_kv_len(be, s)) backend_truncate(be, s, pos0);
            for (int t = 0; t < want[s]; t++) {
                const int pos = pos0 + t;
                if (pos >= P && s == 0) toks[s][pos] = (int32_t)((pos * 31 + step) % c.n_vocab);
                if (s > 0 && pos >= (s == 1 ? 12 : 20)) toks[s][pos] = (int32_t)((pos * 17 + s) % c.n_vocab);
                memcpy(in + (size_t)(tok + t) * dim, hr.tok_embd + (size_t)toks[s][pos] * dim, sizeof(float) * dim);
            }
            seqs[ns++] = (backend_seq){.slot = s, .pos0 = pos0, .n_tok = want[s], .decode = step > 0};
            tok += want[s];
        }
        memcpy(backend_io(be), in, sizeof(float) * tok * dim);
        EXPECT(backend_forward(be, seqs, ns, err, sizeof err) == 0, "step %d: %s", step, err);
        int off = 0;
        for (int i = 0; i < ns; i++) {
            const backend_seq *q = &seqs[i];
            ref_forward(&r[q->slot], toks[q->slot] + q->pos0, NULL, q->pos0, q->n_tok, ref_h, NULL);
            const double e = rel_l2(backend_io(be) + (size_t)off * dim, ref_h, (size_t)q->n_tok * dim);
            if (e > worst) worst = e;
            for (int t = 0; t < q->n_tok; t++) {
                float gap;
                const int a = head_argmax(&hr, ref_h + (size_t)t * dim, &gap);
                if (gap > 0.1f) { clear++; agree += head_argmax(&hr, backend_io(be) + (size_t)(off + t) * dim, NULL) == a; }
            }
            n[q->slot] = q->pos0 + q->n_tok;
            EXPECT(backend_kv_len(be, q->slot) == n[q->slot], "slot %d holds %d, want %d", q->slot,
                   backend_kv_len(be, q->slot), n[q->slot]);
            off += q->n_tok;
        }
    }
    printf("cuda vs reference, synthetic %s layers [0, %d), %s: hidden rel L2 <= %.2e (limit %.0e), greedy head "
           "token %d/%d where the top-2 gap > 0.1\n", shape, n_layer, backend_dtype_name(dt), worst, tol, agree, clear);
    EXPECT(worst < tol, "%s %s: hidden states off by %g", shape, backend_dtype_name(dt), worst);
    EXPECT(clear > 0 && agree == clear, "%s: greedy tokens %d of %d", shape, agree, clear);
    /* batch invariance: slot 2 alone vs together with a prefill on slot 0 (same inputs) */
    const int p2 = backend_kv_len(be, 2);
    for (int i = 0; i < 4 * dim; i++) in[i] = (float)((i % 97) - 48) / 48.0f;
    backend_truncate(be, 2, p2 - 4);
    memcpy(backend_io(be), in, sizeof(float) * 4 * dim);
    EXPECT(backend_forward(be, &(backend_seq){.slot = 2, .pos0 = p2 - 4, .n_tok = 4, .decode = 1}, 1, err, sizeof err) == 0, "%s", err);
    float *alone = malloc(sizeof(float) * 4 * dim);
    memcpy(alone, backend_io(be), sizeof(float) * 4 * dim);
    backend_truncate(be, 2, p2 - 4);
    backend_truncate(be, 0, 0);
    for (int i = 0; i < 40 * dim; i++) backend_io(be)[i] = hr.tok_embd[(size_t)(i / dim) * dim + i % dim];
    memcpy(backend_io(be) + (size_t)40 * dim, in, sizeof(float) * 4 * dim);
    EXPECT(backend_forward(be, (backend_seq[]){{0, 0, 40, 0}, {2, p2 - 4, 4, 1}}, 2, err, sizeof err) == 0, "%s", err);
    const double eb = rel_l2(backend_io(be) + (size_t)40 * dim, alone, (size_t)4 * dim);
    printf("  a 4-token decode round alone vs batched with a 40-token prefill: rel L2 %.2e (%s)\n", eb,
           eb == 0 ? "bit-identical" : "another product kernel (cuBLAS algorithm or the GEMV kernel) for the other batch size");
    EXPECT(eb < tol, "batching changes a sequence's result by %g", eb);
    /* bad steps are refused */
    EXPECT(backend_forward(be, &(backend_seq){.slot = 3, .pos0 = 0, .n_tok = 1}, 1, err, sizeof err) != 0, "bad slot accepted");
    EXPECT(backend_forward(be, &(backend_seq){.slot = 1, .pos0 = 90, .n_tok = 10}, 1, err, sizeof err) != 0, "past ctx accepted");
    free(alone); free(ref_h); free(in);
    for (int s = 0; s < 3; s++) ref_free(&r[s]);
    ref_free(&hr);
    backend_free(be);
}

/* ---- tensor parallelism: S threads on the one GPU vs the unsplit backend ---- */
enum { TP_STEPS = 3, TP_MAXT = 48 };
static const backend_seq TP_PLAN[TP_STEPS][2] = {
    {{0, 0, 24, 0}, {1, 0, 8, 0}},
    {{0, 23, 4, 1}, {1, 8, 1, 1}},    /* slot 0 redoes position 23 (a rejected draft) */
    {{1, 9, 16, 0}, {0, 26, 3, 1}},   /* slot 0 rolls back 27 -> 26 */
};
typedef struct {
    backend_desc d;
    float *out;   /* (TP_STEPS, TP_MAXT, dim) */
    int rc;
    char err[HAT_ERRLEN], desc[320];
} tp_job;

static void tp_run(int r, void *arg) {
    (void)r;
    tp_job *j = arg;
    backend *be;
    const int dim = synth_shape(j->d.synth.shape)->dim;
    if ((j->rc = backend_cuda_open(&be, &j->d, j->err, sizeof j->err))) return;
    snprintf(j->desc, sizeof j->desc, "%s", be->desc);
    for (int st = 0; st < TP_STEPS && !j->rc; st++) {
        int tok = 0;
        for (int i = 0; i < 2; i++) {
            const backend_seq *q = &TP_PLAN[st][i];
            if (q->pos0 < backend_kv_len(be, q->slot)) backend_truncate(be, q->slot, q->pos0);
            for (int t = 0; t < q->n_tok; t++)
                for (int k = 0; k < dim; k++)
                    backend_io(be)[(size_t)(tok + t) * dim + k] = (float)(((q->pos0 + t) * 131 + k * 7 + q->slot * 17) % 97 - 48) / 48.0f;
            tok += q->n_tok;
        }
        j->rc = backend_forward(be, TP_PLAN[st], 2, j->err, sizeof j->err);
        memcpy(j->out + (size_t)st * TP_MAXT * dim, backend_io(be), sizeof(float) * tok * dim);
    }
    backend_free(be);
}

static void run_tp(const char *shape, int n_layer, int S, int mode, backend_dtype dt, double tol) {
    const int dim = synth_shape(shape)->dim;
    const size_t per = (size_t)TP_STEPS * TP_MAXT * dim;
    const backend_desc d = {.kind = BACKEND_CUDA, .synth = {shape, 42}, .l0 = 0, .l1 = n_layer, .n_slots = 2,
                            .max_tok = TP_MAXT, .n_ctx = 64, .gpu = 0, .dtype = dt, .nccl = 1};
    tp_job ref = {.d = d, .out = calloc(per, sizeof(float))};
    tp_run(0, &ref);
    EXPECT(ref.rc == 0, "unsplit: %s", ref.err);
    tp_threads *g = tp_threads_new(S);
    tp_job jobs[8];
    void *args[8];
    for (int r = 0; r < S; r++) {
        jobs[r] = (tp_job){.d = d, .out = calloc(per, sizeof(float))};
        jobs[r].d.tp = tp_threads_comm(g, r);
        jobs[r].d.tp.mode = mode;
        args[r] = &jobs[r];
    }
    tp_threads_run(S, tp_run, args);
    int same = 1;
    for (int r = 0; r < S; r++) {
        EXPECT(jobs[r].rc == 0, "tp rank %d of %d: %s", r, S, jobs[r].err);
        same &= memcmp(jobs[r].out, jobs[0].out, sizeof(float) * per) == 0;
    }
    double worst = 0;
    for (int st = 0; st < TP_STEPS; st++) {
        const size_t n = (size_t)(TP_PLAN[st][0].n_tok + TP_PLAN[st][1].n_tok) * dim;
        const double e = rel_l2(jobs[0].out + (size_t)st * TP_MAXT * dim, ref.out + (size_t)st * TP_MAXT * dim, n);
        if (e > worst) worst = e;
    }
    printf("cuda tensor parallelism (%s), synthetic %s layers [0, %d), %d ranks on one GPU, %s: ranks bit-identical %s, "
           "vs unsplit rel L2 %.2e (limit %.0e)\n  %s\n", tp_mode_name(mode), shape, n_layer, S, backend_dtype_name(dt),
           same ? "yes" : "NO", worst, tol, jobs[0].desc);
    EXPECT(same, "tp ranks disagree");
    EXPECT(strstr(jobs[0].desc, "host-staged") != NULL, "ranks sharing a GPU must use host staging: %s", jobs[0].desc);
    EXPECT(strstr(jobs[0].desc, "no CUDA graphs") != NULL, "host-staged collectives cannot be captured: %s", jobs[0].desc);
    EXPECT(worst < tol, "tp %s differs from the unsplit backend by %g", tp_mode_name(mode), worst);
    for (int r = 0; r < S; r++) free(jobs[r].out);
    free(ref.out);
    tp_threads_free(g);
}

/* ---- two backends over the same 100-step plan: a prefill on slot 0, then one-token decodes
 * whose attention block grows with the context, rounds of 1..20 tokens on slot 1 with a rollback
 * of 1 each, every 7th step both; more shapes than the graph cache holds ---- */
static int pair_plan(backend *ba, backend *bb, int T, int n_ctx, int dim, int *differ, double *worst) {
    char err[HAT_ERRLEN];
    int n[2] = {0, 0}, steps = 0;
    *differ = 0;
    *worst = 0;
    for (int st = 0; st < 100 && n[0] + 2 < n_ctx && n[1] + 24 < n_ctx; st++) {
        backend_seq seqs[2];
        int ns = 0, tok = 0;
        if (st % 7 != 3) seqs[ns++] = (backend_seq){0, n[0], st == 0 ? 12 : 1, st > 0};
        if (st % 7 == 3 || st % 7 == 0) {
            const int k = 1 + st % 20 < T - tok ? 1 + st % 20 : T - tok - 1;
            const int pos0 = n[1] > 0 ? n[1] - 1 : 0;
            seqs[ns++] = (backend_seq){1, pos0, k, 1};
        }
        for (int i = 0; i < ns; i++) {
            for (int t = 0; t < seqs[i].n_tok; t++)
                for (int j = 0; j < dim; j++)
                    backend_io(ba)[(size_t)(tok + t) * dim + j] =
                        (float)(((seqs[i].pos0 + t) * 131 + j * 7 + seqs[i].slot * 17 + st) % 97 - 48) / 48.0f;
            if (seqs[i].pos0 < backend_kv_len(ba, seqs[i].slot)) {
                backend_truncate(ba, seqs[i].slot, seqs[i].pos0);
                backend_truncate(bb, seqs[i].slot, seqs[i].pos0);
            }
            tok += seqs[i].n_tok;
        }
        memcpy(backend_io(bb), backend_io(ba), sizeof(float) * tok * dim);
        EXPECT(backend_forward(ba, seqs, ns, err, sizeof err) == 0, "step %d: %s", st, err);
        EXPECT(backend_forward(bb, seqs, ns, err, sizeof err) == 0, "step %d: %s", st, err);
        *differ += memcmp(backend_io(ba), backend_io(bb), sizeof(float) * tok * dim) != 0;
        const double e = rel_l2(backend_io(ba), backend_io(bb), (size_t)tok * dim);
        if (e > *worst) *worst = e;
        for (int i = 0; i < ns; i++) n[seqs[i].slot] = seqs[i].pos0 + seqs[i].n_tok;
        steps++;
    }
    return steps;
}

/* CUDA graphs: replayed steps bit for bit equal to direct launches */
static void run_graphs(const char *shape, int n_layer, backend_dtype dt) {
    const int dim = synth_shape(shape)->dim, T = 24, n_ctx = 160;
    char err[HAT_ERRLEN];
    backend *bg, *bd;
    backend_desc d = {.kind = BACKEND_CUDA, .synth = {shape, 7}, .l0 = 0, .l1 = n_layer, .n_slots = 2, .max_tok = T,
                      .n_ctx = n_ctx, .gpu = 0, .dtype = dt};
    if (backend_cuda_open(&bg, &d, err, sizeof err)) { EXPECT(0, "%s", err); return; }
    d.no_graphs = 1;
    if (backend_cuda_open(&bd, &d, err, sizeof err)) { EXPECT(0, "%s", err); backend_free(bg); return; }
    EXPECT(strstr(bg->desc, ", CUDA graphs") != NULL, "graphs not on by default: %s", bg->desc);
    EXPECT(strstr(bd->desc, "no CUDA graphs") != NULL, "no_graphs ignored: %s", bd->desc);
    int differ;
    double worst;
    const int steps = pair_plan(bg, bd, T, n_ctx, dim, &differ, &worst);
    const backend_cuda_stats sg = backend_cuda_stats_of(bg), sd = backend_cuda_stats_of(bd);
    printf("cuda graphs, synthetic %s layers [0, %d), %s: %d steps, %lld replayed from %lld captured graphs, %lld launched "
           "directly; outputs equal to the direct backend's in %d of %d steps\n", shape, n_layer, backend_dtype_name(dt),
           steps, sg.graph_steps, sg.captures, sg.direct_steps, steps - differ, steps);
    EXPECT(differ == 0, "graph replay differs from direct launches in %d steps (worst rel L2 %g)", differ, worst);
    EXPECT(sg.graph_steps > steps / 2 && sg.captures > 0 && sg.graph_steps + sg.direct_steps == steps,
           "graph counters: %lld replayed, %lld direct, %lld captures of %d steps", sg.graph_steps, sg.direct_steps,
           sg.captures, steps);
    EXPECT(sd.graph_steps == 0 && sd.captures == 0 && sd.direct_steps == steps, "no_graphs backend replayed graphs");
    backend_free(bg);
    backend_free(bd);
}

/* the GEMV kernel for every step of <= 8 tokens against cuBLAS only (another summation order:
 * equal to rounding), and what auto chose on this GPU */
static void run_gemv(const char *shape, int n_layer, backend_dtype dt, double tol) {
    const int dim = synth_shape(shape)->dim, T = 24, n_ctx = 160;
    char err[HAT_ERRLEN];
    backend *bk, *bc, *ba;
    backend_desc d = {.kind = BACKEND_CUDA, .synth = {shape, 7}, .l0 = 0, .l1 = n_layer, .n_slots = 2, .max_tok = T,
                      .n_ctx = n_ctx, .gpu = 0, .dtype = dt, .gemv = BACKEND_GEMV_ON};
    if (backend_cuda_open(&bk, &d, err, sizeof err)) { EXPECT(0, "%s", err); return; }
    d.gemv = BACKEND_GEMV_OFF;
    if (backend_cuda_open(&bc, &d, err, sizeof err)) { EXPECT(0, "%s", err); backend_free(bk); return; }
    const backend_cuda_stats sk = backend_cuda_stats_of(bk), sc = backend_cuda_stats_of(bc);
    EXPECT(sk.gemv_max_n == 8, "gemv = on: %s", sk.gemv_note);
    EXPECT(sc.gemv_max_n == 0, "gemv = off: %s", sc.gemv_note);
    int differ;
    double worst;
    const int steps = pair_plan(bk, bc, T, n_ctx, dim, &differ, &worst);
    printf("cuda GEMV kernel vs cuBLAS, synthetic %s layers [0, %d), %s: %d steps, worst rel L2 %.2e (limit %.0e)\n  %s\n",
           shape, n_layer, backend_dtype_name(dt), steps, worst, tol, sk.gemv_note);
    EXPECT(worst < tol, "GEMV kernel vs cuBLAS: %g", worst);
    d.gemv = BACKEND_GEMV_AUTO;
    if (!backend_cuda_open(&ba, &d, err, sizeof err)) {
        printf("  auto: %s\n", backend_cuda_stats_of(ba).gemv_note);
        backend_free(ba);
    } else EXPECT(0, "%s", err);
    backend_free(bk);
    backend_free(bc);
}

int main(void) {
    int n = 0;
    char why[256];
    if (backend_cuda_available(&n, why, sizeof why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    run_shape("tiny", 4, BACKEND_FP16, 3e-3);
    run_shape("tiny", 4, BACKEND_BF16, 3e-2);
    run_shape("smollm2-135m", 4, BACKEND_FP16, 3e-3);
    run_shape("llama2-7b", 2, BACKEND_FP16, 3e-3);
    run_graphs("tiny", 4, BACKEND_FP16);
    run_graphs("smollm2-135m", 3, BACKEND_BF16);
    run_gemv("tiny", 4, BACKEND_FP16, 3e-3);
    run_gemv("llama2-7b", 2, BACKEND_BF16, 3e-2);
    run_tp("tiny", 4, 2, TP_EXACT, BACKEND_FP16, 3e-3);
    run_tp("tiny", 4, 2, TP_ALLREDUCE, BACKEND_FP16, 3e-3);
    run_tp("llama2-7b", 2, 4, TP_EXACT, BACKEND_FP16, 3e-3);
    run_tp("llama2-7b", 2, 4, TP_ALLREDUCE, BACKEND_BF16, 3e-2);
    /* errors: an unknown shape, a range past the shape, more memory than the GPU has */
    char err[HAT_ERRLEN];
    backend *be;
    EXPECT(backend_cuda_open(&be, &(backend_desc){.kind = BACKEND_CUDA, .synth = {"nope", 1}, .l0 = 0, .l1 = 1,
                             .n_slots = 1, .max_tok = 1, .n_ctx = 8}, err, sizeof err) != 0 && strstr(err, "nope"), "%s", err);
    EXPECT(backend_cuda_open(&be, &(backend_desc){.kind = BACKEND_CUDA, .synth = {"tiny", 1}, .l0 = 0, .l1 = 9,
                             .n_slots = 1, .max_tok = 1, .n_ctx = 8}, err, sizeof err) != 0 && strstr(err, "layer range"), "%s", err);
    EXPECT(backend_cuda_open(&be, &(backend_desc){.kind = BACKEND_CUDA, .synth = {"llama2-13b", 1}, .l0 = 0, .l1 = 40,
                             .n_slots = 64, .max_tok = 8, .n_ctx = 4096}, err, sizeof err) == HAT_ERR_NOMEM && strstr(err, "GiB free"),
           "out of memory: %s", err);
    printf("%s\n", fails ? "FAILED" : "all passed");
    return fails ? 1 : 0;
}
