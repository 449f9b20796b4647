/* test_trace.c — the HDF5 trace writer: schema (field names, chunked extendible datasets),
 * appends in several chunks, long and rewritten attributes, the report tables, the overwrite
 * rule, the abort path, and a writer killed with SIGKILL leaving a readable file.
 *
 * usage: test_trace [--keep DIR]
 *   --keep writes DIR/new/complete.h5 (a consistent synthetic run, for analysis/check_trace.py)
 *   and DIR/killed.h5 (SIGKILLed writer) and leaves them; otherwise a temporary directory is
 *   used and removed.
 */
#define _GNU_SOURCE
#include <hdf5.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/common.h"
#include "trace/report.h"
#include "support/testutil.h"
#include "trace/trace.h"

/* ---- expected schema: written independently of trace.c -------------------------------- */

typedef struct {
    const char *name;
    size_t off, size;
} tfield;
#define TF(S, m) { #m, offsetof(S, m), sizeof(((S *)0)->m) }
#define NF(a) (sizeof(a) / sizeof((a)[0]))

static const tfield token_f[] = {
    TF(trace_token, device), TF(trace_token, index), TF(trace_token, step),
    TF(trace_token, token), TF(trace_token, t_emit), TF(trace_token, latency_s),
};
static const tfield step_f[] = {
    TF(trace_step, device), TF(trace_step, seq), TF(trace_step, kind), TF(trace_step, pos0),
    TF(trace_step, n_tok), TF(trace_step, cloud_rank), TF(trace_step, batch_tokens),
    TF(trace_step, batch_devices), TF(trace_step, up_bytes), TF(trace_step, down_bytes),
    TF(trace_step, t_start), TF(trace_step, dev_in_s), TF(trace_step, dev_in_pred_s),
    TF(trace_step, t_up_send), TF(trace_step, up_model_s), TF(trace_step, t_cloud_ready),
    TF(trace_step, cloud_queue_s), TF(trace_step, cloud_compute_s), TF(trace_step, t_down_send),
    TF(trace_step, down_model_s), TF(trace_step, t_down_ready), TF(trace_step, dev_out_s),
    TF(trace_step, dev_out_pred_s), TF(trace_step, t_end), TF(trace_step, gamma),
    TF(trace_step, accepted), TF(trace_step, emitted), TF(trace_step, t_up_first),
    TF(trace_step, draft_s), TF(trace_step, draft_pred_s), TF(trace_step, plan_done_t),
};
static const tfield batch_f[] = {
    TF(trace_batch, cloud_rank), TF(trace_batch, batch), TF(trace_batch, n_tok),
    TF(trace_batch, n_dev), TF(trace_batch, t_start), TF(trace_batch, t_end), TF(trace_batch, group_s),
    TF(trace_batch, ctx), TF(trace_batch, pred_s), TF(trace_batch, cost_c0), TF(trace_batch, cost_c1),
    TF(trace_batch, cost_c2), TF(trace_batch, cost_c3), TF(trace_batch, fit_rms_rel), TF(trace_batch, fit_samples), TF(trace_batch, fit_clamped),
    TF(trace_batch, real_s), TF(trace_batch, profile_s), TF(trace_batch, distorted),
};
static const tfield device_f[] = {
    TF(trace_device, device), TF(trace_device, rank), TF(trace_device, cloud_rank),
    TF(trace_device, prompt_tokens), TF(trace_device, gen_tokens), TF(trace_device, n_steps),
    TF(trace_device, profile_exceeded), TF(trace_device, rounds), TF(trace_device, drafted),
    TF(trace_device, accepted), TF(trace_device, t_request), TF(trace_device, t_first),
    TF(trace_device, t_done), TF(trace_device, up_bytes), TF(trace_device, down_bytes),
    TF(trace_device, chunking), TF(trace_device, chunks), TF(trace_device, stall_bound), TF(trace_device, lost),
    TF(trace_device, ttft_pred_s),
};
static const tfield row_f[] = {
    TF(trace_summary, device), TF(trace_summary, n_tokens), TF(trace_summary, n_tbt),
    TF(trace_summary, ttft_mean), TF(trace_summary, ttft_p50), TF(trace_summary, ttft_p90),
    TF(trace_summary, ttft_p99), TF(trace_summary, tbt_mean), TF(trace_summary, tbt_p50),
    TF(trace_summary, tbt_p90), TF(trace_summary, tbt_p99), TF(trace_summary, tok_s),
    TF(trace_summary, up_bytes_per_tok), TF(trace_summary, down_bytes_per_tok), TF(trace_summary, rounds),
    TF(trace_summary, lost), TF(trace_summary, accept_rate), TF(trace_summary, tokens_per_round),
};
static const tfield hist_f[] = { TF(trace_hist, batch_tokens), TF(trace_hist, count) };

