/* test_synth.c — synthetic models and the backend table, on the CPU (no GPU needed):
 *  1. synth_value: deterministic, in range, tensors and seeds independent, exact fp32 grid;
 *  2. the CPU engine on a synthetic model (tiny shape, and the first layers of the SmolLM2 shape)
 *     against the independent plain reference tests/cuda/ref_forward.c — the same reference the
 *     CUDA backend is checked against on a GPU, so this also checks that reference: hidden states
 *     and logits within tolerance, argmax equal wherever the top-2 gap is clear, prompt + decode;
 *  3. the CPU backend over [a, L-b) with several slots (decode rounds, rollback, prefill mixed in
 *     one step) equal to each sequence run alone through forward_run (to rounding: the
 *     fp32 weights go through OpenBLAS sgemm, whose blocking depends on the batch size; the
 *     quantised path is batch-invariant and bit-identical, which the mpi_split tests check; an
 *     sgemm rounding difference can flip the fp16 rounding of a q or K element, hence 1e-3; a wrong
 *     slot or position gives O(1) errors);
 *  4. tensor parallelism (tp.h): groups of 2 and 3 threads (tests/support/tp_threads.c, the collective
 *     without MPI) each holding a shard of the heads and FFN features give the same bits on every
 *     rank, and the unsplit backend's hidden states to fp32 rounding over the same mixed steps (the
 *     fp32 path's sgemm blocks by the number of rows; mode exact's bit-identity on the quantised
 *     path is tests/engine/test_tp.c's);
 *     shapes that do not divide are refused;
 *  5. backend_open: cuda/auto fall back to the CPU without a GPU (with a note for cuda), bad plans
 *     and bad steps are refused with a message;
 *  6. a whole-model plan (embed + head: the cloud-only baseline's cloud): the CPU backend's logits
 *     equal forward_run_batch's on the same batched steps, bit for bit; a plan whose ends the part
 *     lacks, or under tensor parallelism, is refused; cuda (and auto on a GPU) falls back to the
 *     CPU with a note, since the CUDA backend runs layers only, and refuses such a plan itself.
 */
#include "backends/backend.h"
#include "core/common.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/synth.h"
#include "cuda/ref_forward.h"
#include "support/testutil.h"
#include "support/tp_threads.h"

#include <math.h>
#include <string.h>

static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) { d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]); r += (double)b[i] * b[i]; }
    return sqrt(d / (r > 0 ? r : 1));
}

static int argmax(const float *x, int n, float *gap) {
    int best = 0, second = -1;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) { second = best; best = i; }
        else if (second < 0 || x[i] > x[second]) second = i;
    if (gap) *gap = x[best] - x[second];
    return best;
}

static void test_values(void) {
    int in_range = 1, grid = 1;
    double sum = 0, sq = 0;
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        const float v = synth_value(7, 3, (uint64_t)i, 1.0f, 0.0f);
        in_range &= v >= -1.0f && v < 1.0f;
        grid &= v * 8388608.0f == floorf(v * 8388608.0f);
        sum += v; sq += (double)v * v;
    }
    EXPECT(in_range && grid, "synth_value out of [-1, 1) or off the 2^-23 grid");
    EXPECT(fabs(sum / N) < 0.01 && fabs(sq / N - 1.0 / 3) < 0.01, "synth_value moments: mean %g, E[u^2] %g (want 0, 1/3)",
           sum / N, sq / N);
    EXPECT(synth_value(7, 3, 5, 1, 0) == synth_value(7, 3, 5, 1, 0), "not deterministic");
    int same_t = 0, same_s = 0;
    for (int i = 0; i < 1000; i++) {
        same_t += synth_value(7, 3, (uint64_t)i, 1, 0) == synth_value(7, 4, (uint64_t)i, 1, 0);
        same_s += synth_value(7, 3, (uint64_t)i, 1, 0) == synth_value(8, 3, (uint64_t)i, 1, 0);
    }
    EXPECT(same_t < 5 && same_s < 5, "tensors or seeds not independent (%d, %d equal of 1000)", same_t, same_s);
    /* indices above 2^32 are distinct (a 7B tensor has < 2^28 elements, the id keeps 40 bits) */
    EXPECT(synth_value(1, 0, (1ull << 33) + 5, 1, 0) != synth_value(1, 0, 5, 1, 0), "index bits above 32 ignored");
    EXPECT(synth_shape("llama2-7b") && synth_shape("llama2-7b")->dim == 4096 && synth_shape("llama2-13b")->n_layer == 40 &&
           synth_shape("smollm2-135m")->n_vocab == 49152 && !synth_shape("gpt-5"), "shape table");
    char err[HAT_ERRLEN];
    model *m = NULL;
    EXPECT(model_synth(&m, "gpt-5", 1, &(model_part){.l0 = 0, .l1 = -1}, 0, err, sizeof err) == HAT_ERR_ARG &&
           strstr(err, "gpt-5") && strstr(err, "llama2-7b"), "unknown shape: %s", err);
    EXPECT(model_synth(&m, "llama2-7b", 1, &(model_part){.l0 = 0, .l1 = -1}, (size_t)1 << 30, err, sizeof err) ==
           HAT_ERR_NOMEM && strstr(err, "GiB"), "size limit: %s", err);
    EXPECT(synth_part_bytes(synth_shape("llama2-7b"), &(model_part){.l0 = 0, .l1 = 32}) / 4 > 6400000000ull,
           "llama2-7b layer parameters should be ~6.5e9");
}

