/* timing_run.h — the run's use of the one cost model (timing/cost_model.h): which shape every
 * step is charged as, the split mapped onto it, and the prediction of each kind of step.
 *
 * Without [run] timing_shape the shape is the real model's own (its bytes per weight measured
 * from the file's decoder-layer tensors) and the split is the configured one. With it, the
 * tokens are still the real model's, but every step is charged as the named shape would take:
 * the split maps by the same fractions of the layers (cost_map_split: a' = round(a·L'/L),
 * b' = round(b·L'/L)), the devices' and the cloud's passes run the mapped layer ranges, the links
 * charge rows of the shape's hidden size, and memory is checked: a device profile must hold its
 * modelled layers, embedding, head and caches, a server profile the middle layers and a cache
 * per device it serves.
 */
#ifndef HAT_TIMING_RUN_H
#define HAT_TIMING_RUN_H

#include <stddef.h>

#include "backends/backend.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "run/config.h"
#include "timing/cost_model.h"

typedef struct {
    model_shape shape;     /* every step is charged as this shape */
    int modelled;          /* [run] timing_shape names it (else the real model's own) */
    int L, a, b;           /* its layers and the split on them */
    double adapter_scale;  /* the adapter's weights scale with hidden^2: (h'/h)^2 */
} run_timing;

/* the device's pieces of compute */
typedef enum { PIECE_INPUT = 0, PIECE_OUTPUT = 1, PIECE_DRAFT = 2 } run_piece;

/* the real model's own shape: its hyper-parameters, bytes per weight as stored in its first layer */
void run_timing_real_shape(model_shape *s, const gguf_file *gf, const model_config *mc);
/* shape, mapped split, memory checks against every profile in use (errors name the key) */
int run_timing_init(run_timing *t, const hat_config *c, const gguf_file *gf, const model_config *mc, char *err,
                    size_t errlen);
/* a device's piece over n tokens at pos0 (n_head rows through the LM head; adapter_bytes: the
 * real adapter's fp32 weight bytes, for PIECE_DRAFT) on profile hw: predicted seconds */
double run_timing_device(const run_timing *t, const hw_profile *hw, run_piece piece, int pos0, int n, int n_head,
                         double adapter_bytes);
/* the cloud's pass over ns sequences: the middle layers, or with `whole` (cloud-only) the whole
 * model with the embedding and one LM-head row per sequence */
double run_timing_cloud(const run_timing *t, const hw_profile *hw, const backend_seq *seqs, int ns, int whole,
                        cost_parts *parts);
/* one line for the trace and the start-up print: the shape and the split charged */
void run_timing_describe(const run_timing *t, char *buf, size_t cap);

#endif
