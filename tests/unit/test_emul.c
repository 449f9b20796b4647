/* test_emul.c — the link and compute emulation of emul.h: determinism of the jitter draws,
 * serialisation of back-to-back messages, the nominal delay, FIFO under large jitter,
 * emulation off, the jitter distributions' means, the compute hook (the prediction itself: test_cost_model). */
#include <math.h>
#include <time.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "net/emul.h"
#include "support/testutil.h"

#define NMSG 1000

static link_params params(double bw_bps, double latency_s, double jitter_s, jitter_dist j) {
    link_params p = {bw_bps, latency_s, jitter_s, j};
    return p;
}

/* schedule NMSG messages of varying size every 1 ms; returns the schedules in out */
static void run_link(link_sched *out, const link_params *p, uint64_t seed, int device, int direction) {
    link_state l;
    emul_link_init(&l, p, 1, seed, device, direction);
    for (int i = 0; i < NMSG; i++) out[i] = emul_link_schedule(&l, 1e-3 * i, 100 + 37 * (size_t)i);
    EXPECT(l.n_msgs == NMSG, "n_msgs %llu", (unsigned long long)l.n_msgs);
    emul_link_free(&l);
    EXPECT(l.rng == NULL, "emul_link_free clears rng");
}

static void test_determinism(void) {
    static link_sched a[NMSG], b[NMSG], c[NMSG], d[NMSG], e[NMSG];
    link_params p = params(20e6, 0.01, 0.005, JITTER_NORMAL);
    run_link(a, &p, 42, 0, 0);
    run_link(b, &p, 42, 0, 0);
    run_link(c, &p, 42, 1, 0);
    run_link(d, &p, 42, 0, 1);
    run_link(e, &p, 43, 0, 0);
    EXPECT(!memcmp(a, b, sizeof a), "same seed, device, direction: identical schedules");
    int diff_dev = 0, diff_dir = 0, diff_seed = 0;
    for (int i = 0; i < NMSG; i++) {
        diff_dev += a[i].jitter_s != c[i].jitter_s;
        diff_dir += a[i].jitter_s != d[i].jitter_s;
        diff_seed += a[i].jitter_s != e[i].jitter_s;
    }
    EXPECT(diff_dev > NMSG * 9 / 10, "other device: only %d of %d jitter draws differ", diff_dev, NMSG);
    EXPECT(diff_dir > NMSG * 9 / 10, "other direction: only %d of %d jitter draws differ", diff_dir, NMSG);
    EXPECT(diff_seed > NMSG * 9 / 10, "other seed: only %d of %d jitter draws differ", diff_seed, NMSG);
}

static void test_serialisation(void) {
    link_params p = params(8e6, 0.02, 0, JITTER_NONE);   /* 1 MB/s */
    link_state l;
    emul_link_init(&l, &p, 1, 1, 0, 0);
    link_sched s1 = emul_link_schedule(&l, 5.0, 1000);
    link_sched s2 = emul_link_schedule(&l, 5.0, 2000);
    EXPECT(s1.tx_start == 5.0 && fabs(s1.tx_end - 5.001) < 1e-12, "first message tx [%g, %g]", s1.tx_start, s1.tx_end);
    EXPECT(s2.tx_start == s1.tx_end, "second tx_start %.9f != first tx_end %.9f", s2.tx_start, s1.tx_end);
    EXPECT(fabs(s2.tx_end - (s1.tx_end + 0.002)) < 1e-12, "second tx_end %.9f", s2.tx_end);
    EXPECT(fabs(s2.deliver - (s2.tx_end + 0.02)) < 1e-12, "second deliver %.9f", s2.deliver);
    /* a message sent after the link went idle starts at once */
    link_sched s3 = emul_link_schedule(&l, 6.0, 10);
    EXPECT(s3.tx_start == 6.0, "idle link: tx_start %g", s3.tx_start);
    emul_link_free(&l);
}

