/* testutil.h — minimal test harness: EXPECT records a failure and goes on; the test
 * program ends with "N passed, M failed" and a non-zero exit status if any failed. */
#ifndef HAT_TESTUTIL_H
#define HAT_TESTUTIL_H
#include <stdio.h>
#include <stdlib.h>

static int t_pass, t_fail;
#define EXPECT(cond, ...)                                                        \
    do {                                                                         \
        if (cond) t_pass++;                                                      \
        else {                                                                   \
            t_fail++;                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                 \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)
static inline int test_summary(void) {
    printf("%d passed, %d failed\n", t_pass, t_fail);
    return t_fail ? 1 : 0;
}
/* deterministic test data (xorshift; no dependence on libc rand) */
static unsigned long long t_rng = 0x9e3779b97f4a7c15ull;
static inline double t_uniform(void) {
    t_rng ^= t_rng << 13; t_rng ^= t_rng >> 7; t_rng ^= t_rng << 17;
    return (double)(t_rng >> 11) / 9007199254740992.0;
}
static inline float t_normalish(void) { return (float)((t_uniform() + t_uniform() + t_uniform() - 1.5) * 2.0); }
#endif
