/* trace.c — the run's HDF5 trace (schema in trace.h; the only file that includes hdf5.h).
 *
 * Crash safety: the file uses the default (earliest) format, not the latest/SWMR one, because a
 * 1.10 file created with the latest format carries a "file open for write" status flag that
 * makes readers refuse a file whose writer was killed. Every mutation (append, attribute,
 * report) ends with H5Fflush(H5F_SCOPE_GLOBAL), so after SIGKILL between calls the file on disk
 * is complete and consistent up to the last call.
 *
 * Disk full: a 1 MiB file is held beside the trace (<path>.partial-<pid>.reserve); the first
 * failed write deletes it and flushes, so the file keeps a consistent state with the records
 * written before, takes the failed status and closes readable; later appends are refused.
 *
 * Durability: the trace is written beside its path, as <path>.partial-<pid>, and moved into place
 * when the run ends (rename over an old trace it replaces; a hard link, so never over a file that
 * appeared meanwhile, where there was none). A run that aborts publishes its failed trace at the
 * path only where it replaces nothing: an interrupted --overwrite keeps the previous trace and
 * leaves the partial one beside it, named on stderr.
 *
 * String attributes are variable-length UTF-8 (h5py reads them as str); integers are int64.
 * Datasets hold packed compound types (no padding holes in the file); the memory types keep
 * the C layout (H5Tinsert at offsetof), so callers write their struct arrays directly.
 *
 * Errors: HDF5's automatic error printing is off; failures become HAT_ERR_IO with a message
 * naming the operation, the path and HDF5's innermost reason. trace_create returns it in the
 * caller's buffer; the other calls, whose signatures have no buffer, print it to stderr.
 */
#include "trace/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core/common.h"

/* ---- record layouts: HDF5 member names are the C member names ------------------------------ */

typedef enum { F_U32, F_I32, F_U64, F_F64 } field_type;
typedef struct {
    const char *name;
    size_t off;
    field_type type;
} field;

#define F(S, m, t) { #m, offsetof(S, m), t }
#define NF(a) (sizeof(a) / sizeof((a)[0]))

/* A changed struct must change its field list here and in analysis/check_trace.py. */
_Static_assert(sizeof(trace_token) == 32, "trace_token changed: update token_fields and check_trace.py");
_Static_assert(sizeof(trace_step) == 208, "trace_step changed: update step_fields and check_trace.py");
_Static_assert(sizeof(trace_batch) == 128, "trace_batch changed: update batch_fields and check_trace.py");
_Static_assert(sizeof(trace_device) == 112, "trace_device changed: update device_fields and check_trace.py");
_Static_assert(sizeof(trace_summary) == 128, "trace_summary changed: update row_fields and check_trace.py");
_Static_assert(sizeof(trace_hist) == 16, "trace_hist changed: update hist_fields and check_trace.py");

