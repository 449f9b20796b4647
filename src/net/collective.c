/* collective.c — see collective.h */
#include "net/collective.h"

#include "core/common.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    MPI_Comm comm;
    int rank, size;
    float *gather;   /* rank 0: (size, cap) */
    size_t cap;
} group;

static int mpi_fail(int rc, const char *what, char *err, size_t errlen) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return hat_err(err, errlen, HAT_ERR_IO, "tensor-parallel %s: %s", what, msg);
}

static int allreduce(void *ctx, float *buf, size_t n, char *err, size_t errlen) {
    group *g = ctx;
    if (n > (size_t)INT32_MAX) return hat_err(err, errlen, HAT_ERR_ARG, "tensor-parallel all-reduce of %zu floats", n);
    if (g->rank == 0 && n > g->cap) {
        free(g->gather);
        g->gather = xmalloc_aligned((size_t)g->size * n * sizeof(float));
        g->cap = n;
    }
    int rc = MPI_Gather(buf, (int)n, MPI_FLOAT, g->gather, (int)n, MPI_FLOAT, 0, g->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "gather", err, errlen);
    if (g->rank == 0)
        for (int r = 1; r < g->size; r++) {
            const float *p = g->gather + (size_t)r * n;
            for (size_t i = 0; i < n; i++) buf[i] += p[i];
        }
    rc = MPI_Bcast(buf, (int)n, MPI_FLOAT, 0, g->comm);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "broadcast", err, errlen);
}

static int allgather(void *ctx, const void *send, void *recv, size_t bytes, char *err, size_t errlen) {
    group *g = ctx;
    if (bytes > (size_t)INT32_MAX) return hat_err(err, errlen, HAT_ERR_ARG, "tensor-parallel all-gather of %zu bytes", bytes);
    const int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, g->comm);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "all-gather", err, errlen);
}

static int bcast(void *ctx, void *buf, size_t bytes, char *err, size_t errlen) {
    group *g = ctx;
    if (bytes > (size_t)INT32_MAX) return hat_err(err, errlen, HAT_ERR_ARG, "tensor-parallel broadcast of %zu bytes", bytes);
    const int rc = MPI_Bcast(buf, (int)bytes, MPI_BYTE, 0, g->comm);
    return rc == MPI_SUCCESS ? 0 : mpi_fail(rc, "broadcast", err, errlen);
}

void collective_group_open(tp_comm *t, int color, int key, int mode) {
    memset(t, 0, sizeof *t);
    t->size = 1;
    MPI_Comm comm;
    CHECK(MPI_Comm_split(MPI_COMM_WORLD, color >= 0 ? color : MPI_UNDEFINED, key, &comm) == MPI_SUCCESS,
          "tensor parallelism: MPI_Comm_split failed");
    if (comm == MPI_COMM_NULL) return;
    group *g = xcalloc(1, sizeof *g);
    g->comm = comm;
    MPI_Comm_rank(comm, &g->rank);
    MPI_Comm_size(comm, &g->size);
    *t = (tp_comm){.rank = g->rank, .size = g->size, .mode = mode, .ctx = g, .allreduce = allreduce, .allgather = allgather,
                   .bcast = bcast};
}

void collective_group_close(tp_comm *t) {
    group *g = t->ctx;
    if (g) {
        MPI_Comm_free(&g->comm);
        free(g->gather);
        free(g);
    }
    memset(t, 0, sizeof *t);
}
