/* rng.h — seeded, reproducible random numbers (GSL mt19937). Kept apart from cblas users:
 * gsl and OpenBLAS headers conflict in one translation unit. */
#ifndef HAT_RNG_H
#define HAT_RNG_H
#include <stdint.h>
typedef struct rng rng;
rng *rng_new(uint64_t seed);
void rng_free(rng *r);
double rng_uniform(rng *r);   /* [0, 1) */
#endif
