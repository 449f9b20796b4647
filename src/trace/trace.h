/* trace.h — the run's HDF5 trace (the only module that includes hdf5.h).
 *
 * Records are plain fixed-layout C structs: every rank fills preallocated arrays of them and
 * ships full arrays to rank 0, whose writer thread (collector.h) appends them to extendible
 * chunked datasets and flushes the file after every append, so a run that aborts leaves a
 * readable file with what it had. Not thread-safe: one thread at a time uses a trace_file.
 * All times are seconds on the run clock (MPI_Wtime, offset-corrected to rank 0, zero when
 * every rank is ready).
 *
 * File schema (one file per run):
 *   /  attributes (strings): hat_version, git_hash, compiler, build_type, c_flags, features,
 *      config (the resolved INI text), config_path, partition (text), model_path, model_name,
 *      model_identity (architecture, layers, dim, vocab, file size), status
 *      ("running" while the run goes on, then "complete" or "failed: <why>"), created_utc,
 *      mode (ushape | hat | cloud-only), privacy ("private: ..." or, for cloud-only, "NOT private:
 *      ..."), adapter (the draft adapter's description, or "none"), trace_writer (collector.h: the
      writer thread and who receives), trace_overhead (complete runs: the serving loop's trace cost);
 *      integer attributes n_ranks, n_devices, n_cloud, split_a, split_b, n_layer; a run that
 *      failed after start-up also failed_at_s (double: the run clock when rank 0 began to fail it;
 *      every record older than about 1 s before it is in the file, collector.h). The file is
 *      written beside its path and moved into place at the end (trace.c).
 *   /tokens   compound trace_token   — one row per emitted token of every device
 *   /steps    compound trace_step    — one row per device round trip (a prefill chunk or a
 *                                      decode step), with every phase's timing
 *   /batches  compound trace_batch   — one row per cloud forward pass
 *   /devices  compound trace_device  — one row per device, written when it finishes (a lost
 *                                      device's by its cloud rank: lost = 1)
 *   /summary  compound trace_summary    — per device and overall (device = -1), written at the end;
 *                                      also by a run that failed with every device accounted for
 *                                      (finished or lost: report.h)
 *   /batch_hist compound {uint32 batch_tokens; uint64 count} — cloud batch sizes, at the end
 * Field names in HDF5 equal the C member names below.
 */
#ifndef HAT_TRACE_H
#define HAT_TRACE_H

#include <stddef.h>
#include <stdint.h>

/* DECODE: a U-shape round (one token up, one down); ROUND: a HAT round (gamma draft tokens
 * and the last emitted one go up as they are made, gamma + 1 rows come down) */
typedef enum { TRACE_STEP_PREFILL = 0, TRACE_STEP_DECODE = 1, TRACE_STEP_ROUND = 2 } trace_step_kind;

typedef struct {
    uint32_t device;      /* device index (not the MPI rank) */
    uint32_t index;       /* 0 for the first generated token */
    uint32_t step;        /* seq of the round trip that produced it */
    int32_t token;        /* token id (recorded by the measurement plane only) */
    double t_emit;        /* when the device had the token */
    double latency_s;     /* index 0: TTFT = t_emit - t_request; else TBT = t_emit - previous */
} trace_token;

typedef struct {
    uint32_t device, seq;
    uint32_t kind;        /* trace_step_kind */
    uint32_t pos0, n_tok;
    uint32_t cloud_rank, batch_tokens, batch_devices;
    uint64_t up_bytes, down_bytes;   /* whole messages, header included */
    double t_start;                  /* device starts the input submodel */
    double dev_in_s, dev_in_pred_s;  /* measured input-submodel compute; profile prediction (0 = none) */
    double t_up_send;                /* handed to the transport */
    double up_model_s;               /* link model's delay for this message (deliver - send) */
    double t_cloud_ready;            /* cloud saw it delivered */
    double cloud_queue_s;            /* delivered -> its batch started */
    double cloud_compute_s;          /* the batch's forward pass */
    double t_down_send;
    double down_model_s;
    double t_down_ready;             /* device saw the reply delivered */
    double dev_out_s, dev_out_pred_s;/* output submodel (+ head) compute; prediction */
    double t_end;                    /* step done on the device */
    /* decode rounds (0 for prefill): n_tok = gamma + 1 rows went up, one message each */
    uint32_t gamma, accepted;        /* draft tokens; how many of them were accepted */
    uint32_t emitted, pad;           /* tokens this round emitted (accepted + 1, fewer at the end) */
    double t_up_first;               /* the round's first row handed to the transport */
    double draft_s, draft_pred_s;    /* SLM compute (adapter + output submodel + head + draw), gamma tokens */
    /* prefill chunks under [transport] chunking = dynamic: when the plan made just before sending
     * this chunk predicted the cloud would finish it (run clock; its measured counterpart is
     * t_down_send); 0 otherwise */
    double plan_done_t;
} trace_step;

