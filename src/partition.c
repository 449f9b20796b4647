#include "partition.h"

#include <stdio.h>

void partition_describe(const partition *p, char *buf, size_t len) {
    int L = p->n_layer;
    snprintf(buf, len,
             "layers %d, split a=%d b=%d\n"
             "device: embedding + layers [0,%d) + layers [%d,%d) + final norm + LM head\n"
             "cloud:  layers [%d,%d) (%d of %d layers), scheme replica: every cloud rank holds them all\n"
             "ranks:  0..%d cloud, %d..%d devices (device i = rank %d+i, served by cloud rank i mod %d)",
             L, p->a, p->b, p->a, L - p->b, L, p->a, L - p->b, L - p->a - p->b, L, p->n_cloud - 1, p->n_cloud,
             p->n_cloud + p->n_devices - 1, p->n_cloud, p->n_cloud);
}
