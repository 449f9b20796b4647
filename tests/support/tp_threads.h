/* tp_threads.h — a tensor-parallel group of threads in one process (tests only): the collective of
 * tp.h over shared memory, so tensor parallelism is tested without MPI (and on a GPU machine that
 * has none). Sums in rank order, so every rank gets the same bits, as the MPI one does. */
#ifndef HAT_TP_THREADS_H
#define HAT_TP_THREADS_H

#include "engine/tp.h"

typedef struct tp_threads tp_threads;

tp_threads *tp_threads_new(int size);
void tp_threads_free(tp_threads *g);
/* the tp_comm of rank r (mode TP_EXACT; set .mode for the other) */
tp_comm tp_threads_comm(tp_threads *g, int r);
/* runs fn(r, arg[r]) on `size` threads and joins them */
void tp_threads_run(int size, void (*fn)(int r, void *arg), void *const *args);

#endif