/* the engine (fp32 weights) vs the plain reference: prompt of n_prompt tokens, then n_dec decode
 * steps fed with the reference's own greedy tokens (so one near-tie cannot derail the rest) */
static void test_engine_vs_ref(const char *shape, int n_layer, int n_prompt, int n_dec) {
    const model_config *c0 = synth_shape(shape);
    model_config c = *c0;
    c.n_layer = n_layer;   /* the first n_layer layers of the shape (a truncated model) */
    char err[HAT_ERRLEN];
    model *m;
    if (model_synth(&m, shape, 42, &(model_part){.l0 = 0, .l1 = n_layer, .embed = 1, .head = 0}, 0, err, sizeof err)) {
        EXPECT(0, "%s", err);
        return;
    }
    /* model_synth only builds the head for l1 = n_layer of the shape: add it on a truncated copy */
    model *mh;
    EXPECT(model_synth(&mh, shape, 42, &(model_part){.l0 = 0, .l1 = 0, .embed = 1, .head = 1}, 0, err, sizeof err) == 0, "%s", err);
    m->part.head = 1;
    m->out_norm = mh->out_norm;
    m->output = mh->tok_embd;
    m->tied_output = 1;
    m->cfg.n_layer = n_layer;
    const int n_ctx = n_prompt + n_dec + 1, V = c.n_vocab, dim = c.dim;
    forward_state fs;
    kvcache kv;
    EXPECT(forward_init(&fs, m, n_prompt, n_ctx, n_prompt, 1, err, sizeof err) == 0, "%s", err);
    EXPECT(kvcache_init(&kv, 0, n_layer, n_ctx, c.kv_dim, err, sizeof err) == 0, "%s", err);
    ref_model ref;
    EXPECT(ref_init(&ref, &c, 42, 0, n_layer, 1, 1, n_ctx) == 0, "ref_init");
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(n_prompt + n_dec));
    for (int i = 0; i < n_prompt; i++) toks[i] = (int32_t)((i * 7919 + 13) % V);
    float *rh = malloc(sizeof(float) * (size_t)n_prompt * dim), *rl = malloc(sizeof(float) * (size_t)n_prompt * V);
    ref_forward(&ref, toks, NULL, 0, n_prompt, rh, rl);
    forward_run(m, &kv, &fs, &(forward_args){.tokens = toks, .n_tok = n_prompt, .pos0 = 0, .l0 = 0, .l1 = n_layer,
                                                     .head = 1, .logits_all = 1});
    double eh = rel_l2(fs.x, rh, (size_t)n_prompt * dim), el = rel_l2(fs.logits, rl, (size_t)n_prompt * V);
    int agree = 0, clear = 0;
    for (int t = 0; t < n_prompt; t++) {
        float gap;
        const int a = argmax(rl + (size_t)t * V, V, &gap);
        if (gap > 0.05f) { clear++; agree += argmax(fs.logits + (size_t)t * V, V, NULL) == a; }
    }
    double worst_h = eh, worst_l = el;
    for (int s = 0; s < n_dec; s++) {
        const int pos = n_prompt + s;
        const int32_t tk = (int32_t)argmax(rl, V, NULL);   /* the reference's greedy token */
        toks[pos] = tk;
        ref_forward(&ref, &tk, NULL, pos, 1, rh, rl);
        forward_run(m, &kv, &fs, &(forward_args){.tokens = &tk, .n_tok = 1, .pos0 = pos, .l0 = 0, .l1 = n_layer, .head = 1});
        eh = rel_l2(fs.x, rh, dim); el = rel_l2(fs.logits, rl, V);
        if (eh > worst_h) worst_h = eh;
        if (el > worst_l) worst_l = el;
        float gap;
        const int a = argmax(rl, V, &gap);
        if (gap > 0.05f) { clear++; agree += argmax(fs.logits, V, NULL) == a; }
    }
    printf("engine vs reference, synthetic %s (%d layers): hidden rel L2 <= %.2e, logits <= %.2e, argmax %d/%d "
           "where the top-2 gap > 0.05\n", shape, n_layer, worst_h, worst_l, agree, clear);
    /* fp32 weights both sides; the engine rounds q to fp16 for the K dot (llama.cpp's numerics) */
    EXPECT(worst_h < 3e-3 && worst_l < 3e-3, "%s: engine differs from the reference (hidden %g, logits %g)", shape,
           worst_h, worst_l);
    EXPECT(clear >= (n_prompt + n_dec) / 2 && agree == clear, "%s: argmax %d of %d clear positions", shape, agree, clear);
    free(toks); free(rh); free(rl);
    ref_free(&ref);
    kvcache_free(&kv);
    forward_free(&fs);
    m->out_norm = NULL;
    model_free(mh);
    model_free(m);
}

