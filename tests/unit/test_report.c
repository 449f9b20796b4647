/* test_report.c — report_build statistics against hand-computed values, and bad inputs. */
#define _GNU_SOURCE
#include <math.h>
#include <string.h>

#include "core/common.h"
#include "trace/report.h"
#include "support/testutil.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-12 * (fabs(b) > 1 ? fabs(b) : 1); }
static int same(double a, double b) { return (isnan(a) && isnan(b)) || near(a, b); }

static trace_token tk(uint32_t dev, uint32_t index, double lat) {
    trace_token t = { .device = dev, .index = index, .step = index, .token = 100 + (int32_t)index,
                      .t_emit = 0.0, .latency_s = lat };
    return t;
}

static trace_device dv(uint32_t dev, uint32_t gen, double t_req, double t_done, uint64_t up, uint64_t down) {
    trace_device d = { .device = dev, .rank = dev + 1, .gen_tokens = gen, .t_request = t_req,
                       .t_done = t_done, .up_bytes = up, .down_bytes = down };
    return d;
}

#define ROW_STATS(row, tm, t50, t90, t99, bm, b50, b90, b99)                                         \
    do {                                                                                         \
        EXPECT(same((row).ttft_mean, tm) && same((row).ttft_p50, t50) && same((row).ttft_p90, t90) && \
                   same((row).ttft_p99, t99),                                                    \
               "device %d ttft %g %g %g %g", (row).device, (row).ttft_mean, (row).ttft_p50,          \
               (row).ttft_p90, (row).ttft_p99);                                                  \
        EXPECT(same((row).tbt_mean, bm) && same((row).tbt_p50, b50) && same((row).tbt_p90, b90) &&   \
                   same((row).tbt_p99, b99),                                                     \
               "device %d tbt %g %g %g %g", (row).device, (row).tbt_mean, (row).tbt_p50,             \
               (row).tbt_p90, (row).tbt_p99);                                                    \
    } while (0)

/* Four devices: 5 tokens (4 TBT samples, even), 1 token (no TBT), 4 tokens (3 TBT, odd),
 * and a device that finished with no tokens. Records are deliberately out of order. */
