/* fuzz_wire.c — the wire header validator (net/wire.h) on arbitrary messages, as a cloud sees a
 * device's (hidden states; token ids in the cloud-only baseline) and as a device sees the
 * cloud's; an accepted hidden-state payload is decoded too. */
#include "fuzz_util.h"

#include <string.h>

#include "core/common.h"
#include "net/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[HAT_ERRLEN];
    static float out[64 * 64];
    const wire_expect ex[] = {
        {.from_device = 1, .device = 3, .dim = 64, .max_tok = 64, .dtype = WIRE_F16},
        {.from_device = 0, .device = 3, .dim = 64, .max_tok = 64, .dtype = WIRE_F32},
        {.from_device = 1, .device = 0, .dim = 64, .max_tok = 64, .dtype = WIRE_BF16},
        {.from_device = 1, .device = 0, .dim = 0, .max_tok = 64, .dtype = WIRE_TOKEN_I32, .allow_tokens = 1, .n_vocab = 100},
    };
    for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
        if (wire_validate(data, size, &ex[i], err, sizeof err) != HAT_OK) continue;
        wire_header h;   /* the fuzzer's buffer need not be aligned for the struct */
        memcpy(&h, data, sizeof h);
        if (h.kind != WIRE_TOKENS && h.n_tok <= 64 && h.dim == 64)
            wire_decode((wire_dtype)h.dtype, data + WIRE_HEADER_BYTES, out, (size_t)h.n_tok * 64);
    }
    return 0;
}
