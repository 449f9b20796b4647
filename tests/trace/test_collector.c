/* test_collector.c — rank 0's trace collector with its writer thread, without MPI (one rank: no
 * measurement messages): a serving thread adding records far faster than the writer appends
 * them (a small chunk size, so the writer flushes the file every 16 records) loses none and
 * keeps their order, in the file and in the kept copy for the report; the abort path
 * (collector_salvage) stops the writer and appends everything still in the ring and in rank
 * 0's buffer; a process SIGKILLed after the writer is done leaves every row readable. No timing
 * is asserted.
 */
#define _GNU_SOURCE
#include <hdf5.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/common.h"
#include "support/testutil.h"
#include "trace/collector.h"
#include "trace/trace.h"

enum { CAP = 16 };

static trace_batch batch(uint32_t i) {
    return (trace_batch){.cloud_rank = 0, .batch = i, .n_tok = i % 7 + 1, .n_dev = 1, .t_start = i, .t_end = i + 0.5};
}

static trace_file *create(const char *path) {
    trace_file *tf = NULL;
    char err[HAT_ERRLEN];
    EXPECT(trace_create(&tf, path, 1, err, sizeof err) == HAT_OK, "create %s: %s", path, err);
    return tf;
}

static void add_batches(collector *c, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        trace_batch b = batch(i);
        collector_add(c, TRACE_BATCHES, &b);
    }
}

/* the /batches rows of the file at path: count, and whether row i is batch(i) */
static void check_file(const char *path, size_t want, const char *status_prefix) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0, "%s does not open", path);
    if (f < 0) return;
    hid_t ds = H5Dopen2(f, "/batches", H5P_DEFAULT), sp = H5Dget_space(ds);
    hsize_t rows = 0;
    H5Sget_simple_extent_dims(sp, &rows, NULL);
    EXPECT(rows == want, "%s: /batches has %llu rows, want %zu", path, (unsigned long long)rows, want);
    hid_t mt = H5Tcreate(H5T_COMPOUND, sizeof(uint32_t));
    H5Tinsert(mt, "batch", 0, H5T_NATIVE_UINT32);
    uint32_t *ids = xcalloc(rows ? rows : 1, sizeof *ids);
    EXPECT(!rows || H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) >= 0, "read /batches");
    size_t bad = 0;
    for (size_t i = 0; i < rows; i++) bad += ids[i] != i;
    EXPECT(bad == 0, "%s: %zu rows out of order or damaged", path, bad);
    free(ids);
    H5Tclose(mt);
    H5Sclose(sp);
    H5Dclose(ds);
    if (status_prefix) {
        char *st = NULL;
        hid_t a = H5Aopen(f, "status", H5P_DEFAULT), t = H5Aget_type(a);
        EXPECT(a >= 0 && H5Aread(a, t, &st) >= 0 && st && !strncmp(st, status_prefix, strlen(status_prefix)),
               "%s: status '%s', want '%s...'", path, st ? st : "?", status_prefix);
        H5free_memory(st);
        H5Tclose(t);
        H5Aclose(a);
    }
    EXPECT(H5Aexists(f, "trace_writer") > 0, "%s: no trace_writer attribute", path);
    H5Fclose(f);
}

/* many records, far faster than the writer appends them: all written and kept, in order */
static void test_fast_serving(const char *dir) {
    enum { N = 20000 };
    char path[1100];
    snprintf(path, sizeof path, "%s/fast.h5", dir);
    collector c;
    collector_init(&c, 1, create(path), CAP);
    add_batches(&c, N - 5);   /* then 5 more, not a whole chunk: collector_finish hands over a partial one */
    for (uint32_t i = N - 5; i < N; i++) {
        trace_batch b = batch(i);
        collector_add(&c, TRACE_BATCHES, &b);
    }
    collector_finish(&c);
    collector_wait_all(&c, 1);
    EXPECT(c.n_all[TRACE_BATCHES] == N, "kept %zu of %d records", c.n_all[TRACE_BATCHES], N);
    const trace_batch *kept = (const trace_batch *)c.all[TRACE_BATCHES];
    size_t bad = 0;
    for (size_t i = 0; i < c.n_all[TRACE_BATCHES]; i++) bad += kept[i].batch != i || kept[i].t_end != i + 0.5;
    EXPECT(bad == 0, "%zu kept records out of order or damaged", bad);
    char cost[200];
    collector_cost_describe(&c, cost, sizeof cost);
    EXPECT(c.cost.passes == N && strstr(cost, "ring_waits"), "cost line: %s", cost);
    printf("fast serving thread: %d records in chunks of %d; %s\n", N, CAP, cost);
    EXPECT(trace_close(c.tf, "complete") == HAT_OK, "close");
    collector_free(&c);
    check_file(path, N, "complete");
    remove(path);
}

/* the abort path while the writer may still be behind: nothing added is lost */
static void test_salvage(const char *dir) {
    enum { N = 5003 };
    char path[1100];
    snprintf(path, sizeof path, "%s/salvage.h5", dir);
    collector c;
    trace_file *tf = create(path);
    collector_init(&c, 1, tf, CAP);
    add_batches(&c, N);       /* N % CAP records stay in rank 0's buffer, some chunks in the ring */
    collector_salvage(&c);    /* as the abort hook does (run.c), then the trace is marked */
    trace_close_on_abort(tf, "failed: test abort");
    collector_salvage(&c);    /* a second call (a second abort) is harmless */
    trace_close(tf, NULL);
    collector_free(&c);
    check_file(path, N, "failed: test abort");
    remove(path);
}

/* SIGKILL once the writer has written everything: the rows are in the file (status running) */
static void test_killed(const char *dir) {
    enum { N = 1000 };
    char path[1100];
    snprintf(path, sizeof path, "%s/killed.h5", dir);
    fflush(stdout);   /* the child must not repeat what the parent has buffered */
    pid_t pid = fork();
    if (pid == 0) {
        collector c;
        trace_file *tf = NULL;
        char err[HAT_ERRLEN];
        if (trace_create(&tf, path, 1, err, sizeof err) != HAT_OK) _exit(2);
        collector_init(&c, 1, tf, CAP);
        add_batches(&c, N);
        collector_finish(&c);
        collector_wait_all(&c, 1);
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFSIGNALED(status), "killed child (status %d)", status);
    char part[1200];   /* a killed writer's trace stays where it was written (trace.c) */
    snprintf(part, sizeof part, "%s.partial-%ld", path, (long)pid);
    check_file(part, N, "running");
    remove(part);
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const char *tmp = getenv("TMPDIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/hat_collector_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_fast_serving(dir);
    test_salvage(dir);
    test_killed(dir);
    rmdir(dir);
    return test_summary();
}
