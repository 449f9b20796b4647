/* transport.c — see transport.h. */
#include "net/transport.h"
#include "net/comm.h"
#include "core/common.h"

#include <mpi.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

MPI_Comm comm_data_handle(void);

enum { TAG_DATA = 11, TAG_ALIVE = 12 };
#define POLL_SLEEP_S 20e-6   /* first idle poll interval: short next to a link latency of ~1 ms */
#define IDLE_MAX_S 250e-6    /* longest idle nap (after 8 ms of idling) */
#define SPIN_S 50e-6         /* busy-poll this long before sleeping */

static MPI_Request *rq(void *p) { return (MPI_Request *)p; }

static void post_recv(endpoint *e, int slot) {
    int rc = MPI_Irecv(e->rbuf + (size_t)slot * e->slot_bytes, (int)e->slot_bytes, MPI_BYTE, e->peer, TAG_DATA,
                       comm_data_handle(), &rq(e->rreq)[slot]);
    CHECK(rc == MPI_SUCCESS, "MPI_Irecv from rank %d failed (%d)", e->peer, rc);
    e->rstate[slot] = 0;
}

size_t transport_plan_bytes(int depth, int dim, int max_tok, wire_dtype dtype) {
    const size_t slot = WIRE_HEADER_BYTES + wire_payload_bytes(dtype, max_tok, dim) + 64;
    return (size_t)depth * (2 * slot + 2 * sizeof(MPI_Request) + sizeof(int) + sizeof(size_t) + sizeof(double));
}

/* a device's endpoint: the receive of the cloud's next keep-alive */
static void post_alive(endpoint *e) {
    int rc = MPI_Irecv(&e->alive_buf, 1, MPI_INT32_T, e->peer, TAG_ALIVE, comm_data_handle(), rq(e->alive_req));
    CHECK(rc == MPI_SUCCESS, "MPI_Irecv (keep-alive) from rank %d failed (%d)", e->peer, rc);
}

/* a device's endpoint: 1 if keep-alives arrived since the last call (each re-posts the receive) */
static int alive_heard(endpoint *e) {
    int heard = 0;
    for (int flag = 1; flag && *rq(e->alive_req) != MPI_REQUEST_NULL;) {
        int rc = MPI_Test(rq(e->alive_req), &flag, MPI_STATUS_IGNORE);
        CHECK(rc == MPI_SUCCESS, "keep-alive from rank %d failed (%d)", e->peer, rc);
        if (flag) {
            heard = 1;
            post_alive(e);
        }
    }
    return heard;
}

void transport_init(endpoint *e, int peer, int device, int peer_is_device, int depth, int dim, int max_tok,
                   wire_dtype dtype, const link_params *send_link, int emulate, uint64_t seed) {
    memset(e, 0, sizeof *e);
    e->peer = peer;
    e->device = device;
    e->peer_is_device = peer_is_device;
    e->depth = depth;
    e->dim = e->charge_dim = dim;
    e->max_tok = max_tok;
    e->dtype = dtype;
    /* + 64: room for a longer message than allowed to arrive whole, so it is reported as what it
     * is (wrong size) instead of as an MPI truncation error */
    e->slot_bytes = WIRE_HEADER_BYTES + wire_payload_bytes(dtype, max_tok, dim) + 64;
    e->rbuf = xmalloc_aligned((size_t)depth * e->slot_bytes);
    e->sbuf = xmalloc_aligned((size_t)depth * e->slot_bytes);
    e->rreq = xcalloc((size_t)depth, sizeof(MPI_Request));
    e->sreq = xcalloc((size_t)depth, sizeof(MPI_Request));
    for (int i = 0; i < depth; i++) rq(e->sreq)[i] = MPI_REQUEST_NULL;
    e->rstate = xcalloc((size_t)depth, sizeof(int));
    e->rbytes = xcalloc((size_t)depth, sizeof(size_t));
    e->rseen = xcalloc((size_t)depth, sizeof(double));
    /* the uplink jitter stream of device d is seeded by (seed, d, up); downlink by (seed, d, down) */
    emul_link_init(&e->link, send_link, emulate, seed, device, peer_is_device ? 1 : 0);
    for (int i = 0; i < depth; i++) post_recv(e, i);
    e->alive_req = xmalloc(sizeof(MPI_Request));
    *rq(e->alive_req) = MPI_REQUEST_NULL;
    e->sent_w = hat_wall();
    if (!peer_is_device) post_alive(e);
}