/* backend cpu over [a, L-b): three slots in mixed steps == each alone through forward_run */
/* steps: {slot, pos0, n_tok, decode}: prefill, decode rounds, a rollback, mixed in one step */
static const backend_seq STEPS[][3] = {
    {{0, 0, 9, 0}, {1, 0, 4, 0}, {-1, 0, 0, 0}},
    {{1, 4, 5, 1}, {0, 9, 1, 0}, {2, 0, 12, 0}},
    {{1, 6, 3, 1}, {2, 12, 2, 1}, {-1, 0, 0, 0}},   /* slot 1 rolls back 9 -> 6 */
    {{0, 10, 4, 1}, {1, 9, 1, 1}, {2, 14, 6, 0}},
};
#define N_STEPS ((int)(sizeof STEPS / sizeof *STEPS))

static void test_backend_cpu(void) {
    const model_config *c = synth_shape("tiny");
    const int a = 1, l1 = c->n_layer - 1, dim = c->dim, n_ctx = 64;
    char err[HAT_ERRLEN], note[320];
    backend *be;
    backend_desc d = {.kind = BACKEND_CPU, .synth = {"tiny", 5}, .l0 = a, .l1 = l1, .n_slots = 3, .max_tok = 32,
                      .n_ctx = n_ctx, .n_threads = 2};
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == 0 && be->kind == BACKEND_CPU && !note[0],
           "open: %s", err);
    EXPECT(strstr(be->desc, "synthetic tiny seed 5") != NULL, "desc names the synthetic model: %s", be->desc);
    model *m;
    EXPECT(model_synth(&m, "tiny", 5, &(model_part){.l0 = a, .l1 = l1}, 0, err, sizeof err) == 0, "%s", err);
    forward_state fs;
    kvcache kv[3];
    EXPECT(forward_init(&fs, m, 32, n_ctx, 0, 1, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 3; i++) kvcache_init(&kv[i], a, l1, n_ctx, c->kv_dim, err, sizeof err);
    const backend_seq (*steps)[3] = STEPS;
    float *in = malloc(sizeof(float) * 32 * dim), *alone = malloc(sizeof(float) * 32 * dim);
    double worst = 0;
    for (int st = 0; st < N_STEPS; st++) {
        int ns = 0, tok = 0;
        while (ns < 3 && steps[st][ns].slot >= 0) tok += steps[st][ns++].n_tok;
        for (int i = 0; i < tok * dim; i++) in[i] = t_normalish();
        memcpy(backend_io(be), in, sizeof(float) * tok * dim);
        for (int i = 0; i < ns; i++)
            if (steps[st][i].pos0 < backend_kv_len(be, steps[st][i].slot)) backend_truncate(be, steps[st][i].slot, steps[st][i].pos0);
        EXPECT(backend_forward(be, steps[st], ns, err, sizeof err) == 0, "step %d: %s", st, err);
        int off = 0;
        for (int i = 0; i < ns; i++) {
            const backend_seq *s = &steps[st][i];
            if (s->pos0 < kv[s->slot].n) kvcache_truncate(&kv[s->slot], s->pos0);
            forward_run_batch(m, &fs, &(forward_batch_args){.hidden_in = in + (size_t)off * dim,
                .seqs = &(forward_seq){.kv = &kv[s->slot], .pos0 = s->pos0, .n_tok = s->n_tok, .decode = s->decode},
                .n_seq = 1, .l0 = a, .l1 = l1});
            const double e = rel_l2(backend_io(be) + (size_t)off * dim, fs.x, (size_t)s->n_tok * dim);
            if (e > worst) worst = e;
            EXPECT(backend_kv_len(be, s->slot) == s->pos0 + s->n_tok, "slot %d holds %d", s->slot, backend_kv_len(be, s->slot));
            off += s->n_tok;
        }
    }
    printf("backend cpu, 4 mixed steps of 3 slots vs each sequence alone: rel L2 <= %.2e\n", worst);
    EXPECT(worst < 1e-3, "backend cpu steps differ from each sequence alone (rel L2 %g)", worst);
    /* bad steps */
    EXPECT(backend_forward(be, &(backend_seq){.slot = 3, .pos0 = 0, .n_tok = 1}, 1, err, sizeof err) == HAT_ERR_ARG &&
           strstr(err, "slot 3"), "bad slot: %s", err);
    EXPECT(backend_forward(be, &(backend_seq){.slot = 0, .pos0 = 30, .n_tok = 1}, 1, err, sizeof err) == HAT_ERR_ARG,
           "gap in positions accepted");
    EXPECT(backend_forward(be, (backend_seq[]){{0, 14, 20, 0}, {1, 10, 20, 0}}, 2, err, sizeof err) == HAT_ERR_ARG &&
           strstr(err, "40 tokens"), "over max_tok: %s", err);
    EXPECT(backend_forward(be, (backend_seq[]){{0, 14, 1, 0}, {0, 14, 1, 0}}, 2, err, sizeof err) == HAT_ERR_ARG &&
           strstr(err, "twice"), "slot twice: %s", err);
    backend_free(be);
    for (int i = 0; i < 3; i++) kvcache_free(&kv[i]);
    forward_free(&fs);
    model_free(m);
    free(in); free(alone);
}


