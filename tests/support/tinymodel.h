/* tinymodel.h — writes a small synthetic LLaMA-architecture GGUF (v3) for tests.
 *
 * The file has everything this project's loaders read: general.architecture = "llama",
 * general.name, general.alignment, the llama.* hyper-parameters (block_count, embedding_length,
 * feed_forward_length, attention.head_count / head_count_kv, context_length, rope.freq_base,
 * rope.dimension_count, attention.layer_norm_rms_epsilon, vocab_size), the tensors token_embd,
 * output_norm, output (unless tied), blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
 * ffn_norm, ffn_gate, ffn_up, ffn_down}.weight, and optionally a minimal byte-level "gpt2"
 * vocabulary (tokenizer.ggml.*) so that tokenizer_init, `hat generate` and `hat run` work too.
 *
 * Weights are deterministic pseudo-random values (splitmix64 seeded from the seed and the
 * tensor's name, uniform with the stated standard deviation: the same parameters give the same
 * bytes on any machine, and a model with fewer layers and the same seed is this one truncated —
 * a natural shallow draft for it): matrices std 1/sqrt(d_in), so every projection keeps unit
 * scale; embedding std embd_scale; norms 1 + U(-0.1, 0.1); output.weight std
 * logit_scale/sqrt(dim), so that the logits after the final RMSNorm have a standard deviation
 * of about logit_scale. With the defaults (vocab 8, logit_scale 1) the temperature-1 next-token
 * distribution has 3 or more tokens above 5 % at every position, and its argmax changes with
 * the context (measured in tests/unit/test_speculate.c, "spec_tinymodel").
 * 2-D matrices are stored as F32, F16 or Q8_0 (wtype; Q8_0 needs every d_in to be a multiple of
 * 32: dim and ffn_dim); norms are always F32, as in real GGUFs.
 * Constraints of the CPU engine (forward.c): head_dim = dim / n_head a multiple of 64,
 * n_head a multiple of n_head_kv.
 *
 * The vocabulary (tokenizer = 1): token i is the i-th character of
 * "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", then "<t62>", "<t63>", ...
 * No merges, pre-tokenizer "gpt2", no BOS; EOS only when eos_id >= 0. A prompt made of those
 * characters (no spaces) encodes to one token per character.
 */
#ifndef HAT_TINYMODEL_H
#define HAT_TINYMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"

typedef struct {
    int n_vocab, dim, n_head, n_head_kv, ffn_dim, n_layer, n_ctx;
    float rope_base, norm_eps;
    ggml_type wtype;     /* GGML_TYPE_F32, GGML_TYPE_F16 or GGML_TYPE_Q8_0 for the 2-D matrices */
    int tied_output;     /* 1: no output.weight (the head reuses token_embd, scaled as output would be) */
    int tokenizer;       /* 1: write the minimal vocabulary described above */
    int32_t eos_id;      /* tokenizer.ggml.eos_token_id, -1: none (generation never stops early) */
    float logit_scale;   /* about the standard deviation of the logits */
    float embd_scale;    /* standard deviation of token_embd (untied): how much the current token
                          * dominates the residual stream over the layers' (context) contributions */
    uint64_t seed;
    const char *name;    /* general.name; NULL: "tinymodel" */
} tinymodel_params;

/* vocab 8, dim 128, 2 heads of 64, 1 kv head, ffn 256, 4 layers, ctx 64, rope base 10000,
 * eps 1e-5, F32, untied, tokenizer on, no EOS, logit_scale 1, embd_scale 1, seed 1 */
void tinymodel_defaults(tinymodel_params *p);

/* Writes the model to path (overwritten). Returns HAT_OK, or HAT_ERR_ARG for parameters the
 * engine cannot run (message in err), HAT_ERR_IO when the file cannot be written. */
int tinymodel_write(const char *path, const tinymodel_params *p, char *err, size_t errlen);

#endif
