/* comm.c — see comm.h. */
#include "net/comm.h"
#include "core/common.h"

#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static comm_info info;
static MPI_Comm comm_data, comm_meas;
static int initialised;
static void (*pre_abort)(const char *why);

MPI_Comm comm_data_handle(void);   /* for transport.c */
MPI_Comm comm_data_handle(void) { return comm_data; }

/* The first thread to fail runs pre_abort and aborts; a fatal() inside pre_abort (same thread)
 * aborts at once; another thread failing meanwhile (the trace writer, collector.c) waits, so the
 * trace is closed before MPI_Abort ends the process. */
static void abort_hook(int code, const char *msg) {
    static atomic_int owner_set;
    static pthread_t owner;
    if (pre_abort) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&owner_set, &expected, 1)) {
            owner = pthread_self();
            atomic_store(&owner_set, 2);
            pre_abort(msg);
        } else {
            while (atomic_load(&owner_set) != 2) sched_yield();
            if (!pthread_equal(owner, pthread_self())) for (;;) pause();
        }
    }
    comm_abort(code ? code : 1);
}

void comm_on_abort(void (*fn)(const char *why)) { pre_abort = fn; }

void comm_init(int *argc, char ***argv) {
    int provided;
    /* MULTIPLE where the library has it: rank 0's trace writer thread receives the measurement
     * plane while the main thread serves (collector.c); without it the main thread receives */
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    info.thread_multiple = provided >= MPI_THREAD_MULTIPLE;
    MPI_Comm_rank(MPI_COMM_WORLD, &info.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &info.size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info.rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &info.local_rank);
    MPI_Comm_size(node, &info.local_size);
    MPI_Allreduce(&info.rank, &info.host, 1, MPI_INT, MPI_MIN, node);
    MPI_Comm_free(&node);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_data);
    MPI_Comm_dup(MPI_COMM_WORLD, &comm_meas);
    /* errors come back as codes (reported with our own message), not MPI's default abort */
    MPI_Comm_set_errhandler(comm_data, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(comm_meas, MPI_ERRORS_RETURN);
    initialised = 1;
    hat_set_identity(info.rank, "starting");
    hat_set_abort_hook(abort_hook);
}

void comm_finalize(void) {
    if (!initialised) return;
    MPI_Comm_free(&comm_data);
    MPI_Comm_free(&comm_meas);
    MPI_Finalize();
    initialised = 0;
}

const comm_info *comm_get(void) { return &info; }
void comm_set_role(const char *role) { hat_set_identity(info.rank, role); }

int comm_agree(int code, char *msg, size_t msglen, int *failing_rank) {
    int mine = code == 0 ? info.size : info.rank, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (failing_rank) *failing_rank = first < info.size ? first : -1;
    if (first == info.size) return 0;
    int c = code;
    MPI_Bcast(&c, 1, MPI_INT, first, MPI_COMM_WORLD);
    char buf[HAT_ERRLEN];
    if (info.rank == first) snprintf(buf, sizeof buf, "%s", msg ? msg : "");
    MPI_Bcast(buf, sizeof buf, MPI_CHAR, first, MPI_COMM_WORLD);
    buf[sizeof buf - 1] = 0;
    if (msg && msglen) snprintf(msg, msglen, "%s", buf);
    return c ? c : 1;
}

