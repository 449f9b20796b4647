/* device_plan.h — a device's dynamic chunking: its view of the three-stage pipeline (its own
 * compute, its uplink, its cloud rank) as a timing/chunk_plan.h cost model, kept up to date from
 * what every reply shows, and the size of the next chunk from a fresh plan over what is left.
 *
 * The model's inputs, each from the best source the device has:
 *   device   the time of both its submodels on a chunk of l tokens, d0 + d1 l (every prompt token
 *            passes the input one before it goes up and the output one when it comes back, on the
 *            same processor): a least-squares line through the charged times of the chunks done
 *            so far (with one chunk size only, d0 stays the prior's and d1 fits the rest); before
 *            the first reply, the compute profile's prediction when one is set (d0 = 0, its
 *            per-pass weight-streaming floor instead), else the cloud's c0 and c1 scaled by the
 *            layer ratio (a + b) / (L - a - b) — the same engine on one kind of host, where a pass
 *            of a few tokens costs its fixed part (weights streamed once a pass) as the cloud's
 *            does. The output submodel alone (the first token's tail) is fitted the same way.
 *   uplink   serialisation from the link profile (header + rows x dim x dtype bytes at up_mbps),
 *            the link's backlog from the emulated link's state; latency = the profile's one-way
 *            latency + its mean jitter, corrected by the measured difference between the cloud's
 *            delivery stamp and the link model's delivery (transport overhead).
 *   cloud    the cloud rank's fitted c0..c3 (its start-up probe, then every reply's); the
 *            other devices' share: how much longer its passes took than the model gives for this
 *            device's chunk alone, plus the time a chunk waited behind other devices' work (its
 *            queue time less the time it waited for this device's previous chunk), averaged; the
 *            cloud is busy for this device until the predicted finish of its outstanding chunks.
 *            The stall bound ([transport] max_stall_ms) caps a chunk's predicted pass — the cloud's
 *            model for the chunk plus the others' share of the pass's compute, both raised by a
 *            margin for the model's error, plus the others' share of the wait — so that a
 *            decoding device's round, held for the pass, is late by at most the bound: the margin
 *            is the second largest relative error (pass time over its prediction, less 1) of this
 *            prompt's last 8 chunks, within [0, 0.5]; before 2 replies, 0.1.
 *            Before the first reply the device knows nothing of the others but the configuration
 *            (every device's start time and prompt length): the devices of the same cloud rank that
 *            started earlier by more than the cloud's model for their whole prompt are taken to be
 *            decoding, each adding one round (1 row in the U-shape, gamma_max + 1 in HAT at its
 *            prompt's length of context) to the others' share of every pass; of the other devices of the same cloud
 *            rank that start within a second of this one, with [cloud] prefill_order = fair the
 *            cloud's model is scaled by 1 + each one counted by its prompt's length relative to
 *            this one's (at most 1): devices prefilling at once share the cloud's passes; with
 *            fcfs the cloud is busy, before this prompt's first chunk, with the whole prompts of
 *            those that start before it (at the same time: those of lower index), less the time
 *            they started earlier: prompts that arrive together are served one after the other.
 */
#ifndef HAT_DEVICE_PLAN_H
#define HAT_DEVICE_PLAN_H

#include "net/emul.h"
#include "net/transport.h"
#include "timing/chunk_plan.h"
#include "trace/trace.h"

typedef struct {
    /* fixed at start-up */
    double flop_c1, mem_floor;   /* compute profile: seconds per token, per-pass floor (0: none) */
    double layer_ratio;          /* (a + b) / (L - a - b) */
    double tx_c0, tx_c1, lat;    /* the uplink profile */
    double down_c0, down_c1, down_lat; /* the downlink profile (for the TTFT prediction) */
    int emulate;                 /* links emulated: the profile holds; else they are the real transport */
    int min_chunk, max_chunk;
    double max_stall_s;
    /* learnt */
    double c[4];                 /* the cloud's model (cost_fit.h) */
    double prior_d0;             /* the device's per-chunk fixed time before any reply */
    double fit_n[3], fit_t[2], fit_o[2]; /* sums over observed chunks: 1, n, n^2; t, n t (both submodels); o, n o (output) */
    double lat_corr;             /* averaged correction of the uplink's latency */
    double other_c, other_q;     /* the others' share of a pass's compute, of a chunk's wait (averaged) */
    double err[8];               /* relative errors of the last chunks' pass predictions (ring) */
    int n_err;
    double share0;               /* the first plan's scale of the cloud's model (see above) */
    double ahead0;               /* the first plan's cloud backlog: the prompts served before it */
    int n_obs, n_plans;
    double prev_cloud_done;      /* when the cloud sent the previous chunk's reply */
    double outstanding_done;     /* predicted finish of the chunks in flight (run clock) */
    int stall_hits;              /* plans whose stall bound bound */
    int cap;                     /* room in len/done: the prompt's tokens (any plan fits) */
    int *len;                    /* (cap) the latest plan's chunk sizes */
    double *done;                /* (cap) its predicted cloud finishes, from the plan's start */
} device_plan;

/* what the configuration tells a device of the others before its first reply (device_plan.h) */
typedef struct {
    double share;                /* prefill_order fair: the first plan's scale of the cloud's model */
    double ahead;                /* fcfs: the cloud's backlog of the prompts served before this one */
    double other;                /* the decoding devices' share of every pass */
} plan_prior;

typedef struct {
    int n;                       /* the next chunk's tokens */
    double done_t;               /* its predicted cloud finish (run clock) */
    double ttft_t;               /* the plan's predicted first token (run clock) */
    int k;                       /* chunks in the plan */
} plan_step;

/* dev_c1, mem_floor: the compute profile's seconds per prompt token of both submodels and their
 * per-pass floor (0: no profile); n_prompt: the prompt's tokens; cost0: the cloud's start-up model */
void device_plan_init(device_plan *p, double dev_c1, double mem_floor, int a, int b, int L, const link_params *up, const link_params *down, int emulate, int dim,
                      int wire_bytes, int n_prompt, int max_chunk, double max_stall_s, const double cost0[4],
                      const plan_prior *pr);
/* the cloud's model c (cost_fit.h) for a whole n-token prompt in passes of `pass` tokens */
double device_plan_prompt_cost(const double c[4], int n, int pass);
/* what a round of `rows` decode rows at context ctx adds to a pass under the cloud's model c */
double device_plan_round_cost(const double c[4], int rows, int ctx);
/* the stall margin in force (see above) */
double device_plan_margin(const device_plan *p);
void device_plan_free(device_plan *p);
/* the pipeline model a plan made at `now` on link state `ls` would use, into *c; returns the bound
 * on the chooser's cld(p, l) that the stall bound and its margin give (0: no bound) */
double device_plan_cost(const device_plan *p, const link_state *ls, double now, chunk_cost *c);
/* the next chunk of the n tokens left from position pos, planned at `now` on link state `ls` */
plan_step device_plan_next(device_plan *p, const link_state *ls, double now, int pos, int n);
/* a chunk's reply arrived: st holds its record (charged compute, stamps, the cloud's timings), c
 * the reply's cost fields */
void device_plan_observe(device_plan *p, const trace_step *st, const float c[4]);

#endif
