#define _GNU_SOURCE
#include "common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static int g_rank = -1;
static const char *g_role = "main";
static void (*g_abort_hook)(int, const char *) = NULL;

void hat_set_identity(int rank, const char *role) { g_rank = rank; g_role = role ? role : "?"; }
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
void *xmalloc_aligned(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64) != 0) fatal("out of memory allocating %zu bytes", n);
    return p;
}

double hat_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t hat_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024u;
}