void comm_allgather_doubles(const double *mine, int n, double *all) {
    MPI_Allgather(mine, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
}

void comm_sync_clock(void) {
    /* NTP-style: rank r sends t1, rank 0 answers its clock t2, r receives at t3;
     * offset = t2 - (t1 + t3)/2 from the exchange with the smallest round trip */
    enum { ROUNDS = 8 };
    info.clock_offset = 0.0;
    info.clock_rtt = 0.0;
    for (int r = 1; r < info.size; r++) {
        if (info.rank == 0) {
            for (int k = 0; k < ROUNDS; k++) {
                double t1;
                MPI_Recv(&t1, 1, MPI_DOUBLE, r, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                double t2 = MPI_Wtime();
                MPI_Send(&t2, 1, MPI_DOUBLE, r, 7, MPI_COMM_WORLD);
            }
        } else if (info.rank == r) {
            double best = 1e30;
            for (int k = 0; k < ROUNDS; k++) {
                double t1 = MPI_Wtime(), t2;
                MPI_Send(&t1, 1, MPI_DOUBLE, 0, 7, MPI_COMM_WORLD);
                MPI_Recv(&t2, 1, MPI_DOUBLE, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                double t3 = MPI_Wtime();
                if (t3 - t1 < best) { best = t3 - t1; info.clock_offset = t2 - 0.5 * (t1 + t3); info.clock_rtt = best; }
            }
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Bcast(&t0, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    info.t0 = t0;
}

double comm_now(void) { return (MPI_Wtime() + info.clock_offset - info.t0) / hat_time_scale(); }
void comm_barrier(void) {
    /* a sleeping wait (MPI's blocking barrier busy-polls: a rank done early would burn a core
     * until the last one arrives), interruptible by SIGINT/SIGTERM */
    MPI_Request q;
    MPI_Ibarrier(MPI_COMM_WORLD, &q);
    for (int done = 0;;) {
        MPI_Test(&q, &done, MPI_STATUS_IGNORE);
        if (done) return;
        hat_check_interrupt();
        const struct timespec ts = {0, 1000000};   /* 1 ms */
        nanosleep(&ts, NULL);
    }
}

void comm_meas_isend(comm_meas_req *r, const void *buf, size_t n, int tag) {
    MPI_Request *q = r->req ? r->req : (r->req = xmalloc(sizeof(MPI_Request)));
    int rc = MPI_Isend(buf, (int)n, MPI_BYTE, 0, tag, comm_meas, q);
    CHECK(rc == MPI_SUCCESS, "measurement plane: MPI_Isend of %zu bytes failed (%d)", n, rc);
}

void comm_meas_wait(comm_meas_req *r) {
    if (!r->req) return;
    int rc = MPI_Wait(r->req, MPI_STATUS_IGNORE);
    CHECK(rc == MPI_SUCCESS, "measurement plane: MPI_Wait failed (%d)", rc);
}

int comm_meas_sent(comm_meas_req *r) {
    if (!r->req) return 1;
    int flag = 0;
    return MPI_Test(r->req, &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag;
}

int comm_meas_poll(void **buf, size_t *cap, size_t *n, int *tag, int *source) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_meas, &flag, &st);
    if (!flag) return 0;
    int count;
    MPI_Get_count(&st, MPI_BYTE, &count);
    if ((size_t)count > *cap) {
        *cap = (size_t)count;
        *buf = realloc(*buf, *cap);
        CHECK(*buf, "out of memory receiving %d measurement bytes", count);
    }
    int rc = MPI_Recv(*buf, count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, comm_meas, MPI_STATUS_IGNORE);
    CHECK(rc == MPI_SUCCESS, "measurement plane: MPI_Recv failed (%d)", rc);
    *n = (size_t)count;
    *tag = st.MPI_TAG;
    *source = st.MPI_SOURCE;
    return 1;
}

void comm_meas_irecv(comm_meas_req *r, void *buf, size_t cap) {
    MPI_Request *q = r->req ? r->req : (r->req = xmalloc(sizeof(MPI_Request)));
    int rc = MPI_Irecv(buf, (int)cap, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, comm_meas, q);
    CHECK(rc == MPI_SUCCESS, "measurement plane: MPI_Irecv of up to %zu bytes failed (%d)", cap, rc);
}

int comm_meas_test(comm_meas_req *r, size_t *n, int *tag, int *source) {
    int flag = 0, count = 0;
    MPI_Status st;
    int rc = MPI_Test((MPI_Request *)r->req, &flag, &st);
    CHECK(rc == MPI_SUCCESS, "measurement plane: receiving failed (%d: a message longer than the trace "
          "collector's buffer?)", rc);
    if (!flag) return 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    *n = (size_t)count;
    *tag = st.MPI_TAG;
    *source = st.MPI_SOURCE;
    return 1;
}

void comm_meas_cancel(comm_meas_req *r) {
    MPI_Request *q = r->req;
    if (!q || *q == MPI_REQUEST_NULL) return;
    MPI_Cancel(q);
    MPI_Wait(q, MPI_STATUS_IGNORE);
}

_Noreturn void comm_abort(int code) {
    fflush(stdout);
    fflush(stderr);
    if (initialised) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1);
}
