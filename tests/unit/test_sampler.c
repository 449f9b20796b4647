/* Sampler against its specification: greedy = argmax (lowest index on ties); temperature,
 * top-k and top-p give the distribution computed here independently (chi-square over many
 * draws); same seed -> same sequence; bad parameters rejected. */
#include "core/common.h"
#include "engine/sampler.h"
#include "support/testutil.h"

#include <math.h>
#include <string.h>

#define V 12

/* expected distribution, written from the definition: softmax(l/T) over the top-k, then the
 * smallest prefix (by probability) whose mass reaches p, renormalised */
static void expected(const float *l, float temp, int k, float p, double *out) {
    int order[V];
    for (int i = 0; i < V; i++) order[i] = i;
    for (int i = 0; i < V; i++)
        for (int j = i + 1; j < V; j++)
            if (l[order[j]] > l[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    if (k <= 0 || k > V) k = V;
    double z = 0, pr[V] = {0};
    for (int i = 0; i < k; i++) z += exp((l[order[i]] - l[order[0]]) / temp);
    for (int i = 0; i < k; i++) pr[i] = exp((l[order[i]] - l[order[0]]) / temp) / z;
    int keep = k;
    double cum = 0;
    for (int i = 0; i < k; i++) { cum += pr[i]; if (cum >= p) { keep = i + 1; break; } }
    double zk = 0;
    for (int i = 0; i < keep; i++) zk += pr[i];
    memset(out, 0, V * sizeof(double));
    for (int i = 0; i < keep; i++) out[order[i]] = pr[i] / zk;
}

static void check_dist(const char *what, const float *l, float temp, int k, float p) {
    char err[HAT_ERRLEN];
    sampler *s;
    EXPECT(sampler_init(&s, &(sampler_params){temp, k, p, 1234}, V, err, sizeof err) == HAT_OK, "%s: init", what);
    const int N = 200000;
    int cnt[V] = {0};
    for (int i = 0; i < N; i++) cnt[sampler_sample(s, l)]++;
    double e[V], chi2 = 0;
    int df = -1, bad_support = 0;
    expected(l, temp, k, p, e);
    for (int i = 0; i < V; i++) {
        if (e[i] == 0) { bad_support += cnt[i] != 0; continue; }
        chi2 += (cnt[i] - N * e[i]) * (cnt[i] - N * e[i]) / (N * e[i]);
        df++;
    }
    /* 99.9th percentile of chi-square with <= 11 degrees of freedom is 31.3 */
    EXPECT(bad_support == 0, "%s: drew tokens outside the allowed support", what);
    EXPECT(chi2 < 31.3, "%s: chi-square %.1f with %d dof", what, chi2, df);
    printf("%-24s chi2 %.1f (%d dof)\n", what, chi2, df);
    sampler_free(s);
}

int main(void) {
    const float l[V] = {1.0f, 2.5f, 0.3f, 2.5f, -1.0f, 0.9f, 1.7f, -0.2f, 0.0f, 3.1f, 1.2f, -2.0f};
    EXPECT(sampler_argmax(l, V) == 9, "argmax");
    const float tie[4] = {1, 3, 3, 0};
    EXPECT(sampler_argmax(tie, 4) == 1, "argmax tie -> lowest index");
    char err[HAT_ERRLEN];
    sampler *s;
    EXPECT(sampler_init(&s, &(sampler_params){0.0f, 40, 0.95f, 1}, V, err, sizeof err) == HAT_OK, "greedy init");
    int greedy_ok = 1;
    for (int i = 0; i < 100; i++) greedy_ok &= sampler_sample(s, l) == 9;
    EXPECT(greedy_ok, "temperature 0 must be greedy");
    sampler_free(s);

    check_dist("temp 1", l, 1.0f, 0, 1.0f);
    check_dist("temp 0.5", l, 0.5f, 0, 1.0f);
    check_dist("temp 1.5 top-k 4", l, 1.5f, 4, 1.0f);
    check_dist("temp 1 top-p 0.8", l, 1.0f, 0, 0.8f);
    check_dist("temp 0.8 top-k 6 top-p 0.9", l, 0.8f, 6, 0.9f);

    sampler *a, *b;
    sampler_init(&a, &(sampler_params){1.0f, 0, 1.0f, 77}, V, err, sizeof err);
    sampler_init(&b, &(sampler_params){1.0f, 0, 1.0f, 77}, V, err, sizeof err);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= sampler_sample(a, l) == sampler_sample(b, l);
    EXPECT(same, "same seed must give the same draws");
    sampler_free(b);
    sampler_init(&b, &(sampler_params){1.0f, 0, 1.0f, 78}, V, err, sizeof err);
    int differ = 0;
    for (int i = 0; i < 1000; i++) differ += sampler_sample(a, l) != sampler_sample(b, l);
    EXPECT(differ > 100, "different seeds gave nearly the same draws (%d differences)", differ);
    sampler_free(a);
    sampler_free(b);

    EXPECT(sampler_init(&s, &(sampler_params){-1.0f, 0, 1.0f, 1}, V, err, sizeof err) == HAT_ERR_ARG, "negative temperature");
    EXPECT(sampler_init(&s, &(sampler_params){1.0f, 0, 0.0f, 1}, V, err, sizeof err) == HAT_ERR_ARG, "top-p 0");
    return test_summary();
}
