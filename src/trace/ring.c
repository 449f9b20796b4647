/* ring.c — see ring.h. One mutex and two condition variables: pushes and pops are once per
 * chunk (hundreds of records), so the lock costs nothing per record. */
#include "trace/ring.h"
#include "core/common.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void ring_init(ring *q, int n_slots, size_t slot_bytes) {
    memset(q, 0, sizeof *q);
    CHECK(n_slots >= 1 && slot_bytes >= 1, "ring of %d slots of %zu bytes", n_slots, slot_bytes);
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* timed waits immune to clock changes */
    pthread_cond_init(&q->not_full, &ca);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_condattr_destroy(&ca);
    q->n_slots = n_slots;
    q->slot_bytes = slot_bytes;
    q->slots = xcalloc((size_t)n_slots, sizeof *q->slots);
    for (int i = 0; i < n_slots; i++) q->slots[i].data = xmalloc(slot_bytes);
}

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ring_push(ring *q, int table, const void *data, size_t n, size_t bytes) {
    CHECK(bytes <= q->slot_bytes, "ring: a chunk of %zu bytes is larger than a slot (%zu bytes)", bytes,
          q->slot_bytes);
    pthread_mutex_lock(&q->mu);
    if (q->count == q->n_slots) {
        const double t0 = mono_now();
        q->full_waits++;
        while (q->count == q->n_slots) pthread_cond_wait(&q->not_full, &q->mu);
        q->full_wait_s += mono_now() - t0;
    }
    /* the slot is free: the consumer never touches slots outside [head, head + count) */
    ring_slot *s = &q->slots[(q->head + q->count) % q->n_slots];
    pthread_mutex_unlock(&q->mu);
    memcpy(s->data, data, bytes);   /* outside the lock: the consumer may pop meanwhile */
    s->table = table;
    s->n = n;
    s->bytes = bytes;
    pthread_mutex_lock(&q->mu);
    q->count++;
    q->pushes++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

ring_slot *ring_peek(ring *q, double timeout_s) {
    pthread_mutex_lock(&q->mu);
    if (q->count == 0 && timeout_s > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        const double end = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + timeout_s;
        ts.tv_sec = (time_t)end;
        ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&q->not_empty, &q->mu, &ts);   /* one wait: a wake or a push ends it */
    }
    ring_slot *s = q->count ? &q->slots[q->head] : NULL;
    pthread_mutex_unlock(&q->mu);
    return s;
}

void ring_pop(ring *q) {
    pthread_mutex_lock(&q->mu);
    if (q->count) {
        q->head = (q->head + 1) % q->n_slots;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
}

void ring_wake(ring *q) {
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

int ring_count(ring *q) {
    pthread_mutex_lock(&q->mu);
    const int n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void ring_free(ring *q) {
    if (!q->slots) return;
    for (int i = 0; i < q->n_slots; i++) free(q->slots[i].data);
    free(q->slots);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
    memset(q, 0, sizeof *q);
}
