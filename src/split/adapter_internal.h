/* adapter_internal.h — the adapter's storage, shared by split/adapter.c (apply), split/adapter_file.c
 * (save, load) and calib/adapter_fit.c (fit, evaluation, provenance). Not for other users: they go
 * through adapter.h, so the struct can change without touching the device's code. */
#ifndef HAT_ADAPTER_INTERNAL_H
#define HAT_ADAPTER_INTERNAL_H

#include "split/adapter.h"

#define ADAPTER_APPLY_BLOCK 64   /* rows per product in adapter_apply (scratch = ADAPTER_APPLY_BLOCK x dim) */

struct adapter {
    adapter_info info;
    float *w;        /* linear: W (dim, dim); lowrank: Vt (rank, dim) */
    float *u;        /* lowrank: U (dim, rank) */
    float *c;        /* (dim) */
    float *scratch;  /* (ADAPTER_APPLY_BLOCK, dim): products of one block of rows */
};

/* Zero weights of form (rank only for lowrank), figures NaN, this build's version; a and b unset. */
adapter *adapter_alloc(adapter_form form, int dim, int rank);

#endif
