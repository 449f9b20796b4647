/* comm.h — MPI start-up, roles, the run clock, agreement on errors (with transport.c and
 * collective.c, the only code that includes mpi.h; callers see no MPI types).
 *
 * Two communicators, both duplicates of MPI_COMM_WORLD: the data plane (hidden states between
 * devices and the cloud, transport.c) and the measurement plane (trace records shipped to
 * rank 0, which writes the trace). Keeping them apart means the cloud's serving code never
 * receives anything but hidden states; the measurement plane is the experiment harness.
 *
 * Run clock: comm_now() = MPI_Wtime() corrected by this rank's offset to rank 0 (measured at
 * start-up by ping-pong, minimum round trip) minus the start instant, so every rank's times are
 * comparable and 0 is when every rank was ready; divided by [run] time_scale (core/common.h:
 * hat_set_time_scale) when the run is dilated.
 */
#ifndef HAT_COMM_H
#define HAT_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, size;
    double clock_offset;   /* added to MPI_Wtime to get rank 0's clock */
    double clock_rtt;      /* the round trip the offset was measured with */
    double t0;             /* rank 0's clock at the start instant */
    int local_rank;        /* index among the ranks of this host (MPI_COMM_TYPE_SHARED): picks a GPU */
    int local_size;        /* the ranks of this host */
    int host;              /* this host's lowest rank: equal on the ranks of one host */
    int thread_multiple;   /* MPI provides MPI_THREAD_MULTIPLE: a second thread may call the measurement
                            * plane's receives (the trace writer thread, collector.c) */
} comm_info;

void comm_init(int *argc, char ***argv);
void comm_finalize(void);
const comm_info *comm_get(void);
void comm_set_role(const char *role);   /* for messages: "[rank r role]" */

/* Every rank passes its status; all return the same: HAT_OK if every rank had it, else the
 * code and message of the lowest failing rank (copied into msg on every rank). */
int comm_agree(int code, char *msg, size_t msglen, int *failing_rank);

/* Every rank contributes n doubles; all (size * n, rank order) gets every rank's (collective). */
void comm_allgather_doubles(const double *mine, int n, double *all);

/* Measures clock offsets to rank 0 and sets the start instant (collective). */
void comm_sync_clock(void);
double comm_now(void);
void comm_barrier(void);

/* Measurement plane: ship a block of bytes with a tag to rank 0 (non-blocking, the buffer must
 * stay untouched until comm_meas_wait says it went). */
typedef struct { void *req; } comm_meas_req;
void comm_meas_isend(comm_meas_req *r, const void *buf, size_t n, int tag);
void comm_meas_wait(comm_meas_req *r);
int comm_meas_sent(comm_meas_req *r);   /* 1 once an isend completed (never blocks) */
/* Rank 0: if a measurement message is waiting, receive it into *buf (grown with realloc) and
 * return 1 with its size, tag and source; else 0. */
int comm_meas_poll(void **buf, size_t *cap, size_t *n, int *tag, int *source);
/* Rank 0: a receive of one measurement message from any rank with any tag into buf (at most cap
 * bytes; a longer message is fatal), completed by comm_meas_test: 1 with its size, tag and
 * source once it arrived, else 0 (never blocks). comm_meas_cancel withdraws one still pending. */
void comm_meas_irecv(comm_meas_req *r, void *buf, size_t cap);
int comm_meas_test(comm_meas_req *r, size_t *n, int *tag, int *source);
void comm_meas_cancel(comm_meas_req *r);

/* Called (once) by the fatal() path before aborting: e.g. rank 0 marks its trace failed. A fatal()
 * on a second thread meanwhile waits for the first to abort the job. */
void comm_on_abort(void (*fn)(const char *why));
/* Abort every rank now (the fatal() path). */
_Noreturn void comm_abort(int code);

#endif
