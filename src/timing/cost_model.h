/* cost_model.h — the one model of how long a forward pass takes on a piece of hardware.
 *
 * Every compute step of every role asks it: the device's input submodel, draft and output
 * submodel (configs/devices.ini profiles), the cloud's middle submodel over a batch of many
 * devices' tokens and the cloud-only server's whole model (configs/servers.ini profiles). The
 * pass is described by the model shape whose time is charged (configs/shapes.ini, or the real
 * model's own shape), the layers it runs, its tokens and the context they attend to.
 *
 * Batch-aware roofline, per pass (k = the profile's GPUs, 1 for a device; tensor parallelism
 * splits every layer's weights, heads and FLOPs k ways, Megatron-LM style):
 *   weights = Σ_layers P_layer · bpw  (+ embedding rows looked up, + LM head when run)
 *             read once per pass, however many tokens it holds (P_layer = 2·h² + 2·h·kv + 3·h·f)
 *   kv      = Σ_layers 2·kv·bkv · (Σ_seq kv_len_seq + n)   (each sequence's cache read once per
 *             layer, as a fused attention kernel does; the new rows written)
 *   flops   = Σ_layers (2·P_layer·n + 4·h·ctx_sum)  (+ 2·vocab·h per head row)
 *             ctx_sum = Σ over tokens of the positions each attends to, itself included
 *   mem_s   = (weights + kv) / k / (mem_bw · efficiency)
 *   flop_s  = flops / k / (tflops · flops_efficiency)
 *   comm_s  = k > 1: per layer 2 all-reduces of n·h fp16 activations, ring algorithm:
 *             2 · [2(k-1)/k · 2·n·h / link_bw + 2(k-1) · link_latency]
 *   attn_s  = with the optional attn_tflops: the attention FLOPs (4·h·ctx_sum a layer) run at that
 *             rate after the matmuls instead of inside flop_s (engines whose attention is not a
 *             tensor-core GEMM: a CPU's scalar loop over the cache; fitted, experiments/fit_cpu_profile.py)
 *   total   = max(mem_s, flop_s) + attn_s + comm_s
 * with h = hidden, kv = kv_heads · hidden / heads, f = ffn, bpw / bkv = bytes per weight / per
 * KV element. Pure arithmetic: no clock, no I/O (timing/profiles.h reads the INI files).
 */
#ifndef HAT_COST_MODEL_H
#define HAT_COST_MODEL_H

#include <stddef.h>

#include "engine/model.h"

#define COST_NAME 64      /* a profile or shape name */
#define COST_SOURCE 512   /* where its numbers come from */

typedef enum { HW_DEVICE = 0, HW_SERVER = 1 } hw_kind;

/* a hardware profile (devices.ini or servers.ini); name "none": no compute emulation */
typedef struct {
    char name[COST_NAME];
    int kind;                       /* hw_kind */
    double mem_bw_gbs;              /* per GPU (device: the module), GB/s (1e9 B/s) */
    double efficiency;              /* fraction of mem_bw a memory-bound pass reaches, (0,1] */
    double tflops;                  /* dense FP16 TFLOP/s per GPU */
    double flops_efficiency;        /* fraction of tflops a compute-bound pass reaches, (0,1] */
    double attn_tflops;             /* optional: attention's own rate, TFLOP/s (0: inside tflops) */
    double mem_gb;                  /* memory per GPU (device: for weights and caches), GB */
    int gpus;                       /* GPUs a pass is split over (tensor parallelism); 1 for devices */
    double link_gbs;                /* servers: GPU interconnect per direction, GB/s */
    double link_latency_us;         /* servers: latency of one all-reduce step, us */
    char source[COST_SOURCE];
} hw_profile;

/* a model shape whose time is charged (shapes.ini, or the real model's: cost_shape_of_model) */
typedef struct {
    char name[COST_NAME];
    int layers, hidden, ffn, heads, kv_heads, vocab;
    int tied;                       /* the LM head is the embedding matrix */
    double bytes_per_weight;        /* weights as stored (2: fp16; 0.625: Q4_1) */
    double kv_bytes;                /* bytes per K/V element (2: fp16) */
    char source[COST_SOURCE];
} model_shape;

/* the work of one pass */
typedef struct {
    int l0, l1;                     /* decoder layers [l0, l1) of the shape */
    int embed;                      /* the pass looks up its tokens' embeddings */
    int n_head;                     /* rows through the final norm + LM head (0: none) */
    int n_tok;                      /* tokens in the pass (all sequences) */
    double ctx_sum;                 /* Σ over tokens of the positions attended, itself included */
    double kv_sum;                  /* Σ over sequences of the cache length before the pass */
    double extra_bytes;             /* more weights read once per pass (e.g. the adapter) */
    double extra_flops;             /* and their FLOPs */
} cost_work;

typedef struct {
    double weight_bytes, kv_bytes, flops;   /* of the whole pass, before the k-way split */
    double attn_flops;                      /* of flops: attention's (4·h·ctx_sum a layer) */
    double mem_s, flop_s, attn_s, comm_s, total_s;
} cost_parts;

static inline int hw_enabled(const hw_profile *p) { return p && p->name[0] && p->mem_bw_gbs > 0; }

/* parameters of one decoder layer, and of the embedding table (= the head when tied) */
double cost_layer_params(const model_shape *s);
double cost_embed_params(const model_shape *s);
/* the work of one sequence's n tokens at positions pos0.. over layers [l0, l1) */
cost_work cost_work_seq(int l0, int l1, int pos0, int n);
/* adds one more sequence of n tokens at pos0 to a batch's work (same layers) */
void cost_work_add_seq(cost_work *w, int pos0, int n);
/* the pass's bytes and FLOPs (no profile needed) */
void cost_totals(const model_shape *s, const cost_work *w, cost_parts *parts);
/* predicted seconds (0 when the profile is disabled); parts may be NULL (its totals are filled
 * whatever the profile) */
double cost_predict(const hw_profile *hw, const model_shape *s, const cost_work *w, cost_parts *parts);

/* the real model's shape: counts from the config, bytes per weight = weight bytes / parameters of
 * its decoder layers as loaded, kv_bytes 4 (the engine's caches are fp32) */
void cost_shape_of_model(model_shape *s, const char *name, const model_config *c, int tied, double bytes_per_weight);
/* The split a, b of a model of L layers mapped to shape s by the same fractions:
 * a' = round(a·L'/L), b' = round(b·L'/L) (halves up). Errors when a' or b' is 0 or nothing is
 * left for the cloud. */
int cost_map_split(const model_shape *s, int L, int a, int b, int *a2, int *b2, char *err, size_t errlen);
/* memory a device holds for layers [0,a) + [L-b, L), the embedding and head, and their caches of
 * ctx positions; a server for the middle layers and n_sessions caches of ctx positions (bytes) */
double cost_device_bytes(const model_shape *s, int a, int b, int ctx);
double cost_server_bytes(const model_shape *s, int a, int b, int ctx, int n_sessions);

#endif