void transport_free(endpoint *e) {
    if (!e->rbuf) return;
    for (int i = 0; i < e->depth; i++) {
        if (e->rstate[i] == 0) {
            MPI_Cancel(&rq(e->rreq)[i]);
            MPI_Wait(&rq(e->rreq)[i], MPI_STATUS_IGNORE);
        }
    }
    transport_flush(e);
    if (*rq(e->alive_req) != MPI_REQUEST_NULL) {
        if (e->peer_is_device) {   /* a cloud's last keep-alive: a one-int send of a constant, left to finish */
            MPI_Request_free(rq(e->alive_req));
        } else {                   /* a device's posted receive */
            MPI_Cancel(rq(e->alive_req));
            MPI_Wait(rq(e->alive_req), MPI_STATUS_IGNORE);
        }
    }
    free(e->alive_req);
    emul_link_free(&e->link);
    free(e->rbuf); free(e->sbuf); free(e->rreq); free(e->sreq); free(e->rstate); free(e->rbytes); free(e->rseen);
    memset(e, 0, sizeof *e);
}

int transport_poll(endpoint *e, transport_msg *m, double *next_deliver) {
    const int s = e->rhead;
    if (e->rstate[s] == 2) return 0;           /* ring full of delivered, unreleased messages */
    uint8_t *msg = e->rbuf + (size_t)s * e->slot_bytes;
    if (e->rstate[s] == 0) {
        int flag = 0;
        MPI_Status st;
        int rc = MPI_Test(&rq(e->rreq)[s], &flag, &st);
        CHECK(rc == MPI_SUCCESS, "receive from rank %d (device %d) failed: MPI error %d (message longer than the "
              "%zu-byte buffer?)", e->peer, e->device, rc, e->slot_bytes);
        if (!flag) return 0;
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        e->rbytes[s] = (size_t)count;
        const wire_expect ex = {e->peer_is_device, (uint32_t)e->device, (uint32_t)e->dim, (uint32_t)e->max_tok,
                                (int)e->dtype, e->allow_tokens, e->n_vocab};
        char err[HAT_ERRLEN];
        if (wire_validate(msg, (size_t)count, &ex, err, sizeof err) != HAT_OK)
            fatal("bad message from rank %d (%s %d): %s", e->peer, e->peer_is_device ? "device" : "cloud for device",
                  e->device, err);
        e->rstate[s] = 1;
        e->bytes_recv += (size_t)count;
        e->msgs_recv++;
    }
    wire_header h;
    memcpy(&h, msg, sizeof h);
    const double now = comm_now();
    if (now < h.t_deliver) {
        if (next_deliver && h.t_deliver < *next_deliver) *next_deliver = h.t_deliver;
        return 0;
    }
    e->rstate[s] = 2;
    e->rseen[s] = now;
    e->rhead = (s + 1) % e->depth;
    m->h = h;
    m->payload = msg + WIRE_HEADER_BYTES;
    m->bytes = e->rbytes[s];
    m->t_seen = now;
    m->slot = s;
    return 1;
}

void transport_release(endpoint *e) {
    const int s = e->rtail;
    CHECK(e->rstate[s] == 2, "transport: release of slot %d that holds no delivered message", s);
    post_recv(e, s);
    e->rtail = (s + 1) % e->depth;
}

static double g_peer_timeout = 600;   /* [run] peer_timeout_s */

void transport_set_peer_timeout(double s) { g_peer_timeout = s > 0 ? s : 600; }
double transport_peer_timeout(void) { return g_peer_timeout; }

static const char *peer_name(const endpoint *e, char *buf, size_t n) {
    if (e->peer_is_device) snprintf(buf, n, "rank %d (device %d)", e->peer, e->device);
    else snprintf(buf, n, "rank %d (cloud)", e->peer);
    return buf;
}

void transport_idle(double until) {
    hat_check_interrupt();
    static _Thread_local double last_end_w, idle_since_w, last_nap;
    const double w = hat_wall();
    if (w - last_end_w > 2 * last_nap + 100e-6) idle_since_w = w;   /* it worked since its last idle call */
    /* the nap grows with the idle time so far (1/32 of it, at most IDLE_MAX_S): a message is noticed
     * at most that much late, a few per cent of the wait it ends */
    const double nap = fmin(IDLE_MAX_S, fmax(POLL_SLEEP_S, (w - idle_since_w) / 32));
    const double due = (until - comm_now()) * hat_time_scale();   /* wall seconds to a held delivery */
    if (due > 0 && due <= nap) emul_sleep_until(until, comm_now);   /* on time: the emulated link's delivery */
    else emul_nap(nap);   /* plain sleep: an idle rank must not take a core from the computing ones */
    last_nap = nap;
    last_end_w = hat_wall();
}

