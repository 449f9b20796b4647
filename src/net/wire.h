/* wire.h — the data-plane message format between devices and the cloud (no MPI in here).
 *
 * Every message is one contiguous buffer: a fixed 96-byte header, then the payload.
 *
 *   off size field          meaning
 *    0   4  magic           "HATW" (0x57544148 little-endian)
 *    4   2  version         WIRE_VERSION; any other is rejected
 *    6   2  kind            wire_kind
 *    8   4  device          device index of the session
 *   12   4  seq             per-device message number (0, 1, ...); a reply carries the request's
 *   16   4  pos0            first sequence position of the hidden states
 *   20   4  n_tok           hidden-state rows
 *   24   4  dim             hidden size (must equal the model's)
 *   28   2  dtype           wire_dtype of the payload (fp32, fp16, bf16); TOKENS: WIRE_TOKEN_I32
 *   30   2  flags           WIRE_F_PREFILL | WIRE_F_LAST_CHUNK | WIRE_F_DRAFT | WIRE_F_ROUND_END | WIRE_F_END
 *   32   8  payload_bytes   must equal n_tok * dim * sizeof(dtype) (0 for BYE); TOKENS: n_tok * 4
 *   40   8  t_send          run clock when handed to the transport (seconds)
 *   48   8  t_deliver       the link model's delivery time; the receiver holds it until then
 *   56   8  t_peer_ready    replies: when the cloud saw the request delivered
 *   64   4  queue_s         replies: delivered -> batch start (float seconds)
 *   68   4  compute_s       replies: the batch's forward pass
 *   72   2  batch_tokens    replies: tokens in that batch (saturating at 65535)
 *   74   2  batch_devices   replies: sequences in that batch (saturating at 65535)
 *   76   4  cost_c0         replies: the cloud rank's fitted pass-time model
 *   80   4  cost_c1           t = c0 + c1 n + c2 s + c3 n^2 (src/timing/cost_fit.h; float seconds,
 *   84   4  cost_c2           per token, per attended position, per token squared), the devices'
 *                             dynamic chunking input; all 0 before the first fit and in a device's
 *                             messages
 *   88   4  checksum        CRC-32C of the header (this field zero) and the payload
 *   92   4  cost_c3         (see cost_c0)
 *
 * Privacy property, checked here: a message from a device may only be HIDDEN_UP (hidden
 * states: floating-point payload of exactly n_tok x dim) or BYE (no payload). There is no
 * message kind or dtype that can carry token ids from a device; wire_validate rejects any
 * other kind coming from a device, and the device-side send path refuses to build one.
 * The one exception is the cloud-only baseline ([run] mode = cloud-only, the non-private
 * reference, flagged "NOT private" in the trace): only there do token ids cross the network
 * (TOKENS, int32 ids, in both directions), and only on endpoints that allow them explicitly
 * (wire_expect.allow_tokens, set by transport_allow_tokens); such endpoints accept nothing else
 * but BYE from the device.
 */
#ifndef HAT_WIRE_H
#define HAT_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* the payload's number format; wire_dtype_names is NULL-terminated, in enum order */
typedef enum { WIRE_F32 = 0, WIRE_F16 = 1, WIRE_BF16 = 2 } wire_dtype;
extern const char *const wire_dtype_names[];
const char *wire_dtype_name(wire_dtype w);
size_t wire_dtype_size(wire_dtype w);   /* bytes per element; 0 for an unknown dtype */

#define WIRE_MAGIC 0x57544148u
#define WIRE_VERSION 2   /* 2: the cost model fields (reserved in 1; batch counts were 32-bit) */
#define WIRE_HEADER_BYTES 96

typedef enum {
    WIRE_HIDDEN_UP = 1,     /* device -> cloud: input-submodel hidden states */
    WIRE_HIDDEN_DOWN = 2,   /* cloud -> device: middle-submodel hidden states */
    WIRE_BYE = 3,           /* device -> cloud: session over */
    WIRE_TOKENS = 4,        /* token ids: valid only on the endpoints of a cloud-only run (allow_tokens) */
} wire_kind;

