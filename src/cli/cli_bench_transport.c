/* cli_bench_transport.c — `mpiexec -n 2 hat bench-transport`: the transport's hidden-state round
 * trip against a raw MPI ping-pong of the same bytes, in the same run (OSU style: warm-up, then
 * timed loops; median of repetitions; one-way = round trip / 2).
 *
 * Rank 0 plays a device, rank 1 its cloud. A transport round trip = device encodes n_tok x dim
 * hidden states to the wire dtype, header + CRC-32C, MPI_Isend; cloud receives on a pre-posted
 * receive, validates (CRC included), decodes to fp32, encodes the same rows back, sends; device
 * validates and decodes. Link emulation is off: this measures the software overhead.
 */
#include "cli/cli.h"
#include "net/comm.h"
#include "core/common.h"
#include "core/parse.h"
#include "net/transport.h"
#include "net/wire.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_CMD "hat bench-transport"

typedef struct {
    int dim, reps;
} bench_opts;

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: mpiexec -n 2 hat bench-transport [--dim N] [--reps N]\n"
            "  rank 0 plays a device, rank 1 its cloud; sizes 1..256 tokens, wire fp32 and fp16\n"
            "  --dim N    hidden size of a row (default 576, the model's)\n"
            "  --reps N   repetitions of each timed loop; the median is reported (default 7)\n"
            "  --help, -h this text\n");
}

/* 0: *o set; 1: --help; -1: refused, msg says why (one line) */
static int bench_parse(int argc, char **argv, bench_opts *o, char *msg, size_t len) {
    enum { O_DIM = 256, O_REPS, O_HELP = 'h' };
    static const struct option lo[] = {{"dim", required_argument, 0, O_DIM},
                                       {"reps", required_argument, 0, O_REPS},
                                       {"help", no_argument, 0, O_HELP},
                                       {0, 0, 0, 0}};
    *o = (bench_opts){.dim = 576, .reps = 7};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case O_DIM: if (parse_arg_int_msg(BENCH_CMD, "--dim", optarg, 1, 1 << 16, &o->dim, msg, len)) return -1; break;
        case O_REPS: if (parse_arg_int_msg(BENCH_CMD, "--reps", optarg, 1, 1000, &o->reps, msg, len)) return -1; break;
        case O_HELP: return 1;
        default: cli_opt_error(msg, len, BENCH_CMD, c, argv); return -1;
        }
    }
    if (optind < argc) return snprintf(msg, len, BENCH_CMD ": unexpected argument '%s'", argv[optind]), -1;
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* it transport round trips of n rows of h on endpoint e (rank 0 sends first); seconds per trip */
static double transport_round_trips(endpoint *e, wire_dtype dt, float *h, int n, int dim, int it) {
    const int rank = comm_get()->rank;
    const double t0 = comm_now();
    for (int i = 0; i < it; i++) {
        transport_msg m;
        double ts;
        if (rank == 0) {
            wire_header hd = {.kind = WIRE_HIDDEN_UP, .seq = (uint32_t)i, .n_tok = (uint32_t)n};
            transport_send(e, &hd, h, &ts);
            transport_wait(e, &m);
            wire_decode(dt, m.payload, h, (size_t)n * dim);
            transport_release(e);
        } else {
            transport_wait(e, &m);
            wire_decode(dt, m.payload, h, (size_t)n * dim);
            wire_header hd = {.kind = WIRE_HIDDEN_DOWN, .seq = m.h.seq, .n_tok = (uint32_t)n};
            transport_release(e);
            transport_send(e, &hd, h, &ts);
        }
    }
    return (comm_now() - t0) / it;
}

/* one table row: n rows of dtype dt, raw ping-pong and transport, median of o->reps each */
static void bench_row(const bench_opts *o, wire_dtype dt, float *h, int n) {
    const int rank = comm_get()->rank, peer = 1 - rank, dim = o->dim, reps = o->reps;
    const size_t bytes = WIRE_HEADER_BYTES + wire_payload_bytes(dt, n, dim);
    const int iters = bytes < 65536 ? 400 : 100;
    const link_params nolink = {0};
    endpoint e;
    transport_init(&e, peer, 0, rank == 1, 2, dim, n, dt, &nolink, 0, 1);
    double *raw = xmalloc(sizeof(double) * reps), *tr = xmalloc(sizeof(double) * reps);
    for (int r = 0; r < reps; r++) {
        comm_barrier();
        transport_raw_pingpong(peer, rank == 0, bytes, iters / 10);   /* warm-up */
        raw[r] = transport_raw_pingpong(peer, rank == 0, bytes, iters);
        comm_barrier();
        transport_round_trips(&e, dt, h, n, dim, iters / 10);         /* warm-up */
        tr[r] = transport_round_trips(&e, dt, h, n, dim, iters);
    }
    qsort(raw, (size_t)reps, sizeof *raw, cmp_d);
    qsort(tr, (size_t)reps, sizeof *tr, cmp_d);
    const double raw_ow = raw[reps / 2] / 2, tr_ow = tr[reps / 2] / 2;
    if (rank == 0)
        printf("%-5s %6d %9zu %12.2f %14.2f %8.2f %10.2f\n", wire_dtype_name(dt), n, bytes, raw_ow * 1e6, tr_ow * 1e6,
               tr_ow / raw_ow, bytes / raw_ow / 1e9);
    fflush(stdout);
    free(raw);
    free(tr);
    comm_barrier();
    transport_free(&e);
}

int cli_bench_transport(int argc, char **argv) {
    bench_opts o;
    char msg[HAT_ERRLEN];
    const int prc = bench_parse(argc, argv, &o, msg, sizeof msg);
    if (prc > 0) return cli_mpi_help(bench_usage);
    comm_init(NULL, NULL);
    const comm_info *ci = comm_get();
    if (prc == 0 && ci->size != 2)
        snprintf(msg, sizeof msg, BENCH_CMD ": needs exactly 2 ranks (mpiexec -n 2), got %d", ci->size);
    if (cli_mpi_agree_usage(BENCH_CMD, prc < 0 || ci->size != 2 ? msg : NULL)) { comm_finalize(); return 2; }

    comm_set_role(ci->rank == 0 ? "device" : "cloud");
    comm_sync_clock();
    const int sizes[] = {1, 4, 16, 64, 256};
    const wire_dtype dts[] = {WIRE_F32, WIRE_F16};
    float *h = xmalloc_aligned((size_t)256 * o.dim * sizeof(float));
    for (size_t i = 0; i < (size_t)256 * o.dim; i++) h[i] = (float)((i * 2654435761u) % 1000) * 0.01f - 5.0f;
    if (ci->rank == 0)
        printf("# hat bench-transport: dim %d, median of %d repetitions; one-way = round trip / 2\n"
               "%-5s %6s %9s %12s %14s %8s %10s\n", o.dim, o.reps, "dtype", "n_tok", "bytes", "raw_us", "transport_us",
               "ratio", "raw_GB/s");
    for (int di = 0; di < 2; di++)
        for (int si = 0; si < 5; si++) bench_row(&o, dts[di], h, sizes[si]);
    free(h);
    comm_finalize();
    return 0;
}
