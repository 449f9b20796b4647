/* config.h — the run configuration of `hat run`: an INI file, validated at start-up.
 *
 * Format: `[section]` headers, `key = value` lines, `#` or `;` comments (a whole line, or after
 * whitespace), blank lines. Unknown sections and keys are errors (named, with file:line).
 * Every rank parses the same file; the resolved configuration (every key, defaults filled in)
 * is dumped as INI text and stored in the trace. Relative paths are relative to the working
 * directory of the run. Sections and keys (default in brackets):
 *
 *   [run]       mode = ushape|hat|cloud-only [ushape]       seed = <u64> [1]
 *               (ushape: one round trip per token; hat: the device drafts with its SLM and the
 *               cloud verifies; cloud-only: the device sends token ids and the cloud runs the
 *               whole model — the non-private reference)
 *               trace = <path> [results/trace.h5]
 *               timing_shape = <shape name in shapes.ini>|none [none]  (compute the real model's
 *               tokens, charge every step's time as this shape would take on the rank's profile;
 *               the split maps by the same fractions of the layers, timing/cost_model.h, and the
 *               links carry the shape's hidden-state bytes)
 *               time_scale = <float >= 1> [1]  (time dilation: the run clock runs this many times slower
 *               than real time, so every modelled duration, compute profiles and links, takes
 *               time_scale times as long and real compute counts 1/time_scale: a slow host emulates
 *               fast hardware without distorted steps; every time recorded is run-clock time)
 *               peer_timeout_s = <float > 0> [600]  (liveness, in wall seconds: a rank that waits
 *               this long for a peer that owes it a message (a cloud's reply, a device's next
 *               round, a send taken) ends the run naming the peer; a cloud rank closes the session
 *               of a device silent that long, serves the others to their end, then fails the run)
 *               max_distorted = <fraction> [0.01]  (a step is distorted when its real compute took
 *               longer than its profile's prediction: above this fraction of a rank's steps the run
 *               warns at its end)
 *   [model]     path = <gguf> (required)     ctx = <int 16..1048576> [1024]
 *               device_threads = <int 1..1024> [1]   cloud_threads = <int 1..1024> [1]
 *   [split]     a = <int> [2]  b = <int> [2]          (device: [0,a) + [L-b,L); cloud: [a,L-b))
 *   [cloud]     ranks = <int 1..65536> [1]            scheme = replica [replica]
 *               tp = <int> [1]  (tensor parallelism: the cloud ranks form groups of tp ranks, each
 *               rank of a group holding 1/tp of the heads and FFN columns of [a, L-b); groups are
 *               replicas serving devices round-robin; ranks must be a multiple of tp)
 *               tp_mode = exact|allreduce [exact]  (exact: all-gathers, bit-identical to the unsplit
 *               model; allreduce: Megatron-LM's two all-reduces per layer, less traffic, equal to
 *               rounding only; see src/engine/tp.h)
 *               max_batch_tokens = <int 1..65536> [256]
 *               prefill_order = fcfs|fair [fcfs]  (which prompt chunks a pass takes after every
 *               ready decode round: fcfs, the prompts in the order their first chunks arrived, so
 *               prompts that arrive together finish one after the other as without chunking;
 *               fair, one chunk of each device in turn, all finishing near the end)
 *               compute = <server profile name in servers.ini>|none [none]  (pad every pass's
 *               measured time up to the profile's prediction, as devices do)
 *               backend = cpu|cuda|auto [cpu]  (cuda without a GPU, or in a build without CUDA, falls
 *               back to the CPU with a message; auto: cuda where a GPU is present)
 *               gpu_dtype = fp16|bf16 [fp16]  (GPU weights and GEMM inputs; fp32 accumulation)
 *               gpu = <int> [-1]  (CUDA device; -1: the cloud rank's index on its host mod GPUs)
 *               gpu_graphs = on|off [on]  (CUDA: replay each step shape from a captured CUDA graph)
 *               gpu_gemv = auto|off|on [auto]  (CUDA, steps of <= 8 tokens: the GEMV kernel where it
 *               matches cuBLAS and is timed faster at start-up / cuBLAS only / always, still checked)
 *   [transport] wire_dtype = fp32|fp16|bf16 [fp32]
 *               chunking = off|fixed|dynamic [fixed]  (how a prompt goes up: off, one message and
 *               one cloud pass; fixed, chunks of chunk_tokens; dynamic, every chunk's size chosen
 *               before it is sent from the fitted cost model, src/timing/chunk_plan.h)
 *               chunk_tokens = <int 2..65536> [32]  (fixed chunks)
 *               max_stall_ms = <float> [0]  (dynamic: no chunk's predicted cloud pass over it, so
 *               that a long prompt does not stall the other devices' decode rounds; 0: no bound)
 *               inflight = <int 1..256> [4]  (messages a device may have outstanding)
 *               emulate_links = on|off [on]
 *   [profiles]  links = <ini path> [configs/links.ini]
 *               devices = <ini path> [configs/devices.ini]
 *               servers = <ini path> [configs/servers.ini]   shapes = <ini path> [configs/shapes.ini]
 *               (read only when [cloud] compute / [run] timing_shape name one of theirs)
 *   [devices]   count = <int 1..65536> (required)     link = <profile name> [ethernet]
 *               compute = <profile name>|none [none]
 *               prompts = <prompts file: text, one prompt per line, or *.jsonl, one JSON object
 *                          {"prompt": ...} per line (engine/prompt.h); device i takes prompt i mod n>
 *               prompt = <text> (used when no prompts file)
 *               chat = on|off [on]           max_tokens = <int> [32]
 *               start_interval_s = <float> [0]   (device i starts at i * interval)
 *               temp = <float 0..100> [0]  top_k = <int> [0]  top_p = <float 1e-6..1> [1]
 *   [device.N]  per-device override of: link, compute, prompt, chat, max_tokens, start_s,
 *               temp, top_k, top_p, chunking   (N in [0, count))
 *   [hat]       adapter = <adapter file from hat calibrate>|identity [identity]
 *               gamma = <int> [4]  (draft tokens per round; the first gamma when adaptive)
 *               adaptive = on|off [off]  gamma_min = <int> [1]  gamma_max = <int> [8]
 *               (adaptive: per device, from its measured acceptance and round time; speculate.h)
 *   [fault]     deliberate faults for tests: kind = none|truncated_message|bad_version|
 *               token_ids|bad_checksum [none]   device = <int> [0]   at_seq = <int> [1]
 *
 * Profiles files are INI too: one section per profile name.
 *   links.ini:   up_mbps, down_mbps, latency_ms, jitter_ms, jitter = none|normal|exponential,
 *                source = <text: where the numbers come from>
 *   devices.ini, servers.ini, shapes.ini: timing/profiles.h
 */
