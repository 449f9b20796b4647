#include "split/partition.h"

#include <stdio.h>

void partition_describe(const partition *p, char *buf, size_t len) {
    int L = p->n_layer;
    char cloud[256];
    if (p->tp > 1)
        snprintf(cloud, sizeof cloud,
                 "scheme replica over %d tensor-parallel groups of %d ranks (ranks g*%d..g*%d+%d; each rank holds 1/%d of "
                 "the heads and FFN columns of every layer)", partition_n_groups(p), p->tp, p->tp, p->tp, p->tp - 1, p->tp);
    else
        snprintf(cloud, sizeof cloud, "scheme replica: every cloud rank holds them all");
    snprintf(buf, len,
             "layers %d, split a=%d b=%d\n"
             "device: embedding + layers [0,%d) + layers [%d,%d) + final norm + LM head\n"
             "cloud:  layers [%d,%d) (%d of %d layers), %s\n"
             "ranks:  0..%d cloud, %d..%d devices (device i = rank %d+i, served by cloud %s i mod %d%s)",
             L, p->a, p->b, p->a, L - p->b, L, p->a, L - p->b, L - p->a - p->b, L, cloud, p->n_cloud - 1, p->n_cloud,
             p->n_cloud + p->n_devices - 1, p->n_cloud, p->tp > 1 ? "group" : "rank", partition_n_groups(p),
             p->tp > 1 ? ", through the group's first rank" : "");
}
