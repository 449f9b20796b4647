/* ref_forward.c — see ref_forward.h. */
#include "ref_forward.h"

#include "engine/synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float ref_round_f16(float x) {
    if (isnan(x) || isinf(x)) return x;
    /* round the magnitude to 11 significant bits (or to the 2^-24 grid below 2^-14), then saturate */
    const float a = fabsf(x);
    if (a >= 65520.0f) return copysignf(INFINITY, x);
    int e;
    frexpf(a, &e);                              /* a = m * 2^e, m in [0.5, 1) */
    const int ulp_exp = e - 11 < -24 ? -24 : e - 11;
    const float q = ldexpf(1.0f, ulp_exp);
    return copysignf(nearbyintf(a / q) * q, x);   /* default rounding mode: to nearest even */
}

static float *gen(const model_config *c, uint64_t seed, uint32_t tensor, size_t n) {
    float *p = malloc(n * sizeof *p), scale, offset;
    if (!p) return NULL;
    synth_tensor_params(c, tensor, &scale, &offset);
    for (size_t i = 0; i < n; i++) p[i] = synth_value(seed, tensor, i, scale, offset);
    return p;
}

int ref_init(ref_model *r, const model_config *c, uint64_t seed, int l0, int l1, int embed, int head, int n_ctx) {
    memset(r, 0, sizeof *r);
    r->c = *c; r->seed = seed; r->l0 = l0; r->l1 = l1; r->embed = embed; r->head = head; r->n_ctx = n_ctx;
    const int nl = l1 - l0;
    r->w = calloc((size_t)nl * 9 + 1, sizeof *r->w);
    if (!r->w) return 1;
    for (int l = l0; l < l1; l++) {
        const size_t d = (size_t)c->dim, kv = (size_t)c->kv_dim, f = (size_t)c->ffn_dim;
        const size_t sizes[9] = {d, d * d, kv * d, kv * d, d * d, d, f * d, f * d, d * f};
        for (int k = 0; k < 9; k++)
            if (!(r->w[(size_t)(l - l0) * 9 + k] = gen(c, seed, SYNTH_T(l, k), sizes[k]))) return 1;
    }
    if (embed || head) r->tok_embd = gen(c, seed, SYNTH_T_EMBED, (size_t)c->n_vocab * c->dim);
    if (head) r->out_norm = gen(c, seed, SYNTH_T_OUT_NORM, (size_t)c->dim);
    const size_t cache = (size_t)nl * n_ctx * c->kv_dim;
    r->k = calloc(cache ? cache : 1, sizeof(float));
    r->v = calloc(cache ? cache : 1, sizeof(float));
    return ((embed || head) && !r->tok_embd) || (head && !r->out_norm) || !r->k || !r->v;
}

void ref_free(ref_model *r) {
    if (r->w)
        for (int i = 0; i < (r->l1 - r->l0) * 9; i++) free(r->w[i]);
    free(r->w); free(r->tok_embd); free(r->out_norm); free(r->k); free(r->v);
    memset(r, 0, sizeof *r);
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const double s = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) o[i] = (float)(x[i] * s * w[i]);
}

/* o (rows) = W (rows, cols) x (cols) */
static void matvec(float *o, const float *W, const float *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double acc = 0;
        const float *w = W + (size_t)r * cols;
        for (int i = 0; i < cols; i++) acc += (double)w[i] * x[i];
        o[r] = (float)acc;
    }
}

static void rope(float *x, int n_heads, int head_dim, int rope_dim, int pos, float base) {
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < rope_dim; i += 2) {
            const double th = pos * pow(base, -(double)i / rope_dim);
            const double c = cos(th), s = sin(th);
            float *p = x + (size_t)h * head_dim + i;
            const double x0 = p[0], x1 = p[1];
            p[0] = (float)(x0 * c - x1 * s);
            p[1] = (float)(x0 * s + x1 * c);
        }
}

