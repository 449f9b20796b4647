/* test_ring.c — the chunk ring between rank 0's serving thread and the trace writer thread
 * (src/trace/ring.h): order and contents kept, a full ring blocks the producer (never drops)
 * and counts the wait, a producer much faster than the consumer loses nothing, timed peeks
 * and wakes return, a chunk larger than a slot is refused. No timing is asserted.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/common.h"
#include "support/testutil.h"
#include "trace/ring.h"

enum { SLOT_WORDS = 64 };

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* chunk i: words i*SLOT_WORDS .. ; n = (i % SLOT_WORDS) + 1 words used */
static void make_chunk(uint32_t *w, int i) {
    for (int k = 0; k < SLOT_WORDS; k++) w[k] = (uint32_t)(i * SLOT_WORDS + k);
}
static int chunk_ok(const ring_slot *s, int i) {
    const size_t n = (size_t)(i % SLOT_WORDS) + 1;
    if (s->table != i % 4 || s->n != n || s->bytes != n * sizeof(uint32_t)) return 0;
    const uint32_t *w = (const uint32_t *)s->data;
    for (size_t k = 0; k < n; k++)
        if (w[k] != (uint32_t)(i * SLOT_WORDS) + (uint32_t)k) return 0;
    return 1;
}
static void push_chunk(ring *q, int i) {
    uint32_t w[SLOT_WORDS];
    make_chunk(w, i);
    const size_t n = (size_t)(i % SLOT_WORDS) + 1;
    ring_push(q, i % 4, w, n, n * sizeof *w);
}

static void test_order(void) {
    ring q;
    ring_init(&q, 3, SLOT_WORDS * sizeof(uint32_t));
    EXPECT(ring_peek(&q, 0) == NULL && ring_count(&q) == 0, "a new ring is empty");
    int next = 0;
    for (int round = 0; round < 5; round++) {   /* wraps around the 3 slots several times */
        for (int i = 0; i < 3; i++) push_chunk(&q, round * 3 + i);
        EXPECT(ring_count(&q) == 3, "three chunks in");
        for (int i = 0; i < 3; i++) {
            ring_slot *s = ring_peek(&q, 0);
            EXPECT(s && chunk_ok(s, next), "chunk %d comes out as it went in", next);
            ring_pop(&q);
            next++;
        }
    }
    EXPECT(q.pushes == 15 && q.full_waits == 0, "15 pushes, no wait (%llu, %llu)", (unsigned long long)q.pushes,
           (unsigned long long)q.full_waits);
    ring_free(&q);
}

typedef struct {
    ring *q;
    int first, count;
    atomic_int done;
} producer;

static void *produce(void *arg) {
    producer *p = arg;
    for (int i = 0; i < p->count; i++) push_chunk(p->q, p->first + i);
    atomic_store(&p->done, 1);
    return NULL;
}

static uint64_t full_waits(ring *q) {
    pthread_mutex_lock(&q->mu);
    const uint64_t n = q->full_waits;
    pthread_mutex_unlock(&q->mu);
    return n;
}

/* the ring full: the next push blocks (and is counted) until the consumer pops */
static void test_full_blocks(void) {
    ring q;
    ring_init(&q, 2, SLOT_WORDS * sizeof(uint32_t));
    push_chunk(&q, 0);
    push_chunk(&q, 1);
    producer p = {.q = &q, .first = 2, .count = 1};
    pthread_t th;
    EXPECT(pthread_create(&th, NULL, produce, &p) == 0, "producer thread");
    for (int i = 0; i < 10000 && full_waits(&q) == 0; i++) sleep_s(1e-3);   /* until it is waiting */
    EXPECT(full_waits(&q) == 1, "the push into a full ring waits (counted %llu)", (unsigned long long)full_waits(&q));
    sleep_s(0.02);
    EXPECT(!atomic_load(&p.done) && ring_count(&q) == 2, "a push into a full ring does not return or overwrite");
    ring_slot *s = ring_peek(&q, 0);
    EXPECT(s && chunk_ok(s, 0), "the oldest chunk is intact while the producer waits");
    ring_pop(&q);
    pthread_join(th, NULL);
    EXPECT(atomic_load(&p.done) && ring_count(&q) == 2, "the push completes once a slot is free");
    for (int i = 1; i <= 2; i++) {
        s = ring_peek(&q, 0);
        EXPECT(s && chunk_ok(s, i), "chunk %d after the wait", i);
        ring_pop(&q);
    }
    EXPECT(q.full_wait_s >= 0, "wait time counted");
    ring_free(&q);
}

/* a producer much faster than the consumer (which sleeps per chunk): every chunk, in order */
static void test_fast_producer(void) {
    enum { N = 300 };
    ring q;
    ring_init(&q, 4, SLOT_WORDS * sizeof(uint32_t));
    producer p = {.q = &q, .first = 0, .count = N};
    pthread_t th;
    EXPECT(pthread_create(&th, NULL, produce, &p) == 0, "producer thread");
    int got = 0, bad = 0;
    while (got < N) {
        ring_slot *s = ring_peek(&q, 0.5);
        if (!s) continue;
        if (!chunk_ok(s, got)) bad++;
        if (got % 10 == 0) sleep_s(1e-3);   /* a slow writer */
        ring_pop(&q);
        got++;
    }
    pthread_join(th, NULL);
    EXPECT(got == N && bad == 0 && q.pushes == N, "%d of %d chunks, %d damaged", got, N, bad);
    EXPECT(ring_peek(&q, 0) == NULL, "nothing left over");
    printf("fast producer: %d chunks through 4 slots, %llu full waits (%.1f ms)\n", N,
           (unsigned long long)q.full_waits, q.full_wait_s * 1e3);
    ring_free(&q);
}

static void *wake_later(void *arg) {
    sleep_s(0.05);
    ring_wake(arg);
    return NULL;
}

static void test_peek_wait(void) {
    ring q;
    ring_init(&q, 2, 16);
    double t0 = hat_now();
    EXPECT(ring_peek(&q, 0.02) == NULL && hat_now() - t0 >= 0.015, "a timed peek on an empty ring times out");
    pthread_t th;
    pthread_create(&th, NULL, wake_later, &q);
    EXPECT(ring_peek(&q, 30.0) == NULL, "a wake ends a waiting peek (with nothing in the ring)");
    pthread_join(th, NULL);
    ring_push(&q, 1, "abc", 1, 3);
    ring_slot *s = ring_peek(&q, 30.0);
    EXPECT(s && s->table == 1 && s->bytes == 3 && memcmp(s->data, "abc", 3) == 0, "a waiting peek sees a chunk");
    ring_pop(&q);
    ring_pop(&q);   /* popping an empty ring is harmless */
    EXPECT(ring_count(&q) == 0, "empty after pops");
    ring_free(&q);
}

/* a chunk larger than a slot is a fatal error (exit status 1 without MPI), not a truncation */
static void test_oversize(void) {
    fflush(stdout);   /* the child must not repeat what the parent has buffered */
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        ring q;
        ring_init(&q, 2, 16);
        char big[32] = {0};
        ring_push(&q, 0, big, 1, sizeof big);
        _exit(0);
    }
    int status = 0;
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 1,
           "an oversized chunk is refused (status %d)", status);
}

int main(void) {
    test_order();
    test_full_blocks();
    test_fast_producer();
    test_peek_wait();
    test_oversize();
    return test_summary();
}
