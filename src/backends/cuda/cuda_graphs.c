/* cuda_graphs.c — CUDA graphs of the CUDA backend's steps (cuda_internal.h): a step's layer loop
 * (cuda_layers) is captured the second time its shape is seen and replayed from then on; the
 * GRAPH_CACHE shapes used last are kept. */
#include "backends/cuda/cuda_internal.h"

#include <stdio.h>

#define GRAPH_MAX_TOK 256  /* steps of more tokens are GEMM-bound: launched directly */
#define GRAPH_AFTER 2      /* a shape is captured the second time it is seen: one-off shapes never are, and the
                            * first, direct run has loaded every kernel it uses (CUDA's lazy module loading
                            * must not happen inside a capture) */

/* graphs off for the rest of the run, with a note on stderr (the step then launches directly) */
static void graphs_off(cu_impl *c, const char *what, cudaError_t e, const char *detail) {
    (void)cudaGetLastError();   /* clear a non-sticky error left by the failed call */
    snprintf(c->graphs_why, sizeof c->graphs_why, "%s failed: %s", what,
             detail ? detail : cudaGetErrorString(e));
    fprintf(stderr, "backend cuda: note: CUDA graphs turned off (%s); steps launch their kernels directly\n",
            c->graphs_why);
    c->graphs = 0;
}

/* one step through the graph of its shape: HAT_OK when it ran (launched on the stream), 1 when the
 * caller must launch directly (a new shape, a step too large, or graphs turned off) */
int cuda_graphs_step(backend *b, cu_impl *c, int tok, int max_pos) {
    if (!c->graphs || tok > GRAPH_MAX_TOK) return 1;
    const int th = hk_attention_threads(max_pos, b->cfg.head_dim);
    cu_graph *g = NULL, *victim = &c->gcache[0];
    for (int i = 0; i < GRAPH_CACHE; i++) {
        cu_graph *e = &c->gcache[i];
        if (e->tok == tok && e->threads == th) { g = e; break; }
        if (!e->tok || (victim->tok && e->used < victim->used)) victim = e;
    }
    if (!g) {   /* first sight of this shape: remember it, launch directly */
        if (victim->exec) cudaGraphExecDestroy(victim->exec);
        *victim = (cu_graph){.tok = tok, .threads = th, .seen = 1, .used = ++c->gclock};
        return 1;
    }
    g->used = ++c->gclock;
    if (!g->exec) {
        if (++g->seen < GRAPH_AFTER) return 1;
        char err[256] = "";
        cudaGraph_t graph = NULL;
        cudaError_t e = cudaStreamBeginCapture(c->st, cudaStreamCaptureModeThreadLocal);
        if (e != cudaSuccess) { graphs_off(c, "cudaStreamBeginCapture", e, NULL); return 1; }
        const int rc = cuda_layers(b, c, tok, max_pos, err, sizeof err);
        e = cudaStreamEndCapture(c->st, &graph);
        if (rc || e != cudaSuccess) {   /* nothing ran: the caller launches the step directly */
            if (graph) cudaGraphDestroy(graph);
            graphs_off(c, "capturing a step", e, rc ? err : NULL);
            return 1;
        }
        e = cudaGraphInstantiateWithFlags(&g->exec, graph, 0);
        cudaGraphDestroy(graph);
        if (e != cudaSuccess) {
            g->exec = NULL;
            graphs_off(c, "cudaGraphInstantiate", e, NULL);
            return 1;
        }
        c->stats.captures++;
    }
    const cudaError_t e = cudaGraphLaunch(g->exec, c->st);
    if (e != cudaSuccess) { graphs_off(c, "cudaGraphLaunch", e, NULL); return 1; }
    c->stats.graph_steps++;
    return HAT_OK;
}
