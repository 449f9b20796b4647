/* parse.h — numbers from text (INI values, command-line options), strictly: the whole string must
 * be the number, with no leading blank, no trailing text and no overflow. One set of parsers for
 * the configuration reader and every subcommand. */
#ifndef HAT_PARSE_H
#define HAT_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* 1 and *out set when s is a number of the type; 0 otherwise (*out untouched) */
int parse_int(const char *s, int *out);
int parse_long(const char *s, long *out);
int parse_u64(const char *s, uint64_t *out);       /* digits only: "-1" is refused */
int parse_double(const char *s, double *out);      /* finite only */

/* Command-line forms: on a bad or out-of-range value print
 *     "<cmd>: <what> must be an integer in [lo, hi], got '<s>'"   (or "a number in")
 * to stderr and return -1; 0 when *out is set. */
int parse_arg_int(const char *cmd, const char *what, const char *s, long lo, long hi, int *out);
int parse_arg_long(const char *cmd, const char *what, const char *s, long lo, long hi, long *out);
int parse_arg_double(const char *cmd, const char *what, const char *s, double lo, double hi, double *out);
int parse_arg_float(const char *cmd, const char *what, const char *s, double lo, double hi, float *out);

/* The same check with the message (no newline) written to msg instead of stderr: for a command
 * that runs under mpirun, where every rank parses the same argv and only rank 0 prints. */
int parse_arg_long_msg(const char *cmd, const char *what, const char *s, long lo, long hi, long *out, char *msg,
                       size_t msglen);
int parse_arg_int_msg(const char *cmd, const char *what, const char *s, long lo, long hi, int *out, char *msg,
                      size_t msglen);

#endif