static const field token_fields[] = {
    F(trace_token, device, F_U32), F(trace_token, index, F_U32), F(trace_token, step, F_U32),
    F(trace_token, token, F_I32),  F(trace_token, t_emit, F_F64), F(trace_token, latency_s, F_F64),
};
static const field step_fields[] = {
    F(trace_step, device, F_U32),          F(trace_step, seq, F_U32),
    F(trace_step, kind, F_U32),            F(trace_step, pos0, F_U32),
    F(trace_step, n_tok, F_U32),           F(trace_step, cloud_rank, F_U32),
    F(trace_step, batch_tokens, F_U32),    F(trace_step, batch_devices, F_U32),
    F(trace_step, up_bytes, F_U64),        F(trace_step, down_bytes, F_U64),
    F(trace_step, t_start, F_F64),         F(trace_step, dev_in_s, F_F64),
    F(trace_step, dev_in_pred_s, F_F64),   F(trace_step, t_up_send, F_F64),
    F(trace_step, up_model_s, F_F64),      F(trace_step, t_cloud_ready, F_F64),
    F(trace_step, cloud_queue_s, F_F64),   F(trace_step, cloud_compute_s, F_F64),
    F(trace_step, t_down_send, F_F64),     F(trace_step, down_model_s, F_F64),
    F(trace_step, t_down_ready, F_F64),    F(trace_step, dev_out_s, F_F64),
    F(trace_step, dev_out_pred_s, F_F64),  F(trace_step, t_end, F_F64),
    F(trace_step, gamma, F_U32),           F(trace_step, accepted, F_U32),
    F(trace_step, emitted, F_U32),         F(trace_step, t_up_first, F_F64),
    F(trace_step, draft_s, F_F64),         F(trace_step, draft_pred_s, F_F64),
    F(trace_step, plan_done_t, F_F64),
};
static const field batch_fields[] = {
    F(trace_batch, cloud_rank, F_U32), F(trace_batch, batch, F_U32), F(trace_batch, n_tok, F_U32),
    F(trace_batch, n_dev, F_U32),      F(trace_batch, t_start, F_F64), F(trace_batch, t_end, F_F64),
    F(trace_batch, group_s, F_F64),    F(trace_batch, ctx, F_F64),     F(trace_batch, pred_s, F_F64),
    F(trace_batch, cost_c0, F_F64),    F(trace_batch, cost_c1, F_F64), F(trace_batch, cost_c2, F_F64),
    F(trace_batch, cost_c3, F_F64),
    F(trace_batch, fit_rms_rel, F_F64), F(trace_batch, fit_samples, F_U32), F(trace_batch, fit_clamped, F_U32),
    F(trace_batch, real_s, F_F64),     F(trace_batch, profile_s, F_F64), F(trace_batch, distorted, F_U32),
};
static const field device_fields[] = {
    F(trace_device, device, F_U32),        F(trace_device, rank, F_U32),
    F(trace_device, cloud_rank, F_U32),    F(trace_device, prompt_tokens, F_U32),
    F(trace_device, gen_tokens, F_U32),    F(trace_device, n_steps, F_U32),
    F(trace_device, profile_exceeded, F_U32), F(trace_device, rounds, F_U32),
    F(trace_device, drafted, F_U64),       F(trace_device, accepted, F_U64),
    F(trace_device, t_request, F_F64),     F(trace_device, t_first, F_F64),
    F(trace_device, t_done, F_F64),        F(trace_device, up_bytes, F_U64),
    F(trace_device, down_bytes, F_U64),    F(trace_device, chunking, F_U32),
    F(trace_device, chunks, F_U32),        F(trace_device, stall_bound, F_U32),
    F(trace_device, lost, F_U32),          F(trace_device, ttft_pred_s, F_F64),
};
static const field row_fields[] = {
    F(trace_summary, device, F_I32),     F(trace_summary, n_tokens, F_U32),  F(trace_summary, n_tbt, F_U32),
    F(trace_summary, ttft_mean, F_F64),  F(trace_summary, ttft_p50, F_F64),  F(trace_summary, ttft_p90, F_F64),
    F(trace_summary, ttft_p99, F_F64),   F(trace_summary, tbt_mean, F_F64),  F(trace_summary, tbt_p50, F_F64),
    F(trace_summary, tbt_p90, F_F64),    F(trace_summary, tbt_p99, F_F64),   F(trace_summary, tok_s, F_F64),
    F(trace_summary, up_bytes_per_tok, F_F64), F(trace_summary, down_bytes_per_tok, F_F64),
    F(trace_summary, rounds, F_U32),     F(trace_summary, lost, F_U32),      F(trace_summary, accept_rate, F_F64), F(trace_summary, tokens_per_round, F_F64),
};
static const field hist_fields[] = { /* pad is not stored */
    F(trace_hist, batch_tokens, F_U32), F(trace_hist, count, F_U64),
};

/* Datasets: the four streamed tables (indexed by trace_table), then the end-of-run ones. */
enum { D_SUMMARY = TRACE_N_TABLES, D_HIST, N_DSETS };

typedef struct {
    const char *path;
    const field *fields;
    size_t n_fields, size;
    hsize_t chunk; /* rows per chunk */
} table_def;

static const table_def tables[N_DSETS] = {
    [TRACE_TOKENS] = { "/tokens", token_fields, NF(token_fields), sizeof(trace_token), 1024 },
    [TRACE_STEPS] = { "/steps", step_fields, NF(step_fields), sizeof(trace_step), 1024 },
    [TRACE_BATCHES] = { "/batches", batch_fields, NF(batch_fields), sizeof(trace_batch), 1024 },
    [TRACE_DEVICES] = { "/devices", device_fields, NF(device_fields), sizeof(trace_device), 64 },
    [D_SUMMARY] = { "/summary", row_fields, NF(row_fields), sizeof(trace_summary), 64 },
    [D_HIST] = { "/batch_hist", hist_fields, NF(hist_fields), sizeof(trace_hist), 64 },
};