void transport_wait(endpoint *e, transport_msg *m) {
    /* spin briefly first (a reply often follows within microseconds on a fast link), then
     * sleep-poll so an idle rank leaves the cores to the ranks that compute */
    const double spin_end = comm_now() + SPIN_S;
    double w0 = hat_wall();
    for (;;) {
        double next = 1e300;
        if (transport_poll(e, m, &next)) return;
        if (!e->peer_is_device && alive_heard(e)) w0 = hat_wall();   /* the cloud is serving others */
        if (hat_wall() - w0 > g_peer_timeout) {
            char who[64];
            fatal("%s sent nothing, not even a keep-alive, for %.0f s while this rank waited for it ([run] peer_timeout_s): "
                  "it stalled or is gone",
                  peer_name(e, who, sizeof who), g_peer_timeout);
        }
        const double now = comm_now();
        if (now < spin_end && next > spin_end) continue;
        if (next <= now + SPIN_S && next < 1e300) continue;   /* due within the spin window */
        transport_idle(next);
    }
}

/* send slot s's send to completion: a sleeping wait, bounded by peer_timeout_s (a stopped peer
 * must neither hold this rank nor make it spin) */
static void send_wait(endpoint *e, int s) {
    const double w0 = hat_wall();
    for (int done = 0;;) {
        int rc = MPI_Test(&rq(e->sreq)[s], &done, MPI_STATUS_IGNORE);
        CHECK(rc == MPI_SUCCESS, "send to rank %d failed (%d)", e->peer, rc);
        if (done) return;
        if (hat_wall() - w0 > g_peer_timeout) {
            char who[64];
            fatal("a message to %s was not taken for %.0f s ([run] peer_timeout_s): it stalled or is gone",
                  peer_name(e, who, sizeof who), g_peer_timeout);
        }
        transport_idle(comm_now() + POLL_SLEEP_S);
    }
}

void transport_keepalive(endpoint *e) {
    if (!e->peer_is_device || !e->alive_req) return;
    const double now = hat_wall();
    if (now - e->sent_w < g_peer_timeout / 4) return;
    if (*rq(e->alive_req) != MPI_REQUEST_NULL) {   /* the last one must have gone */
        int done = 0;
        CHECK(MPI_Test(rq(e->alive_req), &done, MPI_STATUS_IGNORE) == MPI_SUCCESS, "keep-alive to rank %d failed", e->peer);
        if (!done) return;
    }
    static const int32_t alive = 1;
    int rc = MPI_Isend(&alive, 1, MPI_INT32_T, e->peer, TAG_ALIVE, comm_data_handle(), rq(e->alive_req));
    CHECK(rc == MPI_SUCCESS, "MPI_Isend (keep-alive) to rank %d failed (%d)", e->peer, rc);
    e->sent_w = now;
}

static uint8_t *next_send_slot(endpoint *e) {
    const int s = e->shead;
    if (rq(e->sreq)[s] != MPI_REQUEST_NULL) {   /* the slot's previous send must be done */
        send_wait(e, s);
    }
    return e->sbuf + (size_t)s * e->slot_bytes;
}

static void start_send(endpoint *e, size_t n) {
    const int s = e->shead;
    int rc = MPI_Isend(e->sbuf + (size_t)s * e->slot_bytes, (int)n, MPI_BYTE, e->peer, TAG_DATA, comm_data_handle(),
                       &rq(e->sreq)[s]);
    CHECK(rc == MPI_SUCCESS, "MPI_Isend of %zu bytes to rank %d failed (%d)", n, e->peer, rc);
    e->shead = (s + 1) % e->depth;
    e->sent_w = hat_wall();
    e->bytes_sent += n;
    e->msgs_sent++;
}

/* the payload is in place after msg's header: stamp the send time and the emulated delivery, seal
 * (checksum) and start the send */
static link_sched seal_and_send(endpoint *e, uint8_t *msg, wire_header *h, double *t_send) {
    if (e->peer_is_device == 0) h->cost_c0 = h->cost_c1 = h->cost_c2 = h->cost_c3 = 0;   /* a device's carries none */
    h->checksum = 0;
    const size_t bytes = WIRE_HEADER_BYTES + (size_t)h->payload_bytes;
    const int hidden = h->kind == WIRE_HIDDEN_UP || h->kind == WIRE_HIDDEN_DOWN;
    h->t_send = comm_now();
    *t_send = h->t_send;
    const link_sched ls = emul_link_schedule(&e->link, h->t_send, hidden ? transport_charged_bytes(e, (int)h->n_tok) : bytes);
    h->t_deliver = ls.deliver;
    memcpy(msg, h, sizeof *h);
    wire_seal(msg);
    start_send(e, bytes);
    return ls;
}

void transport_charge_dim(endpoint *e, int dim) { e->charge_dim = dim > 0 ? dim : e->dim; }

size_t transport_charged_bytes(const endpoint *e, int n_tok) {
    return WIRE_HEADER_BYTES + wire_payload_bytes(e->dtype, n_tok, e->charge_dim);
}

