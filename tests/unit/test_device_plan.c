/* test_device_plan.c — a device's view of the chunked-prefill pipeline (run/device_plan.h),
 * against hand-worked values:
 *   device  the prior per-chunk time (the cloud's c0 x the layer ratio without a profile, 0 with
 *           one), the least-squares line through observed chunks of several sizes, one size only
 *   prior   a device that started earlier than its whole prompt's cloud time counts as decoding
 *           (device_plan_round_cost)
 *   stall   the margin (second largest of the last 8 relative errors, 0.1 at first, within
 *           [0, 0.5]) and the chunk sent: (own + others' compute) (1 + margin) + others' wait
 *           within max_stall_s where one chunk would be best without it */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "run/device_plan.h"
#include "support/testutil.h"

/* the cloud: 50 ms + 2 ms/token + 1 us/position: a pass's fixed cost that makes few, large chunks
 * the best plan, so that the bound binds */
static const double C[4] = {0.05, 0.002, 1e-6, 0};

static void init(device_plan *p, double dev_c1, double floor, double stall, const plan_prior *pr) {
    const link_params up = {.bw_bps = 0}, down = {.bw_bps = 0};
    const plan_prior none = {.share = 1};
    device_plan_init(p, dev_c1, floor, 2, 2, 30, &up, &down, 1, 64, 2, 4096, 256, stall, C, pr ? pr : &none);
}

/* a reply for a chunk of n tokens at pos0 whose device time was t (input 2/3, output 1/3) and
 * whose pass took `compute` seconds after waiting `queue` */
static void observe(device_plan *p, int pos0, int n, double t, double compute, double queue) {
    trace_step st;
    memset(&st, 0, sizeof st);
    st.pos0 = (uint32_t)pos0;
    st.n_tok = (uint32_t)n;
    st.dev_in_s = t * 2 / 3;
    st.dev_out_s = t / 3;
    st.t_up_send = 1.0;
    st.t_cloud_ready = 1.0;
    st.cloud_queue_s = queue;
    st.cloud_compute_s = compute;
    st.t_down_send = 0;   /* no wait behind this device's own previous chunk */
    const float cf[4] = {0, 0, 0, 0};   /* keeps the start-up model */
    device_plan_observe(p, &st, cf);
}

static double own(int pos, int n) { return C[0] + C[1] * n + C[2] * (n * (double)pos + n * (n + 1.0) / 2); }

static void test_device(void) {
    const link_state ls = {0};
    device_plan p;
    chunk_cost c;
    init(&p, 0, 0, 0, NULL);   /* no profile: the cloud's model x (2 + 2) / 26 */
    device_plan_cost(&p, &ls, 0, &c);
    EXPECT(fabs(c.dev_c0 - C[0] * 4 / 26) < 1e-15 && fabs(c.dev_c1 - C[1] * 4 / 26) < 1e-15,
           "prior without a profile: d0 %g d1 %g", c.dev_c0, c.dev_c1);
    EXPECT(fabs(c.tail_c0 - 0.5 * c.dev_c0) < 1e-15, "prior tail: the output submodel's half of d0 (%g)", c.tail_c0);
    for (int n = 8; n <= 32; n *= 2) observe(&p, 0, n, 0.003 + 0.001 * n, own(0, n), 0);
    device_plan_cost(&p, &ls, 0, &c);
    EXPECT(fabs(c.dev_c0 - 0.003) < 1e-12 && fabs(c.dev_c1 - 0.001) < 1e-12, "line through 3 sizes: d0 %g d1 %g",
           c.dev_c0, c.dev_c1);
    EXPECT(fabs(c.tail_c0 - 0.001) < 1e-12 && fabs(c.tail_c1 - 0.001 / 3) < 1e-12, "output line: o0 %g o1 %g",
           c.tail_c0, c.tail_c1);
    device_plan_free(&p);

    init(&p, 0, 0, 0, NULL);   /* one size only: d0 stays the prior's, d1 fits the rest */
    for (int i = 0; i < 3; i++) observe(&p, 16 * i, 16, 0.010, own(16 * i, 16), 0);
    device_plan_cost(&p, &ls, 0, &c);
    const double d0 = fmin(C[0] * 4 / 26, 0.5 * 0.010);   /* at most half the mean time */
    EXPECT(fabs(c.dev_c0 - d0) < 1e-15 && fabs(c.dev_c1 - (0.010 - d0) / 16) < 1e-15, "one size: d0 %g d1 %g",
           c.dev_c0, c.dev_c1);
    device_plan_free(&p);

    init(&p, 0.0005, 0.002, 0, NULL);   /* a profile: its per-token cost, its floor, no d0 */
    device_plan_cost(&p, &ls, 0, &c);
    EXPECT(c.dev_c0 == 0 && c.dev_c1 == 0.0005 && c.dev_floor == 0.002, "profile prior: %g %g %g", c.dev_c0, c.dev_c1,
           c.dev_floor);
    device_plan_free(&p);
}