/* Checks one dataset: compound with exactly these members in this order, 1-D, chunked,
 * unlimited, n rows whose every field equals the expected C records. */
static void check_table(hid_t file, const char *path, const tfield *f, size_t nf, const void *expect,
                        size_t rec_size, size_t n) {
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    EXPECT(ds >= 0, "%s: missing", path);
    if (ds < 0) return;
    hid_t sp = H5Dget_space(ds);
    hsize_t dims = 0, maxdims = 0;
    EXPECT(H5Sget_simple_extent_ndims(sp) == 1, "%s: not 1-D", path);
    H5Sget_simple_extent_dims(sp, &dims, &maxdims);
    H5Sclose(sp);
    EXPECT(dims == n, "%s: %llu rows, expected %zu", path, (unsigned long long)dims, n);
    EXPECT(maxdims == H5S_UNLIMITED, "%s: not extendible", path);
    hid_t dcpl = H5Dget_create_plist(ds);
    EXPECT(H5Pget_layout(dcpl) == H5D_CHUNKED, "%s: not chunked", path);
    H5Pclose(dcpl);

    hid_t ft = H5Dget_type(ds);
    EXPECT(H5Tget_class(ft) == H5T_COMPOUND, "%s: not compound", path);
    hid_t nt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
    int nm = H5Tget_nmembers(nt);
    EXPECT(nm == (int)nf, "%s: %d members, expected %zu", path, nm, nf);
    size_t poff[32] = { 0 };
    int ok = nm == (int)nf && nf <= 32;
    for (int i = 0; ok && i < nm; i++) {
        char *name = H5Tget_member_name(nt, (unsigned)i);
        hid_t mt = H5Tget_member_type(nt, (unsigned)i);
        EXPECT(name && strcmp(name, f[i].name) == 0, "%s: member %d is %s, expected %s", path, i,
               name ? name : "?", f[i].name);
        EXPECT(H5Tget_size(mt) == f[i].size, "%s.%s: size %zu", path, f[i].name, H5Tget_size(mt));
        poff[i] = H5Tget_member_offset(nt, (unsigned)i);
        H5Tclose(mt);
        H5free_memory(name);
    }
    if (ok && n > 0) {
        size_t psize = H5Tget_size(nt);
        unsigned char *buf = xcalloc(n, psize);
        EXPECT(H5Dread(ds, nt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "%s: read failed", path);
        size_t bad = 0;
        for (size_t r = 0; r < n; r++)
            for (size_t i = 0; i < nf; i++)
                if (memcmp(buf + r * psize + poff[i], (const unsigned char *)expect + r * rec_size + f[i].off,
                           f[i].size) != 0)
                    bad++;
        EXPECT(bad == 0, "%s: %zu fields differ from what was appended", path, bad);
        free(buf);
    }
    H5Tclose(nt);
    H5Tclose(ft);
    H5Dclose(ds);
}

static char *read_attr_str(hid_t file, const char *name) {
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    if (a < 0) return NULL;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *s = NULL, *copy = NULL;
    if (H5Aread(a, t, &s) >= 0 && s) {
        copy = xmalloc(strlen(s) + 1);
        strcpy(copy, s);
        H5free_memory(s);
    }
    H5Tclose(t);
    H5Aclose(a);
    return copy;
}

static int attr_str_is(hid_t file, const char *name, const char *want) {
    char *s = read_attr_str(file, name);
    int ok = s && strcmp(s, want) == 0;
    if (!ok) fprintf(stderr, "attribute %s = '%.80s', expected '%.80s'\n", name, s ? s : "(missing)", want);
    free(s);
    return ok;
}

static int64_t read_attr_int(hid_t file, const char *name) {
    int64_t v = -12345;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    if (a >= 0) {
        H5Aread(a, H5T_NATIVE_INT64, &v);
        H5Aclose(a);
    }
    return v;
}

/* ---- a small consistent synthetic run --------------------------------------------------- */

enum { N_DEV = 3, MAX_REC = 256 };

typedef struct {
    trace_token tok[MAX_REC];
    trace_step step[MAX_REC];
    trace_batch bat[MAX_REC];
    trace_device dev[N_DEV];
    size_t n_tok, n_step, n_bat;
} run_data;

/* Device d: prompt 10 + 3d tokens prefilled in chunks of 8, then decode steps of one token;
 * device 2 generates a single token (no TBT). Each step is its own cloud batch. */
static void make_run(run_data *r) {
    memset(r, 0, sizeof *r);
    uint32_t batch_no[2] = { 0, 0 };
    for (uint32_t d = 0; d < N_DEV; d++) {
        uint32_t prompt = 10 + 3 * d, gen = d == 2 ? 1 : 6 + d, cloud = 1 + d % 2;
        trace_device *dv = &r->dev[d];
        *dv = (trace_device){ .device = d, .rank = 3 + d, .cloud_rank = cloud, .prompt_tokens = prompt,
                              .gen_tokens = gen, .profile_exceeded = d, .t_request = 0.01 * d,
                              .chunking = d == 0 ? 2 : 1, .ttft_pred_s = d == 0 ? 0.05 : 0 };
        double t = dv->t_request, prev_emit = 0;
        uint32_t pos = 0, produced = 0;
        while (produced < gen) {
            int prefill = pos < prompt;
            uint32_t n = prefill ? (prompt - pos < 8 ? prompt - pos : 8) : 1;
            trace_step *s = &r->step[r->n_step++];
            *s = (trace_step){ .device = d, .seq = dv->n_steps++, .pos0 = pos, .n_tok = n, .cloud_rank = cloud,
                               .kind = prefill ? TRACE_STEP_PREFILL : TRACE_STEP_DECODE, .batch_tokens = n,
                               .batch_devices = 1, .up_bytes = 32 + 1152ull * n, .down_bytes = 32 + 1152ull * n };
            if (prefill) {   /* device 0 plans its chunks (chunking dynamic) */
                dv->chunks++;
                if (d == 0) s->plan_done_t = t + 0.01;
            }
            if (!prefill) {   /* a U-shape round: one token, committed */
                s->emitted = 1;
                s->t_up_first = t + 0.001;
                dv->rounds++;
            }
            s->t_start = t;
            s->dev_in_s = 0.001 * n;
            s->dev_in_pred_s = 0.0009 * n;
            s->t_up_send = s->t_start + s->dev_in_s;
            s->up_model_s = 0.002;
            s->t_cloud_ready = s->t_up_send + s->up_model_s;
            s->cloud_queue_s = 0.0005;
            s->cloud_compute_s = 0.003 + 0.0007 * ((s->seq * 7 + d) % 5); /* TBTs differ */
            s->t_down_send = s->t_cloud_ready + s->cloud_queue_s + s->cloud_compute_s;
            s->down_model_s = 0.002;
            s->t_down_ready = s->t_down_send + s->down_model_s;
            s->dev_out_s = s->dev_out_pred_s = 0.001;
            s->t_end = s->t_down_ready + s->dev_out_s;
            t = s->t_end;
            pos += n;
            dv->up_bytes += s->up_bytes;
            dv->down_bytes += s->down_bytes;
            r->bat[r->n_bat++] = (trace_batch){ .cloud_rank = cloud, .batch = batch_no[cloud - 1]++, .n_tok = n,
                                                .n_dev = 1, .t_start = s->t_cloud_ready + s->cloud_queue_s,
                                                .t_end = s->t_down_send, .ctx = n * (double)pos + n * (n + 1) / 2.0,
                                                .pred_s = 0.003 + 0.0002 * n, .cost_c0 = 0.003, .cost_c1 = 0.0002,
                                                .fit_rms_rel = 0.05, .fit_samples = 12 };
            /* a profiled pass: real compute half of it, padded to the profile's prediction */
            r->bat[r->n_bat - 1].profile_s = r->bat[r->n_bat - 1].t_end - r->bat[r->n_bat - 1].t_start;
            r->bat[r->n_bat - 1].real_s = 0.5 * r->bat[r->n_bat - 1].profile_s;
            if (pos < prompt) continue; /* a prefill chunk before the last emits nothing */
            trace_token *k = &r->tok[r->n_tok++];
            *k = (trace_token){ .device = d, .index = produced, .step = s->seq, .token = 1000 + (int32_t)produced,
                                .t_emit = s->t_end };
            k->latency_s = produced == 0 ? k->t_emit - dv->t_request : k->t_emit - prev_emit;
            if (produced == 0) dv->t_first = k->t_emit;
            prev_emit = k->t_emit;
            produced++;
        }
        dv->t_done = t;
    }
}

static char *big_config(size_t min_len) {
    size_t cap = min_len + 128, len = 0;
    char *s = xmalloc(cap);
    s[0] = '\0';
    for (int i = 0; len < min_len; i++)
        len += (size_t)snprintf(s + len, cap - len, "%skey_%03d = value %d \xc2\xb5s\n", i % 16 ? "" : "[section]\n",
                                i, i * 7);
    return s;
}

static void set_all_attrs(trace_file *tf, const char *config) {
    static const char *const str[][2] = {
        { "hat_version", "0.1.0" }, { "git_hash", "test" }, { "compiler", "GNU test" }, { "build_type", "Test" },
        { "c_flags", "-O2" }, { "features", "none" }, { "config_path", "configs/test.ini" },
        { "partition", "a=2 b=28" }, { "model_path", "models/none.gguf" }, { "model_name", "synthetic" },
        { "model_identity", "llama, 30 layers, dim 576, vocab 49152, 0 bytes" }, { "mode", "ushape" },
        { "privacy", "private: only hidden states leave the device" }, { "adapter", "none" },
    };
    for (size_t i = 0; i < NF(str); i++)
        EXPECT(trace_set_attr_str(tf, str[i][0], str[i][1]) == HAT_OK, "set %s", str[i][0]);
    EXPECT(trace_set_attr_str(tf, "config", "short first value") == HAT_OK, "set config");
    EXPECT(trace_set_attr_str(tf, "config", config) == HAT_OK, "rewrite config");
    static const char *const ints[] = { "n_ranks", "n_devices", "n_cloud", "split_a", "split_b", "n_layer" };
    const int64_t vals[] = { 5, N_DEV, 2, 2, 28, 30 };
    EXPECT(trace_set_attr_int(tf, "n_devices", -1) == HAT_OK, "set int");
    for (size_t i = 0; i < NF(ints); i++)
        EXPECT(trace_set_attr_int(tf, ints[i], vals[i]) == HAT_OK, "set %s", ints[i]);
}

/* appends n records of table t in chunks of `chunk` */
static void append_chunks(trace_file *tf, trace_table t, const void *recs, size_t n, size_t chunk) {
    const unsigned char *p = recs;
    size_t sz = trace_record_size(t);
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        EXPECT(trace_append(tf, t, p + i * sz, k) == HAT_OK, "append %s at %zu", trace_table_name(t), i);
    }
}