/* one rank of a tensor-parallel group (or the unsplit backend): runs STEPS, keeps every output */
typedef struct {
    backend_desc d;
    const float *in;   /* (N_STEPS, 32, dim) */
    float *out;        /* (N_STEPS, 32, dim) */
    int rc;
    char err[HAT_ERRLEN], desc[320];
} tp_job;

static void tp_worker(int r, void *arg) {
    (void)r;
    tp_job *j = arg;
    backend *be;
    char note[320];
    const int dim = synth_shape(j->d.synth.shape)->dim;
    j->rc = backend_open(&be, &j->d, note, sizeof note, j->err, sizeof j->err);
    if (j->rc) return;
    snprintf(j->desc, sizeof j->desc, "%s", be->desc);
    for (int st = 0; st < N_STEPS && !j->rc; st++) {
        int ns = 0, tok = 0;
        while (ns < 3 && STEPS[st][ns].slot >= 0) tok += STEPS[st][ns++].n_tok;
        memcpy(backend_io(be), j->in + (size_t)st * 32 * dim, sizeof(float) * tok * dim);
        for (int i = 0; i < ns; i++)
            if (STEPS[st][i].pos0 < backend_kv_len(be, STEPS[st][i].slot)) backend_truncate(be, STEPS[st][i].slot, STEPS[st][i].pos0);
        j->rc = backend_forward(be, STEPS[st], ns, j->err, sizeof j->err);
        memcpy(j->out + (size_t)st * 32 * dim, backend_io(be), sizeof(float) * tok * dim);
    }
    backend_free(be);
}

