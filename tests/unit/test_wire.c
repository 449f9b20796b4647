/* The wire format (no MPI): CRC-32C fast path vs the bitwise reference (and the standard check
 * value), fp16/bf16 encodings, and wire_validate refusing each kind of bad message — among them
 * any message from a device that is not hidden states (the no-token-ids property), and token
 * ids accepted only where a cloud-only run allows them, each id checked against the vocabulary. */
#include "core/common.h"
#include "core/crc32c.h"
#include "engine/quant.h"
#include "support/testutil.h"
#include "net/wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DIM 576

static size_t make_msg(uint8_t *buf, int kind, wire_dtype dt, int n_tok, const float *x) {
    wire_header h = {.magic = WIRE_MAGIC, .version = WIRE_VERSION, .kind = (uint16_t)kind, .device = 3, .seq = 7,
                     .pos0 = 10, .n_tok = (uint32_t)n_tok, .dim = DIM, .dtype = (uint16_t)dt,
                     .payload_bytes = kind == WIRE_BYE ? 0 : wire_payload_bytes(dt, n_tok, DIM)};
    if (kind != WIRE_BYE) wire_encode(dt, x, buf + WIRE_HEADER_BYTES, (size_t)n_tok * DIM);
    memcpy(buf, &h, sizeof h);
    wire_seal(buf);
    return WIRE_HEADER_BYTES + (size_t)h.payload_bytes;
}

/* a TOKENS message (cloud-only baseline): n int32 ids, dtype WIRE_TOKEN_I32, dim 0 */
static size_t make_tokens(uint8_t *buf, const int32_t *ids, int n) {
    wire_header h = {.magic = WIRE_MAGIC, .version = WIRE_VERSION, .kind = WIRE_TOKENS, .device = 3, .seq = 2,
                     .pos0 = 8, .n_tok = (uint32_t)n, .dim = 0, .dtype = WIRE_TOKEN_I32,
                     .payload_bytes = (uint64_t)n * sizeof(int32_t)};
    memcpy(buf, &h, sizeof h);
    if (n) memcpy(buf + WIRE_HEADER_BYTES, ids, (size_t)n * sizeof(int32_t));
    wire_seal(buf);
    return WIRE_HEADER_BYTES + (size_t)n * sizeof(int32_t);
}

static int rejects(const uint8_t *buf, size_t n, const wire_expect *ex, const char *needle) {
    char err[HAT_ERRLEN] = "";
    int rc = wire_validate(buf, n, ex, err, sizeof err);
    if (rc == HAT_OK) { fprintf(stderr, "  accepted, expected '%s'\n", needle); return 0; }
    if (!strstr(err, needle)) { fprintf(stderr, "  message '%s' lacks '%s'\n", err, needle); return 0; }
    return 1;
}

