/* cli.c — see cli.h: the messages of usage errors, and --help / usage errors under mpirun. */
#include "cli/cli.h"
#include "core/common.h"
#include "net/comm.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

void cli_opt_error(char *msg, size_t len, const char *cmd, int c, char *const *argv) {
    /* getopt_long steps past a long option before it reports it, so argv[optind - 1] is the
     * option as typed; an unknown short option is only known by optopt (it may sit in a cluster) */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (strncmp(arg, "--", 2) != 0 && optopt > 0 && optopt < 256) {
        if (c == ':') snprintf(msg, len, "%s: option '-%c' needs an argument", cmd, optopt);
        else snprintf(msg, len, "%s: unknown or incomplete option '-%c'", cmd, optopt);
    } else if (c == ':') {
        snprintf(msg, len, "%s: option '%s' needs an argument", cmd, arg);
    } else if (optopt && strchr(arg, '=')) {   /* a known option that takes no value: --overwrite=1 */
        snprintf(msg, len, "%s: option '%.*s' takes no argument", cmd, (int)(strchr(arg, '=') - arg), arg);
    } else {
        snprintf(msg, len, "%s: unknown or incomplete option '%s'", cmd, arg);
    }
}

#define HINT "Try '%s --help' for more information."

void cli_refusal(char *out, size_t len, const char *cmd, const char *msg) { snprintf(out, len, "%s\n" HINT, msg, cmd); }

int cli_hint(const char *cmd) {
    fprintf(stderr, HINT "\n", cmd);
    return 2;
}

int cli_usage_error(const char *cmd, const char *msg) {
    char out[HAT_ERRLEN + 128];
    cli_refusal(out, sizeof out, cmd, msg);
    fprintf(stderr, "%s\n", out);
    return 2;
}

int cli_mpi_help(void (*usage)(FILE *f)) {
    comm_init(NULL, NULL);
    if (comm_get()->rank == 0) {
        usage(stdout);
        fflush(stdout);
    }
    comm_finalize();
    return 0;
}

int cli_mpi_agree_usage(const char *cmd, const char *msg) {
    char buf[HAT_ERRLEN];
    snprintf(buf, sizeof buf, "%s", msg ? msg : "");
    if (comm_agree(msg ? HAT_ERR_ARG : HAT_OK, buf, sizeof buf, NULL) == HAT_OK) return 0;
    if (comm_get()->rank == 0) cli_usage_error(cmd, buf);
    return 2;
}
