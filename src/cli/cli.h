/* cli.h — the subcommands of `hat` (main.c's table) and the conventions they share (cli.c).
 *
 * Every subcommand parses with getopt_long and follows one style:
 *   exit 0   done; also `--help` / `-h`, which prints the usage to stdout
 *   exit 1   the command ran and failed (unreadable model, bad config, a failed run)
 *   exit 2   usage error: unknown option, missing option argument, bad number, stray argument,
 *            missing required option. stderr gets one line naming the flag,
 *                hat CMD: unknown or incomplete option '--bogus'
 *                hat CMD: option '--config' needs an argument
 *                hat CMD: --dim must be an integer in [1, 65536], got 'x'      (core/parse.h)
 *            then the hint "Try 'hat CMD --help' for more information."
 * The commands run under mpirun (run, bench-transport) parse on every rank before MPI starts,
 * agree on the outcome, and only rank 0 prints: a usage error ends every rank with status 2. */
#ifndef HAT_CLI_H
#define HAT_CLI_H

#include <stddef.h>
#include <stdio.h>

int cli_generate(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_calibrate(int argc, char **argv);
int cli_bench_transport(int argc, char **argv);
int cli_tokens(int argc, char **argv);
int cli_bench_pass(int argc, char **argv);

/* The message for getopt_long's return c ('?' unknown option or option with a stray "=value",
 * ':' missing argument; optstring must start with ':'), read from optind/optopt, without newline. */
void cli_opt_error(char *msg, size_t len, const char *cmd, int c, char *const *argv);
/* out = msg, a newline and the hint for cmd (e.g. "hat run"): what a usage error prints */
void cli_refusal(char *out, size_t len, const char *cmd, const char *msg);
/* the hint alone to stderr (after a message already printed, e.g. by parse_arg_int); returns 2 */
int cli_hint(const char *cmd);
/* cli_refusal's text to stderr; returns 2, the usage-error exit status */
int cli_usage_error(const char *cmd, const char *msg);

/* --help of a command under mpirun: MPI starts (a singleton without mpirun), rank 0 prints the
 * usage to stdout; returns 0 on every rank. */
int cli_mpi_help(void (*usage)(FILE *f));
/* The start-up agreement on the command line of a command under mpirun, called by every rank
 * once MPI has started: msg is this rank's usage error, NULL when its argv was fine. Returns 0
 * when every rank's was; else 2 on every rank, rank 0 having printed the lowest failing rank's
 * message and the hint (a rank whose argv differs is never left waiting). */
int cli_mpi_agree_usage(const char *cmd, const char *msg);

#endif