size_t trace_record_size(trace_table t) {
    return (unsigned)t < TRACE_N_TABLES ? tables[t].size : 0;
}

const char *trace_table_name(trace_table t) {
    return (unsigned)t < TRACE_N_TABLES ? tables[t].path + 1 : "unknown";
}

struct trace_file {
    hid_t file;
    hid_t dset[N_DSETS];
    hid_t mtype[N_DSETS]; /* memory (C layout) compound types */
    hsize_t rows[N_DSETS];
    char *path;           /* the file being written: <final>.partial-<pid> */
    char *final;          /* where it goes when the run ends */
    int replaces;         /* final existed at creation (--overwrite): only a whole run replaces it */
    char *reserve;        /* <path>.reserve: RESERVE_BYTES held for the last flush (NULL: none) */
    int full;             /* a write failed (disk full?): the reserve is released, appends refused */
    char err[HAT_ERRLEN];
};

/* ---- errors ------------------------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len;
} reason_buf;

static herr_t reason_cb(unsigned n, const H5E_error2_t *e, void *data) {
    reason_buf *r = data;
    if (n == 0 && e->desc && e->desc[0]) snprintf(r->buf, r->len, "%s", e->desc);
    return 0;
}

/* The innermost entry of HDF5's error stack (the most specific cause). Must be called right
 * after the failing call: any later API call clears the stack. */
static void h5_reason(char *buf, size_t len) {
    reason_buf r = { buf, len };
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, reason_cb, &r);
}

/* Formats "trace PATH: OP WHAT failed: REASON" into tf->err and returns HAT_ERR_IO. */
static int tf_fail(trace_file *tf, const char *op, const char *what) {
    char why[256];
    h5_reason(why, sizeof why);
    snprintf(tf->err, sizeof tf->err, "trace %s: %s%s%s failed%s%s", tf->path, op, what ? " " : "",
             what ? what : "", why[0] ? ": " : "", why);
    return HAT_ERR_IO;
}

static void out_of_space(trace_file *tf);

/* For the calls without an error buffer: the message goes to stderr. A failed write (a full disk,
 * most often) releases the reserve so that the file stays readable with what it holds. */
static int tf_report(trace_file *tf, int rc) {
    if (rc != HAT_OK) fprintf(stderr, "%s\n", tf->err);
    if (rc == HAT_ERR_IO) out_of_space(tf);
    return rc;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static hid_t native_type(field_type t) {
    switch (t) {
    case F_U32: return H5T_NATIVE_UINT32;
    case F_I32: return H5T_NATIVE_INT32;
    case F_U64: return H5T_NATIVE_UINT64;
    case F_F64: break;
    }
    return H5T_NATIVE_DOUBLE;
}

static hid_t make_mem_type(const table_def *d) {
    hid_t t = H5Tcreate(H5T_COMPOUND, d->size);
    if (t < 0) return t;
    for (size_t i = 0; i < d->n_fields; i++) {
        if (H5Tinsert(t, d->fields[i].name, d->fields[i].off, native_type(d->fields[i].type)) < 0) {
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
    }
    return t;
}

/* mkdir -p of the path's parent directories. */
static int make_parents(const char *path, char *err, size_t errlen) {
    size_t n = strlen(path);
    char *p = xmalloc(n + 1);
    memcpy(p, path, n + 1);
    int rc = HAT_OK;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rc = hat_err(err, errlen, HAT_ERR_IO, "trace %s: cannot create directory %s: %s", path, p,
                         strerror(errno));
            break;
        }
        if (stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) {   /* a file where a directory must be */
            rc = hat_err(err, errlen, HAT_ERR_IO, "trace %s: %s is not a directory", path, p);
            break;
        }
        *s = '/';
    }
    free(p);
    return rc;
}

/* Disk space held beside the trace so that, when the disk fills, the file written so far can
 * still take its final metadata and close readable: the first failed write releases it. */
