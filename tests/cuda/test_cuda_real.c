/* test_cuda_real.c — the CUDA backend on the real model's middle layers (step 2 of real_ref.h):
 * loads layers [a, L-b) from MIDDLE (the pruned GGUF, experiments/gguf_prune.py), steps them over
 * the reference's inputs as a cloud would (tests/cuda/real_ref.c), writes the outputs to OUT for
 * the greedy-token check on the CPU machine (tests/gpu_real.c check), and reports their distance
 * to the CPU engine's (quantised weights) and to fp32 weights. Fails on a shape or file mismatch,
 * a non-finite output, or distances beyond 0.2 to the CPU engine and 0.05 (bf16: 0.1) to fp32
 * weights (gross errors; the token check is the fine one).
 *   test_cuda_real MIDDLE.gguf REF.bin OUT.bin [fp16|bf16]
 * Exits 77 (skipped) without a GPU.
 */
#include "backends/backend.h"
#include "core/common.h"
#include "engine/model.h"
#include "real_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_cuda_real MIDDLE.gguf REF.bin OUT.bin [fp16|bf16]\n");
        return 2;
    }
    const backend_dtype dt = argc > 4 && !strcmp(argv[4], "bf16") ? BACKEND_BF16 : BACKEND_FP16;
    int n_gpu = 0;
    char why[256], err[HAT_ERRLEN];
    if (backend_cuda_available(&n_gpu, why, sizeof why)) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    real_ref r;
    if (real_ref_read(argv[2], &r, err, sizeof err)) { fprintf(stderr, "test_cuda_real: %s\n", err); return 1; }
    model *m;
    if (model_load(&m, argv[1], &(model_part){.l0 = r.a, .l1 = r.l1}, err, sizeof err)) {
        fprintf(stderr, "test_cuda_real: %s\n", err);
        return 1;
    }
    if (m->cfg.dim != r.dim || m->cfg.n_layer != r.n_layer) {
        fprintf(stderr, "test_cuda_real: %s has dim %d and %d layers, the reference %d and %d\n", argv[1], m->cfg.dim,
                m->cfg.n_layer, r.dim, r.n_layer);
        return 1;
    }
    int max_n = 0;
    for (int s = 0; s < r.n_slot; s++) if (r.n_pos[s] > max_n) max_n = r.n_pos[s];
    backend *be;
    const backend_desc d = {.kind = BACKEND_CUDA, .m = m, .l0 = r.a, .l1 = r.l1, .n_slots = r.n_slot,
                            .max_tok = r.n_slot * (r.chunk > r.round ? r.chunk : r.round), .n_ctx = max_n + 8, .gpu = 0,
                            .dtype = dt};
    if (backend_cuda_open(&be, &d, err, sizeof err)) { fprintf(stderr, "test_cuda_real: %s\n", err); return 1; }
    printf("%s\n", be->desc);
    float *out[RR_MAX_SLOT] = {0};
    for (int s = 0; s < r.n_slot; s++) out[s] = calloc((size_t)r.n_pos[s] * r.dim, sizeof(float));
    int steps = 0, fails = 0;
    if (real_run(be, &r, out, &steps, err, sizeof err)) { fprintf(stderr, "test_cuda_real: %s\n", err); return 1; }
    const backend_cuda_stats st = backend_cuda_stats_of(be);
    printf("%s layers [%d, %d) on the GPU, %s: %d sessions, %d steps (prompt chunks of %d, decode rounds of %d with a "
           "rollback; %lld from CUDA graphs)\n", r.model, r.a, r.l1, backend_dtype_name(dt), r.n_slot, steps, r.chunk, r.round,
           st.graph_steps);
    for (int s = 0; s < r.n_slot; s++) {
        const double eq = real_worst_rel(out[s], r.mid_q[s], r.n_pos[s], r.dim);
        const double ef = real_worst_rel(out[s], r.mid_f[s], r.n_pos[s], r.dim);
        const double qf = real_worst_rel(r.mid_q[s], r.mid_f[s], r.n_pos[s], r.dim);
        printf("  session %d (%d prompt + %d generated positions): worst rel L2 vs the CPU engine %.2e, vs fp32 weights %.2e "
               "(the CPU engine vs fp32 weights: %.2e)\n", s, r.n_prompt[s], r.n_pos[s] - r.n_prompt[s], eq, ef, qf);
        /* bounds for gross errors only: the CPU engine itself is ~5e-2 off fp32 weights (its 8-bit
         * activations); fp32 weights are what the GPU computes with, up to fp16/bf16 rounding */
        const double lim_f = dt == BACKEND_BF16 ? 0.1 : 0.05;
        if (!(eq < 0.2)) { fprintf(stderr, "FAIL: session %d is off the CPU engine by %g (limit 0.2)\n", s, eq); fails++; }
        if (!(ef < lim_f)) { fprintf(stderr, "FAIL: session %d is off fp32 weights by %g (limit %g)\n", s, ef, lim_f); fails++; }
    }
    if (real_out_write(argv[3], &r, out, be->desc, err, sizeof err)) { fprintf(stderr, "test_cuda_real: %s\n", err); fails++; }
    else printf("outputs written to %s: check the greedy tokens on the CPU machine with experiments/gpu/gpu_real check\n", argv[3]);
    for (int s = 0; s < r.n_slot; s++) free(out[s]);
    backend_free(be);
    model_free(m);
    real_ref_free(&r);
    printf("%s\n", fails ? "FAILED" : "passed");
    return fails ? 1 : 0;
}
