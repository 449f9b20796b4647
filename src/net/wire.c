/* wire.c — see wire.h. */
#include "net/wire.h"
#include "core/common.h"
#include "core/crc32c.h"
#include "engine/quant.h"

#include <math.h>
#include <string.h>

const char *const wire_dtype_names[] = {"fp32", "fp16", "bf16", NULL};
const char *wire_dtype_name(wire_dtype w) { return (unsigned)w < 3 ? wire_dtype_names[w] : "?"; }
size_t wire_dtype_size(wire_dtype w) { return w == WIRE_F32 ? 4 : (w == WIRE_F16 || w == WIRE_BF16) ? 2 : 0; }

const char *wire_kind_name(int kind) {
    switch (kind) {
    case WIRE_HIDDEN_UP: return "hidden_up";
    case WIRE_HIDDEN_DOWN: return "hidden_down";
    case WIRE_BYE: return "bye";
    case WIRE_TOKENS: return "tokens";
    default: return "unknown";
    }
}

static uint32_t msg_checksum(const void *msg) {
    wire_header h;
    memcpy(&h, msg, sizeof h);
    h.checksum = 0;
    uint32_t c = crc32c(0, &h, sizeof h);
    return crc32c(c, (const uint8_t *)msg + WIRE_HEADER_BYTES, (size_t)h.payload_bytes);
}

void wire_seal(void *msg) {
    uint32_t c = msg_checksum(msg);
    memcpy((uint8_t *)msg + offsetof(wire_header, checksum), &c, sizeof c);
}