#ifndef HAT_CONFIG_H
#define HAT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "net/emul.h"
#include "timing/cost_model.h"
#include "net/fault.h"
#include "net/wire.h"

#define CFG_PATH 512
#define CFG_NAME EMUL_NAME
#define CFG_SOURCE EMUL_SOURCE

/* [cloud] prefill_order; prefill_order_names is NULL-terminated, in enum order */
typedef enum { PREFILL_FCFS = 0, PREFILL_FAIR = 1 } prefill_order;
extern const char *const prefill_order_names[];

/* [transport] chunking; chunk_policy_names is NULL-terminated, in enum order */
typedef enum { CHUNK_OFF = 0, CHUNK_FIXED = 1, CHUNK_DYNAMIC = 2 } chunk_policy;
extern const char *const chunk_policy_names[];

typedef struct {
    char *prompt;                  /* owned */
    int chunking;                  /* chunk_policy */
    int chat;                      /* wrap in the model's chat template */
    int max_tokens;
    double start_s;                /* on the run clock (0 = when all ranks are ready) */
    float temp, top_p;
    int top_k;
    link_profile link;
    hw_profile compute;
} device_cfg;

typedef enum { RUN_USHAPE = 0, RUN_HAT = 1, RUN_CLOUD_ONLY = 2 } run_mode;

typedef struct {
    char path[CFG_PATH];           /* the config file itself */
    /* [run] */
    char mode[16];
    run_mode run_mode;
    uint64_t seed;
    char trace[CFG_PATH];
    double peer_timeout_s;         /* a peer silent this long (wall seconds) where one was awaited ends the run */
    /* [model] */
    char model_path[CFG_PATH];
    int ctx, device_threads, cloud_threads;
    /* [split] */
    int a, b;
    /* [cloud] */
    int n_cloud;
    char scheme[16];
    int tp;                        /* tensor-parallel group size (1: none) */
    int tp_mode;                   /* tp_mode (tp.h): 0 exact, 1 allreduce */
    int max_batch_tokens;
    int prefill_order;             /* prefill_order */
    int backend;                   /* backend_kind (backend.h): 0 cpu, 1 cuda, 2 auto */
    int gpu_dtype;                 /* backend_dtype: 0 fp16, 1 bf16 */
    int gpu;                       /* CUDA device ordinal, -1 auto */
    int gpu_graphs;                /* 1: CUDA graphs for repeated step shapes */
    int gpu_gemv;                  /* BACKEND_GEMV_*: 0 auto, 1 off, 2 on */
    /* [transport] */
    wire_dtype wire;
    int chunking;                  /* chunk_policy: the devices' default */
    int chunk_tokens, inflight, emulate_links;
    double max_stall_ms;
    /* [profiles] */
    char links_path[CFG_PATH], devices_path[CFG_PATH], servers_path[CFG_PATH], shapes_path[CFG_PATH];
    char prompts_path[CFG_PATH];   /* [devices] prompts ("" : none) */
    /* timing (timing/cost_model.h): [cloud] compute, [run] timing_shape and max_distorted */
    hw_profile cloud_compute;      /* name "none": the cloud's measured time stands */
    char shape_name[CFG_NAME];     /* "none": every step is charged as the real model's own shape */
    model_shape shape;             /* the modelled shape (shape_name != "none") */
    double max_distorted;          /* the fraction of distorted steps above which the run warns */
    double time_scale;             /* [run] time_scale: the run clock's dilation (>= 1) */
    /* [devices] + [device.N] */
    int n_devices;
    device_cfg *dev;               /* (n_devices) */
    /* [hat] */
    char adapter_path[CFG_PATH];   /* "identity": no adapter file (plain layer skipping) */
    int gamma, gamma_adaptive, gamma_min, gamma_max;
    /* [fault] */
    fault_kind fault;
    int fault_device, fault_seq;
    /* the resolved configuration as INI text (every key, defaults filled in); owned */
    char *resolved;
} hat_config;

/* Parse `path` (and the profile files it names, and the prompts file). On error returns a
 * HAT_ERR_* code with "file:line: message" in err and leaves *c freed. */
int config_load(hat_config *c, const char *path, char *err, size_t errlen);
/* Checks that need facts from outside the file: world size == ranks + devices, split points
 * against the model's layer count (1 <= a, 1 <= b, a + b < n_layer), ctx vs the model. */
int config_validate(const hat_config *c, int world_size, int n_layer, int n_ctx_train, char *err, size_t errlen);
void config_free(hat_config *c);


#endif
