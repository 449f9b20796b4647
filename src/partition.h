/* partition.h — who holds which layers, who serves whom, and how a prompt is cut into chunks.
 * Pure C (no MPI): the plan is computed identically on every rank from the config.
 *
 * Ranks: 0 .. n_cloud-1 are cloud ranks, n_cloud .. n_cloud+n_devices-1 are devices (device i
 * is rank n_cloud + i). Cloud scheme "replica": every cloud rank holds the whole middle
 * submodel [a, L-b) and serves devices i with i mod n_cloud == its cloud index, each device in
 * its own session (own KV cache). A device holds the embedding, [0, a), [L-b, L), the final
 * norm and the LM head.
 */
#ifndef HAT_PARTITION_H
#define HAT_PARTITION_H

#include <stddef.h>

typedef enum { ROLE_CLOUD = 0, ROLE_DEVICE = 1 } hat_role;

typedef struct {
    int n_layer, a, b, n_cloud, n_devices;
} partition;

static inline hat_role partition_role(const partition *p, int rank) { return rank < p->n_cloud ? ROLE_CLOUD : ROLE_DEVICE; }
static inline int partition_device_of_rank(const partition *p, int rank) { return rank - p->n_cloud; }
static inline int partition_rank_of_device(const partition *p, int dev) { return p->n_cloud + dev; }
static inline int partition_cloud_of_device(const partition *p, int dev) { return dev % p->n_cloud; }
/* devices served by cloud rank c: c, c + n_cloud, ... */
static inline int partition_n_served(const partition *p, int c) {
    return p->n_devices / p->n_cloud + (c < p->n_devices % p->n_cloud);
}

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