static void test_backend_tp(const char *shape, int l0, int l1, int S, int mode, double tol) {
    const model_config *c = synth_shape(shape);
    const int dim = c->dim;
    const size_t per = (size_t)N_STEPS * 32 * dim;
    float *in = malloc(sizeof(float) * per);
    for (size_t i = 0; i < per; i++) in[i] = t_normalish();
    const backend_desc d = {.kind = BACKEND_CPU, .synth = {shape, 11}, .l0 = l0, .l1 = l1, .n_slots = 3, .max_tok = 32,
                            .n_ctx = 64, .n_threads = 1};
    tp_job ref = {.d = d, .in = in, .out = calloc(per, sizeof(float))};
    tp_worker(0, &ref);
    EXPECT(ref.rc == 0, "unsplit backend: %s", ref.err);
    tp_threads *g = tp_threads_new(S);
    tp_job *jobs = calloc((size_t)S, sizeof *jobs);
    void *args[8];
    for (int r = 0; r < S; r++) {
        jobs[r] = (tp_job){.d = d, .in = in, .out = calloc(per, sizeof(float))};
        jobs[r].d.tp = tp_threads_comm(g, r);
        jobs[r].d.tp.mode = mode;
        args[r] = &jobs[r];
    }
    tp_threads_run(S, tp_worker, args);
    double worst = 0;
    int same = 1;
    for (int r = 0; r < S; r++) {
        EXPECT(jobs[r].rc == 0, "tp rank %d of %d: %s", r, S, jobs[r].err);
        EXPECT(strstr(jobs[r].desc, "tensor-parallel (") != NULL, "desc: %s", jobs[r].desc);
        same &= memcmp(jobs[r].out, jobs[0].out, sizeof(float) * per) == 0;
    }
    for (int st = 0; st < N_STEPS; st++) {
        int tok = 0;
        for (int i = 0; i < 3 && STEPS[st][i].slot >= 0; i++) tok += STEPS[st][i].n_tok;
        const double e = rel_l2(jobs[0].out + (size_t)st * 32 * dim, ref.out + (size_t)st * 32 * dim, (size_t)tok * dim);
        if (e > worst) worst = e;
    }
    printf("tensor parallelism (%s), %s layers [%d, %d), %d ranks: ranks bit-identical %s, vs unsplit rel L2 <= %.2e (%s)\n",
           tp_mode_name(mode), shape, l0, l1, S, same ? "yes" : "NO", worst, jobs[0].desc);
    EXPECT(same, "tp ranks disagree");
    EXPECT(worst <= tol, "tensor-parallel hidden states differ from the unsplit backend's (rel L2 %g, tolerance %g)", worst, tol);
    for (int r = 0; r < S; r++) free(jobs[r].out);
    free(jobs);
    tp_threads_free(g);
    free(ref.out);
    free(in);
}

static void test_tp_refused(void) {
    char err[HAT_ERRLEN], note[320];
    backend *be;
    tp_threads *g = tp_threads_new(3);
    backend_desc d = {.kind = BACKEND_CPU, .synth = {"tiny", 1}, .l0 = 0, .l1 = 2, .n_slots = 1, .max_tok = 4, .n_ctx = 16,
                      .n_threads = 1, .tp = tp_threads_comm(g, 1)};
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == HAT_ERR_ARG && strstr(err, "4 query heads"),
           "tiny over 3 ranks: %s", err);
    printf("refused: %s\n", err);
    model_config c = *synth_shape("smollm2-135m");
    EXPECT(tp_check(&c, 3, TP_ALLREDUCE, 2 /* Q4_0 */, err, sizeof err) == 0, "smollm2 over 3 ranks, Q4_0: %s", err);
    c.ffn_dim = 1536 + 48;   /* 528 per rank: whole rows for exact, not whole 32-blocks for allreduce */
    EXPECT(tp_check(&c, 3, TP_EXACT, 2, err, sizeof err) == 0, "exact: %s", err);
    EXPECT(tp_check(&c, 3, TP_ALLREDUCE, 2, err, sizeof err) == HAT_ERR_ARG && strstr(err, "FFN width"), "ffn blocks: %s", err);
    tp_threads_free(g);
}

