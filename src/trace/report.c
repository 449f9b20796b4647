/* report.c — end-of-run summary from the trace records (see report.h).
 *
 * Definitions (analysis/check_trace.py recomputes /summary with exactly these):
 *  - a device's TTFT sample is latency_s of its token with index 0; its TBT samples are
 *    latency_s of its tokens with index >= 1; n_tokens counts its token records;
 *  - mean is the plain mean; pXX is the nearest rank: the sample of 1-based rank
 *    ceil(XX * n / 100) in ascending order, computed in integers so no rounding moves it;
 *  - tok_s = gen_tokens / (t_done - t_request); bytes per token = up/down bytes / gen_tokens,
 *    all from the device's trace_device row;
 *  - overall (device = -1): pooled TTFT samples (one per device that has a token 0) and pooled
 *    TBT samples; tok_s = sum gen_tokens / (max t_done - min t_request) over the device rows;
 *    bytes per token = summed bytes / summed gen_tokens;
 *  - a lost device (lost = 1 in its row, written by its cloud rank): its tokens count as samples
 *    (its own row and the pooled ones), its record's figures do not: tok_s, bytes per token,
 *    rounds, acceptance are NaN/0 in its row and leave it out of the overall ones; overall
 *    lost = how many devices were lost;
 *  - a statistic without samples (or with a zero/negative denominator) is NaN.
 */
#include "trace/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* token records of one device, ordered by index */
static int cmp_token(const void *a, const void *b) {
    const trace_token *x = a, *y = b;
    if (x->device != y->device) return (x->device > y->device) - (x->device < y->device);
    return (x->index > y->index) - (x->index < y->index);
}

/* Nearest-rank percentile of n ascending samples; p in percent (integer). */
static double pct(const double *s, size_t n, unsigned p) {
    if (n == 0) return NAN;
    size_t rank = ((size_t)p * n + 99) / 100; /* ceil(p * n / 100) */
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return s[rank - 1];
}

static double mean(const double *s, size_t n) {
    if (n == 0) return NAN;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += s[i];
    return sum / (double)n;
}

static double ratio(double num, double den) { return den > 0.0 ? num / den : NAN; }

/* Sorts the samples in place and fills mean/p50/p90/p99. */
static void stats(double *s, size_t n, double *m, double *p50, double *p90, double *p99) {
    qsort(s, n, sizeof *s, cmp_double);
    *m = mean(s, n);
    *p50 = pct(s, n, 50);
    *p90 = pct(s, n, 90);
    *p99 = pct(s, n, 99);
}

/* device index -> its row in dev (-1: none), every device index checked; NULL on an error */
static long *device_rows(uint32_t nd, const trace_token *tok, size_t n_tok, const trace_device *dev, size_t n_dev,
                         char *err, size_t errlen) {
    long *row_of = xmalloc((nd ? nd : 1) * sizeof *row_of);
    for (uint32_t d = 0; d < nd; d++) row_of[d] = -1;
    int rc = HAT_OK;
    for (size_t i = 0; i < n_dev && rc == HAT_OK; i++) {
        uint32_t d = dev[i].device;
        if (d >= nd)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "report: device row %zu has device %u, out of range (%u devices)",
                         i, d, nd);
        else if (row_of[d] >= 0)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "report: duplicate device row for device %u", d);
        else
            row_of[d] = (long)i;
    }
    for (size_t i = 0; i < n_tok && rc == HAT_OK; i++)
        if (tok[i].device >= nd)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "report: token record %zu has device %u, out of range (%u devices)",
                         i, tok[i].device, nd);
    if (rc != HAT_OK) { free(row_of); return NULL; }
    return row_of;
}

/* a sorted copy of the tokens (each device's one run, by index), checked; NULL on an error */
static trace_token *sorted_tokens(const trace_token *tok, size_t n_tok, const long *row_of, char *err, size_t errlen) {
    trace_token *st = xmalloc((n_tok ? n_tok : 1) * sizeof *st);
    if (n_tok) memcpy(st, tok, n_tok * sizeof *st);
    qsort(st, n_tok, sizeof *st, cmp_token);
    int rc = HAT_OK;
    for (size_t i = 1; i < n_tok && rc == HAT_OK; i++)
        if (st[i].device == st[i - 1].device && st[i].index == st[i - 1].index)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "report: device %u has two tokens with index %u",
                         st[i].device, st[i].index);
    for (size_t i = 0; i < n_tok && rc == HAT_OK; i++)
        if (row_of[st[i].device] < 0)
            rc = hat_err(err, errlen, HAT_ERR_ARG, "report: device %u has tokens but no device record",
                         st[i].device);
    if (rc != HAT_OK) { free(st); return NULL; }
    return st;
}

/* what the overall row pools over the devices */
typedef struct {
    double *ttft, *tbt;          /* every device's TTFT sample; every TBT sample */
    size_t n_ttft, n_tbt;
    double gen, up, down, t_req_min, t_done_max, drafted, accepted, round_tok;
    uint32_t rounds, n_live, n_lost;   /* device rows of finished devices; of lost ones */
} pool;

