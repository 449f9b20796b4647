#define _GNU_SOURCE
#include "core/common.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int g_rank = -1;
static char g_role[32] = "main";   /* the process role (a copy: callers pass locals) */
static void (*g_abort_hook)(int, const char *) = NULL;

void hat_set_identity(int rank, const char *role) {
    g_rank = rank;
    snprintf(g_role, sizeof g_role, "%s", role ? role : "?");
}
void hat_set_abort_hook(void (*hook)(int, const char *)) { g_abort_hook = hook; }

int hat_err(char *buf, size_t len, int code, const char *fmt, ...) {
    if (buf && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return code;
}

_Noreturn void hat_fatal_at(const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *slash = strrchr(file, '/');   /* the source file's name, not the build machine's path */
    if (slash) file = slash + 1;
    if (g_rank >= 0) fprintf(stderr, "[rank %d %s] %s:%d %s\n", g_rank, g_role, file, line, msg);
    else fprintf(stderr, "[%s] %s:%d %s\n", g_role, file, line, msg);
    fflush(stderr);
    if (g_abort_hook) g_abort_hook(1, msg);
    exit(1);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) fatal("out of memory allocating %zu bytes", n);
    return p;
}
void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) fatal("out of memory allocating %zu x %zu bytes", n, sz);
    return p;
}

void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    CHECK(q, "out of memory reallocating %zu bytes", n);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}
void *xmalloc_aligned(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64) != 0) fatal("out of memory allocating %zu bytes", n);
    return p;
}

static double g_time_scale = 1.0;   /* the one piece of global state here: set at start-up */

void hat_set_time_scale(double scale) { g_time_scale = scale >= 1.0 ? scale : 1.0; }
double hat_time_scale(void) { return g_time_scale; }

double hat_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / g_time_scale;
}

int hat_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int hat_path_writable(const char *path, char *err, size_t errlen) {
    struct stat st;
    if (!path || !path[0]) return hat_err(err, errlen, HAT_ERR_IO, "empty output path");
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return hat_err(err, errlen, HAT_ERR_IO, "%s is a directory", path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return hat_err(err, errlen, HAT_ERR_IO, "%s: the directory %s does not exist", path, dir);
    if (access(dir, W_OK) != 0) return hat_err(err, errlen, HAT_ERR_IO, "%s: the directory %s is not writable", path, dir);
    if (stat(path, &st) == 0 && access(path, W_OK) != 0)
        return hat_err(err, errlen, HAT_ERR_IO, "%s exists and is not writable", path);
    return HAT_OK;
}

double hat_wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t hat_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024u;
}

int hat_read_file(const char *path, const char *what, uint8_t **out, size_t *size, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return hat_err(err, errlen, HAT_ERR_IO, "cannot open %s %s: %s", what, path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        buf = realloc(buf, cap *= 2);
        CHECK(buf, "out of memory reading %s", path);
    }
    const int bad = ferror(f), e = errno;   /* e.g. EISDIR: fopen takes a directory, fread fails */
    fclose(f);
    if (bad) {
        free(buf);
        return hat_err(err, errlen, HAT_ERR_IO, "cannot read %s %s: %s", what, path, strerror(e));
    }
    buf[n] = 0;
    *out = buf;
    *size = n;
    return HAT_OK;
}

int hat_read_text(const char *path, const char *what, char **out, size_t *size, char *err, size_t errlen) {
    uint8_t *buf;
    size_t n;
    int rc = hat_read_file(path, what, &buf, &n, err, errlen);
    if (rc) return rc;
    if (memchr(buf, 0, n)) {
        free(buf);
        return hat_err(err, errlen, HAT_ERR_FORMAT, "cannot read %s %s: not a text file (NUL byte)", what, path);
    }
    *out = (char *)buf;
    if (size) *size = n;
    return HAT_OK;
}

int hat_write_file(const char *path, const void *buf, size_t size, char *err, size_t errlen) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return hat_err(err, errlen, HAT_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return hat_err(err, errlen, HAT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fwrite(buf, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        const int e = errno;
        remove(tmp);
        return hat_err(err, errlen, HAT_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return HAT_OK;
}

/* ---- interrupts ------------------------------------------------------------------------------ */

static volatile sig_atomic_t g_signal;

static void on_signal(int sig) { g_signal = sig; }

void hat_catch_interrupts(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;   /* no SA_RESTART: a sleep returns early; the second signal kills */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int hat_interrupted(void) { return g_signal; }

static char g_abort_msg[HAT_ERRLEN];
static atomic_int g_abort_req;   /* 0 none, 1 being written, 2 set */

void hat_request_abort(const char *fmt, ...) {
    int expected = 0;
    if (!atomic_compare_exchange_strong(&g_abort_req, &expected, 1)) return;   /* the first reason stands */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_abort_msg, sizeof g_abort_msg, fmt, ap);
    va_end(ap);
    atomic_store(&g_abort_req, 2);
}

int hat_abort_requested(void) { return atomic_load(&g_abort_req) == 2; }

void hat_check_interrupt(void) {
    /* a failed rank's reason first: mpirun's SIGTERM that follows it is its consequence */
    if (atomic_load(&g_abort_req) == 2) fatal("%s", g_abort_msg);
    const int s = g_signal;
    if (s) fatal("interrupted by %s", s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "a signal");
}
