/* sampler.h — token selection from logits: greedy, or temperature with top-k then top-p
 * (the order llama.cpp's default chain applies them), drawn with a seeded GSL RNG. */
#ifndef HAT_SAMPLER_H
#define HAT_SAMPLER_H
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

typedef struct {
    float temp;      /* <= 0: greedy */
    int top_k;       /* <= 0: all tokens */
    float top_p;     /* >= 1: off */
    uint64_t seed;
} sampler_params;

typedef struct sampler sampler;

int sampler_init(sampler **out, const sampler_params *p, int n_vocab, char *err, size_t errlen);
void sampler_free(sampler *s);
int32_t sampler_sample(sampler *s, const float *logits);
/* index of the largest logit; the lowest index wins a tie */
int32_t sampler_argmax(const float *logits, int n);
/* the distribution sample() draws from, written as (id, prob) pairs sorted by prob; returns
 * how many tokens have non-zero probability. For tests of the sampler against its spec. */
int sampler_probs(sampler *s, const float *logits, int32_t *ids, float *probs);
/* The same distribution scattered into a dense n_vocab vector (zeros elsewhere; greedy: one-hot on
 * the argmax): the p and q rows speculative sampling (speculate.h) works on. */
void sampler_dense_probs(sampler *s, const float *logits, float *dense);
/* the sampler's random stream (speculative verification draws from it too) */
rng *sampler_rng(sampler *s);
/* 1 when the sampler is greedy (temperature <= 0) */
int sampler_is_greedy(const sampler *s);

#endif