/* the device's own figures from its record, added to the pool */
static void device_figures(trace_summary *row, const trace_device *dv, pool *p) {
    row->rounds = dv->rounds;
    row->accept_rate = ratio((double)dv->accepted, (double)dv->drafted);
    row->tokens_per_round = dv->gen_tokens ? ratio((double)dv->gen_tokens - 1, (double)dv->rounds) : NAN;
    p->rounds += dv->rounds;
    p->drafted += (double)dv->drafted;
    p->accepted += (double)dv->accepted;
    p->round_tok += dv->gen_tokens ? (double)dv->gen_tokens - 1 : 0;
    double gen = (double)dv->gen_tokens;
    row->tok_s = ratio(gen, dv->t_done - dv->t_request);
    row->up_bytes_per_tok = ratio((double)dv->up_bytes, gen);
    row->down_bytes_per_tok = ratio((double)dv->down_bytes, gen);
    p->gen += gen;
    p->n_live++;
    p->up += (double)dv->up_bytes;
    p->down += (double)dv->down_bytes;
    if (dv->t_request < p->t_req_min) p->t_req_min = dv->t_request;
    if (dv->t_done > p->t_done_max) p->t_done_max = dv->t_done;
}

/* device d's row from its run of tokens starting at st[*i] (advanced past it) and its record */
static void device_row(trace_summary *row, uint32_t d, const trace_token *st, size_t n_tok, size_t *i,
                       const trace_device *dv, pool *p) {
    row->device = (int32_t)d;
    /* this device's run in st: TTFT sample first (index 0 sorts first), then TBT samples */
    size_t begin = *i, n_ttft = 0;
    double ttft = NAN;
    double *tbt = p->tbt + p->n_tbt;
    for (; *i < n_tok && st[*i].device == d; (*i)++) {
        if (st[*i].index == 0) {
            ttft = st[*i].latency_s;
            n_ttft = 1;
        } else {
            tbt[row->n_tbt++] = st[*i].latency_s;
        }
    }
    row->n_tokens = (uint32_t)(*i - begin);
    row->ttft_mean = row->ttft_p50 = row->ttft_p90 = row->ttft_p99 = ttft;
    if (n_ttft) p->ttft[p->n_ttft++] = ttft;
    /* sorting the device's slice in place keeps the pooled array a plain sample set */
    stats(tbt, row->n_tbt, &row->tbt_mean, &row->tbt_p50, &row->tbt_p90, &row->tbt_p99);
    p->n_tbt += row->n_tbt;
    row->tok_s = row->up_bytes_per_tok = row->down_bytes_per_tok = NAN;
    row->accept_rate = row->tokens_per_round = NAN;
    if (dv && dv->lost) {   /* its tokens are samples; its record holds no figures */
        row->lost = 1;
        p->n_lost++;
    } else if (dv) {
        device_figures(row, dv, p);
    }
}

static void overall_row(trace_summary *all, size_t n_tok, pool *p) {
    all->device = -1;
    all->n_tokens = (uint32_t)n_tok;
    all->n_tbt = (uint32_t)p->n_tbt;
    stats(p->ttft, p->n_ttft, &all->ttft_mean, &all->ttft_p50, &all->ttft_p90, &all->ttft_p99);
    stats(p->tbt, p->n_tbt, &all->tbt_mean, &all->tbt_p50, &all->tbt_p90, &all->tbt_p99);
    all->tok_s = p->n_live ? ratio(p->gen, p->t_done_max - p->t_req_min) : NAN;
    all->lost = p->n_lost;
    all->up_bytes_per_tok = ratio(p->up, p->gen);
    all->down_bytes_per_tok = ratio(p->down, p->gen);
    all->rounds = p->rounds;
    all->accept_rate = ratio(p->accepted, p->drafted);
    all->tokens_per_round = ratio(p->round_tok, (double)p->rounds);
}

/* batch-size histogram: runs of equal n_tok in a sorted copy */
static void batch_histogram(report *r, const trace_batch *bat, size_t n_bat) {
    uint32_t *bs = xmalloc((n_bat ? n_bat : 1) * sizeof *bs);
    double bsum = 0.0;
    for (size_t b = 0; b < n_bat; b++) {
        bs[b] = bat[b].n_tok;
        bsum += (double)bat[b].n_tok;
    }
    qsort(bs, n_bat, sizeof *bs, cmp_u32);
    r->hist = xcalloc(n_bat ? n_bat : 1, sizeof *r->hist);
    for (size_t b = 0; b < n_bat; b++) {
        if (r->n_hist == 0 || r->hist[r->n_hist - 1].batch_tokens != bs[b])
            r->hist[r->n_hist++].batch_tokens = bs[b];
        r->hist[r->n_hist - 1].count++;
    }
    r->batch_mean = n_bat ? bsum / (double)n_bat : NAN;
    free(bs);
}

