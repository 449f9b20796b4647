/* hat — the testbed's single binary. Subcommands:
 *   hat generate   run the model on one prompt on this machine (CPU), print text and stats
 *   hat run        the split testbed under mpirun (run.c)
 *   hat calibrate  fit the draft adapter (cli_calibrate.c parses, calib/calibrate.c works) */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/build_info.h"
#include "run/run.h"

static void usage(FILE *f) {
    fprintf(f,
            "hat %s (%s) — device-cloud split inference testbed\n"
            "usage: hat <command> [options]\n"
            "commands:\n"
            "  generate   generate text with the whole model on this machine (hat generate --help)\n"
            "  run        the split testbed under mpirun: devices + cloud ranks (hat run --help)\n"
            "  calibrate  fit the device's draft adapter from the full model's hidden states\n"
            "  bench-transport   mpiexec -n 2: transport round trip vs raw MPI ping-pong\n"
            "  version    print version and build information\n",
            HAT_VERSION, HAT_GIT_HASH);
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "generate")) return cli_generate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run")) return cli_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "calibrate")) return cli_calibrate(argc - 1, argv + 1);
    if (!strcmp(argv[1], "bench-transport")) return cli_bench_transport(argc - 1, argv + 1);
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("hat %s git %s, %s, %s build\n", HAT_VERSION, HAT_GIT_HASH, HAT_C_COMPILER, HAT_BUILD_TYPE);
        return 0;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(stdout); return 0; }
    fprintf(stderr, "hat: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
