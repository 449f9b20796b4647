#include "core/rng.h"
#include "core/common.h"
#include <gsl/gsl_rng.h>

struct rng { gsl_rng *g; };

rng *rng_new(uint64_t seed) {
    rng *r = xcalloc(1, sizeof *r);
    r->g = gsl_rng_alloc(gsl_rng_mt19937);
    CHECK(r->g, "gsl_rng_alloc failed");
    gsl_rng_set(r->g, (unsigned long)seed);
    return r;
}
void rng_free(rng *r) {
    if (!r) return;
    gsl_rng_free(r->g);
    free(r);
}
double rng_uniform(rng *r) { return gsl_rng_uniform(r->g); }