static void test_fallback(void) {
    char err[HAT_ERRLEN], note[320], why[256];
    int n = 0;
    const int have_gpu = backend_cuda_available(&n, why, sizeof why) == 0 && n > 0;
    backend *be;
    backend_desc d = {.kind = BACKEND_CUDA, .synth = {"tiny", 1}, .l0 = 0, .l1 = 2, .n_slots = 1, .max_tok = 4,
                      .n_ctx = 16, .n_threads = 1};
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == 0, "open cuda: %s", err);
    if (have_gpu) {
        printf("a CUDA GPU is present: the fallback paths are not exercised here\n");
        EXPECT(be->kind == BACKEND_CUDA && !note[0], "cuda with a GPU: %s", note);
    } else {
        printf("no GPU: %s\nfallback note: %s\n", why, note);
        EXPECT(be->kind == BACKEND_CPU && strstr(note, "backend cuda requested") && strstr(note, "CPU"), "note: %s", note);
    }
    backend_free(be);
    d.kind = BACKEND_AUTO;
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == 0 && !note[0] &&
           be->kind == (have_gpu ? BACKEND_CUDA : BACKEND_CPU), "auto: kind %d, note %s", be ? (int)be->kind : -1, note);
    backend_free(be);
    d.kind = BACKEND_CPU;
    d.n_slots = 0;
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == HAT_ERR_ARG && strstr(err, "0 slots"), "bad plan: %s", err);
    d.n_slots = 1;
    d.synth.shape = "nope";
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == HAT_ERR_ARG && strstr(err, "nope"), "bad shape: %s", err);
    d.synth.shape = "tiny";
    d.l1 = 9;
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == HAT_ERR_ARG && strstr(err, "layer range"), "bad range: %s", err);
}

/* steps of a whole model: two prompts in one step, then a decode step of each */
static const backend_seq WHOLE[][2] = {{{0, 0, 5, 0}, {1, 0, 3, 0}}, {{1, 3, 1, 0}, {0, 5, 1, 0}}};