enum { RESERVE_BYTES = 1 << 20 };

static void reserve_make(trace_file *tf) {
    size_t n = strlen(tf->path) + 16;
    tf->reserve = xmalloc(n);
    snprintf(tf->reserve, n, "%s.reserve", tf->path);
    int fd = open(tf->reserve, O_WRONLY | O_CREAT | O_EXCL, 0644), ok = fd >= 0;
    static const char zeros[65536];
    for (size_t w = 0; ok && w < RESERVE_BYTES; w += sizeof zeros) ok = write(fd, zeros, sizeof zeros) == (ssize_t)sizeof zeros;
    if (fd >= 0 && close(fd) != 0) ok = 0;
    if (!ok) {   /* no room even for that: the run goes on without it */
        if (fd >= 0) unlink(tf->reserve);
        free(tf->reserve);
        tf->reserve = NULL;
    }
}

static void reserve_drop(trace_file *tf) {
    if (!tf->reserve) return;
    unlink(tf->reserve);
    free(tf->reserve);
    tf->reserve = NULL;
}

/* a write failed: free the reserve, flush what the file holds into a readable state, refuse more */
static void out_of_space(trace_file *tf) {
    if (tf->full) return;
    tf->full = 1;
    reserve_drop(tf);
    if (tf->file >= 0) H5Fflush(tf->file, H5F_SCOPE_GLOBAL);
}

static int flush(trace_file *tf) {
    if (H5Fflush(tf->file, H5F_SCOPE_GLOBAL) < 0) return tf_fail(tf, "flush", NULL);
    return HAT_OK;
}

static int set_attr(trace_file *tf, const char *name, hid_t ftype, hid_t mtype, const void *buf) {
    htri_t ex = H5Aexists(tf->file, name);
    if (ex < 0) return tf_fail(tf, "check attribute", name);
    /* delete and recreate: the value may change type or length */
    if (ex > 0 && H5Adelete(tf->file, name) < 0) return tf_fail(tf, "delete attribute", name);
    hid_t sp = H5Screate(H5S_SCALAR);
    if (sp < 0) return tf_fail(tf, "dataspace for attribute", name);
    int rc = HAT_OK;
    hid_t a = H5Acreate2(tf->file, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) rc = tf_fail(tf, "create attribute", name);
    else if (H5Awrite(a, mtype, buf) < 0) rc = tf_fail(tf, "write attribute", name);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc != HAT_OK ? rc : flush(tf);
}

static int attr_str(trace_file *tf, const char *name, const char *value) {
    if (!tf || tf->file < 0 || !name) return HAT_ERR_ARG;
    const char *v = value ? value : "";
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return tf_fail(tf, "string type for attribute", name);
    int rc;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0)
        rc = tf_fail(tf, "string type for attribute", name);
    else
        rc = set_attr(tf, name, t, t, &v);
    H5Tclose(t);
    return rc;
}

/* Sets the extent of dataset d to at + n rows and writes recs at row `at`; flushes. */
static int write_rows(trace_file *tf, int d, hsize_t at, const void *recs, size_t n) {
    const char *name = tables[d].path;
    hid_t ds = tf->dset[d];
    hsize_t total = at + n, count = n;
    if (H5Dset_extent(ds, &total) < 0) return tf_fail(tf, "extend dataset", name);
    tf->rows[d] = total;
    if (n == 0) return flush(tf);
    int rc = HAT_OK;
    hid_t fs = H5Dget_space(ds);
    hid_t ms = H5Screate_simple(1, &count, NULL);
    if (fs < 0 || ms < 0) rc = tf_fail(tf, "dataspace for", name);
    else if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &count, NULL) < 0)
        rc = tf_fail(tf, "select rows of", name);
    else if (H5Dwrite(ds, tf->mtype[d], ms, fs, H5P_DEFAULT, recs) < 0)
        rc = tf_fail(tf, "write rows to", name);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (rc != HAT_OK) {
        /* best effort: do not leave zero-filled rows that look like records */
        if (H5Dset_extent(ds, &at) >= 0) tf->rows[d] = at;
        return rc;
    }
    return flush(tf);
}

