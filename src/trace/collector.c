/* collector.c — see collector.h. */
#include "trace/collector.h"
#include "core/common.h"
#include "net/emul.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_DONE = 100 };

void collector_init(collector *c, int is_root, trace_file *tf, size_t cap) {
    memset(c, 0, sizeof *c);
    c->is_root = is_root;
    c->tf = tf;
    c->cap = cap;
    for (int t = 0; t < TRACE_N_TABLES; t++)
        for (int k = 0; k < 2; k++) c->buf[t][k] = xmalloc(cap * trace_record_size((trace_table)t));
}

static void keep(collector *c, int t, const void *recs, size_t n) {
    const size_t rs = trace_record_size((trace_table)t);
    if (c->n_all[t] + n > c->cap_all[t]) {
        size_t cap = c->cap_all[t] ? c->cap_all[t] : 1024;
        while (cap < c->n_all[t] + n) cap *= 2;
        c->all[t] = realloc(c->all[t], cap * rs);
        CHECK(c->all[t], "out of memory keeping %zu trace records", cap);
        c->cap_all[t] = cap;
    }
    memcpy(c->all[t] + c->n_all[t] * rs, recs, n * rs);
    c->n_all[t] += n;
    if (c->tf) {
        int rc = trace_append(c->tf, (trace_table)t, recs, n);
        CHECK(rc == 0, "trace: appending %zu %s records failed", n, trace_table_name((trace_table)t));
    }
}

static void ship(collector *c, int t) {
    if (!c->n[t]) return;
    const int k = c->cur[t];
    if (c->is_root) {
        keep(c, t, c->buf[t][k], c->n[t]);
    } else {
        comm_meas_isend(&c->req[t][k], c->buf[t][k], c->n[t] * trace_record_size((trace_table)t), t);
        c->busy[t][k] = 1;
        const int other = 1 - k;
        if (c->busy[t][other]) { comm_meas_wait(&c->req[t][other]); c->busy[t][other] = 0; }
        c->cur[t] = other;
    }
    c->n[t] = 0;
}

void collector_add(collector *c, trace_table t, const void *rec) {
    const double t0 = c->is_root ? hat_now() : 0;
    const size_t rs = trace_record_size(t);
    memcpy(c->buf[t][c->cur[t]] + c->n[t] * rs, rec, rs);
    if (++c->n[t] == c->cap) ship(c, t);
    if (!c->is_root) return;
    collector_cost *k = &c->cost;
    k->pass_s += hat_now() - t0;
    if (t != TRACE_BATCHES) return;
    k->passes++;
    k->sum_s += k->pass_s;
    if (k->pass_s > k->max_s) k->max_s = k->pass_s;
    k->pass_s = 0;
}

void collector_finish(collector *c) {
    for (int t = 0; t < TRACE_N_TABLES; t++) ship(c, t);
    if (c->is_root) return;
    for (int t = 0; t < TRACE_N_TABLES; t++)
        for (int k = 0; k < 2; k++)
            if (c->busy[t][k]) { comm_meas_wait(&c->req[t][k]); c->busy[t][k] = 0; }
    comm_meas_req r = {0};
    static const char done = 1;
    comm_meas_isend(&r, &done, 1, TAG_DONE);
    comm_meas_wait(&r);
    free(r.req);
}

static int poll_once(collector *c) {
    int got = 0;
    size_t n;
    int tag, src;
    while (comm_meas_poll(&c->rx, &c->rx_cap, &n, &tag, &src)) {
        got++;
        if (tag == TAG_DONE) { c->ranks_done++; continue; }
        CHECK(tag >= 0 && tag < TRACE_N_TABLES, "measurement message with unknown tag %d from rank %d", tag, src);
        const size_t rs = trace_record_size((trace_table)tag);
        CHECK(n % rs == 0, "measurement message of %zu bytes from rank %d is not a whole number of %s records", n, src,
              trace_table_name((trace_table)tag));
        keep(c, tag, c->rx, n / rs);
    }
    return got;
}

int collector_poll(collector *c) {
    const double t0 = hat_now();
    const int got = poll_once(c);
    c->cost.pass_s += hat_now() - t0;
    return got;
}

void collector_wait_all(collector *c, int n_ranks) {
    while (c->ranks_done < n_ranks - 1) {
        if (!poll_once(c)) emul_sleep_until(hat_now() + 200e-6, hat_now);
    }
}

void collector_salvage(collector *c) {
    if (!c->is_root || !c->tf) return;
    for (int t = 0; t < TRACE_N_TABLES; t++)
        if (c->n[t]) { trace_append(c->tf, (trace_table)t, c->buf[t][c->cur[t]], c->n[t]); c->n[t] = 0; }
}

void collector_free(collector *c) {
    for (int t = 0; t < TRACE_N_TABLES; t++) {
        for (int k = 0; k < 2; k++) { free(c->buf[t][k]); free(c->req[t][k].req); }
        free(c->all[t]);
    }
    free(c->rx);
    memset(c, 0, sizeof *c);
}

void collector_cost_describe(const collector *c, char *buf, size_t len) {
    const collector_cost *k = &c->cost;
    snprintf(buf, len, "passes %llu mean_us %.2f max_us %.1f total_ms %.3f", (unsigned long long)k->passes,
             k->passes ? k->sum_s / (double)k->passes * 1e6 : 0.0, k->max_s * 1e6, k->sum_s * 1e3);
}
