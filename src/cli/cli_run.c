/* cli_run.c — `mpirun -np N hat run --config FILE.ini [--trace PATH] [--overwrite]`: the command
 * line of the split testbed; the run itself is run/run.c. Every rank parses the same argv before
 * MPI starts; a refused command line goes to run_main, which agrees on it across ranks first. */
#include "cli/cli.h"
#include "run/run.h"
#include "core/common.h"

#include <getopt.h>
#include <stdio.h>

static void run_usage(FILE *f) {
    fprintf(f,
            "usage: mpirun -np N hat run --config FILE.ini [--trace PATH] [--overwrite]\n"
            "  N must equal [cloud] ranks + [devices] count: ranks 0..ranks-1 are the cloud, the rest devices.\n"
            "  --config FILE  the run's configuration (configs/README.md)\n"
            "  --trace PATH   write the HDF5 trace here (default: [run] trace of the config)\n"
            "  --overwrite    replace an existing trace file (otherwise refused: nothing already written is lost)\n"
            "  --help, -h     this text\n");
}

/* 0: *o set; 1: --help; -1: refused, msg says why (one line) */
static int run_parse(int argc, char **argv, run_opts *o, char *msg, size_t len) {
    enum { O_CONFIG = 256, O_TRACE, O_OVERWRITE, O_HELP = 'h' };
    static const struct option lo[] = {{"config", required_argument, 0, O_CONFIG},
                                       {"trace", required_argument, 0, O_TRACE},
                                       {"overwrite", no_argument, 0, O_OVERWRITE},
                                       {"help", no_argument, 0, O_HELP},
                                       {0, 0, 0, 0}};
    *o = (run_opts){0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case O_CONFIG: o->config_path = optarg; break;
        case O_TRACE: o->trace_path = optarg; break;
        case O_OVERWRITE: o->overwrite = 1; break;
        case O_HELP: return 1;
        default: cli_opt_error(msg, len, "hat run", c, argv); return -1;
        }
    }
    if (optind < argc) return snprintf(msg, len, "hat run: unexpected argument '%s'", argv[optind]), -1;
    if (!o->config_path) return snprintf(msg, len, "hat run: --config FILE is required"), -1;
    return 0;
}

int cli_run(int argc, char **argv) {
    run_opts o;
    char msg[HAT_ERRLEN], refused[HAT_ERRLEN + 128];
    const int rc = run_parse(argc, argv, &o, msg, sizeof msg);
    if (rc > 0) return cli_mpi_help(run_usage);
    if (rc < 0) {
        cli_refusal(refused, sizeof refused, "hat run", msg);
        o.refused = refused;
    }
    return run_main(&o);
}
