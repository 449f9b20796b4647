/* ring.h — a fixed ring of record chunks from one producer thread to one consumer thread: how
 * rank 0's serving thread hands its trace records to the trace writer thread (collector.c).
 *
 * Every slot is allocated at ring_init (n_slots x slot_bytes); pushing copies a chunk into the
 * oldest free slot, so the producer never allocates. A full ring blocks the producer until the
 * consumer frees a slot: records are never dropped, and the waits are counted (full_waits,
 * full_wait_s) so a trace shows when the writer fell behind. The consumer peeks at the oldest
 * chunk, uses it in place, then pops it.
 */
#ifndef HAT_RING_H
#define HAT_RING_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int table;               /* what the records are (a trace_table) */
    size_t n;                /* records in the chunk */
    size_t bytes;            /* bytes used of data */
    unsigned char *data;     /* (slot_bytes) */
} ring_slot;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t not_full, not_empty;
    ring_slot *slots;        /* (n_slots) */
    int n_slots, head, count;
    size_t slot_bytes;
    /* producer side, under mu */
    uint64_t pushes, full_waits;
    double full_wait_s;
} ring;

void ring_init(ring *q, int n_slots, size_t slot_bytes);
/* Copies bytes (<= slot_bytes, fatal otherwise) of n records of table into the next slot; blocks
 * while all slots are full. */
void ring_push(ring *q, int table, const void *data, size_t n, size_t bytes);
/* The oldest chunk, or NULL if none came within timeout_s (0: do not wait). It stays in the ring,
 * untouched by the producer, until ring_pop. */
ring_slot *ring_peek(ring *q, double timeout_s);
void ring_pop(ring *q);
/* Wakes a consumer waiting in ring_peek (it returns what is there, maybe NULL). */
void ring_wake(ring *q);
int ring_count(ring *q);
void ring_free(ring *q);

#endif