/* Closes every handle (the file last); the first failure is kept in tf->err. */
static int close_handles(trace_file *tf) {
    int rc = HAT_OK;
    for (int d = 0; d < N_DSETS; d++) {
        if (tf->dset[d] >= 0 && H5Dclose(tf->dset[d]) < 0 && rc == HAT_OK)
            rc = tf_fail(tf, "close dataset", tables[d].path);
        if (tf->mtype[d] >= 0) H5Tclose(tf->mtype[d]);
        tf->dset[d] = tf->mtype[d] = H5I_INVALID_HID;
    }
    if (tf->file >= 0 && H5Fclose(tf->file) < 0 && rc == HAT_OK) rc = tf_fail(tf, "close file", NULL);
    tf->file = H5I_INVALID_HID;
    return rc;
}

static int create_dataset(trace_file *tf, int d) {
    const table_def *td = &tables[d];
    int rc = HAT_OK;
    hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = td->chunk;
    hid_t ftype = H5I_INVALID_HID, sp = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    tf->mtype[d] = make_mem_type(td);
    if (tf->mtype[d] < 0) return tf_fail(tf, "compound type for", td->path);
    /* packed copy for the file: no holes where the C struct has padding or `pad` */
    ftype = H5Tcopy(tf->mtype[d]);
    if (ftype < 0 || H5Tpack(ftype) < 0) rc = tf_fail(tf, "packed type for", td->path);
    if (rc == HAT_OK && (sp = H5Screate_simple(1, &zero, &unlimited)) < 0)
        rc = tf_fail(tf, "dataspace for", td->path);
    if (rc == HAT_OK && ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0))
        rc = tf_fail(tf, "chunked layout for", td->path);
    if (rc == HAT_OK) {
        tf->dset[d] = H5Dcreate2(tf->file, td->path, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        if (tf->dset[d] < 0) rc = tf_fail(tf, "create dataset", td->path);
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (ftype >= 0) H5Tclose(ftype);
    return rc;
}

static void utc_now(char *buf, size_t len) {
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else snprintf(buf, len, "unknown");
}

/* ---- public API -------------------------------------------------------------------------- */

int trace_create(trace_file **out, const char *path, int overwrite, char *err, size_t errlen) {
    *out = NULL;
    if (!path || !path[0]) return hat_err(err, errlen, HAT_ERR_ARG, "trace: empty output path");
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return hat_err(err, errlen, HAT_ERR_IO, "trace %s: is a directory, not a file path", path);
        if (!overwrite)
            return hat_err(err, errlen, HAT_ERR_IO,
                           "trace file %s already exists: pass --overwrite or choose another path", path);
    }
    int rc = make_parents(path, err, errlen);
    if (rc != HAT_OK) return rc;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* failures become messages, not stack dumps */
    trace_file *tf = xcalloc(1, sizeof *tf);
    size_t n = strlen(path);
    tf->final = xmalloc(n + 1);
    memcpy(tf->final, path, n + 1);
    tf->path = xmalloc(n + 32);
    snprintf(tf->path, n + 32, "%s.partial-%ld", path, (long)getpid());
    tf->replaces = stat(path, &st) == 0;
    tf->file = H5I_INVALID_HID;
    for (int d = 0; d < N_DSETS; d++) tf->dset[d] = tf->mtype[d] = H5I_INVALID_HID;

    /* STRONG close degree: H5Fclose also closes anything a failed path left open */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    /* EXCL when not overwriting: a file that appeared since the stat() check is not clobbered */
    tf->file = H5Fcreate(tf->path, H5F_ACC_EXCL, H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (tf->file < 0) rc = tf_fail(tf, "create file", NULL);
    else reserve_make(tf);
    if (fapl >= 0) H5Pclose(fapl);
    for (int d = 0; d < N_DSETS && rc == HAT_OK; d++) rc = create_dataset(tf, d);
    if (rc == HAT_OK) rc = attr_str(tf, "status", "running");
    if (rc == HAT_OK) {
        char when[32];
        utc_now(when, sizeof when);
        rc = attr_str(tf, "created_utc", when);
    }
    if (rc != HAT_OK) {
        hat_err(err, errlen, rc, "%s", tf->err);
        int created = tf->file >= 0;
        close_handles(tf);
        if (created) remove(tf->path); /* a half-made file is of no use to anyone */
        reserve_drop(tf);
        free(tf->path);
        free(tf->final);
        free(tf);
        return rc;
    }
    *out = tf;
    return HAT_OK;
}

int trace_set_attr_str(trace_file *tf, const char *name, const char *value) {
    if (!tf || tf->file < 0 || !name) return HAT_ERR_ARG;
    return tf_report(tf, attr_str(tf, name, value));
}

int trace_set_attr_double(trace_file *tf, const char *name, double value) {
    if (!tf || tf->file < 0 || !name) return HAT_ERR_ARG;
    return tf_report(tf, set_attr(tf, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value));
}

int trace_set_attr_int(trace_file *tf, const char *name, int64_t value) {
    if (!tf || tf->file < 0 || !name) return HAT_ERR_ARG;
    return tf_report(tf, set_attr(tf, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value));
}

int trace_append(trace_file *tf, trace_table t, const void *recs, size_t n) {
    if (!tf || tf->file < 0 || (unsigned)t >= TRACE_N_TABLES || (n && !recs)) {
        fprintf(stderr, "trace: bad trace_append call (table %d, %zu records)\n", (int)t, n);
        return HAT_ERR_ARG;
    }
    if (n == 0) return HAT_OK;
    if (tf->full) return HAT_ERR_IO;   /* said once, when the write failed */
    return tf_report(tf, write_rows(tf, (int)t, tf->rows[t], recs, n));
}

int trace_write_summary(trace_file *tf, const trace_summary *rows, int n_rows, const trace_hist *hist, int n_hist) {
    if (!tf || tf->file < 0 || n_rows < 0 || n_hist < 0 || (n_rows && !rows) || (n_hist && !hist)) {
        fprintf(stderr, "trace: bad trace_write_summary call\n");
        return HAT_ERR_ARG;
    }
    /* written from row 0: a second call replaces the tables */
    int rc = write_rows(tf, D_SUMMARY, 0, rows, (size_t)n_rows);
    if (rc == HAT_OK) rc = write_rows(tf, D_HIST, 0, hist, (size_t)n_hist);
    return tf_report(tf, rc);
}

/* the closed file to its final path (see the top of the file); 0 or -1 with a message on stderr */
static int publish(trace_file *tf) {
    if (tf->replaces) {
        if (rename(tf->path, tf->final) == 0) return 0;
    } else if (link(tf->path, tf->final) == 0) {
        unlink(tf->path);
        return 0;
    } else if (errno != EEXIST && access(tf->final, F_OK) != 0 && rename(tf->path, tf->final) == 0) {
        return 0;   /* a file system without hard links */
    }
    fprintf(stderr, "trace: cannot move %s to %s (%s): the trace stays at %s\n", tf->path, tf->final,
            errno == EEXIST ? "a file of that name appeared during the run" : strerror(errno), tf->path);
    return -1;
}

int trace_close(trace_file *tf, const char *status) {
    if (!tf) return HAT_OK;
    int rc = HAT_OK;
    if (tf->file >= 0) { /* else trace_close_on_abort already closed it */
        if (status) rc = tf_report(tf, attr_str(tf, "status", status));
        int rc2 = tf_report(tf, close_handles(tf));
        if (rc == HAT_OK) rc = rc2;
        reserve_drop(tf);
        if (publish(tf) && rc == HAT_OK) rc = HAT_ERR_IO;
    }
    free(tf->path);
    free(tf->final);
    free(tf);
    return rc;
}

/* Closes the file but keeps tf allocated, so a later trace_close(tf) (or a second abort) is
 * harmless. Uses no allocation and never calls fatal(). */
void trace_close_on_abort(trace_file *tf, const char *why) {
    if (!tf || tf->file < 0) return;
    char status[HAT_ERRLEN];
    if (why && strncmp(why, "failed", 6) == 0) snprintf(status, sizeof status, "%s", why);
    else snprintf(status, sizeof status, "failed: %s", why && why[0] ? why : "aborted");
    tf_report(tf, attr_str(tf, "status", status));
    tf_report(tf, close_handles(tf));
    reserve_drop(tf);
    if (!tf->replaces) publish(tf);
    else fprintf(stderr, "trace: the run did not finish: the previous %s is kept; this run's trace (%s) is %s\n",
                 tf->final, status, tf->path);
}