static void test_nominal(void) {
    link_params p = params(1e7, 0.025, 0.0, JITTER_NONE);
    link_state l;
    emul_link_init(&l, &p, 1, 7, 3, 1);
    const size_t sizes[] = {0, 1, 12345, 1 << 20};
    for (int i = 0; i < 4; i++) {
        double t = 10.0 * (i + 1), want = 0.025 + 8.0 * (double)sizes[i] / 1e7;
        link_sched s = emul_link_schedule(&l, t, sizes[i]);
        EXPECT(fabs(emul_link_nominal_delay(&p, sizes[i]) - want) < 1e-15, "nominal delay of %zu bytes", sizes[i]);
        EXPECT(fabs((s.deliver - t) - want) < 1e-12 && s.jitter_s == 0, "isolated message of %zu bytes: delay %.12f want %.12f",
               sizes[i], s.deliver - t, want);
    }
    emul_link_free(&l);
    /* infinite bandwidth: no transmission time */
    link_params inf = params(0, 0.004, 0, JITTER_NONE);
    emul_link_init(&l, &inf, 1, 7, 0, 0);
    link_sched s = emul_link_schedule(&l, 1.0, 1 << 30);
    EXPECT(s.tx_end == s.tx_start && fabs(s.deliver - 1.004) < 1e-12, "bw <= 0: no transmission time");
    EXPECT(emul_link_nominal_delay(&inf, 1 << 30) == 0.004, "bw <= 0: nominal delay is the latency");
    emul_link_free(&l);
    /* from a profile: Mbit/s and ms */
    link_profile prof = {.name = "x", .up_mbps = 20, .down_mbps = 80, .latency_ms = 12, .jitter_ms = 3,
                         .jitter = JITTER_EXPONENTIAL};
    link_params up, down;
    emul_link_params(&up, &prof, 0);
    emul_link_params(&down, &prof, 1);
    EXPECT(up.bw_bps == 20e6 && down.bw_bps == 80e6 && fabs(up.latency_s - 0.012) < 1e-15 &&
           fabs(down.jitter_s - 0.003) < 1e-15 && up.jitter == JITTER_EXPONENTIAL, "emul_link_params");
}

static void test_fifo(void) {
    link_params p = params(100e6, 0.001, 0.1, JITTER_NORMAL);   /* jitter >> spacing */
    link_state l;
    emul_link_init(&l, &p, 1, 99, 0, 0);
    double prev = -1;
    int ordered = 1, clamped = 0;
    for (int i = 0; i < 10000; i++) {
        double t = 1e-3 * i;
        link_sched s = emul_link_schedule(&l, t, 500);
        ordered &= s.deliver >= prev;
        clamped += s.deliver > s.tx_end + p.latency_s + s.jitter_s;
        ordered &= s.deliver >= s.tx_end + p.latency_s + s.jitter_s;
        prev = s.deliver;
    }
    EXPECT(ordered, "deliver times non-decreasing and never before tx_end + latency + jitter");
    EXPECT(clamped > 100, "large jitter: FIFO held back %d messages (expected many)", clamped);
    emul_link_free(&l);
}

static void test_off(void) {
    link_params p = params(1e6, 0.5, 0.1, JITTER_NORMAL);
    link_state l;
    emul_link_init(&l, &p, 0, 1, 0, 0);
    int ok = 1;
    for (int i = 0; i < 100; i++) {
        double t = 0.01 * i;
        link_sched s = emul_link_schedule(&l, t, 1 << 20);
        ok &= s.deliver == t && s.tx_start == t && s.tx_end == t && s.jitter_s == 0;
    }
    EXPECT(ok, "emulation off: deliver = tx_start = tx_end = t_send");
    emul_link_free(&l);
}