link_sched transport_send(endpoint *e, const wire_header *hin, const float *hidden, double *t_send) {
    const int from_device = !e->peer_is_device;
    if (e->allow_tokens)   /* a cloud-only session: its only other message is the device's bye */
        CHECK(from_device && hin->kind == WIRE_BYE, "cloud-only run: %s tried to send a message of kind %s",
              from_device ? "device" : "cloud", wire_kind_name(hin->kind));
    else if (from_device)
        CHECK(hin->kind == WIRE_HIDDEN_UP || hin->kind == WIRE_BYE,
              "device %d tried to send a message of kind %s: devices send only hidden states, never token ids",
              e->device, wire_kind_name(hin->kind));
    else
        CHECK(hin->kind == WIRE_HIDDEN_DOWN, "cloud tried to send kind %s to device %d", wire_kind_name(hin->kind), e->device);
    const int n_tok = hin->kind == WIRE_BYE ? 0 : (int)hin->n_tok;
    CHECK(n_tok <= e->max_tok, "transport: %d rows, buffers sized for %d", n_tok, e->max_tok);
    uint8_t *msg = next_send_slot(e);
    wire_header h = *hin;
    h.magic = WIRE_MAGIC;
    h.version = WIRE_VERSION;
    h.device = (uint32_t)e->device;
    h.dim = (uint32_t)e->dim;
    h.dtype = (uint16_t)e->dtype;
    h.n_tok = (uint32_t)n_tok;
    h.payload_bytes = wire_payload_bytes(e->dtype, n_tok, e->dim);
    if (n_tok) wire_encode(e->dtype, hidden, msg + WIRE_HEADER_BYTES, (size_t)n_tok * e->dim);
    return seal_and_send(e, msg, &h, t_send);
}

void transport_allow_tokens(endpoint *e, int n_vocab) {
    CHECK(n_vocab > 0 && e->dtype == WIRE_F32 && e->dim == 1,
          "transport: a token endpoint needs a vocabulary and slots sized for int32 ids (dim 1, fp32)");
    e->allow_tokens = 1;
    e->n_vocab = n_vocab;
}

link_sched transport_send_tokens(endpoint *e, const wire_header *hin, const int32_t *ids, double *t_send) {
    CHECK(e->allow_tokens, "device %d: token ids may cross the network only in the cloud-only baseline", e->device);
    const int n_tok = (int)hin->n_tok, lo = e->peer_is_device ? 0 : 1;
    CHECK(n_tok >= lo && n_tok <= e->max_tok, "transport: %d token ids, allowed %d..%d", n_tok, lo, e->max_tok);
    for (int i = 0; i < n_tok; i++)
        CHECK(ids[i] >= 0 && ids[i] < e->n_vocab, "transport: token id %d out of the vocabulary [0, %d)", ids[i],
              e->n_vocab);
    uint8_t *msg = next_send_slot(e);
    wire_header h = *hin;
    h.magic = WIRE_MAGIC;
    h.version = WIRE_VERSION;
    h.kind = WIRE_TOKENS;
    h.device = (uint32_t)e->device;
    h.dim = 0;
    h.dtype = WIRE_TOKEN_I32;
    h.payload_bytes = (uint64_t)n_tok * sizeof(int32_t);
    if (n_tok) memcpy(msg + WIRE_HEADER_BYTES, ids, (size_t)h.payload_bytes);
    return seal_and_send(e, msg, &h, t_send);
}

void transport_send_raw(endpoint *e, const void *msg, size_t n) {
    CHECK(n <= e->slot_bytes, "raw message of %zu bytes, slots hold %zu", n, e->slot_bytes);
    memcpy(next_send_slot(e), msg, n);
    start_send(e, n);
}

void transport_flush(endpoint *e) {
    for (int i = 0; i < e->depth; i++)
        if (rq(e->sreq)[i] != MPI_REQUEST_NULL) send_wait(e, i);
}

/* Raw MPI ping-pong of `bytes` (the benchmark's baseline): rank `me` is the initiator when
 * initiator != 0. Returns the median round trip over `reps` repetitions of `iters` exchanges. */
double transport_raw_pingpong(int peer, int initiator, size_t bytes, int iters) {
    uint8_t *buf = xmalloc_aligned(bytes ? bytes : 1);
    memset(buf, 1, bytes);
    MPI_Comm c = comm_data_handle();
    const double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) {
        if (initiator) {
            MPI_Send(buf, (int)bytes, MPI_BYTE, peer, 99, c);
            MPI_Recv(buf, (int)bytes, MPI_BYTE, peer, 99, c, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(buf, (int)bytes, MPI_BYTE, peer, 99, c, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)bytes, MPI_BYTE, peer, 99, c);
        }
    }
    const double dt = (MPI_Wtime() - t0) / iters;
    free(buf);
    return dt;
}
