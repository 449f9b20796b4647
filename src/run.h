/* run.h — `hat run`: the SPMD entry under mpirun, and what the roles share. */
#ifndef HAT_RUN_H
#define HAT_RUN_H

#include "collect.h"
#include "config.h"
#include "gguf.h"
#include "model.h"
#include "partition.h"
#include "tokenizer.h"

typedef struct {
    hat_config cfg;
    partition part;
    gguf_file *gf;
    model_config mc;
    int rank, size;
    hat_role role;
    int device;               /* device index (devices only) */
    /* devices: the prompt */
    tokenizer *tok;
    int32_t *prompt;
    int n_prompt;
    collector col;
} run_ctx;

int cli_run(int argc, char **argv);

/* role entry points: return after the role's work is done (errors are fatal) */
void role_device_main(run_ctx *r);
void role_cloud_main(run_ctx *r);

/* weight elements of layers [l0,l1) plus head (for the compute profile's FLOP count) */
double run_part_params(const model_config *c, int l0, int l1, int head);

#endif
