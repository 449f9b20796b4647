/* synth.h — deterministic synthetic weights for LLaMA-family shapes (no download needed).
 *
 * Every weight is a pure function of (seed, tensor id, element index): a SplitMix64 hash whose
 * top 24 bits give u uniform on [-1, 1) exactly in fp32, then w = fma(scale, u, offset). The
 * same inline code compiles for the CPU (src/engine/synth.c builds a model from it) and for CUDA
 * (kernels/synth.cu fills device memory with it), so both backends hold bit-identical fp32
 * weights and a GPU experiment at LLaMA-2-7B scale needs neither a file nor a host copy.
 *
 * Scales: matrices std 1/sqrt(d_in) (scale sqrt(3/d_in)), norms 1 +- 0.1, the embedding +-1:
 * activations stay O(1) through any depth, and greedy tokens are well separated enough to
 * compare backends. Synthetic runs are labelled "synthetic <shape> seed <s>" in every output.
 */
#ifndef HAT_SYNTH_H
#define HAT_SYNTH_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define SYNTH_FN static inline __host__ __device__
#else
#define SYNTH_FN static inline
#endif

/* tensor ids: per layer l, SYNTH_T(l, kind); the model-wide tensors above every layer id */
enum {
    SYNTH_ATTN_NORM = 0, SYNTH_WQ = 1, SYNTH_WK = 2, SYNTH_WV = 3, SYNTH_WO = 4, SYNTH_FFN_NORM = 5,
    SYNTH_W_GATE = 6, SYNTH_W_UP = 7, SYNTH_W_DOWN = 8,
    SYNTH_KINDS = 16
};
#define SYNTH_T(l, kind) ((uint32_t)(l) * SYNTH_KINDS + (uint32_t)(kind))
#define SYNTH_T_EMBED 0xFFFF00u
#define SYNTH_T_OUT_NORM 0xFFFF01u
#define SYNTH_T_OUTPUT 0xFFFF02u

SYNTH_FN uint64_t synth_mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* element i of tensor `tensor`: fma(scale, u, offset), u in [-1, 1) with 24 bits (exact in fp32) */
SYNTH_FN float synth_value(uint64_t seed, uint32_t tensor, uint64_t i, float scale, float offset) {
    const uint64_t h = synth_mix(seed ^ synth_mix(((uint64_t)tensor << 40) ^ i));
    const float u = (float)(int32_t)((uint32_t)(h >> 40) - 0x800000u) * (1.0f / 8388608.0f);
    return fmaf(scale, u, offset);
}

#ifndef __CUDACC__
#include <stddef.h>

#include "engine/model.h"

/* Named shapes: "tiny" (tests), "smollm2-135m", "llama2-7b", "llama2-13b" (vocab, rope base and
 * eps as the published configs). NULL when the name is unknown. */
const model_config *synth_shape(const char *name);
/* "tiny, smollm2-135m, llama2-7b, llama2-13b" for messages */
const char *synth_shape_names(void);

/* Per-tensor generator parameters (scale, offset), shared by the CPU and CUDA generators. */
void synth_tensor_params(const model_config *c, uint32_t tensor, float *scale, float *offset);

/* Builds the part `part` of a synthetic model with fp32 weights on the heap (part->weights is
 * ignored: always the fp32 layout), name "synthetic <shape> seed <seed>". Refuses a part whose
 * weights exceed max_bytes (0: no limit) with a message giving the size. */
int model_synth(model **out, const char *shape, uint64_t seed, const model_part *part, size_t max_bytes,
                char *err, size_t errlen);
/* bytes of fp32 weights model_synth would allocate for that part */
size_t synth_part_bytes(const model_config *c, const model_part *part);
#endif

#endif
