/* mem_check.h — the start-up memory check: before any buffer a run needs is allocated (and
 * before the trace is created), every rank sums what its role will allocate from the config,
 * the model's dimensions and the prompt lengths; the ranks of one host add theirs up, and a run
 * that needs more than the host has available is refused with the config key that drives the
 * largest part, instead of failing in an allocation without a name (or being killed) later.
 *
 * Counted: K/V caches, the engine's buffers of a pass, the message rings of every endpoint and
 * the draft's probability rows. Not counted: the model's weights (mapped from the file, shared
 * by the ranks of a host and reclaimable), the trace writer's buffers and MPI's own (small and
 * bounded whatever the config). */
#ifndef HAT_MEM_CHECK_H
#define HAT_MEM_CHECK_H

#include <stddef.h>

#include "run/roles.h"

/* the parts of a rank's need, each driven by one config key */
typedef enum { MEM_KV, MEM_PASS, MEM_RINGS, MEM_CHUNK, MEM_N } mem_part;
typedef struct {
    double bytes[MEM_N];
    int sessions;      /* K/V caches of this part (a cloud rank: the devices it serves) */
    int ring_rows;     /* the largest message's rows of its rings */
} mem_need;

/* what this rank's role will allocate */
void mem_need_of_rank(const run_ctx *r, mem_need *out);
/* HAT_OK if `need` (the sum over a host's n_ranks ranks) fits in `avail` bytes; else an error that
 * names the config key of the largest part, the need and what is available */
int mem_judge(const hat_config *c, const mem_need *need, int n_ranks, double avail, char *err, size_t errlen);
/* bytes this host can give the run now: MemAvailable (or physical memory), capped by a cgroup limit */
double mem_available(void);

#endif
