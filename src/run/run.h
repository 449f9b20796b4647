/* run.h — `hat run`: the SPMD run under mpirun (run.c), started by the command line
 * (cli/cli_run.c) with what it parsed; the roles it starts are in roles.h. */
#ifndef HAT_RUN_H
#define HAT_RUN_H

typedef struct {
    const char *config_path;   /* --config FILE.ini */
    const char *trace_path;    /* --trace PATH, or NULL: the config's [run] trace */
    int overwrite;             /* --overwrite: replace an existing trace (otherwise refused) */
    /* non-NULL: this rank's command line was refused, with this text (printed as is, it may span
     * lines). run_main starts MPI and agrees on it before anything else, so every rank ends with
     * status 2 and rank 0 prints it once. */
    const char *refused;
} run_opts;

/* Every rank of the run calls it once; starts and finalises MPI. Returns the exit status: 0 done,
 * 1 a start-up check failed on some rank (rank 0 printed which), 2 the command line was refused. */
int run_main(const run_opts *o);

#endif
