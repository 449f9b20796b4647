/* cli.h — the hat executable's subcommands (main.c dispatches; `hat run` is cli_run in run/run.h).
 * Each takes the subcommand's argv (argv[0] = the subcommand's name) and returns the exit status. */
#ifndef HAT_CLI_H
#define HAT_CLI_H

int cli_generate(int argc, char **argv);          /* cli_generate.c */
int cli_calibrate(int argc, char **argv);         /* cli_calibrate.c: options -> calib_run (calib/calibrate.h) */
int cli_bench_transport(int argc, char **argv);   /* bench_transport.c */

#endif
