/* transport.h — hidden states between a device and its cloud rank over MPI point-to-point
 * (with comm.c and collective.c, the only code that includes mpi.h); token ids only in the cloud-only
 * baseline.
 *
 * One endpoint per peer: a ring of `depth` receive slots, each posted with MPI_Irecv at start-up
 * and re-posted when released (in the order they were consumed, which keeps MPI's in-order
 * matching and the ring in step), and a ring of `depth` send slots. Every buffer is sized at
 * start-up for the largest message (header + max_tok x dim x dtype); nothing is allocated and
 * no request is created per message. A sender never has more than `depth` messages
 * outstanding on an endpoint (the device's in-flight limit), so every message finds a posted
 * receive.
 *
 * Link emulation: the sender schedules each message on its side of the emulated link
 * (emul.h) and stamps t_deliver into the header; the receiver holds a completed message until
 * its run clock reaches t_deliver. With emulation off t_deliver = t_send.
 *
 * Every received message is checked by wire_validate (size, magic, version, kind allowed for
 * the sender, device, dim, dtype, payload size, CRC-32C); a bad message is a fatal error that
 * names the peer and the problem and aborts the run on every rank.
 *
 * Token ids cross the network only in the cloud-only baseline (the non-private reference,
 * flagged in the trace): both ends of each of its sessions call transport_allow_tokens right
 * after transport_init; such an endpoint sends and accepts TOKENS (plus the device's BYE) and
 * nothing else. Every other endpoint refuses token ids on both the sending and receiving side.
 * Cloud-only endpoints are created with dim 1 and WIRE_F32, which sizes each slot for max_tok
 * int32 ids. There the cloud streams tokens without waiting for the device, so the device's
 * ring is deeper than the cloud's (role_cloudonly.c): the depths of the two ends need not be
 * equal, as long as each receiver's depth bounds what its peer may have outstanding.
 */
#ifndef HAT_TRANSPORT_H
#define HAT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "net/emul.h"
#include "net/wire.h"

typedef struct {
    int peer;             /* MPI rank of the other side */
    int device;           /* device index of this session */
    int peer_is_device;   /* messages we receive come from a device */
    int depth;
    int dim, max_tok;
    int charge_dim;               /* the hidden size the emulated link charges per row ([run] timing_shape) */
    wire_dtype dtype;
    size_t slot_bytes;
    uint8_t *rbuf, *sbuf;         /* (depth, slot_bytes) */
    void *rreq, *sreq;            /* MPI_Request[depth] each */
    int *rstate;                  /* per receive slot: 0 posted, 1 arrived (held), 2 delivered */
    size_t *rbytes;               /* received size per slot */
    double *rseen;                /* when the run clock first saw it delivered */
    int rhead, rtail;             /* next slot to deliver; next slot to release */
    int shead;                    /* next send slot */
    int send_active;              /* sends started (to know which sreq are live) */
    link_state link;              /* our direction of the emulated link */
    int allow_tokens;             /* cloud-only run: TOKENS in both directions (transport_allow_tokens) */
    int32_t n_vocab;              /* allow_tokens: ids must be in [0, n_vocab) */
    uint64_t bytes_sent, bytes_recv, msgs_sent, msgs_recv;
    /* keep-alive (liveness, not data): a device's endpoint has a receive posted for the cloud's
     * keep-alives; a cloud's sends one when it has sent the device nothing for a while */
    void *alive_req;              /* MPI_Request: the posted receive (device) or the last send (cloud) */
    int32_t alive_buf;
    double sent_w;                /* wall clock of the last send on this endpoint (cloud) */
} endpoint;

/* Collective in spirit: both sides must create matching endpoints. `up_params`/`down_params`:
 * the link of this device; the endpoint uses the direction it sends on. */
void transport_init(endpoint *e, int peer, int device, int peer_is_device, int depth, int dim, int max_tok,
                   wire_dtype dtype, const link_params *send_link, int emulate, uint64_t seed);
void transport_free(endpoint *e);
/* what transport_init(depth, dim, max_tok, dtype) will allocate: the start-up memory check */
size_t transport_plan_bytes(int depth, int dim, int max_tok, wire_dtype dtype);
/* [run] timing_shape: the emulated link charges hidden-state messages as rows of `dim` values
 * of the wire dtype (the modelled shape's hidden size); the real payload is unchanged. */