static void test_backend_whole(void) {
    const model_config *c = synth_shape("tiny");
    const int L = c->n_layer, nv = c->n_vocab;
    char err[HAT_ERRLEN], note[320];
    backend *be;
    backend_desc d = {.kind = BACKEND_CPU, .synth = {"tiny", 5}, .l0 = 0, .l1 = L, .n_slots = 2, .max_tok = 16, .n_ctx = 32,
                      .n_threads = 1, .embed = 1, .head = 1};
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == 0 && !note[0], "open whole: %s", err);
    EXPECT(backend_ids(be) && backend_logits(be) && strstr(be->desc, "embedding + layers [0, ") && strstr(be->desc, ") + head"),
           "whole model: ids, logits, desc %s", be->desc);
    model *m;
    EXPECT(model_synth(&m, "tiny", 5, &(model_part){.l0 = 0, .l1 = L, .embed = 1, .head = 1}, 0, err, sizeof err) == 0, "%s", err);
    forward_state fs;
    kvcache kv[2];
    EXPECT(forward_init(&fs, m, 16, 32, 2, 1, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 2; i++) kvcache_init(&kv[i], 0, L, 32, c->kv_dim, err, sizeof err);
    int32_t ids[16];
    int same = 1;
    for (int st = 0; st < 2; st++) {
        const int tok = WHOLE[st][0].n_tok + WHOLE[st][1].n_tok;
        for (int i = 0; i < tok; i++) ids[i] = (int32_t)(t_uniform() * nv) % nv;
        memcpy(backend_ids(be), ids, sizeof(int32_t) * tok);
        EXPECT(backend_forward(be, WHOLE[st], 2, err, sizeof err) == 0, "whole step %d: %s", st, err);
        forward_seq fseq[2];
        for (int i = 0; i < 2; i++)
            fseq[i] = (forward_seq){.kv = &kv[WHOLE[st][i].slot], .pos0 = WHOLE[st][i].pos0, .n_tok = WHOLE[st][i].n_tok};
        forward_run_batch(m, &fs, &(forward_batch_args){.tokens = ids, .seqs = fseq, .n_seq = 2, .l0 = 0, .l1 = L, .head = 1});
        same &= memcmp(backend_logits(be), fs.logits, sizeof(float) * 2 * nv) == 0;
        for (int i = 0; i < 2; i++)
            EXPECT(backend_kv_len(be, WHOLE[st][i].slot) == kv[WHOLE[st][i].slot].n, "whole step %d: slot length", st);
    }
    printf("backend cpu, whole model (embedding + layers + head), 2 steps of 2 sequences: logits %s forward_run_batch's\n",
           same ? "bit-identical to" : "DIFFERENT from");
    EXPECT(same, "whole-model backend logits differ from forward_run_batch");
    backend_free(be);
    for (int i = 0; i < 2; i++) kvcache_free(&kv[i]);
    forward_free(&fs);
    model_free(m);
    /* plans the part or the backend cannot run */
    backend_desc bad = d;
    bad.l0 = 1;
    EXPECT(backend_open(&be, &bad, note, sizeof note, err, sizeof err) == HAT_ERR_ARG && strstr(err, "token embedding"),
           "embedding from layer 1: %s", err);
    bad = d;
    bad.l1 = L - 1;
    EXPECT(backend_open(&be, &bad, note, sizeof note, err, sizeof err) == HAT_ERR_ARG && strstr(err, "LM head"),
           "head before the last layer: %s", err);
    tp_threads *g = tp_threads_new(2);
    bad = d;
    bad.tp = tp_threads_comm(g, 0);
    EXPECT(backend_open(&be, &bad, note, sizeof note, err, sizeof err) == HAT_ERR_ARG && strstr(err, "layers only"),
           "whole model under tensor parallelism: %s", err);
    tp_threads_free(g);
    EXPECT(backend_cuda_open(&be, &d, err, sizeof err) == HAT_ERR_UNSUPPORTED && !be, "cuda open of a whole model: %s", err);
    /* cuda: the CPU with a note whether or not a GPU is present; auto: a note only on a GPU */
    int n = 0;
    char why[256];
    const int have_gpu = backend_cuda_available(&n, why, sizeof why) == 0 && n > 0;
    d.kind = BACKEND_CUDA;
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == 0 && be->kind == BACKEND_CPU &&
           strstr(note, "backend cuda requested but") && strstr(note, "whole model runs on the CPU"), "cuda whole: %s", note);
    printf("cuda asked for a whole model: %s\n", note);
    backend_free(be);
    d.kind = BACKEND_AUTO;
    EXPECT(backend_open(&be, &d, note, sizeof note, err, sizeof err) == 0 && be->kind == BACKEND_CPU &&
           (have_gpu ? strstr(note, "no token embedding or LM head step") != NULL : !note[0]), "auto whole: %s", note);
    backend_free(be);
}

int main(void) {
    test_values();
    test_engine_vs_ref("tiny", 4, 20, 12);
    test_engine_vs_ref("smollm2-135m", 3, 12, 6);
    test_backend_cpu();
    /* both to rounding here: the fp32 weights go through OpenBLAS sgemm, whose blocking depends on
     * the number of rows (exact's bit-identity holds on the quantised path: tests/engine/test_tp.c) */
    test_backend_tp("tiny", 1, 3, 2, TP_EXACT, 1e-3);
    test_backend_tp("smollm2-135m", 2, 5, 3, TP_EXACT, 1e-3);
    test_backend_tp("tiny", 1, 3, 2, TP_ALLREDUCE, 1e-3);
    test_backend_tp("smollm2-135m", 2, 5, 3, TP_ALLREDUCE, 1e-3);
    test_tp_refused();
    test_fallback();
    test_backend_whole();
    return test_summary();
}
