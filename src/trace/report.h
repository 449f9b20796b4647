/* report.h — end-of-run summary from the trace records (pure C: no MPI, no HDF5).
 *
 * Per device and overall: TTFT and TBT (mean, p50, p90, p99; percentiles by the nearest-rank
 * method on the sorted samples), tokens/s (generated tokens / (t_done - t_request)), bytes per
 * generated token on the uplink and the downlink, and the cloud's batch-size distribution
 * (tokens per forward pass). Overall TTFT/TBT pool the samples of every device.
 * Decode rounds: acceptance rate = accepted / drafted tokens, and tokens per round = tokens
 * emitted by decode rounds / rounds (the first token comes from the prefill, not a round).
 * With drafting several tokens arrive at once: their TBT samples are ~0 and the mean TBT is
 * the decode time per token.
 */
#ifndef HAT_REPORT_H
#define HAT_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "trace/trace.h"

typedef struct report {
    int n_rows;                      /* n_devices + 1; rows[n_devices] is overall */
    trace_summary *rows;
    int n_hist;
    trace_hist *hist;               /* ascending batch_tokens, count > 0 */
    double batch_mean;
} report;

/* Builds the report; the record arrays are not modified (copies are sorted). */
int report_build(report *r, int n_devices, const trace_token *tok, size_t n_tok,
                 const trace_device *dev, size_t n_dev, const trace_batch *bat, size_t n_bat,
                 char *err, size_t errlen);
void report_print(const report *r, FILE *f);
void report_free(report *r);

#endif
