/* backend.h — the executor of a model's layers for many sessions: the cloud's step.
 *
 * The backend table is chosen once at start-up (backend_open): the CPU engine (src/engine/forward.c,
 * OpenBLAS + C), or the CUDA backend (src/backends/cuda/: cuBLAS + kernels/), with a clean
 * fallback to the CPU and a message saying why when no GPU is there. Callers see only this
 * header: no CUDA header is included by it or by src/engine/forward.c.
 *
 * A backend holds layers [l0, l1) of one model (its weights, from a loaded GGUF part or from the
 * synthetic generator of src/engine/synth.h) and one KV cache per session slot. One step runs many
 * sequences at once (decode rounds and prefill chunks of different slots: continuous batching):
 * the caller writes their input hidden states, concatenated in sequence order, into the host
 * buffer backend_io() (pinned memory on CUDA, so messages are decoded straight into it) and gets
 * the hidden states after layer l1-1 back in the same buffer.
 *
 * A whole model (the cloud-only baseline's cloud) is a plan with the ends too: opened with
 * embed, a step starts at the token embedding and reads token ids from backend_ids(); opened
 * with head, it ends with the final norm and the LM head and leaves one logits row per sequence
 * (its last token's) in backend_logits(). Which backend has these steps: backend_open (backend_open.c).
 */
#ifndef HAT_BACKEND_H
#define HAT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"
#include "engine/tp.h"

typedef enum { BACKEND_CPU = 0, BACKEND_CUDA = 1, BACKEND_AUTO = 2 } backend_kind;
typedef enum { BACKEND_FP16 = 0, BACKEND_BF16 = 1 } backend_dtype;   /* GPU weights and GEMM inputs */

static inline const char *backend_dtype_name(backend_dtype t) { return t == BACKEND_BF16 ? "bf16" : "fp16"; }

/* A synthetic model (src/engine/synth.c): shape name and seed. */
typedef struct {
    const char *shape;   /* NULL: the weights come from backend_desc.m */
    uint64_t seed;
} backend_synth;

typedef struct {
    backend_kind kind;
    const model *m;          /* the part holding [l0, l1) (CPU weights; the CUDA backend uploads them) */
    backend_synth synth;     /* or a synthetic model (m == NULL) */
    int l0, l1;              /* layers run by every step */
    int n_slots;             /* sessions, each with its own KV cache */
    int max_tok;             /* tokens of one step, all sequences together */
    int n_ctx;               /* positions per session */
    int n_threads;           /* CPU threads (CPU backend) */
    int gpu;                 /* CUDA device ordinal, -1: local_rank % device count */
    int local_rank;          /* this process's index among the ranks of its host (for gpu = -1) */
    backend_dtype dtype;     /* CUDA: weight and GEMM input type */
    /* tensor parallelism (tp.h): this rank holds its share of the heads and FFN columns of the
     * layers and every step all-reduces the residual stream over the group; size 0/1: whole layers.
     * Every rank of a group runs the same steps with the same inputs. */
    tp_comm tp;
    int nccl;                /* CUDA under tensor parallelism: 1 all-reduce with NCCL on the GPU when it
                              * can run (one GPU per rank), else host-staged through tp.allreduce */
    int no_graphs;           /* CUDA: 1 never captures CUDA graphs (every step launches its kernels) */
    int gemv;                /* CUDA products of steps of <= 8 tokens: BACKEND_GEMV_AUTO (the custom GEMV
                              * kernel where it matches cuBLAS and is timed faster at open), _OFF (cuBLAS
                              * only), _ON (the GEMV kernel for every such step, still checked) */
    int embed;               /* 1: steps start at the token embedding (token ids in; needs l0 = 0 and a part
                              * holding the embedding; no tensor parallelism) */
    int head;                /* 1: steps end with the final norm + LM head (logits out; needs l1 = n_layer
                              * and a part holding the head; no tensor parallelism) */
} backend_desc;
enum { BACKEND_GEMV_AUTO = 0, BACKEND_GEMV_OFF = 1, BACKEND_GEMV_ON = 2 };

/* CUDA backend counters (backend_cuda_stats_of; all zero for another backend) */
typedef struct {
    long long graph_steps;    /* steps replayed from a captured CUDA graph */
    long long direct_steps;   /* steps whose kernels were launched one by one */
    long long captures;       /* graphs captured and instantiated */
    int gemv_max_n;           /* steps of up to this many tokens use the GEMV kernel (0: cuBLAS only) */
    double gemv_us, cublas_us;/* one layer's products at 1 token, timed at open (0: not timed) */
    char gemv_note[200];      /* the choice and why, one line */
} backend_cuda_stats;