static void test_stats(void) {
    const trace_token tok[] = {
        tk(2, 3, 0.10), tk(0, 2, 0.04), tk(0, 0, 0.5), tk(1, 0, 0.7), tk(0, 4, 0.02), tk(2, 0, 0.3),
        tk(0, 1, 0.01), tk(2, 1, 0.06), tk(0, 3, 0.03), tk(2, 2, 0.05),
    };
    const trace_device dev[] = {
        dv(3, 0, 1.0, 2.0, 0, 0), dv(0, 5, 1.0, 3.0, 1000, 500), dv(2, 4, 2.0, 4.0, 800, 400),
        dv(1, 1, 0.5, 1.5, 300, 100),
    };
    const uint32_t ntok[] = { 3, 1, 3, 2, 1, 3 };
    trace_batch bat[6];
    for (int i = 0; i < 6; i++) bat[i] = (trace_batch){ .batch = (uint32_t)i, .n_tok = ntok[i], .n_dev = 1 };

    trace_token tok_copy[10];
    memcpy(tok_copy, tok, sizeof tok);
    report r;
    char err[HAT_ERRLEN] = "";
    int rc = report_build(&r, 4, tok, 10, dev, 4, bat, 6, err, sizeof err);
    EXPECT(rc == HAT_OK, "report_build: %s", err);
    if (rc != HAT_OK) return;
    EXPECT(memcmp(tok, tok_copy, sizeof tok) == 0, "input tokens modified");
    EXPECT(r.n_rows == 5, "n_rows %d", r.n_rows);
    for (int i = 0; i < 4; i++) EXPECT(r.rows[i].device == i, "row %d device %d", i, r.rows[i].device);
    EXPECT(r.rows[4].device == -1, "overall device %d", r.rows[4].device);

    /* device 0: TTFT 0.5; TBT {0.01,0.02,0.03,0.04}: ranks p50=2, p90=ceil(3.6)=4, p99=4 */
    const trace_summary *d0 = &r.rows[0];
    EXPECT(d0->n_tokens == 5 && d0->n_tbt == 4, "d0 counts %u %u", d0->n_tokens, d0->n_tbt);
    ROW_STATS(*d0, 0.5, 0.5, 0.5, 0.5, 0.025, 0.02, 0.04, 0.04);
    EXPECT(near(d0->tok_s, 2.5) && near(d0->up_bytes_per_tok, 200) && near(d0->down_bytes_per_tok, 100),
           "d0 rates %g %g %g", d0->tok_s, d0->up_bytes_per_tok, d0->down_bytes_per_tok);

    /* device 1: one token, so no TBT samples */
    const trace_summary *d1 = &r.rows[1];
    EXPECT(d1->n_tokens == 1 && d1->n_tbt == 0, "d1 counts %u %u", d1->n_tokens, d1->n_tbt);
    ROW_STATS(*d1, 0.7, 0.7, 0.7, 0.7, NAN, NAN, NAN, NAN);
    EXPECT(near(d1->tok_s, 1.0) && near(d1->up_bytes_per_tok, 300) && near(d1->down_bytes_per_tok, 100),
           "d1 rates %g %g %g", d1->tok_s, d1->up_bytes_per_tok, d1->down_bytes_per_tok);

    /* device 2: TBT {0.05,0.06,0.10}: mean 0.07, p50 rank 2, p90 rank ceil(2.7)=3, p99 rank 3 */
    const trace_summary *d2 = &r.rows[2];
    EXPECT(d2->n_tokens == 4 && d2->n_tbt == 3, "d2 counts %u %u", d2->n_tokens, d2->n_tbt);
    ROW_STATS(*d2, 0.3, 0.3, 0.3, 0.3, 0.07, 0.06, 0.10, 0.10);
    EXPECT(near(d2->tok_s, 2.0) && near(d2->up_bytes_per_tok, 200), "d2 rates %g %g", d2->tok_s,
           d2->up_bytes_per_tok);

    /* device 3: finished with no tokens: tok/s 0, bytes per token and latencies undefined */
    const trace_summary *d3 = &r.rows[3];
    EXPECT(d3->n_tokens == 0 && d3->n_tbt == 0, "d3 counts");
    ROW_STATS(*d3, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN);
    EXPECT(d3->tok_s == 0.0 && isnan(d3->up_bytes_per_tok) && isnan(d3->down_bytes_per_tok),
           "d3 rates %g %g %g", d3->tok_s, d3->up_bytes_per_tok, d3->down_bytes_per_tok);

    /* overall: TTFT {0.3,0.5,0.7}; TBT {0.01..0.06,0.10} (7): p50 rank 4, p90 rank ceil(6.3)=7 */
    const trace_summary *all = &r.rows[4];
    EXPECT(all->n_tokens == 10 && all->n_tbt == 7, "overall counts %u %u", all->n_tokens, all->n_tbt);
    ROW_STATS(*all, 0.5, 0.5, 0.7, 0.7, 0.31 / 7, 0.04, 0.10, 0.10);
    /* 10 tokens over [0.5, 4.0]; 2100 up and 1000 down bytes */
    EXPECT(near(all->tok_s, 10 / 3.5) && near(all->up_bytes_per_tok, 210) && near(all->down_bytes_per_tok, 100),
           "overall rates %g %g %g", all->tok_s, all->up_bytes_per_tok, all->down_bytes_per_tok);

    /* batches {3,1,3,2,1,3}: 1:2 2:1 3:3, mean 13/6 */
    EXPECT(r.n_hist == 3, "n_hist %d", r.n_hist);
    if (r.n_hist == 3) {
        EXPECT(r.hist[0].batch_tokens == 1 && r.hist[0].count == 2, "hist[0]");
        EXPECT(r.hist[1].batch_tokens == 2 && r.hist[1].count == 1, "hist[1]");
        EXPECT(r.hist[2].batch_tokens == 3 && r.hist[2].count == 3, "hist[2]");
    }
    EXPECT(near(r.batch_mean, 13.0 / 6.0), "batch_mean %g", r.batch_mean);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    report_print(&r, f);
    fclose(f);
    EXPECT(strstr(buf, "overall") && strstr(buf, "500.00") && strstr(buf, "mean batch: 2.17"),
           "report_print output:\n%s", buf);
    EXPECT(strstr(buf, " 1:2 2:1 3:3"), "histogram line:\n%s", buf);
    free(buf);
    report_free(&r);
    EXPECT(r.rows == NULL && r.hist == NULL && r.n_rows == 0, "report_free clears");
}

/* p99 where it differs from the maximum: 200 TBT samples 0.001..0.200 in shuffled order give
 * p50 = rank 100, p90 = rank 180, p99 = rank 198. */
static void test_large_n(void) {
    enum { N = 201 };
    trace_token tok[N];
    for (uint32_t i = 0; i < N; i++) tok[i] = tk(0, i, i == 0 ? 1.0 : 0.001 * i);
    for (int i = N - 1; i > 1; i--) { /* Fisher-Yates */
        int j = (int)(t_uniform() * (i + 1));
        trace_token t = tok[i];
        tok[i] = tok[j];
        tok[j] = t;
    }
    trace_device dev = dv(0, N, 0.0, 2.01, N * 10, N * 20);
    report r;
    char err[HAT_ERRLEN] = "";
    int rc = report_build(&r, 1, tok, N, &dev, 1, NULL, 0, err, sizeof err);
    EXPECT(rc == HAT_OK, "report_build: %s", err);
    if (rc != HAT_OK) return;
    ROW_STATS(r.rows[0], 1.0, 1.0, 1.0, 1.0, 0.1005, 0.100, 0.180, 0.198);
    ROW_STATS(r.rows[1], 1.0, 1.0, 1.0, 1.0, 0.1005, 0.100, 0.180, 0.198);
    EXPECT(near(r.rows[0].tok_s, 100.0) && near(r.rows[0].down_bytes_per_tok, 20.0), "large rates");
    EXPECT(r.n_hist == 0 && isnan(r.batch_mean), "no batches: n_hist %d mean %g", r.n_hist, r.batch_mean);
    report_free(&r);
}

