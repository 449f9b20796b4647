/* hat — the testbed's single binary: one table of subcommands (name, entry point, one line)
 * gives both the dispatch and the usage text; the conventions they share are in cli.h. */
#include "cli/cli.h"
#include "core/build_info.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static int cli_version(int argc, char **argv);
static int cli_help(int argc, char **argv);

typedef struct {
    const char *name;
    const char *alias[2];   /* other spellings (hat --version), NULL-padded */
    int (*fn)(int argc, char **argv);
    const char *desc;
} subcommand;

static const subcommand commands[] = {
    {"generate", {0}, cli_generate, "generate text with the whole model on this machine"},
    {"run", {0}, cli_run, "the split testbed under mpirun: devices + cloud ranks"},
    {"calibrate", {0}, cli_calibrate, "fit the device's draft adapter from the full model's hidden states"},
    {"bench-transport", {0}, cli_bench_transport, "mpiexec -n 2: transport round trip vs raw MPI ping-pong"},
    {"bench-pass", {0}, cli_bench_pass, "time forward passes of chosen shapes beside the cost model's inputs"},
    {"tokens", {0}, cli_tokens, "count prompts' tokens with a model's tokenizer, raw and as chat messages"},
    {"version", {"--version"}, cli_version, "print version and build information"},
    {"help", {"--help", "-h"}, cli_help, "this list, or hat help COMMAND: that command's options"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static const subcommand *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++) {
        const subcommand *c = &commands[i];
        if (!strcmp(name, c->name) || (c->alias[0] && !strcmp(name, c->alias[0])) ||
            (c->alias[1] && !strcmp(name, c->alias[1])))
            return c;
    }
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f, "hat %s (%s) — device-cloud split inference testbed\nusage: hat <command> [options]\ncommands:\n",
            HAT_VERSION, HAT_GIT_HASH);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].desc);
    fprintf(f, "hat COMMAND --help prints that command's options.\n");
}

/* version and help take no option but --help, and at most max_args arguments (from optind on);
 * 0: go on; 1: --help; 2: refused (printed) */
static int no_options(int argc, char **argv, const char *cmd, int max_args) {
    static const struct option lo[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    char msg[256];
    optind = 1;
    opterr = 0;
    const int c = getopt_long(argc, argv, ":h", lo, NULL);
    if (c == 'h') return 1;
    if (c != -1) cli_opt_error(msg, sizeof msg, cmd, c, argv);
    else if (argc - optind > max_args) snprintf(msg, sizeof msg, "%s: unexpected argument '%s'", cmd, argv[optind + max_args]);
    else return 0;
    return cli_usage_error(cmd, msg);
}

static int cli_version(int argc, char **argv) {
    const int rc = no_options(argc, argv, "hat version", 0);
    if (rc == 1) printf("usage: hat version   (or hat --version)\n  print version and build information\n");
    if (rc) return rc == 1 ? 0 : rc;
    printf("hat %s git %s, %s, %s build\n", HAT_VERSION, HAT_GIT_HASH, HAT_C_COMPILER, HAT_BUILD_TYPE);
    return 0;
}

/* hat help [COMMAND]: the list, or COMMAND --help */
static int cli_help(int argc, char **argv) {
    const int rc = no_options(argc, argv, "hat help", 1);
    if (rc == 1 || (rc == 0 && optind == argc)) { usage(stdout); return 0; }
    if (rc) return rc;
    const subcommand *c = find_command(argv[optind]);
    if (!c || c->fn == cli_help) {
        fprintf(stderr, "hat help: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    char help[] = "--help", *args[] = {(char *)c->name, help, NULL};
    return c->fn(2, args);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "hat: no command given\n");
        usage(stderr);
        return 2;
    }
    const subcommand *c = find_command(argv[1]);
    if (c) return c->fn(argc - 1, argv + 1);
    fprintf(stderr, "hat: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
