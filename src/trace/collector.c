/* collector.c — see collector.h.
 *
 * Ownership on rank 0: from collector_init until the writer thread is joined (collector_wait_all,
 * collector_salvage, collector_free), only the writer thread calls HDF5 (trace_append) and
 * touches all[]/n_all[]; the serving thread only fills its buffers buf[t][0] and pushes full
 * ones into the ring. The writer's exit: collector_wait_all sets `target` (the other ranks) and
 * then `finishing`; the writer reads `finishing` before it drains the ring and the receives, so
 * once it has seen it every push is already in the ring, and once every other rank's done
 * message has arrived every data message of that rank has too (MPI keeps one sender's order).
 */
#define _GNU_SOURCE   /* pthread_timedjoin_np */
#include "trace/collector.h"
#include "core/common.h"
#include "net/emul.h"
#include "trace/ring.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TAG_DONE = 100, TAG_ABORT = 101 };
enum {
    RING_SLOTS = 16,   /* chunks of rank 0's own records (one per `cap` passes) or received messages */
    N_RX = 4,          /* pre-posted receives of the writer thread */
};
static const double WRITER_IDLE_S = 1e-3;   /* the writer's sleep when nothing came: ~1 kHz polling */
const double COLLECTOR_FLUSH_S = 1.0;       /* a record waits at most this long to be shipped (hat_wall:
                                             * real time, under [run] time_scale too) */


struct collector_writer {
    pthread_t thread;
    int running;                 /* started and not joined */
    int rx_thread;               /* the writer receives the measurement messages (MPI_THREAD_MULTIPLE) */
    ring q;
    atomic_int stop;             /* abort path: leave now */
    atomic_int finishing;        /* leave once `target` ranks are done and the ring is empty */
    atomic_int target;
    size_t msg_cap;              /* the longest measurement message: cap records of the largest table */
    comm_meas_req rx[N_RX];
    unsigned char *rxbuf[N_RX];
};

static size_t max_record_size(void) {
    size_t m = 0;
    for (int t = 0; t < TRACE_N_TABLES; t++)
        if (trace_record_size((trace_table)t) > m) m = trace_record_size((trace_table)t);
    return m;
}

/* ---- the writer thread's side ------------------------------------------------------------ */

/* the copy for the end-of-run report (all[]) */
static void keep_copy(collector *c, int t, const void *recs, size_t n) {
    const size_t rs = trace_record_size((trace_table)t);
    if (c->n_all[t] + n > c->cap_all[t]) {
        size_t cap = c->cap_all[t] ? c->cap_all[t] : 1024;
        while (cap < c->n_all[t] + n) cap *= 2;
        c->all[t] = realloc(c->all[t], cap * rs);
        CHECK(c->all[t], "out of memory keeping %zu trace records", cap);
        c->cap_all[t] = cap;
    }
    memcpy(c->all[t] + c->n_all[t] * rs, recs, n * rs);
    c->n_all[t] += n;
}

static void keep(collector *c, int t, const void *recs, size_t n) {
    keep_copy(c, t, recs, n);
    if (c->tf) {
        int rc = trace_append(c->tf, (trace_table)t, recs, n);
        CHECK(rc == 0, "trace: appending %zu %s records failed (disk full? the trace keeps what was written before)", n,
              trace_table_name((trace_table)t));
    }
}

/* A received measurement message: the done mark, or whole records of one table; the records go
 * to `to` (kept at once by the writer thread, or into the ring by the serving thread). */
static void take_message(collector *c, const void *msg, size_t n, int tag, int src, int to_ring) {
    if (tag == TAG_DONE) { __atomic_add_fetch(&c->ranks_done, 1, __ATOMIC_RELEASE); return; }
    if (tag == TAG_ABORT) {   /* another rank is failing (collector_notify_abort): the run ends here */
        const int len = n < HAT_ERRLEN ? (int)n : HAT_ERRLEN - 1;
        if (to_ring) fatal("rank %d failed: %.*s", src, len, (const char *)msg);
        /* the writer thread: the main thread fails the run (its abort path joins this thread; a
         * writer failing too would sit in the abort hook until mpirun's SIGKILL) */
        hat_request_abort("rank %d failed: %.*s", src, len, (const char *)msg);
        return;
    }
    CHECK(tag >= 0 && tag < TRACE_N_TABLES, "measurement message with unknown tag %d from rank %d", tag, src);
    const size_t rs = trace_record_size((trace_table)tag);
    CHECK(n % rs == 0, "measurement message of %zu bytes from rank %d is not a whole number of %s records", n, src,
          trace_table_name((trace_table)tag));
    if (to_ring) ring_push(&c->w->q, tag, msg, n / rs, n);
    else keep(c, tag, msg, n / rs);
}

