/* common.h — layer 0 foundations: error reporting, fatal(), timers, small helpers.
 *
 * Two error styles (see docs/design.md, "House rules"):
 *  - parsers/validators return HAT_OK or an error code and fill a caller-provided
 *    message buffer (testable with bad inputs);
 *  - broken invariants call fatal(), which prints "[rank r role] file:line msg" and
 *    ends the whole job through the abort hook (MPI_Abort once the comm layer installs it).
 */
#ifndef HAT_COMMON_H
#define HAT_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum {
    HAT_OK = 0,
    HAT_ERR_IO = 1,      /* file missing, unreadable, mmap failed */
    HAT_ERR_FORMAT = 2,  /* malformed content */
    HAT_ERR_UNSUPPORTED = 3,
    HAT_ERR_NOTFOUND = 4,
    HAT_ERR_ARG = 5,     /* bad argument / config value */
    HAT_ERR_NOMEM = 6,
};

#define HAT_ERRLEN 512

/* printf into an error buffer (buf may be NULL); returns code for `return hat_err(...)`. */
int hat_err(char *buf, size_t len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Process identity, set once by the comm layer (role is copied); used only in messages. */
void hat_set_identity(int rank, const char *role);
/* Replace the default abort (exit(1)) by e.g. MPI_Abort; set once by the comm layer. The hook
 * gets the fatal message (for e.g. marking the trace as failed before aborting). */
void hat_set_abort_hook(void (*hook)(int code, const char *msg));

/* SIGINT and SIGTERM only set a flag (a second one of either ends the process at once):
 * hat_check_interrupt, called where the program waits or loops, turns it into fatal("interrupted
 * by SIGINT"), so the abort path runs (the trace is closed, marked failed: interrupted). */
void hat_catch_interrupts(void);
int hat_interrupted(void);          /* the signal caught, or 0 */
void hat_check_interrupt(void);
/* Another thread's reason to end the run (rank 0's trace writer, told by a failing rank): it
 * cannot fail the run itself (the abort path joins it), so it leaves the reason here and the
 * main thread's next hat_check_interrupt fails with it. The first reason stands. */
void hat_request_abort(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int hat_abort_requested(void);

_Noreturn void hat_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define fatal(...) hat_fatal_at(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond, ...) do { if (!(cond)) hat_fatal_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* Allocation that never returns NULL (fatal on failure): for start-up buffers only. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* 64-byte aligned allocation for SIMD buffers; free with free(). */
void *xmalloc_aligned(size_t n);

/* The whole file at path, NUL-terminated (the NUL not counted in *size); what names the file in
 * messages ("adapter", "corpus"). Free *out with free(). */
int hat_read_file(const char *path, const char *what, uint8_t **out, size_t *size, char *err, size_t errlen);
/* hat_read_file for text: a NUL byte in the file is an error ("not a text file"); size may be NULL */
int hat_read_text(const char *path, const char *what, char **out, size_t *size, char *err, size_t errlen);
/* size bytes to path through path.tmp and a rename: a reader never sees a partial file, and a
 * failed write leaves an existing file as it was. */
int hat_write_file(const char *path, const void *buf, size_t size, char *err, size_t errlen);

double hat_wall(void);
/* whether paths a and b name one existing file (same inode: hard links, ./x and x) */
int hat_same_file(const char *a, const char *b);
/* whether a file can be written at path: its directory exists and is writable, and path is not a
 * directory; HAT_OK or HAT_ERR_IO with a message naming what is missing */
int hat_path_writable(const char *path, char *err, size_t errlen);          /* monotonic seconds of real time (not dilated): timeouts */
double hat_now(void);           /* monotonic seconds of the run clock's rate (hat_set_time_scale) */
/* Time dilation ([run] time_scale): hat_now() and the run clock advance 1/scale seconds per real
 * second, so every modelled duration (compute profiles, links) takes scale times as long in real
 * time while real compute counts 1/scale of its real time; scale >= 1, 1 by default. Set once at
 * start-up, before anything is timed. */
void hat_set_time_scale(double scale);
double hat_time_scale(void);
size_t hat_peak_rss_bytes(void);

#endif
