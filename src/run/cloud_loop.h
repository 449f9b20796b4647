/* cloud_loop.h — the serving loop of a cloud rank, shared by both cloud roles: the split modes'
 * (role_cloud.c: U-shape and HAT, hidden states in and out) and the cloud-only baseline's
 * (role_cloudonly.c: token ids in, sampled ids out).
 *
 * One session per device served (its backend slot, its transport endpoint and its FIFO of
 * delivered messages, the endpoint's receive ring in order). Each turn of the loop polls every
 * session, ends those whose queue head is their bye, lets rank 0's collector take what the other
 * ranks sent, and then forms one batch: starting one session further each pass (round-robin),
 * every session offers its next request (the mode decides what one is and writes its inputs into
 * the backend's buffer) until max_batch_tokens; a session whose request is not complete or does
 * not fit waits for a later pass. With [cloud] prefill_order = fcfs (the default) the sessions
 * without a prompt chunk at their head (decode rounds) offer first, and of the prefilling ones
 * only the one whose prompt's first chunk arrived first (ties: round-robin): prompts that arrive
 * together are served in turn, not all at once (processor sharing, under which every one of them
 * finishes near the end); with fair every session offers in the round-robin order, one chunk
 * each. One backend step runs the batch, it is traced (/batches), and the mode replies to each
 * request; the loop then releases the messages the request used. Every session with a ready
 * decode round is first in line at least once every n sessions passes, and a prompt's chunks wait
 * only for the prompts that arrived before it, so none starves. The loop ends when every session
 * has said bye.
 *
 * With [transport] max_stall_ms > 0 (stall-bounded prefill) a pass that would run a prefill chunk
 * first waits, at most 3 turnarounds after the reply, for any decoding session whose next round is
 * due: otherwise that round arrives just after the pass started and waits a whole bounded pass
 * before its own, and its TBT is twice the bound. The prefill pays up to that wait per chunk.
 *
 * Tensor parallelism ([cloud] tp > 1, split modes only): the group's first rank (the leader) runs
 * the loop; before each step it broadcasts the step (its sequences, then the input hidden states)
 * to the other ranks of its group, which only run steps (cloud_loop_member) until the leader
 * broadcasts the end. A sequence that starts before its slot's cache end makes every rank of the
 * group roll the slot back to it first, so their caches stay in step.
 */
#ifndef HAT_CLOUD_LOOP_H
#define HAT_CLOUD_LOOP_H

#include "run/roles.h"

typedef struct {
    int device, done;
    endpoint ep;
    transport_msg *q;   /* (depth) delivered, unprocessed messages, FIFO from q[qh] */
    int qh, qn;
    /* decode rounds, for the stall-bounded schedule: when the last reply went, whether it answered a
     * decode round, and the device's turnaround (reply sent -> its next round complete, averaged) */
    double t_reply, turn;
    int decoding, awaiting;
    double prefill_t;   /* when its prompt's first chunk arrived (0: no prompt in progress) */
    double heard_w;     /* liveness, wall clock: the last message delivered or reply sent (at first: the device's start) */
    int lost;           /* closed for silence ([run] peer_timeout_s) */
} cloud_session;

/* one request of a pass: its session (= backend slot), the queued messages it answers (released
 * after the reply) and its first token row in the step's inputs and outputs */
typedef struct {
    int session, n_msg, row;
} cloud_item;

/* the pass the replies belong to */
typedef struct {
    double t0, t1;        /* start (before any group broadcast) and end of the step */
    int n_tok, n_seq;     /* its tokens and requests (devices) */
} cloud_pass;

typedef struct cloud_loop cloud_loop;

/* What a mode adds to the loop. */
typedef struct {
    int dim;              /* endpoint row width: the model's dim, or 1 for token ids */
    wire_dtype wire;      /* endpoint dtype */
    int n_vocab;          /* > 0: the endpoints carry token ids (transport_allow_tokens) */
    /* the head of session i's non-empty queue, after polling: 1 when it is the session's bye
     * (which ends it), 0 otherwise; protocol checks go here */
    int (*head)(cloud_loop *cl, int i);
    /* session i's next request when it is complete and fits in `room` tokens: fills *seq (slot i)
     * and *n_msg, writes its inputs at token row `row` of the backend's inputs and returns 1;
     * returns 0 when the session has nothing for this pass */
    int (*take)(cloud_loop *cl, int i, int row, int room, backend_seq *seq, int *n_msg);
    /* the reply to the pass's request k (the step's outputs are in the backend's buffers) */
    void (*reply)(cloud_loop *cl, int k, const cloud_item *it, const backend_seq *seq, const cloud_pass *p);
    void *ctx;            /* the mode's own state, cl->ctx in the callbacks */
} cloud_mode;

struct cloud_loop {
    run_ctx *r;
    backend *be;          /* opened at start-up (run.c), one KV slot per session */
    void *ctx;            /* cloud_mode.ctx */
    int n;                /* sessions */
    int depth;            /* each session's queue (run_msg_depth) */
    cloud_session *S;     /* (n) */
};

/* the j-th queued message of session s (j < s->qn) */
static inline const transport_msg *cloud_queued(const cloud_loop *cl, const cloud_session *s, int j) {
    return &s->q[(s->qh + j) % cl->depth];
}

/* a cloud rank's serving loop in mode `mode`, until every device it serves said bye; on a group
 * leader it also drives the group's other ranks (cloud_loop_member), ending them at the end */
void cloud_loop_run(run_ctx *r, const cloud_mode *mode);
/* a non-leader rank of a tensor-parallel group: runs the leader's steps on its shard */
void cloud_loop_member(run_ctx *r);

#endif