static void test_prior(void) {
    const double r1 = device_plan_round_cost(C, 1, 100), r5 = device_plan_round_cost(C, 5, 100);
    EXPECT(fabs(r1 - (C[1] + C[2] * 101)) < 1e-15, "one row at context 100: %g", r1);
    EXPECT(fabs(r5 - (5 * C[1] + C[2] * (500 + 15))) < 1e-15, "five rows: %g", r5);
    const link_state ls = {0};
    const plan_prior pr = {.share = 1, .other = 3 * r1};
    device_plan p;
    chunk_cost c;
    init(&p, 0, 0, 0.2, &pr);
    device_plan_cost(&p, &ls, 0, &c);
    EXPECT(fabs(c.cl_other - 3 * r1) < 1e-15, "the decoding devices' share before any reply: %g", c.cl_other);
    device_plan_free(&p);
}

static void test_stall(void) {
    const link_state ls = {0};
    device_plan p;
    chunk_cost c;
    init(&p, 0, 0, 0.2, NULL);
    EXPECT(fabs(device_plan_margin(&p) - 0.1) < 1e-15, "margin before any reply: %g", device_plan_margin(&p));
    double b = device_plan_cost(&p, &ls, 0, &c);
    EXPECT(fabs(b - 0.2 / 1.1) < 1e-12, "first bound: %g", b);
    /* 256 tokens (a grid of 2): unbounded, one chunk would be best */
    plan_step s = device_plan_next(&p, &ls, 0, 0, 256);
    EXPECT(own(0, s.n) * 1.1 <= 0.2 + 1e-12 && p.stall_hits == 1, "first chunk %d: %g s x 1.1 (bound binds: %d)", s.n,
           own(0, s.n), p.stall_hits);
    /* replies: passes 30 %, 5 %, 20 %, 10 % over the model, with 10 ms of others' compute and 15 ms
     * of others' wait each: the second largest error of the last four */
    const double over[4] = {0.3, 0.05, 0.2, 0.1};
    int pos = 0;
    for (int i = 0; i < 4; i++) {
        const double pred = own(pos, 32) + p.other_c;
        observe(&p, pos, 32, 0.01, pred * (1 + over[i]), 0.015);
        pos += 32;
    }
    EXPECT(fabs(device_plan_margin(&p) - 0.2) < 1e-12, "margin %g, want 0.2", device_plan_margin(&p));
    const double oc = p.other_c, oq = p.other_q;
    EXPECT(oc > 0.004 && oq > 0.01, "others' share: compute %g, wait %g", oc, oq);
    s = device_plan_next(&p, &ls, 0, pos, 256);
    const double lhs = (own(pos, s.n) + oc) * 1.2 + oq;
    EXPECT(lhs <= 0.2 + 1e-12 && s.n >= 8 && p.stall_hits == 2, "bounded chunk %d: %g s", s.n, lhs);
    for (int i = 0; i < 8; i++) observe(&p, pos, 8, 0.01, 10 * own(pos, 8), 0);   /* 9x over: at most 0.5 */
    EXPECT(device_plan_margin(&p) == 0.5, "margin clamped: %g", device_plan_margin(&p));
    device_plan_free(&p);
}

int main(int argc, char **argv) {
    const char *part = argc > 1 ? argv[1] : "all";
    const int all = !strcmp(part, "all");
    if (all || !strcmp(part, "device")) test_device();
    if (all || !strcmp(part, "prior")) test_prior();
    if (all || !strcmp(part, "stall")) test_stall();
    return test_summary();
}