int report_build(report *r, int n_devices, const trace_token *tok, size_t n_tok,
                 const trace_device *dev, size_t n_dev, const trace_batch *bat, size_t n_bat,
                 char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (n_devices < 0) return hat_err(err, errlen, HAT_ERR_ARG, "report: n_devices %d < 0", n_devices);
    if ((n_tok && !tok) || (n_dev && !dev) || (n_bat && !bat))
        return hat_err(err, errlen, HAT_ERR_ARG, "report: NULL record array with a non-zero count");
    const uint32_t nd = (uint32_t)n_devices;
    long *row_of = device_rows(nd, tok, n_tok, dev, n_dev, err, errlen);
    if (!row_of) return HAT_ERR_ARG;
    trace_token *st = sorted_tokens(tok, n_tok, row_of, err, errlen);
    if (!st) { free(row_of); return HAT_ERR_ARG; }
    r->n_rows = n_devices + 1;
    r->rows = xcalloc((size_t)r->n_rows, sizeof *r->rows);
    pool p = {.ttft = xmalloc((nd ? nd : 1) * sizeof(double)), .tbt = xmalloc((n_tok ? n_tok : 1) * sizeof(double)),
              .t_req_min = INFINITY, .t_done_max = -INFINITY};
    size_t i = 0;
    for (uint32_t d = 0; d < nd; d++)
        device_row(&r->rows[d], d, st, n_tok, &i, row_of[d] >= 0 ? &dev[row_of[d]] : NULL, &p);
    overall_row(&r->rows[nd], n_tok, &p);
    batch_histogram(r, bat, n_bat);
    free(p.tbt);
    free(p.ttft);
    free(st);
    free(row_of);
    return HAT_OK;
}

/* value * scale with the given decimals in a field of width w; "-" for NaN */
static void put(FILE *f, int w, int prec, double v) {
    if (isnan(v)) fprintf(f, " %*s", w, "-");
    else fprintf(f, " %*.*f", w, prec, v);
}

void report_print(const report *r, FILE *f) {
    if (!r || !r->rows) return;
    fprintf(f, "%-7s %7s %9s %9s %9s %9s %7s %9s %9s %9s %9s %9s %10s %10s %7s %7s %7s\n", "device", "tokens",
            "ttft_ms", "p50", "p90", "p99", "n_tbt", "tbt_ms", "p50", "p90", "p99", "tok/s",
            "up_B/tok", "down_B/tok", "rounds", "accept", "tok/rnd");
    for (int i = 0; i < r->n_rows; i++) {
        const trace_summary *row = &r->rows[i];
        if (row->device < 0) fprintf(f, "%-7s", "overall");
        else fprintf(f, "%-7d", (int)row->device);
        fprintf(f, " %7u", row->n_tokens);
        put(f, 9, 2, row->ttft_mean * 1e3);
        put(f, 9, 2, row->ttft_p50 * 1e3);
        put(f, 9, 2, row->ttft_p90 * 1e3);
        put(f, 9, 2, row->ttft_p99 * 1e3);
        fprintf(f, " %7u", row->n_tbt);
        put(f, 9, 2, row->tbt_mean * 1e3);
        put(f, 9, 2, row->tbt_p50 * 1e3);
        put(f, 9, 2, row->tbt_p90 * 1e3);
        put(f, 9, 2, row->tbt_p99 * 1e3);
        put(f, 9, 2, row->tok_s);
        put(f, 10, 1, row->up_bytes_per_tok);
        put(f, 10, 1, row->down_bytes_per_tok);
        fprintf(f, " %7u", row->rounds);
        put(f, 7, 3, row->accept_rate);
        put(f, 7, 2, row->tokens_per_round);
        fputc('\n', f);
    }
    const trace_summary *all = &r->rows[r->n_rows - 1];
    if (all->lost) {
        fprintf(f, "lost device%s (closed after [run] peer_timeout_s of silence; the tokens they had are counted):",
                all->lost > 1 ? "s" : "");
        for (int i = 0; i < r->n_rows - 1; i++)
            if (r->rows[i].lost) fprintf(f, " %d", (int)r->rows[i].device);
        fputc('\n', f);
    }
    fprintf(f, "cloud batch sizes (tokens per forward pass: passes):");
    if (r->n_hist == 0) fprintf(f, " none");
    for (int i = 0; i < r->n_hist; i++)
        fprintf(f, " %u:%llu", r->hist[i].batch_tokens, (unsigned long long)r->hist[i].count);
    fputc('\n', f);
    if (isnan(r->batch_mean)) fprintf(f, "mean batch: -\n");
    else fprintf(f, "mean batch: %.2f tokens\n", r->batch_mean);
}

void report_free(report *r) {
    if (!r) return;
    free(r->rows);
    free(r->hist);
    memset(r, 0, sizeof *r);
}