typedef struct {
    uint32_t cloud_rank, batch;
    uint32_t n_tok, n_dev;
    double t_start, t_end;
    double group_s;                  /* of [t_start, t_end): broadcasting the step to the rank's tensor-parallel
                                      * group before the forward (0 without one) */
    /* the rank's pass-time model (src/timing/cost_fit.h: t = c0 + c1 n + c2 s + c3 n^2) as it
     * stood when the pass started, and the pass's inputs to it: the coefficients over time */
    double ctx;                      /* s: the context the pass's tokens attend to, summed over them */
    double pred_s;                   /* the model's t_end - t_start for this pass (0: no model yet) */
    double cost_c0, cost_c1, cost_c2, cost_c3;
    double fit_rms_rel;              /* the model's relative rms residual on the samples it was fitted to */
    uint32_t fit_samples, fit_clamped; /* how many; 1: a negative coefficient was clamped to 0 */
    /* [cloud] compute (timing/cost_model.h): the real compute of [t_start, t_end) before padding,
     * the profile's prediction for the pass (0: no profile; t_end - t_start = max of the two), and
     * 1 when the real compute took longer than the prediction (a distorted pass) */
    double real_s, profile_s;
    uint32_t distorted, pad;
} trace_batch;

typedef struct {
    uint32_t device, rank, cloud_rank;
    uint32_t prompt_tokens, gen_tokens, n_steps;
    uint32_t profile_exceeded;       /* steps where real compute took longer than the profile */
    uint32_t rounds;                 /* decode rounds (HAT and U-shape) */
    uint64_t drafted, accepted;      /* draft tokens over all rounds; accepted ones */
    double t_request, t_first, t_done;
    uint64_t up_bytes, down_bytes;
    /* prefill ([transport] chunking): the policy (0 off, 1 fixed, 2 dynamic), its chunks, how many
     * of the dynamic plans max_stall_ms bound (cut a chunk the plan would otherwise have sent
     * whole), and the first plan's predicted TTFT (seconds from t_request; 0 unless dynamic) */
    uint32_t chunking, chunks, stall_bound;
    /* 1: the device was lost ([run] peer_timeout_s): its cloud rank closed the session and wrote
     * this row (device, rank, cloud_rank, t_done = when it was closed; the rest 0) */
    uint32_t lost;
    double ttft_pred_s;
} trace_device;

typedef enum { TRACE_TOKENS = 0, TRACE_STEPS, TRACE_BATCHES, TRACE_DEVICES, TRACE_N_TABLES } trace_table;

size_t trace_record_size(trace_table t);
const char *trace_table_name(trace_table t);

typedef struct trace_file trace_file;

/* Creates the file (written as <path>.partial-<pid>, moved to path when closed; trace.c). An
 * existing file is an error unless overwrite. Status attr = "running". */
int trace_create(trace_file **out, const char *path, int overwrite, char *err, size_t errlen);
int trace_set_attr_str(trace_file *tf, const char *name, const char *value);
int trace_set_attr_int(trace_file *tf, const char *name, int64_t value);
int trace_set_attr_double(trace_file *tf, const char *name, double value);
/* Appends n records of table t and flushes the file. */
int trace_append(trace_file *tf, trace_table t, const void *recs, size_t n);
/* the end-of-run tables: /summary rows (per device, then overall with device = -1) and /batch_hist
 * (report.h computes them from the records) */
typedef struct {
    int32_t device;                  /* -1 = overall */
    uint32_t n_tokens, n_tbt;
    double ttft_mean, ttft_p50, ttft_p90, ttft_p99;
    double tbt_mean, tbt_p50, tbt_p90, tbt_p99;
    double tok_s;
    double up_bytes_per_tok, down_bytes_per_tok;
    uint32_t rounds;
    uint32_t lost;                   /* 1: a lost device (its /devices row); overall: how many were lost */
    double accept_rate;              /* accepted / drafted (NaN without drafting) */
    double tokens_per_round;         /* (gen_tokens - 1) / rounds */
} trace_summary;

typedef struct {
    uint32_t batch_tokens;
    uint32_t pad;
    uint64_t count;
} trace_hist;
/* Writes the end-of-run tables; a second call replaces them. */
int trace_write_summary(trace_file *tf, const trace_summary *rows, int n_rows, const trace_hist *hist, int n_hist);
/* Sets status (e.g. "complete", "failed: ...") and closes. tf may be NULL. */
int trace_close(trace_file *tf, const char *status);
/* Best-effort from an abort path: set status and flush+close, then move it to its path unless it
 * would replace an older trace (that one is kept); never blocks on MPI. */
void trace_close_on_abort(trace_file *tf, const char *why);

#endif
