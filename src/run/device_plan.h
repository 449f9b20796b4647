/* device_plan.h — a device's dynamic chunking: its view of the three-stage pipeline (its own
 * compute, its uplink, its cloud rank) as a timing/chunk_plan.h cost model, kept up to date from
 * what every reply shows, and the size of the next chunk from a fresh plan over what is left.
 *
 * The model's inputs, each from the best source the device has:
 *   device   seconds per token of both its submodels (every prompt token passes the input one
 *            before it goes up and the output one when it comes back, on the same processor):
 *            measured (the charged time of the chunks done so far, exponentially averaged); before
 *            the first reply, the compute profile's prediction when one is set (its per-pass
 *            weight-streaming floor too), else the cloud's per-token cost scaled by the layer
 *            ratio (a + b) / (L - a - b) — the same processor in a testbed on one kind of host.
 *   uplink   serialisation from the link profile (header + rows x dim x dtype bytes at up_mbps),
 *            the link's backlog from the emulated link's state; latency = the profile's one-way
 *            latency + its mean jitter, corrected by the measured difference between the cloud's
 *            delivery stamp and the link model's delivery (transport overhead).
 *   cloud    the cloud rank's fitted c0..c3 (its start-up probe, then every reply's); the
 *            other devices' share: how much longer its passes took than the model gives for this
 *            device's chunk alone, plus the time a chunk waited behind other devices' work (its
 *            queue time less the time it waited for this device's previous chunk), averaged; the
 *            cloud is busy for this device until the predicted finish of its outstanding chunks.
 *            Before the first reply the device knows nothing of the others but the configuration
 *            (every device's start time and prompt length): of the other devices of the same cloud
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
    double dev_tok, out_tok;     /* measured seconds per token: both submodels; the output one */
    double lat_corr, other_s;    /* averaged corrections */
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

typedef struct {
    int n;                       /* the next chunk's tokens */
    double done_t;               /* its predicted cloud finish (run clock) */
    double ttft_t;               /* the plan's predicted first token (run clock) */
    int k;                       /* chunks in the plan */
} plan_step;

/* dev_c1, mem_floor: the compute profile's seconds per prompt token of both submodels and their
 * per-pass floor (0: no profile); n_prompt: the prompt's tokens; cost0: the cloud's start-up model; share0: the first share */
void device_plan_init(device_plan *p, double dev_c1, double mem_floor, int a, int b, int L, const link_params *up, const link_params *down, int emulate, int dim,
                      int wire_bytes, int n_prompt, int max_chunk, double max_stall_s, const double cost0[4],
                      double share0, double ahead0);
/* the cloud's model c (cost_fit.h) for a whole n-token prompt in passes of `pass` tokens */
double device_plan_prompt_cost(const double c[4], int n, int pass);
void device_plan_free(device_plan *p);
/* the next chunk of the n tokens left from position pos, planned at `now` on link state `ls` */
plan_step device_plan_next(device_plan *p, const link_state *ls, double now, int pos, int n);
/* a chunk's reply arrived: st holds its record (charged compute, stamps, the cloud's timings), c
 * the reply's cost fields */
void device_plan_observe(device_plan *p, const trace_step *st, const float c[4]);

#endif
