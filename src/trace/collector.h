/* collector.h — the measurement plane: trace records from every rank to rank 0's trace file.
 *
 * Each rank appends records to preallocated per-table buffers (no allocation, no MPI and no
 * HDF5 per record); a full buffer, or one whose oldest record has waited COLLECTOR_FLUSH_S (1 s
 * of wall clock: an interrupted or killed run loses at most that), is shipped to rank 0 with a
 * non-blocking send (two buffers per table, so the rank goes on filling one while the other
 * travels).
 *
 * Rank 0 is also a cloud rank, so its serving loop must not pay for the trace: a writer thread,
 * started by collector_init, owns the trace file from then until collector_wait_all (or the
 * abort path) joins it. Rank 0's own full buffers go to the writer through a preallocated ring
 * (ring.h: copied into a free slot; a full ring blocks, never drops, and is counted). Where MPI
 * provides MPI_THREAD_MULTIPLE the writer thread also receives the other ranks' messages (on
 * pre-posted receives, sleep-polled), so the serving loop makes no measurement-plane MPI call at
 * all and collector_poll does nothing; without it collector_poll receives on the serving thread
 * and hands the messages to the ring (the trace attribute trace_writer says which ran). The
 * writer appends to the trace in chunks (flushed each time) and keeps a copy of every record
 * for the end-of-run report (all[], n_all[]: read them only after collector_wait_all).
 */
#ifndef HAT_COLLECT_H
#define HAT_COLLECT_H

#include <stddef.h>
#include <stdint.h>

#include "net/comm.h"
#include "trace/trace.h"

/* Root: what trace handling costs the serving thread (collector_poll and collector_add, timed
 * with hat_now). A TRACE_BATCHES record from the root closes one serving pass: its cost is all
 * collector time since the previous pass (idle-time polls included). */
typedef struct {
    uint64_t passes;
    double pass_s;               /* since the last pass closed */
    double sum_s, max_s;         /* over closed passes */
} collector_cost;

struct collector_writer;         /* root: the writer thread, its ring and receives (collector.c) */

typedef struct {
    int is_root;
    trace_file *tf;                              /* root only; the writer thread's while it runs */
    size_t cap;                                  /* records per buffer (the same on every rank) */
    unsigned char *buf[TRACE_N_TABLES][2];
    size_t n[TRACE_N_TABLES];
    double first_t[TRACE_N_TABLES];              /* when the oldest unshipped record was added */
    int cur[TRACE_N_TABLES];
    comm_meas_req req[TRACE_N_TABLES][2];
    int busy[TRACE_N_TABLES][2];
    /* root: every record of the run, for the report (filled by the writer thread) */
    unsigned char *all[TRACE_N_TABLES];
    size_t n_all[TRACE_N_TABLES], cap_all[TRACE_N_TABLES];
    int ranks_done;                              /* by whichever thread receives */
    void *rx;                                    /* root, serving thread receiving: one message */
    size_t rx_cap;
    collector_cost cost;                         /* root only */
    struct collector_writer *w;                  /* root only */
} collector;

/* Root: records the writer mode in the trace (attribute trace_writer) and starts the thread. */
extern const double COLLECTOR_FLUSH_S;
void collector_init(collector *c, int is_root, trace_file *tf, size_t cap);
void collector_add(collector *c, trace_table t, const void *rec);
/* Non-root: ship what is buffered and tell rank 0 this rank is done. Root: hand its buffers to
 * the writer. */
void collector_finish(collector *c);
/* Root: take in whatever measurement messages are waiting (serving-thread mode only; with the
 * writer thread receiving it returns 0 at once); returns how many. */
int collector_poll(collector *c);
/* Root: until every other rank has finished and the writer has written everything; then joins
 * the writer (the trace file and all[] are the caller's again). */
void collector_wait_all(collector *c, int n_ranks);
/* Root, abort path: stop the writer (after the append it is in) and append what is still in the
 * ring and rank 0's buffers (best effort). Called on the writer thread itself (its own failure),
 * it leaves rank 0's buffers alone: the serving thread may be filling them. */
void collector_salvage(collector *c);
/* Root, before failing a run whose other ranks may still be finishing: until n_other ranks have
 * said done, at most timeout_s; 1 if they did (their records are then with the writer) */
int collector_wait_ranks(collector *c, int n_other, double timeout_s);
/* Non-root, abort path: ship what is buffered and tell rank 0 why this rank fails (rank 0 then
 * fails the run with that reason, closing the trace); waits at most 3 s, never blocking on MPI,
 * for rank 0 to end the run first. */
void collector_notify_abort(collector *c, const char *why);
void collector_free(collector *c);
/* Root: one line for logs and the trace attribute trace_overhead, e.g. "passes 812 mean_us 0.31
 * max_us 12.0 total_ms 0.25 ring_waits 0" (per serving pass, on the serving thread). */
void collector_cost_describe(const collector *c, char *buf, size_t len);

#endif
