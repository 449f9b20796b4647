/* bench_transport.c — `mpiexec -n 2 hat bench-transport`: the transport's hidden-state round
 * trip against a raw MPI ping-pong of the same bytes, in the same run (OSU style: warm-up, then
 * timed loops; median of repetitions; one-way = round trip / 2).
 *
 * Rank 0 plays a device, rank 1 its cloud. A transport round trip = device encodes n_tok x dim
 * hidden states to the wire dtype, header + CRC-32C, MPI_Isend; cloud receives on a pre-posted
 * receive, validates (CRC included), decodes to fp32, encodes the same rows back, sends; device
 * validates and decodes. Link emulation is off: this measures the software overhead.
 */
#include "net/comm.h"
#include "core/common.h"
#include "net/transport.h"
#include "net/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cli_bench_transport(int argc, char **argv) {
    comm_init(&argc, &argv);
    const comm_info *ci = comm_get();
    int dim = 576, reps = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dim") && i + 1 < argc) dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    }
    if (ci->size != 2 || dim <= 0 || reps <= 0) {
        if (ci->rank == 0) fprintf(stderr, "usage: mpiexec -n 2 hat bench-transport [--dim 576] [--reps 7] (got %d ranks)\n", ci->size);
        comm_finalize();
        return 2;
    }
    comm_set_role(ci->rank == 0 ? "device" : "cloud");
    comm_sync_clock();
    const int sizes[] = {1, 4, 16, 64, 256};
    const wire_dtype dts[] = {WIRE_F32, WIRE_F16};
    const link_params nolink = {0};
    float *h = xmalloc_aligned((size_t)256 * dim * sizeof(float));
    for (size_t i = 0; i < (size_t)256 * dim; i++) h[i] = (float)((i * 2654435761u) % 1000) * 0.01f - 5.0f;
    if (ci->rank == 0)
        printf("# hat bench-transport: dim %d, median of %d repetitions; one-way = round trip / 2\n"
               "%-5s %6s %9s %12s %14s %8s %10s\n", dim, reps, "dtype", "n_tok", "bytes", "raw_us", "transport_us",
               "ratio", "raw_GB/s");
    for (int di = 0; di < 2; di++) {
        for (int si = 0; si < 5; si++) {
            const int n = sizes[si];
            const size_t bytes = WIRE_HEADER_BYTES + wire_payload_bytes(dts[di], n, dim);
            const int iters = bytes < 65536 ? 400 : 100;
            endpoint e;
            transport_init(&e, 1 - ci->rank, 0, ci->rank == 1, 2, dim, n, dts[di], &nolink, 0, 1);
            double *raw = xmalloc(sizeof(double) * reps), *tr = xmalloc(sizeof(double) * reps);
            for (int r = 0; r < reps; r++) {
                comm_barrier();
                transport_raw_pingpong(1 - ci->rank, ci->rank == 0, bytes, iters / 10);   /* warm-up */
                raw[r] = transport_raw_pingpong(1 - ci->rank, ci->rank == 0, bytes, iters);
                comm_barrier();
                for (int w = 0; w < 2; w++) {   /* warm-up pass, timed pass */
                    const int it = w ? iters : iters / 10;
                    const double t0 = comm_now();
                    for (int i = 0; i < it; i++) {
                        transport_msg m;
                        double ts;
                        if (ci->rank == 0) {
                            wire_header hd = {.kind = WIRE_HIDDEN_UP, .seq = (uint32_t)i, .n_tok = (uint32_t)n};
                            transport_send(&e, &hd, h, &ts);
                            transport_wait(&e, &m);
                            wire_decode(dts[di], m.payload, h, (size_t)n * dim);
                            transport_release(&e);
                        } else {
                            transport_wait(&e, &m);
                            wire_decode(dts[di], m.payload, h, (size_t)n * dim);
                            wire_header hd = {.kind = WIRE_HIDDEN_DOWN, .seq = m.h.seq, .n_tok = (uint32_t)n};
                            transport_release(&e);
                            transport_send(&e, &hd, h, &ts);
                        }
                    }
                    tr[r] = (comm_now() - t0) / it;
                }
            }
            qsort(raw, (size_t)reps, sizeof *raw, cmp_d);
            qsort(tr, (size_t)reps, sizeof *tr, cmp_d);
            const double raw_ow = raw[reps / 2] / 2, tr_ow = tr[reps / 2] / 2;
            if (ci->rank == 0)
                printf("%-5s %6d %9zu %12.2f %14.2f %8.2f %10.2f\n", wire_dtype_name(dts[di]), n, bytes, raw_ow * 1e6,
                       tr_ow * 1e6, tr_ow / raw_ow, bytes / raw_ow / 1e9);
            fflush(stdout);
            free(raw);
            free(tr);
            comm_barrier();
            transport_free(&e);
        }
    }
    free(h);
    comm_finalize();
    return 0;
}
