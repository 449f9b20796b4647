/* parse.c — see parse.h. */
#include "core/parse.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int parse_long(const char *s, long *out) {
    if (!*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

int parse_int(const char *s, int *out) {
    long v;
    if (!parse_long(s, &v) || v < INT_MIN || v > INT_MAX) return 0;
    *out = (int)v;
    return 1;
}

int parse_u64(const char *s, uint64_t *out) {
    if (!isdigit((unsigned char)*s)) return 0;   /* strtoull would accept "-1" */
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return 0;
    *out = (uint64_t)v;
    return 1;
}

int parse_double(const char *s, double *out) {
    if (!*s || isspace((unsigned char)*s)) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

int parse_arg_long_msg(const char *cmd, const char *what, const char *s, long lo, long hi, long *out, char *msg,
                       size_t msglen) {
    long v;
    if (!parse_long(s, &v) || v < lo || v > hi) {
        if (msg && msglen) snprintf(msg, msglen, "%s: %s must be an integer in [%ld, %ld], got '%s'", cmd, what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int parse_arg_int_msg(const char *cmd, const char *what, const char *s, long lo, long hi, int *out, char *msg,
                      size_t msglen) {
    long v;
    if (lo < INT_MIN) lo = INT_MIN;
    if (hi > INT_MAX) hi = INT_MAX;
    if (parse_arg_long_msg(cmd, what, s, lo, hi, &v, msg, msglen)) return -1;
    *out = (int)v;
    return 0;
}

int parse_arg_long(const char *cmd, const char *what, const char *s, long lo, long hi, long *out) {
    char msg[512];
    if (parse_arg_long_msg(cmd, what, s, lo, hi, out, msg, sizeof msg)) { fprintf(stderr, "%s\n", msg); return -1; }
    return 0;
}

int parse_arg_int(const char *cmd, const char *what, const char *s, long lo, long hi, int *out) {
    char msg[512];
    if (parse_arg_int_msg(cmd, what, s, lo, hi, out, msg, sizeof msg)) { fprintf(stderr, "%s\n", msg); return -1; }
    return 0;
}

int parse_arg_double(const char *cmd, const char *what, const char *s, double lo, double hi, double *out) {
    double v;
    if (!parse_double(s, &v) || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: %s must be a number in [%g, %g], got '%s'\n", cmd, what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int parse_arg_float(const char *cmd, const char *what, const char *s, double lo, double hi, float *out) {
    double v;
    if (parse_arg_double(cmd, what, s, lo, hi, &v)) return -1;
    *out = (float)v;
    return 0;
}