/* a lost device (its cloud rank's row: lost = 1, no figures): its 3 tokens are samples of its own
 * row and the pooled ones; tok_s and bytes per token leave it out; overall lost = 1 */
static void test_lost(void) {
    const trace_token tok[] = { tk(0, 0, 0.5), tk(0, 1, 0.1), tk(1, 0, 0.3), tk(1, 1, 0.2), tk(1, 2, 0.4) };
    trace_device dev[] = { dv(0, 2, 1.0, 3.0, 200, 100), dv(1, 0, 0.0, 9.0, 0, 0) };
    dev[1].lost = 1;
    report r;
    char err[HAT_ERRLEN] = "";
    int rc = report_build(&r, 2, tok, 5, dev, 2, NULL, 0, err, sizeof err);
    EXPECT(rc == HAT_OK, "report_build with a lost device: %s", err);
    if (rc != HAT_OK) return;
    EXPECT(r.rows[0].lost == 0 && r.rows[1].lost == 1 && r.rows[2].lost == 1, "lost %u %u %u", r.rows[0].lost,
           r.rows[1].lost, r.rows[2].lost);
    EXPECT(r.rows[1].n_tokens == 3 && near(r.rows[1].ttft_mean, 0.3) && near(r.rows[1].tbt_mean, 0.3),
           "lost device's samples: %u tokens, ttft %g, tbt %g", r.rows[1].n_tokens, r.rows[1].ttft_mean, r.rows[1].tbt_mean);
    EXPECT(isnan(r.rows[1].tok_s) && isnan(r.rows[1].up_bytes_per_tok), "lost device's figures %g %g", r.rows[1].tok_s,
           r.rows[1].up_bytes_per_tok);
    EXPECT(r.rows[2].n_tokens == 5 && r.rows[2].n_tbt == 3 && near(r.rows[2].ttft_mean, 0.4),
           "overall samples: %u tokens, %u tbt, ttft %g", r.rows[2].n_tokens, r.rows[2].n_tbt, r.rows[2].ttft_mean);
    EXPECT(near(r.rows[2].tok_s, 1.0) && near(r.rows[2].up_bytes_per_tok, 100.0),
           "overall figures from the finished device only: tok_s %g, up %g", r.rows[2].tok_s, r.rows[2].up_bytes_per_tok);
    report_free(&r);
}

static void expect_error(const char *what, int n_devices, const trace_token *tok, size_t n_tok,
                         const trace_device *dev, size_t n_dev, const char *needle) {
    report r;
    char err[HAT_ERRLEN] = "";
    int rc = report_build(&r, n_devices, tok, n_tok, dev, n_dev, NULL, 0, err, sizeof err);
    EXPECT(rc != HAT_OK, "%s: accepted", what);
    EXPECT(strstr(err, needle) != NULL, "%s: message '%s' lacks '%s'", what, err, needle);
    EXPECT(r.rows == NULL && r.hist == NULL, "%s: report not left empty", what);
    report_free(&r);
}

static void test_errors(void) {
    const trace_device dev2[] = { dv(0, 2, 0, 1, 0, 0), dv(1, 1, 0, 1, 0, 0) };
    const trace_token out_of_range[] = { tk(0, 0, 0.1), tk(2, 0, 0.1) };
    expect_error("token device out of range", 2, out_of_range, 2, dev2, 2, "out of range");
    const trace_token dup[] = { tk(0, 0, 0.1), tk(1, 0, 0.1), tk(0, 1, 0.1), tk(0, 1, 0.2) };
    expect_error("duplicate token index", 2, dup, 4, dev2, 2, "two tokens with index 1");
    const trace_token ok[] = { tk(0, 0, 0.1), tk(1, 0, 0.1) };
    expect_error("tokens without device row", 2, ok, 2, dev2, 1, "device 1 has tokens but no device record");
    const trace_device bad_dev[] = { dv(0, 1, 0, 1, 0, 0), dv(5, 1, 0, 1, 0, 0) };
    expect_error("device row out of range", 2, ok, 2, bad_dev, 2, "device 5, out of range");
    const trace_device dup_dev[] = { dv(0, 1, 0, 1, 0, 0), dv(0, 1, 0, 1, 0, 0) };
    expect_error("duplicate device row", 2, ok, 2, dup_dev, 2, "duplicate device row");
    expect_error("negative n_devices", -1, NULL, 0, NULL, 0, "n_devices");

    /* empty run: only NaN statistics, no error */
    report r;
    char err[HAT_ERRLEN] = "";
    EXPECT(report_build(&r, 0, NULL, 0, NULL, 0, NULL, 0, err, sizeof err) == HAT_OK, "empty: %s", err);
    EXPECT(r.n_rows == 1 && r.rows[0].device == -1 && isnan(r.rows[0].tok_s) && isnan(r.rows[0].ttft_mean),
           "empty report");
    report_free(&r);
}

int main(void) {
    test_stats();
    test_large_n();
    test_lost();
    test_errors();
    return test_summary();
}