/* writer thread: every completed receive, re-posted; returns how many came */
static int writer_receive(collector *c) {
    struct collector_writer *w = c->w;
    int got = 0;
    for (int k = 0; k < N_RX; k++) {
        size_t n;
        int tag, src;
        while (comm_meas_test(&w->rx[k], &n, &tag, &src)) {
            take_message(c, w->rxbuf[k], n, tag, src, 0);
            comm_meas_irecv(&w->rx[k], w->rxbuf[k], w->msg_cap);
            got++;
        }
    }
    return got;
}

static void *writer_main(void *arg) {
    collector *c = arg;
    struct collector_writer *w = c->w;
    if (w->rx_thread)
        for (int k = 0; k < N_RX; k++) comm_meas_irecv(&w->rx[k], w->rxbuf[k], w->msg_cap);
    while (!atomic_load(&w->stop)) {
        /* SIGINT/SIGTERM: not handled here; the main thread fails the run and its abort path stops
         * this thread (a writer failing too would sit in the abort hook while rank 0 waits for it) */
        const int fin = atomic_load(&w->finishing);   /* before the drain: see the top of the file */
        int did = w->rx_thread ? writer_receive(c) : 0;
        ring_slot *s;
        while ((s = ring_peek(&w->q, 0)) && !atomic_load(&w->stop)) {
            keep(c, s->table, s->data, s->n);
            ring_pop(&w->q);
            did++;
        }
        if (fin && (!w->rx_thread || c->ranks_done >= atomic_load(&w->target))) break;
        if (hat_abort_requested()) break;   /* a failed rank sends no DONE: stop waiting for one */
        if (!did) ring_peek(&w->q, WRITER_IDLE_S);   /* sleeps until a push, a wake or the timeout */
    }
    if (w->rx_thread && !atomic_load(&w->stop))
        for (int k = 0; k < N_RX; k++) comm_meas_cancel(&w->rx[k]);
    return NULL;
}

static void writer_join(collector *c) {
    struct collector_writer *w = c->w;
    if (!w || !w->running) return;
    pthread_join(w->thread, NULL);
    w->running = 0;
}

static void writer_start(collector *c) {
    struct collector_writer *w = xcalloc(1, sizeof *w);
    c->w = w;
    w->rx_thread = comm_get()->thread_multiple;
    w->msg_cap = c->cap * max_record_size();
    ring_init(&w->q, RING_SLOTS, w->msg_cap);
    if (w->rx_thread) {
        for (int k = 0; k < N_RX; k++) w->rxbuf[k] = xmalloc(w->msg_cap);
    } else {   /* the serving thread receives: one message buffer, never grown */
        c->rx = xmalloc(w->msg_cap);
        c->rx_cap = w->msg_cap;
    }
    if (c->tf) {
        char mode[200];
        snprintf(mode, sizeof mode, "writer thread, ring of %d chunks of %zu records (a full ring blocks); %s",
                 RING_SLOTS, c->cap, w->rx_thread ? "the writer receives the measurement messages (MPI_THREAD_MULTIPLE)"
                                                  : "the serving loop receives the measurement messages (no "
                                                    "MPI_THREAD_MULTIPLE)");
        trace_set_attr_str(c->tf, "trace_writer", mode);   /* the last HDF5 call of the serving thread */
    }
    CHECK(pthread_create(&w->thread, NULL, writer_main, c) == 0, "trace: cannot start the writer thread");
    w->running = 1;
}

/* ---- the serving thread's side ----------------------------------------------------------- */