static void test_complete(const char *dir) {
    char path[1100];
    snprintf(path, sizeof path, "%s/new/complete.h5", dir); /* new/ does not exist yet */
    static run_data run;
    make_run(&run);
    char *config = big_config(10 * 1024);
    char err[HAT_ERRLEN] = "";

    trace_file *tf = NULL;
    int rc = trace_create(&tf, path, 0, err, sizeof err);
    EXPECT(rc == HAT_OK && tf, "trace_create %s: %s", path, err);
    if (!tf) return;
    set_all_attrs(tf, config);
    EXPECT(trace_append(tf, TRACE_TOKENS, NULL, 0) == HAT_OK, "empty append");
    append_chunks(tf, TRACE_TOKENS, run.tok, run.n_tok, 7);
    append_chunks(tf, TRACE_STEPS, run.step, run.n_step, 5);
    append_chunks(tf, TRACE_BATCHES, run.bat, run.n_bat, 11);
    append_chunks(tf, TRACE_DEVICES, run.dev, N_DEV, 1);

    report r;
    rc = report_build(&r, N_DEV, run.tok, run.n_tok, run.dev, N_DEV, run.bat, run.n_bat, err, sizeof err);
    EXPECT(rc == HAT_OK, "report_build: %s", err);
    if (rc != HAT_OK) return;
    EXPECT(trace_write_summary(tf, r.rows, r.n_rows, r.hist, r.n_hist) == HAT_OK, "write report");
    EXPECT(trace_write_summary(tf, r.rows, r.n_rows, r.hist, r.n_hist) == HAT_OK, "write report again (replaces)");
    EXPECT(trace_close(tf, "complete") == HAT_OK, "trace_close");

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0, "reopen %s", path);
    if (f >= 0) {
        check_table(f, "/tokens", token_f, NF(token_f), run.tok, sizeof(trace_token), run.n_tok);
        check_table(f, "/steps", step_f, NF(step_f), run.step, sizeof(trace_step), run.n_step);
        check_table(f, "/batches", batch_f, NF(batch_f), run.bat, sizeof(trace_batch), run.n_bat);
        check_table(f, "/devices", device_f, NF(device_f), run.dev, sizeof(trace_device), N_DEV);
        check_table(f, "/summary", row_f, NF(row_f), r.rows, sizeof(trace_summary), (size_t)r.n_rows);
        check_table(f, "/batch_hist", hist_f, NF(hist_f), r.hist, sizeof(trace_hist), (size_t)r.n_hist);
        EXPECT(attr_str_is(f, "status", "complete"), "status");
        EXPECT(attr_str_is(f, "config", config), "10 KB config attribute");
        EXPECT(attr_str_is(f, "model_name", "synthetic"), "model_name");
        char *when = read_attr_str(f, "created_utc");
        EXPECT(when && strlen(when) == 20 && when[10] == 'T' && when[19] == 'Z', "created_utc %s", when ? when : "-");
        free(when);
        EXPECT(read_attr_int(f, "n_devices") == N_DEV, "n_devices attribute");
        EXPECT(read_attr_int(f, "split_b") == 28, "split_b attribute");
        H5Fclose(f);
    }

    /* an existing file is refused without overwrite, and left alone */
    tf = NULL;
    rc = trace_create(&tf, path, 0, err, sizeof err);
    EXPECT(rc == HAT_ERR_IO && !tf, "existing file accepted without overwrite");
    EXPECT(strstr(err, "already exists") && strstr(err, "--overwrite") && strstr(err, path), "message: %s", err);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0 && attr_str_is(f, "status", "complete"), "refused create touched the file");
    if (f >= 0) H5Fclose(f);

    report_free(&r);
    free(config);
}

