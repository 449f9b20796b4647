/* partition.h — who holds which layers, who serves whom, and how a prompt is cut into chunks.
 * Pure C (no MPI): the plan is computed identically on every rank from the config.
 *
 * Ranks: 0 .. n_cloud-1 are cloud ranks, n_cloud .. n_cloud+n_devices-1 are devices (device i
 * is rank n_cloud + i). The cloud ranks form n_cloud / tp groups of tp consecutive ranks (tensor
 * parallelism, tp.h; tp = 1: every cloud rank is a group of its own). Cloud scheme "replica": every
 * group holds the whole middle submodel [a, L-b) (each of its ranks 1/tp of every layer) and serves
 * devices i with i mod n_groups == its group index, each device in its own session (own KV cache).
 * The first rank of a group (its leader) exchanges every message with those devices and hands each
 * step to the other ranks of the group. A device holds the embedding, [0, a), [L-b, L), the final
 * norm and the LM head.
 */
#ifndef HAT_PARTITION_H
#define HAT_PARTITION_H

#include <stddef.h>

typedef enum { ROLE_CLOUD = 0, ROLE_DEVICE = 1 } hat_role;

typedef struct {
    int n_layer, a, b, n_cloud, n_devices;
    int tp;   /* tensor-parallel group size (n_cloud is a multiple) */
} partition;

static inline hat_role partition_role(const partition *p, int rank) { return rank < p->n_cloud ? ROLE_CLOUD : ROLE_DEVICE; }
static inline int partition_device_of_rank(const partition *p, int rank) { return rank - p->n_cloud; }
static inline int partition_rank_of_device(const partition *p, int dev) { return p->n_cloud + dev; }
static inline int partition_n_groups(const partition *p) { return p->n_cloud / p->tp; }
static inline int partition_group_of_rank(const partition *p, int rank) { return rank / p->tp; }
static inline int partition_is_leader(const partition *p, int rank) { return rank % p->tp == 0; }
/* the cloud rank a device talks to: the leader of its group */
static inline int partition_cloud_of_device(const partition *p, int dev) { return (dev % partition_n_groups(p)) * p->tp; }
/* devices served by group g: g, g + n_groups, ... */
static inline int partition_n_served(const partition *p, int g) {
    const int G = partition_n_groups(p);
    return p->n_devices / G + (g < p->n_devices % G);
}
static inline int partition_device_served(const partition *p, int g, int i) { return g + i * partition_n_groups(p); }

/* Human-readable plan (several lines) for the log and the trace. */
void partition_describe(const partition *p, char *buf, size_t len);

/* Size of the next prefill chunk given `remaining` prompt tokens and the configured size:
 * min(remaining, chunk), except that a final one-token remainder joins the chunk before it
 * (a one-token call takes the single-token attention kernel, a different summation order
 * than the same positions inside a batch; keeping every chunk >= 2 tokens keeps chunked
 * prefill bit-identical to the whole prompt at once). So chunks are at most chunk + 1. */
static inline int chunk_next(int remaining, int chunk) {
    if (remaining <= chunk) return remaining;
    return remaining == chunk + 1 ? remaining : chunk;
}

#endif