void collector_init(collector *c, int is_root, trace_file *tf, size_t cap) {
    memset(c, 0, sizeof *c);
    c->is_root = is_root;
    c->tf = tf;
    c->cap = cap;
    for (int t = 0; t < TRACE_N_TABLES; t++)
        for (int k = 0; k < 2; k++) c->buf[t][k] = xmalloc(cap * trace_record_size((trace_table)t));
    if (is_root) writer_start(c);
}

static void ship(collector *c, int t) {
    if (!c->n[t]) return;
    const int k = c->cur[t];
    const size_t bytes = c->n[t] * trace_record_size((trace_table)t);
    if (c->is_root) {
        ring_push(&c->w->q, t, c->buf[t][k], c->n[t], bytes);
    } else {
        comm_meas_isend(&c->req[t][k], c->buf[t][k], bytes, t);
        c->busy[t][k] = 1;
        const int other = 1 - k;
        if (c->busy[t][other]) { comm_meas_wait(&c->req[t][other]); c->busy[t][other] = 0; }
        c->cur[t] = other;
    }
    c->n[t] = 0;
}

void collector_add(collector *c, trace_table t, const void *rec) {
    const double t0 = c->is_root ? hat_now() : 0;
    const size_t rs = trace_record_size(t);
    const double now = hat_wall();
    if (c->n[t] == 0) c->first_t[t] = now;   /* the oldest record not yet shipped */
    memcpy(c->buf[t][c->cur[t]] + c->n[t] * rs, rec, rs);
    if (++c->n[t] == c->cap || now - c->first_t[t] >= COLLECTOR_FLUSH_S) ship(c, t);
    if (!c->is_root) return;
    collector_cost *k = &c->cost;
    k->pass_s += hat_now() - t0;
    if (t != TRACE_BATCHES) return;
    k->passes++;
    k->sum_s += k->pass_s;
    if (k->pass_s > k->max_s) k->max_s = k->pass_s;
    k->pass_s = 0;
}

void collector_finish(collector *c) {
    for (int t = 0; t < TRACE_N_TABLES; t++) ship(c, t);
    if (c->is_root) return;
    for (int t = 0; t < TRACE_N_TABLES; t++)
        for (int k = 0; k < 2; k++)
            if (c->busy[t][k]) { comm_meas_wait(&c->req[t][k]); c->busy[t][k] = 0; }
    comm_meas_req r = {0};
    static const char done = 1;
    comm_meas_isend(&r, &done, 1, TAG_DONE);
    comm_meas_wait(&r);
    free(r.req);
}

