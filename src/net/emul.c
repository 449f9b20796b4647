/* emul.c — link delays and device compute time (model and formulas in emul.h).
 *
 * Jitter: `normal` is a half-normal, |N(0, jitter_s)|: never negative, mean
 * jitter_s * sqrt(2/pi) ~ 0.80 * jitter_s, so the mean one-way delay is latency + that.
 * (Truncating max(0, N) instead would put half of all messages at exactly zero jitter.)
 * `exponential` is Exp with mean jitter_s. Each link direction has its own GSL mt19937,
 * seeded from (run seed, device, direction) through splitmix64, so delays do not depend on
 * how messages of different links interleave.
 */
#include "net/emul.h"

#include "core/common.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

const char *const jitter_dist_names[] = {"none", "normal", "exponential", NULL};

/* splitmix64 finaliser: a cheap, well-mixing 64-bit hash */
static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static unsigned long link_seed(uint64_t seed, int device, int direction) {
    uint64_t h = splitmix64(seed);
    h = splitmix64(h ^ (uint64_t)(uint32_t)device);
    h = splitmix64(h ^ (uint64_t)(uint32_t)direction);
    uint32_t s = (uint32_t)(h ^ (h >> 32));   /* GSL's mt19937 uses 32 bits of the seed */
    return s ? s : 1;                           /* 0 would select GSL's default seed */
}

void emul_link_params(link_params *p, const link_profile *prof, int downlink) {
    p->bw_bps = (downlink ? prof->down_mbps : prof->up_mbps) * 1e6;
    p->latency_s = prof->latency_ms * 1e-3;
    p->jitter_s = prof->jitter_ms * 1e-3;
    p->jitter = prof->jitter;
}

void emul_link_init(link_state *l, const link_params *p, int enabled, uint64_t seed, int device, int direction) {
    memset(l, 0, sizeof *l);
    l->p = *p;
    l->enabled = enabled;
    l->busy_until = -INFINITY;     /* idle and nothing delivered yet, whatever the clock's origin */
    l->last_deliver = -INFINITY;
    if (!enabled) return;          /* a disabled link never draws */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    CHECK(r, "gsl_rng_alloc failed");
    gsl_rng_set(r, link_seed(seed, device, direction));
    l->rng = r;
}

void emul_link_free(link_state *l) {
    if (l->rng) gsl_rng_free((gsl_rng *)l->rng);
    l->rng = NULL;
}

static double tx_time(const link_params *p, size_t bytes) {
    return p->bw_bps > 0 ? 8.0 * (double)bytes / p->bw_bps : 0.0;
}

static double draw_jitter(link_state *l) {
    gsl_rng *r = l->rng;
    if (!r || !(l->p.jitter_s > 0)) return 0.0;
    switch (l->p.jitter) {
    case JITTER_NORMAL: return fabs(gsl_ran_gaussian(r, l->p.jitter_s));
    case JITTER_EXPONENTIAL: return gsl_ran_exponential(r, l->p.jitter_s);
    default: return 0.0;
    }
}

link_sched emul_link_schedule(link_state *l, double t_send, size_t bytes) {
    link_sched s;
    l->n_msgs++;
    if (!l->enabled) {
        s.tx_start = s.tx_end = s.deliver = t_send;
        s.jitter_s = 0.0;
        return s;
    }
    s.tx_start = t_send > l->busy_until ? t_send : l->busy_until;
    s.tx_end = s.tx_start + tx_time(&l->p, bytes);
    s.jitter_s = draw_jitter(l);
    double d = s.tx_end + l->p.latency_s + s.jitter_s;
    s.deliver = d > l->last_deliver ? d : l->last_deliver;   /* FIFO: no overtaking */
    l->busy_until = s.tx_end;
    l->last_deliver = s.deliver;
    return s;
}

double emul_link_nominal_delay(const link_params *p, size_t bytes) { return p->latency_s + tx_time(p, bytes); }

static double default_compute_hook(double measured_s, double predicted_s) {
    if (!(predicted_s > measured_s)) return measured_s;
    emul_sleep_until(hat_now() + (predicted_s - measured_s), hat_now);
    return predicted_s;
}

/* The one piece of global state: set once at start-up (a simulator build installs its own). */
static compute_hook_fn g_compute_hook = default_compute_hook;

void emul_set_compute_hook(compute_hook_fn fn) { g_compute_hook = fn ? fn : default_compute_hook; }

double emul_compute(double measured_s, double predicted_s) { return g_compute_hook(measured_s, predicted_s); }

void emul_nap(double s) {
    struct timespec req;
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (double)req.tv_sec) * 1e9);
    if (req.tv_nsec > 999999999L) req.tv_nsec = 999999999L;
    while (nanosleep(&req, &req) != 0 && errno == EINTR) hat_check_interrupt();
}

void emul_sleep_until(double t, double (*now_fn)(void)) {
    if (!now_fn) now_fn = hat_now;
    if (!isfinite(t)) return;                 /* "never" or garbage: do not hang */
    /* real seconds to sleep (the clocks run 1/time_scale of real time), waking 200 us early, then
     * spin: nanosleep overshoots */
    const double coarse = (t - now_fn()) * hat_time_scale() - 200e-6;
    if (coarse > 0) emul_nap(coarse);
    while (now_fn() < t) {
        hat_check_interrupt();
        sched_yield();
    }
}