int wire_validate(const void *msg, size_t nbytes, const wire_expect *ex, char *err, size_t errlen) {
    if (nbytes < WIRE_HEADER_BYTES)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "truncated message: %zu bytes, shorter than the %d-byte header",
                       nbytes, WIRE_HEADER_BYTES);
    wire_header h;
    memcpy(&h, msg, sizeof h);
    if (h.magic != WIRE_MAGIC)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "bad magic 0x%08x (expected 0x%08x 'HATW'): not a HAT message",
                       h.magic, WIRE_MAGIC);
    if (h.version != WIRE_VERSION)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "wire header version %u, this build speaks version %d",
                       h.version, WIRE_VERSION);
    if (ex->allow_tokens) {   /* cloud-only run: token ids, and the device's bye; never hidden states */
        if (h.kind != WIRE_TOKENS && !(ex->from_device && h.kind == WIRE_BYE))
            return hat_err(err, errlen, HAT_ERR_FORMAT,
                           "cloud-only run: %s %u sent a message of kind %u (%s), expected tokens%s",
                           ex->from_device ? "device" : "cloud for device", h.device, h.kind, wire_kind_name(h.kind),
                           ex->from_device ? " or bye" : "");
    } else if (ex->from_device ? (h.kind != WIRE_HIDDEN_UP && h.kind != WIRE_BYE) : h.kind != WIRE_HIDDEN_DOWN)
        return hat_err(err, errlen, HAT_ERR_FORMAT,
                       ex->from_device ? "device %u sent a message of kind %u (%s): devices may send only hidden states "
                                         "(hidden_up) or bye, never token ids"
                                       : "device %u received a message of kind %u (%s), expected hidden_down",
                       h.device, h.kind, wire_kind_name(h.kind));
    const float cost[4] = {h.cost_c0, h.cost_c1, h.cost_c2, h.cost_c3};
    for (int i = 0; i < 4; i++)
        if (ex->from_device ? cost[i] != 0 : !(cost[i] >= 0 && isfinite(cost[i])))
            return hat_err(err, errlen, HAT_ERR_FORMAT, "cost_c%d = %g in a message %s device %u (expected %s)", i,
                           (double)cost[i], ex->from_device ? "from" : "to", h.device,
                           ex->from_device ? "0: devices send no cost model" : "a finite value >= 0");
    if (h.device != ex->device)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "message for device %u arrived on device %u's channel", h.device, ex->device);
    const size_t body = nbytes - WIRE_HEADER_BYTES;
    if (h.kind == WIRE_BYE) {
        if (h.payload_bytes != 0 || body != 0)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "bye from device %u carries %zu payload bytes (header says %llu)",
                           h.device, body, (unsigned long long)h.payload_bytes);
    } else if (h.kind == WIRE_TOKENS) {
        if (h.dtype != WIRE_TOKEN_I32 || h.dim != 0)
            return hat_err(err, errlen, HAT_ERR_FORMAT,
                           "token message with dtype %u and dim %u, expected %d (int32) and 0", h.dtype, h.dim,
                           WIRE_TOKEN_I32);
        const uint32_t lo = ex->from_device ? 1 : 0;   /* the cloud's acknowledgement of a prompt chunk has none */
        if (h.n_tok < lo || h.n_tok > ex->max_tok)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "%u token ids, allowed %u..%u", h.n_tok, lo, ex->max_tok);
        const size_t want = (size_t)h.n_tok * sizeof(int32_t);
        if (h.payload_bytes != want)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "header says %llu payload bytes, %u token ids are %zu",
                           (unsigned long long)h.payload_bytes, h.n_tok, want);
        if (body != want)
            return hat_err(err, errlen, HAT_ERR_FORMAT,
                           "truncated message: %zu payload bytes received, header says %zu", body, want);
    } else {
        if (h.dtype != ex->dtype)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "payload dtype %u (%s), expected %s", h.dtype,
                           h.dtype <= WIRE_BF16 ? wire_dtype_name((wire_dtype)h.dtype) : "unknown",
                           wire_dtype_name((wire_dtype)ex->dtype));
        if (h.dim != ex->dim)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "hidden size %u, the model's is %u", h.dim, ex->dim);
        if (h.n_tok < 1 || h.n_tok > ex->max_tok)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "%u hidden-state rows, allowed 1..%u", h.n_tok, ex->max_tok);
        const size_t want = wire_payload_bytes((wire_dtype)h.dtype, (int)h.n_tok, (int)h.dim);
        if (h.payload_bytes != want)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "header says %llu payload bytes, %u x %u %s hidden states are %zu",
                           (unsigned long long)h.payload_bytes, h.n_tok, h.dim, wire_dtype_name((wire_dtype)h.dtype), want);
        if (body != want)
            return hat_err(err, errlen, HAT_ERR_FORMAT, "truncated message: %zu payload bytes received, header says %zu",
                           body, want);
    }
    const uint32_t c = msg_checksum(msg);
    if (c != h.checksum)
        return hat_err(err, errlen, HAT_ERR_FORMAT, "checksum mismatch (0x%08x computed, 0x%08x in header): corrupted message",
                       c, h.checksum);
    if (h.kind == WIRE_TOKENS)   /* after the checksum: a corrupted id is reported as corruption */
        for (uint32_t i = 0; i < h.n_tok; i++) {
            int32_t id;
            memcpy(&id, (const uint8_t *)msg + WIRE_HEADER_BYTES + (size_t)i * sizeof id, sizeof id);
            if (id < 0 || id >= ex->n_vocab)
                return hat_err(err, errlen, HAT_ERR_FORMAT,
                               "token id %d (id %u of %u, message %u) out of the vocabulary [0, %d)", id, i, h.n_tok,
                               h.seq, ex->n_vocab);
        }
    return HAT_OK;
}

static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);   /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                              /* nearest even */
    return (uint16_t)(u >> 16);
}

void wire_encode(wire_dtype dt, const float *x, void *out, size_t n) {
    switch (dt) {
    case WIRE_F32: memcpy(out, x, n * sizeof(float)); break;
    case WIRE_F16: fp32_to_fp16_row(x, out, (int64_t)n); break;
    case WIRE_BF16: {
        uint16_t *o = out;
        for (size_t i = 0; i < n; i++) o[i] = f32_to_bf16(x[i]);
        break;
    }
    }
}

void wire_decode(wire_dtype dt, const void *in, float *x, size_t n) {
    switch (dt) {
    case WIRE_F32: memcpy(x, in, n * sizeof(float)); break;
    case WIRE_F16: fp16_to_fp32_row(in, x, (int64_t)n); break;
    case WIRE_BF16: {
        const uint16_t *p = in;
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)p[i] << 16;
            memcpy(&x[i], &u, 4);
        }
        break;
    }
    }
}