void ref_forward(ref_model *r, const int32_t *tokens, const float *hidden_in, int pos0, int n_tok, float *hidden_out,
                 float *logits) {
    const model_config *c = &r->c;
    const int dim = c->dim, kvd = c->kv_dim, hd = c->head_dim, ffn = c->ffn_dim, grp = c->n_head / c->n_head_kv;
    float *x = malloc(sizeof(float) * dim), *xb = malloc(sizeof(float) * dim), *q = malloc(sizeof(float) * dim);
    float *k = malloc(sizeof(float) * kvd), *v = malloc(sizeof(float) * kvd), *att = malloc(sizeof(float) * dim);
    float *g = malloc(sizeof(float) * ffn), *u = malloc(sizeof(float) * ffn), *o = malloc(sizeof(float) * dim);
    double *sc = malloc(sizeof(double) * (size_t)(pos0 + n_tok));
    r->n = pos0;
    for (int t = 0; t < n_tok; t++) {
        const int pos = pos0 + t;
        if (r->embed) memcpy(x, r->tok_embd + (size_t)tokens[t] * dim, sizeof(float) * dim);
        else memcpy(x, hidden_in + (size_t)t * dim, sizeof(float) * dim);
        for (int l = r->l0; l < r->l1; l++) {
            float *const *w = r->w + (size_t)(l - r->l0) * 9;
            float *kc = r->k + (size_t)(l - r->l0) * r->n_ctx * kvd, *vc = r->v + (size_t)(l - r->l0) * r->n_ctx * kvd;
            rmsnorm(xb, x, w[SYNTH_ATTN_NORM], dim, c->norm_eps);
            matvec(q, w[SYNTH_WQ], xb, dim, dim);
            matvec(k, w[SYNTH_WK], xb, kvd, dim);
            matvec(v, w[SYNTH_WV], xb, kvd, dim);
            rope(q, c->n_head, hd, c->rope_dim, pos, c->rope_base);
            rope(k, c->n_head_kv, hd, c->rope_dim, pos, c->rope_base);
            for (int i = 0; i < kvd; i++) {
                kc[(size_t)pos * kvd + i] = ref_round_f16(k[i]);
                vc[(size_t)pos * kvd + i] = ref_round_f16(v[i]);
            }
            for (int h = 0; h < c->n_head; h++) {
                const int kh = h / grp;
                double mx = -INFINITY, sum = 0;
                for (int p = 0; p <= pos; p++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += (double)q[h * hd + i] * kc[(size_t)p * kvd + kh * hd + i];
                    sc[p] = d / sqrt((double)hd);
                    if (sc[p] > mx) mx = sc[p];
                }
                for (int p = 0; p <= pos; p++) sum += (sc[p] = exp(sc[p] - mx));
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int p = 0; p <= pos; p++) a += sc[p] * vc[(size_t)p * kvd + kh * hd + i];
                    att[h * hd + i] = (float)(a / sum);
                }
            }
            matvec(o, w[SYNTH_WO], att, dim, dim);
            for (int i = 0; i < dim; i++) x[i] += o[i];
            rmsnorm(xb, x, w[SYNTH_FFN_NORM], dim, c->norm_eps);
            matvec(g, w[SYNTH_W_GATE], xb, ffn, dim);
            matvec(u, w[SYNTH_W_UP], xb, ffn, dim);
            for (int i = 0; i < ffn; i++) g[i] = (float)(g[i] / (1.0 + exp(-(double)g[i])) * u[i]);
            matvec(o, w[SYNTH_W_DOWN], g, dim, ffn);
            for (int i = 0; i < dim; i++) x[i] += o[i];
        }
        if (hidden_out) memcpy(hidden_out + (size_t)t * dim, x, sizeof(float) * dim);
        if (r->head && logits) {
            rmsnorm(xb, x, r->out_norm, dim, c->norm_eps);
            matvec(logits + (size_t)t * c->n_vocab, r->tok_embd, xb, c->n_vocab, dim);
        }
    }
    r->n = pos0 + n_tok;
    free(x); free(xb); free(q); free(k); free(v); free(att); free(g); free(u); free(o); free(sc);
}