int main(void) {
    /* CRC-32C: standard check value and fast == reference on random lengths/alignments */
    EXPECT(crc32c(0, "123456789", 9) == 0xE3069283u, "crc32c check value %08x", crc32c(0, "123456789", 9));
    EXPECT(crc32c_ref(0, "123456789", 9) == 0xE3069283u, "crc32c_ref check value");
    uint8_t *rnd = malloc(5000);
    for (int i = 0; i < 5000; i++) rnd[i] = (uint8_t)(t_uniform() * 256);
    int crc_ok = 1;
    for (int k = 0; k < 200; k++) {
        size_t off = (size_t)(t_uniform() * 64), len = (size_t)(t_uniform() * 4900);
        crc_ok &= crc32c(0x1234u, rnd + off, len) == crc32c_ref(0x1234u, rnd + off, len);
    }
    EXPECT(crc_ok, "fast crc32c differs from the reference");

    /* encodings */
    static float x[17 * DIM], y[17 * DIM];
    for (int i = 0; i < 17 * DIM; i++) x[i] = t_normalish() * (i % 7 == 0 ? 300.0f : 1.0f);
    uint8_t *buf = malloc(WIRE_HEADER_BYTES + 17 * DIM * 4 + 64);
    wire_encode(WIRE_F32, x, buf, 4 * DIM);
    wire_decode(WIRE_F32, buf, y, 4 * DIM);
    EXPECT(!memcmp(x, y, 4 * DIM * sizeof(float)), "fp32 round trip");
    wire_encode(WIRE_F16, x, buf, 4 * DIM);
    wire_decode(WIRE_F16, buf, y, 4 * DIM);
    int f16_ok = 1;
    for (int i = 0; i < 4 * DIM; i++) f16_ok &= y[i] == fp16_to_fp32(fp32_to_fp16(x[i]));
    EXPECT(f16_ok, "fp16 wire != round-to-nearest fp16");
    wire_encode(WIRE_BF16, x, buf, 4 * DIM);
    wire_decode(WIRE_BF16, buf, y, 4 * DIM);
    int bf_ok = 1;
    for (int i = 0; i < 4 * DIM; i++) bf_ok &= fabsf(y[i] - x[i]) <= fabsf(x[i]) * (1.0f / 256.0f);
    EXPECT(bf_ok, "bf16 error above half an ulp of 8 bits");
    const float tie = 1.0f + 1.0f / 256.0f;   /* exactly halfway between two bf16: rounds to even (1.0) */
    wire_encode(WIRE_BF16, &tie, buf, 1);
    wire_decode(WIRE_BF16, buf, y, 1);
    EXPECT(y[0] == 1.0f, "bf16 tie rounding: %g", y[0]);

    /* validation */
    const wire_expect up = {1, 3, DIM, 17, WIRE_F16, 0, 0}, down = {0, 3, DIM, 17, WIRE_F16, 0, 0};
    char err[HAT_ERRLEN];
    size_t n = make_msg(buf, WIRE_HIDDEN_UP, WIRE_F16, 4, x);
    EXPECT(wire_validate(buf, n, &up, err, sizeof err) == HAT_OK, "good message refused: %s", err);
    EXPECT(rejects(buf, n, &down, "expected hidden_down"), "up message accepted on a device");
    EXPECT(rejects(buf, n - 100, &up, "truncated"), "truncated payload");
    EXPECT(rejects(buf, 50, &up, "truncated"), "truncated header");
    buf[WIRE_HEADER_BYTES + 5] ^= 1;
    EXPECT(rejects(buf, n, &up, "checksum"), "flipped payload bit");
    n = make_msg(buf, WIRE_HIDDEN_UP, WIRE_F16, 4, x);
    wire_header h;
    memcpy(&h, buf, sizeof h);
    h.version = 1; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &up, "version 1"), "wrong version");
    h.version = WIRE_VERSION; h.cost_c1 = 1e-3f; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &up, "cost_c1"), "a device's message with a cost model");
    EXPECT(wire_u16_sat(70000) == 65535 && wire_u16_sat(-3) == 0 && wire_u16_sat(300) == 300, "16-bit counts saturate");
    h.cost_c1 = 0; h.kind = WIRE_HIDDEN_DOWN; h.cost_c0 = 2e-3f; h.cost_c2 = 3e-8f; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(wire_validate(buf, n, &down, err, sizeof err) == HAT_OK, "a reply with a cost model refused: %s", err);
    h.cost_c2 = -1; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &down, "cost_c2"), "a negative cost coefficient");
    h.cost_c2 = NAN; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &down, "cost_c2"), "a NaN cost coefficient");
    h.cost_c2 = 0; h.cost_c3 = INFINITY; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &down, "cost_c3"), "an infinite cost coefficient");
    h.kind = WIRE_HIDDEN_UP; h.cost_c0 = h.cost_c3 = 0;
    h.magic = 0x12345678; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &up, "magic"), "bad magic");
    h.magic = WIRE_MAGIC; h.device = 4; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &up, "device 3"), "wrong device");
    h.device = 3; h.dim = 512; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &up, "hidden size 512"), "wrong dim");
    h.dim = DIM; h.dtype = WIRE_F32; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &up, "dtype"), "wrong dtype");
    h.dtype = WIRE_F16; h.payload_bytes += 2; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &up, "payload bytes"), "payload size mismatch");
    n = make_msg(buf, WIRE_HIDDEN_UP, WIRE_F16, 17, x);   /* 17 rows fits; 18 does not */
    EXPECT(wire_validate(buf, n, &up, err, sizeof err) == HAT_OK, "17 rows refused: %s", err);
    memcpy(&h, buf, sizeof h); h.n_tok = 18; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &up, "18 hidden-state rows"), "too many rows");
    /* the privacy property: a device message carrying token ids is refused, whatever its size */
    int32_t ids[4] = {1, 2, 3, 4};
    h = (wire_header){.magic = WIRE_MAGIC, .version = WIRE_VERSION, .kind = WIRE_TOKENS, .device = 3, .n_tok = 4,
                      .dim = DIM, .dtype = WIRE_F16, .payload_bytes = sizeof ids};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + WIRE_HEADER_BYTES, ids, sizeof ids);
    wire_seal(buf);
    EXPECT(rejects(buf, WIRE_HEADER_BYTES + sizeof ids, &up, "never token ids"), "token message from a device accepted");
    for (int k = 0; k < 16; k++) {   /* every kind other than hidden_up/bye is refused from a device */
        if (k == WIRE_HIDDEN_UP || k == WIRE_BYE) continue;
        h.kind = (uint16_t)k; memcpy(buf, &h, sizeof h); wire_seal(buf);
        EXPECT(rejects(buf, WIRE_HEADER_BYTES + sizeof ids, &up, "devices may send only"), "kind %d accepted from a device", k);
    }
    n = make_msg(buf, WIRE_BYE, WIRE_F16, 0, x);
    EXPECT(wire_validate(buf, n, &up, err, sizeof err) == HAT_OK, "bye refused: %s", err);
    EXPECT(rejects(buf, n + 8, &up, "bye"), "bye with payload");
    n = make_msg(buf, WIRE_HIDDEN_DOWN, WIRE_F16, 2, x);
    EXPECT(wire_validate(buf, n, &down, err, sizeof err) == HAT_OK, "down refused: %s", err);

    /* token ids: valid only on the endpoints of a cloud-only run (allow_tokens), and there only
     * well-formed ones with every id in the vocabulary; a split-mode endpoint refuses them */
    const wire_expect co_up = {1, 3, 1, 17, WIRE_F32, 1, 1000}, co_down = {0, 3, 1, 17, WIRE_F32, 1, 1000};
    int32_t tids[18] = {0, 999, 5, 17};
    n = make_tokens(buf, tids, 4);
    EXPECT(wire_validate(buf, n, &co_up, err, sizeof err) == HAT_OK, "token ids refused on a cloud-only cloud: %s",
           err);
    EXPECT(wire_validate(buf, n, &co_down, err, sizeof err) == HAT_OK, "token ids refused on a cloud-only device: %s",
           err);
    EXPECT(rejects(buf, n, &up, "never token ids"), "token ids accepted from a device in a split run");
    EXPECT(rejects(buf, n, &down, "expected hidden_down"), "token ids accepted by a device in a split run");
    n = make_tokens(buf, tids, 17);
    EXPECT(wire_validate(buf, n, &co_up, err, sizeof err) == HAT_OK, "17 token ids refused: %s", err);
    n = make_tokens(buf, tids, 18);
    EXPECT(rejects(buf, n, &co_up, "18 token ids"), "18 token ids accepted (max 17)");
    n = make_tokens(buf, tids, 0);   /* the cloud acknowledges a prompt chunk with no id; a device never sends none */
    EXPECT(wire_validate(buf, n, &co_down, err, sizeof err) == HAT_OK, "empty acknowledgement refused: %s", err);
    EXPECT(rejects(buf, n, &co_up, "0 token ids"), "empty token message accepted from a device");
    tids[2] = 1000;
    n = make_tokens(buf, tids, 4);
    EXPECT(rejects(buf, n, &co_up, "out of the vocabulary"), "token id = n_vocab accepted");
    tids[2] = -1;
    n = make_tokens(buf, tids, 4);
    EXPECT(rejects(buf, n, &co_down, "out of the vocabulary"), "negative token id accepted");
    tids[2] = 5;
    n = make_tokens(buf, tids, 4);
    EXPECT(rejects(buf, n - 2, &co_up, "truncated"), "truncated token message accepted");
    buf[WIRE_HEADER_BYTES + 9] ^= 0x40;   /* a corrupted id is reported as corruption, not as a bad id */
    EXPECT(rejects(buf, n, &co_up, "checksum"), "corrupted token id accepted");
    n = make_tokens(buf, tids, 4);
    memcpy(&h, buf, sizeof h);
    h.payload_bytes += 4; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &co_up, "payload bytes"), "token payload size mismatch");
    h.payload_bytes -= 4; h.dtype = WIRE_F16; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &co_up, "dtype"), "token message with a float dtype accepted");
    h.dtype = WIRE_TOKEN_I32; h.dim = 1; memcpy(buf, &h, sizeof h); wire_seal(buf);
    EXPECT(rejects(buf, n, &co_up, "dim"), "token message with a hidden size accepted");
    /* a cloud-only endpoint takes nothing but tokens (and the device's bye): no hidden states */
    n = make_msg(buf, WIRE_HIDDEN_UP, WIRE_F16, 1, x);
    EXPECT(rejects(buf, n, &co_up, "cloud-only run"), "hidden states accepted on a cloud-only cloud");
    n = make_msg(buf, WIRE_HIDDEN_DOWN, WIRE_F16, 1, x);
    EXPECT(rejects(buf, n, &co_down, "cloud-only run"), "hidden states accepted on a cloud-only device");
    n = make_msg(buf, WIRE_BYE, WIRE_F16, 0, x);
    EXPECT(wire_validate(buf, n, &co_up, err, sizeof err) == HAT_OK, "bye refused on a cloud-only cloud: %s", err);
    EXPECT(rejects(buf, n, &co_down, "cloud-only run"), "bye accepted from the cloud");
    free(buf);
    free(rnd);
    return test_summary();
}