void transport_charge_dim(endpoint *e, int dim);
/* bytes the link charges for a hidden-state message of n_tok rows (header included) */
size_t transport_charged_bytes(const endpoint *e, int n_tok);

/* A delivered message: header and decoded-ready payload pointer (valid until released). */
typedef struct {
    wire_header h;
    const void *payload;
    size_t bytes;         /* whole message */
    double t_seen;        /* run clock when handed out (>= h.t_deliver) */
    int slot;
} transport_msg;

/* Liveness: a busy cloud is not a stalled one. A cloud rank calls transport_keepalive on each
 * session's endpoint as it serves; when nothing was sent to that device for a quarter of
 * [run] peer_timeout_s it sends a keep-alive (an empty control message on its own tag: no ring
 * slot, no link emulation, not in the trace's bytes). A device's transport_wait counts its
 * timeout from the last message or keep-alive, so a device queued behind other devices' prefill
 * waits as long as the cloud keeps serving, and a stopped or vanished cloud is still reported
 * after peer_timeout_s. Never blocks; a keep-alive still in flight is not repeated. */
void transport_keepalive(endpoint *e);

/* Non-blocking: returns 1 and fills *m if the next message on this endpoint has arrived and
 * its delivery time has passed; 0 otherwise. *next_deliver gets the delivery time of an
 * arrived-but-held message (or is left alone). Validates the message (fatal if bad). */
int transport_poll(endpoint *e, transport_msg *m, double *next_deliver);
/* Releases the oldest delivered message's slot and re-posts its receive. */
void transport_release(endpoint *e);
/* Blocks (sleep-polling) until a message is delivered. */
void transport_wait(endpoint *e, transport_msg *m);

/* Send hidden states: encodes n_tok x dim floats to the wire dtype into the next send slot,
 * fills the header from `h` (kind, seq, pos0, n_tok, flags, reply metadata), sets magic,
 * version, device, dim, dtype, payload size, t_send, t_deliver, checksum, and starts the send.
 * Refuses (fatal) any kind other than HIDDEN_UP / BYE on a device's endpoint: devices cannot
 * send token ids. Returns the link schedule of the message; *t_send gets its send time. */
link_sched transport_send(endpoint *e, const wire_header *h, const float *hidden, double *t_send);

/* Cloud-only baseline only: lets this endpoint carry token ids (TOKENS) and nothing but BYE
 * besides; call it right after transport_init, on both ends. n_vocab bounds every id. */
void transport_allow_tokens(endpoint *e, int n_vocab);

/* Send n_tok int32 token ids (0 allowed from the cloud: a prompt chunk's acknowledgement) with
 * the header fields of `h` as transport_send does. Fatal unless the endpoint allows tokens, or
 * when an id is outside [0, n_vocab). Returns the link schedule; *t_send gets the send time. */
link_sched transport_send_tokens(endpoint *e, const wire_header *h, const int32_t *ids, double *t_send);

/* Test hook for the fault-injection runs: send raw bytes (already a full message) that the
 * sender-side checks do not see, exactly as a broken or foreign peer would. */
void transport_send_raw(endpoint *e, const void *msg, size_t n);

/* Wait for every send of this endpoint to complete. */
void transport_flush(endpoint *e);

/* An idle rank's wait between polls: until `until` (run clock) when a held delivery is due
 * sooner than the nap, else a plain sleep (no spinning) that grows from 20 us to 1 ms with the
 * time the rank has been idle, so oversubscribed idle ranks leave the cores to the computing ones
 * and a message is noticed at most 1/16 of the wait so far (and 1 ms) late. */
void transport_idle(double until);
/* [run] peer_timeout_s (wall seconds, default 600): transport_wait, and a send slot's wait for its
 * previous send, end the run with a message naming the peer when it gives no sign for that long */
void transport_set_peer_timeout(double s);
double transport_peer_timeout(void);

/* Benchmark baseline: blocking MPI_Send/MPI_Recv ping-pong of `bytes` with `peer`, `iters`
 * round trips; returns seconds per round trip. */
double transport_raw_pingpong(int peer, int initiator, size_t bytes, int iters);

#endif
