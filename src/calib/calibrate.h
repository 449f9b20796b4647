/* calibrate.h — `hat calibrate`'s work: fit the device's draft adapter (split/adapter.h) for one
 * (model, split, form) from the model's own hidden states on a self-generated corpus.
 *
 * The corpus is generated from prompts (calib/corpus.h) or read from a .tok file; every position of
 * it is run through layers [0,a) and [a,L-b) (calib/hidden.h); the sequences of the last `holdout`
 * prompts are held out (whole sequences of whole prompts) and give the held-out R^2 and the draft
 * agreement; the adapter is fitted by ridge regression (calib/adapter_fit.h), one fit per lambda
 * candidate, the best held-out R^2 kept, and written with its provenance and figures. The
 * command-line interface (cli/cli_calibrate.c) only parses options into a calib_opts.
 */
#ifndef HAT_CALIBRATE_H
#define HAT_CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#define CALIB_MAX_LAMBDA 16

typedef struct {
    const char *model;        /* GGUF file (required) */
    const char *prompts;      /* generate the corpus from this prompts file, or */
    const char *corpus_in;    /* read it from this .tok file (exactly one of the two) */
    const char *corpus_out;   /* save the generated corpus here (with prompts) */
    const char *out;          /* adapter file to write (needs a, b); NULL: only generate the corpus */
    int a, b;                 /* the split: device layers [0,a) and [L-b,L) */
    int form, rank;           /* adapter_form; rank of the lowrank form */
    int gen, samples, chat;   /* generation: tokens per prompt, generations per prompt, chat template */
    int holdout;              /* prompts held out at the end of the corpus; -1: 10% of them, at least 1 */
    int threads, min_pos, chunk;
    double lambda[CALIB_MAX_LAMBDA];   /* candidates; the best on the held-out set is kept */
    int n_lambda;
    float temp;
    uint64_t seed;
    int set_gen, set_temp, set_seed, set_chat, set_samples;   /* given explicitly (they conflict with corpus_in) */
} calib_opts;

/* The defaults of every option (linear form, default rank and lambda, 128 tokens, greedy, chat on...). */
void calib_opts_init(calib_opts *o);

/* Checks the options' combination; the message names the command-line flags. */
int calib_opts_check(const calib_opts *o, char *err, size_t errlen);

/* Runs the calibration: progress on stderr, the report on stdout, errors on stderr as "hat calibrate: ...".
 * Returns the command's exit status: 0 done, 1 failed, 2 bad options (calib_opts_check). */
int calib_run(const calib_opts *o);

#endif
