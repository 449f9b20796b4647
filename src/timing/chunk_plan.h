/* chunk_plan.h — dynamic chunked prefill: the predicted pipeline of a prompt's chunks and the
 * chooser of chunk sizes that minimises it (no MPI, no clock, no GSL: pure arithmetic).
 *
 * The model (all times in seconds, relative to "now", the moment of planning): the prompt's
 * tokens [pos0, pos0 + n) go up in chunks l_1..l_k (sum n) through three serial stages, chunk
 * i's stage starting when both its input (the previous stage of chunk i) and the stage (chunk
 * i-1 on it) are free:
 *   device   D_i = max(D_{i-1}, dev_free) + dev(l_i)         dev(l) = max(dev_c0 + dev_c1 l, dev_floor)
 *   uplink   U_i = max(D_i, U_{i-1}, link_free) + tx(l_i)   tx(l)  = tx_c0 + tx_c1 l  (serialisation)
 *            A_i = U_i + lat                                 (propagation: a pure delay, not a stage)
 *   cloud    C_i = max(A_i, C_{i-1}, cloud_free) + cld(p_i, l_i)
 *            cld(p, l) = cl_c0 + cl_c1 l + cl_c2 (l p + l (l + 1) / 2) + cl_c3 l^2 + cl_other
 * where p_i = pos0 + l_1 + .. + l_{i-1} is the chunk's first position (l p + l (l + 1) / 2 is the
 * sum over its tokens of the context each attends to; cost_fit.h has the model) and cl_other the
 * cost the other devices' work adds to every pass it shares. The objective is the first token's
 * time T = C_k + tail(l_k), tail(l) = tail_c0 + tail_c1 l: after the cloud finishes the last chunk
 * its reply still comes down and the device runs its output submodel over its l_k rows (0 and 0:
 * the objective is C_k, when the cloud finishes). A long last chunk costs its tail once more.
 *
 * The chooser (chunk_plan_solve) puts chunk boundaries on a grid of step g tokens (pos0 + g,
 * pos0 + 2g, ..; the last chunk may be shorter) and returns a plan that minimises C_k over every
 * plan on that grid that respects the size limits: T is minimal for the model at that granularity (a
 * dynamic program over boundaries whose states are the non-dominated (D, U, C) triples: every
 * stage update is non-decreasing in each of D, U and C, so a dominated state can never end
 * earlier; the tail, a function of the last chunk alone, is added where a plan ends; chunk_plan.pruned says when the solver's cap on those states was reached, which the
 * tests show does not happen on the cases they cover). max_stall_s > 0 excludes chunks whose
 * cloud time cld(p, l) exceeds it (SGLang-style target latency: a long prompt must not stall the
 * decode rounds batched with it); when no plan meets it, the best plan whose over-bound chunks
 * are all small (shorter than twice max(min_chunk, g)) is used, or where the grid and the size
 * limits leave no such plan the best plan without the bound, and the plan says so. The solver
 * allocates its table (grid points x 96 states) once per plan: a prefill step, never a decode one.
 */
#ifndef HAT_CHUNK_PLAN_H
#define HAT_CHUNK_PLAN_H

#include <stddef.h>

typedef struct {
    double dev_c0, dev_c1, dev_floor;     /* device stage: input submodel on l tokens */
    double tx_c0, tx_c1, lat;             /* uplink: serialisation per chunk; one-way latency */
    double cl_c0, cl_c1, cl_c2, cl_c3, cl_other; /* cloud pass */
    double dev_free, link_free, cloud_free; /* when each stage is first free (>= 0: from now) */
    double tail_c0, tail_c1;              /* after the cloud: the last chunk's reply and output work */
} chunk_cost;

typedef struct {
    int n;              /* tokens to plan (>= 1) */
    int pos0;           /* position of the first one (context already in the cloud's cache) */
    int gran;           /* grid step g in tokens; <= 0: automatic (the smallest g >= min_chunk
                         * that gives at most CHUNK_PLAN_GRID boundaries, but at most max_chunk / 2) */
    int min_chunk;      /* >= 1; every chunk but a whole prompt shorter than it is >= min_chunk */
    int max_chunk;      /* 0: none; else every chunk <= max_chunk (message buffers) */
    double max_stall_s; /* 0: none; else every chunk's cld(p, l) <= max_stall_s where possible */
} chunk_req;

#define CHUNK_PLAN_GRID 128   /* automatic granularity: at most this many grid boundaries */

typedef struct {
    int k;              /* chunks */
    double done;        /* predicted T = C_k + tail(l_k) */
    int gran;           /* the grid step used */
    int stall_bound;    /* 1: max_stall_s excluded larger chunks somewhere in the plan (it binds);
                         * 2: no plan met it (small chunks over it were used) */
    int pruned;         /* 1: a grid point held more non-dominated states than the solver keeps
                         * (96): the plan is valid, its optimality no longer guaranteed */
} chunk_plan;

/* Predicted finish times of a given plan: C_i into done[i] (may be NULL), returns T = C_k + tail(l_k). */
double chunk_plan_eval(const chunk_cost *c, int pos0, const int *len, int k, double *done);
/* cld(p, l) of one chunk */
double chunk_plan_cloud(const chunk_cost *c, int p, int l);
/* The best plan: sizes into len[0..k) (cap entries available; returns -1 if cap is too small,
 * else k). *out may be NULL. */
int chunk_plan_solve(const chunk_cost *c, const chunk_req *r, int *len, int cap, chunk_plan *out);

#endif
