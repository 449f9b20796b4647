/* tp_threads.c — see tp_threads.h */
#include "support/tp_threads.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct tp_threads {
    int size;
    pthread_barrier_t bar;
    float **bufs;     /* (size) each rank's buffer of the current all-reduce */
    void *bsrc;       /* rank 0's buffer of the current broadcast */
};

typedef struct {
    tp_threads *g;
    int r;
} member;

static member members[64];   /* tp_comm.ctx of rank r of the (one) live group */

tp_threads *tp_threads_new(int size) {
    tp_threads *g = calloc(1, sizeof *g);
    g->size = size;
    pthread_barrier_init(&g->bar, NULL, (unsigned)size);
    g->bufs = calloc((size_t)size, sizeof *g->bufs);
    return g;
}

void tp_threads_free(tp_threads *g) {
    if (!g) return;
    pthread_barrier_destroy(&g->bar);
    free(g->bufs);
    free(g);
}

static int allreduce(void *ctx, float *buf, size_t n, char *err, size_t errlen) {
    (void)err; (void)errlen;
    member *m = ctx;
    tp_threads *g = m->g;
    g->bufs[m->r] = buf;
    pthread_barrier_wait(&g->bar);
    float *sum = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float s = g->bufs[0][i];
        for (int r = 1; r < g->size; r++) s += g->bufs[r][i];
        sum[i] = s;
    }
    pthread_barrier_wait(&g->bar);   /* everyone has read every buffer */
    memcpy(buf, sum, n * sizeof(float));
    free(sum);
    pthread_barrier_wait(&g->bar);
    return 0;
}

static int allgather(void *ctx, const void *send, void *recv, size_t bytes, char *err, size_t errlen) {
    (void)err; (void)errlen;
    member *m = ctx;
    tp_threads *g = m->g;
    g->bufs[m->r] = (float *)send;
    pthread_barrier_wait(&g->bar);
    for (int r = 0; r < g->size; r++) memcpy((char *)recv + (size_t)r * bytes, g->bufs[r], bytes);
    pthread_barrier_wait(&g->bar);
    return 0;
}

static int bcast(void *ctx, void *buf, size_t bytes, char *err, size_t errlen) {
    (void)err; (void)errlen;
    member *m = ctx;
    tp_threads *g = m->g;
    if (m->r == 0) g->bsrc = buf;
    pthread_barrier_wait(&g->bar);
    if (m->r != 0) memcpy(buf, g->bsrc, bytes);
    pthread_barrier_wait(&g->bar);
    return 0;
}

tp_comm tp_threads_comm(tp_threads *g, int r) {
    members[r] = (member){g, r};
    return (tp_comm){.rank = r, .size = g->size, .ctx = &members[r], .allreduce = allreduce,
                     .allgather = allgather, .bcast = bcast};
}

typedef struct {
    void (*fn)(int, void *);
    int r;
    void *arg;
} job;

static void *thread_main(void *p) {
    job *j = p;
    j->fn(j->r, j->arg);
    return NULL;
}

void tp_threads_run(int size, void (*fn)(int r, void *arg), void *const *args) {
    pthread_t *t = calloc((size_t)size, sizeof *t);
    job *j = calloc((size_t)size, sizeof *j);
    for (int r = 0; r < size; r++) {
        j[r] = (job){fn, r, args[r]};
        pthread_create(&t[r], NULL, thread_main, &j[r]);
    }
    for (int r = 0; r < size; r++) pthread_join(t[r], NULL);
    free(t);
    free(j);
}
