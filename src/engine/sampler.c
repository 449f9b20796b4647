#include "engine/sampler.h"
#include "core/common.h"
#include "core/rng.h"

#include <math.h>
#include <stdlib.h>

typedef struct { float logit; int32_t id; } cand;
struct sampler {
    sampler_params p;
    cand *sorted;   /* (n_vocab) full sort when top-k is off */
    int n_vocab;
    rng *r;
    int32_t *idx;   /* (n_vocab) candidates */
    float *prob;    /* (n_vocab) */
};

int sampler_init(sampler **out, const sampler_params *p, int n_vocab, char *err, size_t errlen) {
    *out = NULL;
    if (n_vocab <= 0) return hat_err(err, errlen, HAT_ERR_ARG, "sampler: vocabulary size %d", n_vocab);
    if (!(p->temp >= 0.0f) || !isfinite(p->temp))
        return hat_err(err, errlen, HAT_ERR_ARG, "sampler: temperature %g must be >= 0", p->temp);
    if (!(p->top_p > 0.0f))
        return hat_err(err, errlen, HAT_ERR_ARG, "sampler: top-p %g must be in (0, 1]", p->top_p);
    sampler *s = xcalloc(1, sizeof *s);
    s->p = *p;
    s->n_vocab = n_vocab;
    s->r = rng_new(p->seed);
    s->idx = xmalloc((size_t)n_vocab * sizeof(int32_t));
    s->prob = xmalloc((size_t)n_vocab * sizeof(float));
    s->sorted = xmalloc((size_t)n_vocab * sizeof(cand));
    *out = s;
    return HAT_OK;
}

void sampler_free(sampler *s) {
    if (!s) return;
    rng_free(s->r);
    free(s->idx);
    free(s->prob);
    free(s->sorted);
    free(s);
}

int32_t sampler_argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

static int cmp_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

/* keep the k largest logits in s->idx[0..k), sorted descending; returns k */
static int top_candidates(sampler *s, const float *logits, int k) {
    const int n = s->n_vocab;
    if (k <= 0 || k > n) k = n;
    if (k == n) {
        for (int i = 0; i < n; i++) s->idx[i] = i;
    } else {
        /* threshold selection: a min-heap of size k would be faster; insertion into a sorted
         * prefix is simple and O(n k) with k small (the default 40) */
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (m == k && logits[i] <= logits[s->idx[k - 1]]) continue;
            int j = m < k ? m++ : k - 1;
            while (j > 0 && logits[s->idx[j - 1]] < logits[i]) { s->idx[j] = s->idx[j - 1]; j--; }
            s->idx[j] = i;
        }
        return k;
    }
    for (int i = 0; i < n; i++) s->sorted[i] = (cand){logits[i], i};
    qsort(s->sorted, (size_t)n, sizeof(cand), cmp_desc);
    for (int i = 0; i < n; i++) s->idx[i] = s->sorted[i].id;
    return k;
}

int sampler_probs(sampler *s, const float *logits, int32_t *ids, float *probs) {
    if (s->p.temp <= 0.0f) {
        ids[0] = sampler_argmax(logits, s->n_vocab);
        probs[0] = 1.0f;
        return 1;
    }
    int k = top_candidates(s, logits, s->p.top_k);
    const float mx = logits[s->idx[0]] / s->p.temp;
    double sum = 0.0;
    for (int i = 0; i < k; i++) { s->prob[i] = expf(logits[s->idx[i]] / s->p.temp - mx); sum += s->prob[i]; }
    for (int i = 0; i < k; i++) s->prob[i] = (float)(s->prob[i] / sum);
    if (s->p.top_p < 1.0f) {   /* smallest prefix whose mass reaches top_p (at least one) */
        double cum = 0.0;
        int keep = k;
        for (int i = 0; i < k; i++) {
            cum += s->prob[i];
            if (cum >= s->p.top_p) { keep = i + 1; break; }
        }
        k = keep;
        double sk = 0.0;
        for (int i = 0; i < k; i++) sk += s->prob[i];
        for (int i = 0; i < k; i++) s->prob[i] = (float)(s->prob[i] / sk);
    }
    for (int i = 0; i < k; i++) { ids[i] = s->idx[i]; probs[i] = s->prob[i]; }
    return k;
}

int32_t sampler_sample(sampler *s, const float *logits) {
    if (s->p.temp <= 0.0f) return sampler_argmax(logits, s->n_vocab);
    int k = sampler_probs(s, logits, s->idx, s->prob);
    double u = rng_uniform(s->r), cum = 0.0;
    for (int i = 0; i < k; i++) {
        cum += s->prob[i];
        if (u < cum) return s->idx[i];
    }
    return s->idx[k - 1];
}

void sampler_dense_probs(sampler *s, const float *logits, float *dense) {
    /* s->idx/s->prob as output alias the scratch sampler_probs works in, as sampler_sample does */
    const int k = sampler_probs(s, logits, s->idx, s->prob);
    for (int i = 0; i < s->n_vocab; i++) dense[i] = 0.0f;
    for (int i = 0; i < k; i++) dense[s->idx[i]] = s->prob[i];
}

rng *sampler_rng(sampler *s) { return s->r; }

int sampler_is_greedy(const sampler *s) { return s->p.temp <= 0.0f; }