static void test_overwrite_and_abort(const char *dir) {
    char path[1100], bad[1200];
    snprintf(path, sizeof path, "%s/other.h5", dir);
    char err[HAT_ERRLEN] = "";
    trace_file *tf = NULL;
    EXPECT(trace_create(&tf, path, 0, err, sizeof err) == HAT_OK, "create other: %s", err);
    EXPECT(trace_close(tf, "complete") == HAT_OK, "close other");
    EXPECT(trace_create(&tf, path, 0, err, sizeof err) == HAT_ERR_IO, "second create without overwrite");
    EXPECT(trace_create(&tf, path, 1, err, sizeof err) == HAT_OK && tf, "overwrite: %s", err);
    if (!tf) return;
    trace_token tok[3] = { { .device = 0, .index = 0 }, { .device = 0, .index = 1 }, { .device = 0, .index = 2 } };
    EXPECT(trace_append(tf, TRACE_TOKENS, tok, 3) == HAT_OK, "append");
    EXPECT(trace_append(tf, TRACE_N_TABLES, tok, 3) == HAT_ERR_ARG, "bad table accepted");
    trace_close_on_abort(tf, "device 2 lost");
    trace_close_on_abort(tf, "again"); /* second abort: no effect */
    EXPECT(trace_close(tf, "complete") == HAT_OK, "trace_close after abort");
    EXPECT(trace_close(NULL, "complete") == HAT_OK, "trace_close(NULL)");

    /* the aborted overwrite kept the previous trace; its own is beside it, as <path>.partial-<pid> */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0 && attr_str_is(f, "status", "complete"), "an aborted overwrite must keep the previous trace");
    if (f >= 0) H5Fclose(f);
    char part[1200];
    snprintf(part, sizeof part, "%s.partial-%ld", path, (long)getpid());
    f = H5Fopen(part, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0, "reopen the aborted run's partial trace %s", part);
    if (f >= 0) {
        EXPECT(attr_str_is(f, "status", "failed: device 2 lost"), "abort status");
        check_table(f, "/tokens", token_f, NF(token_f), tok, sizeof(trace_token), 3);
        check_table(f, "/steps", step_f, NF(step_f), NULL, sizeof(trace_step), 0);
        check_table(f, "/summary", row_f, NF(row_f), NULL, sizeof(trace_summary), 0);
        H5Fclose(f);
    }
    remove(part);
    /* an aborted run where no trace was: its failed trace is published at the path */
    remove(path);
    EXPECT(trace_create(&tf, path, 0, err, sizeof err) == HAT_OK, "create fresh: %s", err);
    trace_close_on_abort(tf, "interrupted");
    EXPECT(trace_close(tf, NULL) == HAT_OK, "close after abort");
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0 && attr_str_is(f, "status", "failed: interrupted"), "an aborted fresh run's trace at its path");
    if (f >= 0) H5Fclose(f);
    EXPECT(access(part, F_OK) != 0, "no partial file left behind once published");

    /* a path under a regular file cannot be created: an I/O error naming the path */
    snprintf(bad, sizeof bad, "%s/x.h5", path);
    int rc = trace_create(&tf, bad, 1, err, sizeof err);
    EXPECT(rc == HAT_ERR_IO && strstr(err, bad), "create under a file: rc %d, %s", rc, err);
    EXPECT(trace_create(&tf, "", 1, err, sizeof err) == HAT_ERR_ARG, "empty path");
    EXPECT(trace_create(&tf, dir, 1, err, sizeof err) == HAT_ERR_IO && strstr(err, "directory"), "dir path: %s", err);
    EXPECT(trace_record_size(TRACE_STEPS) == sizeof(trace_step) && strcmp(trace_table_name(TRACE_BATCHES), "batches") == 0,
           "record size / table name");
    remove(path);
}

