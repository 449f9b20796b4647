/* test_tp.c — tensor parallelism (tp.h) on the real model, groups of threads (tests/support/tp_threads.c):
 *  1. mode exact, 3 ranks, the quantised weights: the cloud layers' hidden states over mixed steps
 *     (prefill chunks of two sessions, decode rounds with single-token numerics, a rollback) are
 *     bit-identical to the unsplit backend's, on every rank;
 *  2. mode allreduce, 3 ranks: every rank gets the same bits; the distance to the unsplit backend is
 *     reported (rounding, amplified by the 8-bit activation quantisation), next to the distance a
 *     1e-7 relative perturbation of the input alone causes in the unsplit model, which bounds it;
 *  3. a group size that does not divide the heads (2: 9 heads) is refused with a message.
 * The input hidden states are the real ones: the prompt's tokens through the embedding and [0, a).
 * usage: test_tp MODEL
 */
#include "backends/backend.h"
#include "core/common.h"
#include "engine/forward.h"
#include "support/testutil.h"
#include "support/tp_threads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { A = 2, B = 2, NTOK = 40, MAXT = 32 };

/* {slot, pos0, n_tok, decode}; each step's tokens are consecutive positions of the prompt */
static const backend_seq STEPS[][2] = {
    {{0, 0, 16, 0}, {1, 0, 9, 0}},
    {{0, 16, 5, 1}, {1, 9, 16, 0}},
    {{0, 18, 4, 1}, {-1, 0, 0, 0}},   /* slot 0 rolls back 21 -> 18 */
    {{1, 25, 1, 0}, {0, 22, 8, 0}},
};
#define N_STEPS ((int)(sizeof STEPS / sizeof *STEPS))

static const model *PART;
static const float *HID;   /* (NTOK, dim): position p's input hidden state */
static int DIM;

typedef struct {
    tp_comm tp;
    float *out;   /* (N_STEPS, MAXT, dim) */
    int rc;
    char err[HAT_ERRLEN];
} job;

static void run(int r, void *arg) {
    (void)r;
    job *j = arg;
    backend *be;
    char note[64];
    const int L = PART->cfg.n_layer;
    backend_desc d = {.kind = BACKEND_CPU, .m = PART, .l0 = A, .l1 = L - B, .n_slots = 2, .max_tok = MAXT, .n_ctx = 64,
                      .n_threads = 1, .tp = j->tp};
    if ((j->rc = backend_open(&be, &d, note, sizeof note, j->err, sizeof j->err))) return;
    for (int st = 0; st < N_STEPS && !j->rc; st++) {
        int ns = 0, tok = 0;
        for (; ns < 2 && STEPS[st][ns].slot >= 0; ns++) {
            const backend_seq *s = &STEPS[st][ns];
            memcpy(backend_io(be) + (size_t)tok * DIM, HID + (size_t)s->pos0 * DIM, sizeof(float) * s->n_tok * DIM);
            if (s->pos0 < backend_kv_len(be, s->slot)) backend_truncate(be, s->slot, s->pos0);
            tok += s->n_tok;
        }
        j->rc = backend_forward(be, STEPS[st], ns, j->err, sizeof j->err);
        memcpy(j->out + (size_t)st * MAXT * DIM, backend_io(be), sizeof(float) * tok * DIM);
    }
    backend_free(be);
}

static double rel(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) { d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]); r += (double)b[i] * b[i]; }
    return sqrt(d / (r > 0 ? r : 1));
}

/* worst relative distance over the steps' tokens, skipping position 0 (the attention sink, whose
 * norm of ~2.5e4 hides everything) */
static double worst_rel(const float *a, const float *b) {
    double w = 0;
    for (int st = 0; st < N_STEPS; st++) {
        int off = 0;
        for (int i = 0; i < 2 && STEPS[st][i].slot >= 0; i++)
            for (int t = 0; t < STEPS[st][i].n_tok; t++, off++) {
                if (STEPS[st][i].pos0 + t == 0) continue;
                const size_t o = ((size_t)st * MAXT + off) * DIM;
                const double e = rel(a + o, b + o, (size_t)DIM);
                if (e > w) w = e;
            }
    }
    return w;
}

