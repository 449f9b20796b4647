/* emul.h — the one place where emulated time is decided: link delays and device compute time.
 *
 * No MPI and no clock in here: callers pass times (seconds on the run clock, MPI_Wtime based)
 * and get times back, so the same model serves the live testbed, the benchmark that checks
 * it, and a simulator build (SimGrid SMPI), where emulation is switched off and the platform
 * file models the links.
 *
 * Link model (one direction of one device's link):
 *   tx_start   = max(t_send, busy_until)             serialisation: a message queues behind
 *   tx_end     = tx_start + 8 * bytes / bandwidth     the previous one on the same link
 *   deliver    = max(tx_end + latency + jitter, last_deliver)   jitter >= 0 drawn from the
 *                                                    profile's distribution; FIFO kept
 * Jitter draws come from a GSL mt19937 per link seeded from (run seed, device, direction):
 * a run with the same seed and the same message sizes gets the same delays. `normal` jitter
 * is half-normal, |N(0, jitter_s)|, so the mean delay exceeds latency by jitter_s*sqrt(2/pi);
 * `exponential` has mean jitter_s; `none` is 0.
 *
 * Compute: the prediction of a pass comes from timing/cost_model.h (the one cost model of every
 * role); here only the padding of the measured time up to it (emul_compute, a replaceable hook).
 */
#ifndef HAT_EMUL_H
#define HAT_EMUL_H

#include <stddef.h>
#include <stdint.h>

#define EMUL_NAME 64      /* a profile name */
#define EMUL_SOURCE 512   /* where a profile's numbers come from */

/* jitter distribution of a link; jitter_dist_names is NULL-terminated, in enum order */
typedef enum { JITTER_NONE = 0, JITTER_NORMAL = 1, JITTER_EXPONENTIAL = 2 } jitter_dist;
extern const char *const jitter_dist_names[];

/* the profiles of configs/links.ini */
typedef struct {
    char name[EMUL_NAME];
    double up_mbps, down_mbps;     /* megabits per second (1e6 bit/s) */
    double latency_ms, jitter_ms;  /* one-way latency; jitter: sigma of the half-normal |N(0,sigma)| (normal) or the mean (exponential) */
    jitter_dist jitter;
    char source[EMUL_SOURCE];
} link_profile;



typedef struct {
    double bw_bps;        /* bits per second; <= 0 means infinite */
    double latency_s;
    double jitter_s;      /* scale of |N(0, jitter_s)| (normal) or mean (exponential) */
    jitter_dist jitter;
} link_params;

typedef struct {
    link_params p;
    int enabled;          /* 0: deliver = t_send (emulation off) */
    double busy_until, last_deliver;
    uint64_t n_msgs;
    void *rng;            /* gsl_rng *, opaque here */
} link_state;

typedef struct {
    double tx_start, tx_end, jitter_s, deliver;
} link_sched;

/* direction: 0 = uplink, 1 = downlink; the seed mixes (seed, device, direction). */
void emul_link_params(link_params *p, const link_profile *prof, int downlink);
void emul_link_init(link_state *l, const link_params *p, int enabled, uint64_t seed, int device, int direction);
void emul_link_free(link_state *l);
/* Schedules one message of `bytes` handed to the link at t_send; advances the state. */
link_sched emul_link_schedule(link_state *l, double t_send, size_t bytes);
/* The configured delay of an isolated message (no queueing, no jitter): latency + 8*bytes/bw. */
double emul_link_nominal_delay(const link_params *p, size_t bytes);


/* The compute-time hook: given the measured seconds of a piece of device compute and the
 * profile's prediction, make the emulated time pass and return the time charged.
 * The default hook sleeps for (predicted - measured) when positive and returns
 * max(measured, predicted). A simulator build replaces it (e.g. by smpi_execute). */
typedef double (*compute_hook_fn)(double measured_s, double predicted_s);
void emul_set_compute_hook(compute_hook_fn fn);
double emul_compute(double measured_s, double predicted_s);

/* Sleep helper used by the default hook and the transport: sleeps until now_fn() >= t,
 * coarse sleep then a short spin. */
void emul_sleep_until(double t, double (*now_fn)(void));
/* s real seconds of plain sleep, no spin (an interrupt is checked when one wakes it) */
void emul_nap(double s);

#endif