/* The child creates a trace, appends k chunks of tokens and steps and is SIGKILLed without
 * closing; the parent must find every appended row. */
static void test_killed(const char *path, int k) {
    enum { TOK_CHUNK = 300, STEP_CHUNK = 50 };
    remove(path);
    pid_t pid = fork();
    if (pid == 0) {
        trace_file *tf = NULL;
        char err[HAT_ERRLEN];
        if (trace_create(&tf, path, 0, err, sizeof err) != HAT_OK) _exit(2);
        char *config = big_config(10 * 1024);
        set_all_attrs(tf, config);
        static trace_token tok[TOK_CHUNK];
        static trace_step st[STEP_CHUNK];
        for (int c = 0; c < k; c++) {
            for (int i = 0; i < TOK_CHUNK; i++)
                tok[i] = (trace_token){ .device = 0, .index = (uint32_t)(c * TOK_CHUNK + i), .t_emit = c + 0.001 * i };
            for (int i = 0; i < STEP_CHUNK; i++) st[i] = (trace_step){ .seq = (uint32_t)(c * STEP_CHUNK + i) };
            if (trace_append(tf, TRACE_TOKENS, tok, TOK_CHUNK) != HAT_OK) _exit(3);
            if (trace_append(tf, TRACE_STEPS, st, STEP_CHUNK) != HAT_OK) _exit(3);
        }
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child (k=%d) ended with status %d", k, status);

    /* the killed writer's file is where it was written; nothing was published at the path */
    char part[1200];
    snprintf(part, sizeof part, "%s.partial-%ld", path, (long)pid);
    EXPECT(access(path, F_OK) != 0, "a killed run published a trace at %s", path);
    rename(part, path);   /* where trace_py.sh reads it (--keep) */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0, "killed file (k=%d) does not open", k);
    if (f < 0) return;
    EXPECT(attr_str_is(f, "status", "running"), "killed file status");
    EXPECT(read_attr_int(f, "n_layer") == 30, "killed file n_layer");
    size_t n = (size_t)k * TOK_CHUNK;
    trace_token *want = xcalloc(n ? n : 1, sizeof *want);
    for (size_t i = 0; i < n; i++)
        want[i] = (trace_token){ .device = 0, .index = (uint32_t)i, .t_emit = (double)(i / TOK_CHUNK) + 0.001 * (i % TOK_CHUNK) };
    check_table(f, "/tokens", token_f, NF(token_f), want, sizeof(trace_token), n);
    hsize_t dims = 0;
    hid_t ds = H5Dopen2(f, "/steps", H5P_DEFAULT), sp = H5Dget_space(ds);
    H5Sget_simple_extent_dims(sp, &dims, NULL);
    EXPECT(dims == (hsize_t)k * STEP_CHUNK, "killed file /steps has %llu rows", (unsigned long long)dims);
    H5Sclose(sp);
    H5Dclose(ds);
    for (const char *const *p = (const char *const[]){ "/batches", "/devices", "/summary", "/batch_hist", NULL }; *p; p++)
        EXPECT(H5Lexists(f, *p, H5P_DEFAULT) > 0, "killed file lacks %s", *p);
    free(want);
    H5Fclose(f);
}

int main(int argc, char **argv) {
    const char *keep = NULL;
    if (argc == 3 && strcmp(argv[1], "--keep") == 0) keep = argv[2];
    else if (argc != 1) {
        fprintf(stderr, "usage: test_trace [--keep DIR]\n");
        return 2;
    }
    char dir[1024], path[1100];
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
        mkdir(dir, 0777);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/hat_trace_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    snprintf(path, sizeof path, "%s/new/complete.h5", dir);
    remove(path); /* a kept file from an earlier run */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the failures tested here are expected */

    test_complete(dir);
    test_overwrite_and_abort(dir);
    snprintf(path, sizeof path, "%s/killed.h5", dir);
    const int ks[] = { 0, 1, 4, 9 }; /* 9 x 300 tokens cross two chunk boundaries */
    for (size_t i = 0; i < NF(ks); i++) test_killed(path, ks[i]);

    if (!keep) {
        remove(path);
        snprintf(path, sizeof path, "%s/new/complete.h5", dir);
        remove(path);
        snprintf(path, sizeof path, "%s/new", dir);
        rmdir(path);
        rmdir(dir);
    }
    return test_summary();
}
