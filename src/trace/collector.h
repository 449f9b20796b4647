/* collector.h — the measurement plane: trace records from every rank to rank 0's trace file.
 *
 * Each rank appends records to preallocated per-table buffers (no allocation, no MPI and no
 * HDF5 per record); a full buffer is shipped to rank 0 with a non-blocking send (two buffers
 * per table, so the rank goes on filling one while the other travels). Rank 0 appends what it
 * receives, and its own records, to the trace in chunks (flushed each time) and keeps a copy of
 * every record for the end-of-run report.
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

typedef struct {
    int is_root;
    trace_file *tf;                              /* root only */
    size_t cap;                                  /* records per buffer */
    unsigned char *buf[TRACE_N_TABLES][2];
    size_t n[TRACE_N_TABLES];
    int cur[TRACE_N_TABLES];
    comm_meas_req req[TRACE_N_TABLES][2];
    int busy[TRACE_N_TABLES][2];
    /* root: every record of the run, for the report */
    unsigned char *all[TRACE_N_TABLES];
    size_t n_all[TRACE_N_TABLES], cap_all[TRACE_N_TABLES];
    int ranks_done;
    void *rx;
    size_t rx_cap;
    collector_cost cost;                         /* root only */
} collector;

void collector_init(collector *c, int is_root, trace_file *tf, size_t cap);
void collector_add(collector *c, trace_table t, const void *rec);
/* Non-root: ship what is buffered and tell rank 0 this rank is done. Root: append its buffers. */
void collector_finish(collector *c);
/* Root: take in whatever measurement messages are waiting; returns how many. */
int collector_poll(collector *c);
/* Root: poll until every other rank has finished (sleep-polling). */
void collector_wait_all(collector *c, int n_ranks);
/* Root, abort path: append what is buffered locally (best effort). */
void collector_salvage(collector *c);
void collector_free(collector *c);
/* Root: one line for logs and the trace attribute trace_overhead, e.g. "passes 812 mean_us 3.1
 * max_us 412.0 total_ms 2.5" (per serving pass, on the serving thread). */
void collector_cost_describe(const collector *c, char *buf, size_t len);

#endif