/* dtype field of a TOKENS message: the payload is n_tok int32 ids, little-endian; dim is 0 */
#define WIRE_TOKEN_I32 0

/* DRAFT: a hidden state of a decode round (HAT's draft tokens, or the U-shape's one token): the
 * cloud collects the round's messages up to the one with ROUND_END and runs them as one
 * sequence with single-token numerics (forward_seq.decode); the reply carries all the rows. */
enum { WIRE_F_PREFILL = 1, WIRE_F_LAST_CHUNK = 2, WIRE_F_DRAFT = 4, WIRE_F_ROUND_END = 8 };
/* cloud-only: the cloud's last message of the session (it decided the end: max_tokens, EOG, ctx) */
enum { WIRE_F_END = 16 };

typedef struct {
    uint32_t magic;
    uint16_t version, kind;
    uint32_t device, seq, pos0, n_tok, dim;
    uint16_t dtype, flags;
    uint64_t payload_bytes;
    double t_send, t_deliver, t_peer_ready;
    float queue_s, compute_s;
    uint16_t batch_tokens, batch_devices;
    float cost_c0, cost_c1, cost_c2;
    uint32_t checksum;
    float cost_c3;
} wire_header;

_Static_assert(sizeof(wire_header) == WIRE_HEADER_BYTES, "wire header must be 96 bytes");
_Static_assert(offsetof(wire_header, batch_tokens) == 72 && offsetof(wire_header, cost_c0) == 76 &&
               offsetof(wire_header, checksum) == 88 && offsetof(wire_header, cost_c3) == 92,
               "wire header layout: update the table above");

const char *wire_kind_name(int kind);

/* a count in a 16-bit header field */
static inline uint16_t wire_u16_sat(long long v) { return (uint16_t)(v < 0 ? 0 : v > 65535 ? 65535 : v); }

/* Bytes of a hidden-state payload. */
static inline size_t wire_payload_bytes(wire_dtype dt, int n_tok, int dim) {
    return (size_t)n_tok * (size_t)dim * wire_dtype_size(dt);
}


/* Sets the checksum over header + payload (payload right after the header in `msg`). */
void wire_seal(void *msg);

typedef struct {
    int from_device;      /* the sender is a device: only HIDDEN_UP and BYE allowed */
    uint32_t device;      /* expected device index (the session this peer belongs to) */
    uint32_t dim;
    uint32_t max_tok;     /* largest n_tok the buffers were sized for */
    int dtype;            /* expected wire dtype */
    int allow_tokens;     /* cloud-only run: TOKENS (and BYE from a device) only, no hidden states */
    int32_t n_vocab;      /* allow_tokens: every id must be in [0, n_vocab) */
} wire_expect;

/* Checks a received message of `nbytes` bytes: size >= header, magic, version, kind allowed
 * for the sender, device, dim, dtype, n_tok range, payload size = n_tok*dim*dtype and
 * = nbytes - header, checksum, the cost fields (0 from a device; finite and >= 0 from the cloud). TOKENS (allow_tokens only): dtype WIRE_TOKEN_I32, dim 0, n_tok
 * 1..max_tok from a device (0..max_tok from the cloud: an acknowledgement carries none),
 * payload n_tok * 4 bytes, every id in [0, n_vocab). Returns HAT_OK or HAT_ERR_FORMAT with a
 * message naming the field, the value and what was expected. */
int wire_validate(const void *msg, size_t nbytes, const wire_expect *ex, char *err, size_t errlen);

/* Hidden states f32 <-> wire dtype (fp16: IEEE half, round to nearest even; bf16: top half of
 * the fp32 bits, round to nearest even, NaN kept quiet). */
void wire_encode(wire_dtype dt, const float *x, void *out, size_t n);
void wire_decode(wire_dtype dt, const void *in, float *x, size_t n);

#endif