typedef struct {
    int slot, pos0, n_tok;
    /* numerics of single-token decoding for every token (CPU: bit-identical to n_tok one-token
     * steps; see forward_seq). The CUDA backend computes every row the same way whatever the
     * batch, except that the products of another step size may run another way (another cuBLAS
     * algorithm, or the GEMV kernel for steps of <= 8 tokens): equal to rounding. */
    int decode;
} backend_seq;

typedef struct backend backend;

typedef struct {
    const char *name;
    /* runs layers [l0, l1) over the sequences, reading and writing backend_io (sum n_tok, dim);
     * needs pos0 <= kv length of the slot; afterwards the slot holds pos0 + n_tok positions */
    int (*forward)(backend *b, const backend_seq *seqs, int n_seq, char *err, size_t errlen);
    int (*kv_len)(const backend *b, int slot);
    void (*truncate)(backend *b, int slot, int n);   /* keep positions [0, n), n <= kv_len */
    void (*free)(backend *b);
    /* timing probes only: the slot holds n positions (n <= n_ctx) whatever their cache rows hold,
     * so that a pass at a long context can be timed without computing the context first */
    void (*pretend)(backend *b, int slot, int n);
} backend_ops;

struct backend {
    const backend_ops *ops;
    backend_kind kind;        /* what runs (after any fallback) */
    model_config cfg;         /* the whole model's hyper-parameters (also under tensor parallelism) */
    int l0, l1, n_slots, max_tok, n_ctx;
    int tp_rank, tp_size;     /* tensor-parallel place (size 1: none) */
    float *io;                /* (max_tok, dim) host buffer: inputs in, outputs out */
    int embed, head;          /* the plan's ends (backend_desc) */
    int32_t *ids;             /* embed: (max_tok) token ids in, concatenated in sequence order; else NULL */
    float *logits;            /* head: (min(n_slots, max_tok), n_vocab) one row per sequence of the last
                               * step, in sequence order; else NULL */
    char desc[320];           /* one line: backend, device, dtype, weights (synthetic or file), memory */
    void *impl;
};

/* Opens the backend d->kind asks for. BACKEND_AUTO takes CUDA when this build has it and a GPU
 * is present, else the CPU; BACKEND_CUDA without a usable GPU (or in a CPU-only build) also falls
 * back to the CPU, and *note (when note != NULL) then says why in one line ("" when no fallback
 * happened). So does a plan with a step the CUDA backend lacks (embed, head: it runs layers
 * only), with a note for cuda, and for auto when a GPU is present. Errors (bad shape, out of
 * memory, CUDA failure) return non-zero with a message. */
int backend_open(backend **out, const backend_desc *d, char *note, size_t notelen, char *err, size_t errlen);

static inline void backend_free(backend *b) {
    if (b) b->ops->free(b);
}
static inline float *backend_io(backend *b) { return b->io; }
static inline int32_t *backend_ids(backend *b) { return b->ids; }
static inline const float *backend_logits(const backend *b) { return b->logits; }

/* Checks one step against the plan and the slots' caches (every backend calls it first): slots in
 * range and distinct, positions contiguous with what a slot holds, within n_ctx and max_tok. */
int backend_check_step(const backend *b, const backend_seq *seqs, int n_seq, char *err, size_t errlen);
static inline int backend_forward(backend *b, const backend_seq *s, int n, char *err, size_t errlen) {
    return b->ops->forward(b, s, n, err, errlen);
}
static inline int backend_kv_len(const backend *b, int slot) { return b->ops->kv_len(b, slot); }
static inline void backend_truncate(backend *b, int slot, int n) { b->ops->truncate(b, slot, n); }
static inline void backend_pretend(backend *b, int slot, int n) { b->ops->pretend(b, slot, n); }

/* implementations (backend_open.c dispatches) */
int backend_cpu_open(backend **out, const backend_desc *d, char *err, size_t errlen);
/* CUDA: 0 and n > 0 GPUs, or non-zero and *why set (no GPU, driver missing, CPU-only build) */
int backend_cuda_available(int *n_gpu, char *why, size_t whylen);
/* refuses a plan with embed or head (HAT_ERR_UNSUPPORTED): backend_open does not ask it for one */
int backend_cuda_open(backend **out, const backend_desc *d, char *err, size_t errlen);
/* the CUDA backend's counters (zeros for another backend or a CPU-only build) */
backend_cuda_stats backend_cuda_stats_of(const backend *b);

#endif
