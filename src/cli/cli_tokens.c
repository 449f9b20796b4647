/* hat tokens — counts prompts' tokens with a model's tokenizer (the weights are not loaded): what
 * a device prefills for each prompt, raw and as a chat message, to size [model] ctx and to build
 * prompt sets of a given length (configs/make_long_prompts.py). */
#include "cli/cli.h"
#include "core/common.h"
#include "engine/gguf.h"
#include "engine/prompt.h"
#include "engine/tokenizer.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model, *prompts, *prompt, *system;
} tok_opts;

static void tok_usage(FILE *f) {
    fprintf(f,
            "usage: hat tokens --model FILE.gguf (--prompts FILE | --prompt TEXT) [--system TEXT]\n"
            "  Counts each prompt's tokens with the model's tokenizer, as `hat run` and `hat generate`\n"
            "  tokenize them (a BOS first when the model asks for one). stdout: a '#' header line, then\n"
            "  one tab-separated line per prompt:\n"
            "    index  raw  chat  bytes\n"
            "  index: 0-based, the order of the prompts file (device i takes prompt i mod n);\n"
            "  raw: tokens of the text as is (chat = off); chat: tokens of the whole rendered chat\n"
            "  prompt (chat = on: the template's system message, the user turn, the assistant header);\n"
            "  bytes: the prompt's length in UTF-8 bytes.\n"
            "  --model FILE    a GGUF model (only its tokenizer is read)\n"
            "  --prompts FILE  a prompts file, text or *.jsonl (configs/README.md)\n"
            "  --prompt TEXT   one prompt given here instead\n"
            "  --system TEXT   system message of the chat rendering (default: the template's own)\n"
            "  --help, -h      this text\n");
}

/* 0: *o set; 1: --help; -1: refused (one line printed) */
static int tok_parse(int argc, char **argv, tok_opts *o) {
    enum { O_MODEL = 256, O_PROMPTS, O_PROMPT, O_SYSTEM, O_HELP = 'h' };
    static const struct option lo[] = {{"model", 1, 0, O_MODEL},   {"prompts", 1, 0, O_PROMPTS},
                                       {"prompt", 1, 0, O_PROMPT}, {"system", 1, 0, O_SYSTEM},
                                       {"help", 0, 0, O_HELP},     {0, 0, 0, 0}};
    *o = (tok_opts){0};
    char msg[HAT_ERRLEN];
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_PROMPTS: o->prompts = optarg; break;
        case O_PROMPT: o->prompt = optarg; break;
        case O_SYSTEM: o->system = optarg; break;
        case O_HELP: return 1;
        default:
            cli_opt_error(msg, sizeof msg, "hat tokens", c, argv);
            fprintf(stderr, "%s\n", msg);
            return -1;
        }
    }
    if (optind < argc) { fprintf(stderr, "hat tokens: unexpected argument '%s'\n", argv[optind]); return -1; }
    if (!o->model) { fprintf(stderr, "hat tokens: --model is required\n"); return -1; }
    if (!o->prompts == !o->prompt) { fprintf(stderr, "hat tokens: give exactly one of --prompts, --prompt\n"); return -1; }
    return 0;
}

/* one line per prompt; HAT_OK or the first tokenizer error */
static int count_all(const tokenizer *tok, const char *system, char *const *list, int n, char *err, size_t errlen) {
    printf("# index\traw\tchat\tbytes\n");
    for (int i = 0; i < n; i++) {
        int32_t *ids;
        int n_raw, n_chat, rc = prompt_tokenize(tok, NULL, list[i], 0, &ids, &n_raw, err, errlen);
        if (rc) return rc;
        free(ids);
        if ((rc = prompt_tokenize(tok, system, list[i], 1, &ids, &n_chat, err, errlen))) return rc;
        free(ids);
        printf("%d\t%d\t%d\t%zu\n", i, n_raw, n_chat, strlen(list[i]));
    }
    return HAT_OK;
}

int cli_tokens(int argc, char **argv) {
    tok_opts o;
    const int prc = tok_parse(argc, argv, &o);
    if (prc > 0) { tok_usage(stdout); return 0; }
    if (prc < 0) return cli_hint("hat tokens");
    char err[HAT_ERRLEN], **list = NULL, *one[1] = {(char *)o.prompt};
    int n = 1, rc = HAT_OK;
    if (o.prompts) rc = prompt_read_file(o.prompts, &list, &n, NULL, NULL, err, sizeof err);
    gguf_file *f = NULL;
    tokenizer *tok = NULL;
    if (!rc) rc = gguf_open(&f, o.model, err, sizeof err);
    if (!rc) rc = tokenizer_init(&tok, f, err, sizeof err);
    if (!rc) rc = count_all(tok, o.system, list ? list : one, n, err, sizeof err);
    if (rc) fprintf(stderr, "hat tokens: %s\n", err);
    if (tok) tokenizer_free(tok);
    if (f) gguf_close(f);
    if (list) prompt_list_free(list, n);
    return rc ? 1 : 0;
}