static int group(int S, int mode, float **outs, char *err, size_t errlen) {
    tp_threads *g = tp_threads_new(S);
    job *jobs = calloc((size_t)S, sizeof *jobs);
    void *args[8];
    for (int r = 0; r < S; r++) {
        jobs[r].tp = tp_threads_comm(g, r);
        jobs[r].tp.mode = mode;
        jobs[r].out = outs[r];
        args[r] = &jobs[r];
    }
    tp_threads_run(S, run, args);
    int rc = 0;
    for (int r = 0; r < S && !rc; r++)
        if ((rc = jobs[r].rc)) snprintf(err, errlen, "%s", jobs[r].err);
    free(jobs);
    tp_threads_free(g);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: test_tp MODEL\n"); return 2; }
    char err[HAT_ERRLEN];
    model *head, *part;
    EXPECT(model_load(&head, argv[1], &(model_part){.l0 = 0, .l1 = A, .embed = 1}, err, sizeof err) == 0, "%s", err);
    EXPECT(model_load(&part, argv[1], &(model_part){.l0 = A, .l1 = -1}, err, sizeof err) == 0, "%s", err);
    if (t_fail) return test_summary();
    PART = part;
    DIM = part->cfg.dim;
    int32_t toks[NTOK];
    for (int i = 0; i < NTOK; i++) toks[i] = 1 + (i * 7919 + 13) % 20000;
    forward_state fs;
    kvcache kv;
    EXPECT(forward_init(&fs, head, NTOK, 64, 0, 1, err, sizeof err) == 0, "%s", err);
    EXPECT(kvcache_init(&kv, 0, A, 64, head->cfg.kv_dim, err, sizeof err) == 0, "%s", err);
    forward_run(head, &kv, &fs, &(forward_args){.tokens = toks, .n_tok = NTOK, .l0 = 0, .l1 = A});
    float *hid = malloc(sizeof(float) * NTOK * DIM);
    memcpy(hid, fs.x, sizeof(float) * NTOK * DIM);
    HID = hid;
    const size_t per = (size_t)N_STEPS * MAXT * DIM;
    float *ref = calloc(per, sizeof(float)), *outs[3];
    for (int r = 0; r < 3; r++) outs[r] = calloc(per, sizeof(float));
    job j = {.tp = {.size = 1}, .out = ref};
    run(0, &j);
    EXPECT(j.rc == 0, "unsplit: %s", j.err);

    /* 1. exact */
    EXPECT(group(3, TP_EXACT, outs, err, sizeof err) == 0, "exact: %s", err);
    int same = 1;
    for (int r = 0; r < 3; r++) same &= memcmp(outs[r], ref, sizeof(float) * per) == 0;
    printf("tp exact, 3 ranks, %s layers [%d, %d): hidden states of every rank bit-identical to the unsplit backend: %s "
           "(worst rel L2 %.2e)\n", part->name, A, part->cfg.n_layer - B, same ? "yes" : "NO", worst_rel(outs[0], ref));
    EXPECT(same, "tp exact differs from the unsplit backend");

    /* 2. allreduce: the same bits on every rank; the distance to the unsplit backend, against the
     * distance a 1e-7 relative input perturbation alone causes */
    for (int r = 0; r < 3; r++) memset(outs[r], 0, sizeof(float) * per);
    EXPECT(group(3, TP_ALLREDUCE, outs, err, sizeof err) == 0, "allreduce: %s", err);
    same = memcmp(outs[1], outs[0], sizeof(float) * per) == 0 && memcmp(outs[2], outs[0], sizeof(float) * per) == 0;
    const double e_ar = worst_rel(outs[0], ref);
    for (int i = 0; i < NTOK * DIM; i++) hid[i] *= 1.0f + 1e-7f * (float)((i * 7919) % 13 - 6) / 6.0f;
    float *pert = calloc(per, sizeof(float));
    job jp = {.tp = {.size = 1}, .out = pert};
    run(0, &jp);
    const double e_pert = worst_rel(pert, ref);
    printf("tp allreduce, 3 ranks: ranks bit-identical: %s; vs unsplit worst rel L2 %.2e (the unsplit model under a 1e-7 "
           "relative input perturbation: %.2e)\n", same ? "yes" : "NO", e_ar, e_pert);
    EXPECT(same, "allreduce ranks disagree");
    EXPECT(e_ar > 0 && e_ar < 10 * e_pert + 1e-6, "allreduce distance %.3g is not of the order of rounding (%.3g)", e_ar, e_pert);

    /* 3. refused */
    EXPECT(group(2, TP_EXACT, outs, err, sizeof err) == HAT_ERR_ARG && strstr(err, "9 query heads"), "2 ranks: %s", err);
    printf("2 ranks refused: %s\n", err);
    for (int r = 0; r < 3; r++) free(outs[r]);
    free(ref); free(pert); free(hid);
    kvcache_free(&kv);
    forward_free(&fs);
    model_free(part);
    model_free(head);
    return test_summary();
}