/* mean of n jitter draws within 3 standard errors of the expected mean */
static void check_mean(jitter_dist j, double scale, double want_mean, double want_sd, const char *what) {
    const int n = 100000;
    link_params p = params(0, 0, scale, j);
    link_state l;
    emul_link_init(&l, &p, 1, 2024, 5, 1);
    double sum = 0;
    int neg = 0;
    for (int i = 0; i < n; i++) {
        link_sched s = emul_link_schedule(&l, 10.0 * i, 64);   /* far apart: no FIFO effect */
        sum += s.jitter_s;
        neg += s.jitter_s < 0;
        if (fabs(s.deliver - (10.0 * i + s.jitter_s)) > 1e-9) neg++;
    }
    double mean = sum / n, se = want_sd / sqrt((double)n);
    EXPECT(neg == 0, "%s: negative jitter or deliver != t + jitter (%d)", what, neg);
    EXPECT(fabs(mean - want_mean) < 3 * se, "%s: mean %.6g, expected %.6g +- %.3g (3 s.e.)", what, mean, want_mean, 3 * se);
    emul_link_free(&l);
}

static void test_distributions(void) {
    const double s = 0.01, pi = 3.14159265358979323846;
    check_mean(JITTER_NORMAL, s, s * sqrt(2 / pi), s * sqrt(1 - 2 / pi), "half-normal");
    check_mean(JITTER_EXPONENTIAL, s, s, s, "exponential");
    check_mean(JITTER_NONE, s, 0, 1e-300, "none");
}

static double fake_hook(double measured_s, double predicted_s) { return measured_s + predicted_s + 1000; }

static void test_hook(void) {
    double t0 = hat_now();
    double r = emul_compute(0.01, 0.06);
    double el = hat_now() - t0;
    EXPECT(r == 0.06, "default hook returns max(measured, predicted): %g", r);
    EXPECT(el >= 0.9 * 0.05 && el < 0.05 + 0.5, "default hook slept %.4f s for 0.05 s", el);
    t0 = hat_now();
    r = emul_compute(0.03, 0.02);
    el = hat_now() - t0;
    EXPECT(r == 0.03 && el < 0.02, "measured > predicted: no sleep (%.4f s), returns measured", el);
    emul_set_compute_hook(fake_hook);
    EXPECT(emul_compute(1, 2) == 1003, "installed hook is called");
    emul_set_compute_hook(NULL);
    EXPECT(emul_compute(0.5, 0.1) == 0.5, "NULL restores the default hook");
    t0 = hat_now();
    emul_sleep_until(t0 + 0.02, hat_now);
    el = hat_now() - t0;
    EXPECT(el >= 0.02 && el < 0.02 + 0.5, "emul_sleep_until: %.4f s for 0.02 s", el);
    t0 = hat_now();
    emul_sleep_until(t0 - 1, hat_now);
    EXPECT(hat_now() - t0 < 0.01, "emul_sleep_until in the past returns at once");
}

/* [run] time_scale: the clocks run 1/scale of real time, so padding to a prediction of p run-clock
 * seconds sleeps p * scale real seconds while hat_now() advances p */
static void test_dilation(void) {
    struct timespec a, b;
    hat_set_time_scale(10);
    EXPECT(hat_time_scale() == 10, "scale set");
    clock_gettime(CLOCK_MONOTONIC, &a);
    const double t0 = hat_now();
    const double r = emul_compute(0.0, 0.01);
    const double run = hat_now() - t0;
    clock_gettime(CLOCK_MONOTONIC, &b);
    const double real = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    EXPECT(r == 0.01 && run >= 0.01 && run < 0.05, "dilated: %.4f run-clock s for a 0.01 s prediction", run);
    EXPECT(real >= 0.095 && real < 0.5, "dilated: %.4f real s for 0.01 run-clock s at scale 10", real);
    hat_set_time_scale(0.5);   /* below 1: refused, 1 */
    EXPECT(hat_time_scale() == 1, "scale below 1 is 1");
}

int main(void) {
    test_determinism();
    test_serialisation();
    test_nominal();
    test_fifo();
    test_off();
    test_distributions();
    test_hook();
    test_dilation();
    return test_summary();
}