static void sleep_s(double s) {
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

void collector_notify_abort(collector *c, const char *why) {
    if (!c || c->is_root || !c->buf[0][0]) return;
    for (int t = 0; t < TRACE_N_TABLES; t++) {   /* what is buffered, then the notice (MPI keeps the order) */
        const int k = c->cur[t];
        if (c->n[t] && !c->busy[t][k]) {
            comm_meas_isend(&c->req[t][k], c->buf[t][k], c->n[t] * trace_record_size((trace_table)t), t);
            c->busy[t][k] = 1;
            c->n[t] = 0;
        }
    }
    static char msg[HAT_ERRLEN];
    snprintf(msg, sizeof msg, "%s", why ? why : "aborted");
    comm_meas_req r = {0};
    comm_meas_isend(&r, msg, strlen(msg) + 1, TAG_ABORT);
    /* bounded: a dead or stalled rank 0 must not hold this rank up (no blocking wait here) */
    const double t0 = hat_wall();
    while (!comm_meas_sent(&r) && hat_wall() - t0 < 1.0) sleep_s(1e-3);
    while (hat_wall() - t0 < 3.0) sleep_s(10e-3);   /* rank 0 closes the trace and ends the run */
}

/* serving thread, no MPI_THREAD_MULTIPLE: the waiting messages into the ring */
static int poll_once(collector *c) {
    if (!c->w || c->w->rx_thread) return 0;
    int got = 0;
    size_t n;
    int tag, src;
    while (comm_meas_poll(&c->rx, &c->rx_cap, &n, &tag, &src)) {
        got++;
        take_message(c, c->rx, n, tag, src, 1);
    }
    return got;
}

int collector_poll(collector *c) {
    const double t0 = hat_now();
    const int got = poll_once(c);
    c->cost.pass_s += hat_now() - t0;
    return got;
}

void collector_wait_all(collector *c, int n_ranks) {
    struct collector_writer *w = c->w;
    if (!w) return;
    if (!w->rx_thread)
        while (c->ranks_done < n_ranks - 1)
            if (!poll_once(c)) emul_sleep_until(hat_now() + 200e-6, hat_now);
    atomic_store(&w->target, n_ranks - 1);
    atomic_store(&w->finishing, 1);
    ring_wake(&w->q);
    writer_join(c);
    hat_check_interrupt();   /* the writer stopped for a failed rank: the run fails with its reason */
}

int collector_wait_ranks(collector *c, int n_other, double timeout_s) {
    struct collector_writer *w = c->w;
    if (!c->is_root || !w) return 0;
    const double t0 = hat_wall();
    for (;;) {
        if (!w->rx_thread) poll_once(c);
        if (__atomic_load_n(&c->ranks_done, __ATOMIC_ACQUIRE) >= n_other) return 1;
        if (hat_wall() - t0 > timeout_s) return 0;
        hat_check_interrupt();   /* mpirun allows 1 s after its SIGTERM: the abort path must not wait here */
        sleep_s(1e-3);
    }
}

/* keep() on the abort path: a failing append is not another failure (the trace keeps what it has);
 * the copy serves the failed run's report (run.c) */
static void salvage_keep(collector *c, int t, const void *recs, size_t n) {
    keep_copy(c, t, recs, n);
    trace_append(c->tf, (trace_table)t, recs, n);
}

void collector_salvage(collector *c) {
    struct collector_writer *w = c->w;
    if (!c->is_root || !w) return;
    const int on_writer = w->running && pthread_equal(pthread_self(), w->thread);
    if (!on_writer && w->running) {   /* let it finish the append it is in, then take the file back */
        atomic_store(&w->stop, 1);
        ring_wake(&w->q);
        /* bounded: the writer leaves interrupts and other ranks' failures to this thread
         * (hat_request_abort), but one failing a CHECK of its own is parked in the abort hook for
         * good and never returns; after it stopped appending it is safe to go on */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 2;
        if (pthread_timedjoin_np(w->thread, NULL, &until) == 0) w->running = 0;
    }
    if (!c->tf) return;
    ring_slot *s;
    while ((s = ring_peek(&w->q, 0))) {
        salvage_keep(c, s->table, s->data, s->n);
        ring_pop(&w->q);
    }
    if (on_writer) return;
    for (int t = 0; t < TRACE_N_TABLES; t++)
        if (c->n[t]) {
            salvage_keep(c, t, c->buf[t][c->cur[t]], c->n[t]);
            c->n[t] = 0;
        }
}

void collector_free(collector *c) {
    struct collector_writer *w = c->w;
    if (w) {
        if (w->running) {   /* not waited for (an error path): stop it before freeing what it uses */
            atomic_store(&w->stop, 1);
            ring_wake(&w->q);
            writer_join(c);
        }
        ring_free(&w->q);
        for (int k = 0; k < N_RX; k++) { free(w->rxbuf[k]); free(w->rx[k].req); }
        free(w);
    }
    for (int t = 0; t < TRACE_N_TABLES; t++) {
        for (int k = 0; k < 2; k++) { free(c->buf[t][k]); free(c->req[t][k].req); }
        free(c->all[t]);
    }
    free(c->rx);
    memset(c, 0, sizeof *c);
}

void collector_cost_describe(const collector *c, char *buf, size_t len) {
    const collector_cost *k = &c->cost;
    snprintf(buf, len, "passes %llu mean_us %.2f max_us %.1f total_ms %.3f ring_waits %llu", (unsigned long long)k->passes,
             k->passes ? k->sum_s / (double)k->passes * 1e6 : 0.0, k->max_s * 1e6, k->sum_s * 1e3,
             (unsigned long long)(c->w ? c->w->q.full_waits : 0));
}
